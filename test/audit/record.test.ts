import { strict as assert } from 'node:assert';
import { generateKeyPairSync, hash, sign } from 'node:crypto';
import fc from 'fast-check';
import {
  decodeRecord,
  digestHeaders,
  encodeRecord,
  hashPath,
  hasDiscrepancy,
  MAX_RECORD_BYTES,
  originSignatureMessage,
  RECORD_LIMITS,
  verifyOriginSignature,
  type AuditRecord,
} from '../../audit/record.js';
import { SAMPLE, code } from './fixtures.js';


const d = (n: number) => Buffer.alloc(32, n);

const SAMPLE_HEX =
  'ca0100' + // magic, version, flags
  '027231' + // requestId "r1"
  '80d095ffbc31' + // time 1700000000000
  '03617069' + // route "api"
  '03474554' + // method "GET"
  '086170702e74657374' + // host "app.test"
  '062f783f793d31' + // path "/x?y=1"
  '0b3230332e302e3131332e37' + // clientAddress
  '01'.repeat(32) +
  '02'.repeat(32) +
  '00' + // requestBodyLength 0
  'c801' + // status 200
  '03'.repeat(32) +
  '04'.repeat(32) +
  'ac02' + // responseBodyLength 300
  'd209'; // durationMicros 1234

// Any well-formed Unicode (up to 4 UTF-8 bytes a code point), within the field's byte limit.
const str = (max: number) => fc.string({ unit: 'binary', maxLength: Math.min(Math.floor(max / 4), 40) });
const digest = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b));
const count = fc.oneof(fc.nat({ max: 300 }), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }));
const opt = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });

const recordArb: fc.Arbitrary<AuditRecord> = fc
  .record({
    requestId: str(RECORD_LIMITS.requestId),
    time: count,
    route: str(RECORD_LIMITS.route),
    method: str(RECORD_LIMITS.method),
    host: str(RECORD_LIMITS.host),
    path: fc.oneof(str(RECORD_LIMITS.path), digest),
    clientAddress: str(RECORD_LIMITS.clientAddress),
    identity: opt(str(RECORD_LIMITS.identity)),
    requestHeadersDigest: digest,
    requestBodyDigest: digest,
    requestBodyLength: count,
    clientSignature: opt(fc.record({ signatureInput: str(100), signature: str(100) })),
    status: fc.integer({ min: 0, max: 999 }),
    responseHeadersDigest: digest,
    responseBodyDigest: digest,
    responseBodyLength: count,
    durationMicros: count,
    cageError: opt(str(RECORD_LIMITS.cageError)),
    originSignature: opt(fc.record({ signature: fc.uint8Array({ minLength: 64, maxLength: 64 }).map((b) => Buffer.from(b)), keyId: str(40), verified: fc.boolean() })),
    decision: opt(fc.record({ verdict: str(RECORD_LIMITS.verdict), reasons: fc.array(str(50), { maxLength: 5 }) })),
    incomplete: opt(fc.constant(true)),
  })
  .map((r) => {
    // Plain objects without the undefined keys (fc.record builds null-prototype objects).
    const plain = (o: object) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
    const out = plain(r);
    for (const k of ['clientSignature', 'originSignature', 'decision']) if (out[k] !== undefined) out[k] = plain(out[k] as object);
    return out as unknown as AuditRecord;
  });

