/**
 * A group: the members' identity commitments as leaves of a fixed-depth binary Poseidon Merkle
 * tree, the tree membership.circom proves inclusion in.
 *
 * - Depth TREE_DEPTH = 20 (up to 1,048,576 leaves); node = Poseidon(left, right); an empty leaf is
 *   0 and an empty subtree of height i is zeros[i] (zeros[0] = 0, zeros[i+1] = Poseidon(zeros[i], zeros[i])).
 * - Leaves are appended left to right; remove sets a leaf back to 0 (its index is never reused).
 * - Incremental: an add or a remove rehashes one path (20 hashes); addMany rehashes each dirty
 *   node once.
 * - Root history: the last `rootHistory` roots (the current one included) are accepted; older
 *   roots are remembered (up to `staleMemory`) so a verifier can tell "stale" from "unknown".
 * - toJSON / fromJSON: the export a client proves from (`cage zk prove --group FILE|URL`).
 *   fromJSON parses untrusted input and checks the stated root against the members.
 */
import { CageError } from '../core/errors.js';
import { isFieldElement } from './field.js';
import { getPoseidon, type PoseidonHash } from './poseidon.js';

export const TREE_DEPTH = 20;
export const MAX_MEMBERS = 2 ** TREE_DEPTH;
export const GROUP_FORMAT = 'cage-zk-group/v1';
export const DEFAULT_ROOT_HISTORY = 16;
export const DEFAULT_STALE_MEMORY = 1024;
const GROUP_ID_RE = /^[A-Za-z0-9._-]{1,64}$/;

export type RootStatus = 'current' | 'recent' | 'stale' | 'unknown';

export interface MerkleProof {
  leaf: bigint;
  index: number;
  root: bigint;
  siblings: bigint[];
  /** Bit i: 1 when the node at level i is a right child. */
  pathIndices: number[];
}

export interface GroupOptions {
  rootHistory?: number;
  staleMemory?: number;
}

export interface GroupExport {
  format: typeof GROUP_FORMAT;
  id: string;
  depth: number;
  /** Decimal commitments by leaf index; "0" for a removed member. */
  members: string[];
  root: string;
  /** Accepted recent roots, newest (the current root) first. */
  roots: string[];
}

function badGroup(message: string): CageError {
  return new CageError({ code: 'ZK_BAD_GROUP', message });
}

const zeroCache = new WeakMap<PoseidonHash, bigint[]>();
function zeroHashes(hash: PoseidonHash): bigint[] {
  let z = zeroCache.get(hash);
  if (!z) {
    z = [0n];
    for (let i = 0; i < TREE_DEPTH; i++) z.push(hash([z[i]!, z[i]!]));
    zeroCache.set(hash, z);
  }
  return z;
}

export class Group {
  readonly id: string;
  readonly rootHistory: number;
  readonly staleMemory: number;
  /** levels[0]: leaves; levels[i]: nodes of height i that have a non-empty subtree below them. */
  private readonly levels: bigint[][];
  private readonly indexByCommitment = new Map<bigint, number>();
  private readonly zeros: bigint[];
  /** Accepted roots, newest first. */
  private recent: bigint[] = [];
  private stale: bigint[] = [];
  private readonly staleSet = new Set<bigint>();

  private constructor(id: string, private readonly hash: PoseidonHash, opts: GroupOptions) {
    if (!GROUP_ID_RE.test(id)) throw badGroup(`group id must match ${GROUP_ID_RE}`);
    const rootHistory = opts.rootHistory ?? DEFAULT_ROOT_HISTORY;
    const staleMemory = opts.staleMemory ?? DEFAULT_STALE_MEMORY;
    if (!Number.isInteger(rootHistory) || rootHistory < 1 || rootHistory > 4096) throw badGroup('rootHistory must be an integer in 1..4096');
    if (!Number.isInteger(staleMemory) || staleMemory < 0 || staleMemory > 1 << 20) throw badGroup('staleMemory must be an integer in 0..2^20');
    this.id = id;
    this.rootHistory = rootHistory;
    this.staleMemory = staleMemory;
    this.zeros = zeroHashes(hash);
    this.levels = Array.from({ length: TREE_DEPTH + 1 }, () => []);
    this.recent = [this.zeros[TREE_DEPTH]!];
  }

