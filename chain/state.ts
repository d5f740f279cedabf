/**
 * The chain state: a key-value map (string keys, byte values) held in memory and persisted by the
 * store, with transactional overlays — one per block, one per transaction inside it — so a failing
 * transaction's writes vanish and a block that is only being validated never touches the committed
 * state.
 *
 * State root (deterministic, incremental; cost O(changes · log changes) per block):
 *
 *   changesRoot_h = RFC 6962 Merkle root (audit/merkle.ts) over the block's writes sorted by key,
 *                   leaf = u32 keyLen ‖ key ‖ u8 (1 = set, 0 = delete) ‖ u32 valueLen ‖ value
 *   stateRoot_h   = SHA-256("cage-chain-state/v1\0" ‖ stateRoot_{h−1} ‖ changesRoot_h)
 *   stateRoot_0   = SHA-256("cage-chain-state/v1\0" ‖ 32 zero bytes ‖ changesRoot of genesis writes)
 *
 * Two validators that reach the same root applied the same writes to the same genesis, so they hold
 * the same state; it is a commitment to the state's history, not a sparse Merkle tree, so it
 * cannot prove one key's value by itself (documented limit; docs/chain.md).
 *
 * Nonces: the next nonce of each account is a state key `nonce/<did>` (8-byte big-endian).
 */
import { createHash } from 'node:crypto';
import { MemoryTree } from '../audit/merkle.js';
import type { StateView } from './module.js';

const STATE_ROOT_DOMAIN = Buffer.from('cage-chain-state/v1\0', 'latin1');
export const ZERO_HASH: Buffer = Buffer.alloc(32);
export const NONCE_PREFIX = 'nonce/';

/** Something keys can be read from (the committed state or an overlay). */
export interface StateReader {
  get(key: string): Uint8Array | undefined;
  entries(prefix: string): Iterable<[string, Uint8Array]>;
}

/** The committed state: every key in memory, with a lazily rebuilt sorted key index for prefix scans. */
export class MemoryState implements StateReader {
  private readonly data = new Map<string, Uint8Array>();
  private sorted: string[] | null = [];

  get size(): number {
    return this.data.size;
  }

  get(key: string): Uint8Array | undefined {
    return this.data.get(key);
  }

  *entries(prefix: string): Iterable<[string, Uint8Array]> {
    const keys = this.sortedKeys();
    let lo = 0;
    let hi = keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (keys[mid]! < prefix) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < keys.length && keys[i]!.startsWith(prefix); i++) yield [keys[i]!, this.data.get(keys[i]!)!];
  }

  /** Applies a block's writes (null = delete). */
  apply(writes: ReadonlyMap<string, Uint8Array | null>): void {
    for (const [k, v] of writes) {
      if (v === null) {
        if (this.data.delete(k)) this.sorted = null;
      } else {
        if (!this.data.has(k)) this.sorted = null;
        this.data.set(k, v);
      }
    }
  }

  private sortedKeys(): string[] {
    if (this.sorted === null) this.sorted = [...this.data.keys()].sort(compareKeys);
    return this.sorted;
  }
}

function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * A transactional layer over a reader: writes stay here until `commitTo` merges them into the
 * parent overlay; dropping the overlay is the rollback.
 */
export class Overlay implements StateView {
  readonly writes = new Map<string, Uint8Array | null>();

  constructor(private readonly parent: StateReader) {}

  get(key: string): Uint8Array | undefined {
    const w = this.writes.get(key);
    if (w !== undefined) return w === null ? undefined : w;
    return this.parent.get(key);
  }

  set(key: string, value: Uint8Array): void {
    if (typeof key !== 'string' || !(value instanceof Uint8Array)) throw new TypeError('state keys are strings and values bytes');
    this.writes.set(key, value);
  }

  delete(key: string): void {
    this.writes.set(key, null);
  }

  entries(prefix: string): Iterable<[string, Uint8Array]> {
    const merged = new Map<string, Uint8Array>();
    for (const [k, v] of this.parent.entries(prefix)) merged.set(k, v);
    let touched = false;
    for (const [k, v] of this.writes) {
      if (!k.startsWith(prefix)) continue;
      touched = true;
      if (v === null) merged.delete(k);
      else merged.set(k, v);
    }
    if (!touched) return merged;
    return [...merged].sort((a, b) => compareKeys(a[0], b[0]));
  }

  /** Merges this layer's writes into a parent overlay. */
  commitTo(parent: Overlay): void {
    for (const [k, v] of this.writes) parent.writes.set(k, v);
  }
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

/** The Merkle root of a set of writes, sorted by key (see the file comment). */
export function changesRoot(writes: ReadonlyMap<string, Uint8Array | null>): Buffer {
  const tree = new MemoryTree();
  for (const k of [...writes.keys()].sort(compareKeys)) {
    const v = writes.get(k)!;
    const key = Buffer.from(k, 'utf8');
    tree.append(Buffer.concat([u32(key.length), key, Buffer.from([v === null ? 0 : 1]), u32(v?.length ?? 0), v ?? Buffer.alloc(0)]));
  }
  return tree.root();
}

/** stateRoot_h from stateRoot_{h−1} and block h's writes. */
export function nextStateRoot(previous: Uint8Array, writes: ReadonlyMap<string, Uint8Array | null>): Buffer {
  return createHash('sha256').update(STATE_ROOT_DOMAIN).update(previous).update(changesRoot(writes)).digest();
}

/** The next nonce an account must use. */
export function readNonce(state: StateReader, did: string): number {
  const v = state.get(NONCE_PREFIX + did);
  if (v === undefined || v.length !== 8) return 0;
  return Number(Buffer.from(v.buffer, v.byteOffset, 8).readBigUInt64BE(0));
}

export function writeNonce(state: StateView, did: string, next: number): void {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(next));
  state.set(NONCE_PREFIX + did, b);
}

/** JSON helpers for modules that keep JSON values. */
export function readJson<T>(state: StateReader, key: string): T | undefined {
  const v = state.get(key);
  return v === undefined ? undefined : (JSON.parse(Buffer.from(v).toString('utf8')) as T);
}

export function writeJson(state: StateView, key: string, value: unknown): void {
  state.set(key, Buffer.from(JSON.stringify(value), 'utf8'));
}
