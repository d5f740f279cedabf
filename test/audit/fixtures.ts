/** Shared test values for the audit tests. */
import { strict as assert } from 'node:assert';
import { isCageError } from '../../core/errors.js';
import type { AuditRecord } from '../../audit/record.js';

const d = (n: number) => Buffer.alloc(32, n);

/** A fixed record: record.test.ts pins its encoding, docs/formats.md shows the same bytes. */
export const SAMPLE: AuditRecord = {
  requestId: 'r1',
  time: 1700000000000,
  route: 'api',
  method: 'GET',
  host: 'app.test',
  path: '/x?y=1',
  clientAddress: '203.0.113.7',
  requestHeadersDigest: d(1),
  requestBodyDigest: d(2),
  requestBodyLength: 0,
  status: 200,
  responseHeadersDigest: d(3),
  responseBodyDigest: d(4),
  responseBodyLength: 300,
  durationMicros: 1234,
};


/** The CageError code `fn` throws (asserting it throws a CageError), or undefined when it does not throw. */
export function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    assert.ok(isCageError(err), String(err));
    return err.code;
  }
  return undefined;
}

/** True when `fn` throws AUDIT_BAD_PROOF (any other error fails the test), false when it returns. */
export function rejectsProof(fn: () => unknown): boolean {
  const c = code(fn);
  if (c !== undefined) assert.equal(c, 'AUDIT_BAD_PROOF');
  return c !== undefined;
}

/** A copy of `b` with bit `bit` flipped (counted from the first byte's low bit, wrapping). */
export function flipBit(b: Uint8Array, bit: number): Buffer {
  const c = Buffer.from(b);
  c[Math.floor(bit / 8) % c.length] ^= 1 << bit % 8;
  return c;
}
