/**
 * End-to-end HTTP proxying over real sockets: a cage in-process on port 0 in front of node:http
 * (and raw `net`) upstreams. Covers what reaches the upstream (method, raw target, body, Host,
 * request id, forwarding headers from trusted and untrusted peers, hop-by-hop stripping, route
 * header ops, non-ASCII bytes), what reaches the client, routing, peer addresses on a dual-stack
 * listener, and the edge limits (413, 431, 400). Upstream failures: test/fault/.
 */
import assert from 'node:assert/strict';
import { Agent, request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { parseResponses, rawErrorCode, rawHeader, rawRequest } from '../helpers/raw.js';
import {
  errorCode,
  Fixtures,
  hasIpv6Loopback,
  readAll,
  request,
  startCage,
  startEchoUpstream,
  startHttpUpstream,
  startRawUpstream,
  type EchoReport,
  type HttpUpstream,
} from '../helpers/servers.js';
import { waitUntil } from '../helpers/wait.js';

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

function report(body: Buffer): EchoReport {
  return JSON.parse(body.toString()) as EchoReport;
}

/** Every value the upstream received for `name` (rawHeaders keeps repeats). */
function received(r: EchoReport, name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < r.rawHeaders.length; i += 2) if (r.rawHeaders[i]!.toLowerCase() === name) out.push(r.rawHeaders[i + 1]!);
  return out;
}

