/**
 * What the cage's worker-thread pools share (pq/pool.ts opens envelopes, circuits/verify-pool.ts
 * checks Groth16 proofs): starting a module worker from sources or from the build, wiring a
 * worker's life (ready → messages → exit, and the reason it died) and, on the worker side, the
 * test hooks that make a thread stall or crash on purpose. The pools keep their own queues.
 */
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { CageError } from './errors.js';

/**
 * A Worker running `file`. From sources under tsx (the tests), Node 20 does not give a worker the
 * parent's module hooks, so the worker registers tsx's ESM hooks itself (the .mjs build of
 * tsx/esm/api, next to the .cjs one `require` resolves) before importing its entry file.
 */
export function startModuleWorker(file: URL, workerData: unknown): Worker {
  if (file.pathname.endsWith('.ts')) {
    const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx/esm/api').replace(/\.cjs$/, '.mjs')).href;
    const code = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(file.href)}); });`;
    return new Worker(code, { eval: true, workerData });
  }
  return new Worker(file, { workerData });
}

export interface WorkerLife<M extends { t: string }> {
  /** The worker said `{ t: 'ready' }`. */
  ready(): void;
  /** Any other message. */
  message(m: M): void;
  /** The thread is gone; `failure` is the error that killed it, if any. */
  exited(code: number, failure: Error | undefined): void;
}

/**
 * Wires a worker's events; resolves once it is ready, rejects (with `notStarted`'s error) when it
 * exits first. A message that cannot be deserialized kills the thread (its state is unknown).
 */
export function watchWorker<M extends { t: string }>(worker: Worker, life: WorkerLife<M>, notStarted: (code: number, failure: Error | undefined) => Error): Promise<void> {
  let failure: Error | undefined;
  let started = false;
  return new Promise<void>((resolve, reject) => {
    worker.on('message', (m: M) => {
      if (m.t === 'ready') {
        started = true;
        resolve();
        life.ready();
      } else life.message(m);
    });
    worker.on('error', (err) => {
      failure = err;
    });
    worker.on('messageerror', (err) => {
      failure = err;
      void worker.terminate();
    });
    worker.on('exit', (code) => {
      if (!started) reject(notStarted(code, failure));
      life.exited(code, failure);
    });
  });
}

/** The part of a pool's per-worker record that `runSlot` drives. */
export interface WorkerSlot {
  readonly worker: Worker;
  /** The worker said it is ready. */
  ready: boolean;
  /** Why the pool is stopping this worker (its exit is then not a failure). */
  stopping: string | undefined;
  /** Settles when the thread is gone. */
  exited: Promise<void>;
}

/**
 * Runs one pool slot's worker: marks it ready and asks the pool to feed it, hands it every other
 * message, and on exit tells the pool why it died (a pool-ordered stop, or the exit code and the
 * error). Resolves once the worker is ready; rejects when it dies first.
 */
export function runSlot<S extends WorkerSlot, M extends { t: string }>(
  slot: S,
  label: string,
  pool: { feed(slot: S): void; settle(slot: S, m: Exclude<M, { t: 'ready' }>): void; exited(slot: S, why: string, failure: Error | undefined): void },
): Promise<void> {
  let markExited!: () => void;
  slot.exited = new Promise((r) => (markExited = r));
  const why = (code: number, failure: Error | undefined): string => slot.stopping ?? `the ${label} worker thread exited (code ${code}${failure ? `: ${failure.message}` : ''})`;
  return watchWorker<M>(
    slot.worker,
    {
      ready: () => {
        slot.ready = true;
        pool.feed(slot);
      },
      message: (m) => pool.settle(slot, m as Exclude<M, { t: 'ready' }>),
      exited: (code, failure) => {
        pool.exited(slot, why(code, failure), failure);
        markExited();
      },
    },
    (code, failure) => new CageError({ code: 'GW_INTERNAL', message: `a ${label} worker thread did not start: ${why(code, failure)}`, cause: failure }),
  );
}

/** Worker side: test hooks (`{t:'stall', ms}` busy-waits, `{t:'crash'}` throws); true when `m` was one. */
export function runTestHook(m: { t: string; ms?: number }, testHooks: boolean, label: string): boolean {
  if (m.t === 'stall') {
    if (!testHooks) return true;
    const until = Date.now() + (m.ms ?? 0);
    while (Date.now() < until); // busy on purpose: a stuck or slow thread
    return true;
  }
  if (m.t === 'crash') {
    if (testHooks) throw new Error(`${label} test hook: crash`);
    return true;
  }
  return false;
}
