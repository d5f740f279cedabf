import { strict as assert } from 'node:assert';
import { request } from 'node:http';
import { connect } from 'node:net';
import fc from 'fast-check';
import { buildDidDocument } from '../../notary/did.js';
import { addCheckpoint } from '../../notary/client.js';
import type { WriteStep } from '../../notary/io/files.js';
import { NotaryServer } from '../../notary/io/server.js';
import { NotaryStore } from '../../notary/io/store.js';
import { formatAddCheckpointBody, KnownLogs } from '../../notary/witness.js';
import { ORIGIN, tempDir, TestLog, testNotary } from './helpers.js';

const log = new TestLog();
const notary = testNotary(12);

async function start(dir: string, opts: { step?: (s: WriteStep) => Promise<void>; maxBodyBytes?: number } = {}) {
  const store = await NotaryStore.open(dir, opts.step === undefined ? {} : { step: opts.step });
  const server = await NotaryServer.start({
    cosigner: notary.cosigner,
    did: notary.did,
    didDocument: buildDidDocument(notary.did, notary.publicKey),
    logs: new KnownLogs([log.verifier]),
    store,
    ...(opts.maxBodyBytes === undefined ? {} : { maxBodyBytes: opts.maxBodyBytes }),
  });
  return { store, server, stop: () => server.close().then(() => store.close()) };
}

async function post(url: string, body: string | Uint8Array): Promise<{ status: number; type: string; text: string }> {
  const res = await fetch(`${url}/add-checkpoint`, { method: 'POST', body });
  return { status: res.status, type: res.headers.get('content-type') ?? '', text: await res.text() };
}

const errorCode = (text: string) => (JSON.parse(text) as { error: { code: string } }).error.code;

/** Raw HTTP exchange (for what fetch will not send). */
function raw(port: number, data: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1');
    let out = '';
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => (out += d));
    sock.on('end', () => resolve(out));
    sock.on('close', () => resolve(out));
    sock.on('error', reject);
    sock.write(data);
  });
}

