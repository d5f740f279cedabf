/**
 * Durable file helpers for the audit store: whole-file writes that never leave a half file
 * visible (write a temp file in `state/tmp/`, fdatasync, rename into place, fsync the directory),
 * and directory creation whose new entries are made durable too. The temp directory is on the same
 * filesystem as the target, so the rename is atomic; leftovers are removed when the store opens.
 */
import { mkdir, open, rename, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { CageError } from '../../core/errors.js';

export function ioError(what: string, cause: unknown): CageError {
  const detail = cause instanceof Error ? cause.message : String(cause);
  return new CageError({ code: 'AUDIT_STORE_IO', message: `audit store: ${what}: ${detail}`, cause });
}

/** Writes all of `chunks` at `position` (positional writes may be short). */
export async function writeAllAt(fh: FileHandle, chunks: Buffer[], position: number): Promise<void> {
  const rest = chunks.filter((c) => c.length > 0);
  while (rest.length > 0) {
    const { bytesWritten } = await fh.writev(rest, position);
    position += bytesWritten;
    let skip = bytesWritten;
    while (rest.length > 0 && skip >= rest[0]!.length) skip -= rest.shift()!.length;
    if (skip > 0) rest[0] = rest[0]!.subarray(skip);
  }
}

export async function fsyncDir(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Writes files atomically under one root. Directories it has created or seen are remembered, so
 * a steady stream of tiles costs no mkdir calls; directories whose entries changed are collected
 * until `syncDirs()`. Callers that share the dirty set run inside `exclusive()`, one at a time, so
 * nobody counts a directory as durable while another caller's fsync of it is still pending.
 */
export class AtomicWriter {
  private readonly known = new Set<string>();
  private readonly dirty = new Set<string>();
  private tmpCounter = 0;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(private readonly tmpDir: string) {}

  /** Runs `fn` after every earlier exclusive section has finished. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  /** Resolves once every exclusive section queued so far has finished. */
  idle(): Promise<void> {
    return this.chain.then(() => undefined);
  }

  /** mkdir -p; every directory that gained an entry is marked for fsync. */
  async ensureDir(dir: string): Promise<void> {
    if (this.known.has(dir)) return;
    const created = await mkdir(dir, { recursive: true });
    if (created !== undefined) {
      for (let d = dir; ; d = dirname(d)) {
        this.dirty.add(dirname(d));
        if (d === created || dirname(d) === d) break;
      }
    }
    this.known.add(dir);
  }

  forget(dir: string): void {
    for (const d of this.known) if (d === dir || d.startsWith(dir + '/')) this.known.delete(d);
  }

  /** Temp write + fdatasync + rename; the target directory is fsynced by `syncDirs()`. */
  async write(target: string, chunks: Buffer[]): Promise<void> {
    const tmp = join(this.tmpDir, `${process.pid}-${this.tmpCounter++}.tmp`);
    const fh = await open(tmp, 'w');
    try {
      await writeAllAt(fh, chunks, 0);
      await fh.datasync();
    } finally {
      await fh.close();
    }
    const dir = dirname(target);
    await this.ensureDir(dir);
    await rename(tmp, target);
    this.dirty.add(dir);
  }

  markDirty(dir: string): void {
    this.dirty.add(dir);
  }

  /** fsyncs every directory that gained or changed an entry since the last call. */
  async syncDirs(): Promise<void> {
    const dirs = [...this.dirty];
    this.dirty.clear();
    await Promise.all(dirs.map((d) => fsyncDir(d)));
  }

  /** One durable file, in its own exclusive section: write + the directory fsyncs it needs. */
  writeDurable(target: string, chunks: Buffer[]): Promise<void> {
    return this.exclusive(async () => {
      await this.write(target, chunks);
      await this.syncDirs();
    });
  }
}
