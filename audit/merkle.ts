/**
 * RFC 6962 Merkle tree proofs, as specified in RFC 9162 §2.1.2 (tree heads), §2.1.3 (inclusion
 * proofs) and §2.1.4 (consistency proofs): generation against a `HashReader` and verification.
 * https://www.rfc-editor.org/rfc/rfc9162#section-2.1
 *
 * Trust: proofs, roots, leaf hashes, sizes and indices passed to the `verify*` functions are
 * attacker-controlled; they are checked for shape (integers, 32-byte hashes) before use. The
 * `HashReader` given to the generators is trusted to return the hashes of the tree it describes.
 *
 * Sizes and indices are JS numbers up to 2^53 − 1; the code never uses the 32-bit bit operators
 * on them (division by two with Math.floor instead of `>>`, `% 2` instead of `& 1`).
 */
import { CageError } from '../core/errors.js';
import { EMPTY_ROOT, HASH_SIZE, leafHash, nodeHash } from './hash.js';

/**
 * The hash of the COMPLETE subtree at `level` (2^level leaves) and position `index`, i.e. the
 * subtree over leaves [index·2^level, (index+1)·2^level). Level 0 returns leaf hashes.
 * A tile store answers these from tiles; `MemoryTree` keeps them in memory.
 */
export type HashReader = (level: number, index: number) => Uint8Array;

/** Largest tree size (and one past the largest index) this module accepts. */
export const MAX_TREE_SIZE = Number.MAX_SAFE_INTEGER;
/** A proof for a tree of at most 2^53 − 1 leaves has at most 53 hashes (consistency: +1 slack). */
export const MAX_PROOF_HASHES = 64;

function badProof(message: string): CageError {
  return new CageError({ code: 'AUDIT_BAD_PROOF', message });
}

function outOfRange(message: string): CageError {
  return new CageError({ code: 'AUDIT_INDEX_OUT_OF_RANGE', message });
}

function isCount(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
}

/** The largest power of two strictly below `n` (n ≥ 2), with its exponent: RFC 9162's split point k. */
function splitPoint(n: number): { k: number; level: number } {
  let k = 1;
  let level = 0;
  while (k * 2 < n) {
    k *= 2;
    level++;
  }
  return { k, level };
}

/** The largest power of two at most `n` (n ≥ 1), with its exponent. */
function floorPow2(n: number): { p: number; level: number } {
  let p = 1;
  let level = 0;
  while (p * 2 <= n) {
    p *= 2;
    level++;
  }
  return { p, level };
}

function readHash(read: HashReader, level: number, index: number): Uint8Array {
  const h = read(level, index);
  if (!(h instanceof Uint8Array) || h.length !== HASH_SIZE) {
    throw new CageError({ code: 'AUDIT_STORE_CORRUPT', message: `hash reader returned a bad hash at level ${level} index ${index}` });
  }
  return h;
}

/**
 * MTH(D[start : start+size]) for a range that starts on a multiple of the smallest power of two
 * at least `size` (every range RFC 9162's recursion visits does). The range splits into the
 * complete subtrees of size's binary digits, largest first; they fold from the right.
 * Reads popcount(size) ≤ 53 hashes.
 */
function rangeHash(start: number, size: number, read: HashReader): Uint8Array {
  const parts: Uint8Array[] = [];
  let pos = start;
  let rem = size;
  while (rem > 0) {
    const { p, level } = floorPow2(rem);
    parts.push(readHash(read, level, pos / p));
    pos += p;
    rem -= p;
  }
  let h = parts[parts.length - 1]!;
  for (let i = parts.length - 2; i >= 0; i--) h = nodeHash(parts[i]!, h);
  return h;
}

/** RFC 9162 §2.1.1: the Merkle Tree Hash of the first `size` leaves (EMPTY_ROOT for size 0). */
export function treeRoot(size: number, read: HashReader): Buffer {
  if (!isCount(size)) throw outOfRange(`tree size ${String(size)} is not an integer in [0, 2^53)`);
  if (size === 0) return Buffer.from(EMPTY_ROOT);
  return Buffer.from(rangeHash(0, size, read));
}

/**
 * RFC 9162 §2.1.3.1: the inclusion proof (audit path) of leaf `index` in the tree of `size`
 * leaves, leaf's sibling first. Reads at most 2·log2(size) hashes.
 */
