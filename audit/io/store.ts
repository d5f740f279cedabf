/**
 * AuditStore: the audit log on disk. The read side is plain C2SP tlog-tiles static files
 * (https://c2sp.org/tlog-tiles: `checkpoint`, `tile/<L>/<N>[.p/<W>]`, `tile/entries/<N>[.p/<W>]`)
 * that any web server can serve; entries not yet in a full tile live in a write-ahead log
 * (wal-format.ts). Directory layout: layout.ts. Recovery: recover.ts.
 *
 * Pipeline, all on the event loop except the file system calls:
 * - `append` copies the entry into a WAL frame in memory and returns its index: no syscall, no
 *   Promise. Hashing runs later in slices (≤ 1,024 entries or 1 MiB each, one per setImmediate).
 * - `sync` is a group commit: one write + fdatasync covers every entry appended before it, for
 *   all callers waiting; at most one batch is in flight, which is what makes torn tails decidable.
 *   A timer (`flushEveryMs`) makes entries durable without callers.
 * - Full tiles and bundles whose entries are durable are written in the background (temp file,
 *   fdatasync, rename, directory fsync); then WAL segments they cover are deleted.
 *
 * Trust: entries are opaque bytes (attacker-influenced content, never parsed here); the files
 * under the root are ours but may be damaged, and every length read from them is checked.
 * An I/O failure is sticky: after a failed write or fsync the store refuses everything with
 * AUDIT_STORE_IO (after a failed fsync the kernel may have dropped the data), until reopened.
 */
