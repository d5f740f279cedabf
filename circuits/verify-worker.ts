/**
 * The worker thread of circuits/verify-pool.ts: one single-threaded BN254 curve and the parsed
 * verification key, and nothing else (no clock, files or sockets). It answers true/false for
 * (public signals, proof) pairs the main thread built; the proof's coordinates are attacker
 * input, checked by Groth16Verifier (range, on curve, subgroup) before the pairing.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { runTestHook } from '../core/worker-threads.js';
import { Groth16Verifier } from './groth16.js';
import type { ProofPoints } from './header.js';
import type { FromVerifyWorker, ToVerifyWorker } from './verify-pool.js';

const port = parentPort!;
const testHooks = (workerData as { testHooks?: boolean } | null)?.testHooks === true;
let verifier: Groth16Verifier | undefined;
/** Jobs that arrive while the key is still being parsed wait here, in order. */
let queue: Promise<void> = Promise.resolve();

async function verify(id: number, signals: bigint[], proof: ProofPoints): Promise<void> {
  let reply: FromVerifyWorker;
  try {
    reply = { t: 'done', id, ok: await verifier!.verify(signals, proof) };
  } catch (err) {
    reply = { t: 'fail', id, message: err instanceof Error ? err.message : String(err) };
  }
  port.postMessage(reply);
}

port.on('message', (m: ToVerifyWorker) => {
  switch (m.t) {
    case 'key':
      queue = queue.then(async () => {
        verifier = await Groth16Verifier.create(m.vk);
        port.postMessage({ t: 'ready' } satisfies FromVerifyWorker);
      });
      return;
    case 'verify':
      queue = queue.then(() => verify(m.id, m.signals, m.proof));
      return;
    default:
      runTestHook(m, testHooks, 'zk pool');
  }
});
