/**
 * Post-quantum envelopes through a real cage (RFC 9458 framing, X-Wing HPKE, Binary HTTP inside),
 * over real sockets: `pqFetch` round trips to node:http upstreams (what the app sees is the inner
 * request, what the client gets is the app's answer), the key configuration endpoint, routes that
 * refuse plaintext, hostile envelopes (answered in the clear before decryption, sealed after it,
 * and never forwarded), sealed routing and upstream errors, keys across restarts and a rotation
 * done by a restart, the replay window, forwarding headers behind a trusted proxy, and the audit
 * record of an encapsulated exchange (the inner method and path, digests of the inner bytes).
 * Envelopes the client library would never build are made with pq/ohttp `encapsulateRequest`.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, fetch as undiciFetch } from 'undici';
import { clearPqKeyCache, pqFetch } from '../../client/index.js';
import { CageError, isCageError } from '../../core/errors.js';
import { Cage } from '../../gateway/cage.js';
import { buildConfig } from '../../gateway/config/load.js';
import type { Stage } from '../../gateway/pipeline.js';
import { decodeResponse, encodeRequest, encodeVarint, type BhttpRequest, type BhttpResponse, type Field } from '../../pq/bhttp.js';
import { AEAD_AES_128_GCM, AEAD_AES_256_GCM, AEAD_CHACHA20_POLY1305, KDF_HKDF_SHA256, KDF_HKDF_SHA384, KEM_DHKEM_X25519_HKDF_SHA256, KEM_XWING, kemById } from '../../pq/hpke.js';
import { decodeKeyConfigList, encapsulateRequest, encodeKeyConfigList, type EncapsulatedRequest, type KeyConfig } from '../../pq/ohttp.js';
import { receiptOf, recordAt, sha256hex } from '../helpers/audit.js';
import { baseConfig, startAdminCage, tempDir } from '../helpers/e2e.js';
import { closedPort, errorCode, Fixtures, readAll, request, startEchoUpstream, startHttpUpstream, type EchoReport, type HttpUpstream, type Reply } from '../helpers/servers.js';

const KEYS_PATH = '/.well-known/ohttp-keys';
const X_WING_ENC = 1120;
const AEAD_TAG = 16;
const LARGE = randomBytes(256 * 1024);

// ---- helpers ----------------------------------------------------------------------------------

/** The outer exchanges pqFetch made (its `fetch` option), so a test can see what crossed the wire. */
interface Wire {
  fetch: typeof globalThis.fetch;
  calls: { url: string; method: string; contentType: string | null; status: number; headers: Headers }[];
}

function wire(base: typeof globalThis.fetch = globalThis.fetch): Wire {
  const w: Wire = {
    calls: [],
    fetch: async (input, init) => {
      const res = await base(input, init);
      const url = input instanceof Request ? input.url : String(input);
      const headers = new Headers(init?.headers);
      w.calls.push({ url, method: init?.method ?? 'GET', contentType: headers.get('content-type'), status: res.status, headers: res.headers });
      return res;
    },
  };
  return w;
}

function report(text: string): EchoReport {
  return JSON.parse(text) as EchoReport;
}

/** Every value the upstream received for `name` (rawHeaders keeps repeats). */
function received(r: EchoReport, name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < r.rawHeaders.length; i += 2) if (r.rawHeaders[i]!.toLowerCase() === name) out.push(r.rawHeaders[i + 1]!);
  return out;
}

async function fetchKeys(port: number): Promise<{ reply: Reply; configs: KeyConfig[] }> {
  const reply = await request(port, { path: KEYS_PATH });
  assert.equal(reply.status, 200, reply.body.toString());
  return { reply, configs: decodeKeyConfigList(reply.body) };
}

/** A BHTTP request (defaults: GET https://<authority>/) sealed to `config`. */
function sealRequest(config: KeyConfig, req: Partial<BhttpRequest> & { authority: string }, opts: { kdfId?: number; aeadId?: number } = {}): EncapsulatedRequest {
  const inner = encodeRequest({ method: 'GET', scheme: 'https', path: '/', headers: [['date', new Date().toUTCString()]], body: Buffer.alloc(0), ...req });
  return encapsulateRequest(config, inner, opts);
}

/**
 * A known-length BHTTP request (RFC 9292 §3.1) written byte by byte, without the encoder's checks:
 * for inner requests no honest client would send.
 */
function rawBhttp(r: { method?: string; authority?: string; path: string; fields?: Field[]; body?: Buffer }): Buffer {
  const prefixed = (b: Buffer): Buffer => Buffer.concat([encodeVarint(b.length), b]);
  const fields = Buffer.concat((r.fields ?? []).flatMap(([n, v]) => [prefixed(Buffer.from(n, 'latin1')), prefixed(Buffer.from(v, 'latin1'))]));
  return Buffer.concat([
    encodeVarint(0),
    ...[r.method ?? 'GET', 'https', r.authority ?? 'app.example', r.path].map((x) => prefixed(Buffer.from(x, 'latin1'))),
    prefixed(fields),
    prefixed(r.body ?? Buffer.alloc(0)),
    prefixed(Buffer.alloc(0)),
  ]);
}

/** POSTs raw envelope bytes to the cage. */
function postEnvelope(port: number, path: string, body: Buffer, headers: Record<string, string> = {}): Promise<Reply> {
  return request(port, { method: 'POST', path, headers: { 'content-type': 'message/ohttp-req', ...headers }, body });
}

