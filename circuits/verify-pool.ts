/**
 * A pool of worker threads that verify Groth16 membership proofs off the event loop (about 9 ms
 * of CPU each on a single-threaded curve; see groth16.ts). Modeled on pq/pool.ts, smaller: the
 * main thread decodes the header and builds the public signals (cheap, and it owns the roots and
 * the clock); a worker only answers "does this proof verify for these signals".
 *
 * - Bounded: at most `maxQueue` proofs held at once (in flight or waiting); beyond that `verify`
 *   refuses at once with ZK_BUSY (503).
 * - A worker that exits or crashes is replaced; its in-flight jobs fail with GW_INTERNAL. One coarse
 *   timer fails jobs older than `jobTimeoutMs` (and replaces a worker stuck on one).
 * - `size: 0` verifies inline on the calling thread (the same Groth16Verifier; for tests and
 *   for the benchmark's baseline — it blocks the event loop ~9 ms a proof).
 * - Workers are unref'd; `close()` terminates them and frees every curve (tests never hang).
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { runSlot, startModuleWorker, type WorkerSlot } from '../core/worker-threads.js';
import { CageError } from '../core/errors.js';
import { Groth16Verifier, checkVerificationKey, type VerificationKeyJson } from './groth16.js';
import type { ProofPoints } from './header.js';

export interface VerifyPoolOptions {
  verificationKey: VerificationKeyJson;
  /** Worker threads; 0 verifies inline. Default min(2, os.availableParallelism()). */
  size?: number;
  /** Proofs held at once (in flight or waiting). Default 64 per worker (64 inline): about 0.3 s of work. */
  maxQueue?: number;
  /** A job older than this fails (GW_INTERNAL) and a worker stuck on it is replaced. Default 10 s. */
  jobTimeoutMs?: number;
  /** Worker exits and crashes (they are handled; this is for the log). */
  onError?: (err: CageError) => void;
  /** Tests only: lets testStall / testCrash reach the workers. */
  testHooks?: boolean;
}

const OPTION_KEYS = ['verificationKey', 'size', 'maxQueue', 'jobTimeoutMs', 'onError', 'testHooks'];
export const MAX_VERIFY_POOL_SIZE = 64;
/** Jobs posted to one worker at a time. */
const WORKER_DEPTH = 2;
const RESPAWN_DELAY_MS = 1000;

export type ToVerifyWorker =
  | { t: 'key'; vk: VerificationKeyJson }
  | { t: 'verify'; id: number; signals: bigint[]; proof: ProofPoints }
  | { t: 'stall'; ms: number }
  | { t: 'crash' };

export type FromVerifyWorker = { t: 'ready' } | { t: 'done'; id: number; ok: boolean } | { t: 'fail'; id: number; message: string };

interface Job {
  id: number;
  since: number;
  signals: bigint[];
  proof: ProofPoints;
  resolve: (ok: boolean) => void;
  reject: (err: Error) => void;
}

interface Slot extends WorkerSlot {
  inflight: Map<number, Job>;
}

const WORKER_FILE = new URL(import.meta.url.endsWith('.ts') ? './verify-worker.ts' : './verify-worker.js', import.meta.url);

function startWorker(testHooks: boolean): Worker {
  // ffjavascript imports the `web-worker` package, which, loaded in any worker thread, takes the
  // thread over as a web-worker polyfill and imports `workerData.mod`: give it an empty module
  // so it has nothing to run (our entry file is loaded below, as usual).
  return startModuleWorker(WORKER_FILE, { testHooks, mod: 'data:text/javascript,', type: 'module', name: 'cage-zk-verify' });
}

function internal(message: string, cause?: unknown): CageError {
  return new CageError({ code: 'GW_INTERNAL', message, cause });
}

function option(value: unknown, name: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new CageError({ code: 'CONFIG_INVALID', message: `VerifyPool ${name} must be an integer in [${min}, ${max}], got ${String(value)}` });
  }
  return value;
}

