// Notary benchmark (npm run bench:notary): how long after its exchange is a record covered by a
// published, quorum-cosigned checkpoint, under load?
//
//   npm run bench:notary -- [--duration 20] [--connections 50] [--probe-ms 50]
//                           [--checkpoint-interval 1s] [--checkpoint-records 10000000] [--skip-build]
//
// Processes (each in its own session, all killed on exit or signal), on loopback:
//   127.0.0.1:18201        nginx upstream, fixed 1 KiB body, one worker
//   127.0.0.1:18202/18203  the built cage (`cage run`, admin on 18203), audit async, checkpoints
//                          every --checkpoint-interval (record-count checkpoints off by default)
//   127.0.0.1:18204-18206  three `cage notary serve` processes witnessing its log
//
// Two phases of --duration seconds, each under wrk -t1 -c<connections> through the cage:
//   1. baseline: no notary registered, every checkpoint is published with the log's signature;
//   2. notaries: three notaries registered, quorum 2, a checkpoint is published once two cosigned.
// Meanwhile a probe sends one request every --probe-ms, noting its receipt's index and the time
// it sent it, and polls /log/checkpoint (the published checkpoint, what a verifier fetches) every
// 10 ms; a probe's latency is from its send to the first poll that sees a published checkpoint
// whose size exceeds its index (in phase 2 also checked against the exported tlog-policy: the
// quorum's cosignatures verify). Send time is before the append and the poll period adds up to
// 10 ms, so the figures are upper bounds. Reported: p50/p99/max per phase, the ratio of phase 2
// to the baseline, wrk req/s and p99 in both phases (witnessing is off the request path), and
// the notaries' last add-checkpoint latencies. Goal: p50 < 1.5 s with 1 s checkpoints.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { request, Agent } from 'undici';
import { parsePolicy, verifyCheckpointPolicy, type Policy } from '../audit/policy.js';
import { REPO_ROOT, buildCage } from './bench/cage.js';
import { startNginx, upstreamConf } from './bench/nginx.js';
import { assertPortFree, installCleanupHandlers, spawnManaged, stopManaged, tail, waitForHttp, runBench, type Managed } from './bench/procs.js';
import { ensureTools } from './bench/tools.js';
import { runWrk, type WrkResult } from './bench/wrk.js';

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '20' },
    connections: { type: 'string', default: '50' },
    'probe-ms': { type: 'string', default: '50' },
    'checkpoint-interval': { type: 'string', default: '1s' },
    'checkpoint-records': { type: 'string', default: '10000000' },
    'skip-build': { type: 'boolean', default: false },
  },
});

const PORTS = { upstream: 18201, cage: 18202, admin: 18203, notaries: [18204, 18205, 18206] } as const;
const TOKEN = 'bench-notary-'.padEnd(40, 'x');
const ORIGIN = 'bench.example/notary';
const POLL_MS = 10;
const CAGE_URL = `http://127.0.0.1:${PORTS.cage}`;
const ADMIN_URL = `http://127.0.0.1:${PORTS.admin}`;
const agent = new Agent({ connections: 4, pipelining: 0 });

function log(line: string): void {
  console.error(`[bench:notary] ${line}`);
}

