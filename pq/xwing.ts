/**
 * X-Wing, the ML-KEM-768 + X25519 hybrid KEM (draft-connolly-cfrg-xwing-kem-06; HPKE KEM id
 * 0x647a), on the fast path: the decapsulation key is expanded once per key and kept
 * (draft §5.5.1) — the ML-KEM-768 key pair with its matrix Â pre-expanded by noble's `prepare`,
 * and the X25519 half as a native node:crypto KeyObject — and SHAKE256 / SHA3-256 run in
 * node:crypto. ML-KEM itself stays noble's (`@noble/post-quantum`).
 *
 * The output is byte-identical to noble's `ml_kem768_x25519` (the reference, which re-expands the
 * key on every call); test/pq/xwing.test.ts checks that on the draft's vectors and random inputs.
 *
 * Trust: ciphertexts and public keys are attacker input. Lengths are checked here; ML-KEM rejects
 * implicitly (a wrong ciphertext gives a pseudorandom secret, and the AEAD above fails); a
 * low-order X25519 share makes OpenSSL refuse the all-zero secret, reported as PQ_BAD_ENVELOPE.
 */
import { createHash, createPrivateKey, createPublicKey, diffieHellman, randomBytes, type KeyObject } from 'node:crypto';
import { ml_kem768, type KEMPrepared } from '@noble/post-quantum/ml-kem.js';
import { CageError } from '../core/errors.js';
import { checkBytes } from './options.js';

/** draft §5.3: XWingLabel = "\./" "/^\", hex 5c2e2f2f5e5c. */
export const XWING_LABEL = Buffer.from('5c2e2f2f5e5c', 'hex');
/** draft §5.1 sizes. */
export const XWING_SEED_LENGTH = 32;
export const XWING_PUBLIC_KEY_LENGTH = 1216;
export const XWING_CIPHERTEXT_LENGTH = 1120;
export const XWING_SHARED_SECRET_LENGTH = 32;
/** draft §5.4.1: EncapsulateDerand's eseed (32 bytes of ML-KEM coins, then the X25519 ephemeral). */
export const XWING_ESEED_LENGTH = 64;

const MLKEM768_PUBLIC_KEY_LENGTH = 1184;
const MLKEM768_CIPHERTEXT_LENGTH = 1088;

// RFC 8410 DER wrappers for raw X25519 keys: import once, then stay native.
const X25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');
const X25519_SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');

/** A native X25519 private key from its 32 raw bytes (RFC 7748 clamping happens inside). */
export function x25519PrivateKey(secretKey: Uint8Array): KeyObject {
  return createPrivateKey({ key: Buffer.concat([X25519_PKCS8_PREFIX, secretKey]), format: 'der', type: 'pkcs8' });
}

/**
 * A native X25519 public key from its 32 raw bytes (any 32 bytes are accepted, as in RFC 7748).
 * Imported as a JWK, which OpenSSL takes as a raw key: about 10 µs, against about 100 µs for the
 * same bytes wrapped in DER (OpenSSL 3's decoder), once per request on the decapsulation path.
 */
export function x25519PublicKey(publicKey: Uint8Array): KeyObject {
  if (publicKey.length !== 32) throw new CageError({ code: 'PQ_BAD_ENVELOPE', message: 'X25519 public key must be 32 bytes' });
  return createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: Buffer.from(publicKey.buffer, publicKey.byteOffset, 32).toString('base64url') }, format: 'jwk' });
}

/** The raw 32-byte public key of a native X25519 private or public key. */
export function x25519RawPublicKey(key: KeyObject): Buffer {
  const spki = (key.type === 'private' ? createPublicKey(key) : key).export({ format: 'der', type: 'spki' });
  return spki.subarray(X25519_SPKI_PREFIX.length);
}

/** X25519(sk, pk). Throws PQ_BAD_ENVELOPE when the result is all zero (a low-order point). */
export function x25519(privateKey: KeyObject, publicKey: KeyObject): Buffer {
  try {
    return diffieHellman({ privateKey, publicKey });
  } catch (cause) {
    throw new CageError({ code: 'PQ_BAD_ENVELOPE', message: 'X25519 share is a low-order point', cause });
  }
}

/** SHAKE256(data, outputLength) in node:crypto. */
export function shake256(data: Uint8Array, outputLength: number): Buffer {
  return createHash('shake256', { outputLength }).update(data).digest();
}

/** draft §5.3 Combiner: SHA3-256(ss_M ‖ ss_X ‖ ct_X ‖ pk_X ‖ XWingLabel). */
function combine(ssM: Uint8Array, ssX: Uint8Array, ctX: Uint8Array, pkX: Uint8Array): Buffer {
  return createHash('sha3-256').update(ssM).update(ssX).update(ctX).update(pkX).update(XWING_LABEL).digest();
}

/**
 * An X-Wing decapsulation key, expanded once (draft §5.2 expandDecapsulationKey, kept per §5.5.1).
 * The 32-byte seed is the secret key on disk; the expansion never leaves the process.
 */
export class XWingDecapsulationKey {
  /** pk_M ‖ pk_X, 1216 bytes. */
  readonly publicKey: Uint8Array;
  readonly #mlkemSecretKey: Uint8Array;
  readonly #mlkem: KEMPrepared;
  readonly #x25519: KeyObject;
  readonly #pkX: Buffer;

  private constructor(publicKey: Uint8Array, mlkemSecretKey: Uint8Array, mlkem: KEMPrepared, x: KeyObject, pkX: Buffer) {
    this.publicKey = publicKey;
    this.#mlkemSecretKey = mlkemSecretKey;
    this.#mlkem = mlkem;
    this.#x25519 = x;
    this.#pkX = pkX;
  }

