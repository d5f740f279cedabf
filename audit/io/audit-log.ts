/**
 * The cage's audit log: the durable tile store (store.ts) plus what makes it a transparency log
 * in service — index reservation for streamed exchanges, group-committed durability for `sync`
 * routes, and a checkpointer that signs a C2SP checkpoint every `checkpointIntervalMs` or every
 * `checkpointRecords` records, whichever comes first (RFC 9162 tree, C2SP tlog-checkpoint).
 *
 * Ordering: records enter the Merkle tree in index order. A reserved index (its response still
 * streaming) holds back the records after it until it is filled, or until `maxPendingMs` passes:
 * then the log writes the record its reserver sealed so far (marked incomplete) and moves on;
 * a late fill is dropped (and counted).
 *
 * Durability: async records are fsynced before the checkpoint that covers them is published;
 * `durable(i)` resolves once record i is fsynced (one fsync serves every waiter of a batch).
 * A published checkpoint always covers durable records only, so after a crash it stays a valid
 * prefix of the reopened log.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync, renameSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { CageError } from '../../core/errors.js';
import { signCheckpoint, type Checkpoint } from '../checkpoint.js';
import { consistencyProof, inclusionProof, treeRoot } from '../merkle.js';
import { generateSigner, parseSignerKey, type NoteSigner } from '../note.js';
import { formatProof } from '../proof.js';
import { AuditStore } from './store.js';

export interface AuditLogOptions {
  /** Folder of the log (tiles, WAL, checkpoints, key, origin). */
  dir: string;
  /** Origin line; default: the stored one, else `http-cage/<hostname>`. A different one than stored is refused. */
  origin?: string;
  /** Signer key file (C2SP `PRIVATE+KEY+…`); default `<dir>/state/log.key` (private, never served), created once (0600). */
  keyFile?: string;
  checkpointIntervalMs?: number;
  checkpointRecords?: number;
  maxPendingMs?: number;
  /** Wall clock for pending deadlines (tests inject one). */
  now?: () => number;
  /** Called with unexpected background failures (fsync, checkpoint). */
  onError?: (err: unknown) => void;
}

/**
 * Witnessing (C2SP tlog-witness): given the log-signed checkpoint note of `size` and the size of
 * the latest published one, returns the note with the cosignatures gathered when the quorum is
 * met, `undefined` when witnessing is off (publish the log-signed note), or `null` when the quorum
 * was not met (publish nothing; the previous checkpoint stays the latest).
 */
export type Witness = (note: string, size: number, publishedSize: number) => Promise<string | null | undefined>;

interface Slot {
  record: Uint8Array | null;
  seal: (() => Uint8Array) | null;
  deadline: number;
}

