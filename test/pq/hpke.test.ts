import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  AEAD_AES_128_GCM, AEAD_AES_256_GCM, AEAD_CHACHA20_POLY1305, KDF_HKDF_SHA256, KDF_HKDF_SHA384, KDF_HKDF_SHA512,
  KEM_DHKEM_X25519_HKDF_SHA256, KEM_XWING, kemById, openBase, sealBase, setupBaseR, setupBaseS, suiteFor,
} from '../../pq/hpke.js';
import { expectCode, hex } from './helpers.js';

// RFC 9180 Appendix A.1.1: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM, mode_base.
const A11 = {
  info: '4f6465206f6e2061204772656369616e2055726e',
  ikmE: '7268600d403fce431561aef583ee1613527cff655c1343f29812e66706df3234',
  skEm: '52c4a758a802cd8b936eceea314432798d5baf2d7e9235dc084ab1b9cfa2f736',
  pkEm: '37fda3567bdbd628e88668c3c8d7e97d1d1253b6d4ea6d44c150f741f1bf4431',
  ikmR: '6db9df30aa07dd42ee5e8181afdb977e538f5e1fec8a06223f33f7013e525037',
  skRm: '4612c550263fc8ad58375df3f557aac531d26850903e55a9f23f21d8534e8ac8',
  seq0: {
    pt: '4265617574792069732074727574682c20747275746820626561757479',
    aad: '436f756e742d30',
    ct: 'f938558b5d72f1a23810b4be2ab4f84331acc02fc97babc53a52ae8218a355a96d8770ac83d07bea87e13c512a',
  },
  exportEmpty32: '3853fe2b4035195a573ffc53856e77058e15d9ea064de3e59f4961d0095250ee',
};

const KEMS = [KEM_DHKEM_X25519_HKDF_SHA256, KEM_XWING];
const KDFS = [KDF_HKDF_SHA256, KDF_HKDF_SHA384, KDF_HKDF_SHA512];
const AEADS = [AEAD_AES_128_GCM, AEAD_AES_256_GCM, AEAD_CHACHA20_POLY1305];

