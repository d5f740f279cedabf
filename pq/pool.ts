/**
 * A pool of worker threads that open Encapsulated Requests (RFC 9458 §4.3) off the event loop: the
 * X-Wing decapsulation (ML-KEM-768 in JS, about 0.9 ms of CPU), the HPKE key schedule and the AEAD
 * open run in pq/pool-worker.ts; the main thread gets plain data back (OpenedEnvelope: the inner
 * BHTTP bytes and §4.4's exported secret) and keeps everything that must be shared or is cheap:
 * the KeyRing and its clock, BHTTP decoding, the replay cache, sealing the response.
 *
 * - `open(envelope)` checks the header against the KeyRing here first (PQ_UNKNOWN_KEY,
 *   PQ_UNSUPPORTED_SUITE, PQ_BAD_ENVELOPE, without a thread hop), then transfers the envelope's
 *   memory to the least busy worker; its errors come back with their codes.
 * - Keys: every worker gets the ring's seeds at start and again, synchronously, after every change
 *   of the ring (KeyRing.onKeysChanged). Seeds and jobs travel on the same port in order, so a job
 *   the main thread has accepted finds its key in the worker, even one racing a rotation.
 * - Bounded: at most `maxQueue` envelopes (and `maxQueueBytes` bytes) held at once, in flight or
 *   waiting; beyond that `open` refuses at once with PQ_BUSY (503).
 * - A worker that exits or crashes is replaced; its in-flight jobs fail with GW_INTERNAL. One
 *   coarse timer fails jobs older than `jobTimeoutMs` (and replaces a worker stuck on one). No job
 *   waits forever.
 * - `size: 0` opens inline, on the calling thread (same functions, same answers).
 *
 * Workers are unref'd: the pool never keeps a process alive; `close()` terminates them.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { runSlot, startModuleWorker, type WorkerSlot } from '../core/worker-threads.js';
import { CageError, ERROR_CODES, type CageErrorCode } from '../core/errors.js';
import type { KeySeed } from './keys.js';
import { checkRequestHeader, openEnvelope, type EnvelopeOpener, type OhttpKeySource, type OpenedEnvelope } from './ohttp.js';
import { checkInteger, rejectUnknownOptions } from './options.js';

/** What the pool needs from the keys: lookups (with the clock) and the seeds. KeyRing is one. */
export interface SeedSource extends OhttpKeySource {
  keySeeds(): KeySeed[];
  onKeysChanged(listener: () => void): () => void;
}

export interface PoolOptions {
  keys: SeedSource;
  /** Worker threads; 0 opens inline. Default: os.availableParallelism(). */
  size?: number;
  /** Envelopes held at once (in flight or waiting). Default 256 per worker (about 0.2 s of work). */
  maxQueue?: number;
  /** Their total bytes. Default 64 MiB. */
  maxQueueBytes?: number;
  /** A job older than this fails (GW_INTERNAL), and a worker stuck on it is replaced. Default 10 s. */
  jobTimeoutMs?: number;
  /** Worker exits and crashes (they are handled; this is for the log). */
  onError?: (err: CageError) => void;
  /** Tests only: lets `testStall` / `testCrash` reach the workers. */
  testHooks?: boolean;
}

const OPTION_KEYS = ['keys', 'size', 'maxQueue', 'maxQueueBytes', 'jobTimeoutMs', 'onError', 'testHooks'];
/** The most worker threads a pool may have (a typo must not start thousands). */
export const MAX_POOL_SIZE = 64;
/** Jobs posted to one worker at a time: enough that it never waits for the main thread, few enough that a crash loses little. */
const WORKER_DEPTH = 2;
/** A worker that dies before it is ready is started again after this long, not in a tight loop. */
const RESPAWN_DELAY_MS = 1000;

/** Main thread → worker. */
export type ToWorker =
  | { t: 'keys'; keys: KeySeed[] }
  | { t: 'open'; id: number; envelope: Uint8Array }
  | { t: 'stall'; ms: number }
  | { t: 'crash' };

/** Worker → main thread. */
export type FromWorker =
  | { t: 'ready' }
  | { t: 'done'; id: number; keyId: number; kemId: number; kdfId: number; aeadId: number; enc: Uint8Array; request: Uint8Array; secret: Uint8Array }
  | { t: 'fail'; id: number; code: CageErrorCode | undefined; message: string };

/**
 * `bytes` as a Uint8Array that owns its whole ArrayBuffer, so it can be transferred (or cloned
 * without dragging along the rest of a shared slab, such as Buffer's 8 KiB pool): itself when it
 * already does, else a copy.
 */
