// Anonymous membership benchmark (npm run bench:zk): what a Groth16 membership proof costs the
// member (proving) and the cage (verification), and how much verification the worker pool gets
// out of the machine against verifying on the event loop.
//
//   npm run bench:zk -- [--proofs 5] [--rounds 3] [--ms 2000] [--concurrency 16] [--json out.json]
//
// Measured (real artifacts from circuits/build; run `npm run build:circuits` first):
//   prove     --proofs per-request proofs by one member of a 1,000-member depth-20 group, one after
//             another on a warm Prover: median wall ms and CPU ms per proof (all threads: snarkjs
//             proves on its multi-threaded curve)
//   verify    ZkVerifier.verifyRequestProof on one header (decode, checks, pairing), closed loop
//             with --concurrency in flight, --ms per window, --rounds windows interleaved:
//               baseline   snarkjs.groth16.verify (its default multi-threaded curve), sequential
//               inline     pool size 0: the single-threaded curve on the event loop
//               pool-1     1 worker thread
//               pool-2     2 worker threads
//             verifications/s, CPU µs per verification (all threads), and the longest stall of
//             the event loop in the window (a 1 ms interval timer's longest gap: the inline path
//             starves the loop; the pool must not)
// Medians of the rounds, with ratios to inline.
//
// proxy     (PROXY SECTION, `proxyBench` below) req/s through a cage on a `require_zk` route in
//           both modes (per-request proofs; a session = one proof, then RFC 9421 signatures)
//           against a route with API-key auth, with the cage's CPU per request:
//   --proxy-rounds 3 --proxy-seconds 5 --proxy-concurrency 16 --zk-proofs 64 [--skip-proxy]

import { createHash, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import * as snarkjs from 'snarkjs';
import { artifactPaths } from '../circuits/artifacts.js';
import { contentDigestOf, epochAt, requestSignal, scopeToField } from '../circuits/field.js';
import { readVerificationKey } from '../circuits/groth16.js';
import { Group } from '../circuits/group.js';
import { decodeZkHeader } from '../circuits/header.js';
import { createIdentity, Prover, terminateSnarkjsCurve } from '../circuits/prover.js';
import { ZkVerifier } from '../circuits/verifier.js';
import { median } from './bench/report.js';
import { table } from './lib/summary.js';
import { Pool, request, type Dispatcher } from 'undici';
import { signRequest } from '../client/sign.js';
import { openSession } from '../client/zk.js';
import { REPO_ROOT } from './bench/cage.js';
import { startNginx, upstreamConf } from './bench/nginx.js';
import { assertPortFree, groupCpuMicros, installCleanupHandlers, spawnManaged, stopManaged, waitForHttp, type Managed } from './bench/procs.js';

const { values: args } = parseArgs({
  options: {
    proofs: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '3' },
    ms: { type: 'string', default: '2000' },
    concurrency: { type: 'string', default: '16' },
    json: { type: 'string' },
    // PROXY SECTION options (see proxyBench)
    'proxy-rounds': { type: 'string', default: '3' },
    'proxy-seconds': { type: 'string', default: '5' },
    'proxy-concurrency': { type: 'string', default: '16' },
    'zk-proofs': { type: 'string', default: '64' },
    'skip-proxy': { type: 'boolean', default: false },
  },
});
const PROOFS = Number(args.proofs);
const ROUNDS = Number(args.rounds);
const MS = Number(args.ms);
const CONCURRENCY = Number(args.concurrency);

const SCOPE = 'bench';
const EPOCH = 1;

interface Window {
  perSec: number;
  cpuUsPer: number;
  maxLoopDelayMs: number;
}

