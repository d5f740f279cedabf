/**
 * The notary's durable state: the latest cosigned checkpoint of each log, and evidence files.
 *
 *   DIR/lock                        pid of the live notary (a second process refuses to start)
 *   DIR/state/<h>.json              one per log, h = first 32 hex digits of SHA-256(origin):
 *                                   {"type":"cage-notary-state/v1","origin","size","root_hash","note"}
 *   DIR/evidence/<time>-<kind>-<id>.json   see `EvidenceFile`; id = SHA-256(kind ‖ body)[:16 hex]
 *   DIR/tmp/                        temp files of writes in flight (cleared on open)
 *
 * `saveState` returns only once the new state is durable (temp + fsync + rename + dir fsync), and
 * the in-memory copy changes only then: the server cosigns after it returns, so no crash can make
 * the notary forget a checkpoint it cosigned, and so cosign a rollback or a fork after a restart.
 * After any write failure the store refuses every later write (NOTARY_STORE_IO) until reopened:
 * after a failed fsync the page cache's state is unknown, and only a restart re-reads the truth.
 *
 * Trust: the files are the notary's own; on open they are parsed strictly and `verify` checks each
 * state's note against the configured log keys. A damaged file stops the notary
 * (NOTARY_STORE_CORRUPT) rather than being treated as "never cosigned".
 */