  static async create(id: string, opts: GroupOptions = {}): Promise<Group> {
    return new Group(id, await getPoseidon(), opts);
  }

  /** Leaf slots used (members plus removed ones). */
  get size(): number {
    return this.levels[0]!.length;
  }

  /** Current members (removed ones excluded). */
  get memberCount(): number {
    return this.indexByCommitment.size;
  }

  get root(): bigint {
    return this.levels[TREE_DEPTH]![0] ?? this.zeros[TREE_DEPTH]!;
  }

  indexOf(commitment: bigint): number | undefined {
    return this.indexByCommitment.get(commitment);
  }

  has(commitment: bigint): boolean {
    return this.indexByCommitment.has(commitment);
  }

  /** Appends one commitment; returns its leaf index. */
  add(commitment: bigint): number {
    return this.addMany([commitment])[0]!;
  }

  /** Appends commitments in order (one new root for the batch); returns their leaf indices. */
  addMany(commitments: readonly bigint[]): number[] {
    const seen = new Set<bigint>();
    for (const c of commitments) {
      if (typeof c !== 'bigint' || c === 0n || !isFieldElement(c)) throw badGroup('a commitment must be a non-zero field element');
      if (this.indexByCommitment.has(c) || seen.has(c)) throw badGroup('commitment already in the group');
      seen.add(c);
    }
    if (this.size + commitments.length > MAX_MEMBERS) throw badGroup(`the tree is full (${MAX_MEMBERS} leaves)`);
    if (commitments.length === 0) return [];
    const first = this.size;
    const leaves = this.levels[0]!;
    commitments.forEach((c, i) => {
      leaves.push(c);
      this.indexByCommitment.set(c, first + i);
    });
    this.rehash(first, this.size - 1);
    return commitments.map((_, i) => first + i);
  }

  /** Removes a member (its leaf becomes 0). */
  remove(commitment: bigint): number {
    const index = this.indexByCommitment.get(commitment);
    if (index === undefined) throw badGroup('no such member');
    this.indexByCommitment.delete(commitment);
    this.levels[0]![index] = 0n;
    this.rehash(index, index);
    return index;
  }

  /** Rehashes the ancestors of leaves from..to and records the new root. */
  private rehash(from: number, to: number): void {
    const { hash, zeros } = this;
    for (let level = 0; level < TREE_DEPTH; level++) {
      const nodes = this.levels[level]!;
      const parents = this.levels[level + 1]!;
      const lo = from >> 1;
      const hi = to >> 1;
      for (let p = lo; p <= hi; p++) {
        const left = nodes[2 * p] ?? zeros[level]!;
        const right = nodes[2 * p + 1] ?? zeros[level]!;
        parents[p] = hash([left, right]);
      }
      from = lo;
      to = hi;
    }
    this.pushRoot(this.root);
  }

  private pushRoot(root: bigint): void {
    if (this.recent[0] === root) return;
    this.recent.unshift(root);
    while (this.recent.length > this.rootHistory) {
      const old = this.recent.pop()!;
      if (this.staleMemory === 0) continue;
      this.stale.push(old);
      this.staleSet.add(old);
      if (this.stale.length > this.staleMemory) this.staleSet.delete(this.stale.shift()!);
    }
    if (this.staleSet.has(root)) {
      // a root can come back (remove then re-add is impossible, but be exact anyway)
      this.staleSet.delete(root);
      this.stale = this.stale.filter((r) => r !== root);
    }
  }

  /** Accepted roots, newest first (the current root first). */
  recentRoots(): bigint[] {
    return [...this.recent];
  }