async function admin(method: 'GET' | 'POST' | 'PUT', path: string, body?: unknown): Promise<string> {
  const res = await request(`${ADMIN_URL}${path}`, {
    method,
    dispatcher: agent,
    headers: { authorization: `Bearer ${TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.body.text();
  if (res.statusCode >= 300) throw new Error(`${method} ${path}: ${res.statusCode} ${text.slice(0, 300)}`);
  return text;
}

/** The built CLI (dist/), as users run it. */
function cageArgs(...rest: string[]): string[] {
  return ['bin/cage.js', ...rest];
}

function startCageProcess(dir: string): Managed {
  const config = {
    listen: `127.0.0.1:${PORTS.cage}`,
    admin: { listen: `127.0.0.1:${PORTS.admin}`, token: TOKEN },
    data_dir: join(dir, 'cage-data'),
    log: { level: 'warn', access: false },
    audit: { origin: ORIGIN, checkpoint_interval: args['checkpoint-interval'], checkpoint_records: Number(args['checkpoint-records']) },
    routes: [{ name: 'default', upstreams: [`http://127.0.0.1:${PORTS.upstream}`] }],
  };
  const file = join(dir, 'cage.yaml');
  writeFileSync(file, JSON.stringify(config, null, 2)); // JSON is YAML
  return spawnManaged('cage', 'node', cageArgs('run', '--config', file), { cwd: REPO_ROOT, logFile: join(dir, 'cage.log'), nofile: 4096 });
}

async function startNotary(dir: string, i: number, logKey: string): Promise<{ did: string; url: string; proc: Managed }> {
  const key = join(dir, `notary${i}.key`);
  const out = execFileSync('node', cageArgs('notary', 'init', '--out', key), { cwd: REPO_ROOT, encoding: 'utf8' });
  const did = /^did {3}(\S+)$/m.exec(out)?.[1];
  if (did === undefined) throw new Error(`notary init printed: ${out}`);
  const port = PORTS.notaries[i]!;
  const proc = spawnManaged(`notary${i}`, 'node', cageArgs('notary', 'serve', '--key', key, '--data-dir', join(dir, `notary${i}-data`), '--log', logKey, '--listen', `127.0.0.1:${port}`), {
    cwd: REPO_ROOT,
    logFile: join(dir, `notary${i}.log`),
  });
  const url = `http://127.0.0.1:${port}`;
  await waitForHttp(`${url}/healthz`, proc);
  return { did, url, proc };
}

interface Probe {
  index: number;
  sentAt: number;
  latencyMs?: number;
}

interface PhaseResult {
  name: string;
  wrk: WrkResult;
  probes: Probe[];
  published: number;
  /** Probes sent whose index no published checkpoint covered by the end. */
  uncovered: number;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** Size of a published checkpoint note (its second line); the note is checked against `policy` when given. */
function publishedSize(note: string, policy: Policy | undefined): number {
  if (policy !== undefined) verifyCheckpointPolicy(policy, note); // throws without the quorum's cosignatures
  const size = Number(note.split('\n')[1]);
  if (!Number.isSafeInteger(size)) throw new Error(`unexpected checkpoint: ${note.slice(0, 200)}`);
  return size;
}

/** wrk for `durationS` while the probe measures append → published checkpoint. */
async function phase(name: string, policy: Policy | undefined, cage: Managed): Promise<PhaseResult> {
  const durationS = Number(args.duration);
  const probes: Probe[] = [];
  let published = 0;
  let lastNote = '';
  let stop = false;
  let failure: unknown;

  const poller = (async () => {
    // Runs until every probe is covered (or a grace period after the load ends).
    let graceUntil = Number.POSITIVE_INFINITY;
    while (!(stop && (probes.every((p) => p.latencyMs !== undefined) || Date.now() > graceUntil))) {
      if (stop && graceUntil === Number.POSITIVE_INFINITY) graceUntil = Date.now() + 10_000;
      const res = await request(`${ADMIN_URL}/log/checkpoint`, { dispatcher: agent, headers: { authorization: `Bearer ${TOKEN}` } });
      const note = await res.body.text();
      const now = performance.now();
      if (res.statusCode === 200 && note !== lastNote) {
        lastNote = note;
        const size = publishedSize(note, policy);
        published++;
        for (const p of probes) if (p.latencyMs === undefined && p.index < size) p.latencyMs = now - p.sentAt;
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  })().catch((err: unknown) => {
    failure = err;
  });

  const prober = (async () => {
    const probeMs = Number(args['probe-ms']);
    while (!stop) {
      const sentAt = performance.now();
      const res = await request(`${CAGE_URL}/probe`, { dispatcher: agent });
      await res.body.dump();
      const m = /index=(\d+)$/.exec(String(res.headers['cage-receipt'] ?? ''));
      if (res.statusCode !== 200 || m === null) throw new Error(`probe: ${res.statusCode}, receipt ${String(res.headers['cage-receipt'])}`);
      probes.push({ index: Number(m[1]), sentAt });
      const wait = probeMs - (performance.now() - sentAt);
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
  })().catch((err: unknown) => {
    failure = err;
  });

  const wrk = await runWrk({ url: `${CAGE_URL}/`, threads: 1, connections: Number(args.connections), durationS });
  stop = true;
  await prober;
  await poller;
  if (failure !== undefined) throw failure;
  if (cage.hasExited()) throw new Error(`the cage exited during ${name}\n${tail(cage.logFile)}`);
  return { name, wrk, probes, published, uncovered: probes.filter((p) => p.latencyMs === undefined).length };
}

function summary(r: PhaseResult): { p50: number; p99: number; max: number; line: string } {
  const lat = r.probes.flatMap((p) => (p.latencyMs === undefined ? [] : [p.latencyMs])).sort((a, b) => a - b);
  const p50 = percentile(lat, 50);
  const p99 = percentile(lat, 99);
  const max = lat[lat.length - 1] ?? Number.NaN;
  const s = (ms: number) => `${(ms / 1000).toFixed(3)} s`;
  const line =
    `  ${r.name.padEnd(26)} append -> published: p50 ${s(p50)}  p99 ${s(p99)}  max ${s(max)}  (${lat.length} probes, ${r.uncovered} uncovered, ` +
    `${r.published} checkpoints seen)   wrk ${r.wrk.requestsPerSec.toFixed(0)} req/s, p99 ${r.wrk.p99.toFixed(2)} ms, errors ${r.wrk.socketErrors + r.wrk.non2xx}`;
  return { p50, p99, max, line };
}

async function main(): Promise<number> {
  installCleanupHandlers();
  const loadBefore = loadavg();
  if (!args['skip-build']) buildCage();
  ensureTools({ nginx: 'nginx', wrk: 'wrk' });
  for (const port of [PORTS.upstream, PORTS.cage, PORTS.admin, ...PORTS.notaries]) await assertPortFree(port);
  const dir = mkdtempSync(join(tmpdir(), 'bench-notary-'));
  try {
    const upstream = startNginx('upstream', dir, upstreamConf(dir, PORTS.upstream));
    await waitForHttp(`http://127.0.0.1:${PORTS.upstream}/`, upstream);
    const cage = startCageProcess(dir);
    await waitForHttp(`${CAGE_URL}/`, cage);
    const logKey = (JSON.parse(await admin('GET', '/api/v1/audit')) as { verifier_key: string }).verifier_key;
    log(`cage up; log key ${logKey}`);
    await runWrk({ url: `${CAGE_URL}/`, threads: 1, connections: Number(args.connections), durationS: 2 }); // warm-up

    log(`phase 1: no notaries, ${args.duration} s`);
    const base = await phase('baseline (log signature)', undefined, cage);

    const notaries = await Promise.all([0, 1, 2].map((i) => startNotary(dir, i, logKey)));
    for (const [i, n] of notaries.entries()) await admin('POST', '/api/v1/notaries', { did: n.did, url: n.url, name: `n${i + 1}` });
    await admin('PUT', '/api/v1/notaries/quorum', { quorum: 2 });
    const policy = parsePolicy(await admin('GET', '/api/v1/notaries/policy'));
    // Wait for the first quorum-cosigned checkpoint before measuring.
    for (let i = 0; ; i++) {
      const cp = await request(`${ADMIN_URL}/log/checkpoint`, { dispatcher: agent, headers: { authorization: `Bearer ${TOKEN}` } }).then((r) => r.body.text());
      try {
        publishedSize(cp, policy);
        break;
      } catch (err) {
        if (i > 300) throw new Error(`no quorum-cosigned checkpoint after registering the notaries: ${(err as Error).message}\n${tail(cage.logFile)}`, { cause: err });
        await request(`${CAGE_URL}/warm`, { dispatcher: agent }).then((r) => r.body.dump());
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    log(`phase 2: three notaries, quorum 2, ${args.duration} s`);
    const witnessed = await phase('3 notaries, quorum 2', policy, cage);
    const audit = JSON.parse(await admin('GET', '/api/v1/audit')) as { witnessing: { per_notary: { name: string; last_latency_ms: number; failures: number }[] } };

    const b = summary(base);
    const w = summary(witnessed);
    const out = [
      '',
      '=== bench:notary results ===',
      `checkpoint_interval ${args['checkpoint-interval']}, checkpoint_records ${args['checkpoint-records']}, wrk -t1 -c${args.connections} ${args.duration} s per phase, probe every ${args['probe-ms']} ms, poll every ${POLL_MS} ms:`,
      b.line,
      w.line,
      `  witnessing cost: p50 ${(w.p50 / b.p50).toFixed(2)}x, p99 ${(w.p99 / b.p99).toFixed(2)}x the baseline; throughput ${(witnessed.wrk.requestsPerSec / base.wrk.requestsPerSec).toFixed(2)}x`,
      `  notaries' last add-checkpoint latency: ${audit.witnessing.per_notary.map((n) => `${n.name} ${n.last_latency_ms} ms (failures ${n.failures})`).join(', ')}`,
      `  goal p50 < 1.5 s: ${w.p50 < 1500 ? 'met' : 'NOT met'}`,
      `machine: ${cpus().length} CPUs, load average ${loadBefore.map((l) => l.toFixed(2)).join(' ')} at start`,
    ];
    console.log(out.join('\n'));
    for (const n of notaries) await stopManaged(n.proc);
    await stopManaged(cage);
    await stopManaged(upstream);
    return w.p50 < 1500 && witnessed.uncovered === 0 ? 0 : 1;
  } finally {
    await agent.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

runBench(main);
