/**
 * The built-in echo app that `cage reverse-proxy` fronts when no `--to` is given, so a newcomer
 * sees the cage work at once: it answers every request with a JSON description of what it
 * received (method, path, headers, body size and SHA-256), streams Server-Sent Events at
 * `/sse`, and echoes WebSocket messages.
 */
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';

export interface EchoApp {
  url: string;
  close(): Promise<void>;
}

export function startEchoApp(host = '127.0.0.1', port = 0): Promise<EchoApp> {
  const server: Server = createServer((req, res) => {
    if (req.url === '/sse') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      let n = 0;
      const timer = setInterval(() => {
        res.write(`id: ${++n}\ndata: tick ${n}\n\n`);
        if (n >= 10) {
          clearInterval(timer);
          res.end();
        }
      }, 500);
      req.on('close', () => clearInterval(timer));
      return;
    }
    const hash = createHash('sha256');
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      hash.update(c);
    });
    req.on('end', () => {
      const body = JSON.stringify(
        { app: 'http-cage echo', method: req.method, url: req.url, headers: req.headers, body: { bytes: size, sha256: hash.digest('hex') } },
        null,
        2,
      );
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(`${body}\n`);
    });
  });
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })));
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      const addr = server.address() as AddressInfo;
      resolve({
        url: `http://${host}:${addr.port}`,
        close: () =>
          new Promise((r) => {
            for (const c of wss.clients) c.terminate();
            wss.close();
            server.close(() => r());
            server.closeAllConnections();
          }),
      });
    });
  });
}
