/**
 * Ed25519 account and validator keys for the chain, named by `did:key` (core/did-key.ts). Signing and
 * verification go through node:crypto; imported public keys are cached by DID, so verifying many
 * transactions from one sender parses its key once.
 *
 * Key file (`cage chain init` writes one per validator, mode 0600): JSON
 * `{"did":"did:key:z6Mk…","seed":"<base64 32-byte Ed25519 seed>"}`.
 *
 * Trust: DIDs and signatures handed to `verifyEd25519` are attacker-controlled; a malformed DID or
 * signature is a failed verification, never a throw.
 */
import { createPrivateKey, createPublicKey, randomBytes, sign as edSign, verify as edVerify, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { CageError } from '../core/errors.js';
import { didKeyFromPublicKey, publicKeyFromDidKey } from '../core/did-key.js';

const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
export const ED25519_SEED_SIZE = 32;
export const ED25519_SIGNATURE_SIZE = 64;

/** A signing key: its did:key, raw public key and a `sign` over bytes. */
export interface ChainKey {
  readonly did: string;
  readonly publicKey: Buffer;
  readonly seed: Buffer;
  sign(data: Uint8Array): Buffer;
}

/** Builds a key from a 32-byte Ed25519 seed (random when omitted). */
export function createChainKey(seed: Uint8Array = randomBytes(ED25519_SEED_SIZE)): ChainKey {
  if (!(seed instanceof Uint8Array) || seed.length !== ED25519_SEED_SIZE) {
    throw new CageError({ code: 'CHAIN_BAD_ARGS', message: `an Ed25519 seed is ${ED25519_SEED_SIZE} bytes` });
  }
  const privateKey = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: 'der', type: 'pkcs8' });
  const spki = createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
  const publicKey = Buffer.from(spki.subarray(SPKI_ED25519_PREFIX.length));
  const did = didKeyFromPublicKey(publicKey);
  publicKeys.set(did, createPublicKey(privateKey));
  return Object.freeze({ did, publicKey, seed: Buffer.from(seed), sign: (data: Uint8Array) => edSign(null, data, privateKey) });
}

/** The key file's JSON text. */
export function formatKeyFile(key: ChainKey): string {
  return JSON.stringify({ did: key.did, seed: key.seed.toString('base64') }, null, 2) + '\n';
}

/** Parses a key file's text; the DID must match the seed. Throws CHAIN_BAD_ARGS. */
export function parseKeyFile(text: string): ChainKey {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new CageError({ code: 'CHAIN_BAD_ARGS', message: 'key file is not JSON' });
  }
  const o = parsed as { did?: unknown; seed?: unknown };
  if (typeof o !== 'object' || o === null || typeof o.seed !== 'string') throw new CageError({ code: 'CHAIN_BAD_ARGS', message: 'key file needs "seed"' });
  const key = createChainKey(Buffer.from(o.seed, 'base64'));
  if (o.did !== undefined && o.did !== key.did) throw new CageError({ code: 'CHAIN_BAD_ARGS', message: 'key file "did" does not match its seed' });
  return key;
}

export function readKeyFile(path: string): ChainKey {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new CageError({ code: 'CHAIN_BAD_ARGS', message: `cannot read key file ${path}: ${(err as Error).message}`, cause: err });
  }
  return parseKeyFile(text);
}

const MAX_CACHED_KEYS = 100_000;
const publicKeys = new Map<string, KeyObject | null>();

/** The node:crypto key for a did:key, cached; null when the DID is not an Ed25519 did:key. */
export function publicKeyObject(did: string): KeyObject | null {
  let key = publicKeys.get(did);
  if (key !== undefined) return key;
  try {
    key = createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, publicKeyFromDidKey(did)]), format: 'der', type: 'spki' });
  } catch {
    key = null;
  }
  if (publicKeys.size >= MAX_CACHED_KEYS) publicKeys.clear();
  publicKeys.set(did, key);
  return key;
}

/** Verifies an Ed25519 signature by a did:key; false for a bad DID, a wrong-size or failing signature. */
export function verifyEd25519(did: string, data: Uint8Array, signature: Uint8Array): boolean {
  if (signature.length !== ED25519_SIGNATURE_SIZE) return false;
  const key = publicKeyObject(did);
  if (key === null) return false;
  try {
    return edVerify(null, data, key, signature);
  } catch {
    return false;
  }
}
