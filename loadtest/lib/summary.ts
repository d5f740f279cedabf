// Text summary of scenario runs: one table row per scenario (requests or sessions, rate,
// failure rate, latency percentiles), the errors seen, and a PASS/FAIL/SKIP line per threshold.

import { formatDuration } from './duration.js';
import type { MetricRegistry } from './metrics.js';
import type { ThresholdResult } from './thresholds.js';

export interface ScenarioSummary {
  name: string;
  kind: 'http' | 'ws';
  durationMs: number;
  maxVUs: number;
  /** Requests (http) or sessions (ws). */
  count: number;
  perSecond: number;
  failureRate: number;
  checksRate: number;
  /** Latency in ms: http_req_duration (http) or ws_msg_rtt (ws). */
  p50: number;
  p95: number;
  p99: number;
  max: number;
  /** ws only: messages echoed. */
  messages?: number;
}

/** Condenses a registry into the numbers of the summary table. */
export function summarize(name: string, kind: 'http' | 'ws', metrics: MetricRegistry, maxVUs: number): ScenarioSummary {
  const seconds = Math.max(metrics.durationMs / 1000, 1e-9);
  const count = kind === 'http' ? metrics.counter('http_reqs').count : metrics.counter('ws_sessions').count;
  const failed = kind === 'http' ? metrics.rate('http_req_failed') : metrics.rate('ws_session_failed');
  const latency = kind === 'http' ? metrics.trend('http_req_duration') : metrics.trend('ws_msg_rtt');
  const summary: ScenarioSummary = {
    name,
    kind,
    durationMs: metrics.durationMs,
    maxVUs,
    count,
    perSecond: count / seconds,
    failureRate: failed.rate,
    checksRate: metrics.rate('checks').rate,
    p50: latency.percentile(50),
    p95: latency.percentile(95),
    p99: latency.percentile(99),
    max: latency.max,
  };
  if (kind === 'ws') summary.messages = metrics.counter('ws_msgs_received').count;
  return summary;
}

const ms = (v: number): string => (Number.isNaN(v) ? '-' : v < 10 ? v.toFixed(2) : v.toFixed(1));
const pct = (v: number): string => (Number.isNaN(v) ? '-' : `${(v * 100).toFixed(2)}%`);

/** Renders rows as an aligned text table (first row is the header). */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, col) => Math.max(...rows.map((r) => (r[col] ?? '').length)));
  return rows
    .map((r) => r.map((cell, col) => (col === 0 ? cell.padEnd(widths[col]!) : cell.padStart(widths[col]!))).join('  '))
    .join('\n');
}

export function formatSummaryTable(summaries: ScenarioSummary[]): string {
  const header = ['scenario', 'time', 'maxVUs', 'reqs/sessions', 'per s', 'failed', 'checks', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms'];
  const rows = summaries.map((s) => [
    `${s.name} (${s.kind})`,
    formatDuration(s.durationMs),
    String(s.maxVUs),
    s.kind === 'ws' ? `${s.count} (${s.messages ?? 0} msgs)` : String(s.count),
    s.perSecond.toFixed(1),
    pct(s.failureRate),
    pct(s.checksRate),
    ms(s.p50),
    ms(s.p95),
    ms(s.p99),
    ms(s.max),
  ]);
  return table([header, ...rows]);
}

export function formatThresholds(scenario: string, results: ThresholdResult[]): string {
  return results
    .map((r) => {
      const actual = Number.isNaN(r.actual) ? '' : ` (actual ${Number.isInteger(r.actual) ? r.actual : r.actual.toFixed(4)})`;
      const note = r.note ? ` [${r.note}]` : '';
      return `${r.status.toUpperCase().padEnd(4)} ${scenario}: ${r.metric} ${r.source}${actual}${note}`;
    })
    .join('\n');
}

export function formatErrors(scenario: string, errors: Map<string, number>): string {
  const top = [...errors.entries()].sort((a, b) => b[1] - a[1]).slice(0, 8);
  return top.map(([message, n]) => `  ${scenario}: ${n} x ${message}`).join('\n');
}
