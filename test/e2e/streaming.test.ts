/**
 * Streaming through the cage over real sockets: large uploads and downloads with bounded memory
 * (hashed on both sides), backpressure from a slow client to the upstream, Server-Sent Events
 * delivered one by one (proved by a lock-step protocol, not by timing), and the framing of
 * bodiless, chunked and length-delimited responses.
 *
 * Sizes: 1 GiB each way by default (a few seconds here); CAGE_TEST_STREAM_MIB overrides it.
 * Memory is sampled from this process, which holds the client, the cage and the upstream: the
 * bound is on growth during the transfer, far below the body size.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { request as httpRequest, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { RawConnection, rawHeader } from '../helpers/raw.js';
import { Fixtures, request, startCage, startHttpUpstream, type HttpUpstream } from '../helpers/servers.js';
import { waitUntil } from '../helpers/wait.js';

const MIB = 1024 * 1024;
const BIG = Number(process.env.CAGE_TEST_STREAM_MIB ?? 1024) * MIB;
const MAX_RSS_GROWTH = 200 * MIB;

/** A 64 KiB block with a non-trivial pattern; the stream is this block repeated. */
const BLOCK = Buffer.alloc(64 * 1024);
for (let i = 0; i < BLOCK.length; i++) BLOCK[i] = (i * 31 + (i >> 8)) & 0xff;

function expectedHash(size: number): string {
  const h = createHash('sha256');
  for (let sent = 0; sent < size; sent += BLOCK.length) h.update(size - sent >= BLOCK.length ? BLOCK : BLOCK.subarray(0, size - sent));
  return h.digest('hex');
}

/** Samples RSS until stopped; reports the largest growth over the starting value. */
class RssSampler {
  private readonly start = process.memoryUsage().rss;
  private max = this.start;
  private readonly timer = setInterval(() => this.sample(), 25);

  sample(): void {
    const rss = process.memoryUsage().rss;
    if (rss > this.max) this.max = rss;
  }

  stop(): number {
    clearInterval(this.timer);
    this.sample();
    return this.max - this.start;
  }
}

/** Writes `size` bytes of BLOCKs to `out`, honouring backpressure; counts refused writes. */
function pump(out: NodeJS.WritableStream, size: number, onDone: (refused: number) => void): { sent: () => number } {
  let sent = 0;
  let refused = 0;
  const step = () => {
    while (sent < size) {
      const n = Math.min(BLOCK.length, size - sent);
      sent += n;
      if (!out.write(n === BLOCK.length ? BLOCK : BLOCK.subarray(0, n))) {
        refused++;
        out.once('drain', step);
        return;
      }
    }
    onDone(refused);
  };
  step();
  return { sent: () => sent };
}

