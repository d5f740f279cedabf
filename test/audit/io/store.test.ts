/**
 * AuditStore: round trips through sync and reopen, hashes against a naive RFC 6962 reference,
 * the exact C2SP tlog-tiles files on disk, group commit, torn tails, corruption, checkpoints.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { isCageError, type CageErrorCode } from '../../../core/errors.js';
import { EMPTY_ROOT, leafHash, nodeHash } from '../../../audit/hash.js';
import { AuditStore, MAX_ENTRY_BYTES, type AuditStoreOptions } from '../../../audit/io/store.js';
import { BATCH_HEADER_BYTES, decodeBatchHeader, FRAME_HEADER_BYTES } from '../../../audit/io/wal-format.js';
import { formatTileIndex } from '../../../audit/io/paths.js';

/** Entry i: deterministic bytes of varying length (0 for every 97th). */
function entryOf(i: number): Buffer {
  const len = i % 97 === 0 ? 0 : 1 + ((i * 7919) % 300);
  const seed = createHash('sha256').update(`entry ${i}`).digest();
  const out = Buffer.alloc(len);
  for (let k = 0; k < len; k++) out[k] = seed[k % 32]! ^ (k & 0xff);
  return out;
}

/** Naive RFC 6962 reference: levels[l][i] = hash of the complete subtree i at level l. */
class Reference {
  readonly levels: Buffer[][] = [[]];

  add(entry: Uint8Array): void {
    this.levels[0]!.push(leafHash(entry));
    for (let l = 0; this.levels[l]!.length % 2 === 0; l++) {
      const row = this.levels[l]!;
      (this.levels[l + 1] ??= []).push(nodeHash(row[row.length - 2]!, row[row.length - 1]!));
    }
  }

  /** MTH(D[0:n]) by the RFC 9162 §2.1.1 recursion over the stored subtrees. */
  root(n: number): Buffer {
    if (n === 0) return EMPTY_ROOT;
    const mth = (start: number, size: number): Buffer => {
      if ((size & (size - 1)) === 0 && start % size === 0) return this.levels[Math.log2(size)]![start / size]!;
      let k = 1;
      while (k * 2 < size) k *= 2;
      return nodeHash(mth(start, k), mth(start + k, size - k));
    };
    return mth(0, n);
  }
}

/** The root of a tree of n leaves computed only from the store's hashAt (what proof code does). */
function rootFromStore(store: AuditStore, n: number): Buffer {
  if (n === 0) return EMPTY_ROOT;
  const mth = (start: number, size: number): Buffer => {
    if ((size & (size - 1)) === 0 && start % size === 0) return store.hashAt(Math.log2(size), start / size);
    let k = 1;
    while (k * 2 < size) k *= 2;
    return nodeHash(mth(start, k), mth(start + k, size - k));
  };
  return mth(0, n);
}

function assertAllSubtrees(store: AuditStore, ref: Reference, n: number): void {
  for (let l = 0; 2 ** l <= n; l++) {
    const count = Math.floor(n / 2 ** l);
    for (let i = 0; i < count; i++) assert.ok(store.hashAt(l, i).equals(ref.levels[l]![i]!), `hashAt(${l}, ${i}) at size ${n}`);
  }
  assert.ok(rootFromStore(store, n).equals(ref.root(n)), `root of size ${n}`);
}

async function rejectsWith(p: Promise<unknown> | (() => unknown), code: CageErrorCode): Promise<Error> {
  let caught: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    caught = e;
  }
  assert.ok(isCageError(caught, code), `expected ${code}, got ${String(caught)}`);
  return caught as Error;
}

function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out.push(relative(dir, p));
    }
  };
  walk(dir);
  return out.sort();
}

function decodeBundle(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < buf.length; ) {
    const n = buf.readUInt16BE(at);
    out.push(buf.subarray(at + 2, at + 2 + n));
    at += 2 + n;
  }
  return out;
}

/** Batch headers of a WAL segment, in order. */
function batchesOf(path: string): { at: number; count: number; end: number }[] {
  const buf = readFileSync(path);
  const out: { at: number; count: number; end: number }[] = [];
  for (let at = 0; at < buf.length; ) {
    const h = decodeBatchHeader(buf, at);
    assert.ok(h !== undefined, `batch header at ${at}`);
    const end = at + BATCH_HEADER_BYTES + h.payloadBytes;
    out.push({ at, count: h.count, end });
    at = end;
  }
  return out;
}

