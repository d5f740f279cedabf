import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { isCageError } from '../../../core/errors.js';
import { signRequest } from '../../../client/sign.js';
import type { IdentityConfig } from '../../../gateway/config/security.js';
import { Exchange } from '../../../gateway/exchange.js';
import { SignatureVerifier } from '../../../gateway/identity/signatures.js';
import { hashApiKey, IdentifyStage } from '../../../gateway/identity/stage.js';

const SIGS = { enabled: true, maxAgeS: 300, clockSkewS: 30, requireNonce: false, nonceCache: 100, maxBodyBytes: 1024 };

function stage(keys: IdentityConfig['apiKeys']): IdentifyStage {
  return new IdentifyStage({ apiKeyHeader: 'x-api-key', apiKeys: keys, jwt: undefined, signatures: SIGS }, undefined, new SignatureVerifier(SIGS), undefined);
}

function exchange(headers: Record<string, string>, target = '/x'): Exchange {
  const ex = new Exchange();
  ex.method = 'GET';
  ex.target = ex.path = target;
  ex.host = 'app.test';
  ex.remoteAddress = '10.0.0.1';
  for (const [k, v] of Object.entries(headers)) ex.headers.push(k, v);
  return ex;
}

describe('gateway/identity: the identify stage', () => {
  const key = 'ck_test_key_0123456789';
  const keys = [{ name: 'ci', sha256: hashApiKey(key), roles: ['deploy'], class: 'gold' }];

  it('identifies an API key by its hash: name, roles and class', () => {
    const ex = exchange({ 'x-api-key': key });
    assert.equal(stage(keys).handle(ex), undefined);
    assert.deepEqual([ex.identity, ex.identityKind, [...ex.roles], ex.rateClass, ex.signed], ['ci', 'api-key', ['deploy'], 'gold', false]);
  });

  it('refuses an unknown key, and leaves the header to the app when the cage knows no keys', () => {
    const r = stage(keys).handle(exchange({ 'x-api-key': 'nope' }));
    assert.ok(isCageError(r, 'IDENTITY_BAD_API_KEY'));
    const ex = exchange({ 'x-api-key': 'the-apps-own-key', authorization: 'Bearer whatever' });
    assert.equal(stage([]).handle(ex), undefined);
    assert.equal(ex.identityKind, '');
  });

  it('a signed request with an API key: the key names the caller, and the request counts as signed', () => {
    const { privateKey } = generateKeyPairSync('ed25519');
    const { headers } = signRequest({ method: 'GET', url: 'http://app.test/x', headers: { 'x-api-key': key } }, privateKey);
    const ex = exchange(headers);
    assert.equal(stage(keys).handle(ex), undefined);
    assert.deepEqual([ex.identity, ex.identityKind, ex.signed], ['ci', 'api-key', true]);
  });

  it('half a signature (Signature without Signature-Input) is malformed, not anonymous', () => {
    const r = stage(keys).handle(exchange({ signature: 'sig1=:AA==:' }));
    assert.ok(isCageError(r, 'IDENTITY_SIGNATURE_MALFORMED'));
  });
});
