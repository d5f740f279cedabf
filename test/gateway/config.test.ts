import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isCageError, type CageErrorCode } from '../../core/errors.js';
import { buildConfig, loadConfigFile, parseConfigText } from '../../gateway/config/load.js';
import { CONFIG_SCHEMA } from '../../gateway/config/schema.js';

const UP = 'routes: [{ upstreams: [http://127.0.0.1:3000] }]\n';

function refused(text: string, code: CageErrorCode, path?: string, env: NodeJS.ProcessEnv = {}): void {
  assert.throws(
    () => parseConfigText(text, '/tmp', env),
    (err) => isCageError(err, code) && (path === undefined || err.message.startsWith(`${path}:`)),
    `${text} → ${code} ${path ?? ''}`,
  );
}

describe('gateway/config', () => {
  it('fills every default from the schema and normalizes units', () => {
    const c = parseConfigText(UP, '/srv/cage', {});
    assert.deepEqual(c.listen, { host: '127.0.0.1', port: 8080 });
    assert.deepEqual(c.admin, { enabled: true, listen: { host: '127.0.0.1', port: 2019 }, token: undefined });
    assert.equal(c.dataDir, '/srv/cage/.cage');
    assert.equal(c.maxHeaderBytes, 16 * 1024);
    assert.equal(c.shutdownGraceMs, 30_000);
    const r = c.routes[0]!;
    assert.equal(r.name, 'route0');
    assert.equal(r.pathPrefix, '/');
    assert.deepEqual(r.hosts, []);
    assert.equal(r.loadBalancing, 'round_robin');
    assert.equal(r.connectTimeoutMs, 5000);
    assert.equal(r.responseHeadersTimeoutMs, 30_000);
    assert.equal(r.idleTimeoutMs, 60_000);
    assert.equal(r.maxBodyBytes, 10 * 1024 * 1024);
    assert.equal(r.retries, 1);
    assert.equal(r.activeHealth, undefined);
    assert.equal(r.passiveMaxFails, 3);
    assert.equal(r.websocket, true);
    assert.ok(Object.isFrozen(c) && Object.isFrozen(c.routes) && Object.isFrozen(r));
  });

  it('reads a full config', () => {
    const c = parseConfigText(
      `
listen: ":8443"
tls: { cert: certs/c.pem, key: certs/k.pem }
admin: { listen: 127.0.0.1:9000, token: env:TOKEN }
trusted_proxies: [10.0.0.0/8, "::1"]
limits: { max_header_bytes: 32KiB }
routes:
  - name: api
    match: { host: [API.example.com, "*.example.org"], path: /api }
    upstreams: [http://10.0.0.1:3000, https://10.0.0.2:3443]
    load_balancing: least_conn
    headers:
      request: { set: { X-Env: prod }, remove: [X-Debug] }
      response: { remove: [Server] }
    timeouts: { connect: 1s, response_headers: 2500ms, idle: 1m }
    max_body_bytes: 1MiB
    retries: 2
    health_checks:
      active: { path: /healthz, interval: 5s, fails: 3, passes: 2, expect_status: 204 }
      passive: { max_fails: 5, fail_duration: 10s }
    websocket: false
`,
      '/etc/cage',
      { TOKEN: 't'.repeat(20) },
    );
    assert.deepEqual(c.listen, { host: '0.0.0.0', port: 8443 });
    assert.deepEqual(c.tls, { cert: '/etc/cage/certs/c.pem', key: '/etc/cage/certs/k.pem' });
    assert.equal(c.admin.token, 't'.repeat(20));
    assert.deepEqual(c.trustedProxies, ['10.0.0.0/8', '::1']);
    assert.equal(c.maxHeaderBytes, 32 * 1024);
    const r = c.routes[0]!;
    assert.deepEqual(r.hosts, ['api.example.com', '*.example.org']);
    assert.deepEqual(r.requestHeaders, { set: [['x-env', 'prod']], remove: ['x-debug'] });
    assert.deepEqual(r.responseHeaders, { set: [], remove: ['server'] });
    assert.equal(r.responseHeadersTimeoutMs, 2500);
    assert.equal(r.idleTimeoutMs, 60_000);
    assert.equal(r.maxBodyBytes, 1024 * 1024);
    assert.deepEqual(r.activeHealth, { path: '/healthz', intervalMs: 5000, timeoutMs: 2000, passes: 2, fails: 3, expectStatus: 204 });
    assert.equal(r.passiveFailDurationMs, 10_000);
    assert.equal(r.websocket, false);
  });

  it('refuses unknown keys anywhere, naming the path', () => {
    refused(`listne: ":80"\n${UP}`, 'CONFIG_INVALID', 'listne');
    refused('routes: [{ upstreams: [http://a], match: { hots: x } }]', 'CONFIG_INVALID', 'routes[0].match.hots');
    refused('routes: [{ upstreams: [http://a], headers: { request: { sett: {} } } }]', 'CONFIG_INVALID', 'routes[0].headers.request.sett');
    refused('routes: [{ upstreams: [http://a], health_checks: { active: { path: /h, intervl: 1s } } }]', 'CONFIG_INVALID', 'routes[0].health_checks.active.intervl');
  });

  it('refuses bad values with the path named', () => {
    refused('routes: []', 'CONFIG_INVALID', 'routes');
    refused('listen: 1\n' + UP, 'CONFIG_INVALID', 'listen');
    refused('listen: "1.2.3.4:70000"\n' + UP, 'CONFIG_INVALID', 'listen');
    refused('routes: [{ upstreams: [ftp://a] }]', 'CONFIG_INVALID', 'routes[0].upstreams[0]');
    refused('routes: [{ upstreams: ["http://u:p@a"] }]', 'CONFIG_INVALID', 'routes[0].upstreams[0]');
    refused('routes: [{ upstreams: [http://a], timeouts: { connect: soon } }]', 'CONFIG_INVALID', 'routes[0].timeouts.connect');
    refused('routes: [{ upstreams: [http://a], max_body_bytes: lots }]', 'CONFIG_INVALID', 'routes[0].max_body_bytes');
    refused('routes: [{ upstreams: [http://a], load_balancing: hash }]', 'CONFIG_INVALID', 'routes[0].load_balancing');
    refused('routes: [{ upstreams: [http://a], match: { path: api } }]', 'CONFIG_INVALID', 'routes[0].match.path');
    refused('routes: [{ upstreams: [http://a], headers: { request: { set: { "Bad Name": x } } } }]', 'CONFIG_INVALID', 'routes[0].headers.request.set');
    refused('routes: [{ upstreams: [http://a], headers: { request: { set: { X-A: "a\\r\\nb" } } } }]', 'CONFIG_INVALID', 'routes[0].headers.request.set.X-A');
    refused('trusted_proxies: [10.0.0.0/33]\n' + UP, 'CONFIG_INVALID', 'trusted_proxies[0]');
    refused('routes: [{ name: a, upstreams: [http://a] }, { name: a, upstreams: [http://b] }]', 'CONFIG_INVALID', 'routes[1].name');
    refused('admin: { token: short }\n' + UP, 'CONFIG_INVALID', 'admin.token');
    refused('routes: [{ upstreams: [http://a], retries: -1 }]', 'CONFIG_INVALID', 'routes[0].retries');
    refused('routes: [{ upstreams: ["http://app:3000/base"] }]', 'CONFIG_INVALID', 'routes[0].upstreams[0]');
    refused('routes: [{ upstreams: ["http://app:3000?x=1"] }]', 'CONFIG_INVALID', 'routes[0].upstreams[0]');
    refused('routes: [{ upstreams: [http://a], headers: { response: { set: { Content-Length: "5" } } } }]', 'CONFIG_INVALID', 'routes[0].headers.response.set.Content-Length');
    refused('routes: [{ upstreams: [http://a], headers: { request: { remove: [x-a, Transfer-Encoding] } } }]', 'CONFIG_INVALID', 'routes[0].headers.request.remove[1]');
    refused('routes: [{ upstreams: [http://a], headers: { request: { set: { Host: evil } } } }]', 'CONFIG_INVALID', 'routes[0].headers.request.set.Host');
    assert.equal(parseConfigText('routes: [{ upstreams: ["http://app:3000/"] }]', '/tmp', {}).routes[0]!.upstreams[0], 'http://app:3000/');
  });

  it('refuses broken YAML, duplicate keys and missing env vars with their own codes', () => {
    refused('routes: [', 'CONFIG_PARSE_ERROR');
    refused('listen: ":1"\nlisten: ":2"\n' + UP, 'CONFIG_PARSE_ERROR');
    refused('admin: { token: env:CAGE_NOPE }\n' + UP, 'CONFIG_ENV_MISSING', 'admin.token');
    assert.throws(() => buildConfig([1, 2]), (e) => isCageError(e, 'CONFIG_INVALID'));
    assert.throws(() => buildConfig(null), (e) => isCageError(e, 'CONFIG_INVALID'));
  });

  it('does not mutate the caller object when filling defaults', () => {
    const raw = { routes: [{ upstreams: ['http://a'] }] };
    buildConfig(raw);
    assert.deepEqual(raw, { routes: [{ upstreams: ['http://a'] }] });
  });

  it('loads files and resolves relative paths against the file folder', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cage-config-'));
    const file = join(dir, 'cage.yaml');
    writeFileSync(file, `data_dir: state\n${UP}`);
    assert.equal(loadConfigFile(file).dataDir, join(dir, 'state'));
    assert.throws(() => loadConfigFile(join(dir, 'missing.yaml')), (e) => isCageError(e, 'CONFIG_NOT_FOUND'));
  });

  it('every object in the schema forbids unknown keys', () => {
    const open: string[] = [];
    const walk = (node: unknown, path: string): void => {
      if (node === null || typeof node !== 'object') return;
      const o = node as Record<string, unknown>;
      if (o.type === 'object' && o.properties !== undefined && o.additionalProperties !== false) open.push(path);
      for (const [k, v] of Object.entries(o)) walk(v, `${path}/${k}`);
    };
    walk(CONFIG_SCHEMA, '');
    assert.deepEqual(open, []);
  });
});
