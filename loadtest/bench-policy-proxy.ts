// The decision stages' price through the proxy (npm run bench:policy runs it after the decision
// microbenchmark): req/s of an nginx reverse proxy, the cage on its defaults, and the cage with
// API-key auth, a typical BISO bundle (8 rules: authentication, role, regions, purpose, body
// limit, identity kind, a warn rule) and a per-identity rate limit (quota far above the load),
// all in front of the same nginx upstream, in one run with rounds interleaved. Every request
// carries the API key, Cage-Purpose and Cage-Consent headers (nginx and the plain cage ignore
// them). Reports medians and ratios to nginx, and the secured cage's ratio to the plain one.
//
//   node --import tsx loadtest/bench-policy-proxy.ts [--duration 5] [--rounds 3] [--connections 50]

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { hashApiKey } from '../gateway/identity/stage.js';
import { REPO_ROOT, buildCage } from './bench/cage.js';
import { proxyConf, startNginx, upstreamConf } from './bench/nginx.js';
import { assertPortFree, groupCpuMicros, installCleanupHandlers, runBench, spawnManaged, stopManaged, waitForHttp, type Managed } from './bench/procs.js';
import { median } from './bench/report.js';
import { ensureTools } from './bench/tools.js';
import { runWrk } from './bench/wrk.js';

const { values: args } = parseArgs({ options: { duration: { type: 'string', default: '5' }, rounds: { type: 'string', default: '3' }, connections: { type: 'string', default: '50' } } });
const PORTS = { upstream: 18181, nginx: 18182, plain: 18183, secured: 18184 } as const;
const API_KEY = 'ck_bench_0123456789abcdefghijklmnop';
const HEADERS = [`x-api-key: ${API_KEY}`, 'cage-purpose: billing', 'cage-consent: billing'];

const BUNDLE = `name: typical
version: '1'
region_groups: { EU: [DE, FR, NL, IE] }
classify:
  - { id: accounts, routes: [app], class: Confidential, types: [PII] }
rules:
  - { id: authenticated, when: { types: [PII] }, require: { authenticated: true } }
  - { id: service-role, when: { types: [PII] }, require: { roles: [billing, admin] } }
  - { id: eu-callers, when: { types: [PII] }, require: { client_regions: { allow: [EU] } } }
  - { id: eu-upstream, when: { types: [PII] }, require: { upstream_regions: { allow: [EU] } } }
  - { id: purpose, when: { types: [PII] }, require: { purposes: [billing, support] } }
  - { id: body-limit, require: { max_body_bytes: 1048576 } }
  - { id: known-callers, when: { classes: [Confidential] }, require: { identity: [api-key, jwt, did] } }
  - { id: writes-signed, effect: warn, when: { methods: [POST, PUT, DELETE] }, require: { signed: true } }
`;

function log(line: string): void {
  process.stderr.write(`bench-policy-proxy: ${line}\n`);
}

function startCage(dir: string, name: string, port: number, secured: boolean): Managed {
  const dataDir = join(dir, `${name}-data`);
  mkdirSync(dataDir, { recursive: true });
  const bundle = join(dir, 'typical.yaml');
  writeFileSync(bundle, BUNDLE);
  const config = {
    listen: `127.0.0.1:${port}`,
    admin: { enabled: false },
    data_dir: dataDir,
    log: { access: false, level: 'info' },
    routes: [{ name: 'app', upstreams: [`http://127.0.0.1:${PORTS.upstream}`], region: 'DE' }],
    ...(secured
      ? {
          identity: { api_keys: { keys: [{ name: 'billing-svc', sha256: hashApiKey(API_KEY), roles: ['billing'], class: 'internal' }] } },
          regions: { cidrs: { '127.0.0.0/8': 'DE' } },
          policies: { files: [bundle] },
          ratelimit: { limits: [{ name: 'per-caller', by: 'identity', points: 100000000, per: '60s' }] },
        }
      : {}),
  };
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, `${JSON.stringify(config, null, 2)}\n`);
  return spawnManaged(name, 'node', ['bin/cage.js', 'run', '--config', file], { cwd: REPO_ROOT, logFile: join(dir, `${name}.log`), nofile: 4096 });
}

