// Post-quantum envelope benchmark (npm run bench:pq): how many encapsulated requests per second
// does the cage serve, and what does the envelope cost it per request, against plaintext requests
// to the same route in the same run? Then the library's own numbers (loadtest/bench-pq-lib.ts:
// X-Wing decapsulation with noble alone against the cage's expanded-key fast path).
//
//   npm run bench:pq -- [--duration 10] [--rounds 3] [--warmup 2] [--concurrency 32] [--body 0]
//                       [--audit async|sync|off] [--envelopes 256] [--fresh] [--goal 1500]
//                       [--workers default,0] [--lib-runs 5] [--lib-ms 1000] [--skip-lib]
//                       [--json out.json]
//
// Processes (each in its own session, all killed on exit or signal):
//   127.0.0.1:18111  nginx upstream, fixed 1 KiB body, one worker
//   127.0.0.1:18112+ one cage per --workers entry (the built CLI: `node bin/cage.js run` with a
//                    config equal to `reverse-proxy`'s, audit as --audit, and pq.workers as the
//                    entry: `default` leaves it unset, i.e. one worker thread per CPU; 0 opens
//                    envelopes on the event loop, as before the pool)
//   a load driver per measurement (loadtest/bench/pq-driver.ts), its own process, so its CPU is
//   not the cage's: --concurrency keep-alive connections, requests back to back
// Targets, on the same route:
//   plain  GET / (POST with --body BYTES), through the first cage
//   pq     the same request sealed (X-Wing HPKE, RFC 9458 framing, Binary HTTP inside) with a
//          cached key config, POSTed as message/ohttp-req; every answer opened and checked; once
//          per cage
// Rounds interleave the targets (the order alternates) so machine noise spreads over all; medians
// of rounds are reported, with the pq/plain ratios, and the CPU time the cage process (all its
// threads) spent per request (sturdier than req/s on a shared machine, where the driver may be the
// limit for plain). Only one cage is loaded at a time; the others sit idle. Each window also
// records the CPU the rest of the machine used ("other cores": nginx, and other jobs on a shared
// machine), since the cage can only use what is left: read req/s together with it.
// Exit code 1 when the first cage's median encapsulated req/s is below --goal (0 disables the check).

import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { request } from 'undici';
import { pqFetch } from '../client/pq.js';
import { decodeKeyConfigList, MEDIA_TYPE_OHTTP_KEYS } from '../pq/ohttp.js';
import { buildCage, REPO_ROOT } from './bench/cage.js';
import { BODY_BYTES, startNginx, upstreamConf } from './bench/nginx.js';
import type { DriverResult } from './bench/pq-driver.js';
import { assertPortFree, groupCpuMicros, installCleanupHandlers, spawnManaged, stopManaged, waitForHttp, runBench, type Managed } from './bench/procs.js';
import { median } from './bench/report.js';
import { ensureTools, versionOf } from './bench/tools.js';
import { table } from './lib/summary.js';

const PORTS = { upstream: 18111, firstCage: 18112 } as const;
type Mode = 'pq' | 'plain';

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '2' },
    concurrency: { type: 'string', default: '32' },
    body: { type: 'string', default: '0' },
    audit: { type: 'string', default: 'async' },
    envelopes: { type: 'string', default: '256' },
    fresh: { type: 'boolean', default: false },
    goal: { type: 'string', default: '1500' },
    workers: { type: 'string', default: 'default,0' },
    'lib-runs': { type: 'string', default: '5' },
    'lib-ms': { type: 'string', default: '1000' },
    'skip-lib': { type: 'boolean', default: false },
    json: { type: 'string', default: join(tmpdir(), 'http-cage-bench-pq.json') },
    keep: { type: 'boolean', default: false },
  },
});

