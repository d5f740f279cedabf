/**
 * HPKE (RFC 9180), base mode only (mode_base = 0x00): the KEMs DHKEM(X25519, HKDF-SHA256) (0x0020)
 * and X-Wing (0x647a, draft-connolly-cfrg-xwing-kem-06 §5.6); the KDFs HKDF-SHA256/384/512
 * (0x0001-0x0003); the AEADs AES-128-GCM, AES-256-GCM and ChaCha20-Poly1305 (0x0001-0x0003).
 * HMAC, SHA-2, AES-GCM, ChaCha20-Poly1305 and X25519 are node:crypto's; nothing here hand-rolls a
 * primitive. PSK and Auth modes are not offered (X-Wing is not an authenticated KEM).
 *
 * Trust: `enc` and ciphertexts are attacker input. Wrong lengths, KEM failures and AEAD tag
 * failures all surface as CageError PQ_BAD_ENVELOPE; unknown algorithm ids as PQ_UNSUPPORTED_SUITE.
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes, type CipherGCM, type DecipherGCM, type KeyObject } from 'node:crypto';
import { CageError } from '../core/errors.js';
import {
  XWingDecapsulationKey, XWingEncapsulationKey, XWING_CIPHERTEXT_LENGTH, XWING_ESEED_LENGTH, XWING_PUBLIC_KEY_LENGTH,
  XWING_SEED_LENGTH, XWING_SHARED_SECRET_LENGTH, x25519, x25519PrivateKey, x25519PublicKey, x25519RawPublicKey, xwingDeriveSeed,
} from './xwing.js';

/** A source of random bytes; injectable so tests and vectors can be deterministic. */
export type Rng = (length: number) => Uint8Array;
export const defaultRng: Rng = (length) => randomBytes(length);

// RFC 9180 §7.1-§7.3 and the IANA "HPKE KEM Identifiers" registry (0x647a: X-Wing).
export const KEM_DHKEM_X25519_HKDF_SHA256 = 0x0020;
export const KEM_XWING = 0x647a;
export const KDF_HKDF_SHA256 = 0x0001;
export const KDF_HKDF_SHA384 = 0x0002;
export const KDF_HKDF_SHA512 = 0x0003;
export const AEAD_AES_128_GCM = 0x0001;
export const AEAD_AES_256_GCM = 0x0002;
export const AEAD_CHACHA20_POLY1305 = 0x0003;

const MODE_BASE = 0x00;
const HPKE_V1 = Buffer.from('HPKE-v1');
const EMPTY = Buffer.alloc(0);

function i2osp(value: number, length: number): Buffer {
  const out = Buffer.alloc(length);
  out.writeUIntBE(value, 0, length);
  return out;
}

// ---------------------------------------------------------------------------------------------
// KDFs (RFC 9180 §7.2): HKDF (RFC 5869) Extract and Expand over node:crypto HMAC.

export interface Kdf {
  readonly id: number;
  readonly name: string;
  /** Output size of the hash, bytes. */
  readonly Nh: number;
  extract(salt: Uint8Array, ikm: Uint8Array): Buffer;
  expand(prk: Uint8Array, info: Uint8Array, length: number): Buffer;
}

function hkdf(id: number, hash: 'sha256' | 'sha384' | 'sha512', Nh: number): Kdf {
  return Object.freeze({
    id,
    name: `HKDF-${hash.toUpperCase()}`,
    Nh,
    // RFC 5869 §2.2: an absent salt is Nh zero bytes.
    extract: (salt: Uint8Array, ikm: Uint8Array) => createHmac(hash, salt.length === 0 ? Buffer.alloc(Nh) : salt).update(ikm).digest(),
    expand(prk: Uint8Array, info: Uint8Array, length: number): Buffer {
      if (length > 255 * Nh) throw new CageError({ code: 'PQ_BAD_ENVELOPE', message: `HKDF-Expand length ${length} too large` });
      const blocks: Buffer[] = [];
      let t: Buffer = EMPTY;
      for (let i = 1, have = 0; have < length; i++) {
        t = createHmac(hash, prk).update(t).update(info).update(Buffer.of(i)).digest();
        blocks.push(t);
        have += t.length;
      }
      return Buffer.concat(blocks).subarray(0, length);
    },
  });
}

const KDFS = new Map<number, Kdf>([
  [KDF_HKDF_SHA256, hkdf(KDF_HKDF_SHA256, 'sha256', 32)],
  [KDF_HKDF_SHA384, hkdf(KDF_HKDF_SHA384, 'sha384', 48)],
  [KDF_HKDF_SHA512, hkdf(KDF_HKDF_SHA512, 'sha512', 64)],
]);

