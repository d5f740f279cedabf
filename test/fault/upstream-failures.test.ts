/**
 * Upstreams that fail in every way a TCP peer can: refuse, reset, close mid-head, answer garbage,
 * stay silent, stall or die mid-body, and drop kept-alive connections. Checks the JSON error code
 * the client gets, that a started response is cut (never completed with a forged ending), and the
 * retry rules: connect failures are retried for any method whose body was not read; resets after
 * sending only for idempotent methods without a body; never when `retries: 0`.
 */
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { connect, type Socket } from 'node:net';
import { rawErrorCode, rawRequest, readRequests, type RawResult } from '../helpers/raw.js';
import {
  closedPort,
  errorCode,
  Fixtures,
  readAll,
  request,
  sleep,
  startCage,
  startHttpUpstream,
  startRawUpstream,
  type RawUpstream,
} from '../helpers/servers.js';
import { waitUntil } from '../helpers/wait.js';

/** Passive health off in practice: these tests fail upstreams on purpose, many times. */
const NO_PASSIVE = { passive: { max_fails: 1000 } };

/**
 * A raw upstream that reads whole requests (head + Content-Length body) and hands each to
 * `answer(socket, index on this connection, head)`; counts requests across connections.
 */
async function startScriptedUpstream(answer: (socket: Socket, n: number, head: string) => void, fx: Fixtures): Promise<RawUpstream & { heads: string[] }> {
  const heads: string[] = [];
  const up = await startRawUpstream((socket) => {
    readRequests(socket, (head, n) => {
      heads.push(head);
      answer(socket, n, head);
    });
  }, fx);
  return Object.assign(up, { heads });
}

function assertTruncated(res: RawResult, what: string): void {
  assert.equal(res.closed, true, `${what}: the connection must be closed`);
  assert.equal(res.responses.length, 1, `${what}: one (partial) response`);
  assert.equal(res.responses[0]!.status, 200);
  assert.equal(res.responses[0]!.complete, false, `${what}: the response must not look complete`);
}