  /** draft §5.2: expanded = SHAKE256(sk, 96); ML-KEM-768.KeyGen_internal(expanded[0:32], expanded[32:64]); sk_X = expanded[64:96]. */
  static fromSeed(seed: Uint8Array): XWingDecapsulationKey {
    checkBytes(seed, 'X-Wing seed', XWING_SEED_LENGTH);
    const expanded = shake256(seed, 96);
    // noble's keygen(d ‖ z) is FIPS 203 ML-KEM.KeyGen_internal(d, z).
    const mlkemKeys = ml_kem768.keygen(expanded.subarray(0, 64));
    const x = x25519PrivateKey(expanded.subarray(64, 96));
    expanded.fill(0);
    const pkX = x25519RawPublicKey(x);
    const publicKey = new Uint8Array(XWING_PUBLIC_KEY_LENGTH);
    publicKey.set(mlkemKeys.publicKey, 0);
    publicKey.set(pkX, MLKEM768_PUBLIC_KEY_LENGTH);
    return new XWingDecapsulationKey(publicKey, mlkemKeys.secretKey, ml_kem768.prepare(mlkemKeys.publicKey), x, pkX);
  }

  /** draft §5.5 Decapsulate(ct, sk), with the expansion cached. `ct` is attacker input. */
  decapsulate(cipherText: Uint8Array): Buffer {
    if (!(cipherText instanceof Uint8Array) || cipherText.length !== XWING_CIPHERTEXT_LENGTH) {
      throw new CageError({ code: 'PQ_BAD_ENVELOPE', message: `X-Wing ciphertext must be ${XWING_CIPHERTEXT_LENGTH} bytes` });
    }
    const ctM = cipherText.subarray(0, MLKEM768_CIPHERTEXT_LENGTH);
    const ctX = cipherText.subarray(MLKEM768_CIPHERTEXT_LENGTH);
    const ssM = this.#mlkem.decapsulate(ctM, this.#mlkemSecretKey);
    const ssX = x25519(this.#x25519, x25519PublicKey(ctX));
    return combine(ssM, ssX, ctX, this.#pkX);
  }
}

/** An X-Wing encapsulation key, parsed and validated once (ML-KEM §7.2 modulus check; Â expanded). */
export class XWingEncapsulationKey {
  readonly publicKey: Uint8Array;
  readonly #mlkem: KEMPrepared;
  readonly #pkX: Uint8Array;
  readonly #x25519: KeyObject;

  private constructor(publicKey: Uint8Array, mlkem: KEMPrepared, pkX: Uint8Array, x: KeyObject) {
    this.publicKey = publicKey;
    this.#mlkem = mlkem;
    this.#pkX = pkX;
    this.#x25519 = x;
  }

  /** Throws PQ_BAD_ENVELOPE for a key of the wrong size or one failing the ML-KEM encapsulation key check. */
  static fromPublicKey(publicKey: Uint8Array): XWingEncapsulationKey {
    if (!(publicKey instanceof Uint8Array) || publicKey.length !== XWING_PUBLIC_KEY_LENGTH) {
      throw new CageError({ code: 'PQ_BAD_ENVELOPE', message: `X-Wing public key must be ${XWING_PUBLIC_KEY_LENGTH} bytes` });
    }
    const pk = Uint8Array.from(publicKey);
    let mlkem: KEMPrepared;
    try {
      mlkem = ml_kem768.prepare(pk.subarray(0, MLKEM768_PUBLIC_KEY_LENGTH));
    } catch (cause) {
      throw new CageError({ code: 'PQ_BAD_ENVELOPE', message: 'X-Wing public key fails the ML-KEM-768 encapsulation key check', cause });
    }
    const pkX = pk.subarray(MLKEM768_PUBLIC_KEY_LENGTH);
    return new XWingEncapsulationKey(pk, mlkem, pkX, x25519PublicKey(pkX));
  }

  /**
   * draft §5.4 Encapsulate; with `eseed` (64 bytes) it is §5.4.1 EncapsulateDerand, for test vectors.
   * Returns the 32-byte shared secret and the 1120-byte ciphertext ct_M ‖ ct_X.
   */
  encapsulate(eseed: Uint8Array = randomBytes(XWING_ESEED_LENGTH)): { sharedSecret: Buffer; cipherText: Buffer } {
    checkBytes(eseed, 'X-Wing eseed', XWING_ESEED_LENGTH);
    const ek = x25519PrivateKey(eseed.subarray(32, 64));
    const ctX = x25519RawPublicKey(ek);
    const ssX = x25519(ek, this.#x25519);
    const { cipherText: ctM, sharedSecret: ssM } = this.#mlkem.encapsulate(Uint8Array.from(eseed.subarray(0, 32)));
    return { sharedSecret: combine(ssM, ssX, ctX, this.#pkX), cipherText: Buffer.concat([ctM, ctX]) };
  }
}

/** draft §5.2.1 GenerateKeyPairDerand(sk): the public key of a seed. */
export function xwingPublicKey(seed: Uint8Array): Uint8Array {
  return XWingDecapsulationKey.fromSeed(seed).publicKey;
}

/** draft §5.6 DeriveKeyPair(ikm) for HPKE: the seed is SHAKE256(ikm, 32). */
export function xwingDeriveSeed(ikm: Uint8Array): Buffer {
  return shake256(ikm, XWING_SEED_LENGTH);
}
