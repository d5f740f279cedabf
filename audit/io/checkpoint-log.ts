/**
 * The checkpoint history (`state/checkpoints.log`, ours): every checkpoint the store saved, in
 * order, for `cage audit replay`. One record per save, each made durable before the next:
 *
 *   0    u32  n, note bytes
 *   4    u64  tree size
 *   12   8B   first 8 bytes of SHA-256(bytes 0..12 ‖ note)
 *   20   n B  the signed note (UTF-8)
 *   20+n u32  n again, so the latest record is found from the end without reading the file
 *
 * Damage rules as for the WAL: a bad last record (its declared end reaches end of file, or only
 * zero bytes follow) is a torn tail; a bad record with data after it is corruption.
 */
import { hash } from 'node:crypto';

export const RECORD_OVERHEAD = 24;

export interface SavedCheckpoint {
  size: number;
  note: string;
}

export function encodeCheckpointRecord(size: number, note: string): Buffer {
  const text = Buffer.from(note, 'utf8');
  const b = Buffer.allocUnsafe(RECORD_OVERHEAD + text.length);
  b.writeUInt32BE(text.length, 0);
  b.writeBigUInt64BE(BigInt(size), 4);
  text.copy(b, 20);
  checkOf(b, 0, text.length).copy(b, 12, 0, 8);
  b.writeUInt32BE(text.length, 20 + text.length);
  return b;
}

function checkOf(buf: Buffer, at: number, n: number): Buffer {
  return hash('sha256', Buffer.concat([buf.subarray(at, at + 12), buf.subarray(at + 20, at + 20 + n)]), 'buffer');
}

/** Decodes the record at `at` if it is complete and its check matches; `end` bounds the read. */
export function decodeCheckpointRecord(buf: Buffer, at: number, end = buf.length): { record: SavedCheckpoint; next: number } | undefined {
  if (end - at < RECORD_OVERHEAD) return undefined;
  const n = buf.readUInt32BE(at);
  const next = at + RECORD_OVERHEAD + n;
  if (next > end || buf.readUInt32BE(next - 4) !== n) return undefined;
  if (checkOf(buf, at, n).compare(buf, at + 12, at + 20, 0, 8) !== 0) return undefined;
  const size = buf.readBigUInt64BE(at + 4);
  if (size > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
  return { record: { size: Number(size), note: buf.toString('utf8', at + 20, next - 4) }, next };
}

/** The record that ends exactly at end of file, if it is intact (the usual case on open). */
export function lastCheckpointRecord(tail: Buffer, tailOffset: number): { record: SavedCheckpoint; offset: number } | undefined {
  if (tail.length < RECORD_OVERHEAD) return undefined;
  const n = tail.readUInt32BE(tail.length - 4);
  const at = tail.length - RECORD_OVERHEAD - n;
  if (at < 0) return undefined;
  const got = decodeCheckpointRecord(tail, at);
  return got === undefined ? undefined : { record: got.record, offset: tailOffset + at };
}

export interface CheckpointLogScan {
  records: number;
  last?: SavedCheckpoint;
  /** End of the last valid record. */
  validEnd: number;
  damage?: { offset: number; torn: boolean };
}

/** Scans a whole history file (used when its tail is not intact). */
export function scanCheckpointLog(buf: Buffer): CheckpointLogScan {
  let at = 0;
  let records = 0;
  let last: SavedCheckpoint | undefined;
  while (at < buf.length) {
    const got = decodeCheckpointRecord(buf, at);
    if (got === undefined) {
      const declaredEnd = buf.length - at >= 4 ? at + RECORD_OVERHEAD + buf.readUInt32BE(at) : Infinity;
      const torn = declaredEnd >= buf.length || allZero(buf, at);
      return { records, last, validEnd: at, damage: { offset: at, torn } };
    }
    records++;
    last = got.record;
    at = got.next;
  }
  return { records, last, validEnd: at };
}

function allZero(buf: Buffer, from: number): boolean {
  for (let i = from; i < buf.length; i++) if (buf[i] !== 0) return false;
  return true;
}