describe('e2e: proxy forwarding', function () {
  const fx = new Fixtures();
  let echo: HttpUpstream;
  let port: number;

  before(async function () {
    echo = await startEchoUpstream(fx);
    const app = await startHttpUpstream((req, res) => {
      readAll(req).then((body) => {
        res.writeHead(201, { 'content-type': 'text/plain', 'x-app': 'yes', 'x-request-id': 'upstream-made-this-up', 'set-cookie': ['a=1', 'b=2'] });
        res.end(`${req.method} ${req.url} ${body.toString()}`);
      }, () => res.destroy());
    }, fx);
    ({ port } = await startCage(
      [
        { name: 'app', match: { path: '/app' }, upstreams: [app.url] },
        { name: 'echo', upstreams: [echo.url] },
      ],
      // A trusted list that does not include the test client (127.0.0.1).
      { trusted_proxies: ['10.0.0.0/8'] },
      fx,
    ));
  });
  after(() => fx.closeAll());

  it('forwards method, raw path + query and body; returns status, headers and body', async function () {
    const path = '/app/a%2Fb/c%20d/%C3%A9;p=1?x=1&y=%2F&z&q=a+b&&e=';
    const r = await request(port, { method: 'POST', path, body: 'hello body', headers: { 'content-type': 'text/plain' } });
    assert.equal(r.status, 201);
    assert.equal(r.headers['x-app'], 'yes');
    assert.equal(r.headers['content-type'], 'text/plain');
    assert.deepEqual(r.headers['set-cookie'], ['a=1', 'b=2']);
    assert.equal(r.body.toString(), `POST ${path} hello body`);
  });

  it('forwards every standard method unchanged (extension methods: see hostile-http)', async function () {
    for (const method of ['GET', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE']) {
      const r = await request(port, { method, path: '/m?k=v' });
      assert.equal(r.status, 200, method);
      const rep = report(r.body);
      assert.equal(rep.method, method);
      assert.equal(rep.url, '/m?k=v');
    }
  });

  it('forwards a chunked request body (no Content-Length) intact', async function () {
    const body = await new Promise<Buffer>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port, method: 'POST', path: '/chunked', agent: false }, (res) => readAll(res).then(resolve, reject));
      req.on('error', reject);
      req.write('part one, ');
      setImmediate(() => req.end('part two'));
    });
    const rep = report(body);
    assert.equal(rep.body, 'part one, part two');
    assert.equal(received(rep, 'transfer-encoding').length + received(rep, 'content-length').length, 1, 'exactly one framing header');
  });

  it('passes the Host header through unchanged', async function () {
    const r = await request(port, { path: '/h', headers: { host: 'App.Example:8443' } });
    assert.deepEqual(received(report(r.body), 'host'), ['App.Example:8443']);
  });

  it('keeps a valid client X-Request-Id, sends it upstream and returns it', async function () {
    const id = 'client-id_1.2:3@4/5+6=7';
    const r = await request(port, { path: '/rid', headers: { 'x-request-id': id } });
    assert.equal(r.headers['x-request-id'], id);
    assert.deepEqual(received(report(r.body), 'x-request-id'), [id]);
  });

  it('replaces a malformed or missing X-Request-Id with a generated one, upstream and client alike', async function () {
    for (const bad of ['has spaces', 'x'.repeat(201), 'semi;colon', undefined]) {
      const r = await request(port, { path: '/rid', headers: bad === undefined ? {} : { 'x-request-id': bad } });
      const id = r.headers['x-request-id'] as string;
      assert.match(id, UUID_RE, String(bad));
      assert.deepEqual(received(report(r.body), 'x-request-id'), [id]);
    }
    const a = await request(port, { path: '/rid' });
    const b = await request(port, { path: '/rid' });
    assert.notEqual(a.headers['x-request-id'], b.headers['x-request-id']);
  });

  it("replaces the upstream's own X-Request-Id on the response", async function () {
    const r = await request(port, { path: '/app/x', headers: { 'x-request-id': 'mine-123' } });
    const ids = r.rawHeaders.filter((_, i) => i % 2 === 1 && r.rawHeaders[i - 1]!.toLowerCase() === 'x-request-id');
    assert.deepEqual(ids, ['mine-123']);
  });

  it('replaces client forwarding headers when the peer is not a trusted proxy', async function () {
    const r = await request(port, {
      path: '/fwd',
      headers: {
        host: 'shop.example',
        'x-forwarded-for': '6.6.6.6',
        'x-forwarded-proto': 'https',
        'x-forwarded-host': 'evil.example',
        forwarded: 'for=6.6.6.6;proto=https',
      },
    });
    const rep = report(r.body);
    assert.deepEqual(received(rep, 'x-forwarded-for'), ['127.0.0.1']);
    assert.deepEqual(received(rep, 'x-forwarded-proto'), ['http']);
    assert.deepEqual(received(rep, 'x-forwarded-host'), ['shop.example']);
    assert.deepEqual(received(rep, 'forwarded'), ['for=127.0.0.1;host=shop.example;proto=http']);
  });

  it('quotes a Forwarded host that is not a token (RFC 7239 §4)', async function () {
    const r = await request(port, { path: '/fwd', headers: { host: 'shop.example:8080' } });
    assert.deepEqual(received(report(r.body), 'forwarded'), ['for=127.0.0.1;host="shop.example:8080";proto=http']);
  });

  it('removes hop-by-hop request headers and any header named in Connection', async function () {
    const res = await rawRequest(
      port,
      'GET /hop HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Secret-Hop\r\nX-Secret-Hop: 1\r\nKeep-Alive: timeout=5\r\n' +
        'TE: trailers\r\nTrailer: X-T\r\nUpgrade: h2c\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\nProxy-Connection: keep-alive\r\nX-Normal: kept\r\n\r\n',
    );
    assert.equal(res.responses[0]?.status, 200);
    const rep = report(res.responses[0]!.body);
    for (const h of ['x-secret-hop', 'keep-alive', 'te', 'trailer', 'upgrade', 'proxy-authorization', 'proxy-connection']) {
      assert.deepEqual(received(rep, h), [], h);
    }
    assert.doesNotMatch(received(rep, 'connection').join(','), /x-secret-hop/i);
    assert.deepEqual(received(rep, 'x-normal'), ['kept']);
  });

  it('honours every Connection header when several are sent', async function () {
    const res = await rawRequest(
      port,
      'GET /hop HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nConnection: X-First\r\nConnection: x-second, X-Third\r\n' +
        'X-First: 1\r\nX-Second: 2\r\nX-Third: 3\r\nX-Normal: kept\r\n\r\n',
    );
    const rep = report(res.responses[0]!.body);
    for (const h of ['x-first', 'x-second', 'x-third']) assert.deepEqual(received(rep, h), [], h);
    assert.deepEqual(received(rep, 'x-normal'), ['kept']);
  });

  it('keeps a connection alive across requests', async function () {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const reused: boolean[] = [];
      for (let i = 0; i < 3; i++) {
        await new Promise<void>((resolve, reject) => {
          const req = httpRequest({ host: '127.0.0.1', port, path: `/ka/${i}`, agent }, (res) => {
            reused.push(req.reusedSocket);
            readAll(res).then(() => resolve(), reject);
          });
          req.on('error', reject);
          req.end();
        });
      }
      assert.deepEqual(reused, [false, true, true]);
    } finally {
      agent.destroy();
    }
  });
});

