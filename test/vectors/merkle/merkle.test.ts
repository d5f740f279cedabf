import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { EMPTY_ROOT, leafHash } from '../../../audit/hash.js';
import { MemoryTree, rootFromInclusionProof, verifyConsistency, verifyInclusion } from '../../../audit/merkle.js';
import { flipBit, rejectsProof } from '../../audit/fixtures.js';

interface Rfc6962 {
  leaves: string[];
  emptyRoot: string;
  roots: string[];
  inclusion: { leaf: number; size: number; proof: string[] }[];
  consistency: { size1: number; size2: number; proof: string[] }[];
}
interface InclusionProbe { source: { path: string }; leafIdx: number; treeSize: number; root: string; leafHash: string; proof: string[] | null; desc: string; wantErr: boolean }
interface ConsistencyProbe { source: { path: string }; size1: number; size2: number; root1: string; root2: string; proof: string[] | null; desc: string; wantErr: boolean }

const load = <T>(name: string): T => JSON.parse(readFileSync(new URL(name, import.meta.url), 'utf8')) as T;
const v = load<Rfc6962>('./rfc6962.json');
const probes = load<{ inclusion: InclusionProbe[]; consistency: ConsistencyProbe[] }>('./probes.json');
const hex = (s: string) => Buffer.from(s, 'hex');
const b64 = (s: string) => Buffer.from(s, 'base64');
const SOME_HASH = hex('abacaba000000000000000000000000000000000000000000060061e00123456');



/** The corruptions of transparency-dev/merkle's corruptInclusionProof. */
function corruptInclusion(index: number, size: number, proof: Buffer[], root: Buffer, leaf: Buffer) {
  const out: { index: number; size: number; proof: Buffer[]; root: Buffer; leaf: Buffer; desc: string }[] = [
    { index: index - 1, size, proof, root, leaf, desc: 'index - 1' },
    { index: index + 1, size, proof, root, leaf, desc: 'index + 1' },
    { index: index ^ 2, size, proof, root, leaf, desc: 'index ^ 2' },
    { index, size: size * 2, proof, root, leaf, desc: 'size * 2' },
    { index, size: Math.floor(size / 2), proof, root, leaf, desc: 'size / 2' },
    { index, size, proof, root, leaf: Buffer.from('WrongLeaf'), desc: 'wrong leaf' },
    { index, size, proof, root: EMPTY_ROOT, leaf, desc: 'empty root' },
    { index, size, proof, root: SOME_HASH, leaf, desc: 'random root' },
    { index, size, proof: [...proof, Buffer.alloc(0)], root, leaf, desc: 'trailing garbage' },
    { index, size, proof: [...proof, root], root, leaf, desc: 'trailing root' },
    { index, size, proof: [Buffer.alloc(0), ...proof], root, leaf, desc: 'preceding garbage' },
    { index, size, proof: [root, ...proof], root, leaf, desc: 'preceding root' },
  ];
  proof.forEach((_, i) => out.push({ index, size, proof: proof.map((h, j) => (j === i ? flipBit(h, 3) : h)), root, leaf, desc: `proof[${i}] bit 3` }));
  if (proof.length > 0) out.push({ index, size, proof: proof.slice(0, -1), root, leaf, desc: 'removed component' });
  if (proof.length > 1) out.push({ index, size, proof: [proof[0]!, SOME_HASH, ...proof.slice(1)], root, leaf, desc: 'inserted component' });
  return out;
}

/** The corruptions of transparency-dev/merkle's corruptConsistencyProof. */
function corruptConsistency(size1: number, size2: number, root1: Buffer, root2: Buffer, proof: Buffer[]) {
  const wrong = Buffer.from('WrongRoot');
  const out: { size1: number; size2: number; root1: Buffer; root2: Buffer; proof: Buffer[]; desc: string }[] = [
    { size1: size1 - 1, size2, root1, root2, proof, desc: 'size1 - 1' },
    { size1: size1 + 1, size2, root1, root2, proof, desc: 'size1 + 1' },
    { size1: size1 ^ 2, size2, root1, root2, proof, desc: 'size1 ^ 2' },
    { size1, size2: size2 * 2, root1, root2, proof, desc: 'size2 * 2' },
    { size1, size2: Math.floor(size2 / 2), root1, root2, proof, desc: 'size2 / 2' },
    { size1, size2, root1: wrong, root2, proof, desc: 'wrong root1' },
    { size1, size2, root1, root2: wrong, proof, desc: 'wrong root2' },
    { size1, size2, root1: root2, root2: root1, proof, desc: 'swapped roots' },
    { size1, size2, root1, root2, proof: [], desc: 'empty proof' },
    { size1, size2, root1, root2, proof: [...proof, Buffer.alloc(0)], desc: 'trailing garbage' },
    { size1, size2, root1, root2, proof: [...proof, root1], desc: 'trailing root1' },
    { size1, size2, root1, root2, proof: [...proof, root2], desc: 'trailing root2' },
    { size1, size2, root1, root2, proof: [Buffer.alloc(0), ...proof], desc: 'preceding garbage' },
    { size1, size2, root1, root2, proof: [root1, ...proof], desc: 'preceding root1' },
    { size1, size2, root1, root2, proof: [root2, ...proof], desc: 'preceding root2' },
    { size1, size2, root1, root2, proof: [proof[0]!, ...proof], desc: 'preceding proof[0]' },
  ];
  if (proof.length > 0) out.push({ size1, size2, root1, root2, proof: proof.slice(0, -1), desc: 'truncated proof' });
  proof.forEach((_, i) => out.push({ size1, size2, root1, root2, proof: proof.map((h, j) => (j === i ? flipBit(h, 4) : h)), desc: `proof[${i}] bit 4` }));
  return out;
}

