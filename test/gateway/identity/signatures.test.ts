import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { signRequestEd25519, type SignedRequest } from '../../../core/httpsig.js';
import { didKeyOf } from '../../../client/sign.js';
import { SignatureVerifier } from '../../../gateway/identity/signatures.js';

const CONFIG = { enabled: true, maxAgeS: 300, clockSkewS: 30, requireNonce: false, nonceCache: 3, maxBodyBytes: 1 << 20 };
const REQ: SignedRequest = { method: 'POST', scheme: 'http', authority: 'app.test', target: '/orders?id=7', headers: ['host', 'app.test', 'content-digest', 'sha-256=:AA==:'] };

describe('gateway/identity: RFC 9421 signature policy', () => {
  const { privateKey } = generateKeyPairSync('ed25519');
  const did = didKeyOf(privateKey);
  let now = 1_700_000_000;
  const verifier = (): SignatureVerifier => new SignatureVerifier({ ...CONFIG }, () => now);
  const sign = (o: Partial<Parameters<typeof signRequestEd25519>[2]> = {}, req = REQ): { signatureInput: string; signature: string } =>
    signRequestEd25519(req, privateKey, { components: ['@method', '@target-uri', 'content-digest'], created: now, keyid: did, ...o });

  it('accepts a fresh did:key signature and names the DID', () => {
    const s = sign({ nonce: 'n1' });
    const v = verifier().verify(REQ, s.signatureInput, s.signature, true);
    assert.equal(v.did, did);
    assert.equal(v.nonce, 'n1');
  });

  it('accepts @authority + @path + @query instead of @target-uri', () => {
    const s = sign({ components: ['@method', '@authority', '@path', '@query', 'content-digest'] });
    assert.equal(verifier().verify(REQ, s.signatureInput, s.signature, true).did, did);
  });

  it('refuses what does not cover @method, the target, or content-digest with a body', () => {
    for (const components of [['@target-uri', 'content-digest'], ['@method', 'content-digest'], ['@method', '@authority', '@path', 'content-digest'], ['@method', '@target-uri']]) {
      const s = sign({ components });
      assert.throws(() => verifier().verify(REQ, s.signatureInput, s.signature, true), { code: 'IDENTITY_SIGNATURE_COMPONENTS' }, components.join(' '));
    }
  });

  it('refuses old, future and expired signatures, and one without created', () => {
    const v = verifier();
    let s = sign({ created: now - 400 });
    assert.throws(() => v.verify(REQ, s.signatureInput, s.signature, true), { code: 'IDENTITY_SIGNATURE_EXPIRED' });
    s = sign({ created: now + 100 });
    assert.throws(() => v.verify(REQ, s.signatureInput, s.signature, true), { code: 'IDENTITY_SIGNATURE_EXPIRED' });
    s = sign({ created: now - 100, expires: now - 60 });
    assert.throws(() => v.verify(REQ, s.signatureInput, s.signature, true), { code: 'IDENTITY_SIGNATURE_EXPIRED' });
    const noCreated = sign().signatureInput.replace(/;created=\d+/, '');
    assert.throws(() => v.verify(REQ, noCreated, sign().signature, true), { code: 'IDENTITY_SIGNATURE_EXPIRED' });
  });

  it('refuses a replayed nonce within the window and accepts it again once the window passed', () => {
    const v = verifier();
    const s = sign({ nonce: 'abc' });
    v.verify(REQ, s.signatureInput, s.signature, true);
    assert.throws(() => v.verify(REQ, s.signatureInput, s.signature, true), { code: 'IDENTITY_SIGNATURE_REPLAY' });
    now += 400;
    const again = sign({ nonce: 'abc' });
    assert.equal(v.verify(REQ, again.signatureInput, again.signature, true).did, did);
  });

  it('requires a nonce when require_nonce is set', () => {
    const v = new SignatureVerifier({ ...CONFIG, requireNonce: true }, () => now);
    const s = sign();
    assert.throws(() => v.verify(REQ, s.signatureInput, s.signature, true), { code: 'IDENTITY_SIGNATURE_REPLAY' });
  });

  it('refuses another key, a changed request, a non-did:key keyid and a foreign alg', () => {
    const other = generateKeyPairSync('ed25519').privateKey;
    const forged = signRequestEd25519(REQ, other, { components: ['@method', '@target-uri', 'content-digest'], created: now, keyid: did });
    assert.throws(() => verifier().verify(REQ, forged.signatureInput, forged.signature, true), { code: 'IDENTITY_BAD_SIGNATURE' });
    const s = sign();
    assert.throws(() => verifier().verify({ ...REQ, target: '/orders?id=8' }, s.signatureInput, s.signature, true), { code: 'IDENTITY_BAD_SIGNATURE' });
    const kid = sign({ keyid: 'test-key-ed25519' });
    assert.throws(() => verifier().verify(REQ, kid.signatureInput, kid.signature, true), { code: 'IDENTITY_BAD_SIGNATURE' });
    const alg = sign().signatureInput.replace(';keyid', ';alg="rsa-pss-sha512";keyid');
    assert.throws(() => verifier().verify(REQ, alg, sign().signature, true), { code: 'IDENTITY_BAD_SIGNATURE' });
    const badDid = sign({ keyid: 'did:key:z6MkNOTAKEY' });
    assert.throws(() => verifier().verify(REQ, badDid.signatureInput, badDid.signature, true), { code: 'IDENTITY_BAD_SIGNATURE' });
  });

  it('checks the body against Content-Digest', () => {
    SignatureVerifier.checkDigest('sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:', Buffer.from('{"hello": "world"}'));
    assert.throws(() => SignatureVerifier.checkDigest(undefined, Buffer.from('x')), { code: 'IDENTITY_BAD_DIGEST' });
    assert.throws(() => SignatureVerifier.checkDigest('md5=:AA==:', Buffer.from('x')), { code: 'IDENTITY_BAD_DIGEST' });
    assert.throws(() => SignatureVerifier.checkDigest('sha-256=(1 2)', Buffer.from('x')), { code: 'IDENTITY_BAD_DIGEST' });
  });
});
