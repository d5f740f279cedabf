/**
 * Hostile HTTP/1.1 input over raw sockets: malformed framing, smuggling attempts, header
 * injection, oversized and odd requests. Each case must end in a JSON 4xx carrying an error code,
 * or a closed connection; after each one the cage still answers a normal request, and the raw
 * upstream (which counts every request head it parses) never sees a smuggled request.
 *
 * Two layers answer: uWebSockets.js's parser (20.30) refuses many inputs itself, without a
 * response; the cage refuses the rest with a code. What uWS does is written in each case's name:
 * "closed by uWS" (at once), or "closed by uWS at its idle timeout" (it waits for more bytes that
 * never come and drops the connection after ~10 s; those cases run concurrently).
 */
import assert from 'node:assert/strict';
import { rawErrorCode, rawHeader, rawRequest, readRequests, type RawResult } from '../helpers/raw.js';
import { Fixtures, request, startCage, startRawUpstream, type RawUpstream } from '../helpers/servers.js';

type Expect =
  | { error: number; code: string; closed?: true }
  | { closedBy: 'uws' | 'uws-idle' }
  | { forwarded: (head: string, res: RawResult) => void };

interface Case {
  name: string;
  data: string | string[];
  expect: Expect;
}

const H = 'Host: app.test\r\n';
const SMUGGLED = 'GET /smuggled HTTP/1.1\r\nHost: app.test\r\n\r\n';

/** Answered by the cage with a JSON error (and, where framing is in doubt, a closed connection). */
const CAGE_REFUSES: Case[] = [
  { name: 'two different Content-Length headers → 400, closed', data: `POST / HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 39\r\n\r\nhello`, expect: { error: 400, code: 'GW_BAD_REQUEST', closed: true } },
  { name: 'two equal Content-Length headers → 400, closed', data: `POST / HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello`, expect: { error: 400, code: 'GW_BAD_REQUEST', closed: true } },
  { name: 'two Transfer-Encoding headers (chunked, identity) → 400, closed', data: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n`, expect: { error: 400, code: 'GW_BAD_REQUEST', closed: true } },
  { name: 'Transfer-Encoding: gzip, chunked (a coding the cage would drop) → 400, closed', data: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n`, expect: { error: 400, code: 'GW_BAD_REQUEST', closed: true } },
  { name: 'Transfer-Encoding: chunked, gzip (chunked not last) → 400, closed', data: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n`, expect: { error: 400, code: 'GW_BAD_REQUEST', closed: true } },
  { name: 'Transfer-Encoding: xchunked (obfuscated) → 400, closed', data: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n`, expect: { error: 400, code: 'GW_BAD_REQUEST', closed: true } },
  { name: 'two Host headers → 400', data: `GET / HTTP/1.1\r\n${H}Host: evil.test\r\n\r\n`, expect: { error: 400, code: 'GW_BAD_REQUEST', closed: true } },
  { name: 'an empty Host → 400', data: 'GET / HTTP/1.1\r\nHost:\r\n\r\n', expect: { error: 400, code: 'GW_BAD_REQUEST', closed: true } },
  { name: 'CONNECT with a path → 400 (a reverse proxy tunnels nothing)', data: `CONNECT /x HTTP/1.1\r\n${H}\r\n`, expect: { error: 400, code: 'GW_BAD_REQUEST', closed: true } },
  { name: 'a DEL byte in a header value → 400 (the upstream client refuses it; not a 500)', data: `GET / HTTP/1.1\r\n${H}X-Evil: a\x7fb\r\n\r\n`, expect: { error: 400, code: 'GW_BAD_REQUEST' } },
  { name: 'a ../ dot-segment escaping a route prefix → 400', data: `GET /public/../admin HTTP/1.1\r\n${H}\r\n`, expect: { error: 400, code: 'GW_BAD_REQUEST' } },
  { name: 'a percent-encoded %2e%2e dot-segment → 400', data: `GET /public/%2E%2e/admin HTTP/1.1\r\n${H}\r\n`, expect: { error: 400, code: 'GW_BAD_REQUEST' } },
  { name: 'a backslash dot-segment (..\\) → 400', data: `GET /public\\..\\admin HTTP/1.1\r\n${H}\r\n`, expect: { error: 400, code: 'GW_BAD_REQUEST' } },
  { name: 'one huge header over limits.max_header_bytes → 431, closed', data: `GET / HTTP/1.1\r\n${H}X-Big: ${'a'.repeat(100_000)}\r\n\r\n`, expect: { error: 431, code: 'GW_HEADERS_TOO_LARGE', closed: true } },
  { name: 'a request target over limits.max_header_bytes → 431, closed', data: `GET /${'a'.repeat(10_000)} HTTP/1.1\r\n${H}\r\n`, expect: { error: 431, code: 'GW_HEADERS_TOO_LARGE', closed: true } },
  { name: 'Content-Length over max_body_bytes (9 digits) → 413, closed', data: `POST / HTTP/1.1\r\n${H}Content-Length: 999999999\r\n\r\n`, expect: { error: 413, code: 'GW_BODY_TOO_LARGE', closed: true } },
  { name: 'a chunked body growing over max_body_bytes → 413, closed', data: [`POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n`, `900\r\n${'x'.repeat(0x900)}\r\n`, `900\r\n${'x'.repeat(0x900)}\r\n0\r\n\r\n`], expect: { error: 413, code: 'GW_BODY_TOO_LARGE', closed: true } },
];

