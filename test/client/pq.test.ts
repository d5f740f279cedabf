/**
 * pqFetch against a real node:http server that opens requests with OhttpGateway and a KeyRing:
 * real sockets, the real key fetch, rotation, and refusals in the clear.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { errorBody, isCageError } from '../../core/errors.js';
import { clearPqKeyCache, pqFetch } from '../../client/index.js';
import { KEM_DHKEM_X25519_HKDF_SHA256 } from '../../pq/hpke.js';
import { KeyRing } from '../../pq/keys.js';
import { encodeKeyConfigList, OhttpGateway, PqInnerError, type InnerRequest } from '../../pq/ohttp.js';
import { ReplayGuard } from '../../pq/replay.js';
import { expectCodeAsync } from '../pq/helpers.js';

interface Seen {
  outer: { method: string; url: string; contentType: string | undefined; body: Buffer }[];
  inner: InnerRequest[];
  keyFetches: number;
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** A tiny cage stand-in: /.well-known/ohttp-keys, and every other path opened, answered, sealed. */
async function startServer(ring: KeyRing, opts: { replay?: ReplayGuard; clearRefusal?: boolean; keysContentType?: string } = {}): Promise<{ url: string; seen: Seen; close: () => Promise<void> }> {
  const gateway = new OhttpGateway({ keys: ring, replay: opts.replay });
  const seen: Seen = { outer: [], inner: [], keyFetches: 0 };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    void (async () => {
      const body = await readBody(req);
      if (req.url === '/.well-known/ohttp-keys') {
        seen.keyFetches++;
        res.writeHead(200, { 'content-type': opts.keysContentType ?? 'application/ohttp-keys', 'cache-control': 'max-age=60' });
        res.end(ring.encodedConfigs());
        return;
      }
      seen.outer.push({ method: req.method!, url: req.url!, contentType: req.headers['content-type'], body });
      if (opts.clearRefusal) {
        res.writeHead(403, { 'content-type': 'application/json' });
        res.end(errorBody('PQ_REQUIRED', 'encapsulated requests only', 'rid-1'));
        return;
      }
      let opened;
      try {
        opened = gateway.openRequest(body, req.headers['content-type']);
      } catch (err) {
        if (err instanceof PqInnerError) {
          res.writeHead(200, { 'content-type': 'message/ohttp-res' });
          res.end(err.sealJson('rid-2'));
          return;
        }
        const e = isCageError(err) ? err : undefined;
        res.writeHead(e?.status ?? 500, { 'content-type': 'application/json' });
        res.end(errorBody(e?.code ?? 'GW_INTERNAL', e?.message ?? String(err), 'rid-3'));
        return;
      }
      const r = opened.request;
      seen.inner.push(r);
      const answer = r.path === '/empty'
        ? { status: 204, headers: [['x-empty', 'yes']] as [string, string][] }
        : {
            status: r.method === 'POST' ? 201 : 200,
            headers: [['content-type', 'application/json'], ['x-echo-path', r.path]] as [string, string][],
            body: JSON.stringify({ method: r.method, scheme: r.scheme, authority: r.authority, path: r.path, headers: r.headers, body: r.body.toString() }),
          };
      res.writeHead(200, { 'content-type': 'message/ohttp-res', 'cache-control': 'no-store' });
      res.end(opened.seal(answer));
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

describe('client/pq: pqFetch over real sockets', () => {
  const closers: (() => Promise<void>)[] = [];
  let t = Date.UTC(2026, 4, 1, 10, 0, 0);
  const now = (): number => t;
  afterEach(async () => {
    clearPqKeyCache();
    while (closers.length) await closers.pop()!();
  });

  async function setup(opts: Parameters<typeof startServer>[1] = {}, ringOpts: Partial<Parameters<typeof KeyRing.open>[0]> = {}) {
    const ring = await KeyRing.open({ rotateMs: 3_600_000, graceMs: 600_000, now, ...ringOpts });
    const server = await startServer(ring, opts);
    closers.push(server.close);
    return { ring, ...server };
  }

  it('GET: the inner request arrives whole, the answer comes back as a Response, the outer POST hides it', async () => {
    const { url, seen } = await setup();
    const res = await pqFetch(`${url}/things?id=42#frag`, { headers: { 'x-secret-token': 'hunter2', accept: 'application/json' }, pq: { now } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-echo-path'), '/things?id=42');
    const echo = await res.json() as { method: string; scheme: string; authority: string; path: string; headers: [string, string][] };
    assert.equal(echo.method, 'GET');
    assert.equal(echo.scheme, 'http');
    assert.equal(echo.authority, new URL(url).host);
    assert.deepEqual(echo.headers.find(([n]) => n === 'x-secret-token'), ['x-secret-token', 'hunter2']);
    assert.deepEqual(echo.headers.find(([n]) => n === 'date'), ['date', new Date(t).toUTCString()], 'a Date is added (RFC 9458 §6.5.1)');
    assert.equal(seen.keyFetches, 1);
    const outer = seen.outer[0]!;
    assert.deepEqual([outer.method, outer.url, outer.contentType], ['POST', '/things?id=42', 'message/ohttp-req']);
    assert.equal(outer.body.includes(Buffer.from('hunter2')), false, 'the token is not in the clear');
    assert.equal(outer.body.includes(Buffer.from('/things')), false, 'nor the inner path');
  });

  it('POST with a body; 204 gives a null body; the key list is fetched once and cached', async () => {
    const { url, seen } = await setup();
    const res = await pqFetch(`${url}/submit`, { method: 'POST', body: JSON.stringify({ a: 1 }), headers: { 'content-type': 'application/json' }, pq: { now } });
    assert.equal(res.status, 201);
    const echo = await res.json() as { body: string; method: string };
    assert.deepEqual([echo.method, echo.body], ['POST', '{"a":1}']);
    const empty = await pqFetch(`${url}/empty`, { pq: { now } });
    assert.equal(empty.status, 204);
    assert.equal(empty.headers.get('x-empty'), 'yes');
    assert.equal(await empty.text(), '');
    assert.equal(seen.keyFetches, 1);
  });

  it('after a rotation past its grace, the stale key gets PQ_UNKNOWN_KEY in the clear; pqFetch refetches and retries once', async () => {
    const { url, ring, seen } = await setup({}, { graceMs: 0 });
    const pq = { now, keysMaxAgeMs: 24 * 3_600_000 }; // the client keeps its (soon stale) list
    assert.equal((await pqFetch(`${url}/a`, { pq })).status, 200);
    t += 3_600_000;
    await ring.maintain();
    const res = await pqFetch(`${url}/b`, { pq });
    assert.equal(res.status, 200);
    assert.equal(seen.keyFetches, 2);
    assert.equal(seen.outer.length, 3, 'one refused, one retried');
    assert.equal(seen.inner.length, 2);
  });

  it('a refusal in the clear becomes a CageError with its code, never a Response', async () => {
    const { url } = await setup({ clearRefusal: true });
    await expectCodeAsync(pqFetch(`${url}/x`, { pq: { now } }), 'PQ_REQUIRED');
  });

  it('a key endpoint with the wrong media type → PQ_UNSUPPORTED_SUITE', async () => {
    const { url } = await setup({ keysContentType: 'application/json' });
    await expectCodeAsync(pqFetch(`${url}/x`, { pq: { now } }), 'PQ_UNSUPPORTED_SUITE');
  });

  it('requirePostQuantum (default) refuses a DHKEM-only gateway; false accepts it', async () => {
    const { url } = await setup({}, { kemId: KEM_DHKEM_X25519_HKDF_SHA256 });
    await expectCodeAsync(pqFetch(`${url}/x`, { pq: { now } }), 'PQ_UNSUPPORTED_SUITE');
    assert.equal((await pqFetch(`${url}/x`, { pq: { now, requirePostQuantum: false } })).status, 200);
  });

  it('pinned keyConfigs and a custom keysUrl: no fetch of the well-known path', async () => {
    const { url, ring, seen } = await setup();
    const pinned = await pqFetch(`${url}/p`, { pq: { now, keyConfigs: encodeKeyConfigList(ring.configs()) } });
    assert.equal(pinned.status, 200);
    assert.equal(seen.keyFetches, 0);
    await expectCodeAsync(pqFetch(`${url}/p`, { pq: { now, keysUrl: '/elsewhere' } }), 'PQ_UNSUPPORTED_SUITE');
    await expectCodeAsync(pqFetch(`${url}/p`, { pq: { now, keyConfig: [] } as never }), 'CONFIG_INVALID');
  });

  it('with a replay guard: a stale client clock gets an encapsulated PQ_STALE answer', async () => {
    const { url } = await setup({ replay: new ReplayGuard({ windowMs: 30_000, now }) });
    assert.equal((await pqFetch(`${url}/fresh`, { pq: { now } })).status, 200);
    const res = await pqFetch(`${url}/late`, { pq: { now: () => t - 120_000 } });
    assert.equal(res.status, 400);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'PQ_STALE');
  });
});
