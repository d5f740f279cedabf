// Child process of the idle-connection test (bench-proxy.ts): opens COUNT keep-alive TCP
// connections to HOST:PORT, sends one `GET PATH HTTP/1.1` on each and reads the response, then
// keeps them all open and idle. Speaks JSON lines on stdout; reads commands on stdin:
//   -> {"event":"ready","open":N,"failed":F,"ms":T}   once every connection is set up
//   <- "status"  -> {"event":"status","open":N,"closedByPeer":C}
//   <- "close" or end of stdin: closes everything and exits. Exits by itself after --max-life.
//
//   node --import tsx loadtest/idle-conns.ts --port 18083 --count 10000 [--concurrency 256]

import { connect, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string' },
    path: { type: 'string', default: '/' },
    count: { type: 'string', default: '10000' },
    concurrency: { type: 'string', default: '256' },
    timeout: { type: 'string', default: '10000' },
    'max-life': { type: 'string', default: '300000' },
  },
});
if (!values.port) throw new Error('--port is required');
const host = values.host;
const port = Number(values.port);
const count = Number(values.count);
const timeoutMs = Number(values.timeout);
const request = Buffer.from(`GET ${values.path} HTTP/1.1\r\nHost: ${host}:${port}\r\nConnection: keep-alive\r\n\r\n`, 'latin1');

const sockets = new Set<Socket>();
let closedByPeer = 0;
const errors = new Map<string, number>();

function emit(event: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(event)}\n`);
}

/** True once `text` holds one complete response (Content-Length or chunked framing). */
function complete(text: string): boolean {
  const headEnd = text.indexOf('\r\n\r\n');
  if (headEnd < 0) return false;
  const head = text.slice(0, headEnd).toLowerCase();
  const length = /\r\ncontent-length:\s*(\d+)/.exec(head);
  if (length) return text.length - headEnd - 4 >= Number(length[1]);
  if (/\r\ntransfer-encoding:[^\r]*chunked/.test(head)) return text.endsWith('0\r\n\r\n');
  return true; // no body (e.g. 204/304)
}

/** Opens one connection and completes one request on it; resolves false on any failure. */
function openOne(): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    let received = '';
    let settled = false;
    const finish = (ok: boolean, why?: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (ok) {
        sockets.add(socket);
      } else {
        if (why) errors.set(why, (errors.get(why) ?? 0) + 1);
        socket.destroy();
      }
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false, 'timeout'), timeoutMs);
    socket.setNoDelay(true);
    socket.on('connect', () => socket.write(request));
    socket.on('data', (chunk) => {
      if (settled) return; // nothing more is expected on an idle connection
      received += chunk.toString('latin1');
      if (complete(received)) {
        const status = Number(received.slice(9, 12));
        finish(status >= 200 && status < 400, `status ${status}`);
      }
    });
    socket.on('error', (err: NodeJS.ErrnoException) => finish(false, err.code ?? err.message));
    socket.on('close', () => {
      if (sockets.delete(socket)) closedByPeer += 1;
      finish(false, 'closed before the response');
    });
  });
}

async function main(): Promise<void> {
  const started = performance.now();
  let next = 0;
  let failed = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      next += 1;
      if (!(await openOne())) failed += 1;
    }
  };
  await Promise.all(Array.from({ length: Math.min(Number(values.concurrency), count) }, worker));
  emit({
    event: 'ready',
    open: sockets.size,
    failed,
    ms: Math.round(performance.now() - started),
    errors: Object.fromEntries(errors),
  });
}

const shutdown = (): void => {
  for (const socket of sockets) socket.destroy();
  process.exit(0);
};
createInterface({ input: process.stdin }).on('line', (line) => {
  if (line.trim() === 'status') emit({ event: 'status', open: sockets.size, closedByPeer });
  if (line.trim() === 'close') shutdown();
}).on('close', shutdown);
setTimeout(shutdown, Number(values['max-life'])).unref();
process.on('SIGTERM', shutdown);

main().catch((err: unknown) => {
  emit({ event: 'error', message: err instanceof Error ? err.message : String(err) });
  process.exit(1);
});