describe('audit/record', () => {
  it('decode(encode(r)) is r for any record', () => {
    fc.assert(
      fc.property(recordArb, (r) => {
        const bytes = encodeRecord(r);
        assert.ok(bytes.length <= MAX_RECORD_BYTES);
        assert.deepEqual(decodeRecord(bytes), r);
        assert.deepEqual(encodeRecord(decodeRecord(bytes)), bytes);
      }),
      { numRuns: 500 },
    );
  });

  it('is deterministic: the same exchange always yields the same bytes', () => {
    fc.assert(
      fc.property(recordArb, (r) => {
        const copy = structuredClone(r) as AuditRecord;
        assert.deepEqual(encodeRecord(copy), encodeRecord(r));
      }),
      { numRuns: 100 },
    );
    // Key order of the input object does not matter.
    const reordered = Object.fromEntries(Object.entries(SAMPLE).reverse()) as unknown as AuditRecord;
    assert.deepEqual(encodeRecord(reordered), encodeRecord(SAMPLE));
  });

  it('pins the v1 layout byte by byte', () => {
    assert.equal(encodeRecord(SAMPLE).toString('hex'), SAMPLE_HEX);
  });

  it('sets flags for optional fields and the hashed path', () => {
    const full: AuditRecord = {
      ...SAMPLE,
      path: hashPath('/secret'),
      identity: 'did:key:z6Mk',
      clientSignature: { signatureInput: 'sig1=("@method")', signature: 'sig1=:AAAA:' },
      cageError: 'GW_UPSTREAM_TIMEOUT',
      originSignature: { signature: Buffer.alloc(64, 5), keyId: 'app', verified: false },
      decision: { verdict: 'yellow', reasons: ['rate', 'geo'] },
      incomplete: true,
    };
    const b = encodeRecord(full);
    assert.equal(b[2], 0x7f);
    assert.deepEqual(decodeRecord(b), full);
    assert.ok(hasDiscrepancy(full));
    assert.ok(!hasDiscrepancy(SAMPLE));
    assert.deepEqual(hashPath('/secret'), hash('sha256', '/secret', 'buffer'));
  });

  it('keeps every record within an entry bundle entry, even with every field at its limit', () => {
    const s = (n: number) => 'a'.repeat(n);
    const L = RECORD_LIMITS;
    const max: AuditRecord = {
      ...SAMPLE,
      requestId: s(L.requestId),
      route: s(L.route),
      method: s(L.method),
      host: s(L.host),
      path: s(L.path),
      clientAddress: s(L.clientAddress),
      identity: s(L.identity),
      clientSignature: { signatureInput: s(L.signatureInput), signature: s(L.signature) },
      time: Number.MAX_SAFE_INTEGER,
      requestBodyLength: Number.MAX_SAFE_INTEGER,
      responseBodyLength: Number.MAX_SAFE_INTEGER,
      durationMicros: Number.MAX_SAFE_INTEGER,
      status: 999,
      cageError: s(L.cageError),
      originSignature: { signature: Buffer.alloc(64), keyId: s(L.originKeyId), verified: true },
      decision: { verdict: s(L.verdict), reasons: Array.from({ length: L.reasons }, () => s(L.reason)) },
      incomplete: true,
    };
    const b = encodeRecord(max);
    assert.ok(b.length <= MAX_RECORD_BYTES, `${b.length}`);
    assert.deepEqual(decodeRecord(b), max);
  });

  it('refuses values outside their type or limits when encoding', () => {
    const bad: Partial<Record<keyof AuditRecord, unknown>>[] = [
      { requestId: 'x'.repeat(RECORD_LIMITS.requestId + 1) },
      { path: 'é'.repeat(RECORD_LIMITS.path / 2 + 1) },
      { path: Buffer.alloc(31) },
      { host: '\ud800' },
      { time: -1 },
      { time: 1.5 },
      { time: 2 ** 53 },
      { status: 1000 },
      { requestBodyDigest: Buffer.alloc(33) },
      { originSignature: { signature: Buffer.alloc(63), keyId: 'k', verified: true } },
      { originSignature: { signature: Buffer.alloc(64), keyId: 'k', verified: 1 } },
      { decision: { verdict: 'red', reasons: Array.from({ length: 33 }, () => 'r') } },
      { method: 42 },
    ];
    for (const b of bad) assert.equal(code(() => encodeRecord({ ...SAMPLE, ...b } as AuditRecord)), 'AUDIT_BAD_RECORD', JSON.stringify(b));
  });

  it('digests headers as lowercase "name: value\\n" lines in received order', () => {
    const flat = ['Content-Type', 'text/plain', 'x-a', '1', 'X-A', ' 2'];
    const expected = hash('sha256', 'content-type: text/plain\nx-a: 1\nx-a:  2\n', 'buffer');
    assert.deepEqual(digestHeaders(flat), expected);
    assert.deepEqual(digestHeaders([['Content-Type', 'text/plain'], ['x-a', '1'], ['X-A', ' 2']]), expected);
    assert.deepEqual(digestHeaders(new Map([['content-type', 'text/plain']])), hash('sha256', 'content-type: text/plain\n', 'buffer'));
    assert.deepEqual(digestHeaders([]), hash('sha256', '', 'buffer'));
    assert.notDeepEqual(digestHeaders(['a', '1', 'b', '2']), digestHeaders(['b', '2', 'a', '1']));
    for (const bad of [['a:b', 'v'], ['a', 'v\r\nx: y'], ['a\n', 'v'], ['a']]) assert.equal(code(() => digestHeaders(bad)), 'AUDIT_BAD_RECORD', JSON.stringify(bad));
  });

  it('defines the origin-signature message and verifies an app signature', () => {
    const msg = originSignatureMessage('r1', 200, d(4));
    assert.equal(msg.toString('hex'), Buffer.from('cage-origin-signature/v1\n').toString('hex') + '0002' + '7231' + '00c8' + '04'.repeat(32));
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const sig = sign(null, msg, privateKey);
    assert.ok(verifyOriginSignature(publicKey, 'r1', 200, d(4), sig));
    assert.ok(!verifyOriginSignature(publicKey, 'r1', 201, d(4), sig));
    assert.ok(!verifyOriginSignature(publicKey, 'r2', 200, d(4), sig));
    assert.ok(!verifyOriginSignature(publicKey, 'r1', 200, d(5), sig));
    assert.ok(!verifyOriginSignature(publicKey, 'r1', 200, d(4), sig.subarray(1)));
    assert.equal(code(() => originSignatureMessage('r1', 1000, d(4))), 'AUDIT_BAD_RECORD');
  });
});
