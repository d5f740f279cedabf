import { strict as assert } from 'node:assert';
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { decodeRecord, originSignatureMessage } from '../../audit/record.js';
import { ExchangeAuditor, parseOriginSignature, type AuditSink } from '../../gateway/audit.js';
import { buildConfig } from '../../gateway/config/load.js';
import { Exchange } from '../../gateway/exchange.js';
import { EMPTY_SHA256, digestRawHead } from '../../gateway/forward.js';

/** An in-memory sink that keeps what the auditor wrote, by index. */
class MemorySink implements AuditSink {
  readonly origin = 'test.example/"quoted"\\log';
  readonly records = new Map<number, Uint8Array>();
  readonly seals = new Map<number, () => Uint8Array>();
  private next = 0;
  append(record: Uint8Array): number {
    this.records.set(this.next, record);
    return this.next++;
  }
  reserve(seal: () => Uint8Array): number {
    this.seals.set(this.next, seal);
    return this.next++;
  }
  fill(index: number, record: Uint8Array): void {
    this.records.set(index, record);
  }
  durable(): Promise<void> {
    return Promise.resolve();
  }
}

function exchange(): Exchange {
  const ex = new Exchange();
  ex.id = 'req-1';
  ex.time = 1_790_000_000_000;
  ex.method = 'GET';
  ex.target = '/a?b=1';
  ex.path = '/a';
  ex.host = 'app.example';
  ex.remoteAddress = '192.0.2.1';
  ex.headers = ['host', 'app.example', 'accept', '*/*'];
  ex.route = 'r';
  ex.audit = 1;
  ex.status = 200;
  ex.startedAt = performance.now();
  return ex;
}

const { publicKey, privateKey } = generateKeyPairSync('ed25519');
const rawPublic = publicKey.export({ format: 'der', type: 'spki' }).subarray(12).toString('base64');
const config = buildConfig({ data_dir: '/tmp/unused', audit: { origin_keys: { app: rawPublic } }, routes: [{ upstreams: ['http://127.0.0.1:1'] }] });

describe('gateway/audit', () => {
  it('digests the app response head exactly as docs/formats.md says: status line, then name: value CRLF with raw value bytes', () => {
    const raw = [Buffer.from('Content-Type'), Buffer.from('text/plain'), Buffer.from('X-Bin'), Buffer.from([0xc3, 0x28, 0xff])];
    const reference = createHash('sha256')
      .update(Buffer.concat([Buffer.from('200\r\ncontent-type: text/plain\r\nx-bin: '), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from('\r\n')]))
      .digest();
    assert.deepEqual(digestRawHead(200, raw), reference);
    assert.notDeepEqual(digestRawHead(201, raw), reference);
  });

  it('writes a receipt as an RFC 8941 dictionary with the origin as an escaped sf-string', () => {
    const a = new ExchangeAuditor(new MemorySink(), config);
    assert.equal(a.receipt(42), 'origin="test.example/\\"quoted\\"\\\\log", index=42');
  });

  it('a complete record holds both sides of the exchange', () => {
    const sink = new MemorySink();
    const a = new ExchangeAuditor(sink, config);
    const ex = exchange();
    const digest = createHash('sha256').update('body').digest();
    ex.bytesOut = 4;
    const i = a.complete(ex, digest);
    assert.equal(i, 0);
    assert.equal(ex.auditIndex, 0);
    const r = decodeRecord(sink.records.get(0)!);
    assert.equal(r.requestId, 'req-1');
    assert.equal(r.path, '/a?b=1');
    assert.equal(r.host, 'app.example');
    assert.deepEqual(Buffer.from(r.responseBodyDigest), digest);
    assert.deepEqual(Buffer.from(r.requestBodyDigest), EMPTY_SHA256);
    assert.equal(r.responseBodyLength, 4);
    a.finish(ex);
    assert.equal(sink.records.size, 1, 'finish() does not write a second record');
  });

  it('a reserved record is sealed incomplete from what is known, and filled complete at the end', () => {
    const sink = new MemorySink();
    const a = new ExchangeAuditor(sink, config);
    const ex = exchange();
    ex.responseBodyHash = createHash('sha256').update('part');
    const i = a.reserve(ex);
    const sealed = decodeRecord(sink.seals.get(i)!());
    assert.equal(sealed.incomplete, true);
    assert.deepEqual(Buffer.from(sealed.responseBodyDigest), createHash('sha256').update('part').digest());
    ex.responseBodyHash.update('-rest');
    a.finish(ex);
    const full = decodeRecord(sink.records.get(i)!);
    assert.equal(full.incomplete, undefined);
    assert.deepEqual(Buffer.from(full.responseBodyDigest), createHash('sha256').update('part-rest').digest());
  });

  it('verifies Cage-Origin-Signature with the registered key and records a discrepancy otherwise', () => {
    const a = new ExchangeAuditor(new MemorySink(), config);
    const ex = exchange();
    const digest = createHash('sha256').update('answer').digest();
    const sig = sign(null, originSignatureMessage(ex.id, 200, digest), privateKey).toString('base64');
    ex.originSignature = `keyid="app", sig=:${sig}:`;
    assert.equal(a.verifyOrigin(ex, 'app', digest), true);
    assert.equal(ex.originVerified, 1);
    ex.status = 201; // the signature covers the status
    assert.equal(a.verifyOrigin(ex, 'app', digest), false);
    assert.equal(ex.originVerified, 2);
    ex.status = 200;
    assert.equal(a.verifyOrigin(ex, 'app', createHash('sha256').update('other').digest()), false);
    ex.originSignature = `keyid="other", sig=:${sig}:`;
    assert.equal(a.verifyOrigin(ex, 'app', digest), false, 'a signature naming another key id');
  });

  it('parses only well-formed origin signature headers', () => {
    const sig = Buffer.alloc(64, 7).toString('base64');
    assert.deepEqual(parseOriginSignature(`keyid="app", sig=:${sig}:`)?.keyId, 'app');
    for (const bad of ['', 'keyid=app, sig=:x:', `keyid="app"`, `keyid="app", sig=:${Buffer.alloc(63).toString('base64')}:`, `keyid="a p", sig=:${sig}:`]) {
      assert.equal(parseOriginSignature(bad), undefined, bad);
    }
  });

  it('records an over-long Host as sha256:<hex> so the record stays within its bounds', () => {
    const sink = new MemorySink();
    const a = new ExchangeAuditor(sink, config);
    const ex = exchange();
    ex.host = 'h'.repeat(5000);
    a.complete(ex, EMPTY_SHA256);
    const r = decodeRecord(sink.records.get(0)!);
    assert.equal(r.host, `sha256:${createHash('sha256').update(ex.host).digest('hex')}`);
  });
});
