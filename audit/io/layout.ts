/**
 * Where the audit store keeps what, under its root directory:
 *
 *   checkpoint                   the latest signed checkpoint (C2SP tlog-tiles static path)
 *   tile/<L>/<N>[.p/<W>]         hash tiles (C2SP tlog-tiles)
 *   tile/entries/<N>[.p/<W>]     entry bundles (C2SP tlog-tiles)
 *   state/                       private: serve only `checkpoint` and `tile/`
 *     format                     "cage-audit-store 1"
 *     lock                       pid of the process that has the store open (advisory)
 *     wal/<first index>.wal      write-ahead log segments, 20-digit zero-padded names
 *     checkpoints.log            every saved checkpoint, in order
 *     tmp/                       temp files of atomic writes; emptied on open
 */
import { readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CageError } from '../../core/errors.js';
import { bundlePath, tilePath, TILE_WIDTH } from './paths.js';
import { TILE_BYTES } from './tree.js';

export const FORMAT_LINE = 'cage-audit-store 1\n';
const SEGMENT_RE = /^(\d{20})\.wal$/;

export class StoreLayout {
  readonly state: string;
  readonly wal: string;
  readonly tmp: string;
  readonly format: string;
  readonly lock: string;
  readonly history: string;
  readonly checkpoint: string;
  readonly tiles: string;

  constructor(readonly root: string) {
    this.state = join(root, 'state');
    this.wal = join(this.state, 'wal');
    this.tmp = join(this.state, 'tmp');
    this.format = join(this.state, 'format');
    this.lock = join(this.state, 'lock');
    this.history = join(this.state, 'checkpoints.log');
    this.checkpoint = join(root, 'checkpoint');
    this.tiles = join(root, 'tile');
  }

  segment(first: number): string {
    return join(this.wal, `${String(first).padStart(20, '0')}.wal`);
  }

  /** The first entry index of a segment file name, or undefined for other names. */
  static segmentFirst(name: string): number | undefined {
    const m = SEGMENT_RE.exec(name);
    const n = m === null ? NaN : Number(m[1]);
    return Number.isSafeInteger(n) ? n : undefined;
  }

  tile(level: number, n: number, width = TILE_WIDTH): string {
    return join(this.root, tilePath(level, n, width));
  }

  bundle(n: number, width = TILE_WIDTH): string {
    return join(this.root, bundlePath(n, width));
  }

  /** Reads a full hash tile; anything but 8,192 bytes is corruption. */
  readTile(level: number, n: number): Buffer {
    const path = this.tile(level, n);
    let buf: Buffer;
    try {
      buf = readFileSync(path);
    } catch (e) {
      throw corrupt(`${path}: cannot read a full tile the log needs`, e);
    }
    if (buf.length !== TILE_BYTES) throw corrupt(`${path}: a full tile must be ${TILE_BYTES} bytes, found ${buf.length}`);
    return buf;
  }

  /** Reads a full entry bundle and finds its 256 entries. */
  readBundle(n: number): { buf: Buffer; starts: Uint32Array } {
    const path = this.bundle(n);
    let buf: Buffer;
    try {
      buf = readFileSync(path);
    } catch (e) {
      throw corrupt(`${path}: cannot read a full entry bundle the log needs`, e);
    }
    const starts = new Uint32Array(TILE_WIDTH + 1);
    let at = 0;
    for (let i = 0; i < TILE_WIDTH; i++) {
      if (at + 2 > buf.length) throw corrupt(`${path} at offset ${at}: bundle ends after ${i} entries`);
      starts[i] = at + 2;
      at += 2 + buf.readUInt16BE(at);
    }
    if (at !== buf.length) throw corrupt(`${path} at offset ${Math.min(at, buf.length)}: bundle size does not match its 256 entries`);
    starts[TILE_WIDTH] = at + 2;
    return { buf, starts };
  }
}

export function corrupt(message: string, cause?: unknown): CageError {
  return new CageError({ code: 'AUDIT_STORE_CORRUPT', message: `audit store: ${message}`, cause });
}

/** Stores open in this process, by root: a second open of the same root is refused. */
const HELD = new Set<string>();

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Takes the store's advisory lock: refused if this process already has the root open, or if the
 * lock file names another live process. A lock left by a dead process (kill -9) is taken over.
 */
export function acquireLock(layout: StoreLayout): void {
  if (HELD.has(layout.root)) throw locked(layout, process.pid);
  let holder = NaN;
  try {
    holder = Number(readFileSync(layout.lock, 'utf8').trim());
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  if (Number.isSafeInteger(holder) && holder > 0 && holder !== process.pid && alive(holder)) throw locked(layout, holder);
  writeFileSync(layout.lock, `${process.pid}\n`);
  HELD.add(layout.root);
}

export function releaseLock(layout: StoreLayout): void {
  if (!HELD.delete(layout.root)) return;
  try {
    if (Number(readFileSync(layout.lock, 'utf8').trim()) === process.pid) unlinkSync(layout.lock);
  } catch {
    // The lock is advisory: a missing file is as good as a released one.
  }
}

function locked(layout: StoreLayout, pid: number): CageError {
  return new CageError({
    code: 'AUDIT_STORE_LOCKED',
    message: `audit store: ${layout.root} is open in process ${pid} (lock file ${layout.lock}; remove it only if no cage uses this log)`,
  });
}
