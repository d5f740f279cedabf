// k6 "smoke" scenario: 1-2 VUs for a few seconds: does the proxy answer, with a request id, without errors?
// Stages and thresholds come from ../scenarios.json, shared with the Node runner (loadtest/runner.ts).
// Run: k6 run -e BASE_URL=http://127.0.0.1:8080 loadtest/k6/smoke.js   (DURATION_SCALE=0.2 to shorten)

import { buildOptions, httpIteration, pickScenario } from './lib.js';

const scenario = pickScenario(JSON.parse(open('../scenarios.json')), 'smoke');

export const options = buildOptions('smoke', scenario);

export default function () {
  httpIteration(scenario);
}