describe(`e2e: streaming ${BIG / MIB} MiB each way with bounded memory`, function () {
  this.timeout(180_000);
  const fx = new Fixtures();
  let port: number;
  let uploaded: { bytes: number; sha256: string } | undefined;

  before(async function () {
    const up = await startHttpUpstream((req, res) => {
      if (req.method === 'POST') {
        const h = createHash('sha256');
        let n = 0;
        req.on('data', (c: Buffer) => {
          n += c.length;
          h.update(c);
        });
        req.on('end', () => {
          uploaded = { bytes: n, sha256: h.digest('hex') };
          res.end('stored');
        });
        return;
      }
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(BIG) });
      pump(res, BIG, () => res.end());
    }, fx);
    ({ port } = await startCage([{ upstreams: [up.url], max_body_bytes: '4GiB', timeouts: { idle: '60s' } }], {}, fx));
  });
  after(() => fx.closeAll());

  it('uploads the body chunked, byte-exact, without buffering it', async function () {
    // Chunked, not Content-Length: uWS 20.30 refuses a Content-Length of 10 digits or more
    // (≥ 10^9 bytes) by closing the connection (see test/fault/hostile-http.test.ts).
    const want = expectedHash(BIG);
    const rss = new RssSampler();
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port, method: 'POST', path: '/upload', agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode!));
      });
      req.on('error', reject);
      pump(req, BIG, () => req.end());
    });
    const growth = rss.stop();
    assert.equal(status, 200);
    assert.deepEqual(uploaded, { bytes: BIG, sha256: want });
    assert.ok(growth < MAX_RSS_GROWTH, `RSS grew by ${(growth / MIB).toFixed(0)} MiB during a ${BIG / MIB} MiB upload`);
  });

  it('downloads the body with its Content-Length, byte-exact, without buffering it', async function () {
    const want = expectedHash(BIG);
    const rss = new RssSampler();
    const got = await new Promise<{ status: number; length: string | undefined; bytes: number; sha256: string }>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port, path: '/download', agent: false }, (res) => {
        const h = createHash('sha256');
        let n = 0;
        res.on('data', (c: Buffer) => {
          n += c.length;
          h.update(c);
        });
        res.on('end', () => resolve({ status: res.statusCode!, length: res.headers['content-length'], bytes: n, sha256: h.digest('hex') }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
    const growth = rss.stop();
    assert.deepEqual(got, { status: 200, length: String(BIG), bytes: BIG, sha256: want });
    assert.ok(growth < MAX_RSS_GROWTH, `RSS grew by ${(growth / MIB).toFixed(0)} MiB during a ${BIG / MIB} MiB download`);
  });
});

describe('e2e: backpressure from a slow client', function () {
  this.timeout(60_000);
  const fx = new Fixtures();
  const TOTAL = 256 * MIB;
  let port: number;
  const upstream = { sent: () => 0, refused: 0, done: false };

  before(async function () {
    await startHttpUpstream((_req, res: ServerResponse) => {
      res.writeHead(200, { 'content-length': String(TOTAL) });
      const p = pump(res, TOTAL, () => {
        upstream.done = true;
        res.end();
      });
      upstream.sent = p.sent;
      res.on('drain', () => upstream.refused++);
    }, fx).then((up: HttpUpstream) => startCage([{ upstreams: [up.url], timeouts: { idle: '60s' } }], {}, fx)).then((c) => (port = c.port));
  });
  after(() => fx.closeAll());

  it('a client that stops reading stalls the upstream instead of growing the cage', async function () {
    const socket = connect({ host: '127.0.0.1', port });
    let received = 0;
    const hash = createHash('sha256');
    let headerDone = false;
    let pending = Buffer.alloc(0);
    socket.on('data', (c: Buffer) => {
      if (!headerDone) {
        pending = Buffer.concat([pending, c]);
        const end = pending.indexOf('\r\n\r\n');
        if (end === -1) return;
        headerDone = true;
        c = pending.subarray(end + 4);
        socket.pause(); // the slow client: stop reading right after the head
      }
      received += c.length;
      hash.update(c);
    });
    const ended = new Promise<void>((resolve) => socket.on('end', resolve));
    socket.write('GET /big HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');

    // Wait until the upstream's writes stop moving: every buffer on the way (kernel, uWS, undici)
    // is then full, and the upstream is blocked on 'drain'.
    await waitUntil(() => headerDone, 'the response head');
    let last = -1;
    let still = 0;
    await waitUntil(() => {
      const now = upstream.sent();
      still = now === last ? still + 1 : 0;
      last = now;
      return still >= 20;
    }, 'the upstream to stall', 30_000, 50);
    const stalledAt = upstream.sent();
    assert.equal(upstream.done, false, 'the upstream wrote the whole body while the client read nothing');
    assert.ok(stalledAt < TOTAL / 2, `the upstream got ${(stalledAt / MIB).toFixed(0)} MiB out to a client that read nothing`);

    socket.resume();
    await ended;
    assert.equal(received, TOTAL);
    assert.equal(hash.digest('hex'), expectedHash(TOTAL));
    assert.ok(upstream.refused > 0, 'the upstream never saw a refused write');
  });
});

