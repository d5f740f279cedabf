// Audit store benchmark: how fast can one core append 1 KiB entries to the audit log, hashed and
// group-committed to disk (audit/io/store.ts)? Target: ≥ 100,000 appends/s.
//
//   node --import tsx loadtest/bench-audit-store.ts [--entries 300000] [--size 1024] [--runs 5]
//                                                   [--waiters 256] [--sync-seconds 3] [--dir /tmp]
//
// Modes, each run on a fresh store directory, medians over --runs:
//   async   the producer appends in bursts of 1,000 (yielding to the event loop between bursts,
//           as a server would), then awaits one sync(): appends/s = entries / time until durable.
//           "+tiles" also waits for close(), i.e. every full tile and bundle written and fsynced.
//   sync    --waiters concurrent callers, each looping append + await sync() (every response
//           waits for durability): entries/s and entries per fdatasync (the group size).
// Baselines in the same run:
//   floor   the same bytes written with one write + fdatasync per 1,000 entries, no hashing: the
//           disk's own cost; the store cannot beat it.
//   hash    SHA-256 leaf hashing alone (plus one node hash per leaf): the CPU floor.

import { hash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { AuditStore } from '../audit/io/store.js';

const { values: args } = parseArgs({
  options: {
    entries: { type: 'string', default: '300000' },
    size: { type: 'string', default: '1024' },
    runs: { type: 'string', default: '5' },
    waiters: { type: 'string', default: '256' },
    'sync-seconds': { type: 'string', default: '3' },
    dir: { type: 'string', default: tmpdir() },
  },
});
const ENTRIES = Number(args.entries);
const SIZE = Number(args.size);
const RUNS = Number(args.runs);
const WAITERS = Number(args.waiters);
const SYNC_MS = Number(args['sync-seconds']) * 1000;
const BURST = 1000;

const entries = Array.from({ length: 64 }, (_, i) => Buffer.alloc(SIZE, i));
const yieldLoop = (): Promise<void> => new Promise((r) => setImmediate(r));
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');

function freshDir(): string {
  return mkdtempSync(join(args.dir!, 'cage-bench-store-'));
}

async function runAsync(): Promise<{ durable: number; tiles: number }> {
  const dir = freshDir();
  try {
    const store = await AuditStore.open(dir);
    const t0 = performance.now();
    for (let i = 0; i < ENTRIES; ) {
      const end = Math.min(ENTRIES, i + BURST);
      for (; i < end; i++) store.append(entries[i & 63]!);
      await yieldLoop();
    }
    await store.sync();
    const t1 = performance.now();
    await store.close();
    const t2 = performance.now();
    return { durable: ENTRIES / ((t1 - t0) / 1000), tiles: ENTRIES / ((t2 - t0) / 1000) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function runSync(): Promise<{ rate: number; perFsync: number }> {
  const dir = freshDir();
  try {
    const store = await AuditStore.open(dir);
    let done = 0;
    let rounds = 0;
    let last = 0;
    const stopAt = performance.now() + SYNC_MS;
    const t0 = performance.now();
    const worker = async (w: number): Promise<void> => {
      while (performance.now() < stopAt) {
        store.append(entries[w & 63]!);
        const durable = await store.sync();
        if (durable !== last) {
          last = durable;
          rounds++;
        }
        done++;
      }
    };
    await Promise.all(Array.from({ length: WAITERS }, (_, w) => worker(w)));
    const t1 = performance.now();
    await store.close();
    return { rate: done / ((t1 - t0) / 1000), perFsync: done / Math.max(1, rounds) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The disk floor: the same bytes (with a 13-byte frame each) in 1,000-entry writes + fdatasync. */
async function runFloor(): Promise<number> {
  const dir = freshDir();
  try {
    const fh = await open(join(dir, 'floor.wal'), 'w');
    const frame = Buffer.alloc((SIZE + 13) * BURST, 1);
    const t0 = performance.now();
    let pos = 0;
    for (let i = 0; i < ENTRIES; i += BURST) {
      const n = Math.min(BURST, ENTRIES - i);
      await fh.write(frame, 0, (SIZE + 13) * n, pos);
      pos += (SIZE + 13) * n;
      await fh.datasync();
    }
    const t1 = performance.now();
    await fh.close();
    return ENTRIES / ((t1 - t0) / 1000);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The CPU floor: one leaf hash and one node hash per entry. */
function runHash(): number {
  const leafInput = Buffer.alloc(SIZE + 1);
  const nodeInput = Buffer.alloc(65, 1);
  const t0 = performance.now();
  for (let i = 0; i < ENTRIES; i++) {
    hash('sha256', leafInput, 'buffer');
    hash('sha256', nodeInput, 'buffer');
  }
  return ENTRIES / ((performance.now() - t0) / 1000);
}

const asyncRuns: { durable: number; tiles: number }[] = [];
const syncRuns: { rate: number; perFsync: number }[] = [];
const floorRuns: number[] = [];
const hashRuns: number[] = [];
console.log(`audit store bench: ${fmt(ENTRIES)} entries of ${SIZE} B, ${RUNS} runs, store in ${args.dir}, node ${process.version}`);
for (let r = 0; r < RUNS; r++) {
  hashRuns.push(runHash());
  floorRuns.push(await runFloor());
  asyncRuns.push(await runAsync());
  syncRuns.push(await runSync());
  const a = asyncRuns.at(-1)!;
  const s = syncRuns.at(-1)!;
  console.log(
    `run ${r + 1}: async ${fmt(a.durable)}/s (+tiles ${fmt(a.tiles)}/s)  sync×${WAITERS} ${fmt(s.rate)}/s (${s.perFsync.toFixed(0)}/fsync)  floor ${fmt(floorRuns.at(-1)!)}/s  hash ${fmt(hashRuns.at(-1)!)}/s`,
  );
}
const asyncMedian = median(asyncRuns.map((a) => a.durable));
const floorMedian = median(floorRuns);
const hashMedian = median(hashRuns);
console.log('\nmedians');
console.log(`  async appends/s (durable)         ${fmt(asyncMedian)}`);
console.log(`  async appends/s (+tiles on disk)  ${fmt(median(asyncRuns.map((a) => a.tiles)))}`);
console.log(`  sync-mode entries/s, ${WAITERS} waiters  ${fmt(median(syncRuns.map((s) => s.rate)))}  (${median(syncRuns.map((s) => s.perFsync)).toFixed(0)} entries per fdatasync)`);
console.log(`  floor: write+fdatasync only       ${fmt(floorMedian)}  (store/floor ${(asyncMedian / floorMedian).toFixed(2)})`);
console.log(`  floor: hashing only               ${fmt(hashMedian)}  (store/hash ${(asyncMedian / hashMedian).toFixed(2)})`);
