// Component floors for bench:proxy: the least a proxy built on the cage's own components can cost.
// Not a product, a measuring stick: no routing, no header rules, no errors worth the name, no
// streaming, no limits. What the cage adds on top is its cost; what the floor costs is the price of
// the components themselves.
//
//   node loadtest/bench/floor.mjs undici PORT UPSTREAM_PORT   uWS front + undici Pool dispatch()
//   node loadtest/bench/floor.mjs raw    PORT UPSTREAM_PORT   uWS front + a bare net.Socket client
//                                                             (Content-Length bodies only)
import net from 'node:net';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const uws = require('uWebSockets.js');
const [mode, portArg, upstreamArg] = process.argv.slice(2);
const port = Number(portArg);
const upstreamPort = Number(upstreamArg);
if (!['undici', 'raw'].includes(mode) || !(port > 0) || !(upstreamPort > 0)) {
  console.error('usage: floor.mjs undici|raw PORT UPSTREAM_PORT');
  process.exit(2);
}

function undiciForward() {
  const { Pool } = require('undici');
  const pool = new Pool(`http://127.0.0.1:${upstreamPort}`, { connections: 512, pipelining: 1 });
  return (res, method, url, headers, isAborted) => {
    pool.dispatch(
      { path: url, method, headers },
      {
        onConnect() {},
        onHeaders(status) {
          this.status = status;
          return true;
        },
        onData(chunk) {
          (this.chunks ??= []).push(Buffer.from(chunk));
          return true;
        },
        onComplete() {
          if (isAborted()) return;
          const body = this.chunks ? Buffer.concat(this.chunks) : '';
          res.cork(() => res.writeStatus(`${this.status} OK`).writeHeader('content-type', 'text/plain').end(body));
        },
        onError() {
          if (!isAborted()) res.cork(() => res.writeStatus('502 Bad Gateway').end());
        },
      },
    );
  };
}

function rawForward() {
  const idle = [];
  const connect = () => {
    const s = net.connect(upstreamPort, '127.0.0.1');
    s.setNoDelay(true);
    s.buf = null;
    s.done = null;
    s.on('data', (d) => {
      s.buf = s.buf ? Buffer.concat([s.buf, d]) : d;
      const end = s.buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = s.buf.latin1Slice(0, end);
      const m = /content-length: *(\d+)/i.exec(head);
      const len = m ? Number(m[1]) : 0;
      if (s.buf.length < end + 4 + len) return;
      const body = s.buf.subarray(end + 4, end + 4 + len);
      s.buf = null;
      const done = s.done;
      s.done = null;
      idle.push(s);
      done(head.slice(9, head.indexOf('\r\n')), body);
    });
    s.on('error', () => s.done?.('502 Bad Gateway', ''));
    return s;
  };
  return (res, method, url, headers, isAborted) => {
    let head = `${method} ${url} HTTP/1.1\r\n`;
    for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
    const s = idle.pop() ?? connect();
    s.done = (status, body) => {
      if (!isAborted()) res.cork(() => res.writeStatus(status).writeHeader('content-type', 'text/plain').end(body));
    };
    s.write(`${head}\r\n`, 'latin1');
  };
}

const forward = mode === 'undici' ? undiciForward() : rawForward();
uws
  .App()
  .any('/*', (res, req) => {
    const headers = [];
    req.forEach((k, v) => {
      if (k !== 'connection' && k !== 'keep-alive') headers.push(k, v);
    });
    const q = req.getQuery();
    const url = q ? `${req.getUrl()}?${q}` : req.getUrl();
    let aborted = false;
    res.onAborted(() => {
      aborted = true;
    });
    forward(res, req.getCaseSensitiveMethod(), url, headers, () => aborted);
  })
  .listen('127.0.0.1', port, (ok) => {
    if (!ok) {
      console.error(`floor: cannot listen on ${port}`);
      process.exit(1);
    }
  });
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