describe('notary/io/server (HTTP)', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let s: Awaited<ReturnType<typeof start>>;
  beforeEach(async () => {
    dir = await tempDir();
  });
  afterEach(async () => {
    await s?.stop();
    await dir.remove();
  });

  it('POST /add-checkpoint: 200 cosignature line, 409 text/x.tlog.size, JSON codes for refusals', async () => {
    s = await start(dir.path);
    let r = await post(s.server.url, log.body(0, 5));
    assert.equal(r.status, 200);
    assert.ok(r.text.startsWith(`\u2014 ${notary.did} `) && r.text.endsWith('\n'));
    r = await post(s.server.url, log.body(0, 9));
    assert.deepEqual([r.status, r.type, r.text], [409, 'text/x.tlog.size', '5\n']);
    r = await post(s.server.url, new TestLog('nope.example/log', 3).body(0, 2));
    assert.deepEqual([r.status, errorCode(r.text)], [404, 'NOTARY_UNKNOWN_LOG']);
    r = await post(s.server.url, 'old 0\n');
    assert.deepEqual([r.status, errorCode(r.text)], [400, 'NOTARY_BAD_REQUEST']);
  });

  it('the client classifies every answer', async () => {
    s = await start(dir.path);
    const url = s.server.url;
    const c1 = await addCheckpoint(url, { oldSize: 0, proof: [], note: log.checkpoint(5) });
    assert.equal(c1.status, 'cosigned');
    assert.equal(c1.status === 'cosigned' && c1.lines.length, 1);
    assert.deepEqual(await addCheckpoint(url + '/', { oldSize: 0, proof: [], note: log.checkpoint(7) }), { status: 'conflict', size: 5 });
    const fork = await addCheckpoint(url, { oldSize: 5, proof: [], note: new TestLog(ORIGIN, 1, 'x').checkpoint(5) });
    assert.deepEqual([fork.status, fork.status === 'error' && fork.code, fork.status === 'error' && fork.httpStatus], ['error', 'NOTARY_FORK', 409]);
    const badProof = await addCheckpoint(url, { oldSize: 5, proof: [Buffer.alloc(32)], note: log.checkpoint(7) });
    assert.equal(badProof.status === 'error' && badProof.code, 'NOTARY_BAD_PROOF');
    const tooBig = await addCheckpoint(url, { oldSize: 9, proof: [], note: log.checkpoint(7) });
    assert.equal(tooBig.status === 'error' && tooBig.code, 'NOTARY_OLD_SIZE_TOO_LARGE');
  });

  it('serves its DID document and /healthz; 404 and 405 with codes', async () => {
    s = await start(dir.path);
    const doc = await fetch(`${s.server.url}/.well-known/did.json`);
    assert.equal(doc.status, 200);
    assert.equal(doc.headers.get('content-type'), 'application/did+json');
    assert.deepEqual(await doc.json(), buildDidDocument(notary.did, notary.publicKey));
    const h = await fetch(`${s.server.url}/healthz`);
    assert.deepEqual(await h.json(), { status: 'ok', did: notary.did, logs: [ORIGIN] });
    const nf = await fetch(`${s.server.url}/nope`);
    assert.deepEqual([nf.status, errorCode(await nf.text())], [404, 'NOTARY_NOT_FOUND']);
    const get = await fetch(`${s.server.url}/add-checkpoint`);
    assert.deepEqual([get.status, get.headers.get('allow'), errorCode(await get.text())], [405, 'POST', 'NOTARY_METHOD_NOT_ALLOWED']);
    const put = await fetch(`${s.server.url}/healthz`, { method: 'PUT', body: 'x' });
    assert.equal(put.status, 405);
  });

  it('413 NOTARY_BODY_TOO_LARGE for a body over the limit (declared or streamed), and keeps serving', async () => {
    s = await start(dir.path, { maxBodyBytes: 4096 });
    const r = await post(s.server.url, 'old 0\n' + 'A'.repeat(10_000));
    assert.deepEqual([r.status, errorCode(r.text)], [413, 'NOTARY_BODY_TOO_LARGE']);
    const chunked = await raw(s.server.port, `POST /add-checkpoint HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n1388\r\n${'B'.repeat(5000)}\r\n`);
    assert.match(chunked, /^HTTP\/1\.1 413 /);
    assert.equal((await post(s.server.url, log.body(0, 3))).status, 200);
  });

  it('hostile HTTP (garbage request lines, truncated bodies) never takes it down', async () => {
    s = await start(dir.path);
    assert.match(await raw(s.server.port, 'GARBAGE\r\n\r\n'), /^HTTP\/1\.1 400 /);
    const truncated = raw(s.server.port, `POST /add-checkpoint HTTP/1.1\r\nhost: x\r\ncontent-length: 500\r\n\r\nold 0\n`);
    await new Promise((r) => setTimeout(r, 20));
    void truncated;
    await new Promise<void>((resolve) => {
      const req = request({ port: s.server.port, host: '127.0.0.1', method: 'POST', path: '/add-checkpoint', headers: { 'content-length': '100' } });
      req.on('error', () => resolve());
      req.write('old 0\n');
      setTimeout(() => {
        req.destroy();
        resolve();
      }, 20);
    });
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 300 }), async (bytes) => {
        assert.equal((await post(s.server.url, bytes)).status, 400);
      }),
      { numRuns: 100 },
    );
    assert.equal((await post(s.server.url, log.body(0, 3))).status, 200);
  });

  it('serializes concurrent add-checkpoint calls for one log: of racing old=0 requests exactly one is cosigned', async () => {
    // A slow disk: every state write waits, so without per-log serialization every request would
    // see "never cosigned" and pass the old-size check.
    s = await start(dir.path, { step: (st) => (st === 'write-temp' ? new Promise((r) => setTimeout(r, 15)) : Promise.resolve()) });
    const sizes = [4, 9, 2, 17, 6, 11, 30, 3];
    const results = await Promise.all(sizes.map((n) => post(s.server.url, log.body(0, n))));
    const won = results.flatMap((r, i) => (r.status === 200 ? [sizes[i]!] : []));
    assert.equal(won.length, 1, JSON.stringify(results.map((r) => r.status)));
    for (const r of results) if (r.status !== 200) assert.deepEqual([r.status, r.text], [409, `${won[0]}\n`]);
    assert.equal(s.store.get(ORIGIN)!.size, won[0]);
  });

  it('under a random concurrent schedule, the cosigned sizes of one log never go down', async () => {
    s = await start(dir.path, { step: (st) => (st === 'write-temp' ? new Promise((r) => setTimeout(r, 2)) : Promise.resolve()) });
    await fc.assert(
      // Most requests race from the recorded size (the case serialization must get right); some are stale.
      fc.asyncProperty(fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 8 }), fc.integer({ min: 0, max: 20 })), { minLength: 2, maxLength: 8 }), async (reqs) => {
        const before = s.store.get(ORIGIN)?.size ?? 0;
        const cosigned: number[] = [];
        await Promise.all(
          reqs.map(async ([stale, back, grow]) => {
            const old = stale ? Math.max(0, before - back) : before;
            const size = before + grow;
            const body = formatAddCheckpointBody(old, old <= size ? log.proof(old, size) : [], log.checkpoint(size));
            const r = await s.server.addCheckpoint(body);
            if (r.status === 200) cosigned.push(size);
          }),
        );
        const after = s.store.get(ORIGIN)?.size ?? 0;
        assert.ok(after >= before);
        for (let i = 1; i < cosigned.length; i++) assert.ok(cosigned[i]! >= cosigned[i - 1]!, `cosigned ${cosigned.join(',')}`);
        assert.ok(cosigned.every((n) => n <= after));
      }),
      { numRuns: 25 },
    );
  });

  it('close() lets requests in flight finish durably before it resolves', async () => {
    let release!: () => void;
    let reached!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const atGate = new Promise<void>((r) => (reached = r));
    s = await start(dir.path, { step: (st) => (st === 'rename' ? (reached(), gate) : Promise.resolve()) });
    const pending = post(s.server.url, log.body(0, 8));
    await atGate;
    const closing = s.server.close();
    release();
    assert.equal((await pending).status, 200);
    await closing;
    assert.equal(s.store.get(ORIGIN)!.size, 8);
  });
});