export class VerifyPool {
  readonly size: number;
  readonly #vk: VerificationKeyJson;
  readonly #maxQueue: number;
  readonly #jobTimeoutMs: number;
  readonly #onError: (err: CageError) => void;
  readonly #testHooks: boolean;
  readonly #watchdog: ReturnType<typeof setInterval>;
  #inline: Groth16Verifier | undefined;
  #slots: Slot[] = [];
  #waiting: Job[] = [];
  #pending = 0;
  #nextId = 1;
  #closed: Promise<void> | undefined;

  private constructor(opts: VerifyPoolOptions) {
    for (const key of Object.keys(opts)) {
      if (!OPTION_KEYS.includes(key)) throw new CageError({ code: 'CONFIG_INVALID', message: `VerifyPool: unknown option "${key}" (allowed: ${OPTION_KEYS.join(', ')})` });
    }
    this.#vk = checkVerificationKey(opts.verificationKey);
    this.size = option(opts.size ?? Math.min(2, availableParallelism()), 'size', 0, MAX_VERIFY_POOL_SIZE);
    this.#maxQueue = option(opts.maxQueue ?? 64 * Math.max(1, this.size), 'maxQueue', 1, 1 << 20);
    this.#jobTimeoutMs = option(opts.jobTimeoutMs ?? 10_000, 'jobTimeoutMs', 1, 3_600_000);
    this.#onError = opts.onError ?? (() => undefined);
    this.#testHooks = opts.testHooks === true;
    this.#watchdog = setInterval(() => this.#expire(), Math.max(20, Math.min(1000, Math.floor(this.#jobTimeoutMs / 4))));
    this.#watchdog.unref();
  }

