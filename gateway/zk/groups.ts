/**
 * The cage's membership groups, durable under `<data_dir>/zk/groups/<id>.json` (the group's own
 * export, circuits/group.ts `toJSON`: members by leaf index and the accepted recent roots). Every
 * change is written atomically (temp file, fsync, rename, folder fsync) before it is answered; a
 * change whose write fails is rolled back from the file. Changes run one at a time.
 *
 * Trust: ids and commitments come from the admin API (an admin token holder) and are checked by
 * Group all the same; files are the cage's own. Stale roots (older than the history) are kept in
 * memory only: after a restart a proof against one is ZK_UNKNOWN_ROOT instead of ZK_STALE_ROOT.
 */
import { readdir, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { Group } from '../../circuits/group.js';
import { CageError } from '../../core/errors.js';
import { ensureDir, fsyncDir, storeError, writeFileDurable } from '../../notary/io/files.js';

const ID_RE = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$/;

function notFound(id: string): CageError {
  return new CageError({ code: 'ZK_GROUP_NOT_FOUND', message: `no group ${JSON.stringify(id.slice(0, 64))}` });
}

export class GroupStore {
  private readonly groups = new Map<string, Group>();
  private changing: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly dir: string,
    private readonly rootHistory: number,
  ) {}

  static async open(dir: string, rootHistory: number): Promise<GroupStore> {
    await ensureDir(dir);
    const store = new GroupStore(dir, rootHistory);
    for (const name of await readdir(dir)) {
      if (!name.endsWith('.json') || name.startsWith('.')) continue;
      const g = await store.read(name.slice(0, -5));
      store.groups.set(g.id, g);
    }
    return store;
  }

  private file(id: string): string {
    return join(this.dir, `${id}.json`);
  }

  private async read(id: string): Promise<Group> {
    try {
      return await Group.fromJSON(JSON.parse(await readFile(this.file(id), 'utf8')), { rootHistory: this.rootHistory });
    } catch (err) {
      throw storeError('ZK_STORE_IO', `cannot load group file ${this.file(id)}`, err);
    }
  }

  get(id: string): Group | undefined {
    return this.groups.get(id);
  }

  all(): Group[] {
    return [...this.groups.values()];
  }

  private async save(g: Group): Promise<void> {
    try {
      await writeFileDurable(this.file(g.id), JSON.stringify(g.toJSON()) + '\n');
    } catch (err) {
      throw storeError('ZK_STORE_IO', `cannot write group ${g.id}`, err);
    }
  }

  /** Runs one change at a time; `f` mutates and the group is saved, or restored from its file. */
  private change<T>(f: () => Promise<{ group: Group; result: T }>): Promise<T> {
    const run = this.changing.then(async () => {
      const { group, result } = await f();
      try {
        await this.save(group);
      } catch (err) {
        if (this.groups.get(group.id) === group) {
          const old = await this.read(group.id).catch(() => undefined);
          if (old === undefined) this.groups.delete(group.id);
          else this.groups.set(group.id, old);
        }
        throw err;
      }
      return result;
    });
    this.changing = run.catch(() => undefined);
    return run;
  }

  create(id: string, commitments: readonly bigint[]): Promise<Group> {
    return this.change(async () => {
      if (!ID_RE.test(id)) throw new CageError({ code: 'ZK_BAD_GROUP', message: `group id must match ${ID_RE}` });
      if (this.groups.has(id)) throw new CageError({ code: 'ZK_GROUP_EXISTS', message: `group ${id} already exists` });
      const group = await Group.create(id, { rootHistory: this.rootHistory });
      group.addMany(commitments);
      this.groups.set(id, group);
      return { group, result: group };
    });
  }

  add(id: string, commitments: readonly bigint[]): Promise<number[]> {
    return this.change(async () => {
      const group = this.groups.get(id);
      if (group === undefined) throw notFound(id);
      return { group, result: group.addMany(commitments) };
    });
  }

  remove(id: string, commitment: bigint): Promise<number> {
    return this.change(async () => {
      const group = this.groups.get(id);
      if (group === undefined) throw notFound(id);
      return { group, result: group.remove(commitment) };
    });
  }

  /** Deletes a group (its file first). */
  delete(id: string): Promise<void> {
    const run = this.changing.then(async () => {
      if (!this.groups.has(id)) throw notFound(id);
      try {
        await unlink(this.file(id));
        await fsyncDir(this.dir);
      } catch (err) {
        throw storeError('ZK_STORE_IO', `cannot delete group ${id}`, err);
      }
      this.groups.delete(id);
    });
    this.changing = run.catch(() => undefined);
    return run;
  }

  /** For the admin API and errors: a group or ZK_GROUP_NOT_FOUND. */
  require(id: string): Group {
    const g = this.groups.get(id);
    if (g === undefined) throw notFound(id);
    return g;
  }
}
