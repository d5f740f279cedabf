/**
 * The decision stages through a real cage on real sockets: API keys, RFC 9421 DID signatures,
 * the BISO policy (Green / Yellow / Red, body inspection, regions), rate limits, what the app
 * is told about the caller, what the audit record keeps, and a reload with a bad bundle.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { signRequest } from '../../client/sign.js';
import { hashApiKey } from '../../gateway/identity/stage.js';
import { admin, ADMIN_TOKEN, json, startAdminCage, tempDir, waitFor } from '../helpers/e2e.js';
import { errorCode, Fixtures, request, startEchoUpstream, type EchoReport } from '../helpers/servers.js';
import type { Cage } from '../../gateway/cage.js';

const BUNDLE = `
name: test-policy
version: 1.0.0
region_groups: { EU: [DE, FR] }
classify:
  - id: payments
    routes: [pay]
    class: Restricted
    types: [PCI]
rules:
  - id: pay-auth
    when: { routes: [pay] }
    require: { authenticated: true }
  - id: pay-role
    when: { routes: [pay] }
    require: { roles: [payer] }
  - id: no-cards
    when: { routes: [pay] }
    require: { inspect: { detect: [card], max_bytes: 4096 } }
  - id: eu-callers
    when: { routes: [eu] }
    require: { client_regions: { allow: [EU] } }
  - id: open-signed
    effect: warn
    when: { routes: [open] }
    require: { signed: true }
`;

describe('e2e: identity, rate limits and BISO policies', function () {
  this.timeout(60_000);
  const fx = new Fixtures();
  let cage: Cage;
  let echo: Awaited<ReturnType<typeof startEchoUpstream>>;
  let dir: string;
  let routes: unknown[];
  let extra: Record<string, unknown>;
  const payerKey = 'ck_live_payer_0123456789abcdef';
  const readerKey = 'ck_live_reader_0123456789abcdef';
  const { privateKey } = generateKeyPairSync('ed25519');

  before(async () => {
    echo = await startEchoUpstream(fx);
    dir = tempDir(fx);
    writeFileSync(join(dir, 'policy.yaml'), BUNDLE);
    const up = `http://127.0.0.1:${echo.port}`;
    routes = [
      { name: 'pay', match: { path: '/pay' }, upstreams: [up], region: 'DE' },
      { name: 'eu', match: { path: '/eu' }, upstreams: [up] },
      { name: 'limited', match: { path: '/limited' }, upstreams: [up] },
      { name: 'open', match: { path: '/' }, upstreams: [up] },
    ];
    extra = {
      identity: { api_keys: { keys: [{ name: 'payer', sha256: hashApiKey(payerKey), roles: ['payer'], class: 'gold' }, { name: 'reader', sha256: hashApiKey(readerKey) }] } },
      regions: { cidrs: { '127.0.0.0/8': 'US' }, header: 'x-client-region' },
      policies: { files: [join(dir, 'policy.yaml')] },
      ratelimit: { limits: [{ name: 'per-caller', by: 'identity', points: 3, per: '60s', routes: ['limited'], classes: { gold: 5 } }] },
    };
    cage = await startAdminCage(routes, extra, fx);
  });
  after(() => fx.closeAll());

  const last = (): EchoReport => echo.last!;

  it('forwards an anonymous request with a Yellow verdict, telling the app the warnings; client-sent cage-identity is dropped', async () => {
    const r = await request(cage.port, { path: '/hello', headers: { 'cage-identity': 'admin', 'cage-identity-kind': 'api-key', 'cage-verdict': 'green' } });
    assert.equal(r.status, 200);
    assert.equal(last().headers['cage-identity'], undefined);
    assert.equal(last().headers['cage-identity-kind'], undefined);
    assert.match(String(last().headers['cage-verdict']), /^yellow; warnings="test-policy\/open-signed:UNSIGNED:warn"$/);
  });

  it('identifies an API key and tells the app who called; an unknown key is a 401', async () => {
    let r = await request(cage.port, { path: '/hello', headers: { 'x-api-key': readerKey } });
    assert.equal(r.status, 200);
    assert.equal(last().headers['cage-identity'], 'reader');
    assert.equal(last().headers['cage-identity-kind'], 'api-key');
    r = await request(cage.port, { path: '/hello', headers: { 'x-api-key': 'ck_live_guess' } });
    assert.equal(r.status, 401);
    assert.equal(errorCode(r), 'IDENTITY_BAD_API_KEY');
  });

  it('denies with 403 POLICY_DENIED naming the violated rules (anonymous, then a caller without the role)', async () => {
    let r = await request(cage.port, { method: 'POST', path: '/pay', headers: { 'content-type': 'application/json' }, body: '{"amount":5}' });
    assert.equal(r.status, 403);
    assert.equal(errorCode(r), 'POLICY_DENIED');
    assert.match(r.body.toString(), /test-policy\/pay-auth:UNAUTHENTICATED/);
    r = await request(cage.port, { method: 'POST', path: '/pay', headers: { 'x-api-key': readerKey }, body: '{"amount":5}' });
    assert.equal(errorCode(r), 'POLICY_DENIED');
    assert.match(r.body.toString(), /pay-role:ROLE_MISSING/);
    assert.doesNotMatch(r.body.toString(), /pay-auth/);
  });

  it('inspects the body only where a rule says so: a card number (Luhn-valid) is Red, other data is Green and reaches the app whole', async () => {
    let r = await request(cage.port, { method: 'POST', path: '/pay', headers: { 'x-api-key': payerKey }, body: '{"card":"4111 1111 1111 1111"}' });
    assert.equal(r.status, 403);
    assert.match(r.body.toString(), /no-cards:DATA_DETECTED/);
    const body = JSON.stringify({ amount: 5, note: 'x'.repeat(3_000) });
    r = await request(cage.port, { method: 'POST', path: '/pay', headers: { 'x-api-key': payerKey }, body });
    assert.equal(r.status, 200);
    assert.equal(last().body, body);
    assert.equal(last().headers['cage-identity'], 'payer');
    assert.equal(last().headers['cage-verdict'], undefined);
  });

  it('identifies an RFC 9421 signed request by its did:key, checks Content-Digest, and refuses a replay', async () => {
    const url = `http://127.0.0.1:${cage.port}/hello?x=1`;
    const body = '{"hello":"world"}';
    const { headers, did } = signRequest({ method: 'POST', url, headers: { 'content-type': 'application/json' }, body }, privateKey);
    let r = await request(cage.port, { method: 'POST', path: '/hello?x=1', headers, body });
    assert.equal(r.status, 200, r.body.toString());
    assert.equal(last().headers['cage-identity'], did);
    assert.equal(last().headers['cage-identity-kind'], 'did');
    assert.equal(last().headers['cage-verdict'], undefined, 'a signed request satisfies open-signed');
    r = await request(cage.port, { method: 'POST', path: '/hello?x=1', headers, body });
    assert.equal(r.status, 401);
    assert.equal(errorCode(r), 'IDENTITY_SIGNATURE_REPLAY');
    const fresh = signRequest({ method: 'POST', url, body }, privateKey).headers;
    r = await request(cage.port, { method: 'POST', path: '/hello?x=1', headers: fresh, body: body.replace('world', 'w0rld') });
    assert.equal(r.status, 400);
    assert.equal(errorCode(r), 'IDENTITY_BAD_DIGEST');
    const other = signRequest({ method: 'GET', url: `http://127.0.0.1:${cage.port}/other` }, privateKey).headers;
    r = await request(cage.port, { path: '/hello?x=1', headers: other });
    assert.equal(errorCode(r), 'IDENTITY_BAD_SIGNATURE');
  });

  it('rate-limits per identity with 429, Retry-After and the RateLimit fields; a class has its own quota', async () => {
    for (let i = 0; i < 3; i++) {
      const r = await request(cage.port, { path: '/limited', headers: { 'x-api-key': readerKey } });
      assert.equal(r.status, 200);
      assert.equal(r.headers['ratelimit-policy'], '"per-caller";q=3;w=60');
      assert.match(String(r.headers['ratelimit']), new RegExp(`^"per-caller";r=${2 - i};t=\\d+$`));
    }
    const r = await request(cage.port, { path: '/limited', headers: { 'x-api-key': readerKey } });
    assert.equal(r.status, 429);
    assert.equal(errorCode(r), 'RATE_LIMITED');
    assert.ok(Number(r.headers['retry-after']) >= 1 && Number(r.headers['retry-after']) <= 60);
    assert.match(String(r.headers['ratelimit']), /^"per-caller";r=0;t=\d+$/);
    // The gold class (the payer key) has 5, and another identity is not affected.
    for (let i = 0; i < 5; i++) assert.equal((await request(cage.port, { path: '/limited', headers: { 'x-api-key': payerKey } })).status, 200);
    assert.equal((await request(cage.port, { path: '/limited', headers: { 'x-api-key': payerKey } })).status, 429);
    assert.equal((await request(cage.port, { path: '/limited' })).status, 200);
  });

  it('ignores a region header from an untrusted peer, and believes it from a trusted proxy', async () => {
    let r = await request(cage.port, { path: '/eu', headers: { 'x-client-region': 'DE' } });
    assert.equal(r.status, 403);
    assert.match(r.body.toString(), /eu-callers:CLIENT_REGION/);
    const reload = await admin(cage, '/api/v1/config/reload', { method: 'POST', body: JSON.stringify({ ...baseRaw(), trusted_proxies: ['127.0.0.1'] }) });
    assert.equal(reload.status, 200, reload.body.toString());
    r = await request(cage.port, { path: '/eu', headers: { 'x-client-region': 'DE' } });
    assert.equal(r.status, 200);
    await admin(cage, '/api/v1/config/reload', { method: 'POST', body: JSON.stringify(baseRaw()) });
  });

  it("writes the identity and the verdict with its reasons into the exchange's audit record", async () => {
    const r = await request(cage.port, { method: 'POST', path: '/pay', headers: { 'x-api-key': readerKey }, body: '{}' });
    const index = Number(/index=(\d+)/.exec(String(r.headers['cage-receipt']))![1]);
    const rec = await waitFor(async () => {
      const a = await admin(cage, `/api/v1/audit/record/${index}`);
      return a.status === 200 ? json<{ record: { identity?: string; decision?: { verdict: string; reasons: string[] } } }>(a).record : undefined;
    }, 'the record');
    assert.equal(rec.identity, 'api-key:reader');
    assert.equal(rec.decision?.verdict, 'red');
    assert.ok(rec.decision?.reasons.includes('test-policy/pay-role:ROLE_MISSING'));
  });

  it('refuses a reload with a broken bundle, naming the file and line, and keeps the old policy', async () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'name: bad\nversion: "1"\nrules:\n  - id: x\n    require: { rolez: [a] }\n');
    const raw = baseRaw();
    const r = await admin(cage, '/api/v1/config/reload', { method: 'POST', body: JSON.stringify({ ...raw, policies: { files: [bad] } }) });
    assert.equal(r.status, 422);
    assert.match(r.body.toString(), /bad\.yaml:5/);
    const denied = await request(cage.port, { method: 'POST', path: '/pay', body: '{}' });
    assert.equal(errorCode(denied), 'POLICY_DENIED');
  });

  function baseRaw(): Record<string, unknown> {
    return { listen: '127.0.0.1:0', admin: { listen: '127.0.0.1:0', token: ADMIN_TOKEN }, data_dir: cage.config.dataDir, log: { level: 'silent', access: false }, routes, ...extra };
  }
});
