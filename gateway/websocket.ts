/**
 * WebSocket pass-through (RFC 6455). uWS answers the client's upgrade only after the upstream
 * accepted its own handshake (opened with the `ws` client), so the client sees the upstream's
 * subprotocol choice, or a 502 JSON error when the upstream refuses. Text and binary frames,
 * pings from the upstream (the client's pong goes back), and close codes pass both ways; the
 * cage answers the client's pings itself (uWS does) and forwards them upstream too.
 * Backpressure: the upstream socket is paused while the client's send buffer is above 1 MiB.
 * Open connections belong to no config: a reload leaves them untouched.
 *
 * The handshake is client input: the subprotocol list is checked against RFC 6455 §4.1 (tokens,
 * no duplicates) before anything is sent upstream, and the request target goes upstream exactly as
 * the client sent it (no WHATWG URL normalization of `..` or `%2e`, which would let a path the
 * router matched under one prefix reach the upstream as another). Nothing thrown here may escape
 * into uWS: an exception in a uWS handler aborts the process.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import type { HttpRequest, HttpResponse, WebSocket, WebSocketBehavior, us_socket_context_t } from 'uWebSockets.js';
import { WebSocket as WsClient } from 'ws';
import { CageError } from '../core/errors.js';
import { Exchange } from './exchange.js';
import { buildUpstreamHeaders, canonicalAddress, isTrusted } from './headers.js';
import { hasDotSegment } from './router.js';
import type { GatewayState } from './state.js';

const HIGH_WATER = 1024 * 1024;
const MAX_PAYLOAD = 16 * 1024 * 1024;
/** Request fields the `ws` client sets itself for its own handshake (the subprotocol list is re-sent below). */
const WS_HANDSHAKE = new Set(['sec-websocket-key', 'sec-websocket-version', 'sec-websocket-extensions', 'sec-websocket-protocol', 'host']);
/** RFC 6455 §4.1: each subprotocol is an RFC 2616 token. */
const TOKEN_RE = /^[!#$%&'*+\-.0-9A-Z^_`|a-z~]+$/;
/** Same rule as the HTTP listener (gateway.ts): a client's X-Request-Id is kept only when well-formed. */
const REQUEST_ID_RE = /^[A-Za-z0-9._:@/+=-]{1,200}$/;
/** What `http.request` accepts as a path: no controls or spaces. */
const TARGET_RE = /^\/[\x21-\x7e]*$/;
const CONNECT_PHASE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ETIMEDOUT']);

export interface WebSocketHost {
  readonly state: GatewayState;
  sendError(res: HttpResponse, ex: Exchange, err: CageError, closeConnection: boolean): void;
  /** Record a finished exchange (not counted as an in-flight HTTP request). */
  record(ex: Exchange): void;
}

interface Link {
  ex: Exchange;
  upstream: WsClient;
  client: WebSocket<UserData> | null;
  closed: boolean;
  paused: boolean;
}

/**
 * What uWS keeps per socket. uWS copies the properties of the object given to `upgrade()` onto
 * its own object, so the shared state lives one level down: `getUserData().link` is the very
 * Link the upstream side's handlers close over.
 */
interface UserData {
  link: Link;
}

/** One handshake in progress: answered once (error or upgrade) unless the client left first. */
interface Handshake {
  res: HttpResponse;
  ex: Exchange;
  answered: boolean;
  upstream: WsClient | undefined;
}

/** The client's subprotocol list (all header lines), or undefined when malformed. */
export function parseSubprotocols(values: readonly string[]): string[] | undefined {
  const out: string[] = [];
  for (const v of values) {
    for (const part of v.split(',')) {
      const p = part.trim();
      if (!TOKEN_RE.test(p) || out.includes(p)) return undefined;
      out.push(p);
    }
  }
  return out;
}

export class WebSocketProxy {
  private readonly open = new Set<Link>();

  constructor(
    private readonly host: WebSocketHost,
    private readonly logger: Logger,
  ) {}

  get count(): number {
    return this.open.size;
  }

  /** Close every passed-through connection (shutdown). */
  closeAll(code: number, reason: string): void {
    for (const link of this.open) this.closeBoth(link, code, reason);
  }

  behavior(): WebSocketBehavior<UserData> {
    return {
      maxPayloadLength: MAX_PAYLOAD,
      maxBackpressure: 64 * 1024 * 1024,
      closeOnBackpressureLimit: 1,
      idleTimeout: 0,
      sendPingsAutomatically: false,
      upgrade: (res, req, context) => this.onUpgrade(res, req, context),
      open: (ws) => {
        const link = ws.getUserData().link;
        link.client = ws;
        this.open.add(link);
        if (link.closed) ws.end(1001, 'upstream closed');
      },
      message: (ws, message, isBinary) => {
        const link = ws.getUserData().link;
        if (link.closed) return;
        const data = Buffer.copyBytesFrom(new Uint8Array(message));
        link.ex.bytesIn += data.length;
        link.upstream.send(data, { binary: isBinary });
      },
      drain: (ws) => {
        const link = ws.getUserData().link;
        if (link.paused && ws.getBufferedAmount() < HIGH_WATER / 2) {
          link.paused = false;
          link.upstream.resume();
        }
      },
      ping: (ws, message) => {
        const link = ws.getUserData().link;
        if (!link.closed && link.upstream.readyState === WsClient.OPEN) link.upstream.ping(Buffer.copyBytesFrom(new Uint8Array(message)));
      },
      pong: (ws, message) => {
        const link = ws.getUserData().link;
        if (!link.closed && link.upstream.readyState === WsClient.OPEN) link.upstream.pong(Buffer.copyBytesFrom(new Uint8Array(message)));
      },
      close: (ws, code, message) => {
        const link = ws.getUserData().link;
        link.client = null;
        this.open.delete(link);
        if (!link.closed) {
          link.closed = true;
          closeUpstream(link.upstream, code, Buffer.from(message).toString('utf8'));
        }
        link.ex.status = 101;
        link.ex.endedAt = performance.now();
        this.host.record(link.ex);
      },
    };
  }

  private onUpgrade(res: HttpResponse, req: HttpRequest, context: us_socket_context_t): void {
    const h: Handshake = { res, ex: new Exchange(), answered: false, upstream: undefined };
    try {
      this.startUpgrade(h, req, context);
    } catch (err) {
      // Never let an exception reach uWS (it aborts the process).
      this.logger.error({ err, request_id: h.ex.id }, 'websocket upgrade failed');
      this.fail(h, new CageError({ code: 'GW_INTERNAL', message: 'internal error during the WebSocket handshake' }));
    }
  }

  /** Answer a handshake with a JSON error, once, unless the client already went away. */
  private fail(h: Handshake, err: CageError): void {
    if (h.answered) return;
    h.answered = true;
    this.host.sendError(h.res, h.ex, err, true);
    h.ex.endedAt = performance.now();
    this.host.record(h.ex);
  }

  private startUpgrade(h: Handshake, req: HttpRequest, context: us_socket_context_t): void {
    const { res, ex } = h;
    const fail = (err: CageError) => this.fail(h, err);
    const state = this.host.state;
    ex.startedAt = performance.now();
    ex.method = 'GET';
    const url = req.getUrl();
    const q = req.getQuery();
    ex.path = url;
    ex.target = q === undefined ? url : `${url}?${q}`;
    ex.scheme = state.config.tls === undefined ? 'http' : 'https';
    const offered: string[] = [];
    req.forEach((k, v) => {
      ex.headers.push(k, v);
      if (k === 'sec-websocket-protocol') offered.push(v);
    });
    ex.remoteAddress = canonicalAddress(Buffer.from(res.getRemoteAddressAsText()).toString('latin1'));
    const rid = ex.header('x-request-id');
    ex.id = rid !== undefined && REQUEST_ID_RE.test(rid) ? rid : randomUUID();
    ex.host = ex.header('host') ?? '';
    const key = ex.header('sec-websocket-key') ?? '';
    // Every path below answers or upgrades later: uWS requires onAborted before returning.
    res.onAborted(() => {
      h.answered = true;
      h.upstream?.terminate();
    });

    const protocols = parseSubprotocols(offered);
    if (protocols === undefined) return fail(new CageError({ code: 'GW_BAD_REQUEST', message: 'malformed Sec-WebSocket-Protocol (tokens separated by commas, no duplicates)' }));
    if (ex.host === '') return fail(new CageError({ code: 'GW_BAD_REQUEST', message: 'missing Host header' }));
    if (!TARGET_RE.test(ex.target)) return fail(new CageError({ code: 'GW_BAD_REQUEST', message: 'request target must be an absolute path' }));
    // Same rule as plain requests: routing matches the raw prefix, so a path the upstream would
    // resolve elsewhere (/ws/../admin) is refused rather than passed on.
    if (hasDotSegment(url)) return fail(new CageError({ code: 'GW_BAD_REQUEST', message: 'dot-segments (/./, /../, or %2e forms) are not allowed in the path' }));
    const route = state.router.match(ex.host, url);
    if (route === undefined) return fail(new CageError({ code: 'GW_NO_ROUTE', message: `no route for ${ex.host}${url}` }));
    ex.route = route.name;
    if (!route.config.websocket) return fail(new CageError({ code: 'GW_DENIED', message: `route ${route.name} does not allow WebSockets` }));
    const up = route.balancer.pick(Date.now());
    if (up === undefined) return fail(new CageError({ code: 'GW_NO_HEALTHY_UPSTREAM', message: `no healthy upstream for route ${route.name}` }));
    ex.upstream = up.label;

    const flat = buildUpstreamHeaders(ex, isTrusted(state.trusted, ex.remoteAddress), route.config.requestHeaders);
    const headers: Record<string, string> = {};
    for (let i = 0; i < flat.length; i += 2) {
      const n = flat[i]!;
      if (WS_HANDSHAKE.has(n)) continue;
      headers[n] = headers[n] === undefined ? flat[i + 1]! : `${headers[n]}, ${flat[i + 1]!}`;
    }
    headers.host = ex.host;
    // Offered by header rather than through ws's `protocols` argument: ws refuses an upstream
    // that picks none of them, which browsers (and RFC 6455 §4.1) accept. Checked on 'upgrade'.
    if (protocols.length > 0) headers['sec-websocket-protocol'] = protocols.join(', ');
    const target = ex.target;
    const client = new WsClient(`${up.origin.replace(/^http/, 'ws')}/`, [], {
      headers,
      perMessageDeflate: false,
      handshakeTimeout: route.config.connectTimeoutMs,
      maxPayload: MAX_PAYLOAD,
      autoPong: false,
      followRedirects: false,
      // The raw target, not the WHATWG-normalized one ws would send (see the module comment).
      finishRequest: (request) => {
        request.path = target;
        request.end();
      },
    });
    h.upstream = client;
    const link: Link = { ex, upstream: client, client: null, closed: false, paused: false };
    let chosen = '';
    let protocolError = '';
    client.once('upgrade', (upRes: IncomingMessage) => {
      const p = upRes.headers['sec-websocket-protocol'];
      if (p !== undefined) {
        if (!protocols.includes(p)) protocolError = `upstream ${up.label} chose subprotocol ${JSON.stringify(p)}, which the client did not offer`;
        else chosen = p;
        delete upRes.headers['sec-websocket-protocol'];
      }
      if (protocolError !== '') client.terminate();
    });
    client.once('unexpected-response', (_req, upRes) => {
      upRes.resume();
      client.terminate();
      fail(new CageError({ code: 'GW_WS_UPSTREAM_FAILED', message: `upstream ${up.label} refused the WebSocket handshake with status ${upRes.statusCode}` }));
    });
    client.on('error', (err) => {
      if (!h.answered && link.client === null && !link.closed) {
        const code = (err as NodeJS.ErrnoException).code ?? '';
        if (CONNECT_PHASE.has(code)) up.recordFailure(Date.now());
        fail(new CageError({ code: 'GW_WS_UPSTREAM_FAILED', message: protocolError !== '' ? protocolError : `WebSocket to upstream ${up.label} failed: ${code || err.message}` }));
      } else {
        this.logger.debug({ err, request_id: ex.id }, 'upstream websocket error');
      }
    });
    client.once('open', () => {
      if (h.answered) {
        client.close(1001);
        return;
      }
      h.answered = true;
      up.recordSuccess();
      ex.upstreamHeadersAt = performance.now();
      const userData: UserData = { link };
      res.cork(() => res.upgrade(userData, key, chosen, '', context));
    });
    client.on('message', (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => {
      const ws = link.client;
      if (ws === null || link.closed) return;
      const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
      ex.bytesOut += buf.length;
      ws.send(buf, isBinary);
      if (!link.paused && ws.getBufferedAmount() > HIGH_WATER) {
        link.paused = true;
        client.pause();
      }
    });
    client.on('ping', (data: Buffer) => {
      if (link.client !== null && !link.closed) link.client.ping(data);
    });
    client.on('close', (code: number, reason: Buffer) => {
      if (link.closed) return;
      link.closed = true;
      const ws = link.client;
      if (ws === null) return;
      if (code === 1005) ws.end();
      else if (code === 1006 || code < 1000) ws.close();
      else ws.end(code, reason);
    });
  }

  private closeBoth(link: Link, code: number, reason: string): void {
    if (link.closed) return;
    link.closed = true;
    closeUpstream(link.upstream, code, reason);
    link.client?.end(code, reason);
  }
}

/** Close codes 1005/1006 may not be sent on the wire (RFC 6455 §7.4.1). */
function closeUpstream(upstream: WsClient, code: number, reason: string): void {
  if (upstream.readyState === WsClient.CLOSED || upstream.readyState === WsClient.CLOSING) return;
  if (upstream.readyState === WsClient.CONNECTING) {
    upstream.terminate();
    return;
  }
  if (code === 1006) upstream.terminate();
  else if (code === 1005 || code < 1000) upstream.close();
  else upstream.close(code, reason);
}
