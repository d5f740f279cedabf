/**
 * Entries that are not yet in a durable full entry bundle, held as WAL frames (wal-format.ts) in a
 * few large chunks: `append` copies the entry behind a 13-byte frame header, so the bytes that
 * reach the disk are the bytes in memory (no per-entry Buffer, no re-encoding), and the leaf hash
 * is SHA-256 of a slice of the frame. A chunk is dropped once every entry in it is in a durable
 * bundle. Chunks rebuilt from WAL segments on open are read-only and may hold batch headers
 * between frames; only `offsets` is used to find frames.
 */
import { hash } from 'node:crypto';
import { FRAME_HEADER_BYTES } from './wal-format.js';

const CHUNK_BYTES = 4 << 20;
const CHUNK_ENTRIES = 4096;

export interface Chunk {
  buf: Buffer;
  /** Index of the chunk's first entry. */
  first: number;
  count: number;
  /** Frame offset of each entry in `buf`. */
  offsets: Uint32Array;
  /** Bytes used (fresh chunks only). */
  used: number;
}

export class EntryArena {
  readonly chunks: Chunk[] = [];
  private tail: Chunk | undefined;

  /** Adds a read-only chunk rebuilt from a WAL segment (entries must follow the last chunk). */
  addRecovered(chunk: Chunk): void {
    this.chunks.push(chunk);
  }

  /** Copies `entry` in as entry number `index` (the next one). */
  append(entry: Uint8Array, index: number): void {
    const n = entry.length;
    const need = FRAME_HEADER_BYTES + n;
    let c = this.tail;
    if (c === undefined || c.count === CHUNK_ENTRIES || c.used + need > c.buf.length) {
      c = { buf: Buffer.allocUnsafe(Math.max(CHUNK_BYTES, need)), first: index, count: 0, offsets: new Uint32Array(CHUNK_ENTRIES), used: 0 };
      this.chunks.push(c);
      this.tail = c;
    }
    const buf = c.buf;
    const at = c.used;
    buf.writeUInt32BE(n, at);
    buf[at + 12] = 0;
    buf.set(entry, at + FRAME_HEADER_BYTES);
    c.offsets[c.count++] = at;
    c.used = at + need;
  }

  /** The index of the chunk holding entry `index` (which must be held). */
  private locate(index: number): number {
    let lo = 0;
    let hi = this.chunks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.chunks[mid]!.first <= index) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** The first entry index still held, or Infinity if none. */
  firstHeld(): number {
    return this.chunks.length > 0 ? this.chunks[0]!.first : Infinity;
  }

  /** A copy of entry `index`. */
  entry(index: number): Buffer {
    const c = this.chunks[this.locate(index)]!;
    const at = c.offsets[index - c.first]!;
    const n = c.buf.readUInt32BE(at);
    return Buffer.from(c.buf.subarray(at + FRAME_HEADER_BYTES, at + FRAME_HEADER_BYTES + n));
  }

  /**
   * Hashes entries from `from` on (at most `maxEntries`, stopping after `maxBytes` of entries),
   * writes each leaf hash's first 8 bytes into its frame and hands the leaf hash to `onLeaf`.
   * Returns the index after the last entry hashed.
   */
  hashFrom(from: number, to: number, maxBytes: number, onLeaf: (leaf: Buffer) => void): number {
    let ci = this.locate(from);
    let c = this.chunks[ci]!;
    let i = from;
    let bytes = 0;
    while (i < to && bytes < maxBytes) {
      if (i >= c.first + c.count) c = this.chunks[++ci]!;
      const buf = c.buf;
      const at = c.offsets[i - c.first]!;
      const n = buf.readUInt32BE(at);
      const leaf = hash('sha256', buf.subarray(at + 12, at + FRAME_HEADER_BYTES + n), 'buffer');
      leaf.copy(buf, at + 4, 0, 8);
      onLeaf(leaf);
      bytes += n + FRAME_HEADER_BYTES;
      i++;
    }
    return i;
  }

  /**
   * The frames of entries [from, to) as slices of the chunks, cut short so that they total at
   * most `maxBytes` (but at least one entry). Frames of one fresh chunk are contiguous.
   */
  frames(from: number, to: number, maxBytes: number): { slices: Buffer[]; bytes: number; to: number } {
    const slices: Buffer[] = [];
    let bytes = 0;
    let i = from;
    for (let ci = this.locate(from); i < to; ci++) {
      const c = this.chunks[ci]!;
      const start = c.offsets[i - c.first]!;
      let j = Math.min(to, c.first + c.count);
      let end = frameEnd(c, j - 1);
      if (bytes + end - start > maxBytes) {
        // Walk this chunk's frames up to the budget.
        j = i;
        end = start;
        while (j < to && (j === from || bytes + frameEnd(c, j) - start <= maxBytes)) end = frameEnd(c, j++);
        slices.push(c.buf.subarray(start, end));
        return { slices, bytes: bytes + end - start, to: j };
      }
      slices.push(c.buf.subarray(start, end));
      bytes += end - start;
      i = j;
    }
    return { slices, bytes, to };
  }

  /** Entries [first, first+count) as a C2SP entry bundle: each prefixed by its uint16 length. */
  bundle(first: number, count: number): Buffer {
    let ci = this.locate(first);
    let total = 0;
    for (let i = first, c = this.chunks[ci]!; i < first + count; i++) {
      if (i >= c.first + c.count) c = this.chunks[++ci]!;
      total += 2 + c.buf.readUInt32BE(c.offsets[i - c.first]!);
    }
    const out = Buffer.allocUnsafe(total);
    ci = this.locate(first);
    let o = 0;
    for (let i = first, c = this.chunks[ci]!; i < first + count; i++) {
      if (i >= c.first + c.count) c = this.chunks[++ci]!;
      const at = c.offsets[i - c.first]!;
      const n = c.buf.readUInt32BE(at);
      out.writeUInt16BE(n, o);
      c.buf.copy(out, o + 2, at + FRAME_HEADER_BYTES, at + FRAME_HEADER_BYTES + n);
      o += 2 + n;
    }
    return out;
  }

  /** Drops chunks whose entries are all below `below` (never the chunk appends go to). */
  release(below: number): void {
    let k = 0;
    while (k < this.chunks.length && this.chunks[k] !== this.tail && this.chunks[k]!.first + this.chunks[k]!.count <= below) k++;
    if (k > 0) this.chunks.splice(0, k);
  }
}

function frameEnd(c: Chunk, index: number): number {
  const at = c.offsets[index - c.first]!;
  return at + FRAME_HEADER_BYTES + c.buf.readUInt32BE(at);
}