/** RFC 9180 §4: LabeledExtract(salt, label, ikm) = Extract(salt, "HPKE-v1" ‖ suite_id ‖ label ‖ ikm). */
export function labeledExtract(kdf: Kdf, suiteId: Uint8Array, salt: Uint8Array, label: string, ikm: Uint8Array): Buffer {
  return kdf.extract(salt, Buffer.concat([HPKE_V1, suiteId, Buffer.from(label), ikm]));
}

/** RFC 9180 §4: LabeledExpand(prk, label, info, L) = Expand(prk, I2OSP(L, 2) ‖ "HPKE-v1" ‖ suite_id ‖ label ‖ info, L). */
export function labeledExpand(kdf: Kdf, suiteId: Uint8Array, prk: Uint8Array, label: string, info: Uint8Array, length: number): Buffer {
  return kdf.expand(prk, Buffer.concat([i2osp(length, 2), HPKE_V1, suiteId, Buffer.from(label), info]), length);
}

// ---------------------------------------------------------------------------------------------
// AEADs (RFC 9180 §7.3) through node:crypto.

export interface Aead {
  readonly id: number;
  readonly name: string;
  readonly Nk: number;
  readonly Nn: number;
  readonly Nt: number;
  seal(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Buffer;
  /** Throws PQ_BAD_ENVELOPE when the tag does not verify or the input is shorter than a tag. */
  open(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, ciphertext: Uint8Array): Buffer;
}

function nodeAead(id: number, cipher: 'aes-128-gcm' | 'aes-256-gcm' | 'chacha20-poly1305', Nk: number): Aead {
  const Nt = 16;
  return Object.freeze({
    id,
    name: cipher.toUpperCase(),
    Nk,
    Nn: 12,
    Nt,
    seal(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Buffer {
      const c = createCipheriv(cipher as 'aes-128-gcm', key, nonce, { authTagLength: Nt }) as CipherGCM;
      c.setAAD(aad);
      return Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]);
    },
    open(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, ciphertext: Uint8Array): Buffer {
      if (ciphertext.length < Nt) throw new CageError({ code: 'PQ_BAD_ENVELOPE', message: 'ciphertext shorter than the AEAD tag' });
      const d = createDecipheriv(cipher as 'aes-128-gcm', key, nonce, { authTagLength: Nt }) as DecipherGCM;
      d.setAuthTag(ciphertext.subarray(ciphertext.length - Nt));
      d.setAAD(aad);
      const body = d.update(ciphertext.subarray(0, ciphertext.length - Nt));
      try {
        return Buffer.concat([body, d.final()]);
      } catch (cause) {
        body.fill(0);
        throw new CageError({ code: 'PQ_BAD_ENVELOPE', message: 'AEAD authentication failed', cause });
      }
    },
  });
}

const AEADS = new Map<number, Aead>([
  [AEAD_AES_128_GCM, nodeAead(AEAD_AES_128_GCM, 'aes-128-gcm', 16)],
  [AEAD_AES_256_GCM, nodeAead(AEAD_AES_256_GCM, 'aes-256-gcm', 32)],
  [AEAD_CHACHA20_POLY1305, nodeAead(AEAD_CHACHA20_POLY1305, 'chacha20-poly1305', 32)],
]);

// ---------------------------------------------------------------------------------------------
// KEMs (RFC 9180 §4, §7.1; X-Wing draft §5.6).

/** A recipient key, imported (and for X-Wing expanded) once. */
export interface KemPrivateKey {
  readonly kemId: number;
  /** SerializePublicKey(pkR): the bytes a key configuration carries. */
  readonly publicKey: Uint8Array;
  /** Decap(enc, skR) → shared_secret. `enc` is attacker input (PQ_BAD_ENVELOPE on failure). */
  decap(enc: Uint8Array): Uint8Array;
}

/** A recipient public key, parsed once, that senders encapsulate to. */
export interface KemPublicKey {
  readonly kemId: number;
  readonly bytes: Uint8Array;
  /** Encap(pkR) with `randomness` (Kem.NrandEncap bytes): the ephemeral for DHKEM, the eseed for X-Wing. */
  encap(randomness: Uint8Array): { sharedSecret: Uint8Array; enc: Uint8Array };
}

