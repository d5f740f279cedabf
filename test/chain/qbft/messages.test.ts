import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import { isCageError } from '../../../core/errors.js';
import { verifyEd25519 } from '../../../chain/keys.js';
import {
  MessageType,
  conflicts,
  decodeMessage,
  decodePersistedState,
  decodeSeals,
  decodeSignedPayload,
  encodeMessage,
  encodePersistedState,
  encodeSeals,
  encodeSignedPayload,
  quorumSize,
  maxFaulty,
  roundRobinProposer,
  signCommitSeal,
  signMessage,
  signPayload,
  verifySeals,
  verifySignedMessage,
  verifySignedPayload,
  type Payload,
  type QbftMessage,
} from '../../../chain/qbft/index.js';
import { makeKey } from './sim.js';
import { Harness, rejects } from './harness.js';

const keys = [0, 1, 2, 3, 4].map((i) => makeKey(200 + i, false));
const ids = keys.map((k) => k.signer.id);
const bytes32 = fc.uint8Array({ minLength: 32, maxLength: 32 });
const height = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
const round = fc.integer({ min: 0, max: 0xffffffff });

const payloadArb: fc.Arbitrary<Payload> = fc.oneof(
  fc.record({ type: fc.constant(MessageType.PROPOSAL), height, round, digest: bytes32 }),
  fc.record({ type: fc.constant(MessageType.PREPARE), height, round, digest: bytes32 }),
  fc.record({ type: fc.constant(MessageType.COMMIT), height, round, digest: bytes32, commitSeal: fc.uint8Array({ minLength: 64, maxLength: 64 }) }),
  fc.record({ type: fc.constant(MessageType.ROUND_CHANGE), height, round }),
  fc.record({ type: fc.constant(MessageType.ROUND_CHANGE), height, round, prepared: fc.record({ round, digest: bytes32 }) }),
) as fc.Arbitrary<Payload>;

function sampleMessage(h: Harness, i: number): QbftMessage {
  const block = h.block(1, i);
  switch (i % 5) {
    case 0:
      return h.proposal(0, 0, block);
    case 1:
      return h.prepare(1, 0, Buffer.alloc(32, i));
    case 2:
      return h.commit(2, 3, Buffer.alloc(32, i));
    case 3:
      return h.roundChange(3, 2, { round: 1, block, by: [0, 1, 2] });
    default:
      return h.proposal(1, 1, block, { roundChanges: [0, 1, 2].map((k) => h.roundChange(k, 1).payload) });
  }
}

