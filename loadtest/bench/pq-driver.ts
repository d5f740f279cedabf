// Load driver for bench-pq.ts, run as its own process so its CPU is not counted as the cage's:
// `--concurrency` workers share an undici Pool (one keep-alive connection each) and send requests
// back to back to one URL, for `--warmup` then `--duration` seconds.
//
//   node --import tsx loadtest/bench/pq-driver.ts --url URL --mode pq|plain --keys BASE64
//        [--concurrency 32] [--duration 10] [--warmup 2] [--body 0] [--envelopes 256] [--fresh]
//
// mode plain: GET URL (POST with --body BYTES), as any client would.
// mode pq:    the same request as Binary HTTP, sealed to the cage's key (--keys: its
//             application/ohttp-keys list, fetched once by the parent, i.e. a cached key config)
//             with pq/ohttp encapsulateRequest, POSTed as message/ohttp-req; every answer is opened
//             and its inner status and body length checked, as pqFetch does.
// An X-Wing encapsulation costs the client about 2 ms of CPU, more than the cage spends opening
// it, so by default `--envelopes` distinct envelopes are sealed before the clock starts and sent
// in turn: the cage opens every one afresh (it keeps no per-envelope state unless
// pq.replay_window is set), so its work per request is the same. `--fresh` seals each request
// (then the driver, not the cage, is usually the limit).
//
// Protocol on stdout: `START` when the measured window opens, then `END <json DriverResult>`.

import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { decodeResponse, encodeRequest } from '../../pq/bhttp.js';
import { decodeKeyConfigList, encapsulateRequest, MEDIA_TYPE_OHTTP_REQUEST, MEDIA_TYPE_OHTTP_RESPONSE, type EncapsulatedRequest } from '../../pq/ohttp.js';

export interface DriverResult {
  mode: 'pq' | 'plain';
  requests: number;
  errors: number;
  /** First error seen, for the log. */
  firstError: string;
  seconds: number;
  requestsPerSec: number;
  p50: number;
  p99: number;
  /** The driver's own CPU (user + system) over the window, µs. */
  driverCpuMicros: number;
}

const { values: args } = parseArgs({
  options: {
    url: { type: 'string' },
    mode: { type: 'string', default: 'pq' },
    keys: { type: 'string', default: '' },
    concurrency: { type: 'string', default: '32' },
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '2' },
    body: { type: 'string', default: '0' },
    envelopes: { type: 'string', default: '256' },
    'expect-bytes': { type: 'string', default: '-1' },
    fresh: { type: 'boolean', default: false },
  },
});

const url = new URL(args.url ?? '');
const mode = args.mode === 'plain' ? 'plain' : 'pq';
const concurrency = Number(args.concurrency);
const bodyBytes = Number(args.body);
const expectBytes = Number(args['expect-bytes']);
const body = bodyBytes > 0 ? randomBytes(bodyBytes) : undefined;
const method = body === undefined ? 'GET' : 'POST';
const path = `${url.pathname}${url.search}`;

const pool = new Pool(url.origin, { connections: concurrency, pipelining: 1, keepAliveTimeout: 60_000 });

// ---- the two kinds of request -----------------------------------------------------------------

const config = mode === 'pq' ? decodeKeyConfigList(Buffer.from(args.keys, 'base64'))[0] : undefined;
if (mode === 'pq' && config === undefined) throw new Error('--keys holds no key configuration');
const inner = encodeRequest({
  method,
  scheme: url.protocol.slice(0, -1),
  authority: url.host,
  path,
  headers: body === undefined ? [['date', new Date().toUTCString()]] : [['date', new Date().toUTCString()], ['content-type', 'application/octet-stream']],
  body: body ?? Buffer.alloc(0),
});
const sealed: EncapsulatedRequest[] = [];
if (mode === 'pq' && !args.fresh) for (let i = 0; i < Number(args.envelopes); i++) sealed.push(encapsulateRequest(config!, inner));
let next = 0;

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(what);
}

async function plainRequest(): Promise<void> {
  const res = await pool.request({ path, method, body, headers: body === undefined ? {} : { 'content-type': 'application/octet-stream' } });
  const answer = Buffer.from(await res.body.arrayBuffer());
  check(res.statusCode === 200, `status ${res.statusCode}`);
  check(expectBytes < 0 || answer.length === expectBytes, `body of ${answer.length} bytes`);
}

async function pqRequest(): Promise<void> {
  const envelope = args.fresh ? encapsulateRequest(config!, inner) : sealed[next++ % sealed.length]!;
  const res = await pool.request({ path, method: 'POST', body: envelope.bytes, headers: { 'content-type': MEDIA_TYPE_OHTTP_REQUEST, accept: MEDIA_TYPE_OHTTP_RESPONSE } });
  const answer = Buffer.from(await res.body.arrayBuffer());
  check(res.statusCode === 200 && res.headers['content-type'] === MEDIA_TYPE_OHTTP_RESPONSE, `outer ${res.statusCode} ${String(res.headers['content-type'])}: ${answer.toString('latin1').slice(0, 120)}`);
  const opened = decodeResponse(envelope.decapsulateResponse(answer));
  check(opened.status === 200, `inner status ${opened.status}`);
  check(expectBytes < 0 || opened.body.length === expectBytes, `inner body of ${opened.body.length} bytes`);
}

// ---- the run ------------------------------------------------------------------------------------

const send = mode === 'pq' ? pqRequest : plainRequest;
let measuring = false;
let stopped = false;
let requests = 0;
let errors = 0;
let firstError = '';
const latencies: number[] = [];

async function worker(): Promise<void> {
  while (!stopped) {
    const t0 = performance.now();
    try {
      await send();
      if (measuring) {
        requests++;
        latencies.push(performance.now() - t0);
      }
    } catch (err) {
      if (measuring) errors++;
      firstError ||= err instanceof Error ? err.message : String(err);
    }
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function main(): Promise<void> {
  const workers = Array.from({ length: concurrency }, () => worker());
  await new Promise((r) => setTimeout(r, Number(args.warmup) * 1000));
  process.stdout.write('START\n');
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  measuring = true;
  await new Promise((r) => setTimeout(r, Number(args.duration) * 1000));
  measuring = false;
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  stopped = true;
  latencies.sort((a, b) => a - b);
  const result: DriverResult = {
    mode, requests, errors, firstError, seconds, requestsPerSec: requests / seconds,
    p50: percentile(latencies, 50), p99: percentile(latencies, 99), driverCpuMicros: cpu.user + cpu.system,
  };
  process.stdout.write(`END ${JSON.stringify(result)}\n`);
  await Promise.all(workers);
  await pool.close();
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.stack ?? err.message : err);
  process.exit(1);
});
