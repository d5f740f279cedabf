/**
 * The worker thread of pq/pool.ts: opens Encapsulated Requests (RFC 9458 §4.3: the X-Wing
 * decapsulation, the HPKE key schedule, the AEAD open, the §4.4 Export) with pq/ohttp.ts's own
 * functions, so its answers are byte for byte the inline path's.
 *
 * It holds the keys the main thread pushes (seeds, expanded here once per key and kept; the pushed
 * seed copy is zeroed) and nothing else: no clock, no files, no sockets. The main thread has already
 * checked the key id and its grace period against its KeyRing; the check here is the same function
 * over the pushed set, which messages keep in step with the main thread's (one port, in order).
 * Trust: the envelope bytes are attacker input, parsed only by pq/ohttp.ts.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { isCageError } from '../core/errors.js';
import { runTestHook } from '../core/worker-threads.js';
import { kemById } from './hpke.js';
import type { KeySeed } from './keys.js';
import { checkRequestHeader, openEnvelope, type GatewayKey, type OhttpKeySource } from './ohttp.js';
import { ownedBytes, type FromWorker, type ToWorker } from './pool.js';

interface Held {
  createdAt: number;
  key: GatewayKey;
}

const port = parentPort!;
const testHooks = (workerData as { testHooks?: boolean } | null)?.testHooks === true;
let held = new Map<number, Held>();
const keys: OhttpKeySource = { findKey: (keyId) => held.get(keyId)?.key };
let ready = false;

/** Takes the pushed set: keeps the keys it already expanded, expands new ones, drops the rest. */
function setKeys(seeds: readonly KeySeed[]): void {
  const next = new Map<number, Held>();
  for (const s of seeds) {
    const old = held.get(s.keyId);
    try {
      if (old !== undefined && old.createdAt === s.createdAt && old.key.config.kemId === s.kemId) {
        next.set(s.keyId, { createdAt: s.createdAt, key: { config: { ...old.key.config, symmetric: s.symmetric }, privateKey: old.key.privateKey } });
      } else {
        const privateKey = kemById(s.kemId)!.importPrivateKey(s.seed);
        next.set(s.keyId, { createdAt: s.createdAt, key: { config: { keyId: s.keyId, kemId: s.kemId, publicKey: privateKey.publicKey, symmetric: s.symmetric }, privateKey } });
      }
    } catch {
      // The main thread expanded the same seed already; a key that fails here is simply not held
      // (its requests get PQ_UNKNOWN_KEY) rather than taking the thread down.
    } finally {
      s.seed.fill(0);
    }
  }
  held = next;
}

function open(id: number, envelope: Uint8Array): void {
  let reply: FromWorker;
  let transfer: ArrayBuffer[];
  try {
    const o = openEnvelope(envelope, checkRequestHeader(envelope, keys));
    const request = ownedBytes(o.request);
    const enc = ownedBytes(o.enc);
    reply = { t: 'done', id, keyId: o.keyId, kemId: o.kemId, kdfId: o.kdfId, aeadId: o.aeadId, enc, request, secret: ownedBytes(o.exportedSecret) };
    transfer = [enc.buffer as ArrayBuffer, request.buffer as ArrayBuffer];
  } catch (err) {
    reply = { t: 'fail', id, code: isCageError(err) ? err.code : undefined, message: err instanceof Error ? err.message : String(err) };
    transfer = [];
  }
  port.postMessage(reply, transfer);
}

port.on('message', (m: ToWorker) => {
  switch (m.t) {
    case 'open':
      return open(m.id, m.envelope);
    case 'keys':
      setKeys(m.keys);
      if (!ready) {
        ready = true;
        port.postMessage({ t: 'ready' } satisfies FromWorker);
      }
      return;
    default:
      runTestHook(m, testHooks, 'pq pool');
  }
});
