/**
 * The proxy listener: a uWebSockets.js app whose one handler runs every request through the
 * pipeline (identify → limit → decide → open → forward → record). Holds the current compiled
 * state and swaps it on reload; rebinds the listener when `listen` or `tls` change; drains on
 * shutdown (stop accepting, let in-flight exchanges finish up to the grace period).
 */
import { hash, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import type { Logger } from 'pino';
import type { HttpRequest, HttpResponse, TemplatedApp, us_listen_socket } from 'uWebSockets.js';
import { CageError, errorBody } from '../core/errors.js';
import type { CageConfig } from './config/load.js';
import { ExchangeAuditor } from './audit.js';
import { MEDIA_TYPE_OHTTP_REQUEST, isEncapsulatedRequest } from '../pq/ohttp.js';
import type { PqFront } from './ohttp.js';
import { Exchange } from './exchange.js';
import { ProxyRequest, RequestBody, type ForwardHost } from './forward.js';
import { buildUpstreamHeaders, canonicalAddress, isTrusted } from './headers.js';
import type { Recorder, Stage } from './pipeline.js';
import { runStages } from './pipeline.js';
import { hasDotSegment } from './router.js';
import { GatewayState } from './state.js';
import { HealthChecker } from './upstream/health.js';
import { UpstreamRegistry } from './upstream/upstream.js';
import { loadUws, statusLine } from './uws.js';
import { WebSocketProxy } from './websocket.js';

const REQUEST_ID_RE = /^[A-Za-z0-9._:@/+=-]{1,200}$/;
const CONTENT_LENGTH_RE = /^\d{1,15}$/;

export interface GatewayOptions {
  logger: Logger;
  recorders: Recorder[];
  stages?: readonly Stage[];
  /** Writes the exchanges' audit records; none: nothing is audited. */
  auditor?: ExchangeAuditor;
  /** Opens post-quantum envelopes (OHTTP); none: they are forwarded like any POST. */
  pq?: PqFront;
}

interface Listener {
  app: TemplatedApp;
  socket: us_listen_socket;
  port: number;
  key: string;
}

export class Gateway implements ForwardHost {
  state: GatewayState;
  readonly registry = new UpstreamRegistry();
  readonly health: HealthChecker;
  readonly ws: WebSocketProxy;
  inflight = 0;
  draining = false;
  private listener: Listener | undefined;
  private readonly oldListeners: Listener[] = [];
  private stages: readonly Stage[];
  private readonly recorders: Recorder[];
  private readonly logger: Logger;
  private collecting: string[] = [];
  private collectingBytes = 0;
  private drained: (() => void) | null = null;

  constructor(config: CageConfig, opts: GatewayOptions) {
    loadUws();
    this.logger = opts.logger;
    this.recorders = opts.recorders;
    this.stages = opts.stages ?? [];
    this.auditor = opts.auditor ?? new ExchangeAuditor(null, config);
    this.pq = opts.pq ?? null;
    this.state = new GatewayState(config, this.registry, this.stages);
    this.health = new HealthChecker(this.logger);
    this.health.update(this.state.routes);
    this.ws = new WebSocketProxy(this, this.logger);
  }

  /** Audit records of exchanges (a no-op auditor when the cage has no log). */
  auditor: ExchangeAuditor;
  readonly pq: PqFront | null;

  /** The port actually bound (useful with port 0). */
  get port(): number {
    return this.listener?.port ?? 0;
  }

  async listen(): Promise<void> {
    this.listener = await this.bind(this.state.config);
  }

  /** Replace the pipeline stages (later issues register identify/limit/decide/open here). */
  setStages(stages: readonly Stage[]): void {
    this.stages = stages;
    this.apply(this.state.config);
  }

  /** Swap in a new config: new routes take new requests; in-flight ones finish on the old. */
  async reload(config: CageConfig, stages?: readonly Stage[]): Promise<void> {
    const key = listenerKey(config);
    const prevStages = this.stages;
    if (stages !== undefined) this.stages = stages;
    if (this.listener !== undefined && this.listener.key !== key) {
      let next: Listener;
      try {
        next = await this.bind(config); // throws before anything changes when it cannot bind
      } catch (err) {
        this.stages = prevStages;
        throw err;
      }
      // Read the listener after the await: a concurrent reload may have replaced it meanwhile.
      const old = this.listener;
      this.apply(config);
      this.listener = next;
      if (old !== undefined) this.closeListener(old);
      return;
    }
    this.apply(config);
  }

  private apply(config: CageConfig): void {
    const prev = this.state;
    this.state = new GatewayState(config, this.registry, this.stages);
    this.health.update(this.state.routes);
    void Promise.all(this.registry.release(prev.upstreamRefs()));
  }

  private bind(config: CageConfig): Promise<Listener> {
    const uws = loadUws();
    let app: TemplatedApp;
    if (config.tls !== undefined) {
      checkTls(config.tls.cert, config.tls.key);
      app = uws.SSLApp({ cert_file_name: config.tls.cert, key_file_name: config.tls.key });
    } else {
      app = uws.App();
    }
    app.ws('/*', this.ws.behavior());
    app.any('/*', this.onRequest);
    const { host, port } = config.listen;
    return new Promise((resolve, reject) => {
      // LIBUS_LISTEN_EXCLUSIVE_PORT (1): uWS otherwise sets SO_REUSEPORT, and a second cage (or
      // anything else using SO_REUSEPORT) on the same address would silently share the port and
      // take half the connections instead of failing. The typings lack this overload.
      (app.listen as unknown as (h: string, p: number, options: number, cb: (s: us_listen_socket | false) => void) => void)(host, port, 1, (socket) => {
        if (socket === false) {
          reject(new CageError({ code: 'GW_LISTEN_FAILED', message: `cannot listen on ${host}:${port} (address in use or not permitted)` }));
          return;
        }
        resolve({ app, socket, port: uws.us_socket_local_port(socket as never), key: listenerKey(config) });
      });
    });
  }

  private closeListener(l: Listener): void {
    loadUws().us_listen_socket_close(l.socket);
    this.oldListeners.push(l);
  }

  /** Stop accepting; resolves when in-flight exchanges are done or after `graceMs`. */
  async drain(graceMs: number): Promise<boolean> {
    this.draining = true;
    if (this.listener !== undefined) this.closeListener(this.listener);
    this.listener = undefined;
    this.health.stop();
    this.ws.closeAll(1001, 'cage shutting down');
    if (this.inflight === 0) return true;
    let timer: NodeJS.Timeout | undefined;
    const done = await Promise.race([
      new Promise<boolean>((r) => (this.drained = () => r(true))),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(false), graceMs))),
    ]);
    clearTimeout(timer);
    return done;
  }

  async close(): Promise<void> {
    if (this.listener !== undefined) this.closeListener(this.listener);
    this.listener = undefined;
    this.health.stop();
    this.ws.closeAll(1001, 'cage shutting down');
    await this.registry.destroyAll();
  }

  // ---- the hot path -------------------------------------------------------------------------

  /** How often the fields that decide routing and body framing appeared (counted while collecting). */
  private hostFields = 0;
  private framingFields = 0;
  private codingFields = 0;

  private readonly collectHeader = (k: string, v: string): void => {
    this.collecting.push(k, v);
    this.collectingBytes += k.length + v.length + 4;
    if (k === 'host') this.hostFields++;
    else if (k === 'content-length') this.framingFields++;
    else if (k === 'transfer-encoding') {
      this.framingFields++;
      this.codingFields++;
    }
  };

  private readonly onRequest = (res: HttpResponse, req: HttpRequest): void => {
    const state = this.state;
    const ex = new Exchange();
    ex.startedAt = performance.now();
    ex.time = Date.now();
    this.inflight++;
    ex.method = req.getCaseSensitiveMethod();
    const url = req.getUrl();
    const q = req.getQuery();
    ex.path = url;
    ex.target = q === undefined ? url : `${url}?${q}`;
    ex.scheme = state.config.tls === undefined ? 'http' : 'https';
    this.collecting = ex.headers;
    this.collectingBytes = ex.method.length + ex.target.length + 12;
    this.hostFields = this.framingFields = this.codingFields = 0;
    req.forEach(this.collectHeader);
    const hostFields = this.hostFields;
    const framingFields = this.framingFields;
    const chunked = this.codingFields !== 0;
    ex.remoteAddress = canonicalAddress(Buffer.from(res.getRemoteAddressAsText()).toString('latin1'));
    ex.audit = state.auditDefault;
    const rid = ex.header('x-request-id');
    ex.id = rid !== undefined && REQUEST_ID_RE.test(rid) ? rid : randomUUID();
    ex.host = ex.header('host') ?? '';

    if (this.collectingBytes > state.config.maxHeaderBytes) {
      return this.reject(res, ex, 'GW_HEADERS_TOO_LARGE', `request headers exceed ${state.config.maxHeaderBytes} bytes`);
    }
    // Smuggling defences (RFC 9112 §3.2, §6.1, §6.3): one Host; at most one framing field, and a
    // Transfer-Encoding only when it is exactly `chunked` (the cage re-frames the body for the
    // upstream, so a coding it would drop, or two framings read two ways, never get through).
    if (hostFields > 1) return this.reject(res, ex, 'GW_BAD_REQUEST', 'more than one Host header');
    if (framingFields > 1) return this.reject(res, ex, 'GW_BAD_REQUEST', 'conflicting or repeated Content-Length / Transfer-Encoding');
    if (chunked && !isChunked(ex.header('transfer-encoding')!)) return this.reject(res, ex, 'GW_BAD_REQUEST', 'unsupported Transfer-Encoding (only chunked)');
    if (ex.host === '' || url.charCodeAt(0) !== 47 /* / */) {
      return this.reject(res, ex, 'GW_BAD_REQUEST', ex.host === '' ? 'missing Host header' : 'request target must be an absolute path');
    }
    if (ex.method === 'CONNECT') return this.reject(res, ex, 'GW_BAD_REQUEST', 'CONNECT is not supported by a reverse proxy');
    if (hasDotSegment(url)) return this.reject(res, ex, 'GW_BAD_REQUEST', 'dot-segments (/./, /../, or %2e forms) are not allowed in the path');
    const pq = this.pq;
    if (pq !== null && url === pq.keysPath && ex.method === 'GET' && framingFields === 0) {
      ex.route = 'pq-keys';
      ex.audit = 0;
      pq.serveKeys(res, ex);
      return this.finish(ex);
    }
    const route = state.router.match(ex.host, url);
    if (route === undefined) return this.reject(res, ex, 'GW_NO_ROUTE', `no route for ${ex.host}${url}`);
    if (pq !== null && ex.method === 'POST' && isEncapsulatedRequest(ex.header('content-type'))) {
      ex.route = route.name;
      return pq.handle(this, res, ex, state, isTrusted(state.trusted, ex.remoteAddress));
    }
    if (route.config.requirePq) {
      ex.route = route.name;
      ex.audit = this.auditor.enabled ? route.auditMode : 0;
      return this.reject(res, ex, 'PQ_REQUIRED', `route ${route.name} only accepts post-quantum envelopes (POST ${MEDIA_TYPE_OHTTP_REQUEST}); see ${pq?.keysPath ?? '/.well-known/ohttp-keys'}`);
    }
    ex.route = route.name;
    ex.audit = this.auditor.enabled ? route.auditMode : 0;

    const cl = framingFields !== 0 && !chunked ? ex.header('content-length') : undefined;
    let length = 0;
    if (cl !== undefined) {
      if (!CONTENT_LENGTH_RE.test(cl)) return this.reject(res, ex, 'GW_BAD_REQUEST', 'invalid Content-Length');
      length = Number(cl);
      if (length > route.config.maxBodyBytes) {
        return this.reject(res, ex, 'GW_BODY_TOO_LARGE', `request body of ${length} bytes exceeds ${route.config.maxBodyBytes}`);
      }
    }
    const body = length > 0 || chunked ? new RequestBody(res, ex, route.config.maxBodyBytes) : null;
    ex.body = body;
    const pr = new ProxyRequest(this, res, ex, route, body);
    res.onAborted(() => {
      body?.abortPeek();
      pr.clientAborted();
    });
    const trusted = isTrusted(state.trusted, ex.remoteAddress);
    if (state.stages.length === 0) {
      pr.forward(buildUpstreamHeaders(ex, trusted, route.config.requestHeaders));
      return;
    }
    runStages(
      state.stages,
      ex,
      0,
      (denied) => {
        if (ex.aborted) return this.finish(ex);
        if (denied === undefined) return pr.forward(buildUpstreamHeaders(ex, trusted, route.config.requestHeaders));
        if (body !== null && !body.readableEnded) return this.answerAndClose(res, ex, denied);
        this.sendError(res, ex, denied, false);
        this.finish(ex);
      },
      (err) => {
        this.logger.error({ err, request_id: ex.id }, 'pipeline stage failed');
        if (ex.aborted) return this.finish(ex);
        const internal = new CageError({ code: 'GW_INTERNAL', message: 'internal error in the request pipeline' });
        if (body !== null) return this.answerAndClose(res, ex, internal);
        this.sendError(res, ex, internal, false);
        this.finish(ex);
      },
    );
  };

  /** Answer before anything was forwarded; closes the connection when a body may follow. */
  private reject(res: HttpResponse, ex: Exchange, code: CageError['code'], message: string): void {
    const err = new CageError({ code, message });
    if (code !== 'GW_NO_ROUTE' || ex.header('content-length') !== undefined || ex.header('transfer-encoding') !== undefined) {
      res.onAborted(() => {
        ex.aborted = true;
      });
      return this.answerAndClose(res, ex, err);
    }
    this.sendError(res, ex, err, false);
    this.finish(ex);
  }

  /**
   * Answer with an error and close the connection. uWS 20.30 ignores `closeConnection` on an
   * answer written while it is still parsing the request's read (inside onRequest): it goes on to
   * dispatch whatever follows in the same read, such as a request smuggled behind a bad
   * Content-Length, and leaves the socket open. Answered on the next turn instead, uWS closes the
   * connection at once when another request is queued behind this one (it refuses pipelining
   * while an answer is pending), else right after the answer. `res.onAborted` must be set.
   */
  private answerAndClose(res: HttpResponse, ex: Exchange, err: CageError): void {
    ex.status = err.status;
    ex.errorCode = err.code;
    setImmediate(() => {
      if (!ex.aborted) this.sendError(res, ex, err, true);
      this.finish(ex);
    });
  }

  sendError(res: HttpResponse, ex: Exchange, err: CageError, closeConnection: boolean): void {
    ex.status = err.status;
    ex.errorCode = err.code;
    const body = errorBody(err.code, err.message, ex.id);
    // What the client gets is this body, whatever the app may have sent before (a withheld answer).
    ex.bytesOut = Buffer.byteLength(body);
    // The cage's own answer is the response side of the record (a reserved slot, if the app's
    // head had already been accounted for, is filled when the exchange finishes).
    const index = ex.audit === 0 ? -1 : ex.auditIndex >= 0 ? ex.auditIndex : this.auditor.complete(ex, sha256(body));
    res.cork(() => {
      res.writeStatus(statusLine(err.status));
      res.writeHeader('content-type', 'application/json');
      res.writeHeader('cache-control', 'no-store');
      res.writeHeader('x-request-id', ex.id);
      if (index >= 0) res.writeHeader('cage-receipt', this.auditor.receipt(index));
      const extra = ex.extraHeaders;
      if (extra !== null) for (let i = 0; i < extra.length; i += 2) res.writeHeader(extra[i]!, extra[i + 1]!);
      res.end(body, closeConnection);
    });
  }

  // ---- audit hooks for the forwarder (ForwardHost) ----

  auditComplete(ex: Exchange, bodyDigest: Buffer): number {
    return this.auditor.complete(ex, bodyDigest);
  }

  auditReserve(ex: Exchange): number {
    return this.auditor.reserve(ex);
  }

  auditDurable(index: number): Promise<void> {
    return this.auditor.durable(index);
  }

  receipt(index: number): string {
    return this.auditor.receipt(index);
  }

  verifyOrigin(ex: Exchange, key: string, bodyDigest: Buffer): boolean {
    return this.auditor.verifyOrigin(ex, key, bodyDigest);
  }

  finish(ex: Exchange): void {
    if (ex.endedAt !== 0) return;
    ex.endedAt = performance.now();
    if (ex.status === 0) ex.status = 499; // client closed before any answer (nginx's convention)
    if (ex.audit !== 0) this.auditor.finish(ex);
    this.record(ex);
    if (--this.inflight === 0 && this.drained !== null) this.drained();
  }

  record(ex: Exchange): void {
    for (const r of this.recorders) {
      try {
        r.record(ex);
      } catch (err) {
        this.logger.error({ err }, 'recorder failed');
      }
    }
  }
}

function sha256(text: string): Buffer {
  return hash('sha256', text, 'buffer');
}

function isChunked(te: string): boolean {
  return te === 'chunked' || te.trim().toLowerCase() === 'chunked';
}

function listenerKey(c: CageConfig): string {
  return `${c.listen.host}:${c.listen.port}|${c.tls?.cert ?? ''}|${c.tls?.key ?? ''}`;
}

/** uWS fails opaquely on bad TLS files: check them with Node's TLS first. */
function checkTls(certFile: string, keyFile: string): void {
  try {
    createSecureContext({ cert: readFileSync(certFile), key: readFileSync(keyFile) });
  } catch (err) {
    throw new CageError({ code: 'GW_TLS_INVALID', message: `TLS cert/key unusable (${certFile}, ${keyFile}): ${(err as Error).message}`, cause: err });
  }
}