describe('e2e: forwarding headers from trusted proxies', function () {
  const fx = new Fixtures();
  let port: number;

  before(async function () {
    const echo = await startEchoUpstream(fx);
    ({ port } = await startCage([{ upstreams: [echo.url] }], { trusted_proxies: ['127.0.0.1/32'] }, fx));
  });
  after(() => fx.closeAll());

  it('appends the peer to X-Forwarded-For and Forwarded, keeps the proxy-reported proto and host', async function () {
    const r = await request(port, {
      path: '/fwd',
      headers: {
        host: 'internal:8080',
        'x-forwarded-for': ['203.0.113.7', '198.51.100.2'],
        'x-forwarded-proto': 'https',
        'x-forwarded-host': 'shop.example',
        forwarded: 'for=203.0.113.7;proto=https;host=shop.example',
      },
    });
    const rep = report(r.body);
    assert.deepEqual(received(rep, 'x-forwarded-for'), ['203.0.113.7, 198.51.100.2, 127.0.0.1']);
    assert.deepEqual(received(rep, 'x-forwarded-proto'), ['https']);
    assert.deepEqual(received(rep, 'x-forwarded-host'), ['shop.example']);
    assert.deepEqual(received(rep, 'forwarded'), ['for=203.0.113.7;proto=https;host=shop.example, for=127.0.0.1;host="internal:8080";proto=http']);
  });

  it('builds the headers afresh when a trusted peer sent none', async function () {
    const r = await request(port, { path: '/fwd', headers: { host: 'a.example' } });
    const rep = report(r.body);
    assert.deepEqual(received(rep, 'x-forwarded-for'), ['127.0.0.1']);
    assert.deepEqual(received(rep, 'x-forwarded-proto'), ['http']);
    assert.deepEqual(received(rep, 'x-forwarded-host'), ['a.example']);
  });
});

describe('e2e: peer addresses on a dual-stack listener', function () {
  const fx = new Fixtures();
  let port: number;

  before(async function () {
    if (!(await hasIpv6Loopback())) this.skip();
    const echo = await startEchoUpstream(fx);
    ({ port } = await startCage([{ upstreams: [echo.url] }], { listen: '[::]:0', trusted_proxies: ['127.0.0.1/32'] }, fx));
  });
  after(() => fx.closeAll());

  // uWS prints an IPv4 peer of a [::] listener as 0000:0000:0000:0000:0000:ffff:7f00:0001.
  it('an IPv4 peer is forwarded as IPv4 text, and still matches an IPv4 trusted_proxies entry', async function () {
    const r = await request(port, { address: '127.0.0.1', headers: { host: 'a', 'x-forwarded-for': '203.0.113.9' } });
    const rep = report(r.body);
    assert.deepEqual(received(rep, 'x-forwarded-for'), ['203.0.113.9, 127.0.0.1']);
    assert.deepEqual(received(rep, 'forwarded'), ['for=127.0.0.1;host=a;proto=http']);
  });

  it('an IPv6 peer is forwarded in RFC 5952 form (::1), bracketed and quoted in Forwarded', async function () {
    const r = await request(port, { address: '::1', headers: { host: 'a' } });
    const rep = report(r.body);
    assert.deepEqual(received(rep, 'x-forwarded-for'), ['::1']);
    assert.deepEqual(received(rep, 'forwarded'), ['for="[::1]";host=a;proto=http']);
  });
});

