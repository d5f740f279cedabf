/**
 * Config reload end to end: programmatic (`cage.reload`), through the admin API (YAML body, or an
 * empty body re-reading the config file) and by SIGHUP to a running `cage run`. A valid config
 * takes over for new requests while in-flight ones finish on the old; an invalid one is refused
 * with ADMIN_RELOAD_FAILED and the old config keeps serving.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isCageError } from '../../core/errors.js';
import { Cage } from '../../gateway/cage.js';
import { loadConfigFile } from '../../gateway/config/load.js';
import { startCli } from '../helpers/cli.js';
import { ADMIN_TOKEN, admin, baseConfig, json, startAdminCage, startNamedUpstream, tempDir, waitFor, whoAnswers, type NamedUpstream } from '../helpers/e2e.js';
import { closedPort, errorCode, Fixtures, request } from '../helpers/servers.js';

/** YAML text for a config whose one route goes to `upstream` (JSON is YAML). */
function configText(dir: string, upstream: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify(baseConfig(dir, [{ name: 'app', upstreams: [upstream] }], extra), null, 2);
}

describe('e2e: config reload', function () {
  const fx = new Fixtures();
  let a: NamedUpstream;
  let b: NamedUpstream;

  before(async () => {
    a = await startNamedUpstream('A', fx);
    b = await startNamedUpstream('B', fx);
  });

  after(() => fx.closeAll());

  it('cage.reload(text) switches the route to the new upstream', async () => {
    const dir = tempDir(fx);
    const cage = await startAdminCage([{ name: 'app', upstreams: [a.url] }], {}, fx);
    assert.equal(await whoAnswers(cage.port), 'A');
    const next = await cage.reload(configText(dir, b.url));
    assert.deepEqual(next.routes[0]!.upstreams, [b.url]);
    assert.equal(await whoAnswers(cage.port), 'B');
    assert.equal(await whoAnswers(cage.port), 'B');
  });

  it('POST /api/v1/config/reload with a YAML body switches routes', async () => {
    const dir = tempDir(fx);
    const cage = await startAdminCage([{ name: 'app', upstreams: [a.url] }], {}, fx);
    assert.equal(await whoAnswers(cage.port), 'A');
    const yaml = `listen: 127.0.0.1:0
admin: { listen: 127.0.0.1:0, token: ${ADMIN_TOKEN} }
data_dir: ${dir}
log: { level: silent, access: false }
routes:
  - name: moved
    upstreams: [${b.url}]
`;
    const r = await admin(cage, '/api/v1/config/reload', { method: 'POST', body: yaml });
    assert.equal(r.status, 200, r.body.toString());
    assert.deepEqual(json(r), { reloaded: true, routes: ['moved'] });
    assert.equal(await whoAnswers(cage.port), 'B');
  });

  it('POST /api/v1/config/reload with an empty body re-reads the config file', async () => {
    const dir = tempDir(fx);
    const file = join(dir, 'cage.yaml');
    writeFileSync(file, configText(dir, a.url));
    const cage = await Cage.start({ config: loadConfigFile(file), configFile: file });
    fx.add(() => cage.shutdown(1000));
    assert.equal(await whoAnswers(cage.port), 'A');
    writeFileSync(file, configText(dir, b.url));
    const r = await admin(cage, '/api/v1/config/reload', { method: 'POST' });
    assert.equal(r.status, 200, r.body.toString());
    assert.equal(await whoAnswers(cage.port), 'B');
  });

  it('refuses an empty-body reload when the cage has no config file (422), keeping the config', async () => {
    const cage = await startAdminCage([{ name: 'app', upstreams: [a.url] }], {}, fx);
    const r = await admin(cage, '/api/v1/config/reload', { method: 'POST' });
    assert.equal(r.status, 422);
    assert.equal(errorCode(r), 'ADMIN_RELOAD_FAILED');
    assert.equal(await whoAnswers(cage.port), 'A');
  });

  it('refuses an invalid config with 422 ADMIN_RELOAD_FAILED naming the reason; the old config keeps serving', async () => {
    const dir = tempDir(fx);
    const cage = await startAdminCage([{ name: 'app', upstreams: [a.url] }], {}, fx);

    const unknownKey = JSON.stringify(baseConfig(dir, [{ name: 'app', match: { hots: 'x' }, upstreams: [b.url] }]));
    const r1 = await admin(cage, '/api/v1/config/reload', { method: 'POST', body: unknownKey });
    assert.equal(r1.status, 422);
    assert.equal(errorCode(r1), 'ADMIN_RELOAD_FAILED');
    const m1 = json<{ error: { message: string } }>(r1).error.message;
    assert.ok(m1.includes('CONFIG_INVALID') && m1.includes('routes[0].match.hots'), m1);

    const r2 = await admin(cage, '/api/v1/config/reload', { method: 'POST', body: 'routes: [ {upstreams: \n  - : :' });
    assert.equal(r2.status, 422);
    assert.equal(errorCode(r2), 'ADMIN_RELOAD_FAILED');
    assert.ok(json<{ error: { message: string } }>(r2).error.message.includes('CONFIG_PARSE_ERROR'));

    await assert.rejects(cage.reload('routes: []'), (err) => isCageError(err, 'ADMIN_RELOAD_FAILED'));

    assert.equal(await whoAnswers(cage.port), 'A');
    assert.deepEqual(cage.config.routes.map((r) => r.upstreams[0]), [a.url]);
    const m = await request(cage.adminPort, { path: '/metrics' });
    assert.match(m.body.toString(), /^cage_config_reloads_total\{result="refused"\} 3$/m);
  });

  it('refuses a reload whose new listen address cannot be bound, and keeps the old listener', async () => {
    const dir = tempDir(fx);
    const cage = await startAdminCage([{ name: 'app', upstreams: [a.url] }], {}, fx);
    // The admin port is taken (by the cage itself): the proxy cannot bind it.
    const text = configText(dir, b.url, { listen: `127.0.0.1:${cage.adminPort}` });
    const r = await admin(cage, '/api/v1/config/reload', { method: 'POST', body: text });
    assert.equal(r.status, 422);
    assert.equal(errorCode(r), 'ADMIN_RELOAD_FAILED');
    assert.equal(await whoAnswers(cage.port), 'A');
  });

  it('moves the proxy listener when `listen` changes', async () => {
    const dir = tempDir(fx);
    const cage = await startAdminCage([{ name: 'app', upstreams: [a.url] }], {}, fx);
    const oldPort = cage.port;
    const newPort = await closedPort();
    await cage.reload(configText(dir, b.url, { listen: `127.0.0.1:${newPort}` }));
    assert.equal(cage.port, newPort);
    assert.equal(await whoAnswers(newPort), 'B');
    await assert.rejects(request(oldPort), (err: NodeJS.ErrnoException) => err.code === 'ECONNREFUSED');
  });

  it('applies a new admin token (answering the reload request itself first)', async () => {
    const dir = tempDir(fx);
    const cage = await startAdminCage([{ name: 'app', upstreams: [a.url] }], {}, fx);
    const newToken = 'n'.repeat(40);
    const r = await admin(cage, '/api/v1/config/reload', { method: 'POST', body: configText(dir, b.url, { admin: { listen: '127.0.0.1:0', token: newToken } }) });
    assert.equal(r.status, 200, r.body.toString());
    const port = cage.adminPort;
    assert.notEqual(port, 0);
    assert.equal((await admin(cage, '/api/v1/config', { token: ADMIN_TOKEN })).status, 401);
    assert.equal((await admin(cage, '/api/v1/config', { token: newToken })).status, 200);
  });

  it('moves the admin listener: the reload is answered on the old port, then only the new one serves', async () => {
    const dir = tempDir(fx);
    const cage = await startAdminCage([{ name: 'app', upstreams: [a.url] }], {}, fx);
    const oldAdmin = cage.adminPort;
    const newAdmin = await closedPort();
    const r = await admin(cage, '/api/v1/config/reload', { method: 'POST', body: configText(dir, b.url, { admin: { listen: `127.0.0.1:${newAdmin}`, token: ADMIN_TOKEN } }) });
    assert.equal(r.status, 200, r.body.toString());
    assert.equal(cage.adminPort, newAdmin);
    assert.equal((await admin(cage, '/api/v1/config')).status, 200);
    await waitFor(
      () => request(oldAdmin, { path: '/healthz' }).then(() => false, (err: NodeJS.ErrnoException) => err.code === 'ECONNREFUSED'),
      'the old admin port to refuse connections',
    );
  });

  it('refuses a reload whose new admin address cannot be bound; proxy and admin keep the old config', async () => {
    const dir = tempDir(fx);
    const cage = await startAdminCage([{ name: 'app', upstreams: [a.url] }], {}, fx);
    const adminPort = cage.adminPort;
    const text = configText(dir, b.url, { admin: { listen: `127.0.0.1:${cage.port}`, token: ADMIN_TOKEN } });
    const r = await admin(cage, '/api/v1/config/reload', { method: 'POST', body: text });
    assert.equal(r.status, 422);
    assert.equal(errorCode(r), 'ADMIN_RELOAD_FAILED');
    assert.equal(await whoAnswers(cage.port), 'A');
    assert.equal(cage.adminPort, adminPort);
    assert.equal((await admin(cage, '/api/v1/config')).status, 200);
  });

  it('lets a request that started before the reload finish on the old upstream', async () => {
    const dir = tempDir(fx);
    const cage = await startAdminCage([{ name: 'app', upstreams: [a.url] }], {}, fx);
    const held = request(cage.port, { path: '/hold/inflight' });
    await waitFor(() => a.held.length === 1, 'the held request at A');
    await cage.reload(configText(dir, b.url));
    assert.equal(await whoAnswers(cage.port), 'B');
    a.release();
    const r = await held;
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), 'released A');
  });

  it('runs one reload at a time: concurrent reloads all apply, the last one wins', async () => {
    const dir = tempDir(fx);
    const cage = await startAdminCage([{ name: 'app', upstreams: [a.url] }], {}, fx);
    const ports = [await closedPort(), await closedPort()];
    await Promise.all([
      cage.reload(configText(dir, a.url, { listen: `127.0.0.1:${ports[0]}` })),
      cage.reload(configText(dir, b.url, { listen: `127.0.0.1:${ports[1]}` })),
    ]);
    assert.equal(cage.port, ports[1]);
    assert.equal(await whoAnswers(ports[1]!), 'B');
    await assert.rejects(request(ports[0]!), (err: NodeJS.ErrnoException) => err.code === 'ECONNREFUSED');
  });

  it('SIGHUP makes `cage run` re-read its file; an invalid file is refused, logged, and the old config kept', async function () {
    this.timeout(60_000);
    const dir = tempDir(fx);
    const file = join(dir, 'cage.yaml');
    const log = { level: 'info', access: false };
    writeFileSync(file, configText(dir, a.url, { log }));
    const { proc, port } = await startCli(['run', '--config', file], fx);
    assert.equal(await whoAnswers(port), 'A');

    writeFileSync(file, configText(dir, b.url, { log }));
    proc.child.kill('SIGHUP');
    await waitFor(async () => (await whoAnswers(port)) === 'B', 'B to answer after SIGHUP');

    writeFileSync(file, 'routes:\n  - upstreams: [http://127.0.0.1:1]\n    nope: 1\n');
    proc.child.kill('SIGHUP');
    const line = await waitFor(() => proc.stdout.split('\n').find((l) => l.includes('config reload refused')), 'the refusal in the log');
    const entry = JSON.parse(line) as { level: number; reason: string };
    assert.ok(entry.reason.includes('CONFIG_INVALID') && entry.reason.includes('routes[0].nope'), entry.reason);
    assert.equal(await whoAnswers(port), 'B');
    assert.equal(proc.exit, undefined, 'the cage must keep running');

    proc.child.kill('SIGTERM');
    assert.deepEqual(await proc.exited, { code: 0, signal: null });
  });
});