function walSegments(dir: string): string[] {
  return readdirSync(join(dir, 'state/wal'))
    .filter((n) => n.endsWith('.wal'))
    .sort()
    .map((n) => join(dir, 'state/wal', n));
}

describe('audit/io/store', function () {
  this.timeout(120_000);
  let root: string;
  let n = 0;
  const open: AuditStore[] = [];
  const newDir = (): string => join(root, `s${n++}`);
  const openStore = async (dir: string, opts: AuditStoreOptions = {}): Promise<AuditStore> => {
    const s = await AuditStore.open(dir, { flushEveryMs: 0, ...opts });
    open.push(s);
    return s;
  };

  before(() => {
    root = mkdtempSync(join(tmpdir(), 'cage-store-'));
  });
  afterEach(async () => {
    for (const s of open.splice(0)) await s.close().catch(() => undefined);
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  describe('tile paths', () => {
    it('writes <N> as x-prefixed 3-digit groups (C2SP tlog-tiles)', () => {
      assert.equal(formatTileIndex(0), '000');
      assert.equal(formatTileIndex(7), '007');
      assert.equal(formatTileIndex(999), '999');
      assert.equal(formatTileIndex(1000), 'x001/000');
      assert.equal(formatTileIndex(1234067), 'x001/x234/067');
    });
  });

  describe('append, sync, reopen', () => {
    it('assigns consecutive indexes, makes them durable on sync and reads them back after reopen', async () => {
      const dir = newDir();
      const s = await openStore(dir);
      assert.equal(s.size, 0);
      assert.equal(s.durableSize, 0);
      for (let i = 0; i < 1000; i++) assert.equal(s.append(entryOf(i)), i);
      assert.equal(s.size, 1000);
      assert.equal(s.durableSize, 0, 'nothing is durable before sync (flushEveryMs: 0)');
      assert.equal(await s.sync(), 1000);
      assert.equal(s.durableSize, 1000);
      assert.equal(s.integratedSize, 1000);
      for (let i = 0; i < 1000; i++) assert.deepEqual(s.entry(i), entryOf(i), `entry ${i}`);
      await s.close();
      const r = await openStore(dir);
      assert.equal(r.size, 1000);
      assert.equal(r.durableSize, 1000);
      for (let i = 0; i < 1000; i++) assert.deepEqual(r.entry(i), entryOf(i), `entry ${i} after reopen`);
      assert.equal(r.append(entryOf(1000)), 1000);
      await r.close();
      const r2 = await openStore(dir);
      assert.equal(r2.size, 1001, 'close makes the last appends durable');
      assert.deepEqual(r2.entry(1000), entryOf(1000));
    });

    it('accepts empty and 65,535-byte entries and refuses larger ones', async () => {
      const s = await openStore(newDir());
      const big = Buffer.alloc(MAX_ENTRY_BYTES, 0xab);
      s.append(Buffer.alloc(0));
      s.append(big);
      await rejectsWith(() => s.append(Buffer.alloc(MAX_ENTRY_BYTES + 1)), 'AUDIT_ENTRY_TOO_LARGE');
      assert.equal(s.size, 2);
      await s.sync();
      assert.deepEqual(s.entry(0), Buffer.alloc(0));
      assert.deepEqual(s.entry(1), big);
    });

    it('shares one WAL batch (one write + fdatasync) among concurrent sync() callers', async () => {
      const dir = newDir();
      const s = await openStore(dir);
      const waits: Promise<number>[] = [];
      for (let i = 0; i < 100; i++) {
        s.append(entryOf(i));
        waits.push(s.sync());
      }
      const sizes = await Promise.all(waits);
      sizes.forEach((size, i) => assert.ok(size >= i + 1, `caller ${i} resolved with ${size}`));
      assert.deepEqual(
        batchesOf(walSegments(dir)[0]!).map((b) => b.count),
        [100],
      );
      assert.equal(await s.sync(), 100, 'nothing new: resolves at once');
    });

    it('resolves sync() only once the entries are written to the WAL file', async () => {
      const dir = newDir();
      const s = await openStore(dir);
      for (let round = 1; round <= 5; round++) {
        for (let i = 0; i < 37; i++) s.append(entryOf(i));
        assert.equal(await s.sync(), 37 * round);
        const inFile = batchesOf(walSegments(dir)[0]!).reduce((n, b) => n + b.count, 0);
        assert.equal(inFile, 37 * round, `after sync ${round}`);
      }
    });

    it('makes entries durable on its own every flushEveryMs', async () => {
      const dir = newDir();
      const s = await openStore(dir, { flushEveryMs: 10 });
      s.append(entryOf(0));
      const deadline = Date.now() + 10_000;
      while (s.durableSize < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      assert.equal(s.durableSize, 1);
    });

    it('rejects unknown and bad options, and a second open of the same directory', async () => {
      await rejectsWith(AuditStore.open(newDir(), { flushEvery: 5 } as AuditStoreOptions), 'CONFIG_INVALID');
      await rejectsWith(AuditStore.open(newDir(), { segmentBytes: -1 }), 'CONFIG_INVALID');
      const dir = newDir();
      await openStore(dir);
      await rejectsWith(AuditStore.open(dir), 'AUDIT_STORE_LOCKED');
    });

    it('refuses a lock held by another live process, takes over one left by a dead process', async () => {
      const dir = newDir();
      await (await openStore(dir)).close();
      writeFileSync(join(dir, 'state/lock'), `${process.ppid}\n`);
      await rejectsWith(AuditStore.open(dir), 'AUDIT_STORE_LOCKED');
      writeFileSync(join(dir, 'state/lock'), '2147483646\n');
      await (await openStore(dir)).close();
    });

    it('refuses appends and syncs after close', async () => {
      const s = await openStore(newDir());
      await s.close();
      await rejectsWith(() => s.append(entryOf(0)), 'AUDIT_STORE_IO');
      await rejectsWith(s.sync(), 'AUDIT_STORE_IO');
    });
  });

  describe('hashAt against a naive RFC 6962 tree', () => {
    it('matches every complete subtree at many sizes across the 256 boundary', async () => {
      const s = await openStore(newDir());
      const ref = new Reference();
      const sizes = [0, 1, 2, 3, 4, 5, 7, 8, 9, 255, 256, 257, 511, 512, 513, 767, 768, 1000, 1024, 1025, 1500];
      let size = 0;
      for (const target of sizes) {
        while (size < target) {
          s.append(entryOf(size));
          ref.add(entryOf(size++));
        }
        await s.sync();
        assert.equal(s.integratedSize, target);
        assertAllSubtrees(s, ref, target);
      }
      await rejectsWith(() => s.hashAt(0, 1500), 'AUDIT_INDEX_OUT_OF_RANGE');
      await rejectsWith(() => s.hashAt(11, 0), 'AUDIT_INDEX_OUT_OF_RANGE');
      await rejectsWith(() => s.hashAt(-1, 0), 'AUDIT_INDEX_OUT_OF_RANGE');
    });

    it('matches across 65,536 (tile level 1 completes), from memory, tile files and after reopen', async () => {
      const dir = newDir();
      // Small segments and a one-tile cache: the WAL is trimmed and hashAt reads tile files.
      const s = await openStore(dir, { segmentBytes: 64 << 10, tileCacheSize: 1 });
      const ref = new Reference();
      let size = 0;
      for (const target of [65535, 65536, 65537, 65536 + 256, 70000]) {
        while (size < target) {
          s.append(entryOf(size));
          ref.add(entryOf(size++));
        }
        await s.sync();
        assertAllSubtrees(s, ref, target);
      }
      await s.writePartialTiles(70000);
      assert.ok(s.tiledSize >= 69888, `full tiles are on disk (tiled ${s.tiledSize})`);
      assertAllSubtrees(s, ref, 70000);
      await s.close();
      assert.ok(walSegments(dir).length < 20, 'covered WAL segments were deleted');
      const r = await openStore(dir, { tileCacheSize: 2 });
      assert.equal(r.size, 70000);
      assert.ok(r.tiledSize > 0, 'reopen starts from the tiles, not from entry 0');
      assertAllSubtrees(r, ref, 70000);
      for (const i of [0, 255, 256, 40000, 65535, 65536, 69887, 69888, 69999]) assert.deepEqual(r.entry(i), entryOf(i), `entry ${i}`);
      for (; size < 70300; size++) {
        r.append(entryOf(size));
        ref.add(entryOf(size));
      }
      await r.sync();
      assertAllSubtrees(r, ref, 70300);
    });
  });

  describe('C2SP tlog-tiles files on disk', () => {
    let dir: string;
    const ref = new Reference();
    const SIZE = 70000;

    before(async () => {
      dir = newDir();
      const s = await AuditStore.open(dir, { flushEveryMs: 0 });
      for (let i = 0; i < SIZE; i++) {
        s.append(entryOf(i));
        ref.add(entryOf(i));
      }
      await s.sync();
      await s.writePartialTiles(SIZE);
      await s.close();
    });

    it('has exactly the tiles the spec lists for a tree of 70,000 (273 full + .p/112, 1 full + .p/17, .p/1)', () => {
      const files = listFiles(join(dir, 'tile'));
      const expected: string[] = [];
      for (let t = 0; t < 273; t++) expected.push(`0/${formatTileIndex(t)}`, `entries/${formatTileIndex(t)}`);
      expected.push('0/273.p/112', 'entries/273.p/112', '1/000', '1/001.p/17', '2/000.p/1');
      assert.deepEqual(files, expected.sort());
    });

    it('level-0 tiles are the 256 leaf hashes; level-1 hashes are roots of 256-leaf subtrees', () => {
      for (const t of [0, 1, 200, 272]) {
        const tile = readFileSync(join(dir, 'tile/0', formatTileIndex(t)));
        assert.ok(tile.equals(Buffer.concat(ref.levels[0]!.slice(t * 256, t * 256 + 256))), `tile/0/${t}`);
      }
      const l1 = readFileSync(join(dir, 'tile/1/000'));
      assert.equal(l1.length, 8192);
      for (let i = 0; i < 256; i++) assert.ok(l1.subarray(i * 32, i * 32 + 32).equals(ref.levels[8]![i]!), `tile/1/000 hash ${i}`);
      // Level-1 hash i is MTH of leaves [256 i, 256 i + 256): check one against a fresh computation.
      const sub = new Reference();
      for (let k = 256 * 5; k < 256 * 6; k++) sub.add(entryOf(k));
      assert.ok(l1.subarray(5 * 32, 6 * 32).equals(sub.root(256)));
    });

    it('partial tiles hold the first W hashes of their tile', () => {
      assert.ok(readFileSync(join(dir, 'tile/0/273.p/112')).equals(Buffer.concat(ref.levels[0]!.slice(273 * 256, SIZE))));
      assert.ok(readFileSync(join(dir, 'tile/1/001.p/17')).equals(Buffer.concat(ref.levels[8]!.slice(256, 273))));
      assert.ok(readFileSync(join(dir, 'tile/2/000.p/1')).equals(ref.levels[16]![0]!));
    });

    it('entry bundles are uint16-length-prefixed entries that hash to their level-0 tile', () => {
      for (const t of [0, 3, 272]) {
        const entries = decodeBundle(readFileSync(join(dir, 'tile/entries', formatTileIndex(t))));
        assert.equal(entries.length, 256);
        entries.forEach((e, i) => assert.deepEqual(e, entryOf(t * 256 + i)));
        const tile = readFileSync(join(dir, 'tile/0', formatTileIndex(t)));
        assert.ok(Buffer.concat(entries.map((e) => leafHash(e))).equals(tile));
      }
      const partial = decodeBundle(readFileSync(join(dir, 'tile/entries/273.p/112')));
      assert.equal(partial.length, 112);
      partial.forEach((e, i) => assert.deepEqual(e, entryOf(273 * 256 + i)));
    });

    it('removes a partial tile once its full tile is durable', async () => {
      const s = await openStore(dir);
      for (let i = SIZE; i < 273 * 256 + 256; i++) s.append(entryOf(i));
      await s.sync();
      await s.writePartialTiles(s.size);
      assert.ok(existsSync(join(dir, 'tile/0/273')));
      assert.ok(existsSync(join(dir, 'tile/entries/273')));
      assert.ok(!existsSync(join(dir, 'tile/0/273.p')), 'tile/0/273.p removed');
      assert.ok(!existsSync(join(dir, 'tile/entries/273.p')), 'tile/entries/273.p removed');
      await s.close();
    });
  });

  describe('partial tiles', () => {
    it('are written for the requested size only, refused beyond the durable size, removed once full', async () => {
      const dir = newDir();
      const s = await openStore(dir);
      const ref = new Reference();
      const add = (to: number): void => {
        for (let i = s.size; i < to; i++) {
          s.append(entryOf(i));
          ref.add(entryOf(i));
        }
      };
      add(5);
      await rejectsWith(s.writePartialTiles(5), 'AUDIT_INDEX_OUT_OF_RANGE');
      await s.sync();
      await s.writePartialTiles(5);
      assert.ok(readFileSync(join(dir, 'tile/0/000.p/5')).equals(Buffer.concat(ref.levels[0]!.slice(0, 5))));
      assert.deepEqual(decodeBundle(readFileSync(join(dir, 'tile/entries/000.p/5'))), [0, 1, 2, 3, 4].map(entryOf));
      add(300);
      await s.sync();
      await s.writePartialTiles(300);
      assert.ok(readFileSync(join(dir, 'tile/0/001.p/44')).equals(Buffer.concat(ref.levels[0]!.slice(256, 300))));
      assert.ok(readFileSync(join(dir, 'tile/1/000.p/1')).equals(ref.levels[8]![0]!));
      assert.equal(decodeBundle(readFileSync(join(dir, 'tile/entries/001.p/44'))).length, 44);
      assert.ok(existsSync(join(dir, 'tile/0/000')), 'the full tile below the size is on disk');
      assert.ok(!existsSync(join(dir, 'tile/0/000.p')), 'the partial of a now full tile is removed');
      assert.ok(!existsSync(join(dir, 'tile/entries/000.p')), 'the partial bundle of a now full bundle is removed');
      assert.deepEqual(listFiles(join(dir, 'tile')), ['0/000', '0/001.p/44', '1/000.p/1', 'entries/000', 'entries/001.p/44']);
    });
  });

  describe('torn tails and damage', () => {
    /** A store with batches of 10, 5 and then `last` entries (one sync each), closed. */
    async function prepared(last: number): Promise<{ dir: string; wal: string; bytes: Buffer }> {
      const dir = newDir();
      const s = await openStore(dir);
      let i = 0;
      for (const batch of [10, 5, last]) {
        for (let k = 0; k < batch; k++) s.append(entryOf(++i));
        await s.sync();
      }
      await s.close();
      const wal = walSegments(dir)[0]!;
      return { dir, wal, bytes: readFileSync(wal) };
    }

    async function reopenedEntries(dir: string): Promise<Buffer[]> {
      const s = await openStore(dir);
      const out: Buffer[] = [];
      for (let i = 0; i < s.size; i++) out.push(s.entry(i));
      await s.close();
      return out;
    }

    it('truncating the WAL at every byte of the last batch keeps the prefix before it', async () => {
      const { dir, wal, bytes } = await prepared(1);
      const last = batchesOf(wal).at(-1)!;
      const expected = Array.from({ length: 15 }, (_, k) => entryOf(k + 1));
      for (let cut = last.at; cut < bytes.length; cut++) {
        writeFileSync(wal, bytes.subarray(0, cut));
        assert.deepEqual(await reopenedEntries(dir), expected, `cut at ${cut}`);
        assert.equal(statSync(wal).size, last.at, `trimmed to the last whole batch (cut ${cut})`);
      }
      writeFileSync(wal, bytes);
      assert.equal((await reopenedEntries(dir)).length, 16);
    });

    it('keeps the whole frames of a torn multi-frame batch, and later batches append cleanly', async () => {
      const { dir, wal, bytes } = await prepared(3);
      const last = batchesOf(wal).at(-1)!;
      // Cut inside the third frame of the last batch.
      const cut = bytes.length - 2;
      writeFileSync(wal, bytes.subarray(0, cut));
      const s = await openStore(dir);
      assert.equal(s.size, 17, '15 + the two whole frames');
      for (let i = 0; i < 17; i++) assert.deepEqual(s.entry(i), entryOf(i + 1));
      s.append(entryOf(1000));
      await s.sync();
      await s.close();
      assert.deepEqual(
        batchesOf(wal).map((b) => b.count),
        [10, 5, 2, 1],
      );
      assert.ok(batchesOf(wal)[2]!.at === last.at);
      const r = await openStore(dir);
      assert.equal(r.size, 18);
      assert.deepEqual(r.entry(17), entryOf(1000));
    });

    it('trims a zero-filled tail (a half-written batch) and a damaged last batch', async () => {
      const { dir, wal, bytes } = await prepared(2);
      writeFileSync(wal, Buffer.concat([bytes, Buffer.alloc(5000)]));
      assert.equal((await reopenedEntries(dir)).length, 17);
      const bad = Buffer.from(bytes);
      bad[bad.length - 1]! ^= 0xff; // last byte of the last frame: its check fails
      writeFileSync(wal, bad);
      assert.equal((await reopenedEntries(dir)).length, 16, 'the damaged frame and nothing before it is dropped');
    });

    it('a damaged byte inside an earlier batch is AUDIT_STORE_CORRUPT naming the file and offset', async () => {
      const { dir, wal, bytes } = await prepared(3);
      const [first, second] = batchesOf(wal);
      for (const at of [first!.at + BATCH_HEADER_BYTES + FRAME_HEADER_BYTES + 3, first!.at + 5, second!.at + 1, second!.at + BATCH_HEADER_BYTES + 2]) {
        const bad = Buffer.from(bytes);
        bad[at]! ^= 0x40;
        writeFileSync(wal, bad);
        const err = await rejectsWith(AuditStore.open(dir, { flushEveryMs: 0 }), 'AUDIT_STORE_CORRUPT');
        assert.match(err.message, new RegExp(`${wal.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} at offset \\d+`));
      }
      writeFileSync(wal, bytes);
      assert.equal((await reopenedEntries(dir)).length, 18, 'the undamaged file still opens');
    });

    it('refuses a WAL that lost entries already in a durable full bundle', async () => {
      const dir = newDir();
      const s = await openStore(dir);
      for (let i = 0; i < 200; i++) s.append(entryOf(i));
      await s.sync();
      for (let i = 200; i < 300; i++) s.append(entryOf(i));
      await s.sync();
      await s.close();
      assert.ok(existsSync(join(dir, 'tile/entries/000')));
      const wal = walSegments(dir)[0]!;
      truncateSync(wal, batchesOf(wal)[1]!.at);
      await rejectsWith(AuditStore.open(dir, { flushEveryMs: 0 }), 'AUDIT_STORE_CORRUPT');
    });

    it('a tile or bundle file of the wrong size is AUDIT_STORE_CORRUPT when it is read', async () => {
      const dir = newDir();
      const s = await openStore(dir, { segmentBytes: 4096 });
      for (let i = 0; i < 2048; i++) {
        s.append(entryOf(i));
        if (i % 100 === 99) await s.sync();
      }
      await s.sync();
      await s.writePartialTiles(2048);
      await s.close();
      const bundle = join(dir, 'tile/entries/001');
      writeFileSync(bundle, readFileSync(bundle).subarray(0, 1000));
      const r = await openStore(dir, { tileCacheSize: 1 });
      assert.ok(r.tiledSize >= 512, `tile 1 is below the WAL (tiled ${r.tiledSize})`);
      const err = await rejectsWith(() => r.entry(300), 'AUDIT_STORE_CORRUPT');
      assert.ok(err.message.includes(bundle));
      await r.close();
      // Reopening rebuilds the right edge from the level-0 tiles below the WAL.
      const tile = join(dir, 'tile/0/001');
      writeFileSync(tile, Buffer.alloc(100));
      const err2 = await rejectsWith(AuditStore.open(dir), 'AUDIT_STORE_CORRUPT');
      assert.ok(err2.message.includes(tile));
    });

    it('removes leftover temp files on open', async () => {
      const dir = newDir();
      await (await openStore(dir)).close();
      writeFileSync(join(dir, 'state/tmp/123-4.tmp'), 'half a tile');
      await (await openStore(dir)).close();
      assert.deepEqual(readdirSync(join(dir, 'state/tmp')), []);
    });
  });

  describe('checkpoints', () => {
    const note = (size: number): string => `example.com/log\n${size}\nroot-${size}\n\n— example.com/log sig${size}\n`;

    it('refuses a size beyond durableSize or below the latest, saves and replays the rest', async () => {
      const dir = newDir();
      const s = await openStore(dir);
      for (let i = 0; i < 10; i++) s.append(entryOf(i));
      await rejectsWith(s.saveCheckpoint(10, note(10)), 'AUDIT_CHECKPOINT_REFUSED');
      assert.equal(s.latestCheckpoint(), undefined);
      await s.sync();
      await s.saveCheckpoint(5, note(5));
      await s.saveCheckpoint(10, note(10));
      await rejectsWith(s.saveCheckpoint(9, note(9)), 'AUDIT_CHECKPOINT_REFUSED');
      assert.deepEqual(s.latestCheckpoint(), { size: 10, note: note(10) });
      assert.equal(readFileSync(join(dir, 'checkpoint'), 'utf8'), note(10));
      await s.close();
      const r = await openStore(dir);
      assert.deepEqual(r.latestCheckpoint(), { size: 10, note: note(10) });
      const all = [];
      for await (const c of r.checkpoints()) all.push(c);
      assert.deepEqual(all, [
        { size: 5, note: note(5) },
        { size: 10, note: note(10) },
      ]);
    });

    it('trims a torn history record and heals the checkpoint file', async () => {
      const dir = newDir();
      const s = await openStore(dir);
      for (let i = 0; i < 10; i++) s.append(entryOf(i));
      await s.sync();
      await s.saveCheckpoint(4, note(4));
      await s.saveCheckpoint(10, note(10));
      await s.close();
      const history = join(dir, 'state/checkpoints.log');
      const full = readFileSync(history);
      for (const cut of [full.length - 1, full.length - 10, full.length - 30]) {
        writeFileSync(history, full.subarray(0, cut));
        const r = await openStore(dir);
        assert.deepEqual(r.latestCheckpoint(), { size: 4, note: note(4) }, `cut at ${cut}`);
        assert.equal(readFileSync(join(dir, 'checkpoint'), 'utf8'), note(4), 'checkpoint file matches the history again');
        await r.close();
      }
    });

    it('a damaged record in the middle of the history is AUDIT_STORE_CORRUPT', async () => {
      const dir = newDir();
      const s = await openStore(dir);
      for (let i = 0; i < 10; i++) s.append(entryOf(i));
      await s.sync();
      for (const size of [1, 2, 3]) await s.saveCheckpoint(size, note(size));
      await s.close();
      const history = join(dir, 'state/checkpoints.log');
      const bad = readFileSync(history);
      bad[30]! ^= 1; // inside the first record's note
      writeFileSync(history, bad);
      const r = await openStore(dir);
      await rejectsWith(
        (async () => {
          for await (const _ of r.checkpoints()) void _;
        })(),
        'AUDIT_STORE_CORRUPT',
      );
      await r.close();
      // With the tail damaged too, open itself scans and refuses.
      bad[bad.length - 30]! ^= 1;
      writeFileSync(history, bad);
      await rejectsWith(AuditStore.open(dir, { flushEveryMs: 0 }), 'AUDIT_STORE_CORRUPT');
    });

    it('refuses to open when a saved checkpoint is larger than what the WAL recovered', async () => {
      const dir = newDir();
      const s = await openStore(dir);
      for (let i = 0; i < 5; i++) s.append(entryOf(i));
      await s.sync();
      for (let i = 5; i < 10; i++) s.append(entryOf(i));
      await s.sync();
      await s.saveCheckpoint(10, note(10));
      await s.close();
      const wal = walSegments(dir)[0]!;
      truncateSync(wal, batchesOf(wal)[1]!.at);
      const err = await rejectsWith(AuditStore.open(dir, { flushEveryMs: 0 }), 'AUDIT_STORE_CORRUPT');
      assert.match(err.message, /checkpoint/);
    });
  });
});
