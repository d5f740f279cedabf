// k6 "average" scenario: Typical day: ramp to a moderate number of VUs, hold, ramp down.
// Stages and thresholds come from ../scenarios.json, shared with the Node runner (loadtest/runner.ts).
// Run: k6 run -e BASE_URL=http://127.0.0.1:8080 loadtest/k6/average.js   (DURATION_SCALE=0.2 to shorten)

import { buildOptions, httpIteration, pickScenario } from './lib.js';

const scenario = pickScenario(JSON.parse(open('../scenarios.json')), 'average');

export const options = buildOptions('average', scenario);

export default function () {
  httpIteration(scenario);
}