const durationS = Number(args.duration);
const rounds = Number(args.rounds);
const goal = Number(args.goal);
if (!['async', 'sync', 'off'].includes(args.audit)) throw new Error(`--audit: expected async, sync or off, got ${args.audit}`);
/** pq.workers per cage; undefined = not set (the default: one per CPU). */
const workerSettings: (number | undefined)[] = args.workers.split(',').map((w) => {
  if (w.trim() === 'default') return undefined;
  const n = Number(w);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--workers: expected a list of "default" or integers >= 0, got ${args.workers}`);
  return n;
});
if (workerSettings.length === 0) throw new Error('--workers: at least one entry');

function log(line: string): void {
  console.error(`[bench:pq] ${line}`);
}

interface Round extends DriverResult {
  round: number;
  /** CPU time of the cage process (every thread) over the driver's measured window, per request (µs). */
  cageCpuMicrosPerRequest: number;
  /** Cores the cage used over the window (1 = one core busy all the time). */
  cageCores: number;
  /** Share of one core the driver used over the window. */
  driverCores: number;
  /** Cores busy with anything else on the machine (other jobs; nginx included) over the window. */
  otherCores: number;
}

/** Busy CPU time of the whole machine so far (µs), from /proc/stat; NaN where there is none. */
function machineBusyMicros(): number {
  try {
    const [, ...fields] = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/);
    const [user, nice, system, , , irq, softirq, steal] = fields.map(Number) as number[];
    return ((user! + nice! + system! + irq! + softirq! + steal!) / machineTicks()) * 1e6;
  } catch {
    return Number.NaN;
  }
}

let ticks = 0;
function machineTicks(): number {
  ticks ||= Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;
  return ticks;
}

/** A cage under test: pq.workers as configured, its own port, data dir and key. */
interface CageUnderTest {
  label: string;
  workers: number | undefined;
  port: number;
  proc: Managed;
  keysB64: string;
}

/** One measured target: a mode through a cage. */
interface Target {
  name: string;
  mode: Mode;
  cage: CageUnderTest;
}

/** One measured window: a driver process; the cage's CPU is read when the window opens and closes. */
async function measure(target: Target, round: number): Promise<Round> {
  const { mode, cage } = target;
  const driverArgs = [
    '--import', 'tsx', 'loadtest/bench/pq-driver.ts', '--url', `http://127.0.0.1:${cage.port}/`, '--mode', mode, '--keys', cage.keysB64,
    '--concurrency', args.concurrency, '--duration', String(durationS), '--warmup', args.warmup, '--body', args.body,
    '--envelopes', args.envelopes, '--expect-bytes', String(BODY_BYTES),
  ];
  if (args.fresh) driverArgs.push('--fresh');
  const driver = spawnManaged(`driver-${mode}`, 'node', driverArgs, { cwd: REPO_ROOT });
  let stderr = '';
  driver.child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  let cpuStart = Number.NaN;
  let cpuEnd = Number.NaN;
  let busyStart = Number.NaN;
  let busyEnd = Number.NaN;
  let result: DriverResult | undefined;
  for await (const line of createInterface({ input: driver.child.stdout! })) {
    if (line === 'START') {
      cpuStart = groupCpuMicros(cage.proc.pid);
      busyStart = machineBusyMicros();
    } else if (line.startsWith('END ')) {
      cpuEnd = groupCpuMicros(cage.proc.pid);
      busyEnd = machineBusyMicros();
      result = JSON.parse(line.slice(4)) as DriverResult;
    }
  }
  const code = await driver.exited;
  if (result === undefined || code !== 0) throw new Error(`driver ${target.name} failed (exit ${code}): ${stderr}`);
  const cageCpu = cpuEnd - cpuStart;
  const window = result.seconds * 1e6;
  return {
    ...result,
    round,
    cageCpuMicrosPerRequest: result.requests > 0 ? cageCpu / result.requests : Number.NaN,
    cageCores: cageCpu / window,
    driverCores: result.driverCpuMicros / window,
    otherCores: Math.max(0, (busyEnd - busyStart - cageCpu - result.driverCpuMicros) / window),
  };
}

interface Summary {
  target: string;
  mode: Mode;
  /** pq.workers of the cage; null = the default (one per CPU). */
  workers: number | null;
  rounds: Round[];
  requestsPerSec: number;
  p50: number;
  p99: number;
  cageCpuMicrosPerRequest: number;
  cageCores: number;
  driverCores: number;
  otherCores: number;
  errors: number;
}

function summarize(target: Target, list: Round[]): Summary {
  return {
    target: target.name,
    mode: target.mode,
    workers: target.cage.workers ?? null,
    rounds: list,
    requestsPerSec: median(list.map((r) => r.requestsPerSec)),
    p50: median(list.map((r) => r.p50)),
    p99: median(list.map((r) => r.p99)),
    cageCpuMicrosPerRequest: median(list.map((r) => r.cageCpuMicrosPerRequest)),
    cageCores: median(list.map((r) => r.cageCores)),
    driverCores: median(list.map((r) => r.driverCores)),
    otherCores: median(list.map((r) => r.otherCores)),
    errors: list.reduce((sum, r) => sum + r.errors, 0),
  };
}

/** The library benchmark, in its own process once the cage is stopped; its output is passed through. */
async function libBench(): Promise<number | string> {
  const proc = spawnManaged('bench-pq-lib', 'node', ['--import', 'tsx', 'loadtest/bench-pq-lib.ts', '--runs', args['lib-runs'], '--ms', args['lib-ms']], { cwd: REPO_ROOT });
  proc.child.stdout?.pipe(process.stdout, { end: false });
  proc.child.stderr?.pipe(process.stderr, { end: false });
  return proc.exited;
}

