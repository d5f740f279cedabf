/**
 * Shared bits of the pq/ tests: hex, code assertions, the vectors, and ready-made gateways.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { isCageError, type CageErrorCode } from '../../core/errors.js';
import { AEAD_AES_128_GCM, AEAD_AES_256_GCM, AEAD_CHACHA20_POLY1305, KDF_HKDF_SHA256, KEM_XWING, kemById } from '../../pq/hpke.js';
import type { GatewayKey, KeyConfig } from '../../pq/ohttp.js';

export const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/** Runs `fn` and asserts it throws a CageError with `code` (returns the error). */
export function expectCode(fn: () => unknown, code: CageErrorCode, note = ''): Error {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  assert.ok(thrown !== undefined, `expected ${code}${note ? ` (${note})` : ''}, nothing was thrown`);
  assert.ok(isCageError(thrown), `expected CageError ${code}${note ? ` (${note})` : ''}, got ${String(thrown)}`);
  assert.equal(thrown.code, code, `${note}: ${thrown.message}`);
  return thrown;
}

export async function expectCodeAsync(p: Promise<unknown>, code: CageErrorCode): Promise<Error> {
  let thrown: unknown;
  try {
    await p;
  } catch (err) {
    thrown = err;
  }
  assert.ok(isCageError(thrown), `expected CageError ${code}, got ${String(thrown)}`);
  assert.equal(thrown.code, code, thrown.message);
  return thrown;
}

export function readVector<T>(relative: string): T {
  return JSON.parse(readFileSync(new URL(`../vectors/${relative}`, import.meta.url), 'utf8')) as T;
}

export interface XWingVector {
  seed: Buffer;
  sk: Buffer;
  pk: Buffer;
  eseed: Buffer;
  ct: Buffer;
  ss: Buffer;
}

/** draft-connolly-cfrg-xwing-kem-06 Appendix C, as written in the draft (wrapped hex). */
export function xwingVectors(): XWingVector[] {
  const text = readFileSync(new URL('../vectors/xwing/draft-06-appendix-c.txt', import.meta.url), 'utf8');
  return text.trim().split(/\n\s*\n/).map((block) => {
    const v: Record<string, string> = {};
    let key = '';
    for (const line of block.split('\n')) {
      const m = /^(\w+)\s*([0-9a-f]*)$/.exec(line);
      if (m) {
        key = m[1]!;
        v[key] = m[2]!;
      } else {
        v[key] += line.trim();
      }
    }
    return { seed: hex(v.seed!), sk: hex(v.sk!), pk: hex(v.pk!), eseed: hex(v.eseed!), ct: hex(v.ct!), ss: hex(v.ss!) };
  });
}

export const ALL_SYMMETRIC = [
  { kdfId: KDF_HKDF_SHA256, aeadId: AEAD_AES_256_GCM },
  { kdfId: KDF_HKDF_SHA256, aeadId: AEAD_CHACHA20_POLY1305 },
  { kdfId: KDF_HKDF_SHA256, aeadId: AEAD_AES_128_GCM },
];

/** A gateway key from a seed byte (deterministic), with every symmetric pair unless told otherwise. */
export function makeKey(keyId: number, seedByte: number, kemId = KEM_XWING, symmetric = ALL_SYMMETRIC): GatewayKey {
  const kem = kemById(kemId)!;
  const privateKey = kem.importPrivateKey(Buffer.alloc(kem.Nsk, seedByte));
  const config: KeyConfig = { keyId, kemId, publicKey: privateKey.publicKey, symmetric };
  return { config, privateKey };
}

/** A counter-based RNG: deterministic, distinct outputs. */
export function counterRng(start = 1): (n: number) => Uint8Array {
  let i = start;
  return (n) => {
    const out = Buffer.alloc(n);
    for (let j = 0; j < n; j++) out[j] = (i * 31 + j * 7) & 0xff;
    i++;
    return out;
  };
}
