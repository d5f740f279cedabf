/**
 * The write-ahead log's byte format (ours, not a C2SP one): entries that are not yet in a full
 * entry bundle. A segment file `state/wal/<first index, 20 digits>.wal` is a run of batches, one
 * batch per group commit (one write + fdatasync):
 *
 *   batch header (40 bytes)            frame (13 + n bytes)
 *     0  u32  magic 'CWB1'               0  u32  n, entry length (≤ 65,535: a C2SP bundle's uint16)
 *     4  u32  payload bytes              4  8B   first 8 bytes of SHA-256(0x00 ‖ entry)
 *     8  u32  entry count               12  u8   0x00 (RFC 6962 leaf prefix)
 *    12  u32  0 (reserved)              13  n B  entry
 *    16  u64  index of the first entry
 *    24  u64  file offset of this header
 *    32  8B   first 8 bytes of SHA-256(header bytes 0..32)
 *
 * Checksums: a truncated SHA-256 rather than a CRC, because the frame's check is the leaf hash the
 * tree needs anyway (bytes 12.. of a frame are exactly the RFC 6962 leaf input), so checking costs
 * nothing extra. All integers are big-endian.
 *
 * Torn tails: the store has at most one batch in flight, so only the last batch of the last
 * segment can be half written. `scanSegment` classifies damage: inside a batch whose declared
 * end reaches end of file → torn (the valid frames before it are kept); a damaged header with no
 * valid header anywhere after it → torn; anything else → corrupt. Input here is our own file, but
 * it may be damaged arbitrarily: every length is bounds-checked before use.
 */
import { hash } from 'node:crypto';

export const BATCH_MAGIC = 0x43574231; // 'CWB1'
export const BATCH_HEADER_BYTES = 40;
export const FRAME_HEADER_BYTES = 13;
/** C2SP entry bundles prefix each entry with a big-endian uint16 length. */
export const MAX_ENTRY_BYTES = 0xffff;
const CHECK_BYTES = 8;
const MAGIC_BYTES = Buffer.from([0x43, 0x57, 0x42, 0x31]);

export interface BatchHeader {
  payloadBytes: number;
  count: number;
  firstIndex: number;
  fileOffset: number;
}

export function encodeBatchHeader(h: BatchHeader): Buffer {
  const b = Buffer.alloc(BATCH_HEADER_BYTES);
  b.writeUInt32BE(BATCH_MAGIC, 0);
  b.writeUInt32BE(h.payloadBytes, 4);
  b.writeUInt32BE(h.count, 8);
  b.writeBigUInt64BE(BigInt(h.firstIndex), 16);
  b.writeBigUInt64BE(BigInt(h.fileOffset), 24);
  hash('sha256', b.subarray(0, 32), 'buffer').copy(b, 32, 0, CHECK_BYTES);
  return b;
}

