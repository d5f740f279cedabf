/**
 * The admin listener (node:http; never on the request path): `/healthz`, `/readyz`, Prometheus
 * `/metrics` unauthenticated, like Caddy's and Envoy's admin ports, meant for loopback or a
 * private network; everything under `/api/v1/` needs `Authorization: Bearer <admin token>`
 * (compared in constant time). Every error answers with the cage's JSON error body.
 */
import { randomUUID, timingSafeEqual, createHash } from 'node:crypto';
import { createReadStream, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { CageError, errorBody, isCageError } from '../core/errors.js';
import { Exchange } from './exchange.js';

const MAX_ADMIN_BODY = 1024 * 1024;
/** How long close() lets answers in progress finish before cutting their connections. */
const CLOSE_GRACE_MS = 5000;

export interface AdminRequest {
  method: string;
  path: string;
  body: string;
  query: URLSearchParams;
  /** For a `prefix/*` route: what follows the prefix. */
  rest: string;
}

export interface AdminAnswer {
  status: number;
  body: unknown;
  /** Send `body` (a string or Buffer) as is with this content type instead of JSON. */
  contentType?: string;
}

export type AdminHandler = (req: AdminRequest) => Promise<AdminAnswer>;

/**
 * An admin change as an exchange for the audit log (route `(admin)`): who (the admin token's
 * holder), what (method, path with its query, the request body's digest) and the answer's status
 * and size. Used by the services whose changes are audited (notaries, ZK groups).
 */
/** `who` names the actor in the record: the admin token holder, or the chain's Court. */
export function adminChangeExchange(req: AdminRequest, status: number, responseBody: string, code: string, who = 'admin-token'): Exchange {
  const ex = new Exchange();
  ex.id = randomUUID();
  ex.time = Date.now();
  ex.startedAt = ex.endedAt = performance.now();
  ex.route = '(admin)';
  ex.method = req.method;
  ex.host = 'admin';
  // The query is part of the change (DELETE …?quorum=k).
  const query = req.query.toString();
  ex.target = query === '' ? req.path : `${req.path}?${query}`;
  ex.path = req.path;
  ex.identity = who;
  ex.headers = ['content-type', 'application/json'];
  ex.status = status;
  ex.bytesIn = Buffer.byteLength(req.body);
  if (code !== '') ex.errorCode = code as Exchange['errorCode'];
  // The change itself is the request body: its digest is in the record.
  ex.requestBodyHash = createHash('sha256').update(req.body);
  ex.bytesOut = Buffer.byteLength(responseBody);
  return ex;
}

/** A folder of static files served read-only under a path prefix (the audit log's tiles). */
export interface AdminStatic {
  prefix: string;
  dir: () => string | undefined;
  /** Served without the admin token. */
  public: () => boolean;
}

/** C2SP tlog-tiles paths (and `checkpoint`): nothing else is served from the folder. */
const STATIC_PATH_RE = /^(?:checkpoint|tile\/(?:entries|\d{1,2})(?:\/x\d{3})*\/\d{3}(?:\.p\/\d{1,3})?)$/;

export interface AdminOptions {
  token: string;
  /** `GET /metrics` text. */
  metrics: () => Promise<string>;
  /** 200 when ready, else 503, with a JSON explanation. */
  ready: () => { ready: boolean; detail: unknown };
  /** `/api/v1/...` routes: path (or `prefix/*`) → method → handler. */
  api: Record<string, Partial<Record<string, AdminHandler>>>;
  statics?: readonly AdminStatic[];
}

export class AdminServer {
  private server: Server | undefined;
  private tokenDigest: Buffer;
  /** Responses in progress (close() lets them finish, then ends their connections). */
  private readonly active = new Set<ServerResponse>();

  constructor(private readonly opts: AdminOptions) {
    this.tokenDigest = sha256(opts.token);
  }

  /** Accept a new token from now on (a reload that only changes the token keeps the listener). */
  setToken(token: string): void {
    this.tokenDigest = sha256(token);
  }

  get port(): number {
    return (this.server?.address() as AddressInfo | null)?.port ?? 0;
  }

  listen(host: string, port: number): Promise<void> {
    const server = createServer({ maxHeaderSize: 16 * 1024, requestTimeout: 30_000 }, (req, res) => {
      void this.handle(req, res);
    });
    return new Promise((resolve, reject) => {
      server.once('error', (err) =>
        reject(new CageError({ code: 'GW_LISTEN_FAILED', message: `admin cannot listen on ${host}:${port}: ${(err as NodeJS.ErrnoException).code}`, cause: err })),
      );
      server.listen(port, host, () => {
        this.server = server;
        resolve();
      });
    });
  }

  /**
   * Stop accepting; idle connections close now, busy ones after their answer is sent (it may be
   * the answer to the reload that closes this listener), or after CLOSE_GRACE_MS at the latest.
   */
  close(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (s === undefined) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => s.closeAllConnections(), CLOSE_GRACE_MS);
      timer.unref();
      s.close(() => {
        clearTimeout(timer);
        resolve();
      });
      for (const res of this.active) if (!res.headersSent) res.setHeader('connection', 'close');
      s.closeIdleConnections();
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.active.add(res);
    res.once('close', () => this.active.delete(res));
    if (this.server === undefined) res.setHeader('connection', 'close');
    const requestId = randomUUID();
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const query = new URLSearchParams(q < 0 ? '' : url.slice(q + 1));
    try {
      for (const st of this.opts.statics ?? []) {
        if (path.startsWith(st.prefix)) return this.serveStatic(req, res, st, path.slice(st.prefix.length));
      }
      if (path === '/healthz') return send(res, 200, { status: 'ok' });
      if (path === '/readyz') {
        const r = this.opts.ready();
        return send(res, r.ready ? 200 : 503, { ready: r.ready, detail: r.detail });
      }
      if (path === '/metrics') {
        const text = await this.opts.metrics();
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
        res.end(text);
        return;
      }
      if (!path.startsWith('/api/v1/')) throw new CageError({ code: 'ADMIN_NOT_FOUND', message: `no admin endpoint ${path}` });
      if (!this.authorized(req.headers.authorization)) {
        res.setHeader('www-authenticate', 'Bearer realm="cage-admin"');
        throw new CageError({ code: 'ADMIN_UNAUTHORIZED', message: 'missing or wrong admin token' });
      }
      const route = this.findRoute(path.slice('/api/v1'.length));
      if (route === undefined) throw new CageError({ code: 'ADMIN_NOT_FOUND', message: `no admin endpoint ${path}` });
      const [methods, rest] = route;
      const handler = methods[req.method ?? 'GET'];
      if (handler === undefined) {
        res.setHeader('allow', Object.keys(methods).join(', '));
        throw new CageError({ code: 'ADMIN_METHOD_NOT_ALLOWED', message: `${req.method} not allowed on ${path}` });
      }
      const body = await readBody(req, res);
      const out = await handler({ method: req.method ?? 'GET', path, body, query, rest });
      if (out.contentType !== undefined) {
        res.writeHead(out.status, { 'content-type': out.contentType, 'cache-control': 'no-store' });
        res.end(out.body as string | Buffer);
      } else {
        send(res, out.status, out.body);
      }
    } catch (err) {
      const e = isCageError(err) ? err : new CageError({ code: 'GW_INTERNAL', message: 'internal admin error', cause: err });
      if (!res.headersSent) {
        res.writeHead(e.status, { 'content-type': 'application/json', 'x-request-id': requestId });
        res.end(errorBody(e.code, e.message, requestId));
      }
    }
  }

  private findRoute(path: string): [Partial<Record<string, AdminHandler>>, string] | undefined {
    const exact = this.opts.api[path];
    if (exact !== undefined) return [exact, ''];
    for (const [pattern, methods] of Object.entries(this.opts.api)) {
      if (pattern.endsWith('/*') && path.startsWith(pattern.slice(0, -1)) && path.length > pattern.length - 1) {
        return [methods, path.slice(pattern.length - 1)];
      }
    }
    return undefined;
  }

  /** GET/HEAD of one static log file; anything but a tlog-tiles path is 404. */
  private serveStatic(req: IncomingMessage, res: ServerResponse, st: AdminStatic, rel: string): void {
    if (!st.public() && !this.authorized(req.headers.authorization)) {
      res.setHeader('www-authenticate', 'Bearer realm="cage-admin"');
      throw new CageError({ code: 'ADMIN_UNAUTHORIZED', message: 'missing or wrong admin token (set audit.public_read to publish the log)' });
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      throw new CageError({ code: 'ADMIN_METHOD_NOT_ALLOWED', message: `${req.method} not allowed on ${st.prefix}${rel}` });
    }
    const dir = st.dir();
    const file = dir === undefined || !STATIC_PATH_RE.test(rel) ? undefined : join(dir, rel);
    let size = -1;
    try {
      if (file !== undefined) size = statSync(file).size;
    } catch {
      size = -1;
    }
    if (file === undefined || size < 0) throw new CageError({ code: 'ADMIN_NOT_FOUND', message: `no log file ${st.prefix}${rel}` });
    const immutable = rel !== 'checkpoint' && !rel.includes('.p/');
    res.writeHead(200, {
      'content-type': rel === 'checkpoint' ? 'text/plain; charset=utf-8' : 'application/octet-stream',
      'content-length': size,
      // Full tiles never change (C2SP tlog-tiles); the checkpoint and partial tiles do.
      'cache-control': immutable ? 'public, max-age=31536000, immutable' : 'no-store',
    });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    createReadStream(file).on('error', () => res.destroy()).pipe(res);
  }

  private authorized(header: string | undefined): boolean {
    if (header === undefined || !header.startsWith('Bearer ')) return false;
    return timingSafeEqual(sha256(header.slice(7).trim()), this.tokenDigest);
  }
}

function sha256(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}

/**
 * The request body as text, up to MAX_ADMIN_BODY. Past the limit it stops collecting and refuses
 * (413): the socket is left to Node, which discards the rest after the answer and closes the
 * connection, so the client reads a JSON error instead of a reset.
 */
function readBody(req: IncomingMessage, res: ServerResponse): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let n = 0;
    const onData = (c: Buffer) => {
      n += c.length;
      if (n > MAX_ADMIN_BODY) {
        req.off('data', onData);
        req.resume();
        res.setHeader('connection', 'close');
        reject(new CageError({ code: 'GW_BODY_TOO_LARGE', message: `admin request body exceeds ${MAX_ADMIN_BODY} bytes` }));
        return;
      }
      chunks.push(c);
    };
    req.on('data', onData);
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}
