/**
 * WebSocket fixtures: an upstream (`ws` WebSocketServer on a node:http server) that records each
 * handshake and hands the test the server-side socket, a client that connects through the cage,
 * and an `Inbox` that records everything a socket receives (messages, pings, pongs, close) from
 * the moment it exists, so no event is lost between awaits.
 */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { readAll, type Fixtures } from './servers.js';
import { waitFor } from './e2e.js';

export interface Received {
  data: Buffer;
  isBinary: boolean;
}

/** Everything one socket received, in order. */
export class Inbox {
  readonly messages: Received[] = [];
  readonly pings: Buffer[] = [];
  readonly pongs: Buffer[] = [];
  closed: { code: number; reason: string } | undefined;
  private taken = 0;

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => {
      const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
      this.messages.push({ data: buf, isBinary });
    });
    ws.on('ping', (d: Buffer) => this.pings.push(d));
    ws.on('pong', (d: Buffer) => this.pongs.push(d));
    ws.on('close', (code: number, reason: Buffer) => (this.closed = { code, reason: reason.toString('utf8') }));
    ws.on('error', () => undefined);
  }

  /** The next message not yet taken. */
  next(what = 'a WebSocket message'): Promise<Received> {
    return waitFor(() => (this.messages.length > this.taken ? this.messages[this.taken++] : undefined), what);
  }

  waitClosed(): Promise<{ code: number; reason: string }> {
    return waitFor(() => this.closed, 'the WebSocket to close');
  }
}

export interface UpstreamConnection {
  ws: WebSocket;
  inbox: Inbox;
  /** The handshake request's headers as the upstream received them. */
  headers: IncomingHttpHeaders;
  path: string;
}

export interface WsUpstream {
  server: Server;
  wss: WebSocketServer;
  port: number;
  url: string;
  connections: UpstreamConnection[];
  /** The first connection not yet taken whose request target is `path`. */
  nextConnection(path: string): Promise<UpstreamConnection>;
  close(): Promise<void>;
}

export interface WsUpstreamOptions {
  /** Subprotocol choice (ws's handleProtocols); default: the first offered, or none. */
  handleProtocols?: (protocols: Set<string>, req: IncomingMessage) => string | false;
  /** Status to refuse the handshake with (e.g. 401); default accept. */
  refuseWith?: number;
  /** Echo every message back (after recording it). */
  echo?: boolean;
}

export async function startWsUpstream(opts: WsUpstreamOptions = {}, fx?: Fixtures): Promise<WsUpstream> {
  const server = createServer((_req, res) => {
    res.writeHead(426, { 'content-type': 'text/plain' });
    res.end('websocket only');
  });
  const wss = new WebSocketServer({
    server,
    perMessageDeflate: false,
    maxPayload: 64 * 1024 * 1024,
    handleProtocols: opts.handleProtocols ?? ((p) => (p.size > 0 ? [...p][0]! : false)),
    verifyClient: opts.refuseWith === undefined ? undefined : (_info, cb) => cb(false, opts.refuseWith, 'refused by test upstream'),
  });
  const connections: UpstreamConnection[] = [];
  const taken = new Set<UpstreamConnection>();
  wss.on('connection', (ws, req) => {
    const inbox = new Inbox(ws);
    if (opts.echo === true) ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    connections.push({ ws, inbox, headers: req.headers, path: req.url ?? '' });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const up: WsUpstream = {
    server,
    wss,
    port,
    url: `http://127.0.0.1:${port}`,
    connections,
    nextConnection: (path) =>
      waitFor(() => {
        const c = connections.find((x) => x.path === path && !taken.has(x));
        if (c !== undefined) taken.add(c);
        return c;
      }, `an upstream WebSocket connection to ${path}`),
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of wss.clients) c.terminate();
        wss.close();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
  fx?.add(up.close);
  return up;
}

export interface ConnectOptions {
  protocols?: string[];
  headers?: Record<string, string>;
}

/** Opens a `ws` client whose request target is `path` byte for byte (ws would normalize `..`). */
function rawPathClient(port: number, path: string, opts: ConnectOptions): WebSocket {
  return new WebSocket(`ws://127.0.0.1:${port}/`, opts.protocols ?? [], {
    headers: opts.headers,
    perMessageDeflate: false,
    maxPayload: 64 * 1024 * 1024,
    finishRequest: (req) => {
      req.path = path;
      req.end();
    },
  });
}

/** A client WebSocket through the cage; rejects when the handshake fails. */
export function connectWs(port: number, path: string, opts: ConnectOptions = {}, fx?: Fixtures): Promise<{ ws: WebSocket; inbox: Inbox }> {
  const ws = rawPathClient(port, path, opts);
  const inbox = new Inbox(ws);
  fx?.add(async () => ws.terminate());
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve({ ws, inbox }));
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => {
      reject(new Error(`handshake refused with ${res.statusCode}`));
      res.resume();
      ws.terminate();
    });
  });
}

/** Attempts a handshake that should be refused: resolves with the HTTP answer. */
export function refusedHandshake(port: number, path: string, opts: ConnectOptions = {}): Promise<{ status: number; headers: IncomingHttpHeaders; body: Buffer }> {
  const ws = rawPathClient(port, path, opts);
  ws.on('error', () => undefined);
  return new Promise((resolve, reject) => {
    ws.once('open', () => {
      ws.terminate();
      reject(new Error('handshake unexpectedly accepted'));
    });
    ws.once('unexpected-response', (_req, res) => {
      readAll(res).then((body) => {
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
        ws.terminate();
      }, reject);
    });
  });
}
