// Audit benchmark (npm run bench:audit): what recording every exchange costs.
//
//   npm run bench:audit -- [--appends 300000] [--runs 5] [--proof-records 10000000]
//                          [--duration 5] [--rounds 3] [--connections 50] [--skip-proxy] [--skip-proofs]
//
// 1. Appends: encode a ~1 KiB split-origin record of an exchange and append it to an AuditLog
//    (leaf hashing, tiles, WAL writes, group-committed fsync and checkpoints included), on one
//    core, in process: records/s, median of --runs runs. Then the same with every record awaited
//    durable (what `audit: sync` does), 256 in flight.
// 2. Proofs: a log of --proof-records entries (small entries: the proof cost depends on the tree
//    size, not the entry size), then the time to build an inclusion proof file for random indices
//    and a consistency proof, served from the tiles on disk (medians).
// 3. The proxy: wrk against an nginx reverse proxy and three cages in front of the same nginx
//    upstream, with audit off, async and sync, rounds interleaved in one run; ratios to nginx and
//    to the audit-off cage.

import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { AuditLog } from '../audit/io/audit-log.js';
import { encodeRecord, type AuditRecord } from '../audit/record.js';
import { buildCage, startCage } from './bench/cage.js';
import { proxyConf, startNginx, upstreamConf } from './bench/nginx.js';
import { assertPortFree, groupCpuMicros, installCleanupHandlers, stopManaged, waitForHttp, runBench, type Managed } from './bench/procs.js';
import { median } from './bench/report.js';
import { ensureTools } from './bench/tools.js';
import { runWrk } from './bench/wrk.js';

const { values: args } = parseArgs({
  options: {
    appends: { type: 'string', default: '300000' },
    runs: { type: 'string', default: '5' },
    'proof-records': { type: 'string', default: '10000000' },
    proofs: { type: 'string', default: '2000' },
    duration: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '3' },
    connections: { type: 'string', default: '50' },
    'skip-proxy': { type: 'boolean', default: false },
    'skip-proofs': { type: 'boolean', default: false },
  },
});

const PORTS = { upstream: 18091, nginx: 18092, off: 18093, async: 18094, sync: 18095 } as const;

function log(line: string): void {
  console.error(`[bench:audit] ${line}`);
}

const BASE: AuditRecord = {
  requestId: 'bench-000000000000',
  time: 1_790_000_000_000,
  route: 'default',
  method: 'GET',
  host: 'app.example.com',
  path: '/',
  clientAddress: '203.0.113.7',
  requestHeadersDigest: Buffer.alloc(32, 1),
  requestBodyDigest: Buffer.alloc(32, 2),
  requestBodyLength: 0,
  status: 200,
  responseHeadersDigest: Buffer.alloc(32, 3),
  responseBodyDigest: Buffer.alloc(32, 4),
  responseBodyLength: 1024,
  durationMicros: 850,
};
/** The path that pads BASE's record to 1 KiB (the size of a typical exchange's record with headers). */
const PADDED_PATH = `/${'p'.repeat(Math.max(0, 1024 - encodeRecord(BASE).length - 2))}`;

/** Encodes the record of exchange `i`: one encodeRecord per record, as the cage does. */
function sampleRecord(i: number): Uint8Array {
  return encodeRecord({ ...BASE, requestId: `bench-${i.toString(16).padStart(12, '0')}`, time: BASE.time + i, path: PADDED_PATH });
}

async function appendRun(n: number, sync: boolean): Promise<{ perSec: number; bytes: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-audit-'));
  const auditLog = await AuditLog.open({ dir, origin: 'bench.example/log', checkpointIntervalMs: 1000 });
  const size = sampleRecord(0).length;
  const t0 = process.hrtime.bigint();
  if (!sync) {
    for (let i = 0; i < n; i++) {
      auditLog.append(sampleRecord(i));
      // Yield now and then so the store's batched hashing and WAL writes run, as they do
      // between requests in the cage.
      if ((i & 4095) === 4095) await new Promise((r) => setImmediate(r));
    }
    await auditLog.durable(n - 1);
  } else {
    const inFlight = 256;
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < n) {
        const i = next++;
        await auditLog.durable(auditLog.append(sampleRecord(i)));
      }
    };
    await Promise.all(Array.from({ length: inFlight }, worker));
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  await auditLog.close();
  rmSync(dir, { recursive: true, force: true });
  return { perSec: n / seconds, bytes: size };
}

async function appends(): Promise<string[]> {
  const n = Number(args.appends);
  const runs = Number(args.runs);
  const out: string[] = [];
  for (const sync of [false, true]) {
    const rates: number[] = [];
    let bytes = 0;
    const count = sync ? Math.max(1000, Math.floor(n / 5)) : n;
    for (let r = 0; r < runs; r++) {
      const res = await appendRun(count, sync);
      rates.push(res.perSec);
      bytes = res.bytes;
      log(`${sync ? 'sync ' : 'async'} run ${r + 1}/${runs}: ${count} records of ${bytes} bytes, ${res.perSec.toFixed(0)}/s`);
    }
    out.push(
      `appends (${sync ? 'each awaited durable, 256 in flight' : 'async, durable at the end'}): median ${median(rates).toFixed(0)} records/s ` +
        `of ${bytes}-byte records (runs: ${rates.map((x) => x.toFixed(0)).join(' / ')})`,
    );
  }
  return out;
}