export function inclusionProof(index: number, size: number, read: HashReader): Buffer[] {
  if (!isCount(size)) throw outOfRange(`tree size ${String(size)} is not an integer in [0, 2^53)`);
  if (!isCount(index) || index >= size) throw outOfRange(`leaf index ${String(index)} is not below tree size ${size}`);
  // PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n]) when m < k, else PATH(m−k, D[k:n]) : MTH(D[0:k]).
  // Walk from the root down; the sibling found first is the last proof element.
  const path: Buffer[] = [];
  let start = 0;
  let n = size;
  let m = index;
  while (n > 1) {
    const { k, level } = splitPoint(n);
    if (m < k) {
      path.push(Buffer.from(rangeHash(start + k, n - k, read)));
      n = k;
    } else {
      path.push(Buffer.from(readHash(read, level, start / k)));
      start += k;
      m -= k;
      n -= k;
    }
  }
  return path.reverse();
}

/**
 * RFC 9162 §2.1.4.1: the consistency proof between the trees of `oldSize` and `newSize` leaves.
 * Empty when oldSize is 0 or equal to newSize. Reads at most 2·log2(newSize) + 1 hashes.
 */
export function consistencyProof(oldSize: number, newSize: number, read: HashReader): Buffer[] {
  if (!isCount(newSize)) throw outOfRange(`tree size ${String(newSize)} is not an integer in [0, 2^53)`);
  if (!isCount(oldSize) || oldSize > newSize) throw outOfRange(`old size ${String(oldSize)} is not at most new size ${newSize}`);
  if (oldSize === 0 || oldSize === newSize) return [];
  // SUBPROOF(m, D[n], b): m ≤ k → SUBPROOF(m, D[0:k], b) : MTH(D[k:n]);
  //                       m > k → SUBPROOF(m−k, D[k:n], false) : MTH(D[0:k]);
  //                       m = n → {} if b, else {MTH(D[m])}.
  const proof: Buffer[] = [];
  let start = 0;
  let m = oldSize;
  let n = newSize;
  let b = true;
  while (m !== n) {
    const { k, level } = splitPoint(n);
    if (m <= k) {
      proof.push(Buffer.from(rangeHash(start + k, n - k, read)));
      n = k;
    } else {
      proof.push(Buffer.from(readHash(read, level, start / k)));
      start += k;
      m -= k;
      n -= k;
      b = false;
    }
  }
  if (!b) proof.push(Buffer.from(rangeHash(start, n, read)));
  return proof.reverse();
}

function checkHash(h: unknown, what: string): asserts h is Uint8Array {
  if (!(h instanceof Uint8Array)) throw badProof(`${what} is not bytes`);
  if (h.length !== HASH_SIZE) throw badProof(`${what} is ${h.length} bytes, want ${HASH_SIZE}`);
}

function checkProofShape(proof: unknown): asserts proof is readonly Uint8Array[] {
  if (!Array.isArray(proof)) throw badProof('proof is not a list of hashes');
  if (proof.length > MAX_PROOF_HASHES) throw badProof(`proof has ${proof.length} hashes, more than ${MAX_PROOF_HASHES}`);
  proof.forEach((h, i) => checkHash(h, `proof[${i}]`));
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(a, b) === 0;
}

/**
 * RFC 9162 §2.1.3.2: the root an inclusion proof leads to. Throws AUDIT_BAD_PROOF when the proof
 * has the wrong length for (index, size). Callers compare the result with a trusted root; most
 * want `verifyInclusion`.
 */
