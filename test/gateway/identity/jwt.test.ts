import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT, exportJWK, UnsecuredJWT } from 'jose';
import type { JwtConfig } from '../../../gateway/config/security.js';
import { JwtVerifier } from '../../../gateway/identity/jwt.js';

const SECRET = 's'.repeat(40);
const NOW = 1_800_000_000;

function config(over: Partial<JwtConfig>): JwtConfig {
  return { algorithms: ['RS256'], keysFile: undefined, secret: undefined, issuer: 'https://idp.test', audience: 'cage', clockToleranceS: 30, maxAgeS: undefined, rolesClaim: 'roles', classClaim: 'plan', cacheSize: 100, ...over };
}

async function token(alg: string, key: KeyObject | Uint8Array, claims: Record<string, unknown> = {}, opts: { exp?: number; nbf?: number; iss?: string; aud?: string; kid?: string } = {}): Promise<string> {
  let j = new SignJWT({ roles: ['reader'], plan: 'gold', ...claims }).setProtectedHeader({ alg, ...(opts.kid ? { kid: opts.kid } : {}) }).setSubject('alice').setIssuer(opts.iss ?? 'https://idp.test').setAudience(opts.aud ?? 'cage').setIssuedAt(NOW - 10).setExpirationTime(opts.exp ?? NOW + 600);
  if (opts.nbf !== undefined) j = j.setNotBefore(opts.nbf);
  return j.sign(key);
}

describe('gateway/identity: JWT bearer tokens (jose)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cage-jwt-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const ed = generateKeyPairSync('ed25519');
  const pem = join(dir, 'rsa.pem');
  writeFileSync(pem, rsa.publicKey.export({ type: 'spki', format: 'pem' }));
  const clock = (): number => NOW;

  it('accepts RS256 from a PEM key: sub, roles and class come from the claims', async () => {
    const v = new JwtVerifier(config({ keysFile: pem }), clock);
    const id = await v.verify(await token('RS256', rsa.privateKey));
    assert.deepEqual([id.sub, [...id.roles], id.rateClass], ['alice', ['reader'], 'gold']);
  });

  it('accepts ES256 and EdDSA from a JWKS file, picking the key by kid', async () => {
    const jwks = join(dir, 'jwks.json');
    writeFileSync(jwks, JSON.stringify({ keys: [{ ...(await exportJWK(ec.publicKey)), kid: 'ec1', alg: 'ES256' }, { ...(await exportJWK(ed.publicKey)), kid: 'ed1', alg: 'EdDSA' }] }));
    const v = new JwtVerifier(config({ algorithms: ['ES256', 'EdDSA'], keysFile: jwks }), clock);
    assert.equal((await v.verify(await token('ES256', ec.privateKey, {}, { kid: 'ec1' }))).sub, 'alice');
    assert.equal((await v.verify(await token('EdDSA', ed.privateKey, {}, { kid: 'ed1' }))).sub, 'alice');
  });

  it('accepts HS256 with the configured secret', async () => {
    const v = new JwtVerifier(config({ algorithms: ['HS256'], secret: SECRET }), clock);
    assert.equal((await v.verify(await token('HS256', Buffer.from(SECRET)))).sub, 'alice');
  });

  const cases: Array<[string, () => Promise<string>, string, Partial<JwtConfig>?]> = [
    ['alg none', async () => new UnsecuredJWT({ sub: 'alice' }).setIssuer('https://idp.test').setAudience('cage').setExpirationTime(NOW + 60).encode(), 'IDENTITY_BAD_TOKEN'],
    ['another key', async () => token('RS256', generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey), 'IDENTITY_BAD_TOKEN'],
    ['an algorithm not allowed (ES256 when only RS256 is)', async () => token('ES256', ec.privateKey), 'IDENTITY_BAD_TOKEN'],
    ['HS256 signed with the public key (algorithm confusion)', async () => token('HS256', Buffer.from(rsa.publicKey.export({ type: 'spki', format: 'pem' }) as string)), 'IDENTITY_BAD_TOKEN'],
    ['expired', async () => token('RS256', rsa.privateKey, {}, { exp: NOW - 60 }), 'IDENTITY_TOKEN_EXPIRED'],
    ['not yet valid', async () => token('RS256', rsa.privateKey, {}, { nbf: NOW + 120 }), 'IDENTITY_TOKEN_EXPIRED'],
    ['the wrong audience', async () => token('RS256', rsa.privateKey, {}, { aud: 'other' }), 'IDENTITY_BAD_TOKEN'],
    ['the wrong issuer', async () => token('RS256', rsa.privateKey, {}, { iss: 'https://evil.test' }), 'IDENTITY_BAD_TOKEN'],
    ['garbage', async () => 'not.a.jwt', 'IDENTITY_BAD_TOKEN'],
    ['an oversized token', async () => 'a'.repeat(9000), 'IDENTITY_BAD_TOKEN'],
  ];
  for (const [what, make, code] of cases) {
    it(`refuses a token with ${what} (${code})`, async () => {
      const v = new JwtVerifier(config({ keysFile: pem }), clock);
      await assert.rejects(v.verify(await make()), { code });
    });
  }

  it('accepts a token within the clock tolerance of exp, and caches it until exp', async () => {
    let now = NOW;
    const v = new JwtVerifier(config({ keysFile: pem }), () => now);
    const t = await token('RS256', rsa.privateKey, {}, { exp: NOW + 5 });
    await v.verify(t);
    assert.equal(v.cached(t)?.sub, 'alice');
    now = NOW + 40;
    assert.equal(v.cached(t), undefined);
    await assert.rejects(v.verify(t), { code: 'IDENTITY_TOKEN_EXPIRED' });
  });

  it('refuses a key file that is not a public key', () => {
    const priv = join(dir, 'jwk-private.json');
    writeFileSync(priv, JSON.stringify({ kty: 'oct', k: 'AAAA' }));
    assert.throws(() => new JwtVerifier(config({ keysFile: priv })), { code: 'IDENTITY_KEYS_INVALID' });
    assert.throws(() => new JwtVerifier(config({ keysFile: join(dir, 'missing.pem') })), { code: 'IDENTITY_KEYS_INVALID' });
  });
});
