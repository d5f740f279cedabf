import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, hash } from 'node:crypto';
import { checkContentDigest, parseSignatures, signatureBase, signRequestEd25519, verifyEd25519Base, type SignedRequest } from '../../../core/httpsig.js';

// RFC 9421 Appendix B.1.4: test-key-ed25519.
const JWK = { kty: 'OKP', crv: 'Ed25519', x: 'JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs', d: 'n4Ni-HpISpVObnQMW0wOhCKROaIKqKtW_2ZYb2p9KcU' };
const privateKey = createPrivateKey({ key: JWK, format: 'jwk' });
const publicKey = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: JWK.x }, format: 'jwk' });

// RFC 9421 Appendix B.2: the test request (POST /foo?param=Value&Pet=dog to example.com).
const BODY = '{"hello": "world"}';
const REQUEST: SignedRequest = {
  method: 'POST',
  scheme: 'https',
  authority: 'example.com',
  target: '/foo?param=Value&Pet=dog',
  headers: [
    'host', 'example.com',
    'date', 'Tue, 20 Apr 2021 02:07:55 GMT',
    'content-type', 'application/json',
    'content-digest', 'sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:',
    'content-length', '18',
  ],
};

// Appendix B.2.6.
const SIGNATURE_INPUT = 'sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519"';
const SIGNATURE = 'sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:';
const BASE = [
  '"date": Tue, 20 Apr 2021 02:07:55 GMT',
  '"@method": POST',
  '"@path": /foo',
  '"@authority": example.com',
  '"content-type": application/json',
  '"content-length": 18',
  '"@signature-params": ("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519"',
].join('\n');

describe('RFC 9421 Appendix B.2.6 (ed25519)', () => {
  it('parses the Signature-Input and Signature fields', () => {
    const [s] = parseSignatures(SIGNATURE_INPUT, SIGNATURE);
    assert.equal(s!.params.label, 'sig-b26');
    assert.deepEqual(s!.params.components, ['date', '@method', '@path', '@authority', 'content-type', 'content-length']);
    assert.equal(s!.params.created, 1618884473);
    assert.equal(s!.params.keyid, 'test-key-ed25519');
    assert.equal(s!.signature.length, 64);
  });

  it('builds the signature base the RFC prints, byte for byte', () => {
    const [s] = parseSignatures(SIGNATURE_INPUT, SIGNATURE);
    assert.equal(signatureBase(REQUEST, s!.params), BASE);
  });

  it("verifies the RFC's signature with the RFC's key, and refuses it after one flipped bit", () => {
    const [s] = parseSignatures(SIGNATURE_INPUT, SIGNATURE);
    assert.equal(verifyEd25519Base(BASE, s!.signature, publicKey), true);
    const bad = Buffer.from(s!.signature);
    bad[10]! ^= 1;
    assert.equal(verifyEd25519Base(BASE, bad, publicKey), false);
    assert.equal(verifyEd25519Base(BASE.replace('/foo', '/fo0'), s!.signature, publicKey), false);
  });

  it("reproduces the RFC's Signature-Input and Signature when signing (Ed25519 is deterministic)", () => {
    const out = signRequestEd25519(REQUEST, privateKey, { label: 'sig-b26', components: ['date', '@method', '@path', '@authority', 'content-type', 'content-length'], created: 1618884473, keyid: 'test-key-ed25519' });
    assert.equal(out.signatureInput, SIGNATURE_INPUT);
    assert.equal(out.signature, SIGNATURE);
  });
});

describe('RFC 9530 Appendix B.1 (Content-Digest)', () => {
  const h = (alg: 'sha256' | 'sha512', d: Uint8Array): Buffer => hash(alg, d, 'buffer');
  it('accepts the sha-256 and sha-512 digests of {"hello": "world"}', () => {
    checkContentDigest('sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:', Buffer.from(BODY), h);
    checkContentDigest('sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:', Buffer.from(BODY), h);
  });
  it('refuses them for another body', () => {
    assert.throws(() => checkContentDigest('sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:', Buffer.from(`${BODY} `), h), { code: 'IDENTITY_BAD_DIGEST' });
  });
});