describe('pq/hpke: RFC 9180 base mode', () => {
  it('reproduces RFC 9180 A.1.1 (DeriveKeyPair, enc, first ciphertext, exporter)', () => {
    const kem = kemById(KEM_DHKEM_X25519_HKDF_SHA256)!;
    const e = kem.deriveKeyPair(hex(A11.ikmE));
    assert.equal(Buffer.from(e.secretKey).toString('hex'), A11.skEm);
    assert.equal(Buffer.from(e.publicKey).toString('hex'), A11.pkEm);
    const r = kem.deriveKeyPair(hex(A11.ikmR));
    assert.equal(Buffer.from(r.secretKey).toString('hex'), A11.skRm);
    const suite = suiteFor(KEM_DHKEM_X25519_HKDF_SHA256, KDF_HKDF_SHA256, AEAD_AES_128_GCM);
    const { enc, context } = setupBaseS(suite, r.publicKey, hex(A11.info), { randomness: e.secretKey });
    assert.equal(Buffer.from(enc).toString('hex'), A11.pkEm);
    assert.equal(context.seal(hex(A11.seq0.aad), hex(A11.seq0.pt)).toString('hex'), A11.seq0.ct);
    const receiver = setupBaseR(suite, enc, kem.importPrivateKey(r.secretKey), hex(A11.info));
    assert.equal(receiver.open(hex(A11.seq0.aad), hex(A11.seq0.ct)).toString('hex'), A11.seq0.pt);
    assert.equal(receiver.export(Buffer.alloc(0), 32).toString('hex'), A11.exportEmpty32);
    assert.equal(context.export(Buffer.alloc(0), 32).toString('hex'), A11.exportEmpty32);
  });

  for (const kemId of KEMS) {
    for (const kdfId of KDFS) {
      for (const aeadId of AEADS) {
        it(`round-trips KEM 0x${kemId.toString(16)} / KDF ${kdfId} / AEAD ${aeadId}: several messages, exporter, tamper`, () => {
          const suite = suiteFor(kemId, kdfId, aeadId);
          const sk = suite.kem.importPrivateKey(randomBytes(suite.kem.Nsk));
          const info = Buffer.from('cage test');
          const { enc, context: s } = setupBaseS(suite, sk.publicKey, info);
          assert.equal(enc.length, suite.kem.Nenc);
          const r = setupBaseR(suite, enc, sk, info);
          for (let i = 0; i < 3; i++) {
            const pt = randomBytes(i * 40);
            const ct = s.seal(Buffer.of(i), pt);
            assert.equal(ct.length, pt.length + suite.aead.Nt);
            if (i === 1) {
              // A bad tag must not advance the receiver's sequence number.
              const bad = Buffer.from(ct);
              bad[bad.length - 1]! ^= 1;
              expectCode(() => r.open(Buffer.of(i), bad), 'PQ_BAD_ENVELOPE');
              expectCode(() => r.open(Buffer.of(i + 1), ct), 'PQ_BAD_ENVELOPE', 'wrong aad');
            }
            assert.deepEqual(r.open(Buffer.of(i), ct), pt);
          }
          assert.deepEqual(r.export(Buffer.from('x'), 48), s.export(Buffer.from('x'), 48));
          assert.notDeepEqual(r.export(Buffer.from('y'), 48), s.export(Buffer.from('x'), 48));
          // A receiver with other info derives other keys.
          const other = setupBaseR(suite, enc, sk, Buffer.from('other'));
          expectCode(() => other.open(Buffer.of(0), setupBaseS(suite, sk.publicKey, info, { randomness: randomBytes(suite.kem.NrandEncap) }).context.seal(Buffer.of(0), Buffer.from('m'))), 'PQ_BAD_ENVELOPE');
        });
      }
    }
  }

  it('single-shot seal/open, with fixed randomness being deterministic', () => {
    const suite = suiteFor(KEM_XWING, KDF_HKDF_SHA256, AEAD_AES_256_GCM);
    const sk = suite.kem.importPrivateKey(Buffer.alloc(32, 7));
    const rnd = Buffer.alloc(64, 9);
    const a = sealBase(suite, sk.publicKey, Buffer.from('i'), Buffer.from('a'), Buffer.from('hello'), { randomness: rnd });
    const b = sealBase(suite, sk.publicKey, Buffer.from('i'), Buffer.from('a'), Buffer.from('hello'), { randomness: rnd });
    assert.deepEqual(a, b);
    assert.equal(openBase(suite, a.enc, sk, Buffer.from('i'), Buffer.from('a'), a.ciphertext).toString(), 'hello');
  });

  it('names the unsupported id, and refuses wrong enc lengths and mismatched keys', () => {
    expectCode(() => suiteFor(0x0010, 1, 1), 'PQ_UNSUPPORTED_SUITE');
    expectCode(() => suiteFor(KEM_XWING, 0x0009, 1), 'PQ_UNSUPPORTED_SUITE');
    expectCode(() => suiteFor(KEM_XWING, 1, 0xffff), 'PQ_UNSUPPORTED_SUITE');
    const suite = suiteFor(KEM_DHKEM_X25519_HKDF_SHA256, 1, 1);
    const sk = suite.kem.importPrivateKey(randomBytes(32));
    expectCode(() => setupBaseR(suite, Buffer.alloc(31), sk, Buffer.alloc(0)), 'PQ_BAD_ENVELOPE');
    expectCode(() => setupBaseR(suite, Buffer.alloc(32), sk, Buffer.alloc(0)), 'PQ_BAD_ENVELOPE', 'all-zero X25519 share');
    const xw = suiteFor(KEM_XWING, 1, 1);
    expectCode(() => setupBaseR(xw, Buffer.alloc(1120), sk, Buffer.alloc(0)), 'PQ_UNSUPPORTED_SUITE');
    expectCode(() => suite.kem.importPublicKey(Buffer.alloc(33)), 'PQ_BAD_ENVELOPE');
  });
});