export function rootFromInclusionProof(leaf: Uint8Array, index: number, size: number, proof: readonly Uint8Array[]): Buffer {
  if (!isCount(size) || size === 0) throw badProof(`tree size ${String(size)} is not an integer in [1, 2^53)`);
  if (!isCount(index)) throw badProof(`leaf index ${String(index)} is not an integer in [0, 2^53)`);
  if (index >= size) throw badProof(`leaf index ${index} is not below tree size ${size}`);
  checkHash(leaf, 'leaf hash');
  checkProofShape(proof);
  let fn = index;
  let sn = size - 1;
  let r: Uint8Array = leaf;
  for (const p of proof) {
    if (sn === 0) throw badProof(`proof has ${proof.length} hashes, too many for index ${index} in size ${size}`);
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  if (sn !== 0) throw badProof(`proof has ${proof.length} hashes, too few for index ${index} in size ${size}`);
  return Buffer.from(r);
}

/** RFC 9162 §2.1.3.2: throws AUDIT_BAD_PROOF unless `proof` proves `leaf` at `index` under `root`. */
export function verifyInclusion(leaf: Uint8Array, index: number, size: number, proof: readonly Uint8Array[], root: Uint8Array): void {
  checkHash(root, 'root hash');
  const got = rootFromInclusionProof(leaf, index, size, proof);
  if (!equalBytes(got, root)) throw badProof(`inclusion proof for index ${index} in size ${size} leads to a different root`);
}

/**
 * RFC 9162 §2.1.4.2, with the edge cases the RFC leaves to the caller: old size 0 is consistent
 * with anything (empty proof required, old root not compared); equal sizes need an empty proof
 * and equal roots. Throws AUDIT_BAD_PROOF naming what failed.
 */
export function verifyConsistency(oldSize: number, newSize: number, proof: readonly Uint8Array[], oldRoot: Uint8Array, newRoot: Uint8Array): void {
  if (!isCount(oldSize)) throw badProof(`old size ${String(oldSize)} is not an integer in [0, 2^53)`);
  if (!isCount(newSize)) throw badProof(`new size ${String(newSize)} is not an integer in [0, 2^53)`);
  if (oldSize > newSize) throw badProof(`old size ${oldSize} is greater than new size ${newSize}`);
  checkHash(oldRoot, 'old root hash');
  checkHash(newRoot, 'new root hash');
  checkProofShape(proof);
  if (oldSize === newSize) {
    if (proof.length !== 0) throw badProof(`proof between equal sizes ${oldSize} must be empty, has ${proof.length} hashes`);
    if (!equalBytes(oldRoot, newRoot)) throw badProof(`roots differ for the same size ${oldSize}`);
    return;
  }
  if (oldSize === 0) {
    if (proof.length !== 0) throw badProof(`proof from size 0 must be empty, has ${proof.length} hashes`);
    return;
  }
  // 1. An empty path fails.
  if (proof.length === 0) throw badProof(`proof from size ${oldSize} to ${newSize} is empty`);
  // 2. If first is an exact power of two, prepend first_hash.
  const path: readonly Uint8Array[] = floorPow2(oldSize).p === oldSize ? [oldRoot, ...proof] : proof;
  // 3. fn = first − 1, sn = second − 1.
  let fn = oldSize - 1;
  let sn = newSize - 1;
  // 4. While LSB(fn) is set, shift both right.
  while (fn % 2 === 1) {
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  // 5. fr = sr = path[0].
  let fr: Uint8Array = path[0]!;
  let sr: Uint8Array = path[0]!;
  // 6. For each subsequent c.
  for (let i = 1; i < path.length; i++) {
    const c = path[i]!;
    if (sn === 0) throw badProof(`proof from size ${oldSize} to ${newSize} has too many hashes`);
    if (fn % 2 === 1 || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  // 7. fr = first_hash, sr = second_hash, sn = 0.
  if (sn !== 0) throw badProof(`proof from size ${oldSize} to ${newSize} has too few hashes`);
  if (!equalBytes(fr, oldRoot)) throw badProof(`proof from size ${oldSize} to ${newSize} does not lead to the old root`);
  if (!equalBytes(sr, newRoot)) throw badProof(`proof from size ${oldSize} to ${newSize} does not lead to the new root`);
}

/**
 * An append-only tree in memory that keeps every complete subtree hash (a compact-range layout:
 * level l holds floor(size / 2^l) hashes). For tests and small logs; `read` is its HashReader.
 */
export class MemoryTree {
  private readonly levels: Buffer[][] = [[]];

  get size(): number {
    return this.levels[0]!.length;
  }

  /** Appends an entry (hashed as an RFC 6962 leaf); returns its index. */
  append(entry: Uint8Array): number {
    return this.appendLeafHash(leafHash(entry));
  }

  /** Appends an already computed leaf hash; returns its index. */
  appendLeafHash(hash: Uint8Array): number {
    if (!(hash instanceof Uint8Array) || hash.length !== HASH_SIZE) {
      throw new CageError({ code: 'AUDIT_BAD_RECORD', message: `leaf hash must be ${HASH_SIZE} bytes` });
    }
    const index = this.size;
    let h: Buffer = Buffer.from(hash);
    for (let level = 0; ; level++) {
      const row = (this.levels[level] ??= []);
      row.push(h);
      if (row.length % 2 === 1) break;
      h = nodeHash(row[row.length - 2]!, h);
    }
    return index;
  }

  /** HashReader over the complete subtrees of the current tree. */
  readonly read: HashReader = (level, index) => {
    const h = this.levels[level]?.[index];
    if (h === undefined) throw outOfRange(`no complete subtree at level ${level} index ${index} in a tree of size ${this.size}`);
    return h;
  };

  /** The root of the first `size` leaves (default: all). */
  root(size: number = this.size): Buffer {
    if (size > this.size) throw outOfRange(`tree size ${size} is beyond the tree's size ${this.size}`);
    return treeRoot(size, this.read);
  }

  inclusionProof(index: number, size: number = this.size): Buffer[] {
    if (size > this.size) throw outOfRange(`tree size ${size} is beyond the tree's size ${this.size}`);
    return inclusionProof(index, size, this.read);
  }

  consistencyProof(oldSize: number, newSize: number = this.size): Buffer[] {
    if (newSize > this.size) throw outOfRange(`tree size ${newSize} is beyond the tree's size ${this.size}`);
    return consistencyProof(oldSize, newSize, this.read);
  }
}
