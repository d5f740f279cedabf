import { strict as assert } from 'node:assert';
import { hash } from 'node:crypto';
import fc from 'fast-check';
import { isCageError } from '../../core/errors.js';
import { EMPTY_ROOT, leafHash, nodeHash } from '../../audit/hash.js';
import { flipBit, rejectsProof } from './fixtures.js';
import {
  consistencyProof,
  inclusionProof,
  MemoryTree,
  treeRoot,
  verifyConsistency,
  verifyInclusion,
  type HashReader,
} from '../../audit/merkle.js';

const MAX = 70;
const entry = (i: number) => Buffer.from(`entry ${i}`);

// An independent reference: RFC 9162 §2.1.1–2.1.4 written as the spec's recursions over a leaf list.
function mth(d: Buffer[]): Buffer {
  if (d.length === 0) return EMPTY_ROOT;
  if (d.length === 1) return leafHash(d[0]!);
  let k = 1;
  while (k * 2 < d.length) k *= 2;
  return nodeHash(mth(d.slice(0, k)), mth(d.slice(k)));
}
function refPath(m: number, d: Buffer[]): Buffer[] {
  if (d.length <= 1) return [];
  let k = 1;
  while (k * 2 < d.length) k *= 2;
  return m < k ? [...refPath(m, d.slice(0, k)), mth(d.slice(k))] : [...refPath(m - k, d.slice(k)), mth(d.slice(0, k))];
}
function refSubproof(m: number, d: Buffer[], b: boolean): Buffer[] {
  if (m === d.length) return b ? [] : [mth(d)];
  let k = 1;
  while (k * 2 < d.length) k *= 2;
  return m <= k ? [...refSubproof(m, d.slice(0, k), b), mth(d.slice(k))] : [...refSubproof(m - k, d.slice(k), false), mth(d.slice(0, k))];
}