describe('vectors: RFC 6962 Merkle trees (transparency-dev/merkle)', () => {
  const tree = new MemoryTree();
  for (const l of v.leaves) tree.append(hex(l));

  it('the empty root is SHA-256 of the empty string', () => {
    assert.equal(EMPTY_ROOT.toString('hex'), v.emptyRoot);
    assert.equal(tree.root(0).toString('hex'), v.emptyRoot);
  });

  it('computes the roots of the trees of 1…8 leaves', () => {
    v.roots.forEach((root, i) => assert.equal(tree.root(i + 1).toString('hex'), root, `size ${i + 1}`));
  });

  for (const p of v.inclusion) {
    const index = p.leaf - 1;
    const proof = p.proof.map(hex);
    const root = hex(v.roots[p.size - 1]!);
    const leaf = leafHash(hex(v.leaves[index]!));
    it(`inclusion of index ${index} in size ${p.size}: generated, verified, every corruption refused`, () => {
      assert.deepEqual(tree.inclusionProof(index, p.size).map((h) => h.toString('hex')), p.proof);
      assert.deepEqual(rootFromInclusionProof(leaf, index, p.size, proof), root);
      verifyInclusion(leaf, index, p.size, proof, root);
      for (const c of corruptInclusion(index, p.size, proof, root, leaf)) {
        assert.ok(rejectsProof(() => verifyInclusion(c.leaf, c.index, c.size, c.proof, c.root)), `accepted: ${c.desc}`);
      }
    });
  }

  for (const p of v.consistency) {
    const proof = p.proof.map(hex);
    const root1 = hex(v.roots[p.size1 - 1]!);
    const root2 = hex(v.roots[p.size2 - 1]!);
    it(`consistency ${p.size1} → ${p.size2}: generated, verified, every corruption refused`, () => {
      assert.deepEqual(tree.consistencyProof(p.size1, p.size2).map((h) => h.toString('hex')), p.proof);
      verifyConsistency(p.size1, p.size2, proof, root1, root2);
      if (proof.length === 0) return;
      for (const c of corruptConsistency(p.size1, p.size2, root1, root2, proof)) {
        assert.ok(rejectsProof(() => verifyConsistency(c.size1, c.size2, c.proof, c.root1, c.root2)), `accepted: ${c.desc}`);
      }
    });
  }

  it('edge cases of TestVerifyConsistency', () => {
    const r1 = Buffer.alloc(32, 1);
    const r2 = Buffer.alloc(32, 2);
    const cases: [number, number, Buffer, Buffer, Buffer[], boolean][] = [
      [0, 0, r1, r2, [], true],
      [1, 1, r1, r2, [], true],
      [0, 0, r1, r1, [], false],
      [0, 1, r1, r2, [], false],
      [1, 1, r2, r2, [], false],
      [1, 0, r1, r2, [], true],
      [2, 1, r1, r2, [], true],
      [1, 2, r1, r2, [], true],
      [0, 0, EMPTY_ROOT, r2, [], true],
      [1, 1, EMPTY_ROOT, r2, [], true],
      [0, 0, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT], true],
      [0, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT], true],
      [1, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT], true],
    ];
    for (const [s1, s2, a, b, proof, wantErr] of cases) {
      const failed = rejectsProof(() => verifyConsistency(s1, s2, proof, a, b));
      assert.equal(failed, wantErr, `${s1} → ${s2}`);
    }
  });

  describe('testdata probes', () => {
    for (const p of probes.inclusion) {
      it(`inclusion ${p.source.path}`, () => {
        const failed = rejectsProof(() => verifyInclusion(b64(p.leafHash), p.leafIdx, p.treeSize, (p.proof ?? []).map(b64), b64(p.root)));
        assert.equal(failed, p.wantErr, p.desc);
      });
    }
    for (const p of probes.consistency) {
      it(`consistency ${p.source.path}`, () => {
        const failed = rejectsProof(() => verifyConsistency(p.size1, p.size2, (p.proof ?? []).map(b64), b64(p.root1), b64(p.root2)));
        assert.equal(failed, p.wantErr, p.desc);
      });
    }
  });
});