export interface Kem {
  readonly id: number;
  readonly name: string;
  readonly Nsecret: number;
  readonly Nenc: number;
  readonly Npk: number;
  readonly Nsk: number;
  /** Random bytes one Encap consumes. */
  readonly NrandEncap: number;
  /** DeriveKeyPair(ikm) → the serialized secret and public keys. */
  deriveKeyPair(ikm: Uint8Array): { secretKey: Uint8Array; publicKey: Uint8Array };
  importPrivateKey(secretKey: Uint8Array): KemPrivateKey;
  /** Throws PQ_BAD_ENVELOPE for a public key of the wrong size or that fails validation. */
  importPublicKey(publicKey: Uint8Array): KemPublicKey;
}

function kemError(message: string, cause?: unknown): CageError {
  return new CageError({ code: 'PQ_BAD_ENVELOPE', message, cause });
}

/** RFC 9180 §4.1 DHKEM(X25519, HKDF-SHA256). */
function dhkemX25519(): Kem {
  const id = KEM_DHKEM_X25519_HKDF_SHA256;
  const kdf = KDFS.get(KDF_HKDF_SHA256)!;
  const suiteId = Buffer.concat([Buffer.from('KEM'), i2osp(id, 2)]);
  const Nsecret = 32;
  // ExtractAndExpand(dh, kem_context)
  const extractAndExpand = (dh: Uint8Array, kemContext: Uint8Array): Buffer => {
    const eaePrk = labeledExtract(kdf, suiteId, EMPTY, 'eae_prk', dh);
    return labeledExpand(kdf, suiteId, eaePrk, 'shared_secret', kemContext, Nsecret);
  };
  const check = (bytes: Uint8Array, what: string): void => {
    if (!(bytes instanceof Uint8Array) || bytes.length !== 32) throw kemError(`X25519 ${what} must be 32 bytes`);
  };
  return Object.freeze({
    id,
    name: 'DHKEM(X25519, HKDF-SHA256)',
    Nsecret,
    Nenc: 32,
    Npk: 32,
    Nsk: 32,
    NrandEncap: 32,
    deriveKeyPair(ikm: Uint8Array) {
      // RFC 9180 §7.1.3: sk = LabeledExpand(LabeledExtract("", "dkp_prk", ikm), "sk", "", Nsk).
      const dkpPrk = labeledExtract(kdf, suiteId, EMPTY, 'dkp_prk', ikm);
      const secretKey = labeledExpand(kdf, suiteId, dkpPrk, 'sk', EMPTY, 32);
      return { secretKey, publicKey: x25519RawPublicKey(x25519PrivateKey(secretKey)) };
    },
    importPrivateKey(secretKey: Uint8Array): KemPrivateKey {
      check(secretKey, 'secret key');
      const sk: KeyObject = x25519PrivateKey(secretKey);
      const pkRm = x25519RawPublicKey(sk);
      return Object.freeze({
        kemId: id,
        publicKey: pkRm,
        decap(enc: Uint8Array): Uint8Array {
          check(enc, 'enc');
          const dh = x25519(sk, x25519PublicKey(enc));
          return extractAndExpand(dh, Buffer.concat([enc, pkRm]));
        },
      });
    },
    importPublicKey(publicKey: Uint8Array): KemPublicKey {
      check(publicKey, 'public key');
      const pkRm = Uint8Array.from(publicKey);
      const pkR = x25519PublicKey(pkRm);
      return Object.freeze({
        kemId: id,
        bytes: pkRm,
        encap(randomness: Uint8Array) {
          // The randomness is skE itself (RFC 9458 Appendix A gives skE, not ikmE).
          check(randomness, 'ephemeral secret key');
          const skE = x25519PrivateKey(randomness);
          const enc = x25519RawPublicKey(skE);
          const dh = x25519(skE, pkR);
          return { sharedSecret: extractAndExpand(dh, Buffer.concat([enc, pkRm])), enc };
        },
      });
    },
  });
}