describe('e2e: response hop-by-hop headers and route header ops', function () {
  const fx = new Fixtures();
  let port: number;
  let echo: HttpUpstream & { last: EchoReport | undefined };

  before(async function () {
    // A raw upstream so the response carries exactly the hop-by-hop fields we choose.
    const raw = await startRawUpstream((socket) => {
      let buf = '';
      socket.on('data', (d: Buffer) => {
        buf += d.toString('latin1');
        if (!buf.includes('\r\n\r\n')) return;
        buf = '';
        socket.write(
          'HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Resp-Hop\r\nConnection: X-Resp-Hop2\r\nX-Resp-Hop: 1\r\nX-Resp-Hop2: 2\r\nKeep-Alive: timeout=5\r\nTrailer: X-T\r\n' +
            'Upgrade: h2c\r\nProxy-Authenticate: Basic\r\nX-Powered-By: leaky/1.0\r\nX-Kept: 1\r\nTransfer-Encoding: chunked\r\n\r\n' +
            '5\r\nhello\r\n0\r\nX-T: v\r\n\r\n',
        );
      });
    }, fx);
    echo = await startEchoUpstream(fx);
    ({ port } = await startCage(
      [
        {
          match: { path: '/raw' },
          upstreams: [raw.url],
          headers: { response: { set: { 'X-Frame-Options': 'DENY' }, remove: ['x-powered-by'] } },
        },
        {
          match: { path: '/ops' },
          upstreams: [echo.url],
          headers: {
            request: { set: { 'X-Added': 'by-cage', 'X-Overridden': 'cage' }, remove: ['x-secret', 'cookie'] },
            response: { set: { 'Content-Type': 'application/x-cage' } },
          },
        },
      ],
      {},
      fx,
    ));
  });
  after(() => fx.closeAll());

  it('removes hop-by-hop response headers (and those named in any Connection header), keeps the rest', async function () {
    const res = await rawRequest(port, 'GET /raw HTTP/1.1\r\nHost: a\r\n\r\n');
    const r = res.responses[0]!;
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), 'hello');
    for (const h of ['x-resp-hop', 'x-resp-hop2', 'keep-alive', 'trailer', 'upgrade', 'proxy-authenticate']) assert.equal(rawHeader(r, h), undefined, h);
    assert.doesNotMatch(r.headers.get('connection')?.join(',') ?? '', /x-resp-hop/i);
    assert.equal(rawHeader(r, 'x-kept'), '1');
  });

  it('applies route response set/remove', async function () {
    const res = await rawRequest(port, 'GET /raw HTTP/1.1\r\nHost: a\r\n\r\n');
    const r = res.responses[0]!;
    assert.equal(rawHeader(r, 'x-powered-by'), undefined);
    assert.deepEqual(r.headers.get('x-frame-options'), ['DENY']);
  });

  it('applies route request set/remove; set replaces the client value', async function () {
    const r = await request(port, {
      path: '/ops/x',
      headers: { 'x-secret': 's3cret', cookie: 'sid=1', 'x-overridden': 'client', 'x-other': 'kept' },
    });
    assert.equal(r.status, 200);
    const rep = echo.last!;
    assert.deepEqual(received(rep, 'x-secret'), []);
    assert.deepEqual(received(rep, 'cookie'), []);
    assert.deepEqual(received(rep, 'x-added'), ['by-cage']);
    assert.deepEqual(received(rep, 'x-overridden'), ['cage']);
    assert.deepEqual(received(rep, 'x-other'), ['kept']);
    assert.equal(r.headers['content-type'], 'application/x-cage');
  });
});

describe('e2e: bytes outside ASCII pass through unchanged', function () {
  const fx = new Fixtures();
  let port: number;
  let lastHead = Buffer.alloc(0);
  const UTF8_NAME = Buffer.from('résumé €.pdf');
  const LATIN1_BYTES = Buffer.from([0x72, 0xe9, 0x73]); // "rés" in latin1: not UTF-8

  before(async function () {
    const up = await startRawUpstream((socket) => {
      let buf = Buffer.alloc(0);
      socket.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        const end = buf.indexOf('\r\n\r\n');
        if (end === -1) return;
        lastHead = buf.subarray(0, end + 2);
        buf = Buffer.alloc(0);
        socket.write(Buffer.concat([
          Buffer.from('HTTP/1.1 200 OK\r\nContent-Disposition: attachment; filename="'), UTF8_NAME,
          Buffer.from('"\r\nX-Legacy: '), LATIN1_BYTES, Buffer.from('\r\nContent-Length: 2\r\n\r\nok'),
        ]));
      });
    }, fx);
    ({ port } = await startCage([{ upstreams: [up.url] }], {}, fx));
  });
  after(() => fx.closeAll());

  const bytes = (...parts: Array<string | Buffer>) => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : p)));

  it('a raw UTF-8 request target reaches the upstream byte for byte', async function () {
    const target = bytes('/files/', Buffer.from('ünï €'.replace(' ', '')), '?q=', Buffer.from('ß'));
    const res = await rawRequest(port, bytes('GET ', target, ' HTTP/1.1\r\nHost: a\r\n\r\n'));
    assert.equal(res.responses[0]?.status, 200);
    assert.deepEqual(lastHead.subarray(4, 4 + target.length), target);
  });

  it('a UTF-8 request header value reaches the upstream byte for byte', async function () {
    const value = bytes('name=', Buffer.from('Zoë €'), ';x');
    const res = await rawRequest(port, bytes('GET / HTTP/1.1\r\nHost: a\r\nX-Name: ', value, '\r\n\r\n'));
    assert.equal(res.responses[0]?.status, 200);
    assert.ok(lastHead.includes(bytes('\r\nx-name: ', value, '\r\n')), lastHead.toString('latin1'));
  });

  it('response header values reach the client byte for byte, UTF-8 or not', async function () {
    const res = await rawRequest(port, 'GET / HTTP/1.1\r\nHost: a\r\n\r\n');
    assert.ok(res.raw.includes(bytes('\r\ncontent-disposition: attachment; filename="', UTF8_NAME, '"\r\n')), res.raw.toString('latin1'));
    assert.ok(res.raw.includes(bytes('\r\nx-legacy: ', LATIN1_BYTES, '\r\n')), res.raw.toString('latin1'));
  });

  it('a request header that is not UTF-8 cannot be passed on as sent: 400 GW_BAD_REQUEST', async function () {
    const res = await rawRequest(port, bytes('GET / HTTP/1.1\r\nHost: a\r\nX-Legacy: ', LATIN1_BYTES, '\r\n\r\n'));
    assert.equal(res.responses[0]?.status, 400);
    assert.equal(rawErrorCode(res.responses[0]!), 'GW_BAD_REQUEST');
  });
});

