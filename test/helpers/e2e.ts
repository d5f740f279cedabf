/**
 * End-to-end fixtures on top of servers.ts: a cage with its admin listener on (token known),
 * admin API calls, named upstreams that say who answered (and can hold requests open or fail
 * their health check), and bounded polling (`waitFor`) instead of sleeps, because the test
 * machine is two noisy cores and no wall-clock assertion would be reliable there.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cage } from '../../gateway/cage.js';
import { buildConfig } from '../../gateway/config/load.js';
import { request, sleep, startHttpUpstream, type Fixtures, type HttpUpstream, type Reply } from './servers.js';

export const ADMIN_TOKEN = 'x'.repeat(32);

/** Thrown by a `waitFor` probe to stop polling at once (the condition can no longer come true). */
export class StopWaiting extends Error {}

/**
 * Polls `probe` until it returns something other than undefined/false (then returns it); fails
 * with `what` after `timeoutMs`. The timeout is a safety net, not a measured expectation.
 */
export async function waitFor<T>(probe: () => T | undefined | false | Promise<T | undefined | false>, what: string, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      if (err instanceof StopWaiting) throw err;
      lastErr = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${lastErr === undefined ? '' : ` (last error: ${String(lastErr)})`}`);
    await sleep(20);
  }
}

export function tempDir(fx?: Fixtures): string {
  const dir = mkdtempSync(join(tmpdir(), 'cage-e2e-'));
  fx?.add(async () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The raw config a test cage starts from; `extra` keys replace these. */
export function baseConfig(dir: string, routes: unknown[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    listen: '127.0.0.1:0',
    admin: { listen: '127.0.0.1:0', token: ADMIN_TOKEN },
    data_dir: dir,
    log: { level: 'silent', access: false },
    routes,
    ...extra,
  };
}

/** A cage with the admin listener on 127.0.0.1:0 (token ADMIN_TOKEN unless `extra` says otherwise). */
export async function startAdminCage(routes: unknown[], extra: Record<string, unknown> = {}, fx?: Fixtures): Promise<Cage> {
  const dir = tempDir();
  const cage = await Cage.start({ config: buildConfig(baseConfig(dir, routes, extra)) });
  fx?.add(async () => {
    await cage.shutdown(1000);
    rmSync(dir, { recursive: true, force: true });
  });
  return cage;
}

export interface AdminCall {
  method?: string;
  body?: string;
  /** Bearer token; `null` sends no Authorization header. Default ADMIN_TOKEN. */
  token?: string | null;
}

export function admin(cage: Cage, path: string, call: AdminCall = {}): Promise<Reply> {
  const token = call.token === undefined ? ADMIN_TOKEN : call.token;
  const headers: Record<string, string> = {};
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (call.body !== undefined) headers['content-type'] = 'application/yaml';
  return request(cage.adminPort, { method: call.method ?? 'GET', path, headers, body: call.body });
}

export function json<T = unknown>(reply: Reply): T {
  return JSON.parse(reply.body.toString('utf8')) as T;
}

export interface UpstreamView {
  route: string;
  upstreams: { url: string; healthy: boolean; in_flight: number; consecutive_fails: number }[];
}

/** `healthy` of one upstream as GET /api/v1/upstreams reports it. */
export async function upstreamHealthy(cage: Cage, url: string): Promise<boolean> {
  const r = await admin(cage, '/api/v1/upstreams');
  const routes = json<UpstreamView[]>(r);
  const u = routes.flatMap((x) => x.upstreams).find((x) => x.url === url);
  if (u === undefined) throw new Error(`upstream ${url} not listed`);
  return u.healthy;
}

export interface NamedUpstream extends HttpUpstream {
  name: string;
  /** Requests other than the health check, by path. */
  hits: string[];
  /** Requests to …/hold… waiting for `release()`. */
  held: ServerResponse[];
  /** Status GET /health answers with. */
  healthStatus: number;
  healthChecks: number;
  /** Answer every held request with 200 `released <name>`. */
  release(): void;
}

/**
 * An upstream answering `{"upstream": name, "path": …}`; `/health` answers `healthStatus`;
 * paths containing `/hold` wait until `release()`.
 */
export async function startNamedUpstream(name: string, fx?: Fixtures): Promise<NamedUpstream> {
  const self = {
    name,
    hits: [] as string[],
    held: [] as ServerResponse[],
    healthStatus: 200,
    healthChecks: 0,
    release(): void {
      for (const res of self.held.splice(0)) {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(`released ${name}`);
      }
    },
  };
  const up = await startHttpUpstream((req, res) => {
    if (req.url === '/health') {
      self.healthChecks++;
      res.writeHead(self.healthStatus, { 'content-type': 'text/plain' });
      res.end('health');
      return;
    }
    self.hits.push(req.url ?? '');
    req.resume();
    req.on('end', () => {
      if (req.url?.includes('/hold')) {
        self.held.push(res);
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ upstream: name, path: req.url, headers: req.headers }));
    });
  }, fx);
  return Object.assign(self, up) as NamedUpstream;
}

/** Which named upstream answered a plain GET. */
export async function whoAnswers(port: number, path = '/'): Promise<string> {
  const r = await request(port, { path });
  if (r.status !== 200) throw new Error(`GET ${path}: ${r.status} ${r.body.toString().slice(0, 200)}`);
  return (JSON.parse(r.body.toString()) as { upstream: string }).upstream;
}

/** The value of one sample (`name{labels} value`) in Prometheus text, or undefined. */
export function metricSample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m === null || m[1] !== name) continue;
    const got = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[3]);
  }
  return undefined;
}
