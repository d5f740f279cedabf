/**
 * Crash consistency of the audit store: a child process appends and syncs in a loop and is killed
 * with SIGKILL at random moments, ten times over the same directory. After each kill the store
 * must reopen with every acknowledged entry byte-identical, every tree hash recomputing from the
 * entries, the checkpoints it acknowledged still saved and none larger than the recovered size, and
 * the static tile files on disk matching the tree. (ARCHITECTURE: "Nothing acknowledged is ever lost".)
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { leafHash, nodeHash } from '../../audit/hash.js';
import { formatTileIndex } from '../../audit/io/paths.js';
import { AuditStore } from '../../audit/io/store.js';
import { auditEntryFor, auditNoteFor } from './helpers/audit-entries.js';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const WRITER = 'test/fault/helpers/audit-writer.ts';
const ROUNDS = 10;

/** Complete-subtree hashes of the entries auditEntryFor(0..n-1), grown incrementally. */
class Reference {
  readonly levels: Buffer[][] = [[]];

  growTo(n: number): void {
    for (let i = this.levels[0]!.length; i < n; i++) {
      this.levels[0]!.push(leafHash(auditEntryFor(i)));
      for (let l = 0; this.levels[l]!.length % 2 === 0; l++) {
        const row = this.levels[l]!;
        (this.levels[l + 1] ??= []).push(nodeHash(row[row.length - 2]!, row[row.length - 1]!));
      }
    }
  }
}

interface WriterRun {
  open: number;
  acked: number;
  checkpointed: number;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/**
 * Starts the writer, lets it run `runMs` after it opened the store, then SIGKILLs it; or, with
 * `killAtAck`, kills it the moment that many acknowledgements arrived (right behind a group commit).
 */
function runWriter(dir: string, seed: number, runMs: number, killAtAck = Infinity): Promise<WriterRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', WRITER, dir, String(seed)], {
      cwd: REPO_ROOT,
      env: { ...process.env, NODE_OPTIONS: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const run: WriterRun = { open: -1, acked: 0, checkpointed: 0, signal: null, stderr: '' };
    let buffered = '';
    let acks = 0;
    const safety = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      buffered += d;
      for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
        const [what, value] = buffered.slice(0, nl).split(' ');
        buffered = buffered.slice(nl + 1);
        const n = Number(value);
        if (what === 'open') {
          run.open = n;
          setTimeout(() => child.kill('SIGKILL'), runMs);
        } else if (what === 'ack') {
          run.acked = Math.max(run.acked, n);
          if (++acks === killAtAck) child.kill('SIGKILL');
        } else if (what === 'cp') {
          run.checkpointed = Math.max(run.checkpointed, n);
        }
      }
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (run.stderr += d));
    child.on('error', reject);
    child.on('close', (_code, signal) => {
      clearTimeout(safety);
      run.signal = signal;
      resolve(run);
    });
  });
}