/** X-Wing as an HPKE KEM (draft-connolly-cfrg-xwing-kem-06 §5.6): the shared secret is used as is. */
function xwingKem(): Kem {
  const id = KEM_XWING;
  return Object.freeze({
    id,
    name: 'X-Wing',
    Nsecret: XWING_SHARED_SECRET_LENGTH,
    Nenc: XWING_CIPHERTEXT_LENGTH,
    Npk: XWING_PUBLIC_KEY_LENGTH,
    Nsk: XWING_SEED_LENGTH,
    NrandEncap: XWING_ESEED_LENGTH,
    deriveKeyPair(ikm: Uint8Array) {
      const secretKey = xwingDeriveSeed(ikm);
      return { secretKey, publicKey: XWingDecapsulationKey.fromSeed(secretKey).publicKey };
    },
    importPrivateKey(secretKey: Uint8Array): KemPrivateKey {
      const key = XWingDecapsulationKey.fromSeed(secretKey);
      return Object.freeze({ kemId: id, publicKey: key.publicKey, decap: (enc: Uint8Array) => key.decapsulate(enc) });
    },
    importPublicKey(publicKey: Uint8Array): KemPublicKey {
      const key = XWingEncapsulationKey.fromPublicKey(publicKey);
      return Object.freeze({
        kemId: id,
        bytes: key.publicKey,
        encap(randomness: Uint8Array) {
          const { sharedSecret, cipherText } = key.encapsulate(randomness);
          return { sharedSecret, enc: cipherText };
        },
      });
    },
  });
}

const KEMS = new Map<number, Kem>([
  [KEM_DHKEM_X25519_HKDF_SHA256, dhkemX25519()],
  [KEM_XWING, xwingKem()],
]);

export function kemById(id: number): Kem | undefined {
  return KEMS.get(id);
}
export function kdfById(id: number): Kdf | undefined {
  return KDFS.get(id);
}
export function aeadById(id: number): Aead | undefined {
  return AEADS.get(id);
}

// ---------------------------------------------------------------------------------------------
// Cipher suites, key schedule and contexts (RFC 9180 §5).

export interface Suite {
  readonly kem: Kem;
  readonly kdf: Kdf;
  readonly aead: Aead;
  /** suite_id = "HPKE" ‖ I2OSP(kem_id, 2) ‖ I2OSP(kdf_id, 2) ‖ I2OSP(aead_id, 2). */
  readonly id: Buffer;
  /** LabeledExtract("", "psk_id_hash", "") for base mode, computed once. */
  readonly pskIdHash: Buffer;
}

const SUITES = new Map<number, Suite>();

/** The suite for these ids, built once; PQ_UNSUPPORTED_SUITE names the id that is not implemented. */
export function suiteFor(kemId: number, kdfId: number, aeadId: number): Suite {
  const key = kemId * 2 ** 32 + kdfId * 2 ** 16 + aeadId;
  const cached = SUITES.get(key);
  if (cached) return cached;
  const kem = KEMS.get(kemId);
  const kdf = KDFS.get(kdfId);
  const aead = AEADS.get(aeadId);
  if (!kem) throw new CageError({ code: 'PQ_UNSUPPORTED_SUITE', message: `unsupported KEM id 0x${kemId.toString(16).padStart(4, '0')}` });
  if (!kdf) throw new CageError({ code: 'PQ_UNSUPPORTED_SUITE', message: `unsupported KDF id 0x${kdfId.toString(16).padStart(4, '0')}` });
  if (!aead) throw new CageError({ code: 'PQ_UNSUPPORTED_SUITE', message: `unsupported AEAD id 0x${aeadId.toString(16).padStart(4, '0')}` });
  const id = Buffer.concat([Buffer.from('HPKE'), i2osp(kemId, 2), i2osp(kdfId, 2), i2osp(aeadId, 2)]);
  const suite: Suite = Object.freeze({ kem, kdf, aead, id, pskIdHash: labeledExtract(kdf, id, EMPTY, 'psk_id_hash', EMPTY) });
  SUITES.set(key, suite);
  return suite;
}

/** An HPKE encryption context (RFC 9180 §5.2, §5.3); one direction, with its own sequence number. */
export class HpkeContext {
  readonly suite: Suite;
  readonly #key: Buffer;
  readonly #baseNonce: Buffer;
  readonly #exporterSecret: Buffer;
  #seq = 0;

  constructor(suite: Suite, key: Buffer, baseNonce: Buffer, exporterSecret: Buffer) {
    this.suite = suite;
    this.#key = key;
    this.#baseNonce = baseNonce;
    this.#exporterSecret = exporterSecret;
  }