describe('chain/qbft messages', () => {
  it('signed payloads round-trip and verify (property)', () => {
    fc.assert(
      fc.property(payloadArb, fc.integer({ min: 0, max: 4 }), (p, k) => {
        const sp = signPayload(p, keys[k]!.signer);
        const back = decodeSignedPayload(sp.bytes);
        assert.deepEqual(Buffer.from(encodeSignedPayload(back)), Buffer.from(sp.bytes));
        assert.equal(back.signer, ids[k]);
        assert.equal(back.height, p.height);
        assert.equal(back.round, p.round);
        assert(verifySignedPayload(back, verifyEd25519));
        assert(!verifySignedPayload({ ...back, signer: ids[(k + 1) % 5]! }, verifyEd25519));
      }),
      { numRuns: 200 },
    );
  });

  it('messages round-trip: decode(encode(m)) = m and encode(decode(b)) = b', () => {
    const h = new Harness(0);
    for (let i = 0; i < 10; i++) {
      const m = sampleMessage(h, i);
      const b = encodeMessage(m);
      const back = decodeMessage(b);
      assert.deepEqual(Buffer.from(encodeMessage(back)), Buffer.from(b));
      assert.equal(back.type, m.type);
      assert(verifySignedMessage(back, verifyEd25519));
    }
  });

  it('decodeMessage throws only CHAIN_BAD_MESSAGE on mutated and random bytes (property)', () => {
    const h = new Harness(0);
    const samples = Array.from({ length: 5 }, (_, i) => Buffer.from(encodeMessage(sampleMessage(h, i))));
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 4 }), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }), fc.nat(), (which, flips, cut) => {
        const b = Buffer.from(samples[which]!);
        for (const [at, v] of flips) b[at % b.length] = v;
        const input = cut % 3 === 0 ? b.subarray(0, cut % b.length) : b;
        try {
          decodeMessage(input);
        } catch (err) {
          assert(isCageError(err, 'CHAIN_BAD_MESSAGE'), String(err));
        }
      }),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (b) => {
        try {
          decodeMessage(b);
        } catch (err) {
          assert(isCageError(err, 'CHAIN_BAD_MESSAGE'));
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('the state machine answers any mutated message with outputs, never a throw (property)', () => {
    const h = new Harness(3);
    h.start();
    const samples = Array.from({ length: 5 }, (_, i) => Buffer.from(encodeMessage(sampleMessage(h, i))));
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 4 }), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 3 }), (which, flips) => {
        const b = Buffer.from(samples[which]!);
        for (const [at, v] of flips) b[at % b.length] = v;
        const out = h.deliver(b);
        for (const o of out) assert(['reject', 'broadcast', 'persist', 'schedule-timeout', 'decide'].includes(o.kind));
      }),
      { numRuns: 500 },
    );
  });

  it('refuses inconsistent messages on encode and decode', () => {
    const h = new Harness(0);
    const rc = h.roundChange(1, 1, { round: 0, block: h.block(), by: [0, 1, 2] }) as Extract<QbftMessage, { type: 4 }>;
    assert.throws(() => encodeMessage({ ...rc, prepares: [] }), (e) => isCageError(e, 'CHAIN_BAD_MESSAGE'));
    assert.throws(() => signMessage(keys[0]!.signer, { type: MessageType.PROPOSAL, height: 1, round: 0, digest: Buffer.alloc(32) }), (e) => isCageError(e, 'CHAIN_BAD_MESSAGE'));
    assert.throws(() => signPayload({ type: MessageType.PREPARE, height: 2 ** 53, round: 0, digest: Buffer.alloc(32) }, keys[0]!.signer), (e) => isCageError(e, 'CHAIN_BAD_MESSAGE'));
    assert.throws(() => signPayload({ type: MessageType.PREPARE, height: 1, round: 0, digest: Buffer.alloc(31) }, keys[0]!.signer), (e) => isCageError(e, 'CHAIN_BAD_MESSAGE'));
    // a prepared flag other than 0/1, a height above 2^53-1
    const p = Buffer.from(signPayload({ type: MessageType.ROUND_CHANGE, height: 1, round: 1 }, keys[0]!.signer).bytes);
    p[14] = 2;
    assert.throws(() => decodeSignedPayload(p), (e) => isCageError(e, 'CHAIN_BAD_MESSAGE'));
    const q = Buffer.from(signPayload({ type: MessageType.PREPARE, height: 1, round: 1, digest: Buffer.alloc(32) }, keys[0]!.signer).bytes);
    q[2] = 0xff;
    assert.throws(() => decodeSignedPayload(q), (e) => isCageError(e, 'CHAIN_BAD_MESSAGE'));
    // a justification entry of the wrong type
    const prop = h.proposal(1, 1, h.block(), { roundChanges: [h.prepare(0, 1, Buffer.alloc(32)).payload] });
    assert.throws(() => encodeMessage(prop), (e) => isCageError(e, 'CHAIN_BAD_MESSAGE'));
  });

  it('conflicts() recognizes equivocation evidence', () => {
    const s = keys[0]!.signer;
    const a = signPayload({ type: MessageType.PREPARE, height: 5, round: 1, digest: Buffer.alloc(32, 1) }, s);
    const b = signPayload({ type: MessageType.PREPARE, height: 5, round: 1, digest: Buffer.alloc(32, 2) }, s);
    const c = signPayload({ type: MessageType.PREPARE, height: 5, round: 2, digest: Buffer.alloc(32, 2) }, s);
    assert(conflicts(a, b));
    assert(!conflicts(a, a));
    assert(!conflicts(a, c));
    const r1 = signPayload({ type: MessageType.ROUND_CHANGE, height: 5, round: 3 }, s);
    const r2 = signPayload({ type: MessageType.ROUND_CHANGE, height: 5, round: 3, prepared: { round: 1, digest: Buffer.alloc(32) } }, s);
    assert(conflicts(r1, r2));
  });
});