import { hash } from 'node:crypto';
import { open, readdir, readFile, rm, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { CageError } from '../../core/errors.js';
import { parseCheckpoint } from '../../audit/checkpoint.js';
import { decodeBase64, encodeBase64, openNote } from '../../audit/note.js';
import { formatAddCheckpointBody, type Evidence, type KnownLogs, type LogState } from '../witness.js';
import { ensureDir, fsyncDir, storeError, writeFileDurable, type StepHook } from './files.js';

export const STATE_TYPE = 'cage-notary-state/v1';
export const EVIDENCE_TYPE = 'cage-notary-evidence/v1';
/** Evidence files kept at most (refusals beyond are answered but not recorded). */
export const DEFAULT_MAX_EVIDENCE_FILES = 10_000;

/** The JSON of one evidence file: both log-signed checkpoints, and the request as received. */
export interface EvidenceFile {
  readonly type: typeof EVIDENCE_TYPE;
  readonly kind: Evidence['kind'];
  readonly origin: string;
  /** UNIX seconds at which the notary refused the request. */
  readonly time: number;
  readonly code: string;
  readonly message: string;
  readonly recorded: { readonly size: number; readonly root_hash: string; readonly note: string };
  readonly submitted: { readonly old_size: number; readonly proof: readonly string[]; readonly note: string; readonly body: string };
}

export interface NotaryStoreOptions {
  /** Fault injection for tests: called before each step of each state write. */
  readonly step?: StepHook;
  readonly maxEvidenceFiles?: number;
}

const STORE_OPTION_KEYS = new Set(['step', 'maxEvidenceFiles']);

function corrupt(message: string): CageError {
  return new CageError({ code: 'NOTARY_STORE_CORRUPT', message: `notary store: ${message}` });
}

export function originFileName(origin: string): string {
  return `${hash('sha256', origin, 'hex').slice(0, 32)}.json`;
}

/** Data directories this process holds (a second open in the same process is refused too). */
const HELD = new Set<string>();

function isPidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function takeLock(path: string): Promise<void> {
  if (HELD.has(path)) throw new CageError({ code: 'NOTARY_STORE_LOCKED', message: `notary store: ${path} is held by this process` });
  for (let i = 0; i < 3; i++) {
    try {
      const fh = await open(path, 'wx', 0o644);
      await fh.writeFile(`${process.pid}\n`);
      await fh.sync();
      await fh.close();
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw storeError('NOTARY_STORE_IO', `notary store: cannot create ${path}`, err);
    }
    const pid = Number((await readFile(path, 'utf8').catch(() => '')).trim());
    if (Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && isPidAlive(pid)) {
      throw new CageError({ code: 'NOTARY_STORE_LOCKED', message: `notary store: ${path} is held by live process ${pid}` });
    }
    await unlink(path).catch(() => undefined); // stale: its process is gone
  }
  throw new CageError({ code: 'NOTARY_STORE_LOCKED', message: `notary store: cannot take ${path}` });
}

function parseStateFile(name: string, text: string): LogState {
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch {
    throw corrupt(`state/${name} is not JSON`);
  }
  const o = j as Record<string, unknown>;
  if (typeof o !== 'object' || o === null || o.type !== STATE_TYPE) throw corrupt(`state/${name} is not a ${STATE_TYPE} file`);
  const keys = Object.keys(o).sort().join(',');
  if (keys !== 'note,origin,root_hash,size,type') throw corrupt(`state/${name} has fields ${keys}`);
  if (typeof o.origin !== 'string' || originFileName(o.origin) !== name) throw corrupt(`state/${name} does not belong to its origin`);
  if (typeof o.size !== 'number' || !Number.isSafeInteger(o.size) || o.size < 0) throw corrupt(`state/${name} has a bad size`);
  const rootHash = typeof o.root_hash === 'string' ? decodeBase64(o.root_hash) : undefined;
  if (rootHash === undefined || rootHash.length !== 32) throw corrupt(`state/${name} has a bad root hash`);
  if (typeof o.note !== 'string') throw corrupt(`state/${name} has no note`);
  return Object.freeze({ origin: o.origin, size: o.size, rootHash, note: o.note });
}

export class NotaryStore {
  private readonly states = new Map<string, LogState>();
  private readonly evidenceIds = new Set<string>();
  private failed: CageError | undefined;
  private closed = false;

  private constructor(
    readonly dir: string,
    private readonly opts: NotaryStoreOptions,
    private evidenceCount: number,
  ) {}

  /** Opens (creating if needed) a data directory, takes its lock, and reads every state file. */
  static async open(dir: string, opts: NotaryStoreOptions = {}): Promise<NotaryStore> {
    for (const k of Object.keys(opts)) if (!STORE_OPTION_KEYS.has(k)) throw new TypeError(`notary store: unknown option ${JSON.stringify(k)}`);
    const max = opts.maxEvidenceFiles ?? DEFAULT_MAX_EVIDENCE_FILES;
    if (!Number.isSafeInteger(max) || max < 0) throw new TypeError('notary store: maxEvidenceFiles must be a non-negative integer');
    try {
      for (const d of ['state', 'evidence', 'tmp']) await ensureDir(join(dir, d));
    } catch (err) {
      throw storeError('NOTARY_STORE_IO', `notary store: cannot create ${dir}`, err);
    }
    const lock = resolve(dir, 'lock');
    await takeLock(lock);
    HELD.add(lock);
    try {
      await rm(join(dir, 'tmp'), { recursive: true, force: true });
      await ensureDir(join(dir, 'tmp'));
      const evidence = (await readdir(join(dir, 'evidence'))).filter((n) => n.endsWith('.json'));
      const store = new NotaryStore(dir, opts, evidence.length);
      for (const n of evidence) store.evidenceIds.add(n.replace(/\.json$/, '').split('-').pop()!);
      for (const name of await readdir(join(dir, 'state'))) {
        if (name.startsWith('.') && name.endsWith('.tmp')) {
          await unlink(join(dir, 'state', name)); // a temp file a crash left behind
          continue;
        }
        const s = parseStateFile(name, await readFile(join(dir, 'state', name), 'utf8'));
        store.states.set(s.origin, s);
      }
      return store;
    } catch (err) {
      HELD.delete(lock);
      await unlink(lock).catch(() => undefined);
      if (err instanceof CageError) throw err;
      throw storeError('NOTARY_STORE_IO', `notary store: cannot read ${dir}`, err);
    }
  }

  /**
   * Checks every state of a configured log against its keys: the note verifies and says the size
   * and root recorded. Throws NOTARY_STORE_CORRUPT. States of logs no longer configured are kept.
   */
  verify(logs: KnownLogs): void {
    for (const s of this.states.values()) {
      const verifiers = logs.verifiers(s.origin);
      if (verifiers === undefined) continue;
      let ok: boolean;
      try {
        const cp = parseCheckpoint(openNote(s.note, verifiers).text);
        ok = cp.origin === s.origin && cp.size === s.size && cp.rootHash.equals(s.rootHash);
      } catch {
        ok = false;
      }
      if (!ok) throw corrupt(`the state of ${s.origin} does not match its signed note (or the log key changed)`);
    }
  }

  get(origin: string): LogState | undefined {
    return this.states.get(origin);
  }

  get origins(): string[] {
    return [...this.states.keys()];
  }

  /** Set once a write failed: every later write refuses until the store is reopened. */
  get failure(): CageError | undefined {
    return this.failed;
  }

  /** Replaces the state of `state.origin` durably; the in-memory state changes only after. Throws NOTARY_STORE_IO. */
  async saveState(state: LogState): Promise<void> {
    if (this.closed) throw new CageError({ code: 'NOTARY_STORE_IO', message: 'notary store: closed' });
    if (this.failed !== undefined) throw this.failed;
    const json =
      JSON.stringify({ type: STATE_TYPE, origin: state.origin, size: state.size, root_hash: encodeBase64(state.rootHash), note: state.note }, null, 1) + '\n';
    try {
      await writeFileDurable(join(this.dir, 'state', originFileName(state.origin)), json, { tmpDir: join(this.dir, 'tmp'), ...(this.opts.step === undefined ? {} : { step: this.opts.step }) });
    } catch (err) {
      this.failed = storeError('NOTARY_STORE_IO', `notary store: saving the state of ${state.origin} failed; restart the notary`, err);
      throw this.failed;
    }
    this.states.set(state.origin, state);
  }

  /**
   * Writes an evidence file durably, once per distinct (kind, request). Returns its path, or
   * undefined when it was a duplicate or the evidence folder is full. Never throws for I/O
   * (evidence is best effort: the refusal stands either way); returns undefined then too.
   */
  async saveEvidence(ev: Evidence, time: number): Promise<string | undefined> {
    const body = formatAddCheckpointBody(ev.submitted.oldSize, ev.submitted.proof, ev.submitted.note);
    const id = hash('sha256', `${ev.kind}\n${body}`, 'hex').slice(0, 16);
    if (this.evidenceIds.has(id) || this.closed) return undefined;
    if (this.evidenceCount >= (this.opts.maxEvidenceFiles ?? DEFAULT_MAX_EVIDENCE_FILES)) return undefined;
    const file: EvidenceFile = {
      type: EVIDENCE_TYPE,
      kind: ev.kind,
      origin: ev.origin,
      time,
      code: ev.code,
      message: ev.message,
      recorded: { size: ev.recorded.size, root_hash: encodeBase64(ev.recorded.rootHash), note: ev.recorded.note },
      submitted: { old_size: ev.submitted.oldSize, proof: ev.submitted.proof.map((h) => encodeBase64(h)), note: ev.submitted.note, body },
    };
    const path = join(this.dir, 'evidence', `${time}-${ev.kind}-${id}.json`);
    this.evidenceIds.add(id);
    this.evidenceCount++;
    try {
      await writeFileDurable(path, JSON.stringify(file, null, 1) + '\n', { tmpDir: join(this.dir, 'tmp') });
      return path;
    } catch {
      this.evidenceIds.delete(id);
      this.evidenceCount--;
      return undefined;
    }
  }

  /** Paths of the evidence files, oldest first. */
  async listEvidence(): Promise<string[]> {
    const names = (await readdir(join(this.dir, 'evidence'))).filter((n) => n.endsWith('.json'));
    return names.sort((a, b) => Number(a.split('-')[0]) - Number(b.split('-')[0]) || a.localeCompare(b)).map((n) => join(this.dir, 'evidence', n));
  }

  /** Releases the lock. Writes in flight must have finished (the server drains first). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    HELD.delete(resolve(this.dir, 'lock'));
    await unlink(join(this.dir, 'lock')).catch(() => undefined);
    await fsyncDir(this.dir).catch(() => undefined);
  }

  /**
   * For crash tests: drops this store as a killed process would, leaving its lock file behind
   * (with this process's pid, which a later open in this process then takes over as stale).
   */
  abandon(): void {
    this.closed = true;
    HELD.delete(resolve(this.dir, 'lock'));
  }
}
