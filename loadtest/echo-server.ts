// A small upstream for load tests: answers every HTTP request with a fixed body (1 KiB by
// default) and echoes every WebSocket message back (any path). Used by bench-proxy.ts as the
// cage's upstream for the websocket scenario, by the mocha test, and by hand:
//
//   node --import tsx loadtest/echo-server.ts --port 18084 [--request-id] [--status 200]
//
// --request-id makes it add its own x-request-id (only for running scenarios without a proxy;
// behind the cage leave it off, so that the check proves the cage sets the header).

import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { WebSocketServer } from 'ws';

export interface EchoServerOptions {
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  status?: number;
  bodyBytes?: number;
  /** Add an x-request-id header to HTTP responses. */
  requestId?: boolean;
}

export interface EchoServer {
  url: string;
  port: number;
  server: Server;
  close(): Promise<void>;
}

export async function startEchoServer(options: EchoServerOptions = {}): Promise<EchoServer> {
  const body = Buffer.alloc(options.bodyBytes ?? 1024, 'a');
  const status = options.status ?? 200;
  const server = createServer((req, res) => {
    req.resume();
    const headers: Record<string, string | number> = { 'content-type': 'text/plain', 'content-length': body.length };
    if (options.requestId) headers['x-request-id'] = randomUUID();
    res.writeHead(status, headers).end(body);
  });
  server.keepAliveTimeout = 65_000;
  const wss = new WebSocketServer({ server, perMessageDeflate: false, maxPayload: 1 << 20 });
  wss.on('connection', (socket) => {
    socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary }));
    socket.on('error', () => socket.terminate());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${options.host ?? '127.0.0.1'}:${port}`,
    port,
    server,
    close: async () => {
      for (const client of wss.clients) client.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '18084' },
      status: { type: 'string', default: '200' },
      'body-bytes': { type: 'string', default: '1024' },
      'request-id': { type: 'boolean', default: false },
    },
  });
  const echo = await startEchoServer({
    host: values.host,
    port: Number(values.port),
    status: Number(values.status),
    bodyBytes: Number(values['body-bytes']),
    requestId: values['request-id'],
  });
  console.log(`echo server listening on ${echo.url}`);
  const stop = (): void => {
    void echo.close().then(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