describe('chain/qbft seals and validators', () => {
  const hash = Buffer.alloc(32, 9);
  const seal = (i: number, r = 2) => ({ signer: ids[i]!, signature: signCommitSeal(keys[i]!.signer, hash, r) });
  const set = ids.slice(0, 4);
  const code = (f: () => void) => {
    try {
      f();
      return 'ok';
    } catch (err) {
      return isCageError(err) ? err.code : String(err);
    }
  };

  it('verifySeals accepts a quorum of distinct member seals and refuses anything less', () => {
    assert.equal(code(() => verifySeals(hash, 2, [seal(0), seal(1), seal(2)], set, verifyEd25519)), 'ok');
    assert.equal(code(() => verifySeals(hash, 2, [seal(0), seal(1)], set, verifyEd25519)), 'CHAIN_BAD_SEAL');
    assert.equal(code(() => verifySeals(hash, 2, [seal(0), seal(1), seal(1)], set, verifyEd25519)), 'CHAIN_BAD_SEAL');
    assert.equal(code(() => verifySeals(hash, 2, [seal(0), seal(1), seal(4)], set, verifyEd25519)), 'CHAIN_BAD_SEAL');
    assert.equal(code(() => verifySeals(hash, 2, [seal(0), seal(1), seal(2, 3)], set, verifyEd25519)), 'CHAIN_BAD_SEAL');
    assert.equal(code(() => verifySeals(hash, 3, [seal(0), seal(1), seal(2)], set, verifyEd25519)), 'CHAIN_BAD_SEAL');
    assert.equal(code(() => verifySeals(Buffer.alloc(32), 2, [seal(0), seal(1), seal(2)], set, verifyEd25519)), 'CHAIN_BAD_SEAL');
  });

  it('seal lists round-trip and malformed ones are refused', () => {
    const seals = [seal(0), seal(1), seal(2)];
    const back = decodeSeals(encodeSeals(seals));
    assert.deepEqual(back.map((s) => [s.signer, Buffer.from(s.signature)]), seals.map((s) => [s.signer, Buffer.from(s.signature)]));
    const enc = Buffer.from(encodeSeals(seals));
    assert.equal(code(() => decodeSeals(enc.subarray(0, enc.length - 1))), 'CHAIN_BAD_SEAL');
    assert.equal(code(() => decodeSeals(Buffer.concat([enc, Buffer.from([0])]))), 'CHAIN_BAD_SEAL');
    assert.equal(code(() => decodeSeals(Buffer.from([0xff, 0xff]))), 'CHAIN_BAD_SEAL');
  });

  it('quorum, f and round-robin proposer follow the spec', () => {
    assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 10].map(quorumSize), [1, 2, 2, 3, 4, 4, 5, 7]);
    assert.deepEqual([1, 4, 7, 10].map(maxFaulty), [0, 1, 2, 3]);
    const v = ['a', 'b', 'c', 'd'];
    assert.equal(roundRobinProposer(v, undefined, 0), 'a');
    assert.equal(roundRobinProposer(v, 'a', 0), 'b');
    assert.equal(roundRobinProposer(v, 'd', 0), 'a');
    assert.equal(roundRobinProposer(v, 'b', 3), 'b');
    assert.equal(roundRobinProposer(v, 'gone', 1), 'b');
  });
});

describe('chain/qbft persisted state', () => {
  it('round-trips and refuses damaged state', () => {
    const h = new Harness(0);
    const block = h.block();
    const digest = Buffer.alloc(32, 3);
    const s = { height: 7, round: 3, signedDigest: Buffer.alloc(32, 1), prepared: { round: 2, digest, block, prepares: [0, 1, 2].map((i) => h.preparePayload(i, 2, digest, 7)) } };
    const enc = encodePersistedState(s);
    const back = decodePersistedState(enc);
    assert.equal(back.height, 7);
    assert.equal(back.round, 3);
    assert.deepEqual(Buffer.from(back.signedDigest!), s.signedDigest);
    assert.deepEqual(Buffer.from(back.prepared!.block), block);
    assert.equal(back.prepared!.prepares.length, 3);
    assert.deepEqual(Buffer.from(encodePersistedState(back)), Buffer.from(enc));
    for (let cut = 0; cut < enc.length; cut += 7) {
      assert.throws(() => decodePersistedState(enc.subarray(0, cut)), (e) => isCageError(e, 'CHAIN_BAD_CONSENSUS_STATE'));
    }
    const bad = Buffer.from(enc);
    bad[13] = 8;
    assert.throws(() => decodePersistedState(bad), (e) => isCageError(e, 'CHAIN_BAD_CONSENSUS_STATE'));
    assert.deepEqual(rejects(h.handle({ kind: 'start', height: 7, persisted: bad })), ['CHAIN_BAD_CONSENSUS_STATE']);
  });
});