/** Runs `op` with `concurrency` in flight until `ms` passed. */
async function closedLoop(op: () => Promise<unknown>, concurrency: number, ms: number): Promise<Window> {
  for (let i = 0; i < 4; i++) await op(); // warm-up
  // A 1 ms interval timer: the longest gap between its ticks (and from the last tick to the end)
  // is the longest the event loop could not run timers (monitorEventLoopDelay records nothing
  // when the loop never reaches its timer at all, as with back-to-back inline verifications).
  let last = performance.now();
  let maxGap = 0;
  const probe = setInterval(() => {
    const t = performance.now();
    maxGap = Math.max(maxGap, t - last);
    last = t;
  }, 1);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let n = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() - t0 < ms) {
        await op();
        n++;
      }
    }),
  );
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  clearInterval(probe);
  maxGap = Math.max(maxGap, performance.now() - last);
  return { perSec: (n / wall) * 1000, cpuUsPer: (cpu.user + cpu.system) / n, maxLoopDelayMs: maxGap };
}

async function main(): Promise<void> {
  console.log(`bench-zk: node ${process.version}, load ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  // ---- the group and the member ----------------------------------------------------------------
  const member = await createIdentity();
  const group = await Group.create('bench');
  const others = await Promise.all(Array.from({ length: 999 }, () => createIdentity()));
  group.addMany([...others.slice(0, 500).map((i) => i.commitment), member.commitment, ...others.slice(500).map((i) => i.commitment)]);
  const request = { method: 'POST', target: '/v1/items', contentDigest: contentDigestOf('{"a":1}'), timestamp: Math.floor(Date.now() / 1000) };

  // ---- proving ---------------------------------------------------------------------------------
  const prover = await Prover.create();
  let header = await prover.proveRequest({ identity: member, group, scope: SCOPE, epoch: EPOCH }, request); // warm-up
  const proveWall: number[] = [];
  const proveCpu: number[] = [];
  for (let i = 0; i < PROOFS; i++) {
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    header = await prover.proveRequest({ identity: member, group, scope: SCOPE, epoch: EPOCH }, request);
    proveWall.push(performance.now() - t0);
    const cpu = process.cpuUsage(cpu0);
    proveCpu.push((cpu.user + cpu.system) / 1000);
  }
  await prover.close();
  console.log(`\nprove (depth ${20}, ${group.size} members, ${PROOFS} proofs): median ${median(proveWall).toFixed(0)} ms wall, ${median(proveCpu).toFixed(0)} ms CPU per proof`);

  // ---- verification ----------------------------------------------------------------------------
  const facts = { method: request.method, target: request.target, contentDigest: request.contentDigest, now: request.timestamp * 1000 };
  const ctx = { scope: SCOPE, epoch: EPOCH, groups: () => group };
  const verifiers = {
    inline: await ZkVerifier.create({ pool: { size: 0, maxQueue: 1024 } }),
    'pool-1': await ZkVerifier.create({ pool: { size: 1, maxQueue: 1024 } }),
    'pool-2': await ZkVerifier.create({ pool: { size: 2, maxQueue: 1024 } }),
  };
  const h = decodeZkHeader(header);
  const vk = readVerificationKey(artifactPaths().verificationKey);
  const publicSignals = [h.root, h.nullifier, requestSignal(request), scopeToField(SCOPE), BigInt(EPOCH)].map(String);
  const snarkProof = {
    pi_a: [...h.proof.a.map(String), '1'], pi_b: [...h.proof.b.map((p) => p.map(String)), ['1', '0']], pi_c: [...h.proof.c.map(String), '1'], protocol: 'groth16', curve: 'bn128',
  };
  const ops: Record<string, { op: () => Promise<unknown>; concurrency: number }> = {
    baseline: {
      op: async () => {
        if (!(await snarkjs.groth16.verify(vk, publicSignals, snarkProof))) throw new Error('baseline: the proof does not verify');
      },
      concurrency: 1,
    },
  };
  for (const [name, v] of Object.entries(verifiers)) ops[name] = { op: () => v.verifyRequestProof(header, facts, ctx), concurrency: CONCURRENCY };
  const windows: Record<string, Window[]> = Object.fromEntries(Object.keys(ops).map((k) => [k, []]));
  for (let round = 0; round < ROUNDS; round++) {
    const names = Object.keys(ops);
    if (round % 2 === 1) names.reverse();
    for (const name of names) windows[name]!.push(await closedLoop(ops[name]!.op, ops[name]!.concurrency, MS));
    process.stdout.write(`  round ${round + 1}: ${names.map((n) => `${n} ${windows[n]!.at(-1)!.perSec.toFixed(0)}/s`).join(', ')}\n`);
  }
  await Promise.all(Object.values(verifiers).map((v) => v.close()));
  await terminateSnarkjsCurve();

  const inlineRate = median(windows.inline!.map((w) => w.perSec));
  const rows = [['verify', 'in flight', 'verif/s', 'CPU µs/verif', 'max loop stall ms', '× inline']];
  const report: Record<string, unknown> = {};
  for (const [name, ws] of Object.entries(windows)) {
    const r = { perSec: median(ws.map((w) => w.perSec)), cpuUsPer: median(ws.map((w) => w.cpuUsPer)), maxLoopDelayMs: median(ws.map((w) => w.maxLoopDelayMs)) };
    report[name] = r;
    rows.push([name, String(ops[name]!.concurrency), r.perSec.toFixed(0), r.cpuUsPer.toFixed(0), r.maxLoopDelayMs.toFixed(1), (r.perSec / inlineRate).toFixed(2)]);
  }
  console.log(`\nverification, medians of ${ROUNDS} rounds × ${MS} ms:\n${table(rows)}`);

  const proxy = await proxyBench();
  if (args.json) {
    writeFileSync(args.json, `${JSON.stringify({ node: process.version, prove: { proofs: PROOFS, wallMs: median(proveWall), cpuMs: median(proveCpu) }, verify: report, proxy }, null, 2)}\n`);
  }
}

// ==== PROXY SECTION (gateway integration) ========================================================
// req/s through a cage process (cli/main.ts `run` under tsx, its own session) in front of an nginx
// upstream (1 KiB answers), on one route each:
//   api-key      GET /key/…   an API key required by a BISO policy rule (the baseline)
//   did-signature GET /key/s  the same route, authenticated by an RFC 9421 signature of a plain
//                             did:key instead: what an Ed25519 signature costs without ZK
//   zk-session   GET /zk/s    a `require_zk` route, session mode: one session proof opened the
//                             session; every request carries a fresh RFC 9421 signature by the
//                             session key (signed by the driver, client/zk.ts ZkSession.sign)
//   zk-request   GET /zk/r/i  the same route, a fresh per-request proof per request
// Per-request proofs cannot be reused (ZK_REPLAY) and cost the client ~1-2 s each, so
// --zk-proofs of them are made before the rounds (zk.window is 1h in the bench config) and the
// zk-request window lasts until all are sent; each round starts a fresh cage (an empty nullifier
// store) and re-creates the same group (same members, same root), so the same proofs serve every
// round. The other two windows last --proxy-seconds. Closed loop, --proxy-concurrency keep-alive
// connections (undici) from this process; the cage's CPU (every thread, /proc) per request.
// Targets alternate order by round; medians of --proxy-rounds rounds, ratios to api-key.

const PROXY_PORTS = { upstream: 18131, cage: 18132, admin: 18133 } as const;
const BENCH_API_KEY = 'bench-api-key-0123456789abcdef';
const BENCH_TOKEN = 'bench-admin-token-0123456789abcdef';
const ZK_EPOCH_S = 86_400;

interface ProxyWindow {
  requests: number;
  errors: number;
  perSec: number;
  cageCpuUsPer: number;
}

async function proxyWindow(pool: Pool, cagePid: number, next: () => Dispatcher.RequestOptions | undefined, concurrency: number): Promise<ProxyWindow> {
  let requests = 0;
  let errors = 0;
  const cpu0 = groupCpuMicros(cagePid);
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let opts = next(); opts !== undefined; opts = next()) {
        try {
          const res = await pool.request(opts);
          await res.body.dump();
          if (res.statusCode === 200) requests++;
          else errors++;
        } catch {
          errors++;
        }
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const cpu = groupCpuMicros(cagePid) - cpu0;
  return { requests, errors, perSec: requests / seconds, cageCpuUsPer: requests > 0 ? cpu / requests : Number.NaN };
}

function proxyConfig(dataDir: string, policyFile: string): string {
  // JSON is YAML.
  return JSON.stringify({
    listen: `127.0.0.1:${PROXY_PORTS.cage}`,
    admin: { listen: `127.0.0.1:${PROXY_PORTS.admin}`, token: BENCH_TOKEN },
    data_dir: dataDir,
    log: { level: 'warn', access: false },
    identity: { api_keys: { keys: [{ name: 'bench', sha256: createHash('sha256').update(BENCH_API_KEY).digest('hex') }] } },
    policies: { files: [policyFile] },
    zk: { enabled: true, workers: 2, max_queue: 1024, window: '1h', epoch: `${ZK_EPOCH_S}s` },
    routes: [
      { name: 'zk', match: { path: '/zk' }, upstreams: [`http://127.0.0.1:${PROXY_PORTS.upstream}`], require_zk: { group: 'bench', scope: 'bench-proxy', mode: 'any', limit: 1_000_000 } },
      { name: 'key', match: { path: '/key' }, upstreams: [`http://127.0.0.1:${PROXY_PORTS.upstream}`] },
    ],
  });
}