describe('audit/merkle', () => {
  const data = Array.from({ length: MAX }, (_, i) => entry(i));
  const tree = new MemoryTree();
  for (const d of data) tree.append(d);

  it('roots, inclusion and consistency proofs equal the RFC recursions for every size up to 70', () => {
    for (let n = 0; n <= MAX; n++) {
      assert.deepEqual(tree.root(n), mth(data.slice(0, n)), `root ${n}`);
      for (let i = 0; i < n; i++) assert.deepEqual(tree.inclusionProof(i, n), refPath(i, data.slice(0, n)), `path ${i}/${n}`);
      for (let m = 1; m < n; m++) assert.deepEqual(tree.consistencyProof(m, n), refSubproof(m, data.slice(0, n), true), `proof ${m}→${n}`);
    }
  });

  it('every index of every size up to 70 proves inclusion', () => {
    for (let n = 1; n <= MAX; n++) {
      const root = tree.root(n);
      for (let i = 0; i < n; i++) verifyInclusion(leafHash(data[i]!), i, n, tree.inclusionProof(i, n), root);
    }
  });

  it('every consistency pair m <= n <= 70 verifies', () => {
    for (let n = 0; n <= MAX; n++) {
      for (let m = 0; m <= n; m++) verifyConsistency(m, n, tree.consistencyProof(m, n), tree.root(m), tree.root(n));
    }
  });

  it('a proof for one index never verifies another leaf or index', () => {
    for (let n = 2; n <= 20; n++) {
      const root = tree.root(n);
      for (let i = 0; i < n; i++) {
        const proof = tree.inclusionProof(i, n);
        for (let j = 0; j < n; j++) if (j !== i) assert.ok(rejectsProof(() => verifyInclusion(leafHash(data[i]!), j, n, proof, root)), `${i} as ${j} in ${n}`);
        assert.ok(rejectsProof(() => verifyInclusion(leafHash(data[(i + 1) % n]!), i, n, proof, root)));
      }
    }
  });

  it('any flipped bit in an inclusion proof, root or leaf fails', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: MAX }), fc.nat(), fc.nat({ max: 255 }), fc.nat(), (n, i0, bit, which) => {
        const i = i0 % n;
        const proof = tree.inclusionProof(i, n);
        const root = tree.root(n);
        const leaf = leafHash(data[i]!);
        const target = which % (proof.length + 2);
        if (target < proof.length) {
          const p = proof.map((h, j) => (j === target ? flipBit(h, bit) : h));
          assert.ok(rejectsProof(() => verifyInclusion(leaf, i, n, p, root)));
        } else if (target === proof.length) {
          assert.ok(rejectsProof(() => verifyInclusion(leaf, i, n, proof, flipBit(root, bit))));
        } else {
          assert.ok(rejectsProof(() => verifyInclusion(flipBit(leaf, bit), i, n, proof, root)));
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('any flipped bit in a consistency proof or either root fails', () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: MAX }), fc.nat(), fc.nat({ max: 255 }), fc.nat(), (n, m0, bit, which) => {
        const m = 1 + (m0 % (n - 1));
        const proof = tree.consistencyProof(m, n);
        const r1 = tree.root(m);
        const r2 = tree.root(n);
        const target = which % (proof.length + 2);
        if (target < proof.length) {
          const p = proof.map((h, j) => (j === target ? flipBit(h, bit) : h));
          assert.ok(rejectsProof(() => verifyConsistency(m, n, p, r1, r2)));
        } else if (target === proof.length) {
          assert.ok(rejectsProof(() => verifyConsistency(m, n, proof, flipBit(r1, bit), r2)));
        } else {
          assert.ok(rejectsProof(() => verifyConsistency(m, n, proof, r1, flipBit(r2, bit))));
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('a consistency proof does not verify for other sizes', () => {
    for (let n = 3; n <= 24; n++) {
      for (let m = 1; m < n; m++) {
        const proof = tree.consistencyProof(m, n);
        for (let m2 = 1; m2 < n; m2++) if (m2 !== m) assert.ok(rejectsProof(() => verifyConsistency(m2, n, proof, tree.root(m2), tree.root(n))), `${m} as ${m2} → ${n}`);
      }
    }
  });

  it('refuses out-of-range generation requests with AUDIT_INDEX_OUT_OF_RANGE', () => {
    for (const f of [
      () => tree.inclusionProof(5, 5),
      () => tree.inclusionProof(-1, 5),
      () => tree.inclusionProof(0, MAX + 1),
      () => tree.consistencyProof(6, 5),
      () => inclusionProof(0.5, 5, tree.read),
      () => treeRoot(-1, tree.read),
      () => tree.read(7, 0),
    ]) {
      assert.throws(f, (e: unknown) => isCageError(e, 'AUDIT_INDEX_OUT_OF_RANGE'));
    }
  });

  describe('trees beyond 2^32 leaves (virtual tree)', () => {
    // Every leaf is leafHash("") except a few special ones, so the hash of a complete subtree
    // without special leaves depends only on its level, and the others are few: the tree is
    // consistent (real MTH values) yet cheap, at any size up to 2^53 − 1.
    function virtualTree(special: number[]): { read: HashReader; reads: () => number } {
      const plain: Buffer[] = [leafHash(Buffer.alloc(0))];
      for (let l = 1; l <= 53; l++) plain.push(nodeHash(plain[l - 1]!, plain[l - 1]!));
      const memo = new Map<string, Buffer>();
      const inner = (level: number, index: number): Buffer => {
        const span = 2 ** level;
        if (!special.some((s) => Math.floor(s / span) === index)) return plain[level]!;
        if (level === 0) return leafHash(Buffer.from(`special ${index}`));
        const key = `${level}/${index}`;
        let h = memo.get(key);
        if (h === undefined) {
          h = nodeHash(inner(level - 1, index * 2), inner(level - 1, index * 2 + 1));
          memo.set(key, h);
        }
        return h;
      };
      let count = 0;
      return {
        read: (level, index) => {
          count++;
          assert.ok(Number.isSafeInteger(index) && index >= 0 && level >= 0 && level <= 53, `bad read ${level}/${index}`);
          return inner(level, index);
        },
        reads: () => count,
      };
    }

    const TWO32 = 2 ** 32;
    const cases: [number, number][] = [
      [TWO32 - 1, TWO32 + 5],
      [TWO32, TWO32 + 5],
      [TWO32 + 1, TWO32 + 5],
      [TWO32 + 4, TWO32 + 5],
      [0, TWO32 + 1],
      [2 ** 40 + 12345, 2 ** 41 + 3],
      [2 ** 52 + 2 ** 33 + 7, 2 ** 53 - 1],
      [2 ** 53 - 2, 2 ** 53 - 1],
    ];
    const tree = virtualTree(cases.map(([i]) => i));
    const special = (i: number) => leafHash(Buffer.from(`special ${i}`));

    for (const [index, size] of cases) {
      it(`inclusion of ${index} in ${size}, with O(log n) reads`, () => {
        const root = treeRoot(size, tree.read);
        const before = tree.reads();
        const proof = inclusionProof(index, size, tree.read);
        const reads = tree.reads() - before;
        assert.ok(reads <= 2 * Math.ceil(Math.log2(size)), `${reads} reads`);
        verifyInclusion(special(index), index, size, proof, root);
        assert.ok(rejectsProof(() => verifyInclusion(special(index), index + 1, size, proof, root)));
        assert.ok(rejectsProof(() => verifyInclusion(special(index), index, size * 2, proof, root)));
        assert.ok(rejectsProof(() => verifyInclusion(special(index), index, Math.floor(size / 2), proof, root)));
        assert.ok(rejectsProof(() => verifyInclusion(leafHash(Buffer.alloc(0)), index, size, proof, root)));
      });
    }

    const pairs: [number, number][] = [
      [TWO32 - 1, TWO32 + 5],
      [TWO32, TWO32 + 1],
      [3, TWO32 + 5],
      [2 ** 33, 2 ** 53 - 1],
      [2 ** 40 + 12346, 2 ** 52 + 2 ** 33 + 8],
      [2 ** 53 - 2, 2 ** 53 - 1],
    ];
    for (const [m, n] of pairs) {
      it(`consistency ${m} → ${n}, with O(log n) reads`, () => {
        const r1 = treeRoot(m, tree.read);
        const r2 = treeRoot(n, tree.read);
        const before = tree.reads();
        const proof = consistencyProof(m, n, tree.read);
        assert.ok(tree.reads() - before <= 2 * Math.ceil(Math.log2(n)) + 1, `${tree.reads() - before} reads`);
        verifyConsistency(m, n, proof, r1, r2);
        assert.ok(rejectsProof(() => verifyConsistency(m + 1, n, proof, r1, r2)));
        assert.ok(rejectsProof(() => verifyConsistency(m, n, proof, r2, r1)));
      });
    }
  });

  it('MemoryTree accepts leaf hashes and its reader serves every complete subtree', () => {
    const t = new MemoryTree();
    for (let i = 0; i < 33; i++) t.appendLeafHash(hash('sha256', `x${i}`, 'buffer'));
    assert.equal(t.size, 33);
    assert.deepEqual(t.read(5, 0), treeRoot(32, t.read));
    assert.throws(() => t.read(5, 1), (e: unknown) => isCageError(e, 'AUDIT_INDEX_OUT_OF_RANGE'));
    assert.throws(() => t.appendLeafHash(Buffer.alloc(31)), (e: unknown) => isCageError(e, 'AUDIT_BAD_RECORD'));
  });
});
