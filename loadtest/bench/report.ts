// Aggregation and printing for bench-proxy: medians over rounds, ratios to the nginx proxy,
// and the final text tables.

import { table } from '../lib/summary.js';
import type { IdleResult } from './idle.js';
import type { WrkResult } from './wrk.js';

export interface RoundResult extends WrkResult {
  round: number;
  /** CPU time the target's own processes used during the round, per request (µs). */
  cpuMicrosPerRequest: number;
}

export interface TargetSummary {
  connections: number;
  target: string;
  url: string;
  rounds: RoundResult[];
  median: { requestsPerSec: number; p50: number; p99: number; cpuMicrosPerRequest: number };
  errors: number;
  /** median req/s divided by the nginx proxy's median req/s at the same concurrency. */
  ratioToNginx: number;
  /** The same for CPU per request (lower is better; nginx = 1). */
  cpuRatioToNginx: number;
}

export function median(values: number[]): number {
  const v = values.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 === 1 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

export function summarizeTarget(connections: number, target: string, url: string, rounds: RoundResult[]): TargetSummary {
  return {
    connections,
    target,
    url,
    rounds,
    median: {
      requestsPerSec: median(rounds.map((r) => r.requestsPerSec)),
      p50: median(rounds.map((r) => r.p50)),
      p99: median(rounds.map((r) => r.p99)),
      cpuMicrosPerRequest: median(rounds.map((r) => r.cpuMicrosPerRequest)),
    },
    errors: rounds.reduce((sum, r) => sum + r.socketErrors + r.non2xx, 0),
    ratioToNginx: Number.NaN,
    cpuRatioToNginx: Number.NaN,
  };
}

/** Fills ratioToNginx for each summary from the nginx row of the same concurrency. */
export function addRatios(summaries: TargetSummary[], nginxName: string): void {
  for (const s of summaries) {
    const ref = summaries.find((r) => r.connections === s.connections && r.target === nginxName);
    if (!ref) continue;
    s.ratioToNginx = s.median.requestsPerSec / ref.median.requestsPerSec;
    s.cpuRatioToNginx = s.median.cpuMicrosPerRequest / ref.median.cpuMicrosPerRequest;
  }
}

export const mb = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MB`;
const num = (v: number, digits = 0): string => (Number.isNaN(v) ? '-' : v.toFixed(digits));
const lat = (v: number): string => (Number.isNaN(v) ? '-' : v < 10 ? v.toFixed(2) : v.toFixed(1));

export function formatThroughput(summaries: TargetSummary[]): string {
  const header = ['c', 'target', 'req/s', 'vs nginx', 'p50 ms', 'p99 ms', 'CPU µs/req', 'CPU vs nginx', 'errors', 'req/s per round'];
  const rows = summaries.map((s) => [
    String(s.connections),
    s.target,
    num(s.median.requestsPerSec),
    Number.isNaN(s.ratioToNginx) ? '-' : `${s.ratioToNginx.toFixed(2)}x`,
    lat(s.median.p50),
    lat(s.median.p99),
    num(s.median.cpuMicrosPerRequest, 1),
    Number.isNaN(s.cpuRatioToNginx) ? '-' : `${s.cpuRatioToNginx.toFixed(2)}x`,
    String(s.errors),
    s.rounds.map((r) => num(r.requestsPerSec)).join(' / '),
  ]);
  return table([header, ...rows]);
}

export function formatIdle(idle: IdleResult): string {
  const perConn = Number.isNaN(idle.bytesPerConnection) ? '-' : `${(idle.bytesPerConnection / 1024).toFixed(1)} KB/conn`;
  const lines = [
    `idle: ${idle.open}/${idle.requested} keep-alive connections open to ${idle.target} ` +
      `(set up in ${(idle.openMs / 1000).toFixed(1)} s, ${idle.failed} failed, ${idle.closedByPeer} closed by the server)`,
    `      RSS ${mb(idle.rssBeforeBytes)} before -> ${mb(idle.rssAfterBytes)} with them open (${perConn}); ` +
      `budget ${mb(idle.budgetBytes)}: ${idle.passed ? 'PASS' : 'FAIL'}` +
      (idle.allOpen ? '' : ' (not every connection stayed open)'),
  ];
  const errors = Object.entries(idle.errors);
  if (errors.length > 0) lines.push(`      errors: ${errors.map(([k, v]) => `${v} x ${k}`).join(', ')}`);
  return lines.join('\n');
}