  // ComputeNonce(seq) = base_nonce XOR I2OSP(seq, Nn); the counter stays far below 2^53.
  #nextNonce(): Buffer {
    if (this.#seq >= Number.MAX_SAFE_INTEGER) throw new CageError({ code: 'PQ_BAD_ENVELOPE', message: 'HPKE message limit reached' });
    const nonce = Buffer.from(this.#baseNonce);
    let seq = this.#seq++;
    for (let i = nonce.length - 1; seq > 0 && i >= 0; i--) {
      nonce[i]! ^= seq & 0xff;
      seq = Math.floor(seq / 256);
    }
    return nonce;
  }

  seal(aad: Uint8Array, plaintext: Uint8Array): Buffer {
    return this.suite.aead.seal(this.#key, this.#nextNonce(), aad, plaintext);
  }

  /** Throws PQ_BAD_ENVELOPE on a bad tag; the sequence number only advances on success. */
  open(aad: Uint8Array, ciphertext: Uint8Array): Buffer {
    const nonce = this.#nextNonce();
    try {
      return this.suite.aead.open(this.#key, nonce, aad, ciphertext);
    } catch (err) {
      this.#seq--;
      throw err;
    }
  }

  /** Export(exporter_context, L) = LabeledExpand(exporter_secret, "sec", exporter_context, L). */
  export(exporterContext: Uint8Array, length: number): Buffer {
    return labeledExpand(this.suite.kdf, this.suite.id, this.#exporterSecret, 'sec', exporterContext, length);
  }
}

/** RFC 9180 §5.1 KeySchedule for mode_base (psk = psk_id = ""). */
function keyScheduleBase(suite: Suite, sharedSecret: Uint8Array, info: Uint8Array): HpkeContext {
  const { kdf, aead, id } = suite;
  const infoHash = labeledExtract(kdf, id, EMPTY, 'info_hash', info);
  const context = Buffer.concat([Buffer.of(MODE_BASE), suite.pskIdHash, infoHash]);
  const secret = labeledExtract(kdf, id, sharedSecret, 'secret', EMPTY);
  return new HpkeContext(
    suite,
    labeledExpand(kdf, id, secret, 'key', context, aead.Nk),
    labeledExpand(kdf, id, secret, 'base_nonce', context, aead.Nn),
    labeledExpand(kdf, id, secret, 'exp', context, kdf.Nh),
  );
}

export interface SetupSenderOptions {
  /** Encap randomness (Kem.NrandEncap bytes), for test vectors only. */
  randomness?: Uint8Array;
  rng?: Rng;
}

/** SetupBaseS(pkR, info) → (enc, sender context). */
export function setupBaseS(suite: Suite, pkR: Uint8Array | KemPublicKey, info: Uint8Array, opts: SetupSenderOptions = {}): { enc: Uint8Array; context: HpkeContext } {
  const publicKey = pkR instanceof Uint8Array ? suite.kem.importPublicKey(pkR) : pkR;
  if (publicKey.kemId !== suite.kem.id) throw new CageError({ code: 'PQ_UNSUPPORTED_SUITE', message: 'public key is for another KEM' });
  const randomness = opts.randomness ?? (opts.rng ?? defaultRng)(suite.kem.NrandEncap);
  const { sharedSecret, enc } = publicKey.encap(randomness);
  return { enc, context: keyScheduleBase(suite, sharedSecret, info) };
}

/** SetupBaseR(enc, skR, info) → receiver context. `enc` is attacker input. */
export function setupBaseR(suite: Suite, enc: Uint8Array, skR: KemPrivateKey, info: Uint8Array): HpkeContext {
  if (skR.kemId !== suite.kem.id) throw new CageError({ code: 'PQ_UNSUPPORTED_SUITE', message: 'private key is for another KEM' });
  if (enc.length !== suite.kem.Nenc) throw kemError(`enc must be ${suite.kem.Nenc} bytes, got ${enc.length}`);
  return keyScheduleBase(suite, skR.decap(enc), info);
}

/** Single-shot SealBase (RFC 9180 §6.1). */
export function sealBase(suite: Suite, pkR: Uint8Array | KemPublicKey, info: Uint8Array, aad: Uint8Array, plaintext: Uint8Array, opts: SetupSenderOptions = {}): { enc: Uint8Array; ciphertext: Buffer } {
  const { enc, context } = setupBaseS(suite, pkR, info, opts);
  return { enc, ciphertext: context.seal(aad, plaintext) };
}

/** Single-shot OpenBase (RFC 9180 §6.1); PQ_BAD_ENVELOPE when anything fails. */
export function openBase(suite: Suite, enc: Uint8Array, skR: KemPrivateKey, info: Uint8Array, aad: Uint8Array, ciphertext: Uint8Array): Buffer {
  return setupBaseR(suite, enc, skR, info).open(aad, ciphertext);
}