describe('fault: audit store killed with SIGKILL', function () {
  this.timeout(120_000);
  let dir: string;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'cage-kill9-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps every acknowledged entry and checkpoint, and a consistent tree, across ten kills', async () => {
    const seed = Number(process.env.KILL9_SEED ?? Date.now() % 1_000_000);
    let rng = seed;
    const random = (): number => ((rng = (rng * 48271) % 2147483647) / 2147483647);
    const ref = new Reference();
    let previousSize = 0;
    let acked = 0;
    let checkpointed = 0;
    for (let round = 0; round < ROUNDS; round++) {
      // Kills at random times, some right after open (while recovery's tile rewrites run), some
      // right behind an acknowledgement.
      const pick = random();
      const runMs = pick < 0.2 ? Math.floor(random() * 20) : 100 + Math.floor(random() * 500);
      const killAtAck = pick > 0.7 ? 1 + Math.floor(random() * 200) : Infinity;
      const run = await runWriter(dir, seed + round, runMs, killAtAck);
      const context = `seed ${seed}, round ${round}, killed ${killAtAck < Infinity ? `at ack ${killAtAck} or ` : ''}${runMs} ms after open`;
      assert.equal(run.signal, 'SIGKILL', `${context}: the writer must die by the kill, not on its own:\n${run.stderr}`);
      assert.equal(run.open, previousSize, `${context}: the writer reopened the size the last check saw`);
      acked = Math.max(acked, run.acked);
      checkpointed = Math.max(checkpointed, run.checkpointed);

      // A cache big enough for the whole tree: the checks sweep every tile once per level.
      const store = await AuditStore.open(dir, { flushEveryMs: 0, tileCacheSize: 4096 });
      try {
        const size = store.size;
        assert.ok(size >= acked, `${context}: recovered ${size} entries, but ${acked} were acknowledged`);
        assert.ok(size >= previousSize, `${context}: the log shrank from ${previousSize} to ${size}`);
        assert.equal(store.durableSize, size);
        assert.equal(store.integratedSize, size);
        // Entries and low subtrees: from a little before the previous size (what this round could
        // have touched) in intermediate rounds, everything in the last one. High levels: always all.
        const from = round === ROUNDS - 1 ? 0 : Math.max(0, previousSize - 4096);
        for (let i = from; i < size; i++) assert.ok(store.entry(i).equals(auditEntryFor(i)), `${context}: entry ${i}`);
        ref.growTo(size);
        for (let l = 0; 2 ** l <= size; l++) {
          const count = Math.floor(size / 2 ** l);
          const first = l >= 8 ? 0 : Math.floor(from / 2 ** l);
          for (let i = first; i < count; i++) assert.ok(store.hashAt(l, i).equals(ref.levels[l]![i]!), `${context}: hashAt(${l}, ${i})`);
        }

        const latest = store.latestCheckpoint();
        if (checkpointed > 0) {
          assert.ok(latest !== undefined && latest.size >= checkpointed, `${context}: checkpoint ${checkpointed} was acknowledged`);
        }
        if (latest !== undefined) {
          assert.ok(latest.size <= size, `${context}: checkpoint ${latest.size} beyond the recovered size ${size}`);
          assert.equal(latest.note, auditNoteFor(latest.size));
          assert.equal(readFileSync(join(dir, 'checkpoint'), 'utf8'), latest.note, `${context}: the checkpoint file is the latest saved`);
          let last = 0;
          for await (const c of store.checkpoints()) {
            assert.ok(c.size >= last && c.size <= size, `${context}: history sizes grow and stay within the log`);
            assert.equal(c.note, auditNoteFor(c.size));
            last = c.size;
          }
          assert.equal(last, latest.size);
        }

        // The static read side: every full tile and bundle on disk matches the tree.
        for (let t = Math.floor(from / 256); (t + 1) * 256 <= size; t++) {
          const tile = join(dir, 'tile/0', formatTileIndex(t));
          if (existsSync(tile)) assert.ok(readFileSync(tile).equals(Buffer.concat(ref.levels[0]!.slice(t * 256, t * 256 + 256))), `${context}: ${tile}`);
          const bundle = join(dir, 'tile/entries', formatTileIndex(t));
          if (existsSync(bundle)) {
            const want = Buffer.concat(Array.from({ length: 256 }, (_, k) => auditEntryFor(t * 256 + k)).flatMap((e) => [Buffer.from([e.length >> 8, e.length & 0xff]), e]));
            assert.ok(readFileSync(bundle).equals(want), `${context}: ${bundle}`);
          }
        }
        for (let t = 0; (t + 1) * 65536 <= size; t++) {
          const tile = join(dir, 'tile/1', formatTileIndex(t));
          if (existsSync(tile)) assert.ok(readFileSync(tile).equals(Buffer.concat(ref.levels[8]!.slice(t * 256, t * 256 + 256))), `${context}: ${tile}`);
        }
        previousSize = size;
      } finally {
        await store.close();
      }
    }
    assert.ok(acked > 0, 'the writer acknowledged something');
  });
});