/** An encapsulated answer: outer 200 message/ohttp-res, opened and decoded. */
function openAnswer(reply: Reply, sealed: EncapsulatedRequest): BhttpResponse {
  assert.equal(reply.status, 200, `outer status: ${reply.body.toString('latin1').slice(0, 200)}`);
  assert.equal(reply.headers['content-type'], 'message/ohttp-res');
  assert.equal(reply.headers['cache-control'], 'no-store');
  return decodeResponse(sealed.decapsulateResponse(reply.body));
}

function header(fields: Field[], name: string): string | undefined {
  return fields.find(([n]) => n === name)?.[1];
}

/** The error code of a sealed JSON error body (and its status). */
function sealedError(answer: BhttpResponse): { status: number; code: string } {
  assert.equal(header(answer.headers, 'content-type'), 'application/json');
  return { status: answer.status, code: errorCode(Buffer.from(answer.body).toString('utf8')) };
}

/** An answer in the clear: the status and the code of its JSON body. */
function clearError(reply: Reply): { status: number; code: string } {
  assert.equal(reply.headers['content-type'], 'application/json', `expected a JSON error, got ${String(reply.headers['content-type'])}`);
  return { status: reply.status, code: errorCode(reply) };
}

async function rejectsWithCode(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(isCageError(err), `not a CageError: ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return true;
  });
}

/** An upstream that counts what reaches it and answers 200 JSON naming the request. */
function startCounting(fx: Fixtures): Promise<HttpUpstream> {
  return startHttpUpstream((req, res) => {
    readAll(req).then((body) => {
      res.writeHead(200, { 'content-type': 'application/json', 'x-guarded': 'yes' });
      res.end(JSON.stringify({ guarded: true, method: req.method, url: req.url, body: body.toString() }));
    }, () => res.destroy());
  }, fx);
}

// ---- one cage, many routes -------------------------------------------------------------------

describe('e2e: post-quantum envelopes through the cage', function () {
  const fx = new Fixtures();
  let echo: HttpUpstream & { last: EchoReport | undefined };
  let app: HttpUpstream;
  let guarded: HttpUpstream;
  let cage: Cage;
  let port: number;
  let base: string;
  let config: KeyConfig;

  before(async function () {
    clearPqKeyCache();
    echo = await startEchoUpstream(fx);
    app = await startHttpUpstream((req, res) => {
      readAll(req).then((body) => {
        if (req.url === '/app/big') {
          res.writeHead(200, { 'content-type': 'application/octet-stream' });
          res.end(Buffer.alloc(2 * 1024 * 1024, 0x61));
          return;
        }
        res.writeHead(201, { 'content-type': 'application/octet-stream', 'x-app': 'yes', 'set-cookie': ['a=1', 'b=2'] });
        res.end(Buffer.concat([Buffer.from(`${req.method} ${req.url}\n`), body]));
      }, () => res.destroy());
    }, fx);
    guarded = await startCounting(fx);
    const down = await closedPort();
    cage = await startAdminCage(
      [
        { name: 'echo', match: { path: '/echo' }, upstreams: [echo.url] },
        { name: 'app', match: { path: '/app' }, upstreams: [app.url] },
        { name: 'secret', match: { path: '/secret' }, upstreams: [guarded.url], require_pq: true },
        { name: 'small', match: { path: '/small' }, upstreams: [guarded.url], max_body_bytes: '16B' },
        { name: 'down', match: { path: '/down' }, upstreams: [`http://127.0.0.1:${down}`], retries: 0 },
      ],
      // The test client (127.0.0.1) is not a trusted proxy.
      { trusted_proxies: ['10.0.0.0/8'], pq: { max_request_bytes: '1MiB', max_response_bytes: '1MiB' } },
      fx,
    );
    port = cage.port;
    base = `http://127.0.0.1:${port}`;
    [config] = (await fetchKeys(port)).configs as [KeyConfig];
  });
  after(() => fx.closeAll());

  describe('the key configuration endpoint', function () {
    it('serves application/ohttp-keys with the current X-Wing key and its suites, on a path no route matches', async function () {
      const { reply, configs } = await fetchKeys(port);
      assert.equal(reply.headers['content-type'], 'application/ohttp-keys');
      assert.match(String(reply.headers['cache-control']), /^public, max-age=\d+$/);
      assert.equal(configs.length, 1);
      const current = cage.pq!.keys.current.config;
      assert.equal(configs[0]!.keyId, current.keyId);
      assert.equal(configs[0]!.kemId, KEM_XWING);
      assert.equal(configs[0]!.publicKey.length, kemById(KEM_XWING)!.Npk);
      assert.deepEqual(Buffer.from(configs[0]!.publicKey), Buffer.from(current.publicKey));
      assert.deepEqual(configs[0]!.symmetric, [
        { kdfId: KDF_HKDF_SHA256, aeadId: AEAD_AES_256_GCM },
        { kdfId: KDF_HKDF_SHA256, aeadId: AEAD_CHACHA20_POLY1305 },
        { kdfId: KDF_HKDF_SHA256, aeadId: AEAD_AES_128_GCM },
      ]);
      // The path matches no route: any other request to it is a plain 404.
      const post = await request(port, { method: 'POST', path: KEYS_PATH, body: 'x' });
      assert.deepEqual(clearError(post), { status: 404, code: 'GW_NO_ROUTE' });
      assert.deepEqual((await request(port, { path: '/nowhere' })).status, 404);
    });
  });

  describe('round trips with pqFetch', function () {
    it('GET: the app sees the inner method, path, query and headers; the client gets its answer', async function () {
      const w = wire();
      const before = echo.count;
      const res = await pqFetch(`${base}/echo/items/a%2Fb?x=1&y=%2F&z`, {
        headers: { 'x-custom': 'inner value', accept: 'application/json', 'x-forwarded-for': '6.6.6.6' },
        pq: { fetch: w.fetch },
      });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-type'), 'application/json');
      const rep = report(await res.text());
      assert.equal(echo.count, before + 1);
      assert.equal(rep.method, 'GET');
      assert.equal(rep.url, '/echo/items/a%2Fb?x=1&y=%2F&z');
      assert.deepEqual(received(rep, 'x-custom'), ['inner value']);
      assert.deepEqual(received(rep, 'accept'), ['application/json']);
      assert.deepEqual(received(rep, 'host'), [`127.0.0.1:${port}`]);
      assert.equal(received(rep, 'date').length, 1, 'pqFetch adds a Date inside');
      // Forwarding headers come from the outer peer, not from inside the envelope.
      assert.deepEqual(received(rep, 'x-forwarded-for'), ['127.0.0.1']);
      assert.deepEqual(received(rep, 'x-forwarded-proto'), ['http']);
      // Nothing of the envelope reaches the app.
      assert.deepEqual(received(rep, 'content-type'), []);
      assert.equal(rep.body, '');
      // The request id the app got is the one the client gets, inside and outside.
      assert.deepEqual(received(rep, 'x-request-id'), [res.headers.get('x-request-id')]);
      // On the wire: one POST of message/ohttp-req, answered 200 message/ohttp-res (keys were fetched before).
      const posts = w.calls.filter((c) => c.method === 'POST');
      assert.equal(posts.length, 1);
      assert.equal(posts[0]!.url, `${base}/echo/items/a%2Fb?x=1&y=%2F&z`);
      assert.equal(posts[0]!.contentType, 'message/ohttp-req');
      assert.equal(posts[0]!.status, 200);
      assert.equal(posts[0]!.headers.get('content-type'), 'message/ohttp-res');
      assert.equal(posts[0]!.headers.get('x-request-id'), res.headers.get('x-request-id'));
    });

    it('POST with a body: the app gets method, body and content-type; the client gets status, headers and body', async function () {
      const body = JSON.stringify({ order: 42, note: 'ünïcödé' });
      const res = await pqFetch(`${base}/echo/orders?dry=1`, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
      assert.equal(res.status, 200);
      const rep = report(await res.text());
      assert.equal(rep.method, 'POST');
      assert.equal(rep.url, '/echo/orders?dry=1');
      assert.equal(Buffer.from(rep.body, 'latin1').toString('utf8'), body);
      assert.deepEqual(received(rep, 'content-type'), ['application/json']);
      assert.deepEqual(received(rep, 'content-length'), [String(Buffer.byteLength(body))]);
    });

    it("returns the app's own status, headers and a 256 KiB binary body byte for byte", async function () {
      const res = await pqFetch(`${base}/app/upload`, { method: 'PUT', body: LARGE });
      assert.equal(res.status, 201);
      assert.equal(res.headers.get('x-app'), 'yes');
      assert.equal(res.headers.get('content-type'), 'application/octet-stream');
      assert.deepEqual(res.headers.getSetCookie(), ['a=1', 'b=2']);
      const got = Buffer.from(await res.arrayBuffer());
      const head = Buffer.from('PUT /app/upload\n');
      assert.deepEqual(got.subarray(0, head.length), head);
      assert.ok(got.subarray(head.length).equals(LARGE), 'the body came back intact');
    });

    it('concurrent exchanges each get their own answer', async function () {
      const n = 24;
      const answers = await Promise.all(
        Array.from({ length: n }, async (_, i) => {
          const res = await pqFetch(`${base}/app/c${i}`, { method: 'POST', body: `body ${i}`, pq: { keyConfigs: [config] } });
          return { status: res.status, text: await res.text() };
        }),
      );
      answers.forEach((a, i) => {
        assert.equal(a.status, 201);
        assert.equal(a.text, `POST /app/c${i}\nbody ${i}`);
      });
    });

    it('an answer larger than pq.max_response_bytes is refused with a sealed 502', async function () {
      const res = await pqFetch(`${base}/app/big`);
      assert.equal(res.status, 502);
      assert.equal(errorCode(await res.text()), 'GW_UPSTREAM_BAD_RESPONSE');
    });
  });

  describe('a route with require_pq', function () {
    it('refuses plaintext with 403 PQ_REQUIRED, whatever the method, and the app is never asked', async function () {
      const before = guarded.count;
      for (const opts of [
        { path: '/secret/x' },
        { method: 'POST', path: '/secret/x', headers: { 'content-type': 'application/json' }, body: '{"a":1}' },
        // An envelope with the wrong content type is plaintext to the cage.
        { method: 'POST', path: '/secret/x', headers: { 'content-type': 'application/octet-stream' }, body: sealRequest(config, { authority: `127.0.0.1:${port}`, path: '/secret/x' }).bytes },
      ]) {
        const r = await request(port, opts);
        assert.deepEqual(clearError(r), { status: 403, code: 'PQ_REQUIRED' }, `${opts.method ?? 'GET'} ${opts.headers?.['content-type'] ?? ''}`);
      }
      assert.equal(guarded.count, before);
    });

    it('accepts the same request encapsulated', async function () {
      const before = guarded.count;
      const res = await pqFetch(`${base}/secret/x?q=1`, { method: 'POST', body: 'hush' });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('x-guarded'), 'yes');
      assert.deepEqual(await res.json(), { guarded: true, method: 'POST', url: '/secret/x?q=1', body: 'hush' });
      assert.equal(guarded.count, before + 1);
    });
  });

  describe('hostile envelopes never reach the app', function () {
    let counts: number[];
    beforeEach(() => (counts = [echo.count, app.count, guarded.count]));
    afterEach(function () {
      if (this.currentTest?.state === 'passed') assert.deepEqual([echo.count, app.count, guarded.count], counts, 'an upstream was reached');
    });

    const authority = (): string => `127.0.0.1:${port}`;

    it('an unknown key id: 400 PQ_UNKNOWN_KEY in the clear', async function () {
      const other = { ...config, keyId: (config.keyId + 128) & 0xff };
      const sealed = sealRequest(other, { authority: authority(), path: '/secret/x' });
      assert.deepEqual(clearError(await postEnvelope(port, '/secret/x', sealed.bytes)), { status: 400, code: 'PQ_UNKNOWN_KEY' });
    });

    it('a KEM, KDF or AEAD the key does not take: 400 PQ_UNSUPPORTED_SUITE in the clear', async function () {
      const good = sealRequest(config, { authority: authority(), path: '/secret/x' }).bytes;
      const cases: Array<[string, number, number]> = [
        ['KEM DHKEM(X25519)', 1, KEM_DHKEM_X25519_HKDF_SHA256],
        ['KEM 0xffff', 1, 0xffff],
        ['KDF HKDF-SHA384', 3, KDF_HKDF_SHA384],
        ['AEAD export-only', 5, 0xffff],
      ];
      for (const [what, offset, id] of cases) {
        const bad = Buffer.from(good);
        bad.writeUInt16BE(id, offset);
        assert.deepEqual(clearError(await postEnvelope(port, '/secret/x', bad)), { status: 400, code: 'PQ_UNSUPPORTED_SUITE' }, what);
      }
      // A real X25519 key config under the cage's key id (what a confused client would send).
      const x25519 = kemById(KEM_DHKEM_X25519_HKDF_SHA256)!.importPrivateKey(Buffer.alloc(32, 7));
      const dh = sealRequest({ keyId: config.keyId, kemId: KEM_DHKEM_X25519_HKDF_SHA256, publicKey: x25519.publicKey, symmetric: config.symmetric }, { authority: authority() });
      assert.deepEqual(clearError(await postEnvelope(port, '/secret/x', dh.bytes)), { status: 400, code: 'PQ_UNSUPPORTED_SUITE' });
    });

    it('truncated anywhere, or empty: 400 PQ_BAD_ENVELOPE in the clear', async function () {
      const good = sealRequest(config, { authority: authority(), path: '/secret/x' }).bytes;
      for (const length of [0, 1, 6, 7, 7 + X_WING_ENC - 1, 7 + X_WING_ENC, 7 + X_WING_ENC + AEAD_TAG - 1, good.length - 1]) {
        const r = await postEnvelope(port, '/secret/x', good.subarray(0, length));
        assert.deepEqual(clearError(r), { status: 400, code: 'PQ_BAD_ENVELOPE' }, `${length} of ${good.length} bytes`);
      }
    });

    it('flipped bits in the ciphertext, the encapsulated key or the header: 400 PQ_BAD_ENVELOPE in the clear', async function () {
      const clean = sealRequest(config, { authority: authority(), path: '/secret/x' }, { aeadId: AEAD_AES_256_GCM });
      const good = clean.bytes;
      const flips: Array<[string, number, number]> = [
        ['last ciphertext byte', good.length - 1, 0x01],
        ['first ciphertext byte', 7 + X_WING_ENC, 0x80],
        ['a byte of the ML-KEM ciphertext', 7 + 100, 0x10],
        ['a byte of the X25519 share', 7 + X_WING_ENC - 1, 0x02],
      ];
      for (const [what, at, mask] of flips) {
        const bad = Buffer.from(good);
        bad[at]! ^= mask;
        assert.deepEqual(clearError(await postEnvelope(port, '/secret/x', bad)), { status: 400, code: 'PQ_BAD_ENVELOPE' }, what);
      }
      // The header is bound into the HPKE info: naming another suite the key does take fails to open.
      const swapped = Buffer.from(good);
      swapped.writeUInt16BE(AEAD_CHACHA20_POLY1305, 5);
      assert.deepEqual(clearError(await postEnvelope(port, '/secret/x', swapped)), { status: 400, code: 'PQ_BAD_ENVELOPE' }, 'AEAD id swapped');
      // The tampered copies were refused for their damage: the clean one opens and is forwarded.
      assert.equal(openAnswer(await postEnvelope(port, '/secret/x', good), clean).status, 200);
      counts[2]!++;
    });

    it('an envelope over pq.max_request_bytes: 413 GW_BODY_TOO_LARGE in the clear', async function () {
      const r = await postEnvelope(port, '/secret/x', Buffer.concat([sealRequest(config, { authority: authority() }).bytes, Buffer.alloc(1024 * 1024)]));
      assert.deepEqual(clearError(r), { status: 413, code: 'GW_BODY_TOO_LARGE' });
    });

    it('garbage inside a valid envelope: a sealed 400 PQ_BAD_BHTTP', async function () {
      const inners: Array<[string, Buffer]> = [
        ['random bytes', randomBytes(64)],
        ['empty', Buffer.alloc(0)],
        ['a response, not a request', Buffer.from([1, 0x40, 200, 0, 0])],
        ['a request cut in its field section', encodeRequest({ method: 'GET', scheme: 'https', authority: authority(), path: '/secret/x', headers: [['a', 'b']] }).subarray(0, 30)],
        ['a pseudo-field', rawBhttp({ path: '/secret/x', fields: [[':path', '/other']] })],
        ['an upper-case field name', rawBhttp({ path: '/secret/x', fields: [['X-Up', 'a']] })],
        ['CR LF in a field value', rawBhttp({ path: '/secret/x', fields: [['x', 'a\r\ntransfer-encoding: chunked']] })],
        ['a space in the method', rawBhttp({ method: 'GET /secret/x HTTP/1.1\r\n', path: '/secret/x' })],
        ['a relative path', rawBhttp({ path: 'secret/x' })],
        ['a path with a space', rawBhttp({ path: '/secret/x y' })],
        ['an authority with userinfo', rawBhttp({ authority: 'user@127.0.0.1', path: '/secret/x' })],
        ['a content length past the end', Buffer.concat([rawBhttp({ path: '/secret/x' }).subarray(0, -2), Buffer.of(0x3f, 0x61)])],
        ['Expect: 100-continue', encodeRequest({ method: 'POST', scheme: 'https', authority: authority(), path: '/secret/x', headers: [['expect', '100-continue']], body: Buffer.from('x') })],
      ];
      for (const [what, inner] of inners) {
        const sealed = encapsulateRequest(config, inner);
        assert.ok(sealed.bytes.length > 0);
        const answer = openAnswer(await postEnvelope(port, '/secret/x', sealed.bytes), sealed);
        assert.deepEqual(sealedError(answer), { status: 400, code: 'PQ_BAD_BHTTP' }, what);
      }
      // The hand-written encoding itself is sound: a valid request made the same way goes through.
      const control = encapsulateRequest(config, rawBhttp({ authority: authority(), path: '/secret/control', fields: [['x-a', 'b']] }));
      assert.equal(openAnswer(await postEnvelope(port, '/secret/x', control.bytes), control).status, 200);
      counts[2]!++;
    });

    it('inner targets a plain request could not send: a sealed 400 GW_BAD_REQUEST', async function () {
      for (const [method, path] of [['GET', '/secret/../echo/x'], ['GET', '/secret/%2e%2e/echo'], ['GET', '*'], ['OPTIONS', '*'], ['CONNECT', '/secret/x']] as const) {
        const sealed = sealRequest(config, { method, authority: authority(), path });
        const answer = openAnswer(await postEnvelope(port, '/echo/outer', sealed.bytes), sealed);
        assert.deepEqual(sealedError(answer), { status: 400, code: 'GW_BAD_REQUEST' }, `${method} ${path}`);
      }
    });

    it('an inner body over the route limit: a sealed 413 GW_BODY_TOO_LARGE', async function () {
      const sealed = sealRequest(config, { method: 'POST', authority: authority(), path: '/small/x', body: Buffer.alloc(17, 0x78) });
      assert.deepEqual(sealedError(openAnswer(await postEnvelope(port, '/small/x', sealed.bytes), sealed)), { status: 413, code: 'GW_BODY_TOO_LARGE' });
    });

    it('an inner Content-Length that disagrees with the body is not passed on', async function () {
      const sealed = sealRequest(config, { method: 'POST', authority: authority(), path: '/secret/x', headers: [['content-length', '2']], body: Buffer.from('0123456789') });
      assert.deepEqual(sealedError(openAnswer(await postEnvelope(port, '/secret/x', sealed.bytes), sealed)), { status: 400, code: 'GW_BAD_REQUEST' });
    });
  });

  describe('errors after opening are sealed', function () {
    it('an inner path with no route: sealed 404 GW_NO_ROUTE (the outer path had one)', async function () {
      const before = [echo.count, app.count, guarded.count];
      const sealed = sealRequest(config, { authority: `127.0.0.1:${port}`, path: '/nowhere/at/all' });
      const reply = await postEnvelope(port, '/echo/outer', sealed.bytes);
      assert.deepEqual(sealedError(openAnswer(reply, sealed)), { status: 404, code: 'GW_NO_ROUTE' });
      assert.deepEqual([echo.count, app.count, guarded.count], before);
    });

    it('an upstream that is down: sealed 502 (the outer answer is 200 message/ohttp-res)', async function () {
      const w = wire();
      const res = await pqFetch(`${base}/down/x`, { method: 'POST', body: 'lost', pq: { fetch: w.fetch } });
      assert.equal(res.status, 502);
      assert.equal(errorCode(await res.text()), 'GW_UPSTREAM_UNREACHABLE');
      const post = w.calls.find((c) => c.method === 'POST')!;
      assert.equal(post.status, 200);
      assert.equal(post.headers.get('content-type'), 'message/ohttp-res');
    });
  });

  describe('audit', function () {
    it('the outer answer carries a Cage-Receipt; the record holds the inner method, path and digests', async function () {
      const w = wire();
      const body = Buffer.from('audited body');
      const res = await pqFetch(`${base}/app/audited?k=v`, { method: 'PATCH', body, pq: { fetch: w.fetch } });
      assert.equal(res.status, 201);
      const answer = Buffer.from(await res.arrayBuffer());
      const post = w.calls.find((c) => c.method === 'POST')!;
      const outerReceipt = post.headers.get('cage-receipt');
      assert.ok(outerReceipt !== null, 'the outer answer has no Cage-Receipt');
      assert.equal(res.headers.get('cage-receipt'), outerReceipt, 'the sealed answer names the same record');
      const { index } = receiptOf({ headers: { 'cage-receipt': outerReceipt } });
      const { record } = await recordAt(cage.adminPort, index);
      assert.equal(record.method, 'PATCH');
      assert.equal(record.path, '/app/audited?k=v');
      assert.equal(record.host, `127.0.0.1:${port}`);
      assert.equal(record.route, 'app');
      assert.equal(record.status, 201);
      assert.equal(record.requestId, res.headers.get('x-request-id'));
      assert.equal(record.requestBodyLength, body.length);
      assert.equal(record.requestBodyDigest, sha256hex(body));
      assert.equal(record.responseBodyLength, answer.length);
      assert.equal(record.responseBodyDigest, sha256hex(answer));
      assert.equal(record.clientAddress, '127.0.0.1');
    });

    it('a sealed error is recorded with the inner request and its code', async function () {
      const sealed = sealRequest(config, { method: 'DELETE', authority: `127.0.0.1:${port}`, path: '/nowhere/recorded' });
      const reply = await postEnvelope(port, '/echo/outer', sealed.bytes);
      assert.equal(sealedError(openAnswer(reply, sealed)).code, 'GW_NO_ROUTE');
      const { record } = await recordAt(cage.adminPort, receiptOf(reply, 'the sealed error').index);
      assert.equal(record.method, 'DELETE');
      assert.equal(record.path, '/nowhere/recorded');
      assert.equal(record.cageError, 'GW_NO_ROUTE');
      assert.equal(record.status, 404);
    });
  });
});