describe('fault: upstream failures before the response head', function () {
  const fx = new Fixtures();
  let port: number;
  let resetting: RawUpstream & { heads: string[] };
  let closing: RawUpstream & { heads: string[] };

  before(async function () {
    const refused = await closedPort();
    resetting = await startScriptedUpstream((s) => s.resetAndDestroy(), fx);
    closing = await startScriptedUpstream((s) => s.end('HTTP/1.1 200 OK\r\nContent-Type: text/pl'), fx);
    const garbage = await startScriptedUpstream((s) => s.end('SSH-2.0-OpenSSH_9.6\r\n\r\n'), fx);
    const silent = await startRawUpstream(() => undefined, fx);
    const switching = await startScriptedUpstream((s) => s.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n'), fx);
    const hugeHead = await startScriptedUpstream((s) => s.write(`HTTP/1.1 200 OK\r\nX-Huge: ${'h'.repeat(64 * 1024)}\r\nContent-Length: 2\r\n\r\nok`), fx);
    const earlyHints = await startScriptedUpstream((s) => s.write('HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal'), fx);
    const headThenDeath = await startScriptedUpstream((s) => {
      s.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n');
      setImmediate(() => s.resetAndDestroy());
    }, fx);
    ({ port } = await startCage(
      [
        { match: { path: '/refused' }, upstreams: [`http://127.0.0.1:${refused}`], health_checks: NO_PASSIVE },
        { match: { path: '/reset' }, upstreams: [resetting.url], health_checks: NO_PASSIVE },
        { match: { path: '/closed-mid-head' }, upstreams: [closing.url], health_checks: NO_PASSIVE },
        { match: { path: '/garbage' }, upstreams: [garbage.url], health_checks: NO_PASSIVE },
        { match: { path: '/silent' }, upstreams: [silent.url], timeouts: { response_headers: '300ms' }, health_checks: NO_PASSIVE },
        { match: { path: '/head-then-death' }, upstreams: [headThenDeath.url], health_checks: NO_PASSIVE },
        { match: { path: '/switching' }, upstreams: [switching.url], health_checks: NO_PASSIVE },
        { match: { path: '/huge-head' }, upstreams: [hugeHead.url], health_checks: NO_PASSIVE },
        { match: { path: '/early-hints' }, upstreams: [earlyHints.url], health_checks: NO_PASSIVE },
      ],
      {},
      fx,
    ));
  });
  after(() => fx.closeAll());

  it('connection refused → 502 GW_UPSTREAM_UNREACHABLE', async function () {
    const r = await request(port, { path: '/refused' });
    assert.equal(r.status, 502);
    assert.equal(errorCode(r), 'GW_UPSTREAM_UNREACHABLE');
  });

  it('reset after reading the request → 502 GW_UPSTREAM_RESET (a GET is retried once first)', async function () {
    const before = resetting.heads.length;
    const r = await request(port, { path: '/reset' });
    assert.equal(r.status, 502);
    assert.equal(errorCode(r), 'GW_UPSTREAM_RESET');
    assert.equal(resetting.heads.length - before, 2, 'the default `retries: 1` allows one more attempt');
  });

  it('closed in the middle of the response head → 502 GW_UPSTREAM_RESET', async function () {
    const r = await request(port, { path: '/closed-mid-head' });
    assert.equal(r.status, 502);
    assert.equal(errorCode(r), 'GW_UPSTREAM_RESET');
  });

  it('garbage instead of an HTTP response → 502 GW_UPSTREAM_BAD_RESPONSE', async function () {
    const r = await request(port, { path: '/garbage' });
    assert.equal(r.status, 502);
    assert.equal(errorCode(r), 'GW_UPSTREAM_BAD_RESPONSE');
  });

  it('no response head within timeouts.response_headers → 504 GW_UPSTREAM_TIMEOUT', async function () {
    const r = await request(port, { path: '/silent' });
    assert.equal(r.status, 504);
    assert.equal(errorCode(r), 'GW_UPSTREAM_TIMEOUT');
  });

  it('a head followed by a reset before any body byte → 502 GW_UPSTREAM_RESET (nothing had reached the client)', async function () {
    const r = await request(port, { path: '/head-then-death' });
    assert.equal(r.status, 502);
    assert.equal(errorCode(r), 'GW_UPSTREAM_RESET');
  });

  it('101 Switching Protocols to a plain request → 502 GW_UPSTREAM_BAD_RESPONSE', async function () {
    const r = await request(port, { path: '/switching' });
    assert.equal(r.status, 502);
    assert.equal(errorCode(r), 'GW_UPSTREAM_BAD_RESPONSE');
  });

  it('a response head larger than the upstream client accepts → 502 GW_UPSTREAM_BAD_RESPONSE', async function () {
    const r = await request(port, { path: '/huge-head' });
    assert.equal(r.status, 502);
    assert.equal(errorCode(r), 'GW_UPSTREAM_BAD_RESPONSE');
  });

  it('an informational 103 is not forwarded; the final response is', async function () {
    const res = await rawRequest(port, 'GET /early-hints HTTP/1.1\r\nHost: a\r\n\r\n');
    assert.deepEqual(res.responses.map((r) => r.status), [200]);
    assert.equal(res.responses[0]!.body.toString(), 'final');
  });

  it('an error answer on a request with an unread body closes the connection', async function () {
    const res = await rawRequest(port, 'POST /refused HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello', { untilClose: true });
    assert.equal(res.responses[0]?.status, 502);
    assert.equal(rawErrorCode(res.responses[0]!), 'GW_UPSTREAM_UNREACHABLE');
    assert.equal(res.closed, true);
  });
});

describe('fault: upstream failures in the middle of the body', function () {
  const fx = new Fixtures();
  let port: number;

  before(async function () {
    const lengthDeath = await startScriptedUpstream((s) => {
      s.write(`HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n${'x'.repeat(40)}`);
      setTimeout(() => s.resetAndDestroy(), 20);
    }, fx);
    const lengthShort = await startScriptedUpstream((s) => s.end(`HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n${'x'.repeat(40)}`), fx);
    const chunkedDeath = await startScriptedUpstream((s) => {
      s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n');
      setTimeout(() => s.end(), 20);
    }, fx);
    const closeDelimited = await startScriptedUpstream((s) => s.end(`HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n${'y'.repeat(40)}`), fx);
    const stall = await startScriptedUpstream((s) => s.write(`HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n${'z'.repeat(10)}`), fx);
    const chunkedStall = await startScriptedUpstream((s) => s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n'), fx);
    ({ port } = await startCage(
      [
        { match: { path: '/length-death' }, upstreams: [lengthDeath.url], health_checks: NO_PASSIVE },
        { match: { path: '/length-short' }, upstreams: [lengthShort.url], health_checks: NO_PASSIVE },
        { match: { path: '/chunked-death' }, upstreams: [chunkedDeath.url], health_checks: NO_PASSIVE },
        { match: { path: '/close-delimited' }, upstreams: [closeDelimited.url], health_checks: NO_PASSIVE },
        { match: { path: '/stall' }, upstreams: [stall.url], timeouts: { idle: '300ms' }, health_checks: NO_PASSIVE },
        { match: { path: '/chunked-stall' }, upstreams: [chunkedStall.url], timeouts: { idle: '300ms' }, health_checks: NO_PASSIVE },
      ],
      {},
      fx,
    ));
  });
  after(() => fx.closeAll());

  const get = (path: string) => rawRequest(port, `GET ${path} HTTP/1.1\r\nHost: a\r\n\r\n`, { untilClose: true });

  it('a reset after part of a Content-Length body: the client gets a short body and a closed connection', async function () {
    const res = await get('/length-death');
    assertTruncated(res, 'length-death');
    assert.equal(res.responses[0]!.framing, 'length');
    assert.equal(res.responses[0]!.body.toString(), 'x'.repeat(40));
  });

  it('a FIN before the Content-Length is reached: short body, closed connection', async function () {
    const res = await get('/length-short');
    assertTruncated(res, 'length-short');
  });

  it('a chunked body cut before its last chunk: no terminating chunk is forged, connection closed', async function () {
    const res = await get('/chunked-death');
    assertTruncated(res, 'chunked-death');
    assert.equal(res.responses[0]!.framing, 'chunked');
    assert.doesNotMatch(res.raw.toString('latin1'), /\r\n0\r\n\r\n$/);
  });

  it('a body stalled past timeouts.idle: cut, not completed', async function () {
    assertTruncated(await get('/stall'), 'stall');
    assertTruncated(await get('/chunked-stall'), 'chunked-stall');
  });

  it('a close-delimited body (no length, no chunking) is complete at the FIN and forwarded chunked', async function () {
    const res = await rawRequest(port, 'GET /close-delimited HTTP/1.1\r\nHost: a\r\n\r\n');
    const r = res.responses[0]!;
    assert.equal(r.complete, true);
    assert.equal(r.framing, 'chunked');
    assert.equal(r.body.toString(), 'y'.repeat(40));
  });
});

describe('fault: retries', function () {
  const fx = new Fixtures();

  after(() => fx.closeAll());

  it('a GET whose first upstream refuses is retried on another one', async function () {
    const good = await startHttpUpstream((_req, res) => res.end('good'), fx);
    const refused = await closedPort();
    const { port } = await startCage([{ upstreams: [`http://127.0.0.1:${refused}`, good.url], load_balancing: 'first', health_checks: NO_PASSIVE }], {}, fx);
    const r = await request(port, { path: '/x' });
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), 'good');
    assert.equal(good.count, 1);
  });

  it('a POST whose first upstream refuses is retried too (its body was not read yet), body intact', async function () {
    let got = '';
    const good = await startHttpUpstream((req, res) => {
      readAll(req).then((b) => {
        got = b.toString();
        res.end('stored');
      }, () => res.destroy());
    }, fx);
    const refused = await closedPort();
    const { port } = await startCage([{ upstreams: [`http://127.0.0.1:${refused}`, good.url], load_balancing: 'first', health_checks: NO_PASSIVE }], {}, fx);
    const r = await request(port, { method: 'POST', path: '/x', body: 'the body' });
    assert.equal(r.status, 200);
    assert.equal(got, 'the body');
    assert.equal(good.count, 1);
  });

  it('a GET on a kept-alive connection the upstream then resets is retried on a new one (no 502)', async function () {
    // Connection 1 answers its first request with keep-alive, then resets on the second.
    const up = await startScriptedUpstream((s, n) => {
      if (n === 0) s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok');
      else s.resetAndDestroy();
    }, fx);
    const { port } = await startCage([{ upstreams: [up.url], health_checks: NO_PASSIVE }], {}, fx);
    assert.equal((await request(port, { path: '/1' })).status, 200);
    const r = await request(port, { path: '/2' });
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), 'ok');
    assert.equal(up.connections, 2, 'the retry went out on a fresh connection');
    assert.deepEqual(up.heads.map((h) => h.split('\r\n')[0]), ['GET /1 HTTP/1.1', 'GET /2 HTTP/1.1', 'GET /2 HTTP/1.1']);
  });

  it('a POST with a body whose upstream resets is answered 502 GW_UPSTREAM_RESET and not retried', async function () {
    const up = await startScriptedUpstream((s) => s.resetAndDestroy(), fx);
    const { port } = await startCage([{ upstreams: [up.url], retries: 3, health_checks: NO_PASSIVE }], {}, fx);
    const r = await request(port, { method: 'POST', path: '/pay', body: 'amount=10' });
    assert.equal(r.status, 502);
    assert.equal(errorCode(r), 'GW_UPSTREAM_RESET');
    assert.equal(up.heads.length, 1, 'a non-idempotent request reached the upstream more than once');
  });

  it('`retries: 0` turns retrying off, even for a GET', async function () {
    const up = await startScriptedUpstream((s) => s.resetAndDestroy(), fx);
    const { port } = await startCage([{ upstreams: [up.url], retries: 0, health_checks: NO_PASSIVE }], {}, fx);
    const r = await request(port, { path: '/x' });
    assert.equal(r.status, 502);
    assert.equal(errorCode(r), 'GW_UPSTREAM_RESET');
    assert.equal(up.heads.length, 1);
  });

  it('a stale kept-alive connection (upstream keepAliveTimeout 1 s, next request after 1.2 s) is not reused: 200, not 502', async function () {
    // A POST with a body, which the cage never retries after sending: only a fresh connection works.
    const up = await startHttpUpstream((req, res) => {
      readAll(req).then((b) => res.end(`got ${b.length}`), () => res.destroy());
    }, fx);
    up.server.keepAliveTimeout = 1000;
    const { port } = await startCage([{ upstreams: [up.url], health_checks: NO_PASSIVE }], {}, fx);
    assert.equal((await request(port, { method: 'POST', body: 'one' })).status, 200);
    await sleep(1200);
    const r = await request(port, { method: 'POST', body: 'two!' });
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), 'got 4');
  });

  it('a kept-alive connection the upstream closed without announcing a timeout is not reused', async function () {
    let closedSockets = 0;
    const up = await startScriptedUpstream((s) => {
      s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
      s.setTimeout(100, () => s.end()); // closes idle connections, no Keep-Alive header
      s.once('close', () => closedSockets++);
    }, fx);
    const { port } = await startCage([{ upstreams: [up.url], health_checks: NO_PASSIVE }], {}, fx);
    assert.equal((await request(port, { method: 'POST', body: 'a' })).status, 200);
    await waitUntil(() => closedSockets === 1, 'the upstream to close its idle connection');
    const r = await request(port, { method: 'POST', body: 'b' });
    assert.equal(r.status, 200);
    assert.equal(up.connections, 2);
  });

  it('after max_fails failures the upstream is skipped: 503 GW_NO_HEALTHY_UPSTREAM without a connection attempt', async function () {
    const up = await startScriptedUpstream((s) => s.resetAndDestroy(), fx);
    const { port } = await startCage([{ upstreams: [up.url], retries: 0, health_checks: { passive: { max_fails: 2, fail_duration: '60s' } } }], {}, fx);
    for (let i = 0; i < 2; i++) assert.equal(errorCode(await request(port)), 'GW_UPSTREAM_RESET');
    const r = await request(port);
    assert.equal(r.status, 503);
    assert.equal(errorCode(r), 'GW_NO_HEALTHY_UPSTREAM');
    assert.equal(up.connections, 2);
  });
});