export function ownedBytes(bytes: Uint8Array): Uint8Array {
  const owns = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength && bytes.buffer instanceof ArrayBuffer;
  return owns ? bytes : new Uint8Array(bytes);
}

interface Job {
  id: number;
  bytes: number;
  /** performance.now() when queued, then when posted to a worker. */
  since: number;
  /** Held only while the job waits for a worker. */
  envelope: Uint8Array | undefined;
  resolve: (o: OpenedEnvelope) => void;
  reject: (err: Error) => void;
}

interface Slot extends WorkerSlot {
  /** No new jobs (the pool shrank); terminated once its jobs are done. */
  retiring: boolean;
  inflight: Map<number, Job>;
}

const WORKER_FILE = new URL(import.meta.url.endsWith('.ts') ? './pool-worker.ts' : './pool-worker.js', import.meta.url);

function startWorker(testHooks: boolean): Worker {
  return startModuleWorker(WORKER_FILE, { testHooks });
}

function internal(message: string, cause?: unknown): CageError {
  return new CageError({ code: 'GW_INTERNAL', message, cause });
}

export class DecapsulationPool implements EnvelopeOpener {
  readonly #keys: SeedSource;
  readonly #maxQueue: number | undefined;
  readonly #maxQueueBytes: number;
  readonly #jobTimeoutMs: number;
  readonly #onError: (err: CageError) => void;
  readonly #testHooks: boolean;
  readonly #unsubscribe: () => void;
  readonly #watchdog: ReturnType<typeof setInterval>;
  #size: number;
  #slots: Slot[] = [];
  /** Jobs waiting for a worker, oldest first from #head. */
  #waiting: Job[] = [];
  #head = 0;
  #pending = 0;
  #pendingBytes = 0;
  #nextId = 1;
  #closed: Promise<void> | undefined;
  /** start() has succeeded: later failures to start a thread are reported to onError. */
  #started = false;

  private constructor(opts: PoolOptions) {
    rejectUnknownOptions(opts, OPTION_KEYS, 'DecapsulationPool');
    if (!opts.keys) throw new CageError({ code: 'CONFIG_INVALID', message: 'DecapsulationPool needs keys' });
    this.#keys = opts.keys;
    this.#size = checkInteger(opts.size ?? availableParallelism(), 'DecapsulationPool size', 0, MAX_POOL_SIZE);
    this.#maxQueue = opts.maxQueue === undefined ? undefined : checkInteger(opts.maxQueue, 'DecapsulationPool maxQueue', 1);
    this.#maxQueueBytes = checkInteger(opts.maxQueueBytes ?? 64 * 1024 * 1024, 'DecapsulationPool maxQueueBytes', 1);
    this.#jobTimeoutMs = checkInteger(opts.jobTimeoutMs ?? 10_000, 'DecapsulationPool jobTimeoutMs', 1);
    this.#onError = opts.onError ?? (() => undefined);
    this.#testHooks = opts.testHooks === true;
    this.#unsubscribe = this.#keys.onKeysChanged(() => this.#pushKeys());
    this.#watchdog = setInterval(() => this.#expire(), Math.max(20, Math.min(1000, Math.floor(this.#jobTimeoutMs / 4))));
    this.#watchdog.unref();
  }