// ---- keys across restarts -------------------------------------------------------------------

/**
 * fetch without keep-alive: the cages of one test share a process, and a pooled connection to a
 * stopped cage would still be served by it (uWS keeps accepted sockets when its listener closes).
 */
const noKeepAlive = new Agent({ pipelining: 0 });
const freshFetch = ((input: string | URL | Request, init?: RequestInit) =>
  undiciFetch(input as string, { ...(init as object), dispatcher: noKeepAlive } as never)) as unknown as typeof globalThis.fetch;

/** A wire() whose fetch opens a connection per request. */
function freshWire(): Wire {
  return wire(freshFetch);
}

describe('e2e: post-quantum keys across cage restarts', function () {
  const fx = new Fixtures();
  let up: HttpUpstream;
  const routes = (): unknown[] => [{ name: 'secret', upstreams: [up.url], require_pq: true }];

  /**
   * A cage on a fixed port (uWS sets SO_REUSEADDR only on a non-zero port: a cage that listened
   * on port 0 leaves TIME_WAIT sockets that block the next bind for a minute).
   */
  async function start(dataDir: string, port: number, pq: Record<string, unknown> = {}): Promise<Cage> {
    const cage = await Cage.start({ config: buildConfig(baseConfig(dataDir, routes(), { listen: `127.0.0.1:${port}`, admin: { enabled: false }, pq })) });
    fx.add(() => cage.shutdown(1000));
    return cage;
  }

  const keysAt = async (port: number): Promise<Buffer> => (await request(port, { path: KEYS_PATH })).body;

  before(async function () {
    clearPqKeyCache();
    up = await startCounting(fx);
  });
  after(() => fx.closeAll());

  it('the same data_dir serves the same key config, and clients holding it keep working', async function () {
    const dir = tempDir(fx);
    const port = await closedPort();
    const first = await start(dir, port);
    const keysBefore = await keysAt(port);
    const w = freshWire();
    // One client fetched the keys (pqFetch's cache), another pinned them.
    assert.equal((await pqFetch(`http://127.0.0.1:${port}/a`, { pq: { fetch: w.fetch } })).status, 200);
    const pinned = decodeKeyConfigList(keysBefore);
    await first.shutdown(1000);

    const second = await start(dir, port);
    assert.ok((await keysAt(port)).equals(keysBefore), 'the key configuration changed across the restart');
    const before = up.count;
    assert.equal((await pqFetch(`http://127.0.0.1:${port}/b`, { pq: { fetch: w.fetch } })).status, 200);
    assert.equal((await pqFetch(`http://127.0.0.1:${port}/c`, { pq: { keyConfigs: pinned, fetch: freshFetch } })).status, 200);
    assert.equal(up.count, before + 2);
    assert.equal(w.calls.filter((c) => c.url.endsWith(KEYS_PATH)).length, 1, 'the cached key list was used after the restart, not refetched');
    await second.shutdown(1000);

    // Another data_dir is another key: the pinned config does not open there.
    const otherPort = await closedPort();
    await start(tempDir(fx), otherPort);
    assert.ok(!(await keysAt(otherPort)).equals(keysBefore));
    const refused = await pqFetch(`http://127.0.0.1:${otherPort}/d`, { pq: { keyConfigs: pinned, fetch: freshFetch } }).catch((err: unknown) => err);
    assert.ok(isCageError(refused), String(refused));
    assert.ok(['PQ_UNKNOWN_KEY', 'PQ_BAD_ENVELOPE'].includes(refused.code), refused.code);
    assert.equal(up.count, before + 2);
  });

  it('a key older than pq.rotate_every is rotated at start; the old one is taken within pq.grace and refused after it', async function () {
    const dir = tempDir(fx);
    const port = await closedPort();
    const first = await start(dir, port, { rotate_every: '1m', grace: '1h' });
    const [old] = decodeKeyConfigList(await keysAt(port)) as [KeyConfig];
    const next = (old.keyId + 1) & 0xff;
    await first.shutdown(1000);
    // Age the key file by two rotation periods (its format: pq/keys.ts, docs/pq.md).
    const pqDir = join(dir, 'pq');
    const [file] = readdirSync(pqDir).filter((n) => /^key-\d+\.json$/.test(n)) as [string];
    const parsed = JSON.parse(readFileSync(join(pqDir, file), 'utf8')) as { createdAt: number };
    parsed.createdAt -= 2 * 60_000;
    writeFileSync(join(pqDir, file), `${JSON.stringify(parsed)}\n`);

    const second = await start(dir, port, { rotate_every: '1m', grace: '1h' });
    const configs = decodeKeyConfigList(await keysAt(port));
    assert.deepEqual(configs.map((c) => c.keyId), [next, old.keyId], 'newest first, the replaced key still listed');
    const before = up.count;
    assert.equal((await pqFetch(`http://127.0.0.1:${port}/old`, { pq: { keyConfigs: [old], fetch: freshFetch } })).status, 200, 'the replaced key, within its grace');
    assert.equal((await pqFetch(`http://127.0.0.1:${port}/new`, { pq: { keyConfigs: [configs[0]!], fetch: freshFetch } })).status, 200, 'the new key');
    assert.equal(up.count, before + 2);
    await second.shutdown(1000);

    // No grace left: the replaced key is refused in the clear, and nothing is forwarded ...
    await start(dir, port, { rotate_every: '1m', grace: '0s' });
    assert.deepEqual(decodeKeyConfigList(await keysAt(port)).map((c) => c.keyId), [next]);
    await rejectsWithCode(pqFetch(`http://127.0.0.1:${port}/gone`, { pq: { keyConfigs: [old], fetch: freshFetch } }), 'PQ_UNKNOWN_KEY');
    assert.equal(up.count, before + 2);
    // ... and a client whose cached list names it refetches the list once and gets through.
    clearPqKeyCache();
    const w = freshWire();
    let servedStale = false;
    const staleFirst: typeof globalThis.fetch = async (input, init) => {
      if (String(input).endsWith(KEYS_PATH) && !servedStale) {
        servedStale = true;
        return new Response(encodeKeyConfigList([old]), { status: 200, headers: { 'content-type': 'application/ohttp-keys' } });
      }
      return w.fetch(input, init);
    };
    assert.equal((await pqFetch(`http://127.0.0.1:${port}/retry`, { pq: { fetch: staleFirst } })).status, 200);
    assert.ok(servedStale);
    assert.equal(w.calls.filter((c) => c.url.endsWith(KEYS_PATH)).length, 1, 'the key list was fetched again after PQ_UNKNOWN_KEY');
    assert.equal(w.calls.filter((c) => c.method === 'POST').length, 2, 'one refused POST, one answered');
    assert.equal(up.count, before + 3);
  });
});

