import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import {
  MessageType,
  decodeMessage,
  encodeMessage,
  signMessage,
  verifySeals,
  type ProposalMessage,
} from '../../../chain/qbft/index.js';
import { Sim, decodeToyBlock, encodeToyBlock } from './sim.js';

const BASE = 1000;

function proposersOf(sim: Sim, node = 0): string[] {
  return sim.nodes[node]!.chain.blocks.slice(1).map((b) => decodeToyBlock(b.block).proposer);
}

/** Every node's chain is a prefix of the longest one, and every block's seals verify. */
function assertConsistent(sim: Sim): void {
  sim.assertNoFork();
  const longest = sim.nodes.reduce((a, b) => (a.chain.headHeight >= b.chain.headHeight ? a : b)).chain.blocks;
  for (const n of sim.nodes) {
    n.chain.blocks.forEach((b, h) => assert(b.hash.equals(longest[h]!.hash), `node ${n.index} differs at ${h}`));
    for (const [h, b] of n.chain.blocks.entries()) if (h > 0) verifySeals(b.hash, b.round, b.seals, sim.validatorIds(h), sim.verify);
  }
}

describe('chain/qbft over a simulated network', () => {
  it('4 validators finalize with rotating proposers and one round each', () => {
    const sim = new Sim({ seed: 11, n: 4, baseTimeoutMs: BASE });
    sim.start();
    assert(sim.runUntilHeight(12, 60_000));
    assertConsistent(sim);
    const ids = sim.nodes.map((n) => n.id);
    assert.deepEqual(proposersOf(sim).slice(0, 8), [0, 1, 2, 3, 0, 1, 2, 3].map((i) => ids[i]));
    for (const n of sim.nodes) assert(n.decisions.every((d) => d.round === 0));
  });

  it('a single validator finalizes alone', () => {
    const sim = new Sim({ seed: 3, n: 1 });
    sim.start();
    assert(sim.runUntilHeight(5, 10_000));
    assertConsistent(sim);
  });

  it('an offline proposer costs a round change with doubling timers, then the chain goes on', () => {
    const sim = new Sim({ seed: 5, n: 4, baseTimeoutMs: BASE });
    sim.crash(0); // proposer of height 1, round 0
    sim.start();
    assert(sim.runUntilHeight(6, 120_000, [1, 2, 3]));
    assertConsistent(sim);
    const first = sim.nodes[1]!.decisions[0]!;
    assert.deepEqual(first, { height: 1, round: 1 });
    assert.deepEqual(sim.nodes[1]!.timers.slice(0, 2), [[1, 0, BASE], [1, 1, 2 * BASE]]);
    // heights whose round-0 proposer is the crashed node need a round change; others do not
    assert(sim.nodes[1]!.decisions.some((d) => d.round === 0));
  });

  it('a block prepared in round 0 whose COMMITs are lost is re-proposed and decided in round 1', () => {
    const sim = new Sim({ seed: 7, n: 4, baseTimeoutMs: BASE });
    let proposed: Buffer | undefined;
    sim.onSend = (_from, _to, bytes) => {
      const m = decodeMessage(bytes);
      if (m.payload.height !== 1) return bytes;
      if (m.type === MessageType.PROPOSAL && m.payload.round === 0) proposed = Buffer.from(m.block);
      return m.type === MessageType.COMMIT && m.payload.round === 0 ? null : bytes;
    };
    sim.start();
    assert(sim.runUntilHeight(2, 120_000));
    assertConsistent(sim);
    const b1 = sim.nodes[1]!.chain.blocks[1]!;
    assert.equal(b1.round, 1);
    assert.deepEqual(b1.block, proposed, 'the round-0 block, not a new one');
  });

  it('f crashed validators: the rest keep finalizing; f+1: it stalls, and recovers on restart', () => {
    const sim = new Sim({ seed: 21, n: 4, baseTimeoutMs: BASE, syncIntervalMs: 5 * BASE });
    sim.start();
    assert(sim.runUntilHeight(3, 30_000));
    sim.crash(3);
    const h1 = sim.minHeight([0, 1, 2]);
    assert(sim.runUntilHeight(h1 + 5, sim.now + 120_000, [0, 1, 2]));
    sim.crash(2);
    const stalledAt = Math.max(...sim.nodes.map((n) => n.chain.headHeight));
    sim.run(sim.now + 300_000);
    assert.equal(Math.max(...sim.nodes.map((n) => n.chain.headHeight)), stalledAt, 'no block without a quorum');
    assert(sim.nodes[0]!.qbft!.currentRound >= 3, 'still changing rounds while stalled');
    sim.restart(2);
    sim.restart(3);
    assert(sim.runUntilHeight(stalledAt + 3, sim.now + 2_000_000));
    assertConsistent(sim);
  });

  it('a 2/2 partition stalls, a 3/1 partition keeps the majority going, and both heal', () => {
    const sim = new Sim({ seed: 31, n: 4, baseTimeoutMs: BASE, syncIntervalMs: 3 * BASE });
    sim.start();
    assert(sim.runUntilHeight(2, 30_000));
    const side = [0, 0, 1, 1];
    sim.reachable = (a, b) => side[a] === side[b];
    const at = Math.max(...sim.nodes.map((n) => n.chain.headHeight));
    sim.run(sim.now + 100_000);
    assert(Math.max(...sim.nodes.map((n) => n.chain.headHeight)) <= at + 1, 'at most the height in flight finishes');
    sim.reachable = () => true;
    assert(sim.runUntilHeight(at + 4, sim.now + 2_000_000));
    const side2 = [0, 0, 0, 1];
    sim.reachable = (a, b) => side2[a] === side2[b];
    const lonely = sim.nodes[3]!.chain.headHeight;
    assert(sim.runUntilHeight(lonely + 5, sim.now + 500_000, [0, 1, 2]));
    assert(sim.nodes[3]!.chain.headHeight <= lonely + 1);
    sim.reachable = () => true;
    assert(sim.runUntilHeight(lonely + 8, sim.now + 2_000_000));
    assertConsistent(sim);
  });

  it('validators join and leave at given heights', () => {
    // node 4 joins from height 6; node 0 leaves from height 12
    const at = (h: number) => (h < 6 ? [0, 1, 2, 3] : h < 12 ? [0, 1, 2, 3, 4] : [1, 2, 3, 4]);
    const sim = new Sim({ seed: 41, n: 5, baseTimeoutMs: BASE, validatorsAt: at, syncIntervalMs: 5 * BASE });
    sim.start();
    assert(sim.runUntilHeight(16, 300_000));
    assertConsistent(sim);
    const chain = sim.nodes[1]!.chain.blocks;
    for (let h = 1; h <= 16; h++) {
      const signers = new Set(chain[h]!.seals.map((s) => s.signer));
      const allowed = new Set(sim.validatorIds(h));
      for (const s of signers) assert(allowed.has(s), `height ${h} sealed by a non-member`);
    }
    assert(chain.slice(6, 12).some((b) => b.seals.some((s) => s.signer === sim.nodes[4]!.id)), 'the new validator seals');
    assert(chain.slice(12, 17).every((b) => b.seals.every((s) => s.signer !== sim.nodes[0]!.id)), 'the removed validator does not');
    assert(proposersOf(sim, 1).slice(11).every((p) => p !== sim.nodes[0]!.id));
  });

  it('restarted validators resume from persisted state without equivocating', () => {
    for (let seed = 0; seed < 20; seed++) {
      const sim = new Sim({ seed, n: 4, baseTimeoutMs: BASE, maxDelayMs: 300, syncIntervalMs: 4 * BASE });
      const signed = new Map<string, string>(); // signer/type/height/round -> digest
      sim.onSend = (from, _to, bytes) => {
        const m = decodeMessage(bytes);
        if (m.type === MessageType.ROUND_CHANGE) return bytes;
        const key = `${m.payload.signer}/${m.type}/${m.payload.height}/${m.payload.round}`;
        const digest = Buffer.from(m.payload.digest).toString('hex');
        const prev = signed.get(key);
        assert(prev === undefined || prev === digest, `node ${from} signed two digests for ${key}`);
        signed.set(key, digest);
        return bytes;
      };
      sim.start();
      for (let step = 0; step < 30; step++) {
        const i = sim.rng.int(0, 3);
        if (sim.nodes[i]!.alive) sim.crash(i);
        sim.run(sim.now + sim.rng.int(1, 400));
        sim.restart(i);
        sim.run(sim.now + sim.rng.int(1, 400));
      }
      assertConsistent(sim);
      const h = Math.max(...sim.nodes.map((n) => n.chain.headHeight));
      assert(sim.runUntilHeight(h + 2, sim.now + 5_000_000), `seed ${seed} did not recover`);
    }
  });

  it('one byzantine validator sending two proposals and conflicting prepares cannot fork the chain', () => {
    for (let seed = 0; seed < 10; seed++) {
      const sim = new Sim({ seed, n: 4, baseTimeoutMs: BASE, byzantine: [0], syncIntervalMs: 4 * BASE, maxDelayMs: 50 });
      let forged = 0;
      const forge = (m: ProposalMessage, salt: number): Uint8Array => {
        const b = decodeToyBlock(m.block);
        const block = encodeToyBlock({ ...b, nonce: b.nonce ^ salt });
        const digest = createHash('sha256').update(block).digest();
        forged++;
        return encodeMessage(signMessage(sim.nodes[0]!.key.signer, { type: MessageType.PROPOSAL, height: m.payload.height, round: 0, digest }, { block, roundChanges: [], prepares: [] }));
      };
      sim.equivocator = (node, to, bytes) => {
        const m = decodeMessage(bytes);
        if (m.type === MessageType.PROPOSAL && m.payload.round === 0) {
          // a second block for the odd nodes; node 2 gets both and must refuse the second
          if (to % 2 === 1) return forge(m, 0xabcdef);
          if (to === 2) sim.send(0, 2, forge(m, 0xabcdef));
          return undefined;
        }
        if (m.type === MessageType.PREPARE && to === 3) {
          forged++;
          return encodeMessage(signMessage(node.key.signer, { ...m.payload, digest: Buffer.alloc(32, seed) }));
        }
        return undefined;
      };
      sim.start();
      assert(sim.runUntilHeight(12, 3_000_000, [1, 2, 3]), `seed ${seed} stalled`);
      assertConsistent(sim);
      assert(forged > 0);
      assert(sim.nodes[2]!.rejected('CHAIN_EQUIVOCATION') > 0, 'node 2 saw both proposals');
    }
  });
});