  /** Starts the workers (or the inline curve) and waits until each has parsed the key. */
  static async start(opts: VerifyPoolOptions): Promise<VerifyPool> {
    const pool = new VerifyPool(opts);
    try {
      if (pool.size === 0) pool.#inline = await Groth16Verifier.create(pool.#vk);
      else await Promise.all(Array.from({ length: pool.size }, () => pool.#spawn()));
    } catch (err) {
      await pool.close();
      throw err;
    }
    return pool;
  }

  stats(): { size: number; threads: number; ready: number; inflight: number; waiting: number; pending: number } {
    let inflight = 0;
    for (const s of this.#slots) inflight += s.inflight.size;
    return { size: this.size, threads: this.#slots.length, ready: this.#slots.filter((s) => s.ready).length, inflight, waiting: this.#waiting.length, pending: this.#pending };
  }

  /** Whether `proof` verifies for `signals`. Rejects with ZK_BUSY when full, GW_INTERNAL when closed or a worker died. */
  verify(signals: bigint[], proof: ProofPoints): Promise<boolean> {
    if (this.#closed !== undefined) return Promise.reject(internal('the zk verify pool is closed'));
    if (this.#pending >= this.#maxQueue) {
      return Promise.reject(new CageError({ code: 'ZK_BUSY', message: `too many proofs waiting to be verified (${this.#pending} held)` }));
    }
    this.#pending++;
    if (this.#inline !== undefined) return this.#inline.verify(signals, proof).finally(() => this.#pending--);
    return new Promise<boolean>((resolve, reject) => {
      const job: Job = { id: this.#nextId++, since: performance.now(), signals, proof, resolve, reject };
      const slot = this.#pick();
      if (slot !== undefined) this.#post(slot, job);
      else this.#waiting.push(job);
    });
  }

  /** Terminates the workers and frees the curves; jobs not done fail with GW_INTERNAL. */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      clearInterval(this.#watchdog);
      for (const job of this.#waiting.splice(0)) this.#fail(job, internal('the zk verify pool was closed'));
      const exits = this.#slots.map((s) => s.exited);
      for (const slot of this.#slots) this.#stop(slot, 'the zk verify pool was closed');
      await Promise.all(exits);
      await this.#inline?.close();
    })();
    return this.#closed;
  }

  /** Tests only: keeps worker `index` busy for `ms`. */
  testStall(index: number, ms: number): void {
    this.#testWorker(index).postMessage({ t: 'stall', ms } satisfies ToVerifyWorker);
  }

  /** Tests only: makes worker `index` throw (the thread dies). */
  testCrash(index: number): void {
    this.#testWorker(index).postMessage({ t: 'crash' } satisfies ToVerifyWorker);
  }

  #testWorker(index: number): Worker {
    if (!this.#testHooks) throw internal('test hooks are off');
    return this.#slots[index]!.worker;
  }

  #spawn(): Promise<void> {
    const worker = startWorker(this.#testHooks);
    worker.unref();
    const slot: Slot = { worker, ready: false, stopping: undefined, inflight: new Map(), exited: Promise.resolve() };
    this.#slots.push(slot);
    const ready = runSlot<Slot, FromVerifyWorker>(slot, 'zk', { feed: (s) => this.#feed(s), settle: (s, m) => this.#settle(s, m), exited: (s, why, failure) => this.#exited(s, why, failure) });
    worker.postMessage({ t: 'key', vk: this.#vk } satisfies ToVerifyWorker);
    return ready;
  }

  #post(slot: Slot, job: Job): void {
    job.since = performance.now();
    slot.inflight.set(job.id, job);
    slot.worker.postMessage({ t: 'verify', id: job.id, signals: job.signals, proof: job.proof } satisfies ToVerifyWorker);
  }

  #pick(): Slot | undefined {
    let best: Slot | undefined;
    for (const s of this.#slots) {
      if (!s.ready || s.stopping !== undefined || s.inflight.size >= WORKER_DEPTH) continue;
      if (best === undefined || s.inflight.size < best.inflight.size) best = s;
    }
    return best;
  }

  #feed(slot: Slot): void {
    while (slot.ready && slot.stopping === undefined && slot.inflight.size < WORKER_DEPTH && this.#waiting.length > 0) {
      this.#post(slot, this.#waiting.shift()!);
    }
  }

  #settle(slot: Slot, m: FromVerifyWorker): void {
    if (m.t === 'ready') return;
    const job = slot.inflight.get(m.id);
    if (job === undefined) return;
    slot.inflight.delete(m.id);
    this.#pending--;
    if (m.t === 'done') job.resolve(m.ok);
    else job.reject(internal(`zk verification failed in the worker: ${m.message}`));
    this.#feed(slot);
  }

  #fail(job: Job, err: Error): void {
    this.#pending--;
    job.reject(err);
  }

  #stop(slot: Slot, why: string): void {
    slot.stopping ??= why;
    void slot.worker.terminate();
  }

  #exited(slot: Slot, why: string, cause: Error | undefined): void {
    const i = this.#slots.indexOf(slot);
    if (i >= 0) this.#slots.splice(i, 1);
    for (const job of slot.inflight.values()) this.#fail(job, internal(`the proof was not verified: ${why}`, cause));
    slot.inflight.clear();
    if (this.#closed !== undefined) return;
    this.#onError(internal(`zk worker thread replaced: ${why}`, cause));
    const respawn = () => {
      if (this.#closed === undefined) this.#spawn().catch((err: unknown) => this.#onError(internal('cannot start a zk worker thread', err)));
    };
    if (slot.ready) respawn();
    else setTimeout(respawn, RESPAWN_DELAY_MS).unref();
  }

  #expire(): void {
    const deadline = performance.now() - this.#jobTimeoutMs;
    for (const slot of this.#slots) {
      const oldest = slot.inflight.values().next();
      if (!oldest.done && oldest.value.since < deadline) this.#stop(slot, `verification took longer than ${this.#jobTimeoutMs} ms`);
    }
    while (this.#waiting.length > 0 && this.#waiting[0]!.since < deadline) {
      this.#fail(this.#waiting.shift()!, internal(`no zk worker thread took the proof within ${this.#jobTimeoutMs} ms`));
    }
  }
}
