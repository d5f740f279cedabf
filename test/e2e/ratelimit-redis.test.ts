/**
 * Shared rate limits: two cage processes against one real redis-server hold one limit between
 * them; when Redis goes away each applies its on_redis_error (closed → 503, local → its own
 * in-memory limit) and logs it; when Redis is back they use it again without a restart.
 * Needs `redis-server` on PATH (.ci/run installs it).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { startCli, type RunningCage } from '../helpers/cli.js';
import { tempDir, waitFor } from '../helpers/e2e.js';
import { errorCode, Fixtures, request, startEchoUpstream } from '../helpers/servers.js';

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function redisServerPath(): string {
  try {
    return execFileSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error('redis-server is not installed: this test needs a real Redis (apt-get install -y redis-server; .ci/run does it)');
  }
}

function startRedis(port: number, fx: Fixtures): ChildProcess {
  const child = spawn(redisServerPath(), ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  fx.add(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
    }
  });
  return child;
}

async function redisUp(port: number): Promise<boolean> {
  const { Redis } = await import('ioredis');
  const c = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  c.on('error', () => undefined); // a refused connection is the answer here, not a failure
  try {
    await c.connect();
    return (await c.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    c.disconnect();
  }
}

describe('e2e: rate limits shared through a real Redis by two cage processes', function () {
  this.timeout(120_000);
  const fx = new Fixtures();
  let redisPort: number;
  let redis: ChildProcess;
  let a: RunningCage;
  let b: RunningCage;

  before(async () => {
    redisPort = await freePort();
    redis = startRedis(redisPort, fx);
    await waitFor(() => redisUp(redisPort), 'redis-server to answer PING', 20_000);
    const echo = await startEchoUpstream(fx);
    const dir = tempDir(fx);
    const config = (mode: string, name: string): string => {
      const file = join(dir, `${name}.yaml`);
      writeFileSync(
        file,
        JSON.stringify({
          listen: '127.0.0.1:0',
          admin: { enabled: false },
          data_dir: join(dir, name),
          audit: { enabled: false },
          log: { level: 'info', access: false },
          ratelimit: { redis: `redis://127.0.0.1:${redisPort}`, on_redis_error: mode, key_prefix: 'cage-test', limits: [{ name: 'shared', by: 'route', points: 10, per: '60s' }] },
          routes: [{ name: 'app', upstreams: [`http://127.0.0.1:${echo.port}`] }],
        }),
      );
      return file;
    };
    [a, b] = await Promise.all([startCli(['run', '--config', config('closed', 'a')], fx), startCli(['run', '--config', config('local', 'b')], fx)]);
  });
  after(() => fx.closeAll());

  it('holds one limit across both cages: 10 of 16 requests pass, whichever cage they hit', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 16; i++) {
      const r = await request(i % 2 === 0 ? a.port : b.port, { path: `/x${i}` });
      statuses.push(r.status);
      if (r.status === 429) {
        assert.equal(errorCode(r), 'RATE_LIMITED');
        assert.equal(r.headers['ratelimit-policy'], '"shared";q=10;w=60');
      }
    }
    assert.deepEqual(statuses, [...Array(10).fill(200), ...Array(6).fill(429)]);
  });

  it('when Redis dies: the closed cage answers 503, the local one limits on its own; both log it; both recover by themselves', async () => {
    redis.kill('SIGKILL');
    await new Promise((r) => redis.once('exit', r));
    const down = await waitFor(async () => {
      const r = await request(a.port, { path: '/down' });
      return r.status === 503 ? r : undefined;
    }, 'cage a to notice Redis is gone');
    assert.equal(errorCode(down), 'RATE_LIMIT_UNAVAILABLE');
    // b falls back to an in-memory limiter with the same quota: 10 pass, then 429.
    const local: number[] = [];
    for (let i = 0; i < 12; i++) local.push((await request(b.port, { path: `/local${i}` })).status);
    assert.deepEqual(local, [...Array(10).fill(200), 429, 429]);
    await waitFor(() => /Redis unreachable/.test(a.proc.stdout) && /Redis unreachable/.test(b.proc.stdout), 'both cages to log the outage');

    redis = startRedis(redisPort, fx);
    await waitFor(() => redisUp(redisPort), 'redis-server to come back', 20_000);
    const back = await waitFor(async () => {
      const r = await request(a.port, { path: '/back' });
      return r.status !== 503 ? r : undefined;
    }, 'cage a to use Redis again', 30_000);
    assert.equal(back.status, 200);
    await waitFor(() => /Redis is back/.test(a.proc.stdout), 'cage a to log the recovery');
    // Shared again: the fresh Redis counts both cages together (1 used by a above).
    const statuses: number[] = [];
    for (let i = 0; i < 11; i++) statuses.push((await request(i % 2 === 0 ? b.port : a.port, { path: `/again${i}` })).status);
    assert.deepEqual(statuses, [...Array(9).fill(200), 429, 429]);
  });
});
