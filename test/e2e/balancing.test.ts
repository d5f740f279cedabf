/**
 * Load balancing and upstream health end to end, with real upstreams that say who answered:
 * round_robin, least_conn (with requests held open), first; passive health (connection refused
 * → skipped after max_fails, back after fail_duration); active health (/health failing → skipped
 * after `fails` checks, back after `passes`); and 503 when nothing is healthy.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { isCageError } from '../../core/errors.js';
import { Cage } from '../../gateway/cage.js';
import { buildConfig } from '../../gateway/config/load.js';
import { admin, baseConfig, json, startAdminCage, startNamedUpstream, tempDir, upstreamHealthy, waitFor, whoAnswers, type NamedUpstream, type UpstreamView } from '../helpers/e2e.js';
import { closedPort, errorCode, Fixtures, request, sleep, type Reply } from '../helpers/servers.js';

function tally(names: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const n of names) out[n] = (out[n] ?? 0) + 1;
  return out;
}

async function answers(port: number, n: number, path = '/'): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(await whoAnswers(port, path));
  return out;
}

async function retries(cage: Cage): Promise<number> {
  const r = await request(cage.adminPort, { path: '/metrics' });
  const m = /^cage_upstream_retries_total (\d+)$/m.exec(r.body.toString());
  return m === null ? 0 : Number(m[1]);
}

/** A node:http server on a fixed port answering `{"upstream": name}` (to bring a dead port back). */
async function listenOn(port: number, name: string, fx: Fixtures): Promise<Server> {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ upstream: name }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  fx.add(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  );
  return server;
}