interface DurableWaiter {
  index: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class AuditLog {
  readonly origin: string;
  readonly signer: NoteSigner;
  /** C2SP verifier key of the log (what `cage audit verify --log-key` takes). */
  readonly verifierKey: string;
  private readonly store: AuditStore;
  private readonly interval: number;
  private readonly everyRecords: number;
  private readonly maxPending: number;
  private readonly now: () => number;
  private readonly onError: (err: unknown) => void;
  /** Reserved or queued slots waiting for their turn; slots[0] has index `queuedFrom`. */
  private slots: Slot[] = [];
  private queuedFrom = 0;
  private waiters: DurableWaiter[] = [];
  private timer: NodeJS.Timeout | null = null;
  private checkpointing: Promise<void> | null = null;
  private checkpointSoon = false;
  private latest: { size: number; note: string } | null = null;
  /** The latest checkpoint the log signed (published or still waiting for its quorum). */
  private signed: { size: number; note: string; at: number } | null = null;
  private witness: Witness | null = null;
  private closed = false;
  /** Fills that arrived after the log had sealed their slot. */
  lateFills = 0;
  sealed = 0;

  private constructor(store: AuditStore, origin: string, signer: NoteSigner, opts: AuditLogOptions) {
    this.store = store;
    this.origin = origin;
    this.signer = signer;
    this.verifierKey = signer.verifier.verifierKey;
    this.interval = opts.checkpointIntervalMs ?? 1000;
    this.everyRecords = opts.checkpointRecords ?? 10_000;
    this.maxPending = opts.maxPendingMs ?? 30_000;
    this.now = opts.now ?? Date.now;
    this.onError = opts.onError ?? (() => {});
    this.queuedFrom = store.size;
    const last = store.latestCheckpoint();
    if (last !== undefined) this.latest = last;
  }

  static async open(opts: AuditLogOptions): Promise<AuditLog> {
    // `state/` is the store's private folder: only `checkpoint` and `tile/` are published.
    mkdirSync(join(opts.dir, 'state'), { recursive: true });
    const origin = resolveOrigin(opts.dir, opts.origin);
    const signer = loadOrCreateSigner(opts.keyFile ?? join(opts.dir, 'state', 'log.key'), origin);
    const store = await AuditStore.open(opts.dir);
    const log = new AuditLog(store, origin, signer, opts);
    log.timer = setInterval(() => log.tick(), Math.min(log.interval, 250));
    log.timer.unref();
    return log;
  }

  /** Records in the tree (contiguous; reserved slots not yet included). */
  get size(): number {
    return this.store.size;
  }

  /** Next index to be handed out. */
  get nextIndex(): number {
    return this.queuedFrom + this.slots.length;
  }

  get durableSize(): number {
    return this.store.durableSize;
  }

  latestCheckpoint(): { size: number; note: string } | null {
    return this.latest;
  }

  /** The latest checkpoint signed by the log, published or not (when witnessing holds it back). */
  latestSigned(): { size: number; note: string; at: number } | null {
    return this.signed;
  }

  /** Route every new checkpoint through witnesses before publishing it (null: publish directly). */
  setWitness(witness: Witness | null): void {
    this.witness = witness;
  }

  append(record: Uint8Array): number {
    this.assertOpen();
    if (this.slots.length === 0) return this.appendNow(record);
    const index = this.nextIndex;
    this.slots.push({ record, seal: null, deadline: 0 });
    return index;
  }

  reserve(seal: () => Uint8Array): number {
    this.assertOpen();
    const index = this.nextIndex;
    this.slots.push({ record: null, seal, deadline: this.now() + this.maxPending });
    return index;
  }

  fill(index: number, record: Uint8Array): void {
    const at = index - this.queuedFrom;
    const slot = at >= 0 ? this.slots[at] : undefined;
    if (slot === undefined || slot.seal === null) {
      this.lateFills++;
      return;
    }
    slot.record = record;
    slot.seal = null;
    if (at === 0) this.drain();
  }

  /** Resolves once record `index` is fsynced. */
  durable(index: number): Promise<void> {
    if (index < this.store.durableSize) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.waiters.push({ index, resolve, reject });
      if (index < this.store.size) this.syncWaiters();
    });
  }

  /** Sign and publish a checkpoint of everything durable now (also runs on its own). */
  checkpoint(): Promise<void> {
    if (this.checkpointing !== null) return this.checkpointing.then(() => this.checkpoint());
    const run = this.runCheckpoint().finally(() => {
      this.checkpointing = null;
    });
    this.checkpointing = run;
    return run;
  }

  /** The record bytes at `index`. */
  record(index: number): Buffer {
    this.checkIndex(index, this.store.size);
    return this.store.entry(index);
  }

  /** A C2SP tlog-proof file for `index` against the latest checkpoint (with the record as extra data). */
  proof(index: number): string {
    const cp = this.latest;
    if (cp === null || index >= cp.size) {
      throw new CageError({ code: 'AUDIT_INDEX_OUT_OF_RANGE', message: `record ${index} is not covered by a checkpoint yet (latest covers ${cp?.size ?? 0})` });
    }
    this.checkIndex(index, cp.size);
    const proof = inclusionProof(index, cp.size, this.reader);
    return formatProof({ index, proof, checkpoint: cp.note, extra: this.store.entry(index) });
  }

  /** Consistency proof between two tree sizes (both ≤ the latest checkpoint). */
  consistency(oldSize: number, newSize: number): Buffer[] {
    const top = this.latest?.size ?? 0;
    if (!(Number.isSafeInteger(oldSize) && Number.isSafeInteger(newSize) && oldSize >= 0 && oldSize <= newSize && newSize <= top)) {
      throw new CageError({ code: 'AUDIT_INDEX_OUT_OF_RANGE', message: `need 0 <= old <= new <= ${top} (the latest checkpoint), got old=${oldSize} new=${newSize}` });
    }
    return consistencyProof(oldSize, newSize, this.reader);
  }

  /** Consistency proof between any two sizes in the tree (for witnesses, before publication). */
  proveConsistency(oldSize: number, newSize: number): Buffer[] {
    if (!(Number.isSafeInteger(oldSize) && Number.isSafeInteger(newSize) && oldSize >= 0 && oldSize <= newSize && newSize <= this.store.size)) {
      throw new CageError({ code: 'AUDIT_INDEX_OUT_OF_RANGE', message: `need 0 <= old <= new <= ${this.store.size}, got old=${oldSize} new=${newSize}` });
    }
    return consistencyProof(oldSize, newSize, this.reader);
  }

  /** Root hash at `size` (≤ the integrated size). */
  root(size: number): Buffer {
    return treeRoot(size, this.reader);
  }

  /** The store's folder (tiles, entries and `checkpoint` as static files). */
  get dir(): string {
    return this.store.dir;
  }

  /** Final checkpoint of everything written, then close. Pending slots are sealed. */
  async close(): Promise<void> {
    if (this.closed) return;
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.sealOverdue(Number.POSITIVE_INFINITY);
    try {
      await this.checkpoint();
    } finally {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w.reject(new CageError({ code: 'AUDIT_STORE_IO', message: 'the audit log was closed' }));
      await this.store.close();
    }
  }

  // ---- internals ----

  private readonly reader = (level: number, index: number): Uint8Array => this.store.hashAt(level, index);

  private assertOpen(): void {
    if (this.closed) throw new CageError({ code: 'AUDIT_STORE_IO', message: 'the audit log is closed' });
  }

  private checkIndex(index: number, size: number): void {
    if (!Number.isSafeInteger(index) || index < 0 || index >= size) {
      throw new CageError({ code: 'AUDIT_INDEX_OUT_OF_RANGE', message: `record index ${index} is outside the log (size ${size})` });
    }
  }

  private appendNow(record: Uint8Array): number {
    const index = this.store.append(record);
    this.queuedFrom = index + 1;
    if (index + 1 - (this.latest?.size ?? 0) >= this.everyRecords && !this.checkpointSoon) {
      this.checkpointSoon = true;
      setImmediate(() => {
        this.checkpointSoon = false;
        if (!this.closed) this.checkpoint().catch(this.onError);
      });
    }
    return index;
  }

  /** Append every filled slot at the head of the queue. */
  private drain(): void {
    let n = 0;
    while (n < this.slots.length && this.slots[n]!.record !== null) {
      this.appendNow(this.slots[n]!.record!);
      n++;
    }
    if (n > 0) {
      this.slots = this.slots.slice(n);
      this.queuedFrom = this.store.size;
      if (this.waiters.length > 0) this.syncWaiters();
    }
  }

  /** Seal reserved slots whose deadline passed (their record as known so far, marked incomplete). */
  private sealOverdue(now: number): void {
    let sealedAny = false;
    for (const slot of this.slots) {
      if (slot.seal === null || slot.deadline > now) continue;
      try {
        slot.record = slot.seal();
      } catch (err) {
        this.onError(err);
        continue;
      }
      slot.seal = null;
      this.sealed++;
      sealedAny = true;
    }
    if (sealedAny) this.drain();
  }

  private syncing = false;

  /** fsync for the waiters whose records are in the tree; one fsync serves all of them. */
  private syncWaiters(): void {
    if (this.syncing) return;
    this.syncing = true;
    this.store.sync().then(
      (durable) => {
        this.syncing = false;
        const rest: DurableWaiter[] = [];
        for (const w of this.waiters) (w.index < durable ? w.resolve : () => rest.push(w))();
        this.waiters = rest;
        if (rest.some((w) => w.index < this.store.size)) this.syncWaiters();
      },
      (err: unknown) => {
        this.syncing = false;
        const failed = this.waiters;
        this.waiters = [];
        const e = new CageError({ code: 'AUDIT_STORE_IO', message: 'the audit log could not be made durable', cause: err });
        for (const w of failed) w.reject(e);
        this.onError(e);
      },
    );
  }

  private tick(): void {
    if (this.closed) return;
    this.sealOverdue(this.now());
    const size = this.store.size;
    if (size > (this.latest?.size ?? 0) && this.checkpointing === null && this.dueAt <= this.now()) {
      this.checkpoint().catch(this.onError);
    }
  }

  private dueAt = 0;

  private async runCheckpoint(): Promise<void> {
    this.dueAt = this.now() + this.interval;
    const durable = await this.store.sync();
    const size = Math.min(durable, this.store.size);
    if (this.latest !== null && size <= this.latest.size) return;
    let note: string;
    if (this.signed !== null && this.signed.size === size) {
      note = this.signed.note; // still waiting for its quorum: the same checkpoint again
    } else {
      const cp: Checkpoint = { origin: this.origin, size, rootHash: treeRoot(size, this.reader), extensions: [] };
      note = signCheckpoint(this.signer, cp);
      this.signed = { size, note, at: this.now() };
    }
    const witness = this.witness;
    if (witness !== null) {
      const cosigned = await witness(note, size, this.latest?.size ?? 0);
      if (cosigned === null) return;
      if (cosigned !== undefined) note = cosigned;
    }
    await this.store.writePartialTiles(size);
    await this.store.saveCheckpoint(size, note);
    this.latest = { size, note };
  }
}

