/**
 * Interop with an independent HPKE stack: @hpke/core (+ @hpke/hybridkem-x-wing, whose ML-KEM is
 * the separate `mlkem` package, and @hpke/chacha20poly1305). Each direction: one side seals, the
 * other opens, and both export the same secret. Then an RFC 9458 request built by @hpke/core is
 * opened by our gateway, and our response is opened with @hpke/core's exporter.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Aes128Gcm, Aes256Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256, HkdfSha384, HkdfSha512, type AeadInterface, type KdfInterface, type KemInterface } from '@hpke/core';
import { Chacha20Poly1305 } from '@hpke/chacha20poly1305';
import { XWing } from '@hpke/hybridkem-x-wing';
import { setupBaseR, setupBaseS, suiteFor, KEM_DHKEM_X25519_HKDF_SHA256, KEM_XWING } from '../../pq/hpke.js';
import { encodeRequestHeader, OhttpGateway, OHTTP_REQUEST_LABEL, OHTTP_RESPONSE_LABEL } from '../../pq/ohttp.js';
import { encodeRequest, decodeResponse } from '../../pq/bhttp.js';
import { makeKey } from './helpers.js';

const buf = (b: ArrayBuffer | Uint8Array): Buffer => Buffer.from(b instanceof Uint8Array ? b : new Uint8Array(b));
const ab = (b: Uint8Array): ArrayBuffer => Uint8Array.from(b).buffer;

const KEMS: [number, () => KemInterface][] = [[KEM_DHKEM_X25519_HKDF_SHA256, () => new DhkemX25519HkdfSha256()], [KEM_XWING, () => new XWing()]];
const KDFS: [number, () => KdfInterface][] = [[1, () => new HkdfSha256()], [2, () => new HkdfSha384()], [3, () => new HkdfSha512()]];
const AEADS: [number, () => AeadInterface][] = [[1, () => new Aes128Gcm()], [2, () => new Aes256Gcm()], [3, () => new Chacha20Poly1305()]];

describe('pq/hpke interop with @hpke/core', () => {
  for (const [kemId, mkKem] of KEMS) {
    for (const [kdfId, mkKdf] of KDFS) {
      for (const [aeadId, mkAead] of AEADS) {
        it(`KEM 0x${kemId.toString(16)} / KDF ${kdfId} / AEAD ${aeadId}: both directions`, async () => {
          const theirs = new CipherSuite({ kem: mkKem(), kdf: mkKdf(), aead: mkAead() });
          const ours = suiteFor(kemId, kdfId, aeadId);
          const info = randomBytes(20);
          const aad = randomBytes(7);
          const pt = randomBytes(100);

          // @hpke/core seals to our key; we open.
          const ourKey = ours.kem.importPrivateKey(randomBytes(ours.kem.Nsk));
          const sender = await theirs.createSenderContext({ recipientPublicKey: await theirs.kem.deserializePublicKey(ab(ourKey.publicKey)), info: ab(info) });
          const ct = buf(await sender.seal(ab(pt), ab(aad)));
          const receiver = setupBaseR(ours, buf(sender.enc), ourKey, info);
          assert.deepEqual(receiver.open(aad, ct), pt);
          assert.deepEqual(receiver.export(Buffer.from('ctx'), 32), buf(await sender.export(ab(Buffer.from('ctx')), 32)));

          // We seal to their key; @hpke/core opens.
          const pair = await theirs.kem.generateKeyPair();
          const theirPk = buf(await theirs.kem.serializePublicKey(pair.publicKey));
          const { enc, context } = setupBaseS(ours, theirPk, info);
          const ct2 = context.seal(aad, pt);
          const recipient = await theirs.createRecipientContext({ recipientKey: pair.privateKey, enc: ab(enc), info: ab(info) });
          assert.deepEqual(buf(await recipient.open(ab(ct2), ab(aad))), pt);
          assert.deepEqual(buf(await recipient.export(ab(Buffer.from('ctx')), 16)), context.export(Buffer.from('ctx'), 16));
        });
      }
    }
  }

  it('X-Wing DeriveKeyPair and private key serialization agree with @hpke/hybridkem-x-wing', async () => {
    const kem = new XWing();
    const ours = suiteFor(KEM_XWING, 1, 1).kem;
    const ikm = randomBytes(32);
    const theirs = await kem.deriveKeyPair(ab(ikm));
    const mine = ours.deriveKeyPair(ikm);
    assert.deepEqual(buf(await kem.serializePrivateKey(theirs.privateKey)), buf(mine.secretKey));
    assert.deepEqual(buf(await kem.serializePublicKey(theirs.publicKey)), buf(mine.publicKey));
  });

  it('an RFC 9458 request built with @hpke/core (X-Wing) opens in our gateway, and its response opens with their exporter', async () => {
    const key = makeKey(7, 3);
    const gateway = new OhttpGateway({ keys: [key] });
    const theirs = new CipherSuite({ kem: new XWing(), kdf: new HkdfSha256(), aead: new Aes256Gcm() });
    const hdr = encodeRequestHeader(7, KEM_XWING, 1, 2);
    const info = Buffer.concat([Buffer.from(OHTTP_REQUEST_LABEL), Buffer.of(0), hdr]);
    const sender = await theirs.createSenderContext({ recipientPublicKey: await theirs.kem.deserializePublicKey(ab(key.config.publicKey)), info: ab(info) });
    const inner = encodeRequest({ method: 'GET', scheme: 'https', authority: 'cage.test', path: '/x', headers: [['date', new Date().toUTCString()]] });
    const body = Buffer.concat([hdr, buf(sender.enc), buf(await sender.seal(ab(inner)))]);
    const opened = gateway.openRequest(body, 'message/ohttp-req');
    assert.equal(opened.request.path, '/x');
    const encResponse = opened.seal({ status: 200, headers: [['content-type', 'text/plain']], body: 'hi' });

    // Client side of RFC 9458 §4.4 done by hand on top of @hpke/core's Export.
    const secret = buf(await sender.export(ab(Buffer.from(OHTTP_RESPONSE_LABEL)), 32));
    const suite = suiteFor(KEM_XWING, 1, 2);
    const nonce = encResponse.subarray(0, 32);
    const prk = suite.kdf.extract(Buffer.concat([buf(sender.enc), nonce]), secret);
    const plain = suite.aead.open(suite.kdf.expand(prk, Buffer.from('key'), 32), suite.kdf.expand(prk, Buffer.from('nonce'), 12), Buffer.alloc(0), encResponse.subarray(32));
    const res = decodeResponse(plain);
    assert.equal(res.status, 200);
    assert.equal(Buffer.from(res.body).toString(), 'hi');
  });
});
