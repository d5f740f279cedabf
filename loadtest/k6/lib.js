// Shared helpers for the k6 scripts in this folder.
//
// Turns one scenario of ../scenarios.json (the file the Node runner reads too) into k6 options
// (a ramping-vus scenario with the same stages and thresholds), and runs one HTTP iteration with
// the same checks as the Node runner: status 2xx and an x-request-id response header.
// Environment: BASE_URL (default http://127.0.0.1:8080), DURATION_SCALE (default 1, shrinks
// every stage), ONLY_ERRORS=1 (keep only thresholds on rate metrics, for noisy CI machines).

import http from 'k6/http';
import { check, sleep } from 'k6';

/** @typedef {{ duration: string, target: number }} Stage */
/**
 * @typedef {object} Scenario
 * @property {string} [description]
 * @property {'http' | 'ws'} kind
 * @property {string} path
 * @property {number} sleep seconds of think time per iteration
 * @property {number} [startVUs]
 * @property {Stage[]} stages
 * @property {Record<string, string[]>} thresholds
 * @property {number} [messages] ws: messages per session
 * @property {number} [messageBytes] ws: size of each message
 * @property {string} [sessionTimeout] ws: a session taking longer fails
 */
/** @typedef {{ scenarios: Record<string, Scenario> }} ScenarioFile */

/** Base URL of the system under test, without a trailing slash. */
export const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');

/** Metrics of type Rate: the error-rate thresholds kept by ONLY_ERRORS=1. */
const RATE_METRICS = ['http_req_failed', 'checks', 'ws_session_failed'];

/** Check names, identical in the Node runner so both report the same checks. */
export const CHECK_STATUS_2XX = 'status is 2xx';
export const CHECK_REQUEST_ID = 'has x-request-id';
export const CHECK_WS_101 = 'ws status is 101';
export const CHECK_WS_ECHOES = 'all echoes received';

/**
 * Picks a scenario out of the parsed scenarios.json.
 * @param {ScenarioFile} file JSON.parse(open('../scenarios.json'))
 * @param {string} name
 * @returns {Scenario}
 */
export function pickScenario(file, name) {
  const scenario = file.scenarios[name];
  if (!scenario) throw new Error(`scenario ${name} not found in scenarios.json`);
  return scenario;
}

/**
 * Parses a k6 duration such as "500ms", "30s", "1m30s", "2h".
 * @param {string} text
 * @returns {number} milliseconds
 */
export function parseDurationMs(text) {
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;
  const factor = /** @type {Record<string, number>} */ ({ ms: 1, s: 1000, m: 60000, h: 3600000 });
  let total = 0;
  let consumed = 0;
  for (const match of text.matchAll(re)) {
    total += Number(match[1]) * factor[match[2]];
    consumed += match[0].length;
  }
  if (consumed === 0 || consumed !== text.length) throw new Error(`bad duration: ${text}`);
  return total;
}

/** @returns {number} the DURATION_SCALE factor, 1 when unset */
function durationScale() {
  const scale = Number(__ENV.DURATION_SCALE || '1');
  if (!(scale > 0)) throw new Error(`DURATION_SCALE must be > 0, got ${__ENV.DURATION_SCALE}`);
  return scale;
}

/**
 * Builds k6 options for one scenario: a ramping-vus executor with the scenario's (scaled)
 * stages, and its thresholds.
 * @param {string} name
 * @param {Scenario} scenario
 * @returns {import('k6/options').Options}
 */
export function buildOptions(name, scenario) {
  const scale = durationScale();
  const stages = scenario.stages.map((s) => ({
    duration: `${Math.max(1, Math.round(parseDurationMs(s.duration) * scale))}ms`,
    target: s.target,
  }));
  const onlyErrors = __ENV.ONLY_ERRORS === '1' || __ENV.ONLY_ERRORS === 'true';
  /** @type {Record<string, string[]>} */
  const thresholds = {};
  for (const [metric, exprs] of Object.entries(scenario.thresholds)) {
    if (!onlyErrors || RATE_METRICS.includes(metric)) thresholds[metric] = exprs;
  }
  return {
    scenarios: {
      [name]: {
        executor: 'ramping-vus',
        startVUs: scenario.startVUs ?? 1,
        stages,
        gracefulRampDown: '5s',
        gracefulStop: '5s',
      },
    },
    thresholds,
  };
}

/**
 * Case-insensitive header lookup (k6 canonicalises names, e.g. X-Request-Id).
 * @param {Record<string, string>} headers
 * @param {string} name lower-case header name
 * @returns {string | undefined}
 */
export function headerValue(headers, name) {
  for (const key of Object.keys(headers)) {
    if (key.toLowerCase() === name) return headers[key];
  }
  return undefined;
}

/**
 * One HTTP iteration: GET the scenario path, check status and request id, think.
 * @param {Scenario} scenario
 */
export function httpIteration(scenario) {
  const res = http.get(`${BASE_URL}${scenario.path}`, { tags: { name: scenario.path } });
  check(res, {
    [CHECK_STATUS_2XX]: (r) => r.status >= 200 && r.status < 300,
    [CHECK_REQUEST_ID]: (r) => Boolean(headerValue(r.headers, 'x-request-id')),
  });
  sleep(scenario.sleep);
}
