/**
 * The audit log end to end, over real sockets: every answer carries a `Cage-Receipt` naming its
 * record, the record holds what the client sent and received (digests of the bytes on the wire,
 * not of what the cage meant to send), proofs from the admin API verify offline and break when a
 * byte changes, `sync` routes answer only after the record is durable, app signatures are checked
 * and recorded, a long stream does not hold back later records, the /log/ read side, and a
 * restart continuing the same log. No wall-clock assertions: conditions are polled (`waitFor`).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { request as httpRequest, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import { Cage } from '../../gateway/cage.js';
import { buildConfig } from '../../gateway/config/load.js';
import { leafHash } from '../../audit/hash.js';
import { decodeEntryBundle } from '../../audit/tiles.js';
import { verifyConsistencyBetween, verifyProof } from '../../audit/verify.js';
import { isCageError } from '../../core/errors.js';
import { ADMIN_TOKEN, admin, baseConfig, json, startAdminCage, tempDir, waitFor } from '../helpers/e2e.js';
import { closedPort, errorCode, Fixtures, readAll, request, startHttpUpstream, type HttpUpstream, type Reply } from '../helpers/servers.js';
import {
  EMPTY_SHA256_HEX,
  adminGet,
  auditInfo,
  consistencyHashes,
  makeAppKey,
  originSignatureHeader,
  receiptOf,
  recordAt,
  sha256hex,
  waitCheckpoint,
  type AppKey,
  type RecordJson,
} from '../helpers/audit.js';

const ORIGIN = 'example.test/e2e-audit';
const LARGE = randomBytes(2 * 1024 * 1024);
const CHUNKED_PARTS = ['first part, ', 'second part, ', 'the end'];
/** A byte string the app answers on signed routes: must never reach a client when a required signature fails. */
const APP_SECRET = 'app-body-that-must-not-leak';

/** Asserts that `f` throws a CageError with `code`. */
function throwsCode(f: () => unknown, code: string, what: string): void {
  assert.throws(f, (err: unknown) => {
    assert.ok(isCageError(err), `${what}: not a CageError: ${String(err)}`);
    assert.equal(err.code, code, `${what}: ${err.message}`);
    return true;
  });
}

/** The app in front of which most routes sit: answers by path. */
function startApp(fx: Fixtures): Promise<HttpUpstream> {
  return startHttpUpstream((req, res) => {
    const path = req.url ?? '';
    readAll(req).then((body) => {
      if (path.startsWith('/app/large') || path.startsWith('/sync/large')) {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(LARGE.length) });
        for (let o = 0; o < LARGE.length; o += 64 * 1024) res.write(LARGE.subarray(o, o + 64 * 1024));
        res.end();
      } else if (path.startsWith('/app/chunked') || path.startsWith('/sync/chunked')) {
        // No Content-Length: node frames it chunked, in several writes.
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write(CHUNKED_PARTS[0]);
        setImmediate(() => {
          res.write(CHUNKED_PARTS[1]);
          setImmediate(() => res.end(CHUNKED_PARTS[2]));
        });
      } else if (path.startsWith('/app/empty')) {
        res.writeHead(204);
        res.end();
      } else if (path.startsWith('/sync/kib/')) {
        const n = Number(path.slice('/sync/kib/'.length));
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(n * 1024) });
        res.end(Buffer.alloc(n * 1024, 0x61));
      } else {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(`${req.method} ${path} ${body.length} bytes, sha256 ${sha256hex(body)}`);
      }
    }, () => res.destroy());
  }, fx);
}

/**
 * An app that signs its answers; the last path segment says how: `good` (the registered key),
 * `wrong` (another key under the registered name), `other` (a different registered key),
 * `garbage` (a malformed header), `none` (no header). A `-stream` suffix sends the body chunked in
 * two writes (so the cage learns its digest only at the end), otherwise in one with a length.
 */
