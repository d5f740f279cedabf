/**
 * The admin listener end to end: health and readiness probes, Prometheus metrics after real
 * traffic, the token-protected API (codes for every refusal), token redaction, the generated
 * token file, and the JSON access log.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Cage } from '../../gateway/cage.js';
import { buildConfig } from '../../gateway/config/load.js';
import { ADMIN_TOKEN, admin, baseConfig, json, metricSample as sample, startAdminCage, startNamedUpstream, tempDir, waitFor, type NamedUpstream } from '../helpers/e2e.js';
import { errorCode, Fixtures, request } from '../helpers/servers.js';


async function metrics(cage: Cage): Promise<string> {
  const r = await request(cage.adminPort, { path: '/metrics' });
  assert.equal(r.status, 200);
  assert.match(String(r.headers['content-type']), /^text\/plain/);
  return r.body.toString();
}

describe('e2e: admin listener', function () {
  const fx = new Fixtures();
  let up: NamedUpstream;
  let cage: Cage;

  before(async () => {
    up = await startNamedUpstream('A', fx);
    cage = await startAdminCage([{ name: 'app', match: { path: '/app' }, upstreams: [up.url] }], {}, fx);
  });

  after(() => fx.closeAll());

  it('GET /healthz answers 200', async () => {
    const r = await request(cage.adminPort, { path: '/healthz' });
    assert.equal(r.status, 200);
    assert.deepEqual(json(r), { status: 'ok' });
  });

  it('GET /readyz is 200 while upstreams are healthy and 503 when all of a route are down', async () => {
    const u = await startNamedUpstream('H', fx);
    const c = await startAdminCage(
      [{ name: 'checked', upstreams: [u.url], health_checks: { active: { path: '/health', interval: '100ms', timeout: '1s', fails: 1, passes: 1 } } }],
      {},
      fx,
    );
    const ready = await request(c.adminPort, { path: '/readyz' });
    assert.equal(ready.status, 200);
    assert.equal(json<{ ready: boolean }>(ready).ready, true);

    u.healthStatus = 500;
    const down = await waitFor(async () => {
      const r = await request(c.adminPort, { path: '/readyz' });
      return r.status === 503 ? r : undefined;
    }, '/readyz to turn 503');
    assert.equal(json<{ ready: boolean }>(down).ready, false);

    u.healthStatus = 200;
    await waitFor(async () => (await request(c.adminPort, { path: '/readyz' })).status === 200, '/readyz to turn 200 again');
  });

  it('GET /metrics counts requests by route and status, durations, bytes, in-flight and upstream health', async () => {
    assert.equal((await request(cage.port, { path: '/app/one' })).status, 200);
    assert.equal((await request(cage.port, { path: '/app/two' })).status, 200);
    const post = await request(cage.port, { method: 'POST', path: '/app/body', body: 'x'.repeat(1000) });
    assert.equal(post.status, 200);
    assert.equal((await request(cage.port, { path: '/elsewhere' })).status, 404);

    const held = request(cage.port, { path: '/app/hold' });
    await waitFor(() => up.held.length === 1, 'the held request');
    const during = await metrics(cage);
    assert.equal(sample(during, 'cage_http_requests_in_flight'), 1);
    assert.equal(sample(during, 'cage_upstream_in_flight', { upstream: `127.0.0.1:${up.port}` }), 1);
    up.release();
    assert.equal((await held).status, 200);

    const text = await waitFor(async () => {
      const t = await metrics(cage);
      return sample(t, 'cage_http_requests_in_flight') === 0 ? t : undefined;
    }, 'in-flight back to 0');
    assert.equal(sample(text, 'cage_http_requests_total', { route: 'app', status: '200' }), 4);
    assert.equal(sample(text, 'cage_http_requests_total', { route: '', status: '404' }), 1);
    assert.equal(sample(text, 'cage_http_request_duration_seconds_count', { route: 'app' }), 4);
    assert.equal(sample(text, 'cage_http_request_duration_seconds_bucket', { route: 'app', le: '+Inf' }), 4);
    assert.equal(sample(text, 'cage_http_request_body_bytes_total', { route: 'app' }), 1000);
    const out = sample(text, 'cage_http_response_body_bytes_total', { route: 'app' });
    assert.ok(out !== undefined && out > 0, `response bytes: ${out}`);
    assert.equal(sample(text, 'cage_upstream_healthy', { upstream: `127.0.0.1:${up.port}` }), 1);
    assert.equal(sample(text, 'cage_websocket_connections'), 0);
  });

  it('refuses /api/v1 without a token or with a wrong one (401 ADMIN_UNAUTHORIZED)', async () => {
    const none = await admin(cage, '/api/v1/config', { token: null });
    assert.equal(none.status, 401);
    assert.equal(errorCode(none), 'ADMIN_UNAUTHORIZED');
    assert.match(String(none.headers['www-authenticate']), /^Bearer /);
    const wrong = await admin(cage, '/api/v1/config', { token: 'y'.repeat(32) });
    assert.equal(wrong.status, 401);
    assert.equal(errorCode(wrong), 'ADMIN_UNAUTHORIZED');
    const prefix = await admin(cage, '/api/v1/config', { token: ADMIN_TOKEN.slice(0, 16) });
    assert.equal(prefix.status, 401);
    const basic = await request(cage.adminPort, { path: '/api/v1/config', headers: { authorization: `Basic ${ADMIN_TOKEN}` } });
    assert.equal(basic.status, 401);
    // Unknown API paths do not reveal themselves before authentication.
    const unknown = await admin(cage, '/api/v1/nope', { token: null });
    assert.equal(unknown.status, 401);
    assert.equal(errorCode(unknown), 'ADMIN_UNAUTHORIZED');
  });

  it('answers unknown paths with 404 ADMIN_NOT_FOUND and wrong methods with 405 ADMIN_METHOD_NOT_ALLOWED', async () => {
    const a = await admin(cage, '/api/v1/nope');
    assert.equal(a.status, 404);
    assert.equal(errorCode(a), 'ADMIN_NOT_FOUND');
    const b = await request(cage.adminPort, { path: '/nope' });
    assert.equal(b.status, 404);
    assert.equal(errorCode(b), 'ADMIN_NOT_FOUND');
    const c = await admin(cage, '/api/v1/config', { method: 'DELETE' });
    assert.equal(c.status, 405);
    assert.equal(errorCode(c), 'ADMIN_METHOD_NOT_ALLOWED');
    assert.equal(c.headers.allow, 'GET');
    const d = await admin(cage, '/api/v1/config/reload', { method: 'GET' });
    assert.equal(d.status, 405);
    assert.equal(errorCode(d), 'ADMIN_METHOD_NOT_ALLOWED');
  });

  it('refuses an admin body over 1 MiB with 413 GW_BODY_TOO_LARGE (an answer, not a reset)', async () => {
    const r = await admin(cage, '/api/v1/config/reload', { method: 'POST', body: 'x'.repeat(2 * 1024 * 1024) });
    assert.equal(r.status, 413);
    assert.equal(errorCode(r), 'GW_BODY_TOO_LARGE');
    assert.equal((await admin(cage, '/api/v1/config')).status, 200);
  });

  it('GET /api/v1/config shows the running config with the token redacted', async () => {
    const r = await admin(cage, '/api/v1/config');
    assert.equal(r.status, 200);
    assert.ok(!r.body.toString().includes(ADMIN_TOKEN), 'the token must not appear');
    const body = json<{ admin: { token: string }; routes: { name: string; upstreams: string[] }[] }>(r);
    assert.equal(body.admin.token, '[redacted]');
    assert.deepEqual(body.routes.map((x) => [x.name, x.upstreams]), [['app', [up.url]]]);
  });

  it('GET /api/v1/upstreams lists each upstream with its health and in-flight count', async () => {
    const r = await admin(cage, '/api/v1/upstreams');
    assert.equal(r.status, 200);
    assert.deepEqual(json(r), [{ route: 'app', upstreams: [{ url: up.url, healthy: true, in_flight: 0, consecutive_fails: 0 }] }]);
  });

  it('generates <data_dir>/admin.token (mode 0600) when no token is configured, and reuses it on the next start', async () => {
    const dir = tempDir(fx);
    const raw = baseConfig(dir, [{ upstreams: [up.url] }], { admin: { listen: '127.0.0.1:0' } });
    const first = await Cage.start({ config: buildConfig(raw) });
    const file = join(dir, 'admin.token');
    let token: string;
    try {
      assert.ok(existsSync(file));
      assert.equal(statSync(file).mode & 0o777, 0o600);
      token = readFileSync(file, 'utf8').trim();
      assert.ok(token.length >= 32, 'a long random token');
      assert.equal((await admin(first, '/api/v1/config', { token })).status, 200);
      assert.equal((await admin(first, '/api/v1/config', { token: ADMIN_TOKEN })).status, 401);
    } finally {
      await first.shutdown(1000);
    }
    const second = await Cage.start({ config: buildConfig(raw) });
    try {
      assert.equal(readFileSync(file, 'utf8').trim(), token);
      assert.equal((await admin(second, '/api/v1/config', { token })).status, 200);
    } finally {
      await second.shutdown(1000);
    }
  });

  it('writes one JSON access-log line per request with id, route, status, bytes and duration', async () => {
    const dir = tempDir(fx);
    const logFile = join(dir, 'access.log');
    const c = await startAdminCage([{ name: 'app', match: { path: '/app' }, upstreams: [up.url] }], { log: { level: 'info', access: true, file: logFile } }, fx);
    const ok = await request(c.port, { path: '/app/logged', headers: { 'x-request-id': 'access-1' } });
    assert.equal(ok.status, 200);
    const miss = await request(c.port, { path: '/missing', headers: { 'x-request-id': 'access-2' } });
    assert.equal(miss.status, 404);
    // Shutdown flushes the batched log (otherwise written within a second).
    await c.shutdown(1000);

    type Line = { msg: string; request_id: string; route: string; status: number; bytes_out: number; duration_ms: number; error?: string };
    const lines = await waitFor(() => {
      if (!existsSync(logFile)) return undefined;
      const all = readFileSync(logFile, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Line);
      const reqs = all.filter((l) => l.msg === 'request');
      return all.some((l) => l.msg === 'cage stopped') ? reqs : undefined;
    }, 'the flushed log');
    assert.equal(lines.length, 2);
    const [first, second] = lines as [Line, Line];
    assert.equal(first.request_id, 'access-1');
    assert.equal(first.route, 'app');
    assert.equal(first.status, 200);
    assert.equal(first.bytes_out, ok.body.length);
    assert.equal(typeof first.duration_ms, 'number');
    assert.ok(first.duration_ms >= 0);
    assert.equal(first.error, undefined);
    assert.equal(second.request_id, 'access-2');
    assert.equal(second.status, 404);
    assert.equal(second.error, 'GW_NO_ROUTE');
  });
});