describe('e2e: an upstream that answers before reading the upload', function () {
  this.timeout(60_000);
  const fx = new Fixtures();
  let port: number;
  let answer: (() => void) | undefined;

  before(async function () {
    const up = await startHttpUpstream((req, res) => {
      if (req.url === '/next') {
        res.end('next');
        return;
      }
      req.pause(); // never reads the upload
      answer = () => {
        res.writeHead(401, { 'content-length': '6' });
        res.end('denied');
      };
    }, fx);
    ({ port } = await startCage([{ upstreams: [up.url], max_body_bytes: '1GiB' }], {}, fx));
  });
  after(() => fx.closeAll());

  it('the client gets the answer, can finish its upload, and the connection serves the next request', async function () {
    const TOTAL = 64 * MIB;
    const socket = connect({ host: '127.0.0.1', port });
    let received = '';
    socket.on('data', (c: Buffer) => (received += c.toString('latin1')));
    socket.on('error', () => undefined);
    socket.write(`POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: ${TOTAL}\r\n\r\n`);
    const writer = pump(socket, TOTAL, () => undefined);
    // Every buffer between the client and the upstream fills up; the cage pauses its reads.
    let last = -1;
    let still = 0;
    await waitUntil(() => {
      const now = writer.sent();
      still = now === last ? still + 1 : 0;
      last = now;
      return still >= 10;
    }, 'the upload to stall', 30_000, 50);
    assert.ok(writer.sent() < TOTAL, 'the upload did not stall: nothing to check');
    answer!();
    await waitUntil(() => received.includes('denied'), 'the 401');
    assert.match(received, /^HTTP\/1\.1 401 /);
    await waitUntil(() => socket.bytesWritten >= TOTAL, 'the rest of the upload to be accepted', 30_000);
    socket.write('GET /next HTTP/1.1\r\nHost: a\r\n\r\n');
    await waitUntil(() => received.endsWith('next'), 'the next request on the same connection');
    socket.destroy();
  });
});

describe('e2e: Server-Sent Events', function () {
  const fx = new Fixtures();
  let port: number;
  /** Resolved by the test when the client has event n; the upstream waits on it before n+1. */
  const seen: Array<() => void> = [];
  const seenPromises: Promise<void>[] = [];
  for (let i = 0; i < 5; i++) seenPromises.push(new Promise<void>((r) => (seen[i] = r)));

  before(async function () {
    const up = await startHttpUpstream((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      void (async () => {
        for (let i = 0; i < 5; i++) {
          res.write(`id: ${i}\ndata: event ${i}\n\n`);
          await seenPromises[i];
        }
        res.end();
      })();
    }, fx);
    ({ port } = await startCage([{ upstreams: [up.url] }], {}, fx));
  });
  after(() => fx.closeAll());

  it('delivers each event before the upstream sends the next (no buffering)', async function () {
    const events: string[] = [];
    const headers = await new Promise<Record<string, unknown>>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port, path: '/events', agent: false, headers: { accept: 'text/event-stream' } }, (res) => {
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          buf += c;
          let end: number;
          while ((end = buf.indexOf('\n\n')) !== -1) {
            const ev = buf.slice(0, end);
            buf = buf.slice(end + 2);
            events.push(ev);
            // The upstream only sends event n+1 after this: if the cage held event n back, the
            // stream would deadlock and the test would time out.
            seen[events.length - 1]!();
          }
        });
        res.on('end', () => resolve(res.headers));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
    assert.deepEqual(events, [0, 1, 2, 3, 4].map((i) => `id: ${i}\ndata: event ${i}`));
    assert.equal(headers['content-type'], 'text/event-stream');
    assert.equal(headers['transfer-encoding'], 'chunked');
  });
});