// ---- replay window ------------------------------------------------------------------------------

describe('e2e: post-quantum replay window', function () {
  const fx = new Fixtures();
  let up: HttpUpstream;
  let cage: Cage;
  let port: number;
  let config: KeyConfig;

  before(async function () {
    up = await startCounting(fx);
    cage = await startAdminCage([{ name: 'api', upstreams: [up.url] }], { pq: { replay_window: '30s' } }, fx);
    port = cage.port;
    [config] = (await fetchKeys(port)).configs as [KeyConfig];
  });
  after(() => fx.closeAll());

  it('the same envelope twice: the second gets a sealed PQ_REPLAY and the app sees one request', async function () {
    const before = up.count;
    const sealed = sealRequest(config, { method: 'POST', authority: `127.0.0.1:${port}`, path: '/pay', body: Buffer.from('once') });
    const first = openAnswer(await postEnvelope(port, '/pay', sealed.bytes), sealed);
    assert.equal(first.status, 200);
    assert.equal(JSON.parse(Buffer.from(first.body).toString()).body, 'once');
    const second = openAnswer(await postEnvelope(port, '/pay', sealed.bytes), sealed);
    assert.deepEqual(sealedError(second), { status: 400, code: 'PQ_REPLAY' });
    assert.equal(up.count, before + 1);
    // A fresh envelope of the same request is a new request.
    const again = sealRequest(config, { method: 'POST', authority: `127.0.0.1:${port}`, path: '/pay', body: Buffer.from('once') });
    assert.equal(openAnswer(await postEnvelope(port, '/pay', again.bytes), again).status, 200);
    assert.equal(up.count, before + 2);
  });

  it('a config reload that keeps the window keeps the replay cache', async function () {
    const sealed = sealRequest(config, { method: 'POST', authority: `127.0.0.1:${port}`, path: '/pay', body: Buffer.from('before reload') });
    assert.equal(openAnswer(await postEnvelope(port, '/pay', sealed.bytes), sealed).status, 200);
    const before = up.count;
    // Another pq limit changes; the replay window does not.
    const text = JSON.stringify(baseConfig(cage.config.dataDir, [{ name: 'api', upstreams: [up.url] }], { pq: { replay_window: '30s', max_request_bytes: '8MiB' } }));
    await cage.reload(text);
    assert.equal(cage.config.pq.maxRequestBytes, 8 * 1024 * 1024, 'the reload took effect');
    const again = openAnswer(await postEnvelope(port, '/pay', sealed.bytes), sealed);
    assert.deepEqual(sealedError(again), { status: 400, code: 'PQ_REPLAY' });
    assert.equal(up.count, before, 'the replay reached the app after a reload');
  });

  it('an inner Date missing or outside the window: a sealed PQ_STALE, not forwarded', async function () {
    const before = up.count;
    for (const headers of [[], [['date', new Date(Date.now() - 10 * 60_000).toUTCString()]], [['date', new Date(Date.now() + 10 * 60_000).toUTCString()]], [['date', 'yesterday']]] as Field[][]) {
      const sealed = sealRequest(config, { authority: `127.0.0.1:${port}`, path: '/x', headers });
      const answer = openAnswer(await postEnvelope(port, '/x', sealed.bytes), sealed);
      assert.deepEqual(sealedError(answer), { status: 400, code: 'PQ_STALE' }, JSON.stringify(headers));
    }
    assert.equal(up.count, before);
    // pqFetch adds a Date, so it passes.
    assert.equal((await pqFetch(`http://127.0.0.1:${port}/fresh`, { pq: { keyConfigs: [config] } })).status, 200);
    assert.equal(up.count, before + 1);
  });
});