function startSigningApp(keys: { app: AppKey; other: AppKey; stranger: AppKey }, fx: Fixtures): Promise<HttpUpstream> {
  return startHttpUpstream((req, res) => {
    req.resume();
    req.on('end', () => {
      const last = (req.url ?? '').split('/').pop()!.split('?')[0]!;
      const streamed = last.endsWith('-stream');
      const mode = streamed ? last.slice(0, -'-stream'.length) : last;
      const body = Buffer.from(`${APP_SECRET} for ${req.url}`);
      const rid = String(req.headers['x-request-id']);
      const headers: Record<string, string> = { 'content-type': 'text/plain' };
      if (!streamed) headers['content-length'] = String(body.length);
      if (mode === 'good') headers['cage-origin-signature'] = originSignatureHeader(keys.app, 'app', rid, 200, body);
      else if (mode === 'wrong') headers['cage-origin-signature'] = originSignatureHeader(keys.stranger, 'app', rid, 200, body);
      else if (mode === 'other') headers['cage-origin-signature'] = originSignatureHeader(keys.other, 'other', rid, 200, body);
      else if (mode === 'garbage') headers['cage-origin-signature'] = 'keyid="app", sig=:bm90IGEgc2lnbmF0dXJl:';
      res.writeHead(200, headers);
      if (!streamed) {
        res.end(body);
        return;
      }
      res.write(body.subarray(0, 10));
      setImmediate(() => res.end(body.subarray(10)));
    });
  }, fx);
}

/** Checks the request side of a record against what the client sent. */
function assertRequestSide(rec: RecordJson, cage: Cage, sent: { method: string; path: string; body?: Buffer }, what: string): void {
  assert.equal(rec.method, sent.method, `${what}: method`);
  assert.equal(rec.path, sent.path, `${what}: path`);
  assert.equal(rec.host, `127.0.0.1:${cage.port}`, `${what}: host`);
  assert.equal(rec.clientAddress, '127.0.0.1', `${what}: client address`);
  const body = sent.body ?? Buffer.alloc(0);
  assert.equal(rec.requestBodyDigest, sha256hex(body), `${what}: request body digest`);
  assert.equal(rec.requestBodyLength, body.length, `${what}: request body length`);
}

/** Checks the response side of a record against what the client received. */
function assertResponseSide(rec: RecordJson, reply: Reply, what: string): void {
  assert.equal(rec.status, reply.status, `${what}: status`);
  assert.equal(rec.requestId, reply.headers['x-request-id'], `${what}: request id`);
  assert.equal(rec.responseBodyDigest, sha256hex(reply.body), `${what}: response body digest`);
  assert.equal(rec.responseBodyLength, reply.body.length, `${what}: response body length`);
}

/** A response whose body the test reads as it arrives, and which may stay open. */
interface OpenStream {
  status: number;
  headers: IncomingHttpHeaders;
  chunks: Buffer[];
  ended: boolean;
  done: Promise<Buffer>;
}

function openStream(port: number, path: string): Promise<OpenStream> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      const s: OpenStream = { status: res.statusCode!, headers: res.headers, chunks: [], ended: false, done: undefined as unknown as Promise<Buffer> };
      s.done = new Promise((done, fail) => {
        res.on('data', (c: Buffer) => s.chunks.push(c));
        res.on('end', () => {
          s.ended = true;
          done(Buffer.concat(s.chunks));
        });
        res.on('error', fail);
      });
      s.done.catch(() => undefined);
      resolve(s);
    });
    req.on('error', reject);
    req.end();
  });
}

