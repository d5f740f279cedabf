/**
 * WebSocket pass-through (RFC 6455). uWS answers the client's upgrade only after the upstream
 * accepted its own handshake (opened with the `ws` client), so the client sees the upstream's
 * subprotocol choice, or a 502 JSON error when the upstream refuses. Text and binary frames,
 * pings from the upstream (the client's pong goes back), and close codes pass both ways; the
 * cage answers the client's pings itself (uWS does) and forwards them upstream too.
 * Backpressure: the upstream socket is paused while the client's send buffer is above 1 MiB.
 * Open connections belong to no config: a reload leaves them untouched.
 */
import type { Logger } from 'pino';
import type { HttpRequest, HttpResponse, WebSocket, WebSocketBehavior, us_socket_context_t } from 'uWebSockets.js';
import { WebSocket as WsClient } from 'ws';
import { CageError } from '../core/errors.js';
import { Exchange } from './exchange.js';
import { buildUpstreamHeaders, isTrusted } from './headers.js';
import type { GatewayState } from './state.js';

const HIGH_WATER = 1024 * 1024;
const MAX_PAYLOAD = 16 * 1024 * 1024;
/** Request fields the `ws` client sets itself for its own handshake. */
const WS_HANDSHAKE = new Set(['sec-websocket-key', 'sec-websocket-version', 'sec-websocket-extensions', 'sec-websocket-protocol', 'host']);

export interface WebSocketHost {
  readonly state: GatewayState;
  sendError(res: HttpResponse, ex: Exchange, err: CageError, closeConnection: boolean): void;
  /** Record a finished exchange (not counted as an in-flight HTTP request). */
  record(ex: Exchange): void;
}

interface Link {
  ex: Exchange;
  upstream: WsClient;
  client: WebSocket<Link> | null;
  closed: boolean;
  paused: boolean;
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

  behavior(): WebSocketBehavior<Link> {
    return {
      maxPayloadLength: MAX_PAYLOAD,
      maxBackpressure: 64 * 1024 * 1024,
      closeOnBackpressureLimit: 1,
      idleTimeout: 0,
      sendPingsAutomatically: false,
      upgrade: (res, req, context) => this.onUpgrade(res, req, context),
      open: (ws) => {
        const link = ws.getUserData();
        link.client = ws;
        this.open.add(link);
        if (link.closed) ws.end(1001, 'upstream closed');
      },
      message: (ws, message, isBinary) => {
        const link = ws.getUserData();
        if (link.closed) return;
        const data = Buffer.copyBytesFrom(new Uint8Array(message));
        link.ex.bytesIn += data.length;
        link.upstream.send(data, { binary: isBinary });
      },
      drain: (ws) => {
        const link = ws.getUserData();
        if (link.paused && ws.getBufferedAmount() < HIGH_WATER / 2) {
          link.paused = false;
          link.upstream.resume();
        }
      },
      ping: (ws, message) => {
        const link = ws.getUserData();
        if (!link.closed && link.upstream.readyState === WsClient.OPEN) link.upstream.ping(Buffer.copyBytesFrom(new Uint8Array(message)));
      },
      pong: (ws, message) => {
        const link = ws.getUserData();
        if (!link.closed && link.upstream.readyState === WsClient.OPEN) link.upstream.pong(Buffer.copyBytesFrom(new Uint8Array(message)));
      },
      close: (ws, code, message) => {
        const link = ws.getUserData();
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
    const state = this.host.state;
    const ex = new Exchange();
    ex.startedAt = performance.now();
    ex.method = 'GET';
    const url = req.getUrl();
    const q = req.getQuery();
    ex.path = url;
    ex.target = q === undefined ? url : `${url}?${q}`;
    ex.scheme = state.config.tls === undefined ? 'http' : 'https';
    req.forEach((k, v) => {
      ex.headers.push(k, v);
    });
    ex.remoteAddress = Buffer.from(res.getRemoteAddressAsText()).toString('latin1');
    ex.id = ex.header('x-request-id') ?? crypto.randomUUID();
    ex.host = ex.header('host') ?? '';
    const key = ex.header('sec-websocket-key') ?? '';
    const protocols = (ex.header('sec-websocket-protocol') ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '');

    const route = state.router.match(ex.host, url);
    const fail = (err: CageError) => {
      this.host.sendError(res, ex, err, true);
      ex.endedAt = performance.now();
      this.host.record(ex);
    };
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
    const target = `${up.origin.replace(/^http/, 'ws')}${ex.target}`;
    const upstream = new WsClient(target, protocols, {
      headers,
      perMessageDeflate: false,
      handshakeTimeout: route.config.connectTimeoutMs,
      maxPayload: MAX_PAYLOAD,
      autoPong: false,
      followRedirects: false,
    });
    const link: Link = { ex, upstream, client: null, closed: false, paused: false };
    let aborted = false;
    res.onAborted(() => {
      aborted = true;
      upstream.terminate();
    });
    upstream.once('unexpected-response', (_req, upRes) => {
      upRes.resume();
      upstream.terminate();
      if (!aborted) {
        aborted = true;
        fail(new CageError({ code: 'GW_WS_UPSTREAM_FAILED', message: `upstream ${up.label} refused the WebSocket handshake with status ${upRes.statusCode}` }));
      }
    });
    upstream.on('error', (err) => {
      if (!aborted && link.client === null && !link.closed) {
        aborted = true;
        fail(new CageError({ code: 'GW_WS_UPSTREAM_FAILED', message: `WebSocket to upstream ${up.label} failed: ${(err as NodeJS.ErrnoException).code ?? err.message}` }));
      } else {
        this.logger.debug({ err, request_id: ex.id }, 'upstream websocket error');
      }
    });
    upstream.once('open', () => {
      if (aborted) {
        upstream.close(1001);
        return;
      }
      ex.upstreamHeadersAt = performance.now();
      res.cork(() => res.upgrade(link, key, upstream.protocol, '', context));
    });
    upstream.on('message', (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => {
      const ws = link.client;
      if (ws === null || link.closed) return;
      const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
      ex.bytesOut += buf.length;
      ws.send(buf, isBinary);
      if (!link.paused && ws.getBufferedAmount() > HIGH_WATER) {
        link.paused = true;
        upstream.pause();
      }
    });
    upstream.on('ping', (data: Buffer) => {
      if (link.client !== null && !link.closed) link.client.ping(data);
    });
    upstream.on('close', (code: number, reason: Buffer) => {
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
