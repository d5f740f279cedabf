/**
 * A bounds-checked reader over attacker-controlled bytes, for the chain's binary codecs (tx.ts,
 * block.ts): every read checks the remaining length first and fails with the codec's own error.
 */
import type { CageError } from '../core/errors.js';

export class ByteReader {
  readonly buf: Buffer;
  offset = 0;

  constructor(
    input: Uint8Array,
    private readonly bad: (message: string) => CageError,
    private readonly what: string,
  ) {
    this.buf = Buffer.from(input.buffer, input.byteOffset, input.length);
  }

  need(n: number): void {
    if (this.offset + n > this.buf.length) throw this.bad(`${this.what} is truncated`);
  }

  u8(): number {
    this.need(1);
    return this.buf[this.offset++]!;
  }

  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.offset);
    this.offset += 4;
    return v;
  }

  /** A u64 that must fit a JS number (≤ 2^53 − 1). */
  u64(field: string): number {
    this.need(8);
    const v = this.buf.readBigUInt64BE(this.offset);
    this.offset += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw this.bad(`${field} exceeds 2^53 - 1`);
    return Number(v);
  }

  /** `n` bytes (a view into the input). */
  bytes(n: number): Buffer {
    this.need(n);
    const out = this.buf.subarray(this.offset, this.offset + n);
    this.offset += n;
    return out;
  }

  /** `n` bytes of latin1 text matching `re`. */
  text(n: number, re: RegExp, field: string): string {
    const s = this.bytes(n).toString('latin1');
    if (!re.test(s)) throw this.bad(`${field} has bad characters`);
    return s;
  }

  /** Fails unless every byte was read. */
  end(): void {
    if (this.offset !== this.buf.length) throw this.bad(`trailing bytes after the ${this.what}`);
  }
}