import { existsSync } from 'node:fs';
import { mkdir, open, readdir, rm, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { CageError } from '../../core/errors.js';
import { HASH_SIZE } from '../hash.js';
import { EntryArena } from './arena.js';
import type { SavedCheckpoint } from './checkpoint-log.js';
import { AtomicWriter, fsyncDir, ioError, writeAllAt } from './files.js';
import { CheckpointHistory } from './history.js';
import { acquireLock, corrupt, FORMAT_LINE, releaseLock, StoreLayout } from './layout.js';
import { TILE_WIDTH } from './paths.js';
import { listSegments, recoverWal } from './recover.js';
import { TileCache, tileKey, type PendingTile } from './tile-cache.js';
import { nodeOffset, RightEdge, TILE_BYTES } from './tree.js';
import { BATCH_HEADER_BYTES, encodeBatchHeader, MAX_ENTRY_BYTES } from './wal-format.js';

export type { SavedCheckpoint } from './checkpoint-log.js';
export { MAX_ENTRY_BYTES } from './wal-format.js';

export interface AuditStoreOptions {
  /** Make appended entries durable at least this often, in ms, without a `sync()` call; 0 = never. Default 1000. */
  flushEveryMs?: number;
  /** Start a new WAL segment once the current one holds this many bytes. Default 64 MiB. */
  segmentBytes?: number;
  /** Expanded full tiles (16 KiB each) kept in memory for `hashAt`. Default 256. */
  tileCacheSize?: number;
}

const DEFAULTS: Required<AuditStoreOptions> = { flushEveryMs: 1000, segmentBytes: 64 << 20, tileCacheSize: 256 };

const HASH_SLICE_ENTRIES = 1024;
const HASH_SLICE_BYTES = 1 << 20;
/** One WAL batch (one write) at most; a round writes several if more is pending. */
const MAX_BATCH_BYTES = 64 << 20;
/** Level-0 tiles (and the tiles above completed with them) written per tile batch. */
const FLUSH_BATCH_TILES = 32;
/** Tile files written at once: leaves one of libuv's four pool threads to the WAL's fdatasync. */
const FLUSH_CONCURRENCY = 3;
const BUNDLE_CACHE = 4;

function checkOptions(opts: AuditStoreOptions): Required<AuditStoreOptions> {
  const out = { ...DEFAULTS };
  const min: Record<keyof AuditStoreOptions, number> = { flushEveryMs: 0, segmentBytes: 1024, tileCacheSize: 1 };
  for (const [key, value] of Object.entries(opts)) {
    if (!(key in DEFAULTS)) throw new CageError({ code: 'CONFIG_INVALID', message: `audit store: unknown option '${key}'` });
    if (value === undefined) continue;
    const k = key as keyof AuditStoreOptions;
    if (!Number.isSafeInteger(value) || (value as number) < min[k]) {
      throw new CageError({ code: 'CONFIG_INVALID', message: `audit store: option '${key}' must be an integer ≥ ${min[k]}, got ${String(value)}` });
    }
    out[k] = value as number;
  }
  return out;
}

interface Deferred<T> {
  promise: Promise<T>;
  resolve: (v: T) => void;
  reject: (e: unknown) => void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // Rejections reach whoever awaits; a round nobody waits for must not be "unhandled".
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

function outOfRange(message: string): CageError {
  return new CageError({ code: 'AUDIT_INDEX_OUT_OF_RANGE', message: `audit store: ${message}` });
}

export class AuditStore {
  private readonly writer: AtomicWriter;
  private readonly arena = new EntryArena();
  private readonly cache: TileCache;
  private readonly edge: RightEdge;
  private history!: CheckpointHistory;

  private _size = 0;
  private _integrated = 0;
  private _durable = 0;
  private _tiled = 0;

  private segments: number[] = [];
  private walFh: FileHandle | undefined;
  private walBytes = 0;

  private hashScheduled = false;
  private hashWaiter: { target: number; resolve: () => void } | undefined;

  private committing = false;
  private commitRun: Promise<void> = Promise.resolve();
  private wantDurable = 0;
  private inflight: { target: number; round: Deferred<number> } | undefined;
  private next: Deferred<number> | undefined;
  /** The largest size a caller waiting on `next` needs durable. */
  private nextTarget = 0;

  private flushing = false;
  private flushRun: Promise<void> = Promise.resolve();
  private tileWaiters: { target: number; d: Deferred<void> }[] = [];
  /** Partial tile directories (`N.p`) written, by tile key: removed once the full tile is durable. */
  private readonly partialDirs = new Map<number, { end: number; dirs: Set<string> }>();
  private readonly bundles = new Map<number, { buf: Buffer; starts: Uint32Array }>();

  private checkpointChain: Promise<unknown> = Promise.resolve();
  private failure: CageError | undefined;
  /** 'closing': no appends, but close() itself still syncs; 'closed': nothing but reads. */
  private state: 'open' | 'closing' | 'closed' = 'open';
  private closed: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly layout: StoreLayout,
    private readonly opts: Required<AuditStoreOptions>,
  ) {
    this.writer = new AtomicWriter(layout.tmp);
    this.cache = new TileCache(layout, opts.tileCacheSize);
    this.edge = new RightEdge((level, n, expanded) => this.cache.addPending(level, n, expanded));
  }

  /** Opens (creating if needed) the store at `dir`, recovering from a crash if there was one. */
  static async open(dir: string, opts: AuditStoreOptions = {}): Promise<AuditStore> {
    const store = new AuditStore(new StoreLayout(resolve(dir)), checkOptions(opts));
    let locked = false;
    try {
      await mkdir(store.layout.state, { recursive: true });
      acquireLock(store.layout);
      locked = true;
      await store.recover();
    } catch (e) {
      await store.walFh?.close();
      if (locked) releaseLock(store.layout);
      if (e instanceof CageError) throw e;
      throw ioError(`cannot open ${store.layout.root}`, e);
    }
    return store;
  }

  private async recover(): Promise<void> {
    const { layout, writer } = this;
    for (const d of [layout.root, layout.state, layout.wal, layout.tmp, layout.tiles]) await writer.ensureDir(d);
    await writer.syncDirs();
    for (const name of await readdir(layout.tmp)) await rm(join(layout.tmp, name), { recursive: true, force: true });
    let segments = await listSegments(layout);
    let format: string | undefined;
    try {
      const fh = await open(layout.format, 'r');
      format = (await fh.readFile()).toString('utf8');
      await fh.close();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    if (format === undefined) {
      if (segments.length > 0) throw corrupt(`${layout.format} is missing but WAL segments exist`);
      await writer.writeDurable(layout.format, [Buffer.from(FORMAT_LINE)]);
    } else if (format !== FORMAT_LINE) {
      throw corrupt(`${layout.format}: unknown store format ${JSON.stringify(format.trim())}`);
    }
    if (segments.length === 0) {
      // A new log: an existing first bundle would mean the WAL was lost.
      const first = layout.bundle(0);
      if (existsSync(first)) throw corrupt(`${first} exists but the WAL is missing`);
      await (await open(layout.segment(0), 'wx')).close();
      await fsyncDir(layout.wal);
      segments = [0];
    }
    const got = await recoverWal(layout, segments, this.edge, this.cache, this.arena);
    this.segments = got.segments;
    this.walBytes = got.lastSegmentBytes;
    this._size = this._integrated = this._durable = this.wantDurable = got.size;
    this._tiled = got.tiled;
    this.walFh = await open(layout.segment(this.segments[this.segments.length - 1]!), 'r+');
    this.findPartials();
    this.history = await CheckpointHistory.open(layout, writer);
    const latest = this.history.latest();
    if (latest !== undefined && latest.size > got.size) {
      await this.history.close();
      throw corrupt(`the latest saved checkpoint has size ${latest.size}, but only ${got.size} entries were recovered: acknowledged entries are lost`);
    }
    if (this.opts.flushEveryMs > 0) {
      this.timer = setInterval(() => this.requestDurable(), this.opts.flushEveryMs);
      this.timer.unref();
    }
    this.kickFlush();
  }

  /**
   * Registers partial tiles left by an earlier run for tiles not yet durable as full tiles (from
   * the first tile not on disk to the right edge, per level), so they are removed in time.
   */
  private findPartials(): void {
    for (let k = 0, span = TILE_WIDTH; k < this.edge.levels.length; k++, span *= TILE_WIDTH) {
      for (let n = Math.floor(this._tiled / span); n <= this.edge.levels[k]!.number; n++) {
        const dirs = [`${this.layout.tile(k, n)}.p`];
        if (k === 0) dirs.push(`${this.layout.bundle(n)}.p`);
        const found = dirs.filter((d) => existsSync(d));
        if (found.length > 0) this.partialDirs.set(tileKey(k, n), { end: (n + 1) * span, dirs: new Set(found) });
      }
    }
  }

  /** The store's root directory (serve `checkpoint` and `tile/` from here). */
  get dir(): string {
    return this.layout.root;
  }

  /** Entries appended (the next index). */
  get size(): number {
    return this._size;
  }

  /** Entries written and fdatasync'ed to the WAL: they survive a crash. */
  get durableSize(): number {
    return this._durable;
  }

  /** Entries whose leaf hashes are in the tree: `hashAt` answers for subtrees below this. */
  get integratedSize(): number {
    return this._integrated;
  }

  /** Entries in durable full tiles and bundles on disk (a multiple of 256). */
  get tiledSize(): number {
    return this._tiled;
  }

  /**
   * Appends one entry and returns its index. Synchronous and cheap: the entry is copied into a
   * buffer; it is hashed soon and durable after the next `sync()` or flush tick.
   */
  append(entry: Uint8Array): number {
    if (this.failure !== undefined) throw this.failure;
    if (this.state !== 'open') throw closedError();
    if (entry.length > MAX_ENTRY_BYTES) {
      throw new CageError({ code: 'AUDIT_ENTRY_TOO_LARGE', message: `audit store: an entry is ${entry.length} bytes; entry bundles hold at most ${MAX_ENTRY_BYTES}` });
    }
    const index = this._size;
    this.arena.append(entry, index);
    this._size = index + 1;
    if (!this.hashScheduled) {
      this.hashScheduled = true;
      setImmediate(this.hashSlice);
    }
    return index;
  }

  private readonly onLeaf = (leaf: Buffer): void => this.edge.add(0, leaf, 0);

  private readonly hashSlice = (): void => {
    this.hashScheduled = false;
    const to = Math.min(this._size, this._integrated + HASH_SLICE_ENTRIES);
    if (this._integrated < to) this._integrated = this.arena.hashFrom(this._integrated, to, HASH_SLICE_BYTES, this.onLeaf);
    const w = this.hashWaiter;
    if (w !== undefined && this._integrated >= w.target) {
      this.hashWaiter = undefined;
      w.resolve();
    }
    if (this._integrated < this._size) {
      this.hashScheduled = true;
      setImmediate(this.hashSlice);
    }
  };

  private waitHashed(target: number): Promise<void> | undefined {
    if (this._integrated >= target) return undefined;
    return new Promise((resolve) => (this.hashWaiter = { target, resolve }));
  }

  /**
   * Group commit: resolves with the durable size once every entry appended before the call is
   * written and fdatasync'ed. Concurrent callers share one write and one fdatasync.
   */
  sync(): Promise<number> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.state === 'closed') return Promise.reject(closedError());
    return this.syncInternal();
  }

  private syncInternal(): Promise<number> {
    const target = this._size;
    if (this._durable >= target) return Promise.resolve(this._durable);
    if (this.inflight !== undefined && this.inflight.target >= target) return this.inflight.round.promise;
    this.next ??= deferred<number>();
    if (target > this.nextTarget) this.nextTarget = target;
    const p = this.next.promise;
    this.startCommit();
    return p;
  }

  private requestDurable(): void {
    if (this._size <= this._durable || this.failure !== undefined) return;
    this.wantDurable = this._size;
    this.startCommit();
  }

  private startCommit(): void {
    if (this.committing) return;
    this.committing = true;
    this.commitRun = this.commitLoop();
  }

  /**
   * One round at a time: wait until everything appended is hashed (the frames' checks are leaf
   * hashes), write it as one batch, fdatasync, resolve everyone the round covers. Callers that
   * arrive during a round wait for the next one, unless the round already covers them.
   */
  private async commitLoop(): Promise<void> {
    try {
      for (;;) {
        if (this.failure !== undefined) break;
        const waiting = this.next;
        if (waiting === undefined && this.wantDurable <= this._durable) break;
        this.next = undefined;
        if (waiting !== undefined && this.nextTarget <= this._durable) {
          waiting.resolve(this._durable);
          continue;
        }
        const round = waiting ?? deferred<number>();
        const inflight = { target: this._size, round };
        this.inflight = inflight;
        await this.waitHashed(inflight.target);
        // Entries appended and hashed meanwhile ride along.
        inflight.target = this._integrated;
        while (this._durable < inflight.target) await this.writeBatch(inflight.target);
        this.inflight = undefined;
        round.resolve(this._durable);
        this.kickFlush();
      }
    } catch (e) {
      this.fail(ioError('cannot write the WAL', e));
    } finally {
      this.committing = false;
    }
  }

  /** Writes one batch of frames from the durable size towards `target`, and fdatasyncs it. */
  private async writeBatch(target: number): Promise<void> {
    const from = this._durable;
    if (this.walBytes >= this.opts.segmentBytes) await this.rotate(from);
    const { slices, bytes, to } = this.arena.frames(from, target, MAX_BATCH_BYTES);
    const header = encodeBatchHeader({ payloadBytes: bytes, count: to - from, firstIndex: from, fileOffset: this.walBytes });
    const fh = this.walFh!;
    await writeAllAt(fh, [header, ...slices], this.walBytes);
    await fh.datasync();
    this.walBytes += BATCH_HEADER_BYTES + bytes;
    this._durable = to;
  }

  /** Starts a new WAL segment at entry `first` (the old one's last batch is already durable). */
  private async rotate(first: number): Promise<void> {
    const fh = await open(this.layout.segment(first), 'wx');
    try {
      await fsyncDir(this.layout.wal);
    } catch (e) {
      await fh.close();
      throw e;
    }
    const old = this.walFh!;
    this.walFh = fh;
    this.walBytes = 0;
    this.segments.push(first);
    await old.close();
  }

  private fail(err: CageError): void {
    if (this.failure !== undefined) return;
    this.failure = err;
    this.inflight?.round.reject(err);
    this.next?.reject(err);
    this.next = undefined;
    for (const w of this.tileWaiters.splice(0)) w.d.reject(err);
  }

  // ---- full tiles in the background ----

  private kickFlush(): void {
    if (this.flushing || this.failure !== undefined || this.cache.nextPendingEnd() > this._durable) return;
    this.flushing = true;
    this.flushRun = this.flushLoop();
  }

  private async flushLoop(): Promise<void> {
    try {
      for (;;) {
        if (this.failure !== undefined) break;
        const batch = this.cache.takePending(this._durable, FLUSH_BATCH_TILES);
        if (batch.length === 0) break;
        await this.writer.exclusive(async () => {
          let next = 0;
          const worker = async (): Promise<void> => {
            while (next < batch.length) await this.writeFullTile(batch[next++]!);
          };
          await Promise.all(Array.from({ length: Math.min(FLUSH_CONCURRENCY, batch.length) }, worker));
          await this.writer.syncDirs();
        });
        this._tiled = batch[batch.length - 1]!.end;
        this.cache.flushed(batch);
        this.arena.release(this._tiled);
        await this.dropCovered();
        const waiting = this.tileWaiters;
        this.tileWaiters = waiting.filter((w) => w.target > this._tiled);
        for (const w of waiting) if (w.target <= this._tiled) w.d.resolve();
      }
    } catch (e) {
      this.fail(ioError('cannot write tiles', e));
    } finally {
      this.flushing = false;
    }
  }

  private async writeFullTile(t: PendingTile): Promise<void> {
    await this.writer.write(this.layout.tile(t.level, t.number), [t.expanded.subarray(0, TILE_BYTES)]);
    if (t.level === 0) await this.writer.write(this.layout.bundle(t.number), [this.arena.bundle(t.number * TILE_WIDTH, TILE_WIDTH)]);
  }

  /** After a tile batch is durable: delete the WAL segments and partial tiles it makes redundant. */
  private async dropCovered(): Promise<void> {
    let dropped = false;
    while (this.segments.length > 1 && this.segments[1]! <= this._tiled) {
      await unlink(this.layout.segment(this.segments[0]!));
      this.segments.shift();
      dropped = true;
    }
    // Without this, a later crash could bring back an older segment but not a newer one.
    if (dropped) await fsyncDir(this.layout.wal);
    await this.writer.exclusive(() => this.dropStalePartials());
  }

  /** Removes partial tiles whose full tile is durable (run inside an exclusive section). */
  private async dropStalePartials(): Promise<void> {
    for (const [key, p] of this.partialDirs) {
      if (p.end > this._tiled) continue;
      this.partialDirs.delete(key);
      for (const d of p.dirs) {
        await rm(d, { recursive: true, force: true });
        this.writer.forget(d);
      }
    }
  }

  private waitTiled(target: number): Promise<void> {
    if (this._tiled >= target) return Promise.resolve();
    if (this.failure !== undefined) return Promise.reject(this.failure);
    const d = deferred<void>();
    this.tileWaiters.push({ target, d });
    this.kickFlush();
    return d.promise;
  }

  // ---- reads ----

  /**
   * The RFC 9162 hash of the complete subtree of 2^level leaves starting at leaf index·2^level
   * (level 0: a leaf hash). It must lie within `integratedSize`. This is the proof code's
   * HashReader: `(level, index) => Uint8Array`, bound, so `store.hashAt` can be passed as is.
   * May read a tile file (synchronously) on a cache miss.
   */
  readonly hashAt = (level: number, index: number): Buffer => {
    if (!Number.isInteger(level) || level < 0 || level > 63 || !Number.isSafeInteger(index) || index < 0) {
      throw outOfRange(`no subtree at level ${level}, index ${index}`);
    }
    if ((index + 1) * 2 ** level > this._integrated) {
      throw outOfRange(`subtree ${level}/${index} is beyond the integrated size ${this._integrated}`);
    }
    const k = Math.floor(level / 8);
    const j = level - 8 * k;
    const perTile = TILE_WIDTH >> j;
    const n = Math.floor(index / perTile);
    const at = nodeOffset(j, index - n * perTile);
    return Buffer.from(this.cache.expanded(this.edge, k, n).subarray(at, at + HASH_SIZE));
  };

  /** A copy of entry `index` (< size), from memory or from its entry bundle. */
  entry(index: number): Buffer {
    if (!Number.isSafeInteger(index) || index < 0 || index >= this._size) throw outOfRange(`no entry ${index} (size ${this._size})`);
    if (index >= this.arena.firstHeld()) return this.arena.entry(index);
    const n = Math.floor(index / TILE_WIDTH);
    let b = this.bundles.get(n);
    if (b === undefined) {
      b = this.layout.readBundle(n);
      this.bundles.set(n, b);
      if (this.bundles.size > BUNDLE_CACHE) this.bundles.delete(this.bundles.keys().next().value!);
    }
    const i = index - n * TILE_WIDTH;
    return Buffer.from(b.buf.subarray(b.starts[i]!, b.starts[i + 1]! - 2));
  }

  // ---- publishing ----

  /**
   * Makes the read side complete for a tree of `size` entries (≤ durableSize): waits until every
   * full tile below it is on disk, then writes the partial tiles `tile/<L>/<N>.p/<W>` and the
   * partial bundle `tile/entries/<N>.p/<W>` that size needs (C2SP: width floor(size/256^L) mod 256),
   * each atomically. Partial tiles are removed once their full tile is durable.
   */
  async writePartialTiles(size: number): Promise<void> {
    if (this.failure !== undefined) throw this.failure;
    if (!Number.isSafeInteger(size) || size < 0 || size > this._durable) throw outOfRange(`tree size ${size} is beyond the durable size ${this._durable}`);
    await this.waitTiled(size - (size % TILE_WIDTH));
    await this.writer.exclusive(async () => {
      for (let k = 0, span = 1; span <= size; k++, span *= TILE_WIDTH) {
        const w = Math.floor(size / span) % TILE_WIDTH;
        const n = Math.floor(size / (span * TILE_WIDTH));
        // A zero width has no partial tile; a full tile already on disk serves this size too.
        if (w === 0 || (n + 1) * span * TILE_WIDTH <= this._tiled) continue;
        const key = tileKey(k, n);
        let p = this.partialDirs.get(key);
        if (p === undefined) this.partialDirs.set(key, (p = { end: (n + 1) * span * TILE_WIDTH, dirs: new Set() }));
        const tile = this.layout.tile(k, n, w);
        await this.writer.write(tile, [this.cache.expanded(this.edge, k, n).subarray(0, w * HASH_SIZE)]);
        p.dirs.add(dirname(tile));
        if (k === 0) {
          const parts: Buffer[] = [];
          for (let i = n * TILE_WIDTH; i < size; i++) {
            const e = this.entry(i);
            const len = Buffer.allocUnsafe(2);
            len.writeUInt16BE(e.length);
            parts.push(len, e);
          }
          const bundle = this.layout.bundle(n, w);
          await this.writer.write(bundle, [Buffer.concat(parts)]);
          p.dirs.add(dirname(bundle));
        }
      }
      await this.dropStalePartials();
      await this.writer.syncDirs();
    });
    if (this.failure !== undefined) throw this.failure;
  }

  /**
   * Saves a signed checkpoint for a tree of `size` entries: appended durably to the history, then
   * written atomically to `checkpoint`. Refused (AUDIT_CHECKPOINT_REFUSED) if `size` is beyond
   * `durableSize` or below the latest saved checkpoint. Publish partial tiles first.
   */
  saveCheckpoint(size: number, note: string): Promise<void> {
    const run = this.checkpointChain.then(async () => {
      if (this.failure !== undefined) throw this.failure;
      if (this.state === 'closed') throw closedError();
      if (typeof note !== 'string' || note.length === 0) throw refused('the checkpoint note is empty');
      if (!Number.isSafeInteger(size) || size < 0 || size > this._durable) throw refused(`tree size ${size} is beyond the durable size ${this._durable}`);
      const latest = this.history.latest();
      if (latest !== undefined && size < latest.size) throw refused(`tree size ${size} is below the latest saved checkpoint's ${latest.size}`);
      try {
        await this.history.save(size, note, this.writer);
      } catch (e) {
        this.fail(ioError('cannot save the checkpoint', e));
        throw this.failure;
      }
    });
    this.checkpointChain = run.catch(() => undefined);
    return run;
  }

  /** The latest saved checkpoint, if any. */
  latestCheckpoint(): SavedCheckpoint | undefined {
    return this.history.latest();
  }

  /** Every saved checkpoint, oldest first (streamed from the history file). */
  checkpoints(): AsyncGenerator<SavedCheckpoint> {
    return this.history.records();
  }

  /**
   * Makes everything appended durable, writes the full tiles that are due, and releases the
   * store. Appends after `close()` throw; calling it again returns the same promise.
   */
  close(): Promise<void> {
    this.closed ??= this.closeOnce();
    return this.closed;
  }

  private async closeOnce(): Promise<void> {
    this.state = 'closing';
    clearInterval(this.timer);
    let error: unknown;
    try {
      if (this.failure === undefined) {
        await this.syncInternal();
        await this.waitTiled(this._durable - (this._durable % TILE_WIDTH));
      }
      await this.checkpointChain;
    } catch (e) {
      error = e;
    }
    await Promise.all([this.commitRun, this.flushRun, this.writer.idle()]);
    this.state = 'closed';
    try {
      await this.walFh?.close();
      await this.history.close();
    } catch (e) {
      error ??= ioError('cannot close files', e);
    }
    releaseLock(this.layout);
    if (error !== undefined) throw error;
  }
}

function closedError(): CageError {
  return new CageError({ code: 'AUDIT_STORE_IO', message: 'audit store: the store is closed' });
}

function refused(message: string): CageError {
  return new CageError({ code: 'AUDIT_CHECKPOINT_REFUSED', message: `audit store: checkpoint refused: ${message}` });
}
