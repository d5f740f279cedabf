// Check names shared with the k6 scripts (loadtest/k6/lib.js), and a helper recording a check
// into the k6-style "checks" Rate metric.

import type { MetricRegistry } from './metrics.js';

export const CHECK_STATUS_2XX = 'status is 2xx';
export const CHECK_REQUEST_ID = 'has x-request-id';
export const CHECK_WS_101 = 'ws status is 101';
export const CHECK_WS_ECHOES = 'all echoes received';

/** Records one check result under "checks" (overall) and "check:<name>" (per check). */
export function recordCheck(metrics: MetricRegistry, name: string, passed: boolean): boolean {
  metrics.rate('checks').add(passed);
  metrics.rate(`check:${name}`).add(passed);
  return passed;
}

/** Counts an error message (first line, capped) so the summary can list what went wrong. */
export function recordError(errors: Map<string, number>, err: unknown): void {
  const raw = err instanceof Error ? `${err.name === 'Error' ? '' : err.name + ': '}${err.message}` : String(err);
  const key = raw.split('\n')[0]!.slice(0, 160);
  errors.set(key, (errors.get(key) ?? 0) + 1);
}