describe('fault: the client goes away', function () {
  const fx = new Fixtures();
  after(() => fx.closeAll());

  it('a client that disconnects mid-download makes the cage abort the upstream response', async function () {
    let upstreamClosed = false;
    let wrote = 0;
    const up = await startHttpUpstream((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const block = Buffer.alloc(64 * 1024, 1);
      const timer = setInterval(() => {
        res.write(block);
        wrote++;
      }, 5);
      res.on('close', () => {
        clearInterval(timer);
        upstreamClosed = true;
      });
    }, fx);
    const { port } = await startCage([{ upstreams: [up.url] }], {}, fx);
    await new Promise<void>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port, path: '/stream', agent: false }, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', () => undefined);
      req.on('close', () => resolve());
      req.end();
      setTimeout(() => reject(new Error('no data')), 10_000).unref();
    });
    await waitUntil(() => upstreamClosed, 'the upstream response to be aborted');
    assert.ok(wrote > 0);
  });

  it('a client that disconnects while the upstream is thinking makes the cage abort the upstream request', async function () {
    let upstreamClosed = false;
    let arrived = false;
    const up = await startHttpUpstream((req) => {
      arrived = true;
      req.socket.on('close', () => (upstreamClosed = true));
    }, fx);
    const { port } = await startCage([{ upstreams: [up.url] }], {}, fx);
    const s = connect({ host: '127.0.0.1', port });
    s.on('error', () => undefined);
    s.write('GET /slow HTTP/1.1\r\nHost: a\r\n\r\n');
    await waitUntil(() => arrived, 'the request to reach the upstream');
    s.destroy();
    await waitUntil(() => upstreamClosed, 'the upstream connection to be closed');
  });
});