/** An app whose /stream answers send a head and a first chunk, then wait for the test. */
async function startStreamingApp(fx: Fixtures): Promise<HttpUpstream & { open: ServerResponse[] }> {
  const open: ServerResponse[] = [];
  const up = await startHttpUpstream((req, res) => {
    req.resume();
    if (req.url?.startsWith('/stream')) {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('head-of-stream;');
      open.push(res);
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('quick');
  }, fx);
  return Object.assign(up, { open });
}

describe('e2e: audit log', function () {
  this.timeout(60_000);
  const fx = new Fixtures();
  const keys = { app: makeAppKey(), other: makeAppKey(), stranger: makeAppKey() };
  let app: HttpUpstream;
  let signer: HttpUpstream;
  let cage: Cage;

  before(async () => {
    app = await startApp(fx);
    signer = await startSigningApp(keys, fx);
    const dead = `http://127.0.0.1:${await closedPort()}`;
    cage = await startAdminCage(
      [
        { name: 'app', match: { path: '/app' }, upstreams: [app.url] },
        { name: 'dead', match: { path: '/dead' }, upstreams: [dead], retries: 0 },
        { name: 'sync', match: { path: '/sync' }, upstreams: [app.url], audit: 'sync' },
        { name: 'off', match: { path: '/off' }, upstreams: [app.url], audit: 'off' },
        { name: 'signed', match: { path: '/signed' }, upstreams: [signer.url], origin_signature: { key: 'app' } },
        { name: 'signed-sync', match: { path: '/signed-sync' }, upstreams: [signer.url], audit: 'sync', origin_signature: { key: 'app' } },
        { name: 'required', match: { path: '/required' }, upstreams: [signer.url], origin_signature: { key: 'app', required: true } },
      ],
      {
        audit: {
          origin: ORIGIN,
          checkpoint_interval: '100ms',
          sync_max_response_bytes: '1KiB',
          origin_keys: { app: keys.app.publicRaw, other: keys.other.publicRaw },
        },
      },
      fx,
    );
  });

  after(() => fx.closeAll());

  it('every answer from the app carries a receipt, and its record matches what the client sent and received', async () => {
    const postBody = randomBytes(3000);
    const cases: Array<{ what: string; method: string; path: string; body?: Buffer; check?: (r: Reply) => void }> = [
      { what: 'a small 200 (POST with a body)', method: 'POST', path: '/app/small?x=1', body: postBody },
      { what: 'a 2 MiB streamed body', method: 'GET', path: '/app/large', check: (r) => assert.ok(r.body.equals(LARGE), 'the large body arrives intact') },
      {
        what: 'a chunked response',
        method: 'GET',
        path: '/app/chunked',
        check: (r) => {
          assert.equal(r.headers['transfer-encoding'], 'chunked');
          assert.equal(r.body.toString(), CHUNKED_PARTS.join(''));
        },
      },
      { what: 'a HEAD', method: 'HEAD', path: '/app/small' },
      { what: 'a 204', method: 'GET', path: '/app/empty', check: (r) => assert.equal(r.status, 204) },
    ];
    const replies: Reply[] = [];
    for (const c of cases) {
      const r = await request(cage.port, { method: c.method, path: c.path, body: c.body });
      assert.ok(r.status === 200 || r.status === 204, `${c.what}: ${r.status} ${r.body.toString().slice(0, 200)}`);
      c.check?.(r);
      replies.push(r);
    }
    const info = await auditInfo(cage.adminPort);
    assert.equal(info.origin, ORIGIN);
    const receipts = replies.map((r, i) => receiptOf(r, cases[i]!.what));
    for (const rc of receipts) assert.equal(rc.origin, ORIGIN);
    const indices = receipts.map((rc) => rc.index);
    assert.equal(new Set(indices).size, indices.length, `indices must be distinct: ${indices.join(', ')}`);

    await waitCheckpoint(cage.adminPort, Math.max(...indices) + 1);
    for (const [i, c] of cases.entries()) {
      const view = await recordAt(cage.adminPort, indices[i]!);
      assert.equal(view.index, indices[i]);
      const rec = view.record;
      assert.equal(rec.route, 'app', c.what);
      assertRequestSide(rec, cage, c, c.what);
      assertResponseSide(rec, replies[i]!, c.what);
      assert.equal(rec.cageError, undefined, `${c.what}: no cage error`);
      assert.equal(rec.incomplete, undefined, `${c.what}: complete`);
    }
    // HEAD and 204 have no body: the empty digest.
    assert.equal((await recordAt(cage.adminPort, indices[3]!)).record.responseBodyDigest, EMPTY_SHA256_HEX);
    assert.equal((await recordAt(cage.adminPort, indices[4]!)).record.responseBodyDigest, EMPTY_SHA256_HEX);
  });

  it('the cage’s own 502 (dead upstream) carries a receipt and is recorded with its error code and the body the client got', async () => {
    const r = await request(cage.port, { method: 'POST', path: '/dead/x', body: 'payload' });
    assert.equal(r.status, 502);
    const code = errorCode(r);
    const { index } = receiptOf(r, 'the 502');
    await waitCheckpoint(cage.adminPort, index + 1);
    const rec = (await recordAt(cage.adminPort, index)).record;
    assert.equal(rec.route, 'dead');
    assert.equal(rec.cageError, code);
    assertRequestSide(rec, cage, { method: 'POST', path: '/dead/x', body: Buffer.from('payload') }, 'the 502');
    assertResponseSide(rec, r, 'the 502');
  });

  it('the cage’s own 404 (no route) carries a receipt and is recorded as GW_NO_ROUTE', async () => {
    const r = await request(cage.port, { path: '/nowhere?q=2' });
    assert.equal(r.status, 404);
    assert.equal(errorCode(r), 'GW_NO_ROUTE');
    const { index } = receiptOf(r, 'the 404');
    await waitCheckpoint(cage.adminPort, index + 1);
    const rec = (await recordAt(cage.adminPort, index)).record;
    assert.equal(rec.cageError, 'GW_NO_ROUTE');
    assertRequestSide(rec, cage, { method: 'GET', path: '/nowhere?q=2' }, 'the 404');
    assertResponseSide(rec, r, 'the 404');
  });

  it('a proof from the admin API verifies against the log key; a changed byte in the record or the proof fails; checkpoints are consistent', async () => {
    const first = await request(cage.port, { path: '/app/proof-1' });
    const { index } = receiptOf(first);
    const info0 = await auditInfo(cage.adminPort);
    const cp1 = await waitCheckpoint(cage.adminPort, Math.max(index + 1, 2));

    const proof = (await adminGet(cage.adminPort, `/api/v1/audit/proof/${index}`)).body.toString('utf8');
    const view = await recordAt(cage.adminPort, index);
    const bytes = Buffer.from(view.bytes, 'base64');
    const ok = verifyProof({ proof, logKey: info0.verifier_key });
    assert.equal(ok.index, index);
    assert.equal(ok.checkpoint.origin, ORIGIN);
    assert.ok(ok.recordBytes!.equals(bytes), 'the proof carries the record the API shows');
    assert.ok(ok.leafHash.equals(leafHash(bytes)));
    assert.equal(ok.record!.requestId, first.headers['x-request-id']);
    assert.equal(verifyProof({ proof, logKey: info0.verifier_key, record: bytes }).index, index);

    // The record the user holds, one byte changed.
    const flipped = Buffer.from(bytes);
    flipped[flipped.length - 1] ^= 0x01;
    throwsCode(() => verifyProof({ proof, logKey: info0.verifier_key, record: flipped }), 'AUDIT_BAD_RECORD', 'a changed record');

    // The proof file: its carried record, an audit-path hash, the checkpoint's root, its signature.
    const lines = proof.split('\n');
    const extraAt = lines.findIndex((l) => l.startsWith('extra '));
    const indexAt = lines.findIndex((l) => l.startsWith('index '));
    assert.ok(extraAt > 0 && indexAt > extraAt, proof);
    const withExtra = [...lines];
    withExtra[extraAt] = `extra ${flipped.toString('base64')}`;
    throwsCode(() => verifyProof({ proof: withExtra.join('\n'), logKey: info0.verifier_key }), 'AUDIT_BAD_PROOF', 'a changed record in the proof');
    assert.ok(lines[indexAt + 1] !== '', 'a tree of 2+ records has an audit path');
    const hashBytes = Buffer.from(lines[indexAt + 1]!, 'base64');
    hashBytes[0] ^= 0x80;
    const withHash = [...lines];
    withHash[indexAt + 1] = hashBytes.toString('base64');
    throwsCode(() => verifyProof({ proof: withHash.join('\n'), logKey: info0.verifier_key }), 'AUDIT_BAD_PROOF', 'a changed audit-path hash');
    const sigAt = lines.findIndex((l) => l.startsWith('— '));
    const sigParts = lines[sigAt]!.split(' ');
    const sig = Buffer.from(sigParts[2]!, 'base64');
    sig[sig.length - 1] ^= 0x01;
    const withSig = [...lines];
    withSig[sigAt] = `${sigParts[0]} ${sigParts[1]} ${sig.toString('base64')}`;
    assert.throws(() => verifyProof({ proof: withSig.join('\n'), logKey: info0.verifier_key }), (err: unknown) => isCageError(err) && /^AUDIT_BAD_(SIGNATURE|NOTE)$/.test(err.code));

    // A later checkpoint extends this one.
    for (let i = 0; i < 3; i++) assert.equal((await request(cage.port, { path: `/app/proof-more-${i}` })).status, 200);
    const cp2 = await waitCheckpoint(cage.adminPort, cp1.size + 3);
    const hashes = await consistencyHashes(cage.adminPort, cp1.size, cp2.size);
    const both = verifyConsistencyBetween(cp1.note, cp2.note, hashes, info0.verifier_key);
    assert.equal(both.old.size, cp1.size);
    assert.equal(both.new.size, cp2.size);
    if (hashes.length > 0) {
      const bad = hashes.map((h) => Buffer.from(h));
      bad[0]![5] ^= 0x01;
      throwsCode(() => verifyConsistencyBetween(cp1.note, cp2.note, bad, info0.verifier_key), 'AUDIT_BAD_PROOF', 'a changed consistency hash');
    }
    // The checkpoint endpoint serves the latest note as text.
    const cpText = (await admin(cage, '/api/v1/audit/checkpoint')).body.toString('utf8');
    assert.equal(cpText, (await auditInfo(cage.adminPort)).checkpoint!.note);
  });

  it('audit: sync answers only once the record is durable (several in a row); audit: off carries no receipt', async () => {
    for (let i = 0; i < 8; i++) {
      const r = await request(cage.port, { method: 'POST', path: `/sync/small-${i}`, body: `sync body ${i}` });
      assert.equal(r.status, 200, r.body.toString());
      const { index } = receiptOf(r, `sync request ${i}`);
      const info = await auditInfo(cage.adminPort);
      assert.ok(info.durable_size > index, `sync request ${i}: durable_size ${info.durable_size} must exceed the receipt index ${index} once the client has the answer`);
    }
    // A chunked answer on a sync route is held, then sent and recorded whole.
    const chunked = await request(cage.port, { path: '/sync/chunked' });
    assert.equal(chunked.status, 200);
    assert.equal(chunked.body.toString(), CHUNKED_PARTS.join(''));
    const c = receiptOf(chunked, 'the sync chunked answer');
    assert.ok((await auditInfo(cage.adminPort)).durable_size > c.index);
    await waitCheckpoint(cage.adminPort, c.index + 1);
    const rec = (await recordAt(cage.adminPort, c.index)).record;
    assert.equal(rec.route, 'sync');
    assertResponseSide(rec, chunked, 'the sync chunked answer');

    const sizeBefore = (await auditInfo(cage.adminPort)).size;
    const off = await request(cage.port, { path: '/off/x' });
    assert.equal(off.status, 200);
    assert.equal(off.headers['cage-receipt'], undefined);
    assert.equal((await auditInfo(cage.adminPort)).size, sizeBefore, 'audit: off writes no record');
  });

  it('sync route: an answer over audit.sync_max_response_bytes is 502 AUDIT_RESPONSE_TOO_LARGE (with and without a Content-Length)', async () => {
    const small = await request(cage.port, { path: '/sync/kib/1' });
    assert.equal(small.status, 200, 'exactly the limit is fine');
    assert.equal(small.body.length, 1024);
    const big = await request(cage.port, { path: '/sync/kib/4' });
    assert.equal(big.status, 502);
    assert.equal(errorCode(big), 'AUDIT_RESPONSE_TOO_LARGE');
    const streamed = await request(cage.port, { path: '/sync/large' });
    assert.equal(streamed.status, 502);
    assert.equal(errorCode(streamed), 'AUDIT_RESPONSE_TOO_LARGE');
    const { index } = receiptOf(big, 'the 502');
    await waitCheckpoint(cage.adminPort, index + 1);
    const rec = (await recordAt(cage.adminPort, index)).record;
    assert.equal(rec.cageError, 'AUDIT_RESPONSE_TOO_LARGE');
    assertResponseSide(rec, big, 'the 502');
  });

  it('origin signatures: a good one is recorded verified; a bad one on an async route is a recorded discrepancy; a required one answers 502', async () => {
    const get = (path: string) => request(cage.port, { path });
    const recordOf = async (r: Reply, what: string): Promise<RecordJson> => {
      const { index } = receiptOf(r, what);
      await waitCheckpoint(cage.adminPort, index + 1);
      return (await recordAt(cage.adminPort, index)).record;
    };

    for (const route of ['signed', 'signed-sync', 'required']) {
      for (const good of ['good', 'good-stream']) {
        const what = `${route}/${good}`;
        const r = await get(`/${what}`);
        assert.equal(r.status, 200, `${what}: ${r.body.toString()}`);
        assert.ok(r.body.toString().startsWith(APP_SECRET));
        const rec = await recordOf(r, what);
        assert.deepEqual({ keyId: rec.originSignature?.keyId, verified: rec.originSignature?.verified }, { keyId: 'app', verified: true }, what);
        assertResponseSide(rec, r, what);
      }
    }

    for (const route of ['signed', 'signed-sync']) {
      // `other`: signed by a registered key, but not the one this route names.
      for (const mode of ['wrong', 'garbage', 'other', 'wrong-stream', 'other-stream']) {
        const what = `${route}/${mode}`;
        const r = await get(`/${what}`);
        assert.equal(r.status, 200, `${what}: the answer still goes out`);
        assert.ok(r.body.toString().startsWith(APP_SECRET));
        const rec = await recordOf(r, what);
        assert.equal(rec.originSignature?.verified, false, `${what}: recorded as a discrepancy`);
        assert.equal(rec.cageError, undefined);
        assertResponseSide(rec, r, what);
      }
      const none = await get(`/${route}/none`);
      assert.equal(none.status, 200);
      assert.equal((await recordOf(none, `${route}/none`)).originSignature, undefined);
    }

    for (const mode of ['wrong', 'garbage', 'other', 'none', 'wrong-stream']) {
      const what = `required/${mode}`;
      const r = await get(`/${what}`);
      assert.equal(r.status, 502, what);
      assert.equal(errorCode(r), 'AUDIT_ORIGIN_SIGNATURE_INVALID');
      assert.ok(!r.body.toString().includes(APP_SECRET), `${what}: the app's body must not reach the client`);
      const rec = await recordOf(r, what);
      assert.equal(rec.status, 502);
      assert.equal(rec.cageError, 'AUDIT_ORIGIN_SIGNATURE_INVALID');
      assert.equal(rec.requestId, r.headers['x-request-id']);
      assert.equal(rec.responseBodyDigest, sha256hex(r.body), `${what}: the recorded body is the error the client got`);
      if (mode !== 'none') assert.equal(rec.originSignature?.verified, false);
    }
  });

  it('a required signature’s 502 records the length of the body the client got, not of the app’s withheld body', async () => {
    const r = await request(cage.port, { path: '/required/wrong' });
    assert.equal(r.status, 502);
    const { index } = receiptOf(r, 'the 502');
    await waitCheckpoint(cage.adminPort, index + 1);
    assertResponseSide((await recordAt(cage.adminPort, index)).record, r, 'the 502');
  });

  it('streaming: with a short audit.max_pending an open stream is sealed incomplete and later records get checkpointed meanwhile', async () => {
    const up = await startStreamingApp(fx);
    const c = await startAdminCage([{ name: 's', upstreams: [up.url] }], { audit: { checkpoint_interval: '100ms', max_pending: '300ms' } }, fx);
    const stream = await openStream(c.port, '/stream');
    assert.equal(stream.status, 200);
    const s = receiptOf(stream, 'the stream');
    await waitFor(() => stream.chunks.length > 0, 'the first chunk');
    const quick = await request(c.port, { path: '/quick' });
    const q = receiptOf(quick, 'the quick request');
    assert.ok(q.index > s.index);
    await waitCheckpoint(c.adminPort, q.index + 1);
    assert.equal(stream.ended, false, 'the stream is still open');
    const sealed = (await recordAt(c.adminPort, s.index)).record;
    assert.equal(sealed.incomplete, true);
    assert.equal(sealed.responseBodyDigest, sha256hex('head-of-stream;'), 'the sealed record covers what had been sent');
    assert.equal(sealed.responseBodyLength, 'head-of-stream;'.length);
    assert.equal((await recordAt(c.adminPort, q.index)).record.requestId, quick.headers['x-request-id']);
    // The stream goes on and ends normally for the client.
    up.open[0]!.end('tail');
    assert.equal((await stream.done).toString(), 'head-of-stream;tail');
    // The late record changes nothing: the sealed one stays at its index.
    assert.equal((await recordAt(c.adminPort, s.index)).record.incomplete, true);
  });

  it('streaming: with a long audit.max_pending a stream’s record waits for its end and holds the full body digest', async () => {
    const up = await startStreamingApp(fx);
    const c = await startAdminCage([{ name: 's', upstreams: [up.url] }], { audit: { checkpoint_interval: '100ms', max_pending: '60s' } }, fx);
    const stream = await openStream(c.port, '/stream');
    const s = receiptOf(stream, 'the stream');
    await waitFor(() => stream.chunks.length > 0, 'the first chunk');
    const quick = await request(c.port, { path: '/quick' });
    const q = receiptOf(quick, 'the quick request');
    assert.ok(q.index > s.index);
    // Held back behind the open stream (its deadline is a minute away).
    assert.ok((await auditInfo(c.adminPort)).size <= s.index, 'records after an open stream wait for it');
    const res = up.open[0]!;
    res.write(Buffer.alloc(100_000, 0x62));
    res.end('done');
    const body = await stream.done;
    assert.equal(body.length, 'head-of-stream;'.length + 100_000 + 4);
    await waitCheckpoint(c.adminPort, q.index + 1);
    const rec = (await recordAt(c.adminPort, s.index)).record;
    assert.equal(rec.incomplete, undefined);
    assert.equal(rec.responseBodyDigest, sha256hex(body));
    assert.equal(rec.responseBodyLength, body.length);
    assert.equal(rec.requestId, stream.headers['x-request-id']);
  });

  it('the /log/ read side: token needed unless public_read, tiles and bundles served, anything else 404', async () => {
    for (let i = 0; i < 3; i++) await request(cage.port, { path: `/app/log-${i}` });
    const info = await auditInfo(cage.adminPort);
    const cp = await waitCheckpoint(cage.adminPort, info.size);
    // The checkpoint may move on between the two reads; poll until they agree.
    const served = await waitFor(async () => {
      const r = await adminGet(cage.adminPort, '/log/checkpoint');
      const now = (await auditInfo(cage.adminPort)).checkpoint!;
      return r.body.toString('utf8') === now.note ? now : undefined;
    }, '/log/checkpoint to serve the latest checkpoint');
    assert.ok(served.size >= cp.size);
    const noToken = await request(cage.adminPort, { path: '/log/checkpoint' });
    assert.equal(noToken.status, 401);
    assert.equal(errorCode(noToken), 'ADMIN_UNAUTHORIZED');
    const wrong = await request(cage.adminPort, { path: '/log/checkpoint', headers: { authorization: `Bearer ${'y'.repeat(32)}` } });
    assert.equal(wrong.status, 401);

    // Tiles of a tree below 256: the partial level-0 tile and entry bundle of its width.
    const size = served.size;
    assert.ok(size > 0 && size < 256, `size ${size}`);
    const tile = await adminGet(cage.adminPort, `/log/tile/0/000.p/${size}`);
    assert.equal(tile.body.length, size * 32);
    const bundle = await adminGet(cage.adminPort, `/log/tile/entries/000.p/${size}`);
    const entries = decodeEntryBundle(bundle.body, size);
    for (let i = 0; i < size; i++) {
      assert.ok(leafHash(entries[i]!).equals(tile.body.subarray(i * 32, i * 32 + 32)), `entry ${i} hashes to its tile hash`);
    }
    assert.ok(entries[size - 1]!.equals(Buffer.from((await recordAt(cage.adminPort, size - 1)).bytes, 'base64')));

    for (const path of ['/log/origin', '/log/log.key', '/log/state/checkpoints.log', '/log/tile/0/000.p/999', '/log/tile/../log.key', '/log/tile/0/000.p/../../../log.key', '/log/']) {
      const r = await request(cage.adminPort, { path, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
      assert.equal(r.status, 404, `${path}: ${r.status}`);
      assert.ok(!r.body.toString().includes('PRIVATE+KEY'), `${path} must not leak the log key`);
    }

    const open = await startAdminCage([{ upstreams: [app.url] }], { audit: { public_read: true, checkpoint_interval: '100ms' } }, fx);
    await request(open.port, { path: '/x' });
    await waitCheckpoint(open.adminPort, 1);
    const pub = await request(open.adminPort, { path: '/log/checkpoint' });
    assert.equal(pub.status, 200);
    assert.equal(pub.body.toString('utf8'), (await auditInfo(open.adminPort)).checkpoint!.note);
    assert.equal((await request(open.adminPort, { path: '/log/tile/0/000.p/1' })).status, 200);
    assert.equal((await request(open.adminPort, { path: '/log/log.key' })).status, 404);
    // The API itself still needs the token.
    assert.equal((await request(open.adminPort, { path: '/api/v1/audit' })).status, 401);
  });

  it('a restarted cage continues the same log: indices go on, and the old checkpoint is a prefix of the new tree', async () => {
    const dir = tempDir(fx);
    const raw = baseConfig(dir, [{ upstreams: [app.url] }], { audit: { checkpoint_interval: '100ms' } });
    const first = await Cage.start({ config: buildConfig(raw) });
    let before: { size: number; note: string };
    let key: string;
    let origin: string;
    let last: number;
    try {
      const indices: number[] = [];
      for (let i = 0; i < 5; i++) indices.push(receiptOf(await request(first.port, { path: `/before-${i}` })).index);
      assert.deepEqual(indices, [0, 1, 2, 3, 4]);
      last = indices[4]!;
      before = await waitCheckpoint(first.adminPort, 5);
      ({ verifier_key: key, origin } = await auditInfo(first.adminPort));
    } finally {
      await first.shutdown(1000);
    }
    const second = await Cage.start({ config: buildConfig(raw) });
    try {
      const info = await auditInfo(second.adminPort);
      assert.equal(info.origin, origin);
      assert.equal(info.verifier_key, key);
      assert.equal(info.size, last + 1);
      const r = await request(second.port, { path: '/after' });
      const { index } = receiptOf(r);
      assert.equal(index, last + 1, 'indices continue where the old log ended');
      const after = await waitCheckpoint(second.adminPort, index + 1);
      const hashes = await consistencyHashes(second.adminPort, before.size, after.size);
      verifyConsistencyBetween(before.note, after.note, hashes, key);
      for (let i = 0; i <= last; i++) assert.equal((await recordAt(second.adminPort, i)).record.path, `/before-${i}`);
      assert.equal((await recordAt(second.adminPort, index)).record.requestId, r.headers['x-request-id']);
      assert.equal(json<{ checkpoint: unknown }>(await admin(second, '/api/v1/audit')).checkpoint !== null, true);
    } finally {
      await second.shutdown(1000);
    }
  });
});
