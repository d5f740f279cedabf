/**
 * Durable whole-file writes for the notary: write a temp file beside the target's folder, fsync
 * it, rename it into place, fsync the folder. A reader (or a restart after a crash at any instant)
 * sees the old file or the new one, never half of one. `step` hooks let fault tests stop the
 * sequence between any two steps, as a crash would.
 */
import { mkdir, open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { CageError, type CageErrorCode } from '../../core/errors.js';
import { fsyncDir } from '../../audit/io/files.js';

export { fsyncDir };

export type WriteStep = 'open-temp' | 'write-temp' | 'fsync-temp' | 'rename' | 'fsync-dir';

/** Called before each step; throwing (or rejecting) aborts the write there, like a crash. */
export type StepHook = (step: WriteStep, path: string) => void | Promise<void>;

export function storeError(code: CageErrorCode, what: string, cause: unknown): CageError {
  const detail = cause instanceof Error ? cause.message : String(cause);
  return new CageError({ code, message: `${what}: ${detail}`, cause });
}


let tmpCounter = 0;

/**
 * Replaces `path` with `data` durably. `tmpDir` must be on the same filesystem (default: the
 * target's folder). Throws whatever the filesystem (or a hook) throws; the target is then either
 * untouched or, if the rename happened, already the new file.
 */
export async function writeFileDurable(path: string, data: string | Uint8Array, opts: { tmpDir?: string; mode?: number; step?: StepHook } = {}): Promise<void> {
  const dir = dirname(path);
  const tmp = join(opts.tmpDir ?? dir, `.${basename(path)}.${process.pid}.${++tmpCounter}.tmp`);
  const step = opts.step ?? (() => undefined);
  await step('open-temp', tmp);
  const fh = await open(tmp, 'wx', opts.mode ?? 0o644);
  let renamed = false;
  try {
    await step('write-temp', tmp);
    await fh.writeFile(data);
    await step('fsync-temp', tmp);
    await fh.sync();
    await fh.close();
    await step('rename', path);
    await rename(tmp, path);
    renamed = true;
    await step('fsync-dir', dir);
    await fsyncDir(dir);
  } finally {
    await fh.close().catch(() => undefined);
    if (!renamed) await unlink(tmp).catch(() => undefined);
  }
}

/** mkdir -p, then fsync the parent of every folder it may have created. */
export async function ensureDir(path: string): Promise<void> {
  const created = await mkdir(path, { recursive: true });
  if (created !== undefined) {
    // Make the new entries durable from the first created folder's parent down.
    let p = path;
    const chain: string[] = [];
    while (p.length >= created.length) {
      chain.push(dirname(p));
      if (p === created) break;
      p = dirname(p);
    }
    for (const d of chain.reverse()) await fsyncDir(d);
  }
}