describe('e2e: routing', function () {
  const fx = new Fixtures();
  let port: number;

  const named = (name: string) => startHttpUpstream((_req, res) => res.end(name), fx);

  before(async function () {
    const [exact, wild, api, apiV2, slash] = await Promise.all([named('exact'), named('wild'), named('api'), named('api-v2'), named('static')]);
    ({ port } = await startCage(
      [
        { name: 'exact', match: { host: ['exact.test', 'alias.test'] }, upstreams: [exact!.url] },
        { name: 'wild', match: { host: '*.wild.test' }, upstreams: [wild!.url] },
        { name: 'api', match: { path: '/api' }, upstreams: [api!.url] },
        { name: 'api-v2', match: { path: '/api/v2' }, upstreams: [apiV2!.url] },
        { name: 'static', match: { path: '/static/' }, upstreams: [slash!.url] },
      ],
      {},
      fx,
    ));
  });
  after(() => fx.closeAll());

  const cases: Array<[host: string, path: string, expected: string | 404]> = [
    ['exact.test', '/', 'exact'],
    ['alias.test', '/anything', 'exact'],
    ['EXACT.Test:8080', '/x', 'exact'],
    ['exact.test', '/api/v2', 'exact'], // an exact host beats any-host routes
    ['a.wild.test', '/', 'wild'],
    ['deep.a.wild.test', '/x', 'wild'],
    ['wild.test', '/', 404], // `*.wild.test` needs a label in front
    ['other.test', '/api', 'api'],
    ['other.test', '/api/', 'api'],
    ['other.test', '/api?x=1', 'api'],
    ['other.test', '/api/users', 'api'],
    ['other.test', '/apix', 404], // prefixes match at segment boundaries only
    ['other.test', '/api/v2', 'api-v2'], // the longest prefix wins
    ['other.test', '/api/v2/items?q', 'api-v2'],
    ['other.test', '/api/v2x', 'api'],
    ['other.test', '/static/app.js', 'static'],
    ['other.test', '/static', 404], // a prefix ending in / needs the slash
    ['other.test', '/', 404],
  ];
  for (const [host, path, expected] of cases) {
    it(`${host}${path} → ${expected === 404 ? '404 GW_NO_ROUTE' : expected}`, async function () {
      const r = await request(port, { path, headers: { host } });
      if (expected === 404) {
        assert.equal(r.status, 404);
        assert.equal(errorCode(r), 'GW_NO_ROUTE');
        assert.equal((JSON.parse(r.body.toString()) as { error: { request_id: string } }).error.request_id, r.headers['x-request-id']);
      } else {
        assert.equal(r.status, 200);
        assert.equal(r.body.toString(), expected);
      }
    });
  }
});

