// Node load-test runner: executes the scenarios of loadtest/scenarios.json (the same stages and
// thresholds as the k6 scripts) against a base URL with ramping virtual users, prints a summary
// table and a PASS/FAIL line per k6 threshold, and exits 1 if any threshold fails.
//
//   node --import tsx loadtest/runner.ts --base-url http://127.0.0.1:8080 \
//        --scenario smoke,websocket [--scale 0.2] [--only-errors] [--json out.json]
//
// Library use (tests, bench-proxy): runScenario(def, options), parseThreshold, evaluateThreshold.

import { writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { formatDuration, parseDuration } from './lib/duration.js';
import { createHttpVus, type VuDriver } from './lib/http-vu.js';
import { MetricRegistry, type MetricType } from './lib/metrics.js';
import { runRamping, type RampResult } from './lib/ramping.js';
import { DEFAULT_SCENARIOS_FILE, loadScenarios, type ScenarioDef } from './lib/scenarios.js';
import { formatErrors, formatSummaryTable, formatThresholds, summarize, type ScenarioSummary } from './lib/summary.js';
import { evaluateThresholds, validateThresholds, type ThresholdResult } from './lib/thresholds.js';
import { createWsVus } from './lib/ws-vu.js';

export { parseDuration } from './lib/duration.js';
export { MetricRegistry, Counter, Rate, Trend } from './lib/metrics.js';
export { loadScenarios, type ScenarioDef } from './lib/scenarios.js';
export {
  evaluateThreshold,
  evaluateThresholds,
  parseThreshold,
  type Threshold,
  type ThresholdResult,
} from './lib/thresholds.js';

export interface RunOptions {
  /** e.g. http://127.0.0.1:8080; ws scenarios use the same host with ws://. */
  baseUrl: string;
  /** Multiplies every stage duration (0.2 = five times shorter). Default 1. */
  scale?: number;
  /** Evaluate only thresholds on Rate metrics (error rates); skip latency ones. */
  onlyErrors?: boolean;
  /** Per-request (and WebSocket handshake) timeout, ms. Default 10 s. */
  timeoutMs?: number;
  /** Time allowed for in-flight iterations after the last stage, ms. Default 5 s. */
  gracefulStopMs?: number;
  /** Hard cap on iterations. Default 1,000,000. */
  maxIterations?: number;
  /** Progress lines; default console.error. Pass () => {} to silence. */
  log?: (line: string) => void;
}

export interface ScenarioResult {
  name: string;
  passed: boolean;
  summary: ScenarioSummary;
  thresholds: ThresholdResult[];
  errors: Record<string, number>;
  ramp: RampResult;
  metrics: MetricRegistry;
}

function createDriver(def: ScenarioDef, options: RunOptions, metrics: MetricRegistry, errors: Map<string, number>): VuDriver {
  const timeoutMs = options.timeoutMs ?? 10_000;
  if (def.kind === 'ws') {
    return createWsVus({
      baseUrl: options.baseUrl,
      path: def.path,
      messages: def.messages ?? 10,
      messageBytes: def.messageBytes ?? 64,
      sessionTimeoutMs: parseDuration(def.sessionTimeout ?? '10s'),
      timeoutMs,
      metrics,
      errors,
    });
  }
  return createHttpVus({ baseUrl: options.baseUrl, path: def.path, timeoutMs, metrics, errors });
}

/** Runs one scenario and evaluates its thresholds. Never throws for failed requests. */
export async function runScenario(def: ScenarioDef, options: RunOptions): Promise<ScenarioResult> {
  const scale = options.scale ?? 1;
  if (!(scale > 0)) throw new Error(`scale must be > 0, got ${scale}`);
  const log = options.log ?? ((line: string) => console.error(line));
  const metrics = new MetricRegistry();
  const errors = new Map<string, number>();
  const driver = createDriver(def, options, metrics, errors);

  const types: Record<string, MetricType> = {};
  for (const name of metrics.names()) types[name] = metrics.get(name)!.type;
  validateThresholds(def.thresholds, types);

  const stages = def.stages.map((s) => ({ durationMs: parseDuration(s.duration) * scale, target: s.target }));
  const totalMs = stages.reduce((sum, s) => sum + s.durationMs, 0);
  log(`running ${def.name} (${def.kind} ${def.path}) against ${options.baseUrl} for ${formatDuration(totalMs)}`);

  let ramp: RampResult;
  try {
    ramp = await runRamping(
      {
        startVUs: def.startVUs ?? 1,
        stages,
        sleepMs: def.sleep * 1000,
        gracefulStopMs: options.gracefulStopMs ?? 5_000,
        maxIterations: options.maxIterations ?? 1_000_000,
      },
      (vu) => driver.iterate(vu),
    );
  } finally {
    await driver.close();
  }
  metrics.durationMs = ramp.durationMs;
  const thresholds = evaluateThresholds(def.thresholds, metrics, { onlyErrors: options.onlyErrors ?? false });
  return {
    name: def.name,
    passed: thresholds.every((t) => t.status !== 'fail'),
    summary: summarize(def.name, def.kind, metrics, ramp.maxVUs),
    thresholds,
    errors: Object.fromEntries(errors),
    ramp,
    metrics,
  };
}

/** Human-readable report of several scenario results. */
export function formatReport(results: ScenarioResult[]): string {
  const parts = [formatSummaryTable(results.map((r) => r.summary)), ''];
  const errors = results.map((r) => formatErrors(r.name, new Map(Object.entries(r.errors)))).filter(Boolean);
  if (errors.length > 0) parts.push('errors:', ...errors, '');
  for (const r of results) {
    if (r.ramp.interrupted) parts.push(`note: ${r.name}: in-flight iterations were aborted after the graceful stop`);
  }
  for (const r of results) parts.push(formatThresholds(r.name, r.thresholds));
  parts.push('', results.every((r) => r.passed) ? 'RESULT: PASS' : 'RESULT: FAIL');
  return parts.join('\n');
}

/** JSON-friendly form of results (NaN becomes null through JSON.stringify). */
export function resultsToJson(results: ScenarioResult[], context: Record<string, unknown>): unknown {
  return {
    ...context,
    passed: results.every((r) => r.passed),
    scenarios: results.map((r) => ({
      name: r.name,
      passed: r.passed,
      summary: r.summary,
      thresholds: r.thresholds,
      errors: r.errors,
      iterations: r.ramp.iterations,
      interrupted: r.ramp.interrupted,
    })),
  };
}

const USAGE = `usage: node --import tsx loadtest/runner.ts [--base-url URL] [--scenario smoke,websocket]
       [--scale N] [--only-errors] [--scenarios FILE] [--timeout 10s] [--json OUT.json]
env: BASE_URL, DURATION_SCALE (same as the k6 scripts)`;

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      'base-url': { type: 'string' },
      scenario: { type: 'string', default: 'smoke' },
      scale: { type: 'string' },
      'only-errors': { type: 'boolean', default: false },
      scenarios: { type: 'string', default: DEFAULT_SCENARIOS_FILE },
      timeout: { type: 'string', default: '10s' },
      json: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const baseUrl = values['base-url'] ?? process.env.BASE_URL ?? 'http://127.0.0.1:8080';
  const scale = Number(values.scale ?? process.env.DURATION_SCALE ?? '1');
  const defs = loadScenarios(values.scenarios);
  const names = values.scenario.split(',').map((s) => s.trim()).filter(Boolean);
  for (const name of names) {
    if (!defs.has(name)) throw new Error(`unknown scenario "${name}" (have: ${[...defs.keys()].join(', ')})`);
  }
  const options: RunOptions = {
    baseUrl,
    scale,
    onlyErrors: values['only-errors'],
    timeoutMs: parseDuration(values.timeout),
  };
  const results: ScenarioResult[] = [];
  for (const name of names) results.push(await runScenario(defs.get(name)!, options));
  console.log(formatReport(results));
  if (values.json) {
    const json = resultsToJson(results, { baseUrl, scale, onlyErrors: options.onlyErrors ?? false });
    writeFileSync(values.json, `${JSON.stringify(json, null, 2)}\n`);
  }
  return results.every((r) => r.passed) ? 0 : 1;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      console.error(err instanceof Error ? err.message : err);
      console.error(USAGE);
      process.exitCode = 2;
    },
  );
}
