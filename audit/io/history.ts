/**
 * The checkpoint history file (format in checkpoint-log.ts) and the `checkpoint` file beside the
 * tiles: open with torn-tail repair, durable appends, and a streaming reader for replay.
 */
import { open, readFile, type FileHandle } from 'node:fs/promises';
import { decodeCheckpointRecord, encodeCheckpointRecord, lastCheckpointRecord, RECORD_OVERHEAD, scanCheckpointLog, type SavedCheckpoint } from './checkpoint-log.js';
import { writeAllAt, type AtomicWriter } from './files.js';
import { corrupt, type StoreLayout } from './layout.js';

const READ_CHUNK = 1 << 20;

export class CheckpointHistory {
  private constructor(
    private readonly layout: StoreLayout,
    private readonly fh: FileHandle,
    private end: number,
    private last: SavedCheckpoint | undefined,
  ) {}

  /** Opens (creating) the history; repairs a torn last record; heals a stale `checkpoint` file. */
  static async open(layout: StoreLayout, writer: AtomicWriter): Promise<CheckpointHistory> {
    let fh: FileHandle;
    try {
      fh = await open(layout.history, 'r+');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      fh = await open(layout.history, 'w+');
      await writer.exclusive(async () => {
        writer.markDirty(layout.state);
        await writer.syncDirs();
      });
    }
    try {
      let { size: end } = await fh.stat();
      let last: SavedCheckpoint | undefined;
      if (end > 0) {
        const tailBytes = Math.min(end, 4096);
        const tail = Buffer.alloc(tailBytes);
        await fh.read(tail, 0, tailBytes, end - tailBytes);
        let got = lastCheckpointRecord(tail, end - tailBytes);
        if (got === undefined && end >= RECORD_OVERHEAD) {
          const n = tail.readUInt32BE(tailBytes - 4);
          if (n + RECORD_OVERHEAD <= end && n + RECORD_OVERHEAD > tailBytes) {
            const rec = Buffer.alloc(n + RECORD_OVERHEAD);
            await fh.read(rec, 0, rec.length, end - rec.length);
            got = lastCheckpointRecord(rec, end - rec.length);
          }
        }
        if (got !== undefined) {
          last = got.record;
        } else {
          // The tail is not an intact record: find the last one from the start.
          const scan = scanCheckpointLog(await readFile(layout.history));
          if (scan.damage !== undefined && !scan.damage.torn) throw corrupt(`${layout.history} at offset ${scan.damage.offset}: damaged checkpoint record (not a torn tail)`);
          await fh.truncate(scan.validEnd);
          await fh.datasync();
          end = scan.validEnd;
          last = scan.last;
        }
      }
      const history = new CheckpointHistory(layout, fh, end, last);
      if (last !== undefined) await history.healCheckpointFile(writer);
      return history;
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  /** The history is written before `checkpoint`; after a crash between the two, rewrite it. */
  private async healCheckpointFile(writer: AtomicWriter): Promise<void> {
    let current: string | undefined;
    try {
      current = await readFile(this.layout.checkpoint, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    if (current !== this.last!.note) await writer.writeDurable(this.layout.checkpoint, [Buffer.from(this.last!.note, 'utf8')]);
  }

  latest(): SavedCheckpoint | undefined {
    return this.last === undefined ? undefined : { ...this.last };
  }

  /** Appends a record durably, then publishes `checkpoint` atomically. */
  async save(size: number, note: string, writer: AtomicWriter): Promise<void> {
    const rec = encodeCheckpointRecord(size, note);
    await writeAllAt(this.fh, [rec], this.end);
    await this.fh.datasync();
    this.end += rec.length;
    this.last = { size, note };
    await writer.writeDurable(this.layout.checkpoint, [Buffer.from(note, 'utf8')]);
  }

  /** Every record saved before the call, oldest first. A damaged record → AUDIT_STORE_CORRUPT. */
  async *records(): AsyncGenerator<SavedCheckpoint> {
    const end = this.end;
    const fh = await open(this.layout.history, 'r');
    try {
      let buf = Buffer.alloc(0);
      let base = 0; // file offset of buf[0]
      let at = 0; // parse position in buf
      while (base + at < end) {
        const have = buf.length - at;
        const need = have >= 4 ? RECORD_OVERHEAD + buf.readUInt32BE(at) : RECORD_OVERHEAD;
        if (have < need && base + buf.length < end) {
          const more = Buffer.alloc(Math.min(Math.max(READ_CHUNK, need - have), end - base - buf.length));
          const { bytesRead } = await fh.read(more, 0, more.length, base + buf.length);
          buf = Buffer.concat([buf.subarray(at), more.subarray(0, bytesRead)]);
          base += at;
          at = 0;
          if (bytesRead === 0) break;
          continue;
        }
        const got = decodeCheckpointRecord(buf, at);
        if (got === undefined) throw corrupt(`${this.layout.history} at offset ${base + at}: damaged checkpoint record`);
        yield got.record;
        at = got.next;
      }
      if (base + at < end) throw corrupt(`${this.layout.history} at offset ${base + at}: checkpoint history ends early`);
    } finally {
      await fh.close();
    }
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}
