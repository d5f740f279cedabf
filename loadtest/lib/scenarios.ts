// Loads loadtest/scenarios.json (shared with the k6 scripts) and validates each scenario's shape,
// so the runner fails before sending traffic when the file is wrong.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseDuration } from './duration.js';
import type { ThresholdSpec } from './thresholds.js';

export interface Stage {
  duration: string;
  target: number;
}

export interface ScenarioDef {
  /** Key in scenarios.json, e.g. "smoke". */
  name: string;
  description?: string;
  kind: 'http' | 'ws';
  path: string;
  /** Think time per iteration, seconds. */
  sleep: number;
  startVUs?: number;
  stages: Stage[];
  thresholds: Record<string, ThresholdSpec[]>;
  /** ws: messages per session (default 10). */
  messages?: number;
  /** ws: bytes per message (default 64). */
  messageBytes?: number;
  /** ws: a session longer than this fails (default "10s"). */
  sessionTimeout?: string;
}

/** Default location: loadtest/scenarios.json beside this folder. */
export const DEFAULT_SCENARIOS_FILE = fileURLToPath(new URL('../scenarios.json', import.meta.url));

function fail(name: string, why: string): never {
  throw new Error(`scenarios.json: scenario "${name}": ${why}`);
}

/** Checks one raw scenario object and returns it typed. */
export function validateScenario(name: string, raw: unknown): ScenarioDef {
  if (typeof raw !== 'object' || raw === null) fail(name, 'not an object');
  const s = raw as Record<string, unknown>;
  if (s.kind !== 'http' && s.kind !== 'ws') fail(name, 'kind must be "http" or "ws"');
  if (typeof s.path !== 'string' || !s.path.startsWith('/')) fail(name, 'path must start with /');
  if (typeof s.sleep !== 'number' || s.sleep < 0) fail(name, 'sleep must be a number of seconds >= 0');
  if (s.startVUs !== undefined && (!Number.isInteger(s.startVUs) || (s.startVUs as number) < 0)) {
    fail(name, 'startVUs must be an integer >= 0');
  }
  if (!Array.isArray(s.stages) || s.stages.length === 0) fail(name, 'stages must be a non-empty array');
  for (const stage of s.stages as unknown[]) {
    const st = stage as Partial<Stage>;
    if (typeof st.duration !== 'string' || !Number.isInteger(st.target) || (st.target as number) < 0) {
      fail(name, `bad stage ${JSON.stringify(stage)}`);
    }
    parseDuration(st.duration);
  }
  if (typeof s.thresholds !== 'object' || s.thresholds === null) fail(name, 'thresholds must be an object');
  if (s.sessionTimeout !== undefined) parseDuration(String(s.sessionTimeout));
  return { ...(s as unknown as Omit<ScenarioDef, 'name'>), name };
}

/** Reads and validates every scenario of a scenarios file. */
export function loadScenarios(file = DEFAULT_SCENARIOS_FILE): Map<string, ScenarioDef> {
  const parsed = JSON.parse(readFileSync(file, 'utf8')) as { scenarios?: Record<string, unknown> };
  if (!parsed.scenarios || typeof parsed.scenarios !== 'object') throw new Error(`${file}: no "scenarios" object`);
  const result = new Map<string, ScenarioDef>();
  for (const [name, raw] of Object.entries(parsed.scenarios)) result.set(name, validateScenario(name, raw));
  return result;
}