/**
 * Refused with a request smuggled behind in the same read: the cage answers on the next turn, and
 * uWS drops the connection at once because another request is queued while an answer is pending
 * (nothing is answered, the queued request never runs).
 */
const SMUGGLED_BEHIND: Case[] = [
  { name: 'CL.CL desync: two Content-Length headers, a request behind the shorter body → closed, never run', data: `POST / HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: ${5 + SMUGGLED.length}\r\n\r\nhello${SMUGGLED}`, expect: { closedBy: 'uws' } },
  { name: 'TE.TE desync: chunked + identity, a request behind the last chunk → closed, never run', data: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n${SMUGGLED}`, expect: { closedBy: 'uws' } },
  { name: 'obfuscated xchunked, a request behind the last chunk → closed, never run', data: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n${SMUGGLED}`, expect: { closedBy: 'uws' } },
  { name: 'two Host headers, a request behind → closed, never run', data: `GET / HTTP/1.1\r\n${H}Host: evil.test\r\n\r\n${SMUGGLED}`, expect: { closedBy: 'uws' } },
];

/** Refused by uWS's parser: the connection is closed at once, nothing is answered. */
const UWS_CLOSES: Case[] = [
  { name: 'Content-Length: abc → closed by uWS', data: `POST / HTTP/1.1\r\n${H}Content-Length: abc\r\n\r\n`, expect: { closedBy: 'uws' } },
  { name: 'Content-Length: -1 → closed by uWS', data: `POST / HTTP/1.1\r\n${H}Content-Length: -1\r\n\r\n`, expect: { closedBy: 'uws' } },
  { name: 'Content-Length: +5 → closed by uWS', data: `POST / HTTP/1.1\r\n${H}Content-Length: +5\r\n\r\nhello`, expect: { closedBy: 'uws' } },
  { name: 'Content-Length: 5, 5 (a list) → closed by uWS', data: `POST / HTTP/1.1\r\n${H}Content-Length: 5, 5\r\n\r\nhello`, expect: { closedBy: 'uws' } },
  { name: 'Content-Length of 10 digits (≥ 10^9) → closed by uWS', data: `POST / HTTP/1.1\r\n${H}Content-Length: 1000000000\r\n\r\n`, expect: { closedBy: 'uws' } },
  { name: 'Content-Length ≥ 2^32 → closed by uWS', data: `POST / HTTP/1.1\r\n${H}Content-Length: 4294967296\r\n\r\n`, expect: { closedBy: 'uws' } },
  { name: 'CL.TE smuggling (Content-Length and Transfer-Encoding) → closed by uWS', data: `POST / HTTP/1.1\r\n${H}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`, expect: { closedBy: 'uws' } },
  { name: 'TE.CL smuggling (Transfer-Encoding first) → closed by uWS', data: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: 44\r\n\r\n0\r\n\r\n${SMUGGLED}`, expect: { closedBy: 'uws' } },
  { name: 'Transfer-Encoding: identity with Content-Length → closed by uWS', data: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: identity\r\nContent-Length: 5\r\n\r\nhello`, expect: { closedBy: 'uws' } },
  { name: 'a chunk size that is not hex → closed by uWS', data: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n`, expect: { closedBy: 'uws' } },
  { name: 'a chunk size over 2^64 → closed by uWS', data: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nabc`, expect: { closedBy: 'uws' } },
  { name: 'a chunk extension (legal HTTP, unsupported by uWS 20.30) → closed by uWS', data: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\n\r\n`, expect: { closedBy: 'uws' } },
  { name: 'a lower-case method → closed by uWS', data: `get / HTTP/1.1\r\n${H}\r\n`, expect: { closedBy: 'uws' } },
  { name: 'a method with a separator in it → closed by uWS', data: `G(T / HTTP/1.1\r\n${H}\r\n`, expect: { closedBy: 'uws' } },
  { name: 'an extension method (PROPFIND; uWS routes only the standard ones) → closed by uWS', data: `PROPFIND / HTTP/1.1\r\n${H}\r\n`, expect: { closedBy: 'uws' } },
  { name: 'headers without Host → closed by uWS', data: 'GET / HTTP/1.1\r\nX-A: b\r\n\r\n', expect: { closedBy: 'uws' } },
  { name: 'a request pipelined behind one still in flight → closed by uWS (no async pipelining)', data: `GET /first HTTP/1.1\r\n${H}\r\n${SMUGGLED}`, expect: { closedBy: 'uws' } },
];

/** uWS's parser waits for bytes that never come; its idle timer closes the connection (~10 s). */
const UWS_IDLE: Case[] = [
  { name: 'a garbage request line → closed by uWS at its idle timeout', data: 'GARBAGE\r\n\r\n', expect: { closedBy: 'uws-idle' } },
  { name: 'binary garbage → closed by uWS at its idle timeout', data: '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n', expect: { closedBy: 'uws-idle' } },
  { name: 'a NUL byte in the path → closed by uWS at its idle timeout', data: `GET /a\0b HTTP/1.1\r\n${H}\r\n`, expect: { closedBy: 'uws-idle' } },
  { name: 'a NUL byte in a header value → closed by uWS at its idle timeout', data: `GET / HTTP/1.1\r\n${H}X-A: b\0c\r\n\r\n`, expect: { closedBy: 'uws-idle' } },
  { name: 'a control byte in the path → closed by uWS at its idle timeout', data: `GET /a\x01b HTTP/1.1\r\n${H}\r\n`, expect: { closedBy: 'uws-idle' } },
  { name: 'a bare CR in a header value (header injection) → closed by uWS at its idle timeout', data: `GET / HTTP/1.1\r\n${H}X-A: b\rX-Injected: yes\r\n\r\n`, expect: { closedBy: 'uws-idle' } },
  { name: 'bare LF line endings → closed by uWS at its idle timeout', data: 'GET / HTTP/1.1\nHost: app.test\nX-B: c\n\n', expect: { closedBy: 'uws-idle' } },
  { name: 'a space before the colon (Transfer-Encoding : chunked) → closed by uWS at its idle timeout', data: `POST / HTTP/1.1\r\n${H}Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`, expect: { closedBy: 'uws-idle' } },
  { name: 'an obs-fold continuation line → closed by uWS at its idle timeout', data: `GET / HTTP/1.1\r\n${H}X-A: b\r\n c\r\n\r\n`, expect: { closedBy: 'uws-idle' } },
  { name: 'a header name with a separator → closed by uWS at its idle timeout', data: `GET / HTTP/1.1\r\n${H}X(A): b\r\n\r\n`, expect: { closedBy: 'uws-idle' } },
  { name: 'an absolute-form target → closed by uWS at its idle timeout', data: `GET http://evil.test/x HTTP/1.1\r\n${H}\r\n`, expect: { closedBy: 'uws-idle' } },
  { name: 'CONNECT with an authority-form target → closed by uWS at its idle timeout', data: 'CONNECT evil.test:443 HTTP/1.1\r\nHost: evil.test:443\r\n\r\n', expect: { closedBy: 'uws-idle' } },
  { name: 'OPTIONS * → closed by uWS at its idle timeout', data: `OPTIONS * HTTP/1.1\r\n${H}\r\n`, expect: { closedBy: 'uws-idle' } },
  { name: 'HTTP/1.0 (unsupported by uWS 20.30) → closed by uWS at its idle timeout', data: `GET / HTTP/1.0\r\n${H}\r\n`, expect: { closedBy: 'uws-idle' } },
  { name: 'HTTP/2.0 in a request line → closed by uWS at its idle timeout', data: `GET / HTTP/2.0\r\n${H}\r\n`, expect: { closedBy: 'uws-idle' } },
  { name: 'HTTP/1.1 with no headers at all → closed by uWS at its idle timeout', data: 'GET / HTTP/1.1\r\n\r\n', expect: { closedBy: 'uws-idle' } },
  { name: '50 headers (over uWS MAX_HEADERS) → closed by uWS at its idle timeout', data: `GET / HTTP/1.1\r\n${H}${Array.from({ length: 49 }, (_, i) => `X-H${i}: v\r\n`).join('')}\r\n`, expect: { closedBy: 'uws-idle' } },
];

/** Accepted, and forwarded in a sanitized form. */
const FORWARDED: Case[] = [
  {
    name: 'CR/LF percent-encoded in the target stays encoded (no header appears upstream)',
    data: `GET /a%0d%0aX-Injected:%20yes HTTP/1.1\r\n${H}\r\n`,
    expect: { forwarded: (head) => {
      assert.match(head, /^GET \/a%0d%0aX-Injected:%20yes HTTP\/1\.1\r\n/);
      assert.doesNotMatch(head, /\r\nx-injected:/i);
    } },
  },
  {
    name: 'a Host trying to add a Forwarded element is quoted (one for= element)',
    data: 'GET / HTTP/1.1\r\nHost: a";for=6.6.6.6;x="\r\n\r\n',
    expect: { forwarded: (head) => {
      const fwd = /\r\nforwarded: ([^\r]*)/i.exec(head)?.[1];
      assert.equal(fwd, 'for=127.0.0.1;host="a\\";for=6.6.6.6;x=\\"";proto=http');
    } },
  },
  {
    name: 'an h2c upgrade is forwarded as plain HTTP/1.1 (Upgrade and the Connection-named HTTP2-Settings dropped)',
    data: `GET / HTTP/1.1\r\n${H}Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n`,
    expect: { forwarded: (head, res) => {
      assert.doesNotMatch(head, /\r\n(upgrade|http2-settings):/i);
      assert.equal(res.responses.at(-1)!.status, 200);
    } },
  },
  {
    name: 'Expect: 100-continue is answered by uWS; the upstream gets no Expect',
    data: `POST / HTTP/1.1\r\n${H}Expect: 100-continue\r\nContent-Length: 5\r\n\r\nhello`,
    expect: { forwarded: (head, res) => {
      assert.doesNotMatch(head, /\r\nexpect:/i);
      assert.deepEqual(res.responses.map((r) => r.status), [100, 200]);
    } },
  },
  {
    // A uWS 20.30 quirk, kept visible: its parser trims bytes ≥ 0x80 at both ends of a value as if
    // they were whitespace, so the cage never sees them (the ones in the middle pass unchanged).
    name: 'leading and trailing non-ASCII bytes of a header value are trimmed by uWS before the cage sees them',
    data: `GET / HTTP/1.1\r\n${H}X-Name: \xc3\xbcA\xc3\xbcB\xc3\xbc\r\n\r\n`,
    expect: { forwarded: (head) => assert.ok(head.includes('\r\nx-name: A\xc3\xbcB\r\n') || head.endsWith('\r\nx-name: A\xc3\xbcB'), head) },
  },
  {
    name: 'a GET whose Content-Length body is a request is forwarded as a body, never as a request',
    data: `GET / HTTP/1.1\r\n${H}Content-Length: ${SMUGGLED.length}\r\n\r\n${SMUGGLED}`,
    expect: { forwarded: (head) => assert.match(head, new RegExp(`\\r\\ncontent-length: ${SMUGGLED.length}(\\r\\n|$)`, 'i')) },
  },
];

describe('fault: hostile HTTP input', function () {
  this.timeout(40_000);
  const fx = new Fixtures();
  let port: number;
  let upstream: RawUpstream;
  /** Every request head the upstream parsed (framing by Content-Length, as the cage sends it). */
  const heads: string[] = [];

  before(async function () {
    upstream = await startRawUpstream((socket) => {
      readRequests(socket, (head) => {
        heads.push(head);
        socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
      });
    }, fx);
    ({ port } = await startCage([{ upstreams: [upstream.url], max_body_bytes: 4096 }], { limits: { max_header_bytes: '8KiB' } }, fx));
  });
  after(() => fx.closeAll());

  async function assertStillServing(): Promise<void> {
    const r = await request(port, { path: '/health-after', headers: { host: 'app.test' } });
    assert.equal(r.status, 200, 'the cage stopped answering normal requests');
    assert.equal(r.body.toString(), 'ok');
  }

  function assertNothingSmuggled(): void {
    for (const h of heads) assert.doesNotMatch(h, /^GET \/smuggled /, 'a smuggled request reached the upstream');
  }

  async function runCase(c: Case, res: RawResult): Promise<void> {
    const e = c.expect;
    if ('error' in e) {
      const r = res.responses[0];
      assert.ok(r !== undefined, `no response (closed: ${res.closed})`);
      assert.equal(r.status, e.error);
      assert.equal(rawErrorCode(r), e.code);
      assert.match(rawHeader(r, 'x-request-id') ?? '', /./);
      if (e.closed) assert.equal(res.closed, true, 'the connection must be closed after this error');
    } else if ('closedBy' in e) {
      assert.equal(res.timedOut, false, 'the connection was neither answered nor closed');
      assert.equal(res.closed, true);
      assert.deepEqual(res.responses.map((r) => r.status), [], 'uWS answered');
    } else {
      const before = heads.length;
      assert.ok(res.responses.length > 0 && res.responses.at(-1)!.status === 200, `no 200 (closed: ${res.closed})`);
      assert.ok(heads.length >= before);
      e.forwarded(heads.at(-1)!, res);
    }
    assertNothingSmuggled();
    await assertStillServing();
  }

  describe('refused by the cage with a code', function () {
    for (const c of CAGE_REFUSES) {
      it(c.name, async function () {
        const e = c.expect as { closed?: true };
        const res = await rawRequest(port, c.data, e.closed ? { untilClose: true } : { expect: 1 });
        await runCase(c, res);
      });
    }
  });

  describe('refused by the cage, with a request smuggled behind', function () {
    for (const c of SMUGGLED_BEHIND) {
      it(c.name, async function () {
        const before = heads.length;
        const res = await rawRequest(port, c.data, { untilClose: true, timeoutMs: 5000 });
        await runCase(c, res);
        assert.equal(heads.length - before, 1, 'only the health check after the case reached the upstream');
      });
    }
  });

  describe('refused by uWS', function () {
    for (const c of UWS_CLOSES) {
      it(c.name, async function () {
        const before = heads.length;
        const res = await rawRequest(port, c.data, { untilClose: true, timeoutMs: 5000 });
        await runCase(c, res);
        assert.ok(heads.length - before <= 1, 'more than one request reached the upstream');
      });
    }
  });

  describe('left to uWS idle timeout (run concurrently)', function () {
    const results = new Map<string, Promise<RawResult>>();
    let firstHead = 0;
    before(function () {
      firstHead = heads.length;
      for (const c of UWS_IDLE) results.set(c.name, rawRequest(port, c.data, { untilClose: true, timeoutMs: 30_000 }));
    });
    for (const c of UWS_IDLE) {
      it(c.name, async function () {
        const res = await results.get(c.name)!;
        await runCase(c, res);
      });
    }
    it('none of them reached the upstream (only the health checks after each did)', function () {
      assert.deepEqual(heads.slice(firstHead).filter((h) => !h.startsWith('GET /health-after ')), []);
    });
  });

  describe('forwarded, sanitized', function () {
    for (const c of FORWARDED) {
      it(c.name, async function () {
        const res = await rawRequest(port, c.data, { expect: c.name.startsWith('Expect') ? 2 : 1 });
        await runCase(c, res);
      });
    }
  });

  // A describe of its own so that it runs last (mocha runs a describe's own tests before its children).
  describe('in the end', function () {
    it('no smuggled request ever reached the upstream, and it saw only well-formed request lines', function () {
      assertNothingSmuggled();
      assert.ok(heads.length > 0);
      for (const h of heads) assert.match(h, /^[A-Z]+ \/\S* HTTP\/1\.1\r\n/);
    });
  });
});