  /** Starts the workers and waits until each holds the keys (GW_INTERNAL if one cannot start). */
  static async start(opts: PoolOptions): Promise<DecapsulationPool> {
    const pool = new DecapsulationPool(opts);
    try {
      await Promise.all(pool.#grow());
    } catch (err) {
      await pool.close();
      throw err;
    }
    pool.#started = true;
    return pool;
  }

  /** Worker threads wanted (0: inline). */
  get size(): number {
    return this.#size;
  }

  stats(): { size: number; threads: number; ready: number; inflight: number; waiting: number } {
    let inflight = 0;
    for (const s of this.#slots) inflight += s.inflight.size;
    return { size: this.#size, threads: this.#slots.length, ready: this.#slots.filter((s) => s.ready).length, inflight, waiting: this.#waiting.length - this.#head };
  }

  /**
   * Opens one envelope (see EnvelopeOpener). Takes over `envelope`'s memory when it owns its
   * ArrayBuffer (it is transferred to a worker, and detached here); otherwise copies it once.
   */
  open(envelope: Buffer): Promise<OpenedEnvelope> {
    if (this.#closed !== undefined) return Promise.reject(internal('the envelope pool is closed'));
    let header;
    try {
      header = checkRequestHeader(envelope, this.#keys);
      if (this.#size === 0) return Promise.resolve(openEnvelope(envelope, header));
    } catch (err) {
      return Promise.reject(err as Error);
    }
    const limit = this.#maxQueue ?? 256 * this.#size;
    if (this.#pending >= limit || this.#pendingBytes + envelope.length > this.#maxQueueBytes) {
      return Promise.reject(new CageError({ code: 'PQ_BUSY', message: `too many encapsulated requests waiting to be opened (${this.#pending} held, ${this.#pendingBytes} bytes)` }));
    }
    return new Promise<OpenedEnvelope>((resolve, reject) => {
      const job: Job = { id: this.#nextId++, bytes: envelope.length, since: performance.now(), envelope, resolve, reject };
      this.#pending++;
      this.#pendingBytes += job.bytes;
      const slot = this.#pick();
      if (slot !== undefined) this.#post(slot, job);
      else this.#waiting.push(job);
    });
  }

  /** Grows or shrinks the pool (a reload of pq.workers). Shrinking lets busy workers finish first. */
  resize(size: number): void {
    checkInteger(size, 'DecapsulationPool size', 0, MAX_POOL_SIZE);
    if (this.#closed !== undefined) return;
    this.#size = size;
    const live = this.#slots.filter((s) => !s.retiring);
    for (const slot of live.slice(size)) {
      slot.retiring = true;
      if (slot.inflight.size === 0) this.#stop(slot, 'the pool shrank');
    }
    for (const started of this.#grow()) started.catch(() => undefined);
    // Shrunk to 0: whatever waits is opened inline now, as new requests are.
    if (size === 0) for (let job = this.#shift(); job !== undefined; job = this.#shift()) this.#openInline(job);
  }

  /** Terminates the workers; jobs not done fail with GW_INTERNAL. Resolves once every thread has exited. */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      clearInterval(this.#watchdog);
      this.#unsubscribe();
      for (let job = this.#shift(); job !== undefined; job = this.#shift()) this.#fail(job, internal('the envelope pool was closed'));
      const exits = this.#slots.map((s) => s.exited);
      for (const slot of this.#slots) this.#stop(slot, 'the envelope pool was closed');
      await Promise.all(exits);
    })();
    return this.#closed;
  }

  /** Tests only: keeps worker `index` busy for `ms`. */
  testStall(index: number, ms: number): void {
    this.#testSend(index, { t: 'stall', ms });
  }

  /** Tests only: makes worker `index` throw (an uncaught exception: the thread dies). */
  testCrash(index: number): void {
    this.#testSend(index, { t: 'crash' });
  }

  /** Tests only: worker `index` itself, e.g. to terminate() it. */
  testWorker(index: number): Worker {
    if (!this.#testHooks) throw internal('test hooks are off');
    return this.#slots[index]!.worker;
  }

  #testSend(index: number, message: ToWorker): void {
    this.testWorker(index).postMessage(message);
  }

  /** Starts workers up to the size; the promises settle when each is ready (or fails to start). */
  #grow(): Promise<void>[] {
    const started: Promise<void>[] = [];
    for (let n = this.#size - this.#slots.filter((s) => !s.retiring).length; n > 0; n--) started.push(this.#spawn());
    return started;
  }

  #spawn(): Promise<void> {
    let worker: Worker;
    try {
      worker = startWorker(this.#testHooks);
    } catch (err) {
      // Out of threads or memory: try again later (start() itself fails and closes the pool).
      const e = internal('cannot start a pq worker thread', err);
      if (this.#started) this.#onError(e);
      this.#respawnLater();
      return Promise.reject(e);
    }
    worker.unref();
    const slot: Slot = { worker, ready: false, retiring: false, stopping: undefined, inflight: new Map(), exited: Promise.resolve() };
    this.#slots.push(slot);
    const ready = runSlot<Slot, FromWorker>(slot, 'pq', { feed: (s) => this.#feed(s), settle: (s, m) => this.#settle(s, m), exited: (s, why, failure) => this.#exited(s, why, failure) });
    this.#post(slot, undefined);
    return ready;
  }

  /** Posts `job` (or, with none, the current keys: a new worker's first message). */
  #post(slot: Slot, job: Job | undefined): void {
    if (job === undefined) {
      const seeds = this.#keys.keySeeds();
      slot.worker.postMessage({ t: 'keys', keys: seeds } satisfies ToWorker);
      for (const s of seeds) s.seed.fill(0);
      return;
    }
    const envelope = ownedBytes(job.envelope!);
    job.envelope = undefined;
    job.since = performance.now();
    slot.inflight.set(job.id, job);
    slot.worker.postMessage({ t: 'open', id: job.id, envelope } satisfies ToWorker, [envelope.buffer as ArrayBuffer]);
  }

  #pushKeys(): void {
    if (this.#slots.length === 0) return;
    const seeds = this.#keys.keySeeds();
    // postMessage copies synchronously; each worker gets its own copy, and ours is zeroed.
    for (const slot of this.#slots) slot.worker.postMessage({ t: 'keys', keys: seeds } satisfies ToWorker);
    for (const s of seeds) s.seed.fill(0);
  }

  /** A ready, not retiring worker with room, the least busy. */
  #pick(): Slot | undefined {
    let best: Slot | undefined;
    for (const s of this.#slots) {
      if (!s.ready || s.retiring || s.stopping !== undefined || s.inflight.size >= WORKER_DEPTH) continue;
      if (best === undefined || s.inflight.size < best.inflight.size) best = s;
    }
    return best;
  }

  /** Gives waiting jobs to `slot` while it has room. */
  #feed(slot: Slot): void {
    while (slot.ready && !slot.retiring && slot.stopping === undefined && slot.inflight.size < WORKER_DEPTH) {
      const job = this.#shift();
      if (job === undefined) return;
      this.#post(slot, job);
    }
  }

  #shift(): Job | undefined {
    if (this.#head >= this.#waiting.length) return undefined;
    const job = this.#waiting[this.#head]!;
    this.#waiting[this.#head++] = undefined as unknown as Job;
    if (this.#head === this.#waiting.length) {
      this.#waiting = [];
      this.#head = 0;
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#waiting.length) {
      this.#waiting = this.#waiting.slice(this.#head);
      this.#head = 0;
    }
    return job;
  }

  #settle(slot: Slot, m: FromWorker): void {
    if (m.t === 'ready') return;
    const job = slot.inflight.get(m.id);
    if (job === undefined) return;
    slot.inflight.delete(m.id);
    this.#done(job);
    if (m.t === 'done') {
      job.resolve({
        keyId: m.keyId, kemId: m.kemId, kdfId: m.kdfId, aeadId: m.aeadId, enc: m.enc,
        request: Buffer.from(m.request.buffer, m.request.byteOffset, m.request.byteLength),
        exportedSecret: Buffer.from(m.secret.buffer, m.secret.byteOffset, m.secret.byteLength),
      });
    } else {
      // Codes cross the thread boundary as strings; an unknown one (a bug) stays a plain Error.
      job.reject(m.code !== undefined && m.code in ERROR_CODES ? new CageError({ code: m.code, message: m.message }) : new Error(m.message));
    }
    if (slot.retiring && slot.inflight.size === 0) this.#stop(slot, 'the pool shrank');
    else this.#feed(slot);
  }

  #done(job: Job): void {
    this.#pending--;
    this.#pendingBytes -= job.bytes;
  }

  #fail(job: Job, err: Error): void {
    this.#done(job);
    job.envelope = undefined;
    job.reject(err);
  }

  #openInline(job: Job): void {
    this.#done(job);
    const envelope = job.envelope!;
    job.envelope = undefined;
    try {
      job.resolve(openEnvelope(envelope, checkRequestHeader(envelope, this.#keys)));
    } catch (err) {
      job.reject(err as Error);
    }
  }

  #stop(slot: Slot, why: string): void {
    slot.stopping ??= why;
    void slot.worker.terminate();
  }

  /** A worker is gone: its jobs fail, and (unless it was meant to stop) another takes its place. */
  #exited(slot: Slot, why: string, cause: Error | undefined): void {
    const i = this.#slots.indexOf(slot);
    if (i >= 0) this.#slots.splice(i, 1);
    for (const job of slot.inflight.values()) this.#fail(job, internal(`the envelope was not opened: ${why}`, cause));
    slot.inflight.clear();
    if (this.#closed !== undefined || slot.retiring) return;
    this.#onError(internal(`pq worker thread replaced: ${why}`, cause));
    // One that never got ready (a broken install?) is retried after a pause, not in a loop.
    if (slot.ready) this.#respawn();
    else this.#respawnLater();
  }

  #respawn(): void {
    if (this.#closed === undefined) for (const started of this.#grow()) started.catch(() => undefined);
  }

  #respawnLater(): void {
    setTimeout(() => this.#respawn(), RESPAWN_DELAY_MS).unref();
  }

  /** The coarse timer: fails jobs that waited too long, and replaces a worker stuck on one. */
  #expire(): void {
    const deadline = performance.now() - this.#jobTimeoutMs;
    for (const slot of this.#slots) {
      const oldest = slot.inflight.values().next();
      if (!oldest.done && oldest.value.since < deadline) this.#stop(slot, `opening took longer than ${this.#jobTimeoutMs} ms`);
    }
    while (this.#head < this.#waiting.length && this.#waiting[this.#head]!.since < deadline) {
      this.#fail(this.#shift()!, internal(`no pq worker thread took the envelope within ${this.#jobTimeoutMs} ms`));
    }
  }
}
