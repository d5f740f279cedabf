/**
 * circuits/group.ts against a reference computation: circomlibjs's Poseidon called directly over
 * a naive tree, for the zero hashes, roots after adds and removes, and every Merkle proof
 * (a fast-check property over random add/remove sequences). Root history and the export format.
 */
import assert from 'node:assert/strict';
import { buildPoseidon } from 'circomlibjs';
import fc from 'fast-check';
import { SNARK_SCALAR_FIELD } from '../../circuits/field.js';
import { Group, TREE_DEPTH, type GroupExport, type MerkleProof } from '../../circuits/group.js';
import { expectCode, expectCodeAsync } from './helpers.js';

let H: (a: bigint, b: bigint) => bigint;

/** The root of a depth-20 tree with these leaves (0 for empty), computed level by level, no shortcuts but the all-zero subtrees. */
function referenceRoot(leaves: bigint[]): bigint {
  let level = leaves.slice();
  let zero = 0n;
  for (let d = 0; d < TREE_DEPTH; d++) {
    const next: bigint[] = [];
    for (let i = 0; i < level.length; i += 2) next.push(H(level[i]!, level[i + 1] ?? zero));
    level = next;
    zero = H(zero, zero);
  }
  return level[0] ?? zero;
}

function rootFromProof(p: MerkleProof): bigint {
  let node = p.leaf;
  for (let i = 0; i < TREE_DEPTH; i++) node = p.pathIndices[i] === 0 ? H(node, p.siblings[i]!) : H(p.siblings[i]!, node);
  return node;
}

describe('circuits/group', () => {
  before(async () => {
    const poseidon = await buildPoseidon();
    H = (a, b) => poseidon.F.toObject(poseidon([a, b]));
  });

  it('the empty tree root is the depth-20 zero hash', async () => {
    const g = await Group.create('g');
    assert.equal(g.root, referenceRoot([]));
    assert.equal(g.size, 0);
    assert.equal(g.rootStatus(g.root), 'current');
  });

  it('roots after adds and removes match the reference tree', async () => {
    const g = await Group.create('g');
    const leaves: bigint[] = [];
    for (let i = 1n; i <= 9n; i++) {
      g.add(i * 1000n + 7n);
      leaves.push(i * 1000n + 7n);
      assert.equal(g.root, referenceRoot(leaves));
    }
    assert.equal(g.remove(4007n), 3);
    leaves[3] = 0n;
    assert.equal(g.root, referenceRoot(leaves));
    assert.equal(g.has(4007n), false);
    assert.equal(g.memberCount, 8);
    // a removed member's slot is not reused
    assert.equal(g.add(4007n), 9);
  });

  it('addMany gives the same root as adding one by one', async () => {
    const a = await Group.create('a');
    const b = await Group.create('b');
    const cs = Array.from({ length: 37 }, (_, i) => BigInt(i + 1) * 7919n);
    for (const c of cs) a.add(c);
    b.addMany(cs);
    assert.equal(a.root, b.root);
    assert.equal(b.root, referenceRoot(cs));
  });

  it('property: every member proof recomputes the root with plain Poseidon', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ add: fc.bigInt({ min: 1n, max: SNARK_SCALAR_FIELD - 1n }), removeAt: fc.option(fc.nat(40), { nil: undefined }) }), { minLength: 1, maxLength: 40 }),
        async (ops) => {
          const g = await Group.create('p');
          const leaves: bigint[] = [];
          for (const op of ops) {
            if (!g.has(op.add) && op.add !== 0n) {
              g.add(op.add);
              leaves.push(op.add);
            }
            if (op.removeAt !== undefined && leaves[op.removeAt] !== undefined && leaves[op.removeAt] !== 0n) {
              g.remove(leaves[op.removeAt]!);
              leaves[op.removeAt] = 0n;
            }
          }
          assert.equal(g.root, referenceRoot(leaves));
          for (const [i, c] of leaves.entries()) {
            if (c === 0n) continue;
            const p = g.merkleProof(c);
            assert.equal(p.index, i);
            assert.equal(rootFromProof(p), g.root);
          }
        },
      ),
      { numRuns: 25 },
    );
  });

  it('keeps the last N roots, then remembers older ones as stale', async () => {
    const g = await Group.create('h', { rootHistory: 3, staleMemory: 2 });
    const roots = [g.root];
    for (let i = 1n; i <= 5n; i++) {
      g.add(i);
      roots.push(g.root);
    }
    // roots[5] current, [4],[3] recent, [2],[1] stale (memory 2), [0] forgotten
    assert.deepEqual(g.recentRoots(), [roots[5], roots[4], roots[3]]);
    assert.equal(g.rootStatus(roots[5]!), 'current');
    assert.equal(g.rootStatus(roots[3]!), 'recent');
    assert.equal(g.rootStatus(roots[2]!), 'stale');
    assert.equal(g.rootStatus(roots[1]!), 'stale');
    assert.equal(g.rootStatus(roots[0]!), 'unknown');
    assert.equal(g.rootStatus(12345n), 'unknown');
  });

  it('refuses bad members with codes', async () => {
    const g = await Group.create('g');
    g.add(5n);
    expectCode(() => g.add(5n), 'ZK_BAD_GROUP');
    expectCode(() => g.add(0n), 'ZK_BAD_GROUP');
    expectCode(() => g.add(SNARK_SCALAR_FIELD), 'ZK_BAD_GROUP');
    expectCode(() => g.addMany([6n, 6n]), 'ZK_BAD_GROUP');
    expectCode(() => g.remove(99n), 'ZK_BAD_GROUP');
    expectCode(() => g.merkleProof(99n), 'ZK_NOT_MEMBER');
    await expectCodeAsync(Group.create('bad id!'), 'ZK_BAD_GROUP');
  });

  it('export / import round-trips and checks the stated root', async () => {
    const g = await Group.create('staff');
    g.addMany([11n, 22n, 33n]);
    g.remove(22n);
    const json = JSON.parse(JSON.stringify(g.toJSON())) as GroupExport;
    assert.deepEqual(json.members, ['11', '0', '33']);
    const back = await Group.fromJSON(json);
    assert.equal(back.root, g.root);
    assert.equal(back.id, 'staff');
    assert.deepEqual(back.recentRoots(), g.recentRoots());
    assert.equal(back.merkleProof(33n).index, 2);

    await expectCodeAsync(Group.fromJSON({ ...json, root: String(g.root + 1n) }), 'ZK_BAD_GROUP');
    await expectCodeAsync(Group.fromJSON({ ...json, members: ['11', '11'] }), 'ZK_BAD_GROUP');
    await expectCodeAsync(Group.fromJSON({ ...json, members: ['0x11'] }), 'ZK_BAD_GROUP');
    await expectCodeAsync(Group.fromJSON({ ...json, members: [SNARK_SCALAR_FIELD.toString()] }), 'ZK_BAD_GROUP');
    await expectCodeAsync(Group.fromJSON({ ...json, depth: 16 }), 'ZK_BAD_GROUP');
    await expectCodeAsync(Group.fromJSON({ ...json, extra: 1 }), 'ZK_BAD_GROUP');
    await expectCodeAsync(Group.fromJSON({ ...json, roots: ['1'] }), 'ZK_BAD_GROUP');
    await expectCodeAsync(Group.fromJSON(null), 'ZK_BAD_GROUP');
    await expectCodeAsync(Group.fromJSON([]), 'ZK_BAD_GROUP');
  });
});