const KEY_POLICY = `name: bench-key
version: 1.0.0
rules:
  - id: key-auth
    when: { routes: [key] }
    require: { authenticated: true }
`;

async function startProxyCage(dir: string, round: number, members: readonly bigint[]): Promise<Managed> {
  const dataDir = join(dir, `cage-${round}`);
  const configFile = join(dir, `cage-${round}.yaml`);
  writeFileSync(configFile, proxyConfig(dataDir, join(dir, 'policy.yaml')));
  const script = `import(${JSON.stringify(pathToFileURL(join(REPO_ROOT, 'cli/main.ts')).href)}).then((m) => m.main(['run', '--config', ${JSON.stringify(configFile)}])).then((c) => process.exit(c))`;
  const proc = spawnManaged(`cage-${round}`, 'node', ['--import', 'tsx', '-e', script], { cwd: REPO_ROOT, logFile: join(dir, `cage-${round}.log`) });
  await waitForHttp(`http://127.0.0.1:${PROXY_PORTS.admin}/healthz`, proc);
  const res = await request(`http://127.0.0.1:${PROXY_PORTS.admin}/api/v1/zk/groups`, {
    method: 'POST',
    headers: { authorization: `Bearer ${BENCH_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ id: 'bench', members: members.map(String) }),
  });
  const text = await res.body.text();
  if (res.statusCode !== 201) throw new Error(`creating the bench group failed: ${res.statusCode} ${text}`);
  return proc;
}

async function proxyBench(): Promise<Record<string, unknown> | undefined> {
  if (args['skip-proxy']) return undefined;
  const rounds = Number(args['proxy-rounds']);
  const seconds = Number(args['proxy-seconds']);
  const concurrency = Number(args['proxy-concurrency']);
  const nProofs = Number(args['zk-proofs']);
  installCleanupHandlers();
  const dir = mkdtempSync(join(tmpdir(), 'http-cage-bench-zk-'));
  writeFileSync(join(dir, 'policy.yaml'), KEY_POLICY);
  for (const p of Object.values(PROXY_PORTS)) await assertPortFree(p);
  const nginx = startNginx('upstream', dir, upstreamConf(dir, PROXY_PORTS.upstream));
  try {
    await waitForHttp(`http://127.0.0.1:${PROXY_PORTS.upstream}/`, nginx);
    // the member, its group, and what the client makes before the rounds
    const member = await createIdentity();
    const others = await Promise.all(Array.from({ length: 99 }, () => createIdentity()));
    const members = [member.commitment, ...others.map((o) => o.commitment)];
    const group = await Group.create('bench');
    group.addMany(members);
    const epoch = epochAt(Date.now(), ZK_EPOCH_S);
    const prover = await Prover.create();
    const t0 = performance.now();
    const proofs: string[] = [];
    for (let i = 0; i < nProofs; i++) {
      proofs.push(await prover.proveRequest({ identity: member, group, scope: 'bench-proxy', epoch }, { method: 'GET', target: `/zk/r/${i}`, contentDigest: contentDigestOf(undefined), timestamp: Math.floor(Date.now() / 1000) }));
    }
    const session = await openSession({ identity: member, group, scope: 'bench-proxy', epochSeconds: ZK_EPOCH_S, prover });
    await prover.close();
    await terminateSnarkjsCurve();
    console.log(`\nproxy: ${nProofs} per-request proofs and 1 session proof made in ${((performance.now() - t0) / 1000).toFixed(0)} s`);

    const origin = `http://127.0.0.1:${PROXY_PORTS.cage}`;
    const targets = ['api-key', 'did-signature', 'zk-session', 'zk-request'] as const;
    const plainKey = generateKeyPairSync('ed25519').privateKey;
    const windows: Record<string, ProxyWindow[]> = Object.fromEntries(targets.map((t) => [t, []]));
    for (let round = 0; round < rounds; round++) {
      const cage = await startProxyCage(dir, round, members);
      const pool = new Pool(origin, { connections: concurrency, pipelining: 1 });
      try {
        const open = await pool.request({ path: '/zk/open', method: 'GET', headers: { 'cage-zk-proof': session.header } });
        await open.body.dump();
        if (open.statusCode !== 200) throw new Error(`the session did not open: ${open.statusCode}`);
        const timed = (make: () => Dispatcher.RequestOptions): (() => Dispatcher.RequestOptions | undefined) => {
          const end = performance.now() + seconds * 1000;
          return () => (performance.now() < end ? make() : undefined);
        };
        const order = round % 2 === 0 ? [...targets] : [...targets].reverse();
        for (const t of order) {
          let next: () => Dispatcher.RequestOptions | undefined;
          if (t === 'api-key') next = timed(() => ({ path: '/key/x', method: 'GET', headers: { 'x-api-key': BENCH_API_KEY } }));
          else if (t === 'did-signature') next = timed(() => ({ path: '/key/s', method: 'GET', headers: signRequest({ method: 'GET', url: `${origin}/key/s` }, plainKey).headers }));
          else if (t === 'zk-session') next = timed(() => ({ path: '/zk/s', method: 'GET', headers: session.sign({ method: 'GET', url: `${origin}/zk/s` }) }));
          else {
            let i = 0;
            next = () => (i < proofs.length ? { path: `/zk/r/${i}`, method: 'GET', headers: { 'cage-zk-proof': proofs[i++]! } } : undefined);
          }
          windows[t]!.push(await proxyWindow(pool, cage.pid, next, concurrency));
        }
        process.stdout.write(`  round ${round + 1}: ${order.map((t) => `${t} ${windows[t]!.at(-1)!.perSec.toFixed(0)}/s (${windows[t]!.at(-1)!.errors} errors)`).join(', ')}\n`);
      } finally {
        await pool.close();
        await stopManaged(cage);
      }
    }
    const base = median(windows['api-key']!.map((w) => w.perSec));
    const rows = [['target', 'req/s', 'cage CPU µs/req', 'errors', '× api-key']];
    const report: Record<string, unknown> = { concurrency, seconds, proofs: nProofs, rounds };
    for (const t of targets) {
      const ws = windows[t]!;
      const r = { perSec: median(ws.map((w) => w.perSec)), cageCpuUsPer: median(ws.map((w) => w.cageCpuUsPer)), errors: ws.reduce((a, w) => a + w.errors, 0) };
      report[t] = { ...r, ratioToApiKey: r.perSec / base };
      rows.push([t, r.perSec.toFixed(0), r.cageCpuUsPer.toFixed(0), String(r.errors), (r.perSec / base).toFixed(2)]);
    }
    console.log(`\nproxy (one cage, nginx upstream, ${concurrency} connections; medians of ${rounds} rounds; zk-request = ${nProofs} proofs per round):\n${table(rows)}`);
    return report;
  } finally {
    await stopManaged(nginx);
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
