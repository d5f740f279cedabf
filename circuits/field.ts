/**
 * Field elements of the membership circuit (BN254 scalar field) and the deterministic maps from
 * bytes and strings into it. Pure; no curve, no Poseidon.
 *
 * Hash to field: SHA-256 of a domain-separated message, read big-endian, shifted right by 8 bits
 * (248 bits < r), as Semaphore does with keccak. No modular bias, no rejection loop.
 *   scope        → F("cage-zk/scope/v1\n"  ‖ scope)
 *   request      → F("cage-zk/request/v1\n" ‖ METHOD \n target \n hex(contentDigest) \n timestamp)
 *   session key  → F("cage-zk/session/v1\n" ‖ raw 32-byte Ed25519 public key)
 * The epoch is a plain integer (0 ≤ epoch < 2^53) used as a field element as is.
 */
import { createHash } from 'node:crypto';
import { CageError } from '../core/errors.js';

/** r, the order of BN254's G1: the circuit's scalar field. */
export const SNARK_SCALAR_FIELD = 21888242871839275222246405745257275088548364400416034343698204186575808495617n;
/** q, BN254's base field: the proof's point coordinates live here. */
export const BN254_BASE_FIELD = 21888242871839275222246405745257275088696311157297823662689037894645226208583n;

const SCOPE_TAG = 'cage-zk/scope/v1\n';
const REQUEST_TAG = 'cage-zk/request/v1\n';
const SESSION_TAG = 'cage-zk/session/v1\n';

/** SHA-256(data) >> 8 as a field element. */
export function hashToField(...parts: (string | Uint8Array)[]): bigint {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return BigInt('0x' + h.digest('hex')) >> 8n;
}

export function scopeToField(scope: string): bigint {
  return hashToField(SCOPE_TAG, scope);
}

/** The request a per-request proof binds. `contentDigest` is SHA-256 of the body (of the empty string when there is none). */
export interface BoundRequest {
  method: string;
  /** Origin-form request target: path and query exactly as sent (`/a/b?x=1`). */
  target: string;
  contentDigest: Uint8Array;
  /** Unix seconds chosen by the prover; the verifier checks it against its window. */
  timestamp: number;
}

export function requestSignal(req: BoundRequest): bigint {
  if (req.contentDigest.length !== 32) throw new CageError({ code: 'ZK_BAD_HEADER', message: 'contentDigest must be 32 bytes (SHA-256)' });
  return hashToField(REQUEST_TAG, `${req.method}\n${req.target}\n${Buffer.from(req.contentDigest).toString('hex')}\n${req.timestamp}`);
}

export function sessionSignal(sessionPublicKey: Uint8Array): bigint {
  if (sessionPublicKey.length !== 32) throw new CageError({ code: 'ZK_BAD_HEADER', message: 'session key must be 32 bytes (Ed25519)' });
  return hashToField(SESSION_TAG, sessionPublicKey);
}

/** SHA-256 of a body: the content digest a per-request proof binds. */
export function contentDigestOf(body: Uint8Array | string | undefined): Uint8Array {
  return createHash('sha256').update(body ?? '').digest();
}

/** The default epoch length (one session per member per scope per hour). The cage's config may choose another. */
export const DEFAULT_EPOCH_SECONDS = 3600;

/** The epoch number of a Unix-millisecond instant, for epochs of `epochSeconds`. */
export function epochAt(nowMs: number, epochSeconds: number = DEFAULT_EPOCH_SECONDS): number {
  return Math.floor(nowMs / 1000 / epochSeconds);
}

/** A field element as 32 big-endian bytes. */
export function fieldToBytes(x: bigint): Uint8Array {
  const hex = x.toString(16).padStart(64, '0');
  if (hex.length !== 64) throw new RangeError('field element over 256 bits');
  return Buffer.from(hex, 'hex');
}

export function bytesToBigint(b: Uint8Array): bigint {
  return b.length === 0 ? 0n : BigInt('0x' + Buffer.from(b).toString('hex'));
}

/** Whether 0 ≤ x < r. */
export function isFieldElement(x: bigint): boolean {
  return x >= 0n && x < SNARK_SCALAR_FIELD;
}