/** The log's origin: fixed in `<dir>/state/origin` when the log is created. */
function resolveOrigin(dir: string, wanted: string | undefined): string {
  const file = join(dir, 'state', 'origin');
  if (existsSync(file)) {
    const stored = readFileSync(file, 'utf8').trim();
    if (wanted !== undefined && wanted !== stored) {
      throw new CageError({ code: 'CONFIG_INVALID', message: `audit.origin: the log in ${dir} has origin ${stored}; a log's origin cannot change (use a new data_dir for a new log)` });
    }
    return stored;
  }
  const origin = wanted ?? `http-cage/${hostname().replace(/[^\x21-\x7e]/g, '-')}`;
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, `${origin}\n`);
  renameSync(tmp, file);
  return origin;
}

/** The log's signer: read from `file`, or made once (mode 0600) when it does not exist. */
function loadOrCreateSigner(file: string, origin: string): NoteSigner {
  if (existsSync(file)) {
    const signer = parseSignerKey(readFileSync(file, 'utf8').trim());
    if (signer.name !== origin) {
      throw new CageError({ code: 'AUDIT_BAD_KEY', message: `the log key in ${file} is named ${signer.name}, but the log's origin is ${origin} (C2SP: the key name is the origin)` });
    }
    return signer;
  }
  const { signer, signerKey } = generateSigner(origin);
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, `${signerKey}\n`, { mode: 0o600 });
  renameSync(tmp, file);
  return signer;
}
