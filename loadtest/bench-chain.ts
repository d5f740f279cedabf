// Chain benchmark (npm run bench:chain): sustained transactions per second and finality latency
// of the embedded QBFT chain with 4 validators as processes on this machine.
//
//   npm run bench:chain -- [--duration 20] [--rate 1500] [--senders 400] [--anchor-share 0.1]
//                          [--anchor-logs 20] [--block-period-ms 20] [--max-block-txs 500]
//
// Processes (each its own session, all killed on exit or signal): four `cage chain run`
// validators (tsx, LevelDB stores in a temp dir), p2p on 127.0.0.1:18301-18304, JSON-RPC on
// 18311-18314. Genesis funds --senders accounts with NEX and registers --anchor-logs logs (each
// with a tlog-policy of two notaries, quorum 2).
//
// Load (open loop, from this process): every 10 ms, rate/100 pre-signed transactions go out as
// JSON-RPC batches of chain_sendTransaction, each sender pinned to one validator (so its nonces
// arrive in order); the validators gossip them to each other. Mix: bank.transfer of 1 NEX
// ("plain") and anchor.submit of a cosigned checkpoint extending its log with a consistency proof
// (--anchor-share of the load). A WebSocket newHeads subscription on validator 0 fetches each
// final block's tx hashes; finality latency = the time the observer saw the block − the send time
// of the batch holding the tx (upper bound: includes RPC, gossip, block period, consensus, fsync).
// Reported: offered and finalized tx/s over the measurement window, p50/p99/max latency per kind,
// blocks/s and txs per block, failed receipts (must be 0), and the validators' CPU.
// Baselines (not run here): Besu QBFT, 4 validators: 520–1,200 TPS with 1 s blocks (Hyperledger
// wiki "QBFT Performance"); the seed's target: 10,000 TPS with p50 finality under 100 ms.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { signCheckpoint } from '../audit/checkpoint.js';
import { MemoryTree } from '../audit/merkle.js';
import { createCosigner, encodeBase64, generateSigner } from '../audit/note.js';
import { createChainKey, formatKeyFile } from '../chain/keys.js';
import { signTransaction, type Transaction } from '../chain/tx.js';
import { didKeyFromPublicKey, notaryVerifier } from '../notary/did.js';
import { REPO_ROOT } from './bench/cage.js';
import { groupCpuMicros, installCleanupHandlers, runBench, spawnManaged, tail, waitForHttp, type Managed } from './bench/procs.js';

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '20' },
    rate: { type: 'string', default: '1500' },
    senders: { type: 'string', default: '400' },
    'anchor-share': { type: 'string', default: '0.1' },
    'anchor-logs': { type: 'string', default: '20' },
    'block-period-ms': { type: 'string', default: '20' },
    'max-block-txs': { type: 'string', default: '500' },
  },
});

const N = 4;
const P2P = [18301, 18302, 18303, 18304];
const RPC = [18311, 18312, 18313, 18314];
const CHAIN_ID = 'bench-chain';
const WARMUP_S = 3;