describe('e2e: response framing', function () {
  const fx = new Fixtures();
  let port: number;
  let conn: RawConnection;

  before(async function () {
    const up = await startHttpUpstream((req, res) => {
      switch (req.url) {
        case '/len':
          res.writeHead(200, { 'content-length': '11', etag: '"v1"' });
          res.end(req.method === 'HEAD' ? undefined : 'hello world');
          return;
        case '/chunked':
          res.writeHead(200, { 'content-type': 'text/plain' });
          res.write('hello ');
          setImmediate(() => res.end('world'));
          return;
        case '/empty':
          res.writeHead(200, { 'content-length': '0' });
          res.end();
          return;
        case '/204':
          res.writeHead(204, { 'x-kind': 'no-content' });
          res.end();
          return;
        case '/304':
          res.writeHead(304, { etag: '"v1"', 'cache-control': 'max-age=60' });
          res.end();
          return;
        default:
          res.writeHead(404);
          res.end();
      }
    }, fx);
    ({ port } = await startCage([{ upstreams: [up.url] }], {}, fx));
    conn = await RawConnection.open(port);
  });
  after(async () => {
    conn.close();
    await fx.closeAll();
  });

  // All on one keep-alive connection: a stray body byte would corrupt the next response.
  it('HEAD: the Content-Length of the GET, no body', async function () {
    const r = await conn.exchange('HEAD /len HTTP/1.1\r\nHost: a\r\n\r\n', { head: true });
    assert.equal(r?.status, 200);
    assert.equal(rawHeader(r!, 'content-length'), '11');
    assert.equal(rawHeader(r!, 'etag'), '"v1"');
    assert.equal(rawHeader(r!, 'transfer-encoding'), undefined);
  });

  it('204: no body and no framing headers', async function () {
    const r = await conn.exchange('GET /204 HTTP/1.1\r\nHost: a\r\n\r\n');
    assert.equal(r?.status, 204);
    assert.equal(rawHeader(r!, 'x-kind'), 'no-content');
    assert.equal(rawHeader(r!, 'content-length'), undefined);
    assert.equal(rawHeader(r!, 'transfer-encoding'), undefined);
  });

  it('304: validators kept, no body', async function () {
    const r = await conn.exchange('GET /304 HTTP/1.1\r\nHost: a\r\nIf-None-Match: "v1"\r\n\r\n');
    assert.equal(r?.status, 304);
    assert.equal(rawHeader(r!, 'etag'), '"v1"');
    assert.equal(rawHeader(r!, 'cache-control'), 'max-age=60');
    assert.equal(rawHeader(r!, 'transfer-encoding'), undefined);
  });

  it('with Content-Length: forwarded with that length', async function () {
    const r = await conn.exchange('GET /len HTTP/1.1\r\nHost: a\r\n\r\n');
    assert.equal(r?.status, 200);
    assert.equal(r?.framing, 'length');
    assert.equal(rawHeader(r!, 'content-length'), '11');
    assert.equal(r?.body.toString(), 'hello world');
  });

  it('Content-Length: 0: an empty body with its length', async function () {
    const r = await conn.exchange('GET /empty HTTP/1.1\r\nHost: a\r\n\r\n');
    assert.equal(r?.status, 200);
    assert.equal(rawHeader(r!, 'content-length'), '0');
    assert.equal(r?.body.length, 0);
  });

  it('without Content-Length: forwarded chunked', async function () {
    const r = await conn.exchange('GET /chunked HTTP/1.1\r\nHost: a\r\n\r\n');
    assert.equal(r?.status, 200);
    assert.equal(r?.framing, 'chunked');
    assert.equal(rawHeader(r!, 'content-length'), undefined);
    assert.equal(r?.body.toString(), 'hello world');
  });

  it('left nothing stray on the connection, which still works', async function () {
    assert.equal(conn.closed, false);
    assert.equal(conn.unread.length, 0);
    const r = await request(port, { path: '/len' });
    assert.equal(r.body.toString(), 'hello world');
  });
});
