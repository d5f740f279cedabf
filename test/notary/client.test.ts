import { strict as assert } from 'node:assert';
import { createServer } from 'node:net';
import { addCheckpoint, parseCosignatureLines, type AddCheckpointResult, type FetchFn } from '../../notary/client.js';
import { TestLog } from './helpers.js';

const log = new TestLog();
const input = { oldSize: 0, proof: [], note: log.checkpoint(3) };

function answering(status: number, body: string | Uint8Array, headers: Record<string, string> = {}): FetchFn {
  return async () => new Response(body, { status, headers });
}

function errorOf(r: AddCheckpointResult): [string, number] {
  assert.equal(r.status, 'error', JSON.stringify(r));
  return r.status === 'error' ? [r.code, r.httpStatus] : ['', 0];
}

describe('notary/client (addCheckpoint)', () => {
  it('sends the tlog-witness body to <prefix>/add-checkpoint', async () => {
    const seen: { url: string; body: string }[] = [];
    const fetch: FetchFn = async (url, init) => {
      seen.push({ url, body: init.body });
      return new Response('\u2014 did:key:z6Mkx AAAAAAAA\n', { status: 200 });
    };
    const r = await addCheckpoint('http://n.test/prefix/', { oldSize: 2, proof: log.proof(2, 3), note: log.checkpoint(3) }, { fetch });
    assert.deepEqual(r, { status: 'cosigned', lines: ['\u2014 did:key:z6Mkx AAAAAAAA'] });
    assert.equal(seen[0]!.url, 'http://n.test/prefix/add-checkpoint');
    assert.equal(seen[0]!.body, log.body(2, 3));
  });

  it('classifies malformed and unexpected answers', async () => {
    assert.deepEqual(errorOf(await addCheckpoint('http://n', input, { fetch: answering(200, 'not a signature line\n') })), ['NOTARY_BAD_RESPONSE', 200]);
    assert.deepEqual(errorOf(await addCheckpoint('http://n', input, { fetch: answering(200, '') })), ['NOTARY_BAD_RESPONSE', 200]);
    assert.deepEqual(errorOf(await addCheckpoint('http://n', input, { fetch: answering(200, Buffer.from([0xff, 0xfe])) })), ['NOTARY_BAD_RESPONSE', 200]);
    assert.deepEqual(errorOf(await addCheckpoint('http://n', input, { fetch: answering(409, '12', { 'content-type': 'text/x.tlog.size' }) })), ['NOTARY_BAD_RESPONSE', 409]);
    assert.deepEqual(await addCheckpoint('http://n', input, { fetch: answering(409, '12\n', { 'content-type': 'text/x.tlog.size; charset=utf-8' }) }), { status: 'conflict', size: 12 });
    // A code from the body counts only if it is one of ours.
    assert.deepEqual(errorOf(await addCheckpoint('http://n', input, { fetch: answering(500, '{"error":{"code":"GW_INTERNAL"}}') })), ['NOTARY_BAD_RESPONSE', 500]);
    assert.deepEqual(errorOf(await addCheckpoint('http://n', input, { fetch: answering(500, '{"error":{"code":"NOTARY_INTERNAL"}}') })), ['NOTARY_INTERNAL', 500]);
    assert.deepEqual(errorOf(await addCheckpoint('http://n', input, { fetch: answering(503, 'busy') })), ['NOTARY_STORE_IO', 503]);
    assert.deepEqual(errorOf(await addCheckpoint('http://n', input, { fetch: answering(403, '') })), ['NOTARY_BAD_LOG_SIGNATURE', 403]);
    assert.deepEqual(errorOf(await addCheckpoint('http://n', input, { fetch: answering(200, 'x'.repeat(2000)), maxResponseBytes: 1000 })), ['NOTARY_BAD_RESPONSE', 0]);
  });

  it('reports no answer as NOTARY_UNREACHABLE or NOTARY_TIMEOUT, never throws', async () => {
    const refused: FetchFn = async () => {
      throw Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNREFUSED' } });
    };
    assert.deepEqual(errorOf(await addCheckpoint('http://n', input, { fetch: refused })), ['NOTARY_UNREACHABLE', 0]);
    const hang: FetchFn = (_u, init) => new Promise((_r, reject) => init.signal.addEventListener('abort', () => reject(init.signal.reason)));
    assert.deepEqual(errorOf(await addCheckpoint('http://n', input, { fetch: hang, timeoutMs: 20 })), ['NOTARY_TIMEOUT', 0]);
    // A real closed port, through the default fetch.
    const srv = createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as { port: number }).port;
    await new Promise((r) => srv.close(r));
    assert.deepEqual(errorOf(await addCheckpoint(`http://127.0.0.1:${port}`, input)), ['NOTARY_UNREACHABLE', 0]);
    assert.deepEqual(errorOf(await addCheckpoint('http://n', { ...input, oldSize: -1 }, { fetch: refused })), ['NOTARY_BAD_REQUEST', 0]);
    await assert.rejects(() => addCheckpoint('http://n', input, { timeout: 5 } as never), TypeError);
  });

  it('parseCosignatureLines accepts only newline-terminated signature lines', () => {
    assert.deepEqual(parseCosignatureLines('\u2014 a AAAAAAAA\n\u2014 b AAAAAAAA\n'), ['\u2014 a AAAAAAAA', '\u2014 b AAAAAAAA']);
    for (const bad of ['', '\u2014 a AAAAAAAA', '\u2014 a AAAAAAAA\n\n', '- a AAAAAAAA\n', '\u2014 a AAAA\n']) assert.equal(parseCosignatureLines(bad), undefined, JSON.stringify(bad));
  });
});
