// k6 "spike" scenario: Sudden surge: ramp quickly to many VUs, hold briefly, drop back.
// Stages and thresholds come from ../scenarios.json, shared with the Node runner (loadtest/runner.ts).
// Run: k6 run -e BASE_URL=http://127.0.0.1:8080 loadtest/k6/spike.js   (DURATION_SCALE=0.2 to shorten)

import { buildOptions, httpIteration, pickScenario } from './lib.js';

const scenario = pickScenario(JSON.parse(open('../scenarios.json')), 'spike');

export const options = buildOptions('spike', scenario);

export default function () {
  httpIteration(scenario);
}