/** The cage command: the built CLI with a config file equal to `reverse-proxy`'s flags, plus pq.workers. */
function cageCommand(configFile: string): string[] {
  return ['node', 'bin/cage.js', 'run', '--config', configFile];
}

/** Starts one cage (the built CLI, `run` with a config equal to `reverse-proxy --no-access-log --no-admin`). */
function startCageWith(dir: string, name: string, port: number, workers: number | undefined): Managed {
  const dataDir = join(dir, `${name}-data`);
  mkdirSync(dataDir, { recursive: true });
  const config = {
    listen: `127.0.0.1:${port}`,
    admin: { enabled: false },
    data_dir: dataDir,
    log: { access: false, level: 'info' },
    audit: { enabled: args.audit !== 'off', default_mode: args.audit },
    ...(workers === undefined ? {} : { pq: { workers } }),
    routes: [{ name: 'default', upstreams: [`http://127.0.0.1:${PORTS.upstream}`], load_balancing: 'round_robin' }],
  };
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, `${JSON.stringify(config, null, 2)}\n`); // JSON is YAML
  const [command, ...rest] = cageCommand(file);
  return spawnManaged(name, command!, rest, { cwd: REPO_ROOT, logFile: join(dir, `${name}.log`), nofile: 4096 });
}

async function main(): Promise<number> {
  installCleanupHandlers();
  buildCage();
  ensureTools({ nginx: 'nginx' });
  const cagePorts = workerSettings.map((_, i) => PORTS.firstCage + i);
  for (const port of [PORTS.upstream, ...cagePorts]) await assertPortFree(port);
  const dir = mkdtempSync(join(tmpdir(), 'cage-bench-pq-'));
  log(`work dir ${dir}`);
  const startedAt = new Date().toISOString();
  const loadBefore = loadavg();

  const upstream = startNginx('upstream', dir, upstreamConf(dir, PORTS.upstream));
  await waitForHttp(`http://127.0.0.1:${PORTS.upstream}/`, upstream);
  const cages: CageUnderTest[] = [];
  for (const [i, workers] of workerSettings.entries()) {
    const label = workers === undefined ? `workers default (${cpus().length})` : `workers ${workers}`;
    const port = cagePorts[i]!;
    const proc = startCageWith(dir, `cage-${workers ?? 'default'}`, port, workers);
    await waitForHttp(`http://127.0.0.1:${port}/`, proc);
    // The key config, fetched once: what a client caches.
    const keysRes = await request(`http://127.0.0.1:${port}/.well-known/ohttp-keys`);
    const keys = Buffer.from(await keysRes.body.arrayBuffer());
    if (keysRes.statusCode !== 200 || keysRes.headers['content-type'] !== MEDIA_TYPE_OHTTP_KEYS) throw new Error(`key config: ${keysRes.statusCode} ${String(keysRes.headers['content-type'])}`);
    const [config] = decodeKeyConfigList(keys);
    log(`cage ${label} on :${port}: key ${config!.keyId}, KEM 0x${config!.kemId.toString(16)}; audit ${args.audit}`);
    // One real pqFetch first: the path works end to end before anything is timed.
    const check = await pqFetch(`http://127.0.0.1:${port}/`, { pq: { keyConfigs: keys } });
    const checkBody = await check.arrayBuffer();
    if (check.status !== 200 || checkBody.byteLength !== BODY_BYTES) throw new Error(`pqFetch check (${label}): ${check.status}, ${checkBody.byteLength} bytes`);
    cages.push({ label, workers, port, proc, keysB64: keys.toString('base64') });
  }

  const targets: Target[] = [
    ...cages.map((cage) => ({ name: `pq, ${cage.label}`, mode: 'pq' as const, cage })),
    { name: 'plain', mode: 'plain', cage: cages[0]! },
  ];
  const perTarget = new Map<Target, Round[]>(targets.map((t) => [t, []]));
  for (let round = 1; round <= rounds; round++) {
    const order = round % 2 === 1 ? targets : [...targets].reverse();
    for (const target of order) {
      const r = await measure(target, round);
      perTarget.get(target)!.push(r);
      log(
        `round ${round}/${rounds} ${target.name.padEnd(22)}: ${r.requestsPerSec.toFixed(0)} req/s, p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms, ` +
          `cage ${r.cageCpuMicrosPerRequest.toFixed(0)} µs CPU/req (${(r.cageCores * 100).toFixed(0)}% of a core), driver ${(r.driverCores * 100).toFixed(0)}% of a core, ` +
          `everything else ${(r.otherCores * 100).toFixed(0)}% of a core` +
          (r.errors > 0 ? `, ${r.errors} errors (first: ${r.firstError})` : ''),
      );
    }
  }
  for (const cage of cages) await stopManaged(cage.proc);
  await stopManaged(upstream);
  const loadAfter = loadavg();

  const summaries = targets.map((t) => summarize(t, perTarget.get(t)!));
  const plain = summaries[summaries.length - 1]!;
  const pqs = summaries.slice(0, -1);
  const fmt = (v: number, d = 0): string => (Number.isNaN(v) ? '-' : v.toFixed(d));
  const rows = [['target', 'req/s', 'vs plain', 'p50 ms', 'p99 ms', 'cage CPU µs/req', 'cage cores', 'driver cores', 'other cores', 'errors', 'req/s per round']];
  for (const s of summaries) {
    rows.push([
      s.target, fmt(s.requestsPerSec), `${fmt(s.requestsPerSec / plain.requestsPerSec, 3)}x`, fmt(s.p50, 2), fmt(s.p99, 2), fmt(s.cageCpuMicrosPerRequest),
      fmt(s.cageCores, 2), fmt(s.driverCores, 2), fmt(s.otherCores, 2), String(s.errors), s.rounds.map((r) => fmt(r.requestsPerSec)).join(' / '),
    ]);
  }
  const first = pqs[0]!;
  const met = goal <= 0 || first.requestsPerSec >= goal;
  const out = [
    '',
    '=== bench:pq results ===',
    `${rounds} rounds x ${durationS}s per target (medians), ${args.warmup}s warm-up, ${args.concurrency} connections, ` +
      `${args.fresh ? 'sealed per request' : `${args.envelopes} pre-sealed envelopes`}, ${Number(args.body) > 0 ? `POST ${args.body} B` : 'GET'}, ${BODY_BYTES} B answers, audit ${args.audit}`,
    table(rows),
    '',
    ...pqs.map((s) =>
      `${s.target} / plain: ${(s.requestsPerSec / plain.requestsPerSec).toFixed(3)}x the requests per second, ${(s.cageCpuMicrosPerRequest / plain.cageCpuMicrosPerRequest).toFixed(2)}x the cage CPU per request ` +
        `(+${fmt(s.cageCpuMicrosPerRequest - plain.cageCpuMicrosPerRequest)} µs per request for the envelope), on ${fmt(s.cageCores, 2)} cores`),
    ...(pqs.length > 1 ? [`${first.target} / ${pqs[1]!.target}: ${(first.requestsPerSec / pqs[1]!.requestsPerSec).toFixed(2)}x the encapsulated requests per second`] : []),
    `goal >= ${goal} encapsulated req/s (${first.target}): ${goal <= 0 ? 'not checked' : met ? 'MET' : 'NOT MET'} (${fmt(first.requestsPerSec)})`,
    `other cores: CPU the rest of the machine used during the window (nginx, and other jobs on a shared machine); the cage can only use what is left of ${cpus().length} cores`,
    `machine: ${cpus().length} CPUs, load average ${loadBefore.map((l) => l.toFixed(2)).join(' ')} at start, ${loadAfter.map((l) => l.toFixed(2)).join(' ')} at the end of the cage rounds, node ${process.version}`,
  ];
  console.log(out.join('\n'));

  let lib: number | string | undefined;
  if (!args['skip-lib']) {
    console.log('\n=== bench-pq-lib (library, one core): X-Wing decapsulation, noble only vs the fast path ===');
    lib = await libBench();
    if (lib !== 0) log(`bench-pq-lib exited ${lib}`);
  }

  writeFileSync(
    args.json,
    `${JSON.stringify(
      {
        startedAt,
        finishedAt: new Date().toISOString(),
        machine: { cpus: cpus().length, loadavgAtStart: loadBefore, loadavgAfterCages: loadAfter, loadavgAtEnd: loadavg(), node: process.version },
        tools: { nginx: versionOf('nginx', ['-v']) },
        config: { durationS, rounds, warmupS: Number(args.warmup), concurrency: Number(args.concurrency), body: Number(args.body), audit: args.audit, envelopes: Number(args.envelopes), fresh: args.fresh, workers: workerSettings.map((w) => w ?? 'default'), cageCommand: cageCommand('{config}') },
        /** The first cage's encapsulated target (pq.workers as the first --workers entry). */
        pq: first,
        /** Every cage's encapsulated target. */
        pqByCage: pqs,
        plain,
        ratio: first.requestsPerSec / plain.requestsPerSec,
        cpuRatio: first.cageCpuMicrosPerRequest / plain.cageCpuMicrosPerRequest,
        goal: { requestsPerSec: goal, met },
        libExit: lib ?? null,
      },
      null,
      2,
    )}\n`,
  );
  console.log(`results written to ${args.json}`);
  if (args.keep || !met) log(`logs kept in ${dir}`);
  else rmSync(dir, { recursive: true, force: true });
  return met && (lib === undefined || lib === 0) ? 0 : 1;
}

runBench(main);