  /** current: the latest root; recent: within the accepted history; stale: older, remembered; unknown: never seen. */
  rootStatus(root: bigint): RootStatus {
    if (root === this.recent[0]) return 'current';
    if (this.recent.includes(root)) return 'recent';
    if (this.staleSet.has(root)) return 'stale';
    return 'unknown';
  }

  /** The inclusion proof of the member with this commitment (ZK_NOT_MEMBER if there is none). */
  merkleProof(commitment: bigint): MerkleProof {
    const index = this.indexByCommitment.get(commitment);
    if (index === undefined) throw new CageError({ code: 'ZK_NOT_MEMBER', message: `the commitment is not a member of group ${this.id}` });
    const siblings: bigint[] = [];
    const pathIndices: number[] = [];
    let i = index;
    for (let level = 0; level < TREE_DEPTH; level++) {
      siblings.push(this.levels[level]![i ^ 1] ?? this.zeros[level]!);
      pathIndices.push(i & 1);
      i >>= 1;
    }
    return { leaf: commitment, index, root: this.root, siblings, pathIndices };
  }

  toJSON(): GroupExport {
    return {
      format: GROUP_FORMAT,
      id: this.id,
      depth: TREE_DEPTH,
      members: this.levels[0]!.map((c) => c.toString()),
      root: this.root.toString(),
      roots: this.recent.map((r) => r.toString()),
    };
  }

  /**
   * Rebuilds a group from an export (untrusted input): ZK_BAD_GROUP unless it is well formed and
   * its root matches its members. The older roots in `roots` cannot be checked against anything:
   * they are taken as given, so a verifier restores root history only from its own exports.
   */
  static async fromJSON(json: unknown, opts: GroupOptions = {}): Promise<Group> {
    if (typeof json !== 'object' || json === null || Array.isArray(json)) throw badGroup('a group export must be an object');
    const o = json as Record<string, unknown>;
    for (const k of Object.keys(o)) if (!['format', 'id', 'depth', 'members', 'root', 'roots'].includes(k)) throw badGroup(`unknown key ${k.slice(0, 32)}`);
    if (o.format !== GROUP_FORMAT) throw badGroup(`format must be ${GROUP_FORMAT}`);
    if (o.depth !== TREE_DEPTH) throw badGroup(`depth must be ${TREE_DEPTH}`);
    if (typeof o.id !== 'string') throw badGroup('id must be a string');
    if (!Array.isArray(o.members) || o.members.length > MAX_MEMBERS) throw badGroup('members must be an array of at most 2^20 commitments');
    const members = o.members.map((m) => parseField(m, 'member'));
    const roots = o.roots === undefined ? [] : Array.isArray(o.roots) && o.roots.length <= 4096 ? o.roots.map((r) => parseField(r, 'root')) : undefined;
    if (!roots) throw badGroup('roots must be an array of at most 4096 roots');
    const group = new Group(o.id, await getPoseidon(), { rootHistory: opts.rootHistory ?? Math.max(DEFAULT_ROOT_HISTORY, roots.length), staleMemory: opts.staleMemory });
    group.load(members);
    const root = parseField(o.root, 'root');
    if (root !== group.root) throw badGroup('the stated root does not match the members');
    if (roots.length > 0) {
      if (roots[0] !== root) throw badGroup('roots[0] must be the current root');
      group.recent = roots.slice(0, group.rootHistory);
    }
    return group;
  }

  private load(members: bigint[]): void {
    const leaves = this.levels[0]!;
    for (const [i, c] of members.entries()) {
      if (c !== 0n) {
        if (this.indexByCommitment.has(c)) throw badGroup('duplicate member');
        this.indexByCommitment.set(c, i);
      }
      leaves.push(c);
    }
    if (members.length > 0) this.rehash(0, members.length - 1);
    this.recent = [this.root];
  }
}

function parseField(v: unknown, name: string): bigint {
  if (typeof v !== 'string' || !/^(0|[1-9][0-9]{0,77})$/.test(v)) throw badGroup(`${name}: expected a decimal string`);
  const x = BigInt(v);
  if (!isFieldElement(x)) throw badGroup(`${name}: not a field element`);
  return x;
}