/** Decodes the header at `pos` (40 bytes must be there), or undefined if its magic or check is wrong. */
export function decodeBatchHeader(buf: Buffer, pos: number): BatchHeader | undefined {
  if (buf.readUInt32BE(pos) !== BATCH_MAGIC) return undefined;
  const digest = hash('sha256', buf.subarray(pos, pos + 32), 'buffer');
  if (digest.compare(buf, pos + 32, pos + 40, 0, CHECK_BYTES) !== 0) return undefined;
  const firstIndex = buf.readBigUInt64BE(pos + 16);
  const fileOffset = buf.readBigUInt64BE(pos + 24);
  if (firstIndex > BigInt(Number.MAX_SAFE_INTEGER) || fileOffset > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
  return { payloadBytes: buf.readUInt32BE(pos + 4), count: buf.readUInt32BE(pos + 8), firstIndex: Number(firstIndex), fileOffset: Number(fileOffset) };
}

/** True if a valid batch header (one that names its own offset) starts anywhere at or after `from`. */
function validHeaderFrom(buf: Buffer, from: number): boolean {
  for (let at = buf.indexOf(MAGIC_BYTES, from); at >= 0 && at + BATCH_HEADER_BYTES <= buf.length; at = buf.indexOf(MAGIC_BYTES, at + 1)) {
    if (decodeBatchHeader(buf, at)?.fileOffset === at) return true;
  }
  return false;
}

export interface SegmentDamage {
  /** Byte offset of the first bad byte range (a header or a frame). */
  offset: number;
  reason: string;
  /** True if this is a torn tail that recovery may trim; false if acknowledged data is damaged. */
  torn: boolean;
  /** Where to cut: the file keeps bytes [0, keepBytes). */
  keepBytes: number;
  /** If the torn batch keeps some frames, its header must be rewritten with this count and size. */
  rewrite?: BatchHeader;
}

export interface SegmentScan {
  /** Valid entries in the segment. */
  count: number;
  damage?: SegmentDamage;
}

/**
 * Verifies every frame of a segment that starts at entry `firstIndex`, calling `onEntry` with each
 * valid entry's index, frame offset and leaf hash, in order, until the end or the first damage.
 */
export function scanSegment(buf: Buffer, firstIndex: number, onEntry: (index: number, frame: number, leaf: Buffer) => void): SegmentScan {
  const eof = buf.length;
  let pos = 0;
  let index = firstIndex;
  while (pos < eof) {
    if (eof - pos < BATCH_HEADER_BYTES) {
      return { count: index - firstIndex, damage: { offset: pos, reason: 'incomplete batch header', torn: true, keepBytes: pos } };
    }
    const h = decodeBatchHeader(buf, pos);
    if (h === undefined || h.fileOffset !== pos) {
      const torn = !validHeaderFrom(buf, pos + 1);
      return { count: index - firstIndex, damage: { offset: pos, reason: 'bad batch header', torn, keepBytes: pos } };
    }
    if (h.firstIndex !== index || h.count === 0 || h.payloadBytes < h.count * FRAME_HEADER_BYTES) {
      return { count: index - firstIndex, damage: { offset: pos, reason: `batch header names entries ${h.firstIndex}+${h.count}, expected ${index}`, torn: false, keepBytes: pos } };
    }
    const end = pos + BATCH_HEADER_BYTES + h.payloadBytes;
    const limit = Math.min(end, eof);
    let fp = pos + BATCH_HEADER_BYTES;
    let n = 0;
    let bad: string | undefined;
    for (; n < h.count; n++) {
      if (fp + FRAME_HEADER_BYTES > limit) {
        bad = 'incomplete frame header';
        break;
      }
      const len = buf.readUInt32BE(fp);
      if (len > MAX_ENTRY_BYTES || fp + FRAME_HEADER_BYTES + len > limit) {
        bad = 'frame length out of bounds';
        break;
      }
      if (buf[fp + 12] !== 0) {
        bad = 'bad leaf prefix byte';
        break;
      }
      const leaf = hash('sha256', buf.subarray(fp + 12, fp + FRAME_HEADER_BYTES + len), 'buffer');
      if (leaf.compare(buf, fp + 4, fp + 12, 0, CHECK_BYTES) !== 0) {
        bad = 'checksum mismatch';
        break;
      }
      onEntry(index + n, fp, leaf);
      fp += FRAME_HEADER_BYTES + len;
    }
    if (bad === undefined && fp !== end) bad = end > eof ? 'batch extends past end of file' : 'batch size does not match its frames';
    if (bad !== undefined) {
      // Only the last batch can be half written: one whose declared end reaches end of file.
      const torn = end >= eof;
      const damage: SegmentDamage = { offset: fp, reason: bad, torn, keepBytes: n === 0 ? pos : fp };
      if (n > 0) damage.rewrite = { payloadBytes: fp - pos - BATCH_HEADER_BYTES, count: n, firstIndex: index, fileOffset: pos };
      return { count: index + n - firstIndex, damage };
    }
    index += h.count;
    pos = end;
  }
  return { count: index - firstIndex };
}