interface Sent {
  kind: 'plain' | 'anchor';
  sentAt: number;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function rpc(port: number, body: unknown): Promise<unknown> {
  const res = await fetch(`http://127.0.0.1:${port}/rpc`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
  return res.json();
}

async function main(): Promise<number> {
  installCleanupHandlers();
  const duration = Number(args.duration);
  const rate = Number(args.rate);
  const senderCount = Number(args.senders);
  const anchorShare = Number(args['anchor-share']);
  const logCount = Number(args['anchor-logs']);
  const dir = mkdtempSync(join(tmpdir(), 'bench-chain-'));
  const total = Math.ceil(rate * (duration + WARMUP_S));
  const anchorTotal = Math.round(total * anchorShare);
  const plainTotal = total - anchorTotal;
  console.log(`bench:chain  4 validators (processes), ${cpus().length} cores; offered ${rate} tx/s for ${WARMUP_S}+${duration} s; ${senderCount} senders, ${logCount} anchored logs, ${Math.round(anchorShare * 100)}% anchor txs`);

  // ---- keys, genesis, pre-signed load -------------------------------------------------------
  const validators = Array.from({ length: N }, () => createChainKey());
  const senders = Array.from({ length: senderCount }, () => createChainKey());
  const notaries = [1, 2].map((i) => {
    const seed = Buffer.alloc(32, 100 + i);
    const did = didKeyFromPublicKey(generateSigner('tmp', seed).signer.verifier.publicKey);
    const { signerKey, signer } = generateSigner(did, seed);
    return { name: `n${i}`, cosigner: createCosigner(signerKey, () => Math.floor(Date.now() / 1000)), verifier: notaryVerifier(did, signer.verifier.publicKey) };
  });
  const logs = Array.from({ length: logCount }, (_, i) => {
    const origin = `bench.example/log-${i}`;
    const signer = generateSigner(origin).signer;
    const owner = createChainKey();
    const policy = `log ${signer.verifier.verifierKey}\n${notaries.map((n) => `witness ${n.name} ${n.verifier.verifierKey}`).join('\n')}\ngroup all 2 n1 n2\nquorum all\n`;
    return { origin, signer, owner, policy, tree: new MemoryTree(), anchored: 0 };
  });
  const genesis = {
    chainId: CHAIN_ID,
    timestamp: Date.now(),
    validators: validators.map((v) => v.did),
    modules: {
      bank: { accounts: Object.fromEntries(senders.map((s) => [s.did, { NEX: '1000000000' }])) },
      anchor: { logs: logs.map((l) => ({ origin: l.origin, policy: l.policy, owner: l.owner.did })) },
    },
  };
  writeFileSync(join(dir, 'genesis.json'), JSON.stringify(genesis));
  validators.forEach((v, i) => writeFileSync(join(dir, `validator-${i}.key`), formatKeyFile(v), { mode: 0o600 }));

  const t0 = performance.now();
  const plain: { tx: Transaction; node: number }[] = [];
  const nonces = new Map<string, number>();
  for (let i = 0; i < plainTotal; i++) {
    const s = senders[i % senderCount]!;
    const nonce = nonces.get(s.did) ?? 0;
    nonces.set(s.did, nonce + 1);
    const to = senders[(i * 7 + 1) % senderCount]!.did;
    plain.push({ tx: signTransaction({ chainId: CHAIN_ID, nonce, module: 'bank', method: 'transfer', args: { to, token: 'NEX', amount: '1' } }, s), node: (i % senderCount) % N });
  }
  const anchors: { tx: Transaction; node: number }[] = [];
  for (let i = 0; i < anchorTotal; i++) {
    const li = i % logCount;
    const l = logs[li]!;
    const oldSize = l.anchored;
    const size = oldSize + 16;
    for (let k = l.tree.size; k < size; k++) l.tree.append(Buffer.from(`${l.origin} record ${k}`));
    const note = signCheckpoint([l.signer, ...notaries.map((n) => n.cosigner)], { origin: l.origin, size, rootHash: l.tree.root(size), extensions: [] });
    const proof = oldSize === 0 ? [] : l.tree.consistencyProof(oldSize, size).map(encodeBase64);
    l.anchored = size;
    const nonce = Math.floor(i / logCount);
    anchors.push({ tx: signTransaction({ chainId: CHAIN_ID, nonce, module: 'anchor', method: 'submit', args: { checkpoint: note, proof } }, l.owner), node: li % N });
  }
  // Interleave the two kinds in sending order, keeping each sender's nonce order.
  const load: { tx: Transaction; node: number; kind: 'plain' | 'anchor' }[] = [];
  let pi = 0;
  let ai = 0;
  for (let i = 0; i < total; i++) {
    const wantAnchor = ai < anchors.length && (pi >= plain.length || ai / (i + 1) < anchorShare);
    if (wantAnchor) load.push({ ...anchors[ai++]!, kind: 'anchor' });
    else load.push({ ...plain[pi++]!, kind: 'plain' });
  }
  console.log(`  pre-signed ${load.length} transactions (${plain.length} plain, ${anchors.length} anchor) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  // ---- validators ---------------------------------------------------------------------------
  const procs: Managed[] = [];
  for (let i = 0; i < N; i++) {
    const peers = P2P.flatMap((p, j) => (j < i ? ['--peer', `127.0.0.1:${p}`] : []));
    const logFile = join(dir, `validator-${i}.log`);
    procs.push(
      spawnManaged(`validator-${i}`, process.execPath, ['--import', 'tsx', 'cli/main.ts', 'chain', 'run', '--data-dir', join(dir, `data-${i}`), '--key', join(dir, `validator-${i}.key`), '--genesis', join(dir, 'genesis.json'), '--listen', `127.0.0.1:${P2P[i]}`, '--rpc', `127.0.0.1:${RPC[i]}`, '--block-period-ms', String(args['block-period-ms']), '--max-block-txs', String(args['max-block-txs']), ...peers], { cwd: REPO_ROOT, logFile, env: { ...process.env, NODE_OPTIONS: '' } }),
    );
  }
  for (let i = 0; i < N; i++) await waitForHttp(`http://127.0.0.1:${RPC[i]}/rpc`, procs[i]);
  for (;;) {
    const s = (await rpc(RPC[0]!, { jsonrpc: '2.0', id: 1, method: 'chain_status' })) as { result: { height: number; peers: string[] } };
    if (s.result.peers.length === N - 1 && s.result.height >= 3) break;
    await new Promise((r) => setTimeout(r, 200));
  }

  // ---- observer -----------------------------------------------------------------------------
  const sent = new Map<string, Sent>();
  const seen: { kind: string; latency: number; at: number }[] = [];
  const blocks: { at: number; txs: number }[] = [];
  let failed = 0;
  const failedCodes = new Map<string, number>();
  const ws = new WebSocket(`ws://127.0.0.1:${RPC[0]}/rpc`);
  await new Promise((r) => ws.once('open', r));
  const pendingFetch: Promise<void>[] = [];
  ws.on('message', (data) => {
    const m = JSON.parse(data.toString()) as { params?: { result: { height: number; txCount: number } } };
    if (m.params === undefined) return;
    const at = performance.now();
    const { height, txCount } = m.params.result;
    blocks.push({ at, txs: txCount });
    if (txCount === 0) return;
    pendingFetch.push(
      (rpc(RPC[0]!, { jsonrpc: '2.0', id: 1, method: 'chain_getBlockByHeight', params: [height, true] }) as Promise<{ result: { txs: { hash: string; code: string }[] } }>).then((r) => {
        for (const t of r.result.txs) {
          const s = sent.get(t.hash);
          if (s === undefined) continue;
          seen.push({ kind: s.kind, latency: at - s.sentAt, at });
          if (t.code !== 'OK') {
            failed++;
            failedCodes.set(t.code, (failedCodes.get(t.code) ?? 0) + 1);
          }
        }
      }),
    );
  });
  ws.send(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'chain_subscribe', params: ['newHeads'] }));

  // ---- load ---------------------------------------------------------------------------------
  const cpu0 = procs.map((p) => groupCpuMicros(p.pid));
  const start = performance.now();
  const measureFrom = start + WARMUP_S * 1000;
  const end = measureFrom + duration * 1000;
  let next = 0;
  let rejected = 0;
  const rejectedCodes = new Map<string, number>();
  let cpuAtMeasure: number[] = [];
  const inflight = new Set<Promise<void>>();
  while (performance.now() < end && next < load.length) {
    const now = performance.now();
    if (cpuAtMeasure.length === 0 && now >= measureFrom) cpuAtMeasure = procs.map((p) => groupCpuMicros(p.pid));
    const due = Math.min(load.length, Math.floor(((now - start) / 1000) * rate));
    const perNode: { tx: Transaction; kind: 'plain' | 'anchor' }[][] = [[], [], [], []];
    for (; next < due; next++) perNode[load[next]!.node]!.push(load[next]!);
    for (let n = 0; n < N; n++) {
      const items = perNode[n]!;
      for (let off = 0; off < items.length; off += 100) {
        const chunk = items.slice(off, off + 100);
        const sentAt = performance.now();
        for (const it of chunk) sent.set(it.tx.hash.toString('hex'), { kind: it.kind, sentAt });
        const p = (rpc(RPC[n]!, chunk.map((it, k) => ({ jsonrpc: '2.0', id: k, method: 'chain_sendTransaction', params: [it.tx.bytes.toString('base64')] }))) as Promise<{ error?: { data: { code: string } } }[]>).then((answers) => {
          for (const a of answers) {
            if (a.error !== undefined) {
              rejected++;
              rejectedCodes.set(a.error.data.code, (rejectedCodes.get(a.error.data.code) ?? 0) + 1);
            }
          }
        });
        inflight.add(p);
        void p.finally(() => inflight.delete(p));
      }
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  const offeredInWindow = load.filter((_, i) => i < next).length;
  await Promise.all(inflight);
  const cpu1 = procs.map((p) => groupCpuMicros(p.pid));
  // drain: wait until everything sent is final (or 15 s)
  const drainUntil = performance.now() + 15_000;
  while (seen.length < sent.size - rejected && performance.now() < drainUntil) await new Promise((r) => setTimeout(r, 100));
  await Promise.all(pendingFetch);
  ws.close();

  // ---- report -------------------------------------------------------------------------------
  const windowSeen = seen.filter((s) => s.at >= measureFrom && s.at < end);
  const windowBlocks = blocks.filter((b) => b.at >= measureFrom && b.at < end);
  const tps = windowSeen.length / duration;
  const fmt = (x: number): string => (Number.isNaN(x) ? '-' : x.toFixed(0));
  console.log(`  offered        ${(offeredInWindow / (duration + WARMUP_S)).toFixed(0)} tx/s (${next} sent, ${rejected} refused at submit${rejected > 0 ? ': ' + JSON.stringify(Object.fromEntries(rejectedCodes)) : ''})`);
  console.log(`  finalized      ${tps.toFixed(0)} tx/s sustained over ${duration} s  (blocks ${(windowBlocks.length / duration).toFixed(1)}/s, ${(windowSeen.length / Math.max(1, windowBlocks.length)).toFixed(0)} tx/block)`);
  for (const kind of ['plain', 'anchor', 'all']) {
    const lat = windowSeen.filter((s) => kind === 'all' || s.kind === kind).map((s) => s.latency).sort((a, b) => a - b);
    console.log(`  finality ${kind.padEnd(6)} p50 ${fmt(percentile(lat, 50))} ms  p99 ${fmt(percentile(lat, 99))} ms  max ${fmt(lat[lat.length - 1] ?? NaN)} ms  (${lat.length} txs)`);
  }
  console.log(`  receipts       ${seen.length} final, ${failed} failed${failed > 0 ? ': ' + JSON.stringify(Object.fromEntries(failedCodes)) : ''}; ${sent.size - rejected - seen.length} not final after the drain`);
  const cpuWindow = cpu1.map((c, i) => (c - (cpuAtMeasure[i] ?? cpu0[i]!)) / 1e6 / duration);
  console.log(`  validator CPU  ${cpuWindow.map((c) => `${(c * 100).toFixed(0)}%`).join(' ')} of one core each (machine: ${cpus().length} cores)`);
  console.log(`  anchors        Besu QBFT 4 validators 520-1,200 TPS (1 s blocks); target 10,000 TPS, p50 < 100 ms`);
  for (let i = 0; i < N; i++) {
    const t = tail(join(dir, `validator-${i}.log`), 200).split('\n').filter((l) => l.includes('"error"')).slice(-2);
    if (t.length > 0) console.log(`  validator-${i} errors: ${t.join(' | ')}`);
  }
  rmSync(dir, { recursive: true, force: true });
  return failed === 0 ? 0 : 1;
}

runBench(main);