async function main(): Promise<number> {
  installCleanupHandlers();
  buildCage();
  ensureTools({ nginx: 'nginx', wrk: 'wrk' });
  for (const p of Object.values(PORTS)) await assertPortFree(p);
  const dir = mkdtempSync(join(tmpdir(), 'cage-bench-policy-'));
  const procs: Managed[] = [];
  try {
    const upstream = startNginx('upstream', dir, upstreamConf(dir, PORTS.upstream));
    procs.push(upstream);
    await waitForHttp(`http://127.0.0.1:${PORTS.upstream}/`, upstream);
    const nginx = startNginx('nginx-proxy', dir, proxyConf(dir, PORTS.nginx, PORTS.upstream));
    const plain = startCage(dir, 'cage-plain', PORTS.plain, false);
    const secured = startCage(dir, 'cage-secured', PORTS.secured, true);
    procs.push(nginx, plain, secured);
    const targets = [
      { name: 'nginx-proxy', port: PORTS.nginx, proc: nginx },
      { name: 'cage (defaults)', port: PORTS.plain, proc: plain },
      { name: 'cage (API key + policy + rate limit)', port: PORTS.secured, proc: secured },
    ];
    for (const t of targets) {
      const status = await waitForHttp(`http://127.0.0.1:${t.port}/`, t.proc);
      log(`${t.name} up (GET / → ${status})`);
    }
    // The secured cage must actually allow the bench's requests (a 403 would be cheap and wrong).
    const probe = await fetch(`http://127.0.0.1:${PORTS.secured}/probe`, { headers: Object.fromEntries(HEADERS.map((h) => h.split(': ') as [string, string])) });
    if (probe.status !== 200) throw new Error(`the secured cage answered ${probe.status}: ${await probe.text()}`);
    const results = new Map<string, { rps: number[]; p99: number[]; cpu: number[] }>(targets.map((t) => [t.name, { rps: [], p99: [], cpu: [] }]));
    const rounds = Number(args.rounds);
    for (let round = 0; round < rounds; round++) {
      const order = targets.map((_, i) => targets[(i + round) % targets.length]!);
      for (const t of order) {
        await runWrk({ url: `http://127.0.0.1:${t.port}/`, threads: 1, connections: Number(args.connections), durationS: 1, headers: HEADERS }); // warm-up
        const cpu0 = groupCpuMicros(t.proc.pid);
        const r = await runWrk({ url: `http://127.0.0.1:${t.port}/`, threads: 1, connections: Number(args.connections), durationS: Number(args.duration), headers: HEADERS });
        const cpu = groupCpuMicros(t.proc.pid) - cpu0;
        if (r.non2xx > 0 || r.socketErrors > 0) throw new Error(`${t.name}: ${r.non2xx} non-2xx answers, ${r.socketErrors} socket errors`);
        const e = results.get(t.name)!;
        e.rps.push(r.requestsPerSec);
        e.p99.push(r.p99);
        e.cpu.push(cpu / Math.max(1, r.requests));
        log(`round ${round + 1}/${rounds} ${t.name}: ${Math.round(r.requestsPerSec)} req/s, p99 ${r.p99} ms`);
      }
    }
    const nginxRps = median(results.get('nginx-proxy')!.rps);
    const plainRps = median(results.get('cage (defaults)')!.rps);
    console.log(`\nproxy with decision stages, c=${args.connections}, ${rounds} rounds × ${args.duration} s (load before ${loadavg()[0]!.toFixed(2)})`);
    console.log('| target | req/s (median) | vs nginx | p99 ms | CPU µs/req |');
    console.log('| --- | --- | --- | --- | --- |');
    for (const t of targets) {
      const e = results.get(t.name)!;
      const rps = median(e.rps);
      console.log(`| ${t.name} | ${Math.round(rps)} | ${(rps / nginxRps).toFixed(2)}× | ${median(e.p99).toFixed(1)} | ${median(e.cpu).toFixed(1)} |`);
    }
    const securedRps = median(results.get('cage (API key + policy + rate limit)')!.rps);
    console.log(`\nsecured / plain cage: ${(securedRps / plainRps).toFixed(2)}×`);
    return 0;
  } finally {
    for (const p of procs.reverse()) await stopManaged(p);
    rmSync(dir, { recursive: true, force: true });
  }
}

runBench(main);
