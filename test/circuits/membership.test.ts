/**
 * The membership circuit and the cage's verifier, with real artifacts and real proofs (two,
 * made once in before(): a per-request proof and a session proof).
 * - The circuit with known inputs: a member's witness computes; a non-member, a wrong root, a
 *   wrong nullifier or a path bit that is not 0/1 cannot produce a witness.
 * - ZkVerifier accepts both proofs and refuses, each with its own code: wrong root (unknown,
 *   stale), another request, another scope, another epoch, an expired timestamp, mutated proof
 *   bytes, a header that lies about its public values, a malformed header, the wrong mode.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as snarkjs from 'snarkjs';
import { artifactPaths } from '../../circuits/artifacts.js';
import { contentDigestOf, fieldToBytes, requestSignal, scopeToField, SNARK_SCALAR_FIELD } from '../../circuits/field.js';
import { Group } from '../../circuits/group.js';
import { decodeZkHeader, encodeProof } from '../../circuits/header.js';
import { nullifierFor } from '../../circuits/prover.js';
import { ZkVerifier, type ZkRequestContext, type ZkRequestFacts } from '../../circuits/verifier.js';
import { boundRequest, EPOCH, expectCodeAsync, field, makeFixture, NOW, SCOPE, withField, type Fixture } from './helpers.js';

const b64field = (x: bigint): string => Buffer.from(fieldToBytes(x)).toString('base64url');

describe('circuits/membership (real proofs)', function () {
  this.timeout(120_000);
  let fx: Fixture;
  let zk: ZkVerifier;
  let ctx: ZkRequestContext;
  let facts: ZkRequestFacts;

  before(async () => {
    fx = await makeFixture();
    zk = await ZkVerifier.create({ pool: { size: 1 } });
    ctx = { scope: SCOPE, epoch: EPOCH, groups: (id) => (id === 'staff' ? fx.group : undefined) };
    const r = boundRequest();
    facts = { method: r.method, target: r.target, contentDigest: r.contentDigest, now: NOW };
  });

  after(async () => {
    await zk?.close();
    await fx?.prover.close();
  });

  describe('the circuit', () => {
    const wasm = (): Uint8Array => readFileSync(artifactPaths().wasm);
    const witness = (input: Record<string, unknown>) => snarkjs.wtns.calculate(input, wasm(), { type: 'mem' });

    it("computes a member's witness", async () => {
      const input = await fx.prover.witnessInput({ identity: fx.members[0]!, group: fx.group, scope: SCOPE, epoch: EPOCH }, 42n);
      await witness(input);
    });

    it('has no witness for a non-member, a wrong root or nullifier, or a non-bit path', async () => {
      const member = await fx.prover.witnessInput({ identity: fx.members[0]!, group: fx.group, scope: SCOPE, epoch: EPOCH }, 42n);
      const cases: Record<string, Record<string, unknown>> = {
        // a secret whose commitment is not in the tree, with a member's path
        'non-member secret': { ...member, secret: '999999' },
        'claimed root that is not the tree root': { ...member, root: String(fx.group.root + 1n) },
        'nullifier for another scope': { ...member, nullifier: String(await nullifierFor(1001n, 'other', EPOCH)) },
        'nullifier of another member': { ...member, nullifier: String(await nullifierFor(1002n, SCOPE, EPOCH)) },
        'path bit 2': { ...member, pathIndices: ['2', ...(member.pathIndices as string[]).slice(1)] },
        'wrong sibling': { ...member, siblings: ['5', ...(member.siblings as string[]).slice(1)] },
      };
      // circom's witness calculator prints each failed assert on console.error: keep the output clean
      const printError = console.error;
      console.error = () => undefined;
      try {
        for (const [name, input] of Object.entries(cases)) {
          await assert.rejects(witness(input), (err: Error) => /Assert Failed/.test(err.message), name);
        }
      } finally {
        console.error = printError;
      }
    });
  });

  describe('ZkVerifier', () => {
    it('accepts a per-request proof and returns the anonymous facts', async () => {
      const v = await zk.verifyRequestProof(fx.requestHeader, facts, ctx);
      assert.equal(v.mode, 'req');
      assert.equal(v.group, 'staff');
      assert.equal(v.root, fx.group.root);
      assert.equal(v.rootStatus, 'current');
      assert.equal(v.scope, SCOPE);
      assert.equal(v.epoch, EPOCH);
      assert.equal(v.nullifier, await nullifierFor(fx.members[1]!.secret, SCOPE, EPOCH));
    });

    it('accepts a session proof and returns its key', async () => {
      const v = await zk.verifySessionProof(fx.sessionHeader, ctx);
      assert.equal(v.mode, 'ses');
      assert.deepEqual(Buffer.from(v.sessionKey), Buffer.from(fx.sessionKey));
      assert.equal(v.nullifier, await nullifierFor(fx.members[2]!.secret, SCOPE, EPOCH));
    });

    it('nullifiers: one per member per scope and epoch, unlinkable across them', async () => {
      const a = await nullifierFor(1001n, SCOPE, EPOCH);
      assert.equal(a, await nullifierFor(1001n, SCOPE, EPOCH));
      assert.notEqual(a, await nullifierFor(1001n, SCOPE, EPOCH + 1));
      assert.notEqual(a, await nullifierFor(1001n, 'other', EPOCH));
      assert.notEqual(a, await nullifierFor(1002n, SCOPE, EPOCH));
    });

    it('accepts a recent root, refuses a stale (ZK_STALE_ROOT) or never-seen root (ZK_UNKNOWN_ROOT)', async () => {
      const g = await Group.fromJSON(fx.group.toJSON(), { rootHistory: 2, staleMemory: 8 });
      const groups = () => g;
      g.add(77n);
      assert.equal((await zk.verifyRequestProof(fx.requestHeader, facts, { ...ctx, groups })).rootStatus, 'recent');
      g.add(78n);
      await expectCodeAsync(zk.verifyRequestProof(fx.requestHeader, facts, { ...ctx, groups }), 'ZK_STALE_ROOT');
      const other = await Group.create('staff');
      other.add(fx.members[1]!.commitment);
      await expectCodeAsync(zk.verifyRequestProof(fx.requestHeader, facts, { ...ctx, groups: () => other }), 'ZK_UNKNOWN_ROOT');
      await expectCodeAsync(zk.verifyRequestProof(fx.requestHeader, facts, { ...ctx, groups: () => undefined }), 'ZK_UNKNOWN_GROUP');
    });

    it('refuses the proof for another request (ZK_WRONG_SIGNAL), and a header that claims the new signal (ZK_BAD_PROOF)', async () => {
      const variants: Partial<ZkRequestFacts>[] = [{ target: '/v1/items?x=2' }, { method: 'PUT' }, { contentDigest: contentDigestOf('{"a":2}') }];
      for (const over of variants) {
        const other = { ...facts, ...over };
        await expectCodeAsync(zk.verifyRequestProof(fx.requestHeader, other, ctx), 'ZK_WRONG_SIGNAL');
        const lie = withField(fx.requestHeader, 'h', b64field(requestSignal({ ...boundRequest(), ...over })));
        await expectCodeAsync(zk.verifyRequestProof(lie, other, ctx), 'ZK_BAD_PROOF');
      }
      // the timestamp is bound too: moving it (within the window) breaks the signal
      const moved = withField(fx.requestHeader, 't', String(Math.floor(NOW / 1000) + 5));
      await expectCodeAsync(zk.verifyRequestProof(moved, facts, ctx), 'ZK_WRONG_SIGNAL');
    });

    it('refuses another scope or epoch (and headers that lie about them)', async () => {
      await expectCodeAsync(zk.verifyRequestProof(fx.requestHeader, facts, { ...ctx, scope: 'billing' }), 'ZK_WRONG_SCOPE');
      await expectCodeAsync(zk.verifyRequestProof(withField(fx.requestHeader, 's', 'billing'), facts, { ...ctx, scope: 'billing' }), 'ZK_BAD_PROOF');
      await expectCodeAsync(zk.verifyRequestProof(fx.requestHeader, facts, { ...ctx, epoch: EPOCH + 1 }), 'ZK_WRONG_EPOCH');
      await expectCodeAsync(zk.verifySessionProof(fx.sessionHeader, { ...ctx, epoch: [EPOCH + 1, EPOCH + 2] }), 'ZK_WRONG_EPOCH');
      await expectCodeAsync(zk.verifyRequestProof(withField(fx.requestHeader, 'e', String(EPOCH + 1)), facts, { ...ctx, epoch: EPOCH + 1 }), 'ZK_BAD_PROOF');
      assert.equal((await zk.verifyRequestProof(fx.requestHeader, facts, { ...ctx, epoch: [EPOCH - 1, EPOCH] })).epoch, EPOCH);
    });

    it('refuses a timestamp outside the window (ZK_EXPIRED)', async () => {
      await expectCodeAsync(zk.verifyRequestProof(fx.requestHeader, { ...facts, now: NOW + 61_000 }, ctx), 'ZK_EXPIRED');
      await expectCodeAsync(zk.verifyRequestProof(fx.requestHeader, { ...facts, now: NOW - 61_000 }, ctx), 'ZK_EXPIRED');
      await expectCodeAsync(zk.verifyRequestProof(fx.requestHeader, { ...facts, now: NOW + 20_000 }, { ...ctx, windowSeconds: 10 }), 'ZK_EXPIRED');
      await zk.verifyRequestProof(fx.requestHeader, { ...facts, now: NOW + 59_000 }, ctx);
    });

    it('refuses a claimed nullifier other than the proven one (ZK_BAD_PROOF)', async () => {
      const n = decodeZkHeader(fx.requestHeader).nullifier;
      await expectCodeAsync(zk.verifyRequestProof(withField(fx.requestHeader, 'n', b64field((n + 1n) % SNARK_SCALAR_FIELD)), facts, ctx), 'ZK_BAD_PROOF');
    });

    it('refuses mutated proof bytes', async () => {
      const p = decodeZkHeader(fx.requestHeader).proof;
      const bytes = encodeProof(p);
      // each coordinate: flip its lowest bit (still < q) → not on the curve or a wrong proof
      for (let i = 0; i < 8; i++) {
        const m = new Uint8Array(bytes);
        m[i * 32 + 31]! ^= 1;
        await expectCodeAsync(zk.verifyRequestProof(withField(fx.requestHeader, 'p', Buffer.from(m).toString('base64url')), facts, ctx), 'ZK_BAD_PROOF');
      }
      // a valid point, but the wrong one: swap A and C
      const swapped = encodeProof({ a: p.c, b: p.b, c: p.a });
      await expectCodeAsync(zk.verifyRequestProof(withField(fx.requestHeader, 'p', Buffer.from(swapped).toString('base64url')), facts, ctx), 'ZK_BAD_PROOF');
      // -A instead of A (still on the curve): the pairing fails
      const negA = encodeProof({ ...p, a: [p.a[0], (21888242871839275222246405745257275088696311157297823662689037894645226208583n - p.a[1]) % 21888242871839275222246405745257275088696311157297823662689037894645226208583n] });
      await expectCodeAsync(zk.verifyRequestProof(withField(fx.requestHeader, 'p', Buffer.from(negA).toString('base64url')), facts, ctx), 'ZK_BAD_PROOF');
    });

    it('refuses a session key other than the proven one (ZK_WRONG_SIGNAL) and the wrong mode (ZK_WRONG_MODE)', async () => {
      const other = Buffer.alloc(32, 8).toString('base64url');
      await expectCodeAsync(zk.verifySessionProof(withField(fx.sessionHeader, 'k', other), ctx), 'ZK_WRONG_SIGNAL');
      await expectCodeAsync(zk.verifySessionProof(fx.requestHeader, ctx), 'ZK_WRONG_MODE');
      await expectCodeAsync(zk.verifyRequestProof(fx.sessionHeader, facts, ctx), 'ZK_WRONG_MODE');
    });

    it('refuses malformed headers (ZK_BAD_HEADER)', async () => {
      for (const h of ['', 'v=1', fx.requestHeader + ';x=1', fx.requestHeader.slice(0, -3), withField(fx.requestHeader, 'r', field(fx.requestHeader, 'r') + 'A')]) {
        await expectCodeAsync(zk.verifyRequestProof(h, facts, ctx), 'ZK_BAD_HEADER');
      }
    });

    it('the scope field is the documented hash', () => {
      assert.ok(scopeToField(SCOPE) < 1n << 248n);
      assert.notEqual(scopeToField('a'), scopeToField('b'));
    });
  });
});
