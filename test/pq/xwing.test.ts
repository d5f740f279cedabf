import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ml_kem768_x25519 } from '@noble/post-quantum/hybrid.js';
import { shake256 as nobleShake256 } from '@noble/hashes/sha3.js';
import {
  XWingDecapsulationKey, XWingEncapsulationKey, XWING_CIPHERTEXT_LENGTH, XWING_PUBLIC_KEY_LENGTH, xwingDeriveSeed, xwingPublicKey,
} from '../../pq/xwing.js';
import { expectCode, xwingVectors } from './helpers.js';

const eq = (a: Uint8Array, b: Uint8Array, msg?: string): void => assert.equal(Buffer.from(a).toString('hex'), Buffer.from(b).toString('hex'), msg);

describe('pq/xwing: the fast X-Wing against the draft and against noble', () => {
  const vectors = xwingVectors();

  it('has the three draft-06 Appendix C vectors', () => {
    assert.equal(vectors.length, 3);
    for (const v of vectors) {
      assert.equal(v.pk.length, XWING_PUBLIC_KEY_LENGTH);
      assert.equal(v.ct.length, XWING_CIPHERTEXT_LENGTH);
      eq(v.seed, v.sk);
    }
  });

  for (const [i, v] of vectors.entries()) {
    it(`vector ${i + 1}: keygen, EncapsulateDerand and Decapsulate match the draft`, () => {
      eq(xwingPublicKey(v.seed), v.pk, 'public key');
      const enc = XWingEncapsulationKey.fromPublicKey(v.pk).encapsulate(v.eseed);
      eq(enc.cipherText, v.ct, 'ciphertext');
      eq(enc.sharedSecret, v.ss, 'shared secret (encapsulate)');
      eq(XWingDecapsulationKey.fromSeed(v.sk).decapsulate(v.ct), v.ss, 'shared secret (decapsulate)');
    });

    it(`vector ${i + 1}: noble's ml_kem768_x25519 (the reference) gives the same bytes`, () => {
      eq(ml_kem768_x25519.keygen(v.seed).publicKey, v.pk);
      const enc = ml_kem768_x25519.encapsulate(v.pk, v.eseed);
      eq(enc.cipherText, v.ct);
      eq(enc.sharedSecret, v.ss);
      eq(ml_kem768_x25519.decapsulate(v.ct, v.sk), v.ss);
    });
  }

  it('is byte-identical to noble for random seeds, eseeds and ciphertexts', () => {
    for (let i = 0; i < 6; i++) {
      const seed = randomBytes(32);
      const eseed = randomBytes(64);
      const fast = XWingDecapsulationKey.fromSeed(seed);
      const ref = ml_kem768_x25519.keygen(seed);
      eq(fast.publicKey, ref.publicKey, 'public key');
      const a = XWingEncapsulationKey.fromPublicKey(fast.publicKey).encapsulate(eseed);
      const b = ml_kem768_x25519.encapsulate(ref.publicKey, eseed);
      eq(a.cipherText, b.cipherText, 'ciphertext');
      eq(a.sharedSecret, b.sharedSecret, 'shared secret');
      eq(fast.decapsulate(a.cipherText), a.sharedSecret, 'round trip');
      // The cached key is reused: a second ciphertext to the same key still agrees.
      const c = ml_kem768_x25519.encapsulate(ref.publicKey);
      eq(fast.decapsulate(c.cipherText), c.sharedSecret, 'second ciphertext, same key');
    }
  });

  it('rejects implicitly exactly like noble when the ML-KEM part is tampered with', () => {
    const v = vectors[0]!;
    const fast = XWingDecapsulationKey.fromSeed(v.sk);
    for (const pos of [0, 1, 500, 1087]) {
      const ct = Buffer.from(v.ct);
      ct[pos]! ^= 0x01;
      const got = fast.decapsulate(ct);
      eq(got, ml_kem768_x25519.decapsulate(ct, v.sk), `flip at ${pos}`);
      assert.notEqual(Buffer.from(got).toString('hex'), v.ss.toString('hex'));
    }
  });

  it('agrees with noble when the X25519 share is tampered with (a different, non-zero point)', () => {
    const v = vectors[1]!;
    const fast = XWingDecapsulationKey.fromSeed(v.sk);
    for (const pos of [1088, 1100, 1119]) {
      const ct = Buffer.from(v.ct);
      ct[pos]! ^= 0x40;
      eq(fast.decapsulate(ct), ml_kem768_x25519.decapsulate(ct, v.sk), `flip at ${pos}`);
    }
  });

  it('refuses a low-order X25519 share (PQ_BAD_ENVELOPE), as noble refuses it', () => {
    const v = vectors[2]!;
    const ct = Buffer.from(v.ct);
    ct.fill(0, 1088);
    expectCode(() => XWingDecapsulationKey.fromSeed(v.sk).decapsulate(ct), 'PQ_BAD_ENVELOPE');
    assert.throws(() => ml_kem768_x25519.decapsulate(ct, v.sk));
  });

  it('checks lengths and the ML-KEM encapsulation key (modulus) before use', () => {
    const v = vectors[0]!;
    const fast = XWingDecapsulationKey.fromSeed(v.sk);
    expectCode(() => fast.decapsulate(v.ct.subarray(0, 1119)), 'PQ_BAD_ENVELOPE');
    expectCode(() => fast.decapsulate(Buffer.concat([v.ct, Buffer.of(0)])), 'PQ_BAD_ENVELOPE');
    expectCode(() => XWingEncapsulationKey.fromPublicKey(v.pk.subarray(1)), 'PQ_BAD_ENVELOPE');
    const badPk = Buffer.from(v.pk);
    badPk[0] = 0xff;
    badPk[1]! |= 0x0f; // first 12-bit coefficient = 4095 ≥ q
    expectCode(() => XWingEncapsulationKey.fromPublicKey(badPk), 'PQ_BAD_ENVELOPE');
    assert.throws(() => ml_kem768_x25519.encapsulate(badPk));
    expectCode(() => XWingDecapsulationKey.fromSeed(Buffer.alloc(31)), 'CONFIG_INVALID');
    expectCode(() => XWingEncapsulationKey.fromPublicKey(v.pk).encapsulate(Buffer.alloc(63)), 'CONFIG_INVALID');
  });

  it('DeriveKeyPair for HPKE is SHAKE256(ikm, 32) (draft §5.6)', () => {
    for (const ikm of [Buffer.alloc(0), Buffer.from('cage'), randomBytes(64)]) {
      eq(xwingDeriveSeed(ikm), nobleShake256(ikm, { dkLen: 32 }));
    }
  });
});