describe('e2e: load balancing and health', function () {
  const fx = new Fixtures();
  let a: NamedUpstream;
  let b: NamedUpstream;
  let c: NamedUpstream;

  before(async () => {
    a = await startNamedUpstream('A', fx);
    b = await startNamedUpstream('B', fx);
    c = await startNamedUpstream('C', fx);
  });

  after(() => fx.closeAll());

  it('round_robin spreads requests evenly over 3 upstreams', async () => {
    const cage = await startAdminCage([{ upstreams: [a.url, b.url, c.url], load_balancing: 'round_robin' }], {}, fx);
    assert.deepEqual(tally(await answers(cage.port, 30)), { A: 10, B: 10, C: 10 });
  });

  it('least_conn sends new requests to the upstreams with fewer requests in flight', async () => {
    const cage = await startAdminCage([{ upstreams: [a.url, b.url, c.url], load_balancing: 'least_conn' }], {}, fx);
    const ups = [a, b, c];
    // Hold one request open on two of the three upstreams.
    const held = [request(cage.port, { path: '/hold/1' })];
    await waitFor(() => ups.filter((u) => u.held.length === 1).length === 1, 'the first held request');
    held.push(request(cage.port, { path: '/hold/2' }));
    await waitFor(() => ups.filter((u) => u.held.length === 1).length === 2, 'the second held request on another upstream');
    const free = ups.find((u) => u.held.length === 0)!;
    assert.deepEqual(tally(await answers(cage.port, 9)), { [free.name]: 9 });
    for (const u of ups) u.release();
    for (const r of await Promise.all(held)) assert.equal(r.status, 200);
  });

  it('first sticks to the first healthy upstream and fails over when it dies', async () => {
    const dead = `http://127.0.0.1:${await closedPort()}`;
    const cage = await startAdminCage([{ upstreams: [a.url, b.url], load_balancing: 'first' }], {}, fx);
    assert.deepEqual(tally(await answers(cage.port, 10)), { A: 10 });
    const cage2 = await startAdminCage([{ upstreams: [dead, b.url, c.url], load_balancing: 'first' }], {}, fx);
    // Each attempt on the dead first upstream is retried on the next one, until max_fails marks it down.
    assert.deepEqual(tally(await answers(cage2.port, 10)), { B: 10 });
  });

  it('passive health: an upstream refusing connections is skipped after max_fails', async () => {
    const deadPort = await closedPort();
    const dead = `http://127.0.0.1:${deadPort}`;
    const cage = await startAdminCage(
      [{ upstreams: [dead, a.url], load_balancing: 'round_robin', health_checks: { passive: { max_fails: 2, fail_duration: '1h' } } }],
      {},
      fx,
    );
    // Every attempt on the dead upstream is retried on A, so the client always gets A.
    assert.deepEqual(tally(await answers(cage.port, 4)), { A: 4 });
    assert.equal(await upstreamHealthy(cage, dead), false);
    const view = json<UpstreamView[]>(await admin(cage, '/api/v1/upstreams'));
    assert.equal(view[0]!.upstreams.find((u) => u.url === dead)!.consecutive_fails, 2);
    const before = await retries(cage);
    assert.equal(before, 2);
    assert.deepEqual(tally(await answers(cage.port, 10)), { A: 10 });
    assert.equal(await retries(cage), before, 'a skipped upstream costs no more retries');
  });

  it('passive health: a failed upstream comes back after fail_duration', async () => {
    const deadPort = await closedPort();
    const dead = `http://127.0.0.1:${deadPort}`;
    const cage = await startAdminCage(
      [{ upstreams: [dead, a.url], load_balancing: 'round_robin', health_checks: { passive: { max_fails: 1, fail_duration: '200ms' } } }],
      {},
      fx,
    );
    assert.deepEqual(tally(await answers(cage.port, 2)), { A: 2 });
    assert.equal(await upstreamHealthy(cage, dead), false);
    await listenOn(deadPort, 'revived', fx);
    await waitFor(async () => (await whoAnswers(cage.port)) === 'revived', 'the revived upstream to get traffic again');
    assert.equal(await upstreamHealthy(cage, dead), true);
  });

  it('active health: an upstream whose /health fails is skipped after `fails` checks and returns after `passes`', async () => {
    const x = await startNamedUpstream('X', fx);
    const y = await startNamedUpstream('Y', fx);
    const cage = await startAdminCage(
      [{ upstreams: [x.url, y.url], health_checks: { active: { path: '/health', interval: '100ms', timeout: '1s', fails: 2, passes: 2 } } }],
      {},
      fx,
    );
    await waitFor(() => x.healthChecks > 0 && y.healthChecks > 0, 'the first health checks');
    assert.deepEqual(tally(await answers(cage.port, 4)), { X: 2, Y: 2 });

    x.healthStatus = 500;
    const failedFrom = x.healthChecks;
    await waitFor(async () => !(await upstreamHealthy(cage, x.url)), 'X to be marked unhealthy');
    assert.ok(x.healthChecks - failedFrom >= 2, `marked down after ${x.healthChecks - failedFrom} failing checks, expected at least 2`);
    const hitsBefore = x.hits.length;
    assert.deepEqual(tally(await answers(cage.port, 6)), { Y: 6 });
    assert.equal(x.hits.length, hitsBefore, 'X must receive no traffic while unhealthy');

    x.healthStatus = 200;
    const passedFrom = x.healthChecks;
    await waitFor(async () => upstreamHealthy(cage, x.url), 'X to be healthy again');
    assert.ok(x.healthChecks - passedFrom >= 2, `back after ${x.healthChecks - passedFrom} passing checks, expected at least 2`);
    assert.deepEqual(tally(await answers(cage.port, 4)), { X: 2, Y: 2 });
  });

  it('answers 503 GW_NO_HEALTHY_UPSTREAM when every upstream is down', async () => {
    const x = await startNamedUpstream('X2', fx);
    const y = await startNamedUpstream('Y2', fx);
    const cage = await startAdminCage(
      [{ upstreams: [x.url, y.url], health_checks: { active: { path: '/health', interval: '100ms', timeout: '1s', fails: 1, passes: 1 } } }],
      {},
      fx,
    );
    x.healthStatus = 503;
    y.healthStatus = 503;
    await waitFor(async () => !(await upstreamHealthy(cage, x.url)) && !(await upstreamHealthy(cage, y.url)), 'both to be marked unhealthy');
    const r = await request(cage.port, { path: '/x' });
    assert.equal(r.status, 503);
    assert.equal(errorCode(r), 'GW_NO_HEALTHY_UPSTREAM');
    assert.equal(x.hits.length + y.hits.length, 0, 'no request reaches an unhealthy upstream');
    const again: Reply = await request(cage.port, { path: '/y' });
    assert.equal(again.status, 503);
    assert.equal(errorCode(again), 'GW_NO_HEALTHY_UPSTREAM');
  });

  it('a cage that fails to start leaves no health checks running', async () => {
    const x = await startNamedUpstream('X4', fx);
    const other = await startAdminCage([{ upstreams: [x.url] }], {}, fx);
    const dir = tempDir(fx);
    const config = buildConfig(baseConfig(dir, [{ upstreams: [x.url], health_checks: { active: { path: '/health', interval: '50ms' } } }], { listen: `127.0.0.1:${other.adminPort}` }));
    await assert.rejects(Cage.start({ config }), (err) => isCageError(err, 'GW_LISTEN_FAILED'));
    const probes = x.healthChecks;
    await sleep(300); // several intervals: a leaked checker would have probed by now
    assert.equal(x.healthChecks, probes);
  });

  it('a reload that drops the active health check brings a marked-down upstream back', async () => {
    const x = await startNamedUpstream('X3', fx);
    const routes = (health: boolean) => [
      { name: 'r', upstreams: [x.url], ...(health ? { health_checks: { active: { path: '/health', interval: '100ms', fails: 1 } } } : {}) },
    ];
    const cage = await startAdminCage(routes(true), {}, fx);
    x.healthStatus = 500;
    await waitFor(async () => !(await upstreamHealthy(cage, x.url)), 'X3 to be marked unhealthy');
    await cage.reload(JSON.stringify(baseConfig(cage.config.dataDir, routes(false))));
    assert.equal(await upstreamHealthy(cage, x.url), true);
    assert.equal(await whoAnswers(cage.port), 'X3');
  });
});
