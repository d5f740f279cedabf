/**
 * circuits/header.ts: decode(encode(x)) = x for random headers (fast-check), and hostile inputs
 * (the header is attacker bytes) give ZK_BAD_HEADER, never another error.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { BN254_BASE_FIELD, SNARK_SCALAR_FIELD } from '../../circuits/field.js';
import { decodeZkHeader, encodeZkHeader, MAX_HEADER_LENGTH, type ZkProofHeader } from '../../circuits/header.js';
import { expectCode, withField } from './helpers.js';

const fr = fc.bigInt({ min: 0n, max: SNARK_SCALAR_FIELD - 1n });
const fq = fc.bigInt({ min: 0n, max: BN254_BASE_FIELD - 1n });
const proof = fc.record({ a: fc.tuple(fq, fq), b: fc.tuple(fc.tuple(fq, fq), fc.tuple(fq, fq)), c: fc.tuple(fq, fq) });
const common = {
  group: fc.stringMatching(/^[A-Za-z0-9._-]{1,64}$/),
  scope: fc.stringMatching(/^[A-Za-z0-9._:/@+-]{1,128}$/),
  epoch: fc.nat({ max: Number.MAX_SAFE_INTEGER }),
  root: fr,
  nullifier: fr,
  signalHash: fr,
  proof,
};
const header: fc.Arbitrary<ZkProofHeader> = fc.oneof(
  fc.record({ mode: fc.constant('req' as const), ...common, timestamp: fc.nat({ max: Number.MAX_SAFE_INTEGER }) }),
  fc.record({ mode: fc.constant('ses' as const), ...common, sessionKey: fc.uint8Array({ minLength: 32, maxLength: 32 }) }),
);

/** A comparable text form (fast-check's records have null prototypes; bigints and bytes as text). */
const canonical = (h: ZkProofHeader): string =>
  JSON.stringify(h, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v));

const sample = (): ZkProofHeader => ({
  mode: 'req', group: 'staff', scope: 'api', epoch: 7, timestamp: 1_700_000_000, root: 5n, nullifier: 6n, signalHash: 7n,
  proof: { a: [1n, 2n], b: [[3n, 4n], [5n, 6n]], c: [7n, 8n] },
});

describe('circuits/header', () => {
  it('property: decode(encode(h)) = h', () => {
    fc.assert(
      fc.property(header, (h) => {
        const text = encodeZkHeader(h);
        assert.ok(text.length <= MAX_HEADER_LENGTH);
        const back = decodeZkHeader(text);
        assert.equal(canonical(back), canonical(h));
      }),
      { numRuns: 200 },
    );
  });

  it('accepts fields in any order', () => {
    const text = encodeZkHeader(sample());
    const shuffled = text.split(';').reverse().join(';');
    assert.deepEqual(decodeZkHeader(shuffled), sample());
  });

  it('refuses malformed headers with ZK_BAD_HEADER', () => {
    const good = encodeZkHeader(sample());
    const b64 = (n: bigint) => Buffer.from(n.toString(16).padStart(64, '0'), 'hex').toString('base64url');
    const cases: [string, string][] = [
      ['empty', ''],
      ['garbage', 'hello'],
      ['too long', good + ';x=' + 'a'.repeat(MAX_HEADER_LENGTH)],
      ['version 2', withField(good, 'v', '2')],
      ['unknown mode', withField(good, 'm', 'xyz')],
      ['repeated field', good + ';e=7'],
      ['unknown field', good + ';z=1'],
      ['missing field', good.split(';').filter((p) => !p.startsWith('n=')).join(';')],
      ['session key in a request proof', good + ';k=' + Buffer.alloc(32).toString('base64url')],
      ['bad group', withField(good, 'g', 'a b')],
      ['bad scope', withField(good, 's', 'x;y')],
      ['leading zero epoch', withField(good, 'e', '07')],
      ['negative epoch', withField(good, 'e', '-1')],
      ['epoch over 2^53', withField(good, 'e', '9007199254740993')],
      ['root not base64url', withField(good, 'r', '!'.repeat(43))],
      ['root short', withField(good, 'r', 'AAAA')],
      ['root padded', withField(good, 'r', b64(5n) + '=')],
      ['root non-canonical', withField(good, 'r', b64(5n).slice(0, 42) + 'V')],
      ['root ≥ r', withField(good, 'r', b64(SNARK_SCALAR_FIELD))],
      ['nullifier ≥ r', withField(good, 'n', b64(SNARK_SCALAR_FIELD + 1n))],
      ['signal ≥ r', withField(good, 'h', b64((1n << 256n) - 1n))],
      ['proof short', withField(good, 'p', Buffer.alloc(255).toString('base64url'))],
      ['proof coordinate ≥ q', withField(good, 'p', Buffer.concat([Buffer.from(BN254_BASE_FIELD.toString(16).padStart(64, '0'), 'hex'), Buffer.alloc(224)]).toString('base64url'))],
      ['no equals sign', good.replace('v=1', 'v1')],
    ];
    for (const [name, text] of cases) expectCode(() => decodeZkHeader(text), 'ZK_BAD_HEADER', name);
  });

  it('property: random mutations of a good header decode or give ZK_BAD_HEADER', () => {
    const good = encodeZkHeader(sample());
    fc.assert(
      fc.property(fc.nat(good.length - 1), fc.integer({ min: 32, max: 126 }), (at, code) => {
        const text = good.slice(0, at) + String.fromCharCode(code) + good.slice(at + 1);
        try {
          decodeZkHeader(text);
        } catch (err) {
          assert.equal((err as { code?: string }).code, 'ZK_BAD_HEADER');
        }
      }),
      { numRuns: 500 },
    );
  });
});