// ---- pipeline stages ------------------------------------------------------------------------------

describe('e2e: pipeline stages see the inner request', function () {
  const fx = new Fixtures();
  let up: HttpUpstream;
  let port: number;
  const seen: Array<{ pq: boolean; method: string; path: string; target: string; host: string }> = [];

  before(async function () {
    clearPqKeyCache();
    up = await startCounting(fx);
    const stages: Stage[] = [
      {
        slot: 'decide',
        name: 'test-policy',
        handle(ex) {
          seen.push({ pq: ex.pq, method: ex.method, path: ex.path, target: ex.target, host: ex.host });
          if (ex.path === '/throw') throw new Error('stage bug');
          if (ex.path === '/deny') return new CageError({ code: 'GW_DENIED', message: 'denied by the test policy' });
          // Asynchronous on one path, so both ways through runStages are taken.
          return ex.path === '/async' ? Promise.resolve(undefined) : undefined;
        },
      },
    ];
    const dir = tempDir(fx);
    const cage = await Cage.start({ config: buildConfig(baseConfig(dir, [{ name: 'api', upstreams: [up.url] }], { admin: { enabled: false } })), stages });
    fx.add(() => cage.shutdown(1000));
    port = cage.port;
  });
  after(() => fx.closeAll());

  it('a stage sees the inner method, path and host with pq set; plaintext has pq unset', async function () {
    seen.length = 0;
    const before = up.count;
    assert.equal((await pqFetch(`http://127.0.0.1:${port}/inner/path?q=1`, { method: 'DELETE' })).status, 200);
    assert.equal((await pqFetch(`http://127.0.0.1:${port}/async`)).status, 200);
    assert.equal((await request(port, { path: '/plain' })).status, 200);
    assert.deepEqual(seen, [
      { pq: true, method: 'DELETE', path: '/inner/path', target: '/inner/path?q=1', host: `127.0.0.1:${port}` },
      { pq: true, method: 'GET', path: '/async', target: '/async', host: `127.0.0.1:${port}` },
      { pq: false, method: 'GET', path: '/plain', target: '/plain', host: `127.0.0.1:${port}` },
    ]);
    assert.equal(up.count, before + 3);
  });

  it("a stage's refusal, or its failure, is answered sealed and nothing is forwarded", async function () {
    const before = up.count;
    const denied = await pqFetch(`http://127.0.0.1:${port}/deny`, { method: 'POST', body: 'x' });
    assert.equal(denied.status, 403);
    assert.equal(errorCode(await denied.text()), 'GW_DENIED');
    const failed = await pqFetch(`http://127.0.0.1:${port}/throw`);
    assert.equal(failed.status, 500);
    assert.equal(errorCode(await failed.text()), 'GW_INTERNAL');
    assert.equal(up.count, before);
  });
});

