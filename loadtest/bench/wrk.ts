// Runs wrk (with --latency) in its own session and parses its report: requests/s, mean and
// 50/75/90/99th percentile latency (ms), request count and errors (socket errors + non-2xx/3xx).

import { spawnManaged } from './procs.js';

export interface WrkResult {
  requestsPerSec: number;
  requests: number;
  /** Latency in ms. */
  latencyAvg: number;
  p50: number;
  p75: number;
  p90: number;
  p99: number;
  socketErrors: number;
  non2xx: number;
}

const UNIT_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

function toMs(value: string, unit: string): number {
  const factor = UNIT_MS[unit];
  if (factor === undefined) throw new Error(`unknown wrk time unit ${unit}`);
  return Number(value) * factor;
}

/** Parses the text wrk prints with --latency. */
export function parseWrkOutput(text: string): WrkResult {
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(text);
  const total = /(\d+) requests in/.exec(text);
  if (!rps || !total) throw new Error(`unexpected wrk output:\n${text}`);
  const avg = /Latency\s+([\d.]+)(us|ms|s|m|h)/.exec(text);
  const pct: Record<string, number> = {};
  for (const m of text.matchAll(/^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m|h)\s*$/gm)) {
    pct[m[1]!] = toMs(m[2]!, m[3]!);
  }
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(text);
  return {
    requestsPerSec: Number(rps[1]),
    requests: Number(total[1]),
    latencyAvg: avg ? toMs(avg[1]!, avg[2]!) : Number.NaN,
    p50: pct['50'] ?? Number.NaN,
    p75: pct['75'] ?? Number.NaN,
    p90: pct['90'] ?? Number.NaN,
    p99: pct['99'] ?? Number.NaN,
    socketErrors: sock ? sock.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0,
    non2xx: non2xx ? Number(non2xx[1]) : 0,
  };
}

export interface WrkOptions {
  url: string;
  threads: number;
  connections: number;
  durationS: number;
  /** Extra request headers, `name: value`. */
  headers?: string[];
}

/** Runs one wrk measurement and returns the parsed result. */
export async function runWrk(options: WrkOptions): Promise<WrkResult> {
  const args = [
    `-t${options.threads}`,
    `-c${Math.max(options.connections, options.threads)}`,
    `-d${options.durationS}s`,
    '--timeout',
    '5s',
    '--latency',
    ...(options.headers ?? []).flatMap((h) => ['-H', h]),
    options.url,
  ];
  const proc = spawnManaged('wrk', 'wrk', args, { nofile: options.connections + 100 });
  let output = '';
  proc.child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  proc.child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const closed = new Promise<void>((resolve) => proc.child.once('close', () => resolve()));
  const code = await proc.exited;
  await closed; // stdout fully read
  if (code !== 0) throw new Error(`wrk ${args.join(' ')} exited with ${code}:\n${output}`);
  return parseWrkOutput(output);
}