async function proofs(): Promise<string[]> {
  const n = Number(args['proof-records']);
  const dir = mkdtempSync(join(tmpdir(), 'bench-audit-proofs-'));
  try {
    const auditLog = await AuditLog.open({ dir, origin: 'bench.example/big', checkpointIntervalMs: 3_600_000, checkpointRecords: 10_000_000_000 });
    const entry = Buffer.alloc(16);
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) {
      entry.writeUInt32BE(i, 0);
      auditLog.append(entry);
      if ((i & 65535) === 65535) {
        await new Promise((r) => setImmediate(r));
        if ((i & 0xfffff) === 0xfffff) log(`building: ${i + 1}/${n}`);
      }
    }
    await auditLog.durable(n - 1);
    await auditLog.checkpoint();
    const buildS = Number(process.hrtime.bigint() - t0) / 1e9;
    const times: number[] = [];
    const count = Number(args.proofs);
    let bytes = 0;
    for (let k = 0; k < count; k++) {
      const index = Math.floor(Math.random() * n);
      const s = process.hrtime.bigint();
      bytes = auditLog.proof(index).length;
      times.push(Number(process.hrtime.bigint() - s) / 1000);
    }
    const cons: number[] = [];
    for (let k = 0; k < 200; k++) {
      const old = 1 + Math.floor(Math.random() * (n - 1));
      const s = process.hrtime.bigint();
      auditLog.consistency(old, n);
      cons.push(Number(process.hrtime.bigint() - s) / 1000);
    }
    await auditLog.close();
    return [
      `proofs at ${n} records (log built in ${buildS.toFixed(1)} s, ${(n / buildS).toFixed(0)} appends/s of 16-byte entries):`,
      `  inclusion proof file (${bytes} bytes): median ${median(times).toFixed(1)} µs, p99 ${times.sort((a, b) => a - b)[Math.floor(times.length * 0.99)]!.toFixed(1)} µs over ${count} random indices`,
      `  consistency proof: median ${median(cons).toFixed(1)} µs over 200 random old sizes`,
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function proxy(): Promise<string[]> {
  buildCage();
  ensureTools({ nginx: 'nginx', wrk: 'wrk' });
  for (const port of Object.values(PORTS)) await assertPortFree(port);
  const dir = mkdtempSync(join(tmpdir(), 'bench-audit-proxy-'));
  const procs: Array<{ name: string; url: string; proc: Managed }> = [];
  try {
    const upstream = startNginx('upstream', dir, upstreamConf(dir, PORTS.upstream));
    procs.push({ name: 'nginx-proxy', url: `http://127.0.0.1:${PORTS.nginx}/`, proc: startNginx('proxy', dir, proxyConf(dir, PORTS.nginx, PORTS.upstream)) });
    for (const mode of ['off', 'async', 'sync'] as const) {
      const proc = startCage({ name: `cage-${mode}`, from: `127.0.0.1:${PORTS[mode]}`, to: `http://127.0.0.1:${PORTS.upstream}`, dir, nofile: 4096, extraArgs: ['--audit', mode] });
      procs.push({ name: `cage audit ${mode}`, url: `http://127.0.0.1:${PORTS[mode]}/`, proc });
    }
    await waitForHttp(`http://127.0.0.1:${PORTS.upstream}/`, upstream);
    for (const p of procs) await waitForHttp(p.url, p.proc);
    const c = Number(args.connections);
    const rounds = Number(args.rounds);
    const durationS = Number(args.duration);
    for (const p of procs) await runWrk({ url: p.url, threads: 1, connections: c, durationS: 2 });
    const results = new Map<string, Array<{ rps: number; p99: number; cpu: number; errors: number }>>(procs.map((p) => [p.name, []]));
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < procs.length; i++) {
        const p = procs[(i + r) % procs.length]!;
        const cpu0 = groupCpuMicros(p.proc.pid);
        const w = await runWrk({ url: p.url, threads: 1, connections: c, durationS });
        const cpu = (groupCpuMicros(p.proc.pid) - cpu0) / Math.max(1, w.requests);
        results.get(p.name)!.push({ rps: w.requestsPerSec, p99: w.p99, cpu, errors: w.socketErrors + w.non2xx });
        log(`round ${r + 1}/${rounds} ${p.name}: ${w.requestsPerSec.toFixed(0)} req/s, p99 ${w.p99.toFixed(2)} ms, ${cpu.toFixed(1)} µs CPU/req`);
      }
    }
    const med = (name: string, f: 'rps' | 'p99' | 'cpu') => median(results.get(name)!.map((x) => x[f]));
    const nginx = med('nginx-proxy', 'rps');
    const off = med('cage audit off', 'rps');
    const lines = [`proxy, wrk -t1 -c${c}, ${rounds} rounds x ${durationS}s, medians:`];
    for (const p of procs) {
      const rps = med(p.name, 'rps');
      const errors = results.get(p.name)!.reduce((a, x) => a + x.errors, 0);
      lines.push(
        `  ${p.name.padEnd(16)} ${rps.toFixed(0).padStart(7)} req/s  ${(rps / nginx).toFixed(2)}x nginx  ${(rps / off).toFixed(2)}x audit-off  ` +
          `p99 ${med(p.name, 'p99').toFixed(2)} ms  ${med(p.name, 'cpu').toFixed(1)} µs CPU/req  errors ${errors}`,
      );
    }
    for (const p of procs) await stopManaged(p.proc);
    await stopManaged(upstream);
    return lines;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<number> {
  installCleanupHandlers();
  const loadBefore = loadavg();
  const out: string[] = ['', '=== bench:audit results ==='];
  out.push(...(await appends()));
  if (!args['skip-proofs']) out.push(...(await proofs()));
  if (!args['skip-proxy']) out.push(...(await proxy()));
  out.push(`machine: ${cpus().length} CPUs, load average ${loadBefore.map((l) => l.toFixed(2)).join(' ')} at start`);
  console.log(out.join('\n'));
  return 0;
}

runBench(main);