// ---- behind a trusted proxy ---------------------------------------------------------------------

describe('e2e: post-quantum envelopes behind a trusted proxy', function () {
  const fx = new Fixtures();
  let echo: HttpUpstream & { last: EchoReport | undefined };
  let port: number;
  let config: KeyConfig;

  before(async function () {
    echo = await startEchoUpstream(fx);
    // The test client plays a trusted load balancer (or an OHTTP relay) in front of the cage.
    const cage = await startAdminCage([{ name: 'echo', upstreams: [echo.url] }], { trusted_proxies: ['127.0.0.1/32'] }, fx);
    port = cage.port;
    [config] = (await fetchKeys(port)).configs as [KeyConfig];
  });
  after(() => fx.closeAll());

  it('forwarding headers come from the trusted outer hop; the ones inside the envelope are dropped', async function () {
    const inner: Field[] = [
      ['date', new Date().toUTCString()],
      ['x-forwarded-for', '6.6.6.6'],
      ['forwarded', 'for=6.6.6.6'],
      ['x-forwarded-proto', 'gopher'],
      ['x-forwarded-host', 'forged.example'],
    ];
    const sealed = sealRequest(config, { authority: 'app.example', path: '/who', headers: inner });
    const reply = await postEnvelope(port, '/who', sealed.bytes, { 'x-forwarded-for': '203.0.113.9', 'x-forwarded-proto': 'https' });
    const rep = report(Buffer.from(openAnswer(reply, sealed).body).toString());
    assert.deepEqual(received(rep, 'x-forwarded-for'), ['203.0.113.9, 127.0.0.1']);
    assert.deepEqual(received(rep, 'x-forwarded-proto'), ['https']);
    assert.deepEqual(received(rep, 'host'), ['app.example']);
    for (const name of ['x-forwarded-for', 'forwarded', 'x-forwarded-proto', 'x-forwarded-host']) {
      assert.ok(!received(rep, name).some((v) => v.includes('6.6.6.6') || v.includes('gopher') || v.includes('forged')), `${name}: ${received(rep, name).join(' | ')}`);
    }
  });
});
