// Post-quantum envelope benchmark (library level, one core): what does opening an X-Wing request
// cost the gateway, on the fast path (pq/xwing.ts: ML-KEM key expanded once and Â cached, X25519
// and SHA3 native) against the baseline of noble alone (`ml_kem768_x25519.decapsulate`, which
// re-expands the key from its seed on every call)?
//
//   node --import tsx loadtest/bench-pq-lib.ts [--runs 5] [--ms 1000] [--json out.json]
//
// Measured per run, interleaving the two paths (rotating which goes first):
//   decap      X-Wing decapsulations per second, and CPU µs per decapsulation (process.cpuUsage)
//   exchange   OhttpGateway.openRequest (decapsulate + HPKE open + BHTTP decode of a 1 KiB POST)
//              plus seal of a 1 KiB answer, per second and CPU µs each
// Reported: the median of the runs for each, and fast/noble ratios. Both paths are first checked
// to give byte-identical shared secrets on the same ciphertexts.

import { writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import { ml_kem768_x25519 } from '@noble/post-quantum/hybrid.js';
import { encodeRequest } from '../pq/bhttp.js';
import { AEAD_AES_256_GCM, KDF_HKDF_SHA256, KEM_XWING, kemById, type KemPrivateKey } from '../pq/hpke.js';
import { encapsulateRequest, OhttpGateway, type GatewayKey, type KeyConfig } from '../pq/ohttp.js';
import { XWingDecapsulationKey } from '../pq/xwing.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}
const RUNS = Number(arg('runs', '5'));
const MS = Number(arg('ms', '1000'));
const JSON_OUT = arg('json', '');

interface Sample {
  opsPerSec: number;
  cpuUsPerOp: number;
}

/** Runs `op` in batches until `ms` of wall time passed; ops/s (wall) and CPU µs/op (user+system). */
function measure(op: (i: number) => void, ms: number): Sample {
  for (let i = 0; i < 20; i++) op(i); // warm-up
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let n = 0;
  while (performance.now() - t0 < ms) {
    for (let j = 0; j < 10; j++) op(n++);
  }
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  return { opsPerSec: (n / wall) * 1000, cpuUsPerOp: (cpu.user + cpu.system) / n };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

// --- setup ------------------------------------------------------------------------------------
const seed = randomBytes(32);
const fast = XWingDecapsulationKey.fromSeed(seed);
const CTS = Array.from({ length: 64 }, () => ml_kem768_x25519.encapsulate(fast.publicKey));
for (const { cipherText, sharedSecret } of CTS.slice(0, 8)) {
  const a = Buffer.from(fast.decapsulate(cipherText));
  const b = Buffer.from(ml_kem768_x25519.decapsulate(cipherText, seed));
  if (!a.equals(b) || !a.equals(Buffer.from(sharedSecret))) throw new Error('fast and noble X-Wing disagree');
}

const config: KeyConfig = { keyId: 1, kemId: KEM_XWING, publicKey: fast.publicKey, symmetric: [{ kdfId: KDF_HKDF_SHA256, aeadId: AEAD_AES_256_GCM }] };
const fastKey: GatewayKey = { config, privateKey: kemById(KEM_XWING)!.importPrivateKey(seed) };
// The baseline gateway key: same interface, noble's one-shot decapsulation from the seed.
const nobleKey: GatewayKey = {
  config,
  privateKey: { kemId: KEM_XWING, publicKey: fast.publicKey, decap: (enc: Uint8Array) => ml_kem768_x25519.decapsulate(enc, seed) } satisfies KemPrivateKey,
};
const gateways = { fast: new OhttpGateway({ keys: [fastKey] }), noble: new OhttpGateway({ keys: [nobleKey] }) };
const inner = encodeRequest({
  method: 'POST', scheme: 'https', authority: 'api.example', path: '/v1/items',
  headers: [['content-type', 'application/json'], ['date', new Date().toUTCString()]], body: randomBytes(1024),
});
const ENVELOPES = Array.from({ length: 64 }, () => encapsulateRequest(config, inner).bytes);
const answer = { status: 200, headers: [['content-type', 'application/octet-stream']] as [string, string][], body: randomBytes(1024) };

const paths = {
  decap: {
    noble: (i: number) => ml_kem768_x25519.decapsulate(CTS[i % CTS.length]!.cipherText, seed),
    fast: (i: number) => fast.decapsulate(CTS[i % CTS.length]!.cipherText),
  },
  exchange: {
    noble: (i: number) => gateways.noble.openRequest(ENVELOPES[i % ENVELOPES.length]!, 'message/ohttp-req').seal(answer),
    fast: (i: number) => gateways.fast.openRequest(ENVELOPES[i % ENVELOPES.length]!, 'message/ohttp-req').seal(answer),
  },
};

// --- runs -------------------------------------------------------------------------------------
type Kind = keyof typeof paths;
type Impl = 'noble' | 'fast';
const samples: Record<Kind, Record<Impl, Sample[]>> = { decap: { noble: [], fast: [] }, exchange: { noble: [], fast: [] } };
console.log(`bench-pq-lib: ${RUNS} runs × ${MS} ms per path, node ${process.version}, load ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
for (let run = 0; run < RUNS; run++) {
  const order: Impl[] = run % 2 === 0 ? ['noble', 'fast'] : ['fast', 'noble'];
  for (const kind of Object.keys(paths) as Kind[]) {
    for (const impl of order) samples[kind][impl].push(measure(paths[kind][impl], MS));
  }
  process.stdout.write(`  run ${run + 1}: ${(Object.keys(paths) as Kind[]).map((k) => `${k} noble ${samples[k].noble.at(-1)!.opsPerSec.toFixed(0)}/s fast ${samples[k].fast.at(-1)!.opsPerSec.toFixed(0)}/s`).join(', ')}\n`);
}

const report: Record<string, unknown> = {};
console.log('\nmedians of the runs:');
console.log('  what        path    ops/s    CPU µs/op');
for (const kind of Object.keys(paths) as Kind[]) {
  const row: Record<string, { opsPerSec: number; cpuUsPerOp: number }> = {};
  for (const impl of ['noble', 'fast'] as Impl[]) {
    const ops = median(samples[kind][impl].map((s) => s.opsPerSec));
    const cpu = median(samples[kind][impl].map((s) => s.cpuUsPerOp));
    row[impl] = { opsPerSec: ops, cpuUsPerOp: cpu };
    console.log(`  ${kind.padEnd(10)}  ${impl.padEnd(6)}  ${ops.toFixed(0).padStart(6)}  ${cpu.toFixed(0).padStart(10)}`);
  }
  const ratio = row.fast!.opsPerSec / row.noble!.opsPerSec;
  const cpuRatio = row.noble!.cpuUsPerOp / row.fast!.cpuUsPerOp;
  console.log(`  ${kind.padEnd(10)}  fast/noble: ${ratio.toFixed(2)}× the throughput, ${cpuRatio.toFixed(2)}× less CPU per operation`);
  report[kind] = { ...row, throughputRatio: ratio, cpuRatio };
}
if (JSON_OUT) writeFileSync(JSON_OUT, `${JSON.stringify({ runs: RUNS, ms: MS, node: process.version, ...report }, null, 2)}\n`);