describe('e2e: request limits at the edge', function () {
  const fx = new Fixtures();
  let port: number;
  let up: HttpUpstream;

  before(async function () {
    up = await startHttpUpstream((req, res) => {
      readAll(req).then((b) => res.end(`got ${b.length}`), () => res.destroy());
    }, fx);
    ({ port } = await startCage([{ upstreams: [up.url], max_body_bytes: 1000 }], { limits: { max_header_bytes: '2KiB' } }, fx));
  });
  after(() => fx.closeAll());

  it('a body of exactly max_body_bytes passes', async function () {
    const r = await request(port, { method: 'POST', body: 'x'.repeat(1000) });
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), 'got 1000');
  });

  it('Content-Length over max_body_bytes → 413 GW_BODY_TOO_LARGE, connection closed, upstream not contacted', async function () {
    const before = up.count;
    const res = await rawRequest(port, 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1001\r\n\r\n', { untilClose: true });
    assert.equal(res.closed, true);
    assert.equal(res.responses[0]?.status, 413);
    assert.equal(rawErrorCode(res.responses[0]!), 'GW_BODY_TOO_LARGE');
    assert.equal(up.count, before);
  });

  it('headers over limits.max_header_bytes → 431 GW_HEADERS_TOO_LARGE', async function () {
    const r = await request(port, { headers: { 'x-big': 'a'.repeat(2100) } });
    assert.equal(r.status, 431);
    assert.equal(errorCode(r), 'GW_HEADERS_TOO_LARGE');
  });

  it('many small headers adding up over the limit → 431 too', async function () {
    const headers: Record<string, string> = {};
    for (let i = 0; i < 30; i++) headers[`x-h${i}`] = 'v'.repeat(70);
    const r = await request(port, { headers });
    assert.equal(r.status, 431);
    assert.equal(errorCode(r), 'GW_HEADERS_TOO_LARGE');
  });

  it('an empty Host → 400 GW_BAD_REQUEST', async function () {
    const res = await rawRequest(port, 'GET / HTTP/1.1\r\nHost:\r\n\r\n');
    assert.equal(res.responses[0]?.status, 400);
    assert.equal(rawErrorCode(res.responses[0]!), 'GW_BAD_REQUEST');
  });
});

describe('e2e: a chunked upload crossing max_body_bytes mid-stream', function () {
  const fx = new Fixtures();
  let port: number;
  /** What the upstream saw of the request: bytes, and how the request ended. */
  const seen = { bytes: 0, ended: false, aborted: false };
  const CHUNK = `${(600).toString(16)}\r\n${'x'.repeat(600)}\r\n`;

  before(async function () {
    const up = await startHttpUpstream((req, res) => {
      seen.bytes = 0;
      seen.ended = seen.aborted = false;
      if (req.url === '/streaming') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('started');
      }
      req.on('data', (c: Buffer) => (seen.bytes += c.length));
      req.on('end', () => {
        seen.ended = true;
        res.end('done');
      });
      req.on('aborted', () => (seen.aborted = true));
      req.on('error', () => (seen.aborted = true));
    }, fx);
    ({ port } = await startCage([{ upstreams: [up.url], max_body_bytes: 1000 }], {}, fx));
  });
  after(() => fx.closeAll());

  async function upload(path: string, waitForHead: boolean): Promise<{ raw: string; closed: boolean }> {
    const socket = connect({ host: '127.0.0.1', port });
    let raw = '';
    let closed = false;
    socket.on('data', (d: Buffer) => (raw += d.toString('latin1')));
    socket.on('close', () => (closed = true));
    socket.on('error', () => undefined);
    socket.write(`POST ${path} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n${CHUNK}`);
    await waitUntil(() => seen.bytes === 600, 'the first 600 bytes upstream');
    if (waitForHead) await waitUntil(() => raw.includes('started'), 'the response head');
    socket.write(CHUNK); // 1200 > 1000
    await waitUntil(() => closed, 'the connection to close');
    return { raw, closed };
  }

  it('before the upstream answered: 413 GW_BODY_TOO_LARGE, connection closed, upstream request aborted', async function () {
    const { raw } = await upload('/waits', false);
    const [r] = parseResponses(Buffer.from(raw, 'latin1'), true, false);
    assert.equal(r?.status, 413);
    assert.equal(rawErrorCode(r!), 'GW_BODY_TOO_LARGE');
    await waitUntil(() => seen.aborted, 'the upstream request to be aborted');
    assert.equal(seen.ended, false, 'the upstream saw a complete-looking body');
  });

  it('after the upstream started answering: the response is cut and the connection closed (a 413 can no longer be sent)', async function () {
    const { raw } = await upload('/streaming', true);
    const [r] = parseResponses(Buffer.from(raw, 'latin1'), true, false);
    assert.equal(r?.status, 200);
    assert.equal(r?.complete, false, 'the cut response must not look complete');
    await waitUntil(() => seen.aborted, 'the upstream request to be aborted');
    assert.equal(seen.ended, false, 'the upstream saw a complete-looking body');
  });
});
