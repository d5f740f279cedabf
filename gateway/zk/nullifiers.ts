/**
 * The nullifier store: which anonymous proofs the cage accepted per (scope, epoch), so a member
 * shows its nullifier at most `limit` times there (ZK_NULLIFIER_LIMIT) and no proof is accepted
 * twice (ZK_REPLAY), and the anonymous sessions those proofs opened.
 *
 * A proof is identified by (scope, epoch, nullifier, signal hash), not by its bytes: Groth16
 * proofs are malleable (anyone can re-randomize one into other valid bytes for the same public
 * signals), but the signal binds the request (or the session key), so a re-randomized copy is
 * still the same use.
 *
 * Durability: one append-only file per epoch, `<dir>/<epoch_seconds>s-<epoch>.jsonl`, one JSON
 * line per accepted proof; lines are written in batches with one fdatasync each (group commit),
 * and `accept` resolves only once its line is durable, so a restart within the epoch (even a
 * crash) keeps every use whose request went through. On open, a torn last line is cut off and
 * files older than the previous epoch are deleted; the same pruning runs as epochs pass.
 * The files hold nullifiers, roots and session public keys: nothing that identifies a member.
 */
import { open, readdir, readFile, truncate, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { CageError } from '../../core/errors.js';
import type { ZkFacts } from '../exchange.js';
import { ensureDir, fsyncDir, storeError } from '../../notary/io/files.js';

/** One accepted proof, as stored. Field elements are 64 lower-case hex digits. */
export interface NullifierUse {
  scope: string;
  epoch: number;
  nullifier: string;
  signal: string;
  group: string;
  root: string;
  /** Session proofs: the session's did:key. */
  session?: string;
}

export interface Session {
  did: string;
  facts: ZkFacts;
  /** facts.root as a number (checked against the group's history on every request). */
  root: bigint;
}

interface EpochState {
  /** `scope nullifier` → uses. */
  counts: Map<string, number>;
  /** `scope nullifier signal`. */
  seen: Set<string>;
  file: FileHandle | undefined;
}

const FILE_RE = /^(\d{1,9})s-(\d{1,15})\.jsonl$/;

export class NullifierStore {
  private readonly epochs = new Map<number, EpochState>();
  private readonly sessionsByDid = new Map<string, Session>();
  private pending: { epoch: number; line: string; resolve: () => void; reject: (err: unknown) => void }[] = [];
  private flushing = false;
  private closed = false;
  private newest = 0;
  private pruning: Promise<void> = Promise.resolve();

  private constructor(
    private readonly dir: string,
    readonly epochSeconds: number,
  ) {}

  static async open(dir: string, epochSeconds: number, currentEpoch: number): Promise<NullifierStore> {
    await ensureDir(dir);
    const store = new NullifierStore(dir, epochSeconds);
    store.newest = currentEpoch;
    for (const name of await readdir(dir)) {
      const m = FILE_RE.exec(name);
      if (m === null) continue;
      const epoch = Number(m[2]);
      if (Number(m[1]) !== epochSeconds || epoch < currentEpoch - 1) {
        await unlink(join(dir, name));
        continue;
      }
      await store.load(join(dir, name), epoch);
    }
    await fsyncDir(dir);
    return store;
  }

  private async load(path: string, epoch: number): Promise<void> {
    const text = await readFile(path, 'utf8');
    const end = text.lastIndexOf('\n') + 1;
    // A crash mid-append leaves a torn last line: cut it off so the next append starts clean.
    if (end < text.length) await truncate(path, Buffer.byteLength(text.slice(0, end)));
    for (const line of text.slice(0, end).split('\n')) {
      if (line === '') continue;
      let u: NullifierUse;
      try {
        u = JSON.parse(line) as NullifierUse;
      } catch {
        continue; // our own file; a line that does not parse cannot be a use that was acknowledged
      }
      if (typeof u.scope !== 'string' || typeof u.nullifier !== 'string' || typeof u.signal !== 'string') continue;
      this.remember({ ...u, epoch });
    }
  }

  private state(epoch: number): EpochState {
    let s = this.epochs.get(epoch);
    if (s === undefined) {
      s = { counts: new Map(), seen: new Set(), file: undefined };
      this.epochs.set(epoch, s);
    }
    return s;
  }

  private remember(u: NullifierUse): void {
    const s = this.state(u.epoch);
    const key = `${u.scope} ${u.nullifier}`;
    s.counts.set(key, (s.counts.get(key) ?? 0) + 1);
    s.seen.add(`${key} ${u.signal}`);
    if (u.session !== undefined) {
      this.sessionsByDid.set(u.session, { did: u.session, root: BigInt(`0x${u.root}`), facts: Object.freeze({ group: u.group, root: u.root, nullifier: u.nullifier, scope: u.scope, epoch: u.epoch, mode: 'session' }) });
    }
  }

  /** ZK_REPLAY if this exact proof was accepted, ZK_NULLIFIER_LIMIT if the member used up `limit`; else undefined. */
  check(scope: string, epoch: number, nullifier: string, signal: string, limit: number): CageError | undefined {
    const s = this.epochs.get(epoch);
    if (s === undefined) return undefined;
    const key = `${scope} ${nullifier}`;
    if (s.seen.has(`${key} ${signal}`)) return new CageError({ code: 'ZK_REPLAY', message: 'this proof was already accepted' });
    if ((s.counts.get(key) ?? 0) >= limit) {
      return new CageError({ code: 'ZK_NULLIFIER_LIMIT', message: `this member already showed ${limit} proof(s) in scope ${scope} this epoch` });
    }
    return undefined;
  }

  /** How many times the nullifier was shown in (scope, epoch). */
  uses(scope: string, epoch: number, nullifier: string): number {
    return this.epochs.get(epoch)?.counts.get(`${scope} ${nullifier}`) ?? 0;
  }

  /**
   * Checks and records a verified proof in one synchronous step (so of two concurrent copies only
   * one wins), then resolves once it is durable. Rejects with the check's CageError, or
   * ZK_STORE_IO when the write fails (the use stays counted: failing closed).
   */
  accept(u: NullifierUse, limit: number): Promise<void> {
    if (this.closed) return Promise.reject(new CageError({ code: 'ZK_STORE_IO', message: 'the nullifier store is closed' }));
    const refused = this.check(u.scope, u.epoch, u.nullifier, u.signal, limit);
    if (refused !== undefined) return Promise.reject(refused);
    this.remember(u);
    if (u.epoch > this.newest) {
      this.newest = u.epoch;
      this.prune();
    }
    const { epoch, ...rest } = u;
    return new Promise((resolve, reject) => {
      this.pending.push({ epoch, line: `${JSON.stringify(rest)}\n`, resolve, reject });
      if (!this.flushing) void this.flush();
    });
  }

  session(did: string): Session | undefined {
    return this.sessionsByDid.get(did);
  }

  get sessionCount(): number {
    return this.sessionsByDid.size;
  }

  /** One batch at a time: append every pending line to its epoch's file, one fdatasync per file. */
  private async flush(): Promise<void> {
    this.flushing = true;
    while (this.pending.length > 0) {
      const batch = this.pending;
      this.pending = [];
      const byEpoch = new Map<number, typeof batch>();
      for (const p of batch) (byEpoch.get(p.epoch) ?? byEpoch.set(p.epoch, []).get(p.epoch)!).push(p);
      for (const [epoch, items] of byEpoch) {
        try {
          const s = this.state(epoch);
          if (s.file === undefined) {
            s.file = await open(join(this.dir, `${this.epochSeconds}s-${epoch}.jsonl`), 'a');
            await fsyncDir(this.dir);
          }
          await s.file.write(items.map((i) => i.line).join(''));
          await s.file.datasync();
          for (const i of items) i.resolve();
        } catch (err) {
          const e = storeError('ZK_STORE_IO', 'cannot append to the nullifier store', err);
          for (const i of items) i.reject(e);
        }
      }
    }
    this.flushing = false;
  }

  /** Forgets epochs (and their sessions) older than the previous one at once; deletes their files after. */
  private prune(): void {
    const keep = this.newest - 1;
    const files: (FileHandle | undefined)[] = [];
    const paths: string[] = [];
    for (const [epoch, s] of this.epochs) {
      if (epoch >= keep) continue;
      this.epochs.delete(epoch);
      files.push(s.file);
      paths.push(join(this.dir, `${this.epochSeconds}s-${epoch}.jsonl`));
    }
    for (const [did, sess] of this.sessionsByDid) if (sess.facts.epoch < keep) this.sessionsByDid.delete(did);
    if (paths.length === 0) return;
    this.pruning = this.pruning.then(async () => {
      for (const f of files) await f?.close().catch(() => undefined);
      for (const p of paths) await unlink(p).catch(() => undefined);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    while (this.flushing || this.pending.length > 0) await new Promise((r) => setTimeout(r, 5));
    await this.pruning;
    for (const s of this.epochs.values()) await s.file?.close().catch(() => undefined);
  }
}
