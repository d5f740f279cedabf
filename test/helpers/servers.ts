/**
 * Real-socket test fixtures: upstreams (node:http for well-behaved apps, raw `net` for
 * misbehaving ones), cages started in-process on port 0, and clients (node:http with no agent,
 * or raw bytes over `net` for requests node:http refuses to send). Every server started here is
 * closed by `closeAll()`; sockets are destroyed, not waited for.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildConfig } from '../../gateway/config/load.js';
import { Cage } from '../../gateway/cage.js';

export type Closer = () => Promise<void>;

/** Closes what a suite started, newest first (cages before their upstreams). */
export class Fixtures {
  private readonly closers: Closer[] = [];

  add(c: Closer): void {
    this.closers.push(c);
  }

  async closeAll(): Promise<void> {
    while (this.closers.length > 0) {
      const c = this.closers.pop()!;
      await c().catch(() => undefined);
    }
  }
}

export interface HttpUpstream {
  server: Server;
  port: number;
  url: string;
  /** Requests received so far. */
  count: number;
  close: Closer;
}

/** A node:http upstream on 127.0.0.1:0. */
export async function startHttpUpstream(handler: RequestListener, fx?: Fixtures): Promise<HttpUpstream> {
  const up: HttpUpstream = { server: undefined as unknown as Server, port: 0, url: '', count: 0, close: async () => undefined };
  const server = createServer((req, res) => {
    up.count++;
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  up.server = server;
  up.port = (server.address() as AddressInfo).port;
  up.url = `http://127.0.0.1:${up.port}`;
  up.close = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  fx?.add(up.close);
  return up;
}

export interface EchoReport {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  body: string;
}

/** Upstream answering with JSON describing the request it received (rawHeaders included). */
export function startEchoUpstream(fx?: Fixtures): Promise<HttpUpstream & { last: EchoReport | undefined }> {
  const state: { last: EchoReport | undefined } = { last: undefined };
  return startHttpUpstream((req, res) => {
    readAll(req).then((body) => {
      const report: EchoReport = { method: req.method!, url: req.url!, headers: req.headers, rawHeaders: req.rawHeaders, body: body.toString('latin1') };
      state.last = report;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(report));
    }, () => res.destroy());
  }, fx).then((up) => Object.defineProperty(up, 'last', { get: () => state.last }) as HttpUpstream & { last: EchoReport | undefined });
}

export interface RawUpstream {
  server: NetServer;
  port: number;
  url: string;
  /** Connections accepted so far. */
  connections: number;
  close: Closer;
}

/** A raw TCP upstream: `onConnection` owns the socket (for truncated answers, resets, silence). */
export async function startRawUpstream(onConnection: (socket: Socket, index: number) => void, fx?: Fixtures): Promise<RawUpstream> {
  const sockets = new Set<Socket>();
  const up: RawUpstream = { server: undefined as unknown as NetServer, port: 0, url: '', connections: 0, close: async () => undefined };
  const server = createNetServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    onConnection(socket, up.connections++);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  up.server = server;
  up.port = (server.address() as AddressInfo).port;
  up.url = `http://127.0.0.1:${up.port}`;
  up.close = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
  fx?.add(up.close);
  return up;
}

/** A port nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const s = createNetServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

export interface CageHandle {
  cage: Cage;
  port: number;
  close: Closer;
}

/**
 * A cage on 127.0.0.1:0 with admin off and silent logs; `extra` is merged into the raw config
 * (e.g. `{ trusted_proxies: [...] , limits: {...}, tls: {...} }`).
 */
export async function startCage(routes: unknown[], extra: Record<string, unknown> = {}, fx?: Fixtures): Promise<CageHandle> {
  const dir = mkdtempSync(join(tmpdir(), 'cage-test-'));
  let cage: Cage;
  try {
    const config = buildConfig({
      listen: '127.0.0.1:0',
      admin: { enabled: false },
      data_dir: dir,
      log: { level: 'silent', access: false },
      routes,
      ...extra,
    });
    cage = await Cage.start({ config });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const close: Closer = async () => {
    await cage.shutdown(1000);
    rmSync(dir, { recursive: true, force: true });
  };
  fx?.add(close);
  return { cage, port: cage.port, close };
}

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  body: Buffer;
}

export interface RequestOptions {
  /** The cage's address (default 127.0.0.1). */
  address?: string;
  method?: string;
  path?: string;
  headers?: Record<string, string | string[]>;
  body?: string | Buffer;
}

/** One request over a fresh connection (no agent); resolves with the whole response. */
export function request(port: number, opts: RequestOptions = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: opts.address ?? '127.0.0.1', port, method: opts.method ?? 'GET', path: opts.path ?? '/', headers: opts.headers, agent: false }, (res) => {
      readAll(res).then((body) => resolve({ status: res.statusCode!, headers: res.headers, rawHeaders: res.rawHeaders, body }), reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** The error code of a cage JSON error body (throws when the body is not one). */
export function errorCode(reply: Reply | Buffer | string): string {
  const text = Buffer.isBuffer(reply) ? reply.toString() : typeof reply === 'string' ? reply : reply.body.toString();
  const parsed = JSON.parse(text) as { error?: { code?: unknown; request_id?: unknown } };
  if (typeof parsed.error?.code !== 'string' || typeof parsed.error.request_id !== 'string') {
    throw new Error(`not a cage error body: ${text.slice(0, 200)}`);
  }
  return parsed.error.code;
}

export function readAll(stream: IncomingMessage | NodeJS.ReadableStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => resolve(Buffer.concat(chunks)));
    stream.on('error', reject);
  });
}

export type { ServerResponse };

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Whether this machine has IPv6 loopback (containers often do not). */
export async function hasIpv6Loopback(): Promise<boolean> {
  const s = createNetServer();
  return new Promise((resolve) => {
    s.once('error', () => resolve(false));
    s.listen(0, '::1', () => s.close(() => resolve(true)));
  });
}
