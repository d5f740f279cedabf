/**
 * circuits/verify-pool.ts: proofs verified on worker threads give the inline answers, in any
 * interleaving; a full queue refuses at once (ZK_BUSY); a worker that dies or hangs fails its jobs
 * with a code and is replaced; close() fails what is pending and leaves no thread or curve behind
 * (this file runs without mocha --exit: a leaked handle would hang it).
 */
import assert from 'node:assert/strict';
import { scopeToField, requestSignal } from '../../circuits/field.js';
import { readVerificationKey } from '../../circuits/groth16.js';
import { artifactPaths } from '../../circuits/artifacts.js';
import { decodeZkHeader, type ProofPoints } from '../../circuits/header.js';
import { VerifyPool } from '../../circuits/verify-pool.js';
import { isCageError } from '../../core/errors.js';
import { boundRequest, EPOCH, expectCode, expectCodeAsync, makeFixture, SCOPE, type Fixture } from './helpers.js';

describe('circuits/verify-pool', function () {
  this.timeout(120_000);
  let fx: Fixture;
  const vk = () => readVerificationKey(artifactPaths().verificationKey);
  let good: { signals: bigint[]; proof: ProofPoints };
  let bad: { signals: bigint[]; proof: ProofPoints };
  const pools: VerifyPool[] = [];
  const start = async (opts: Omit<Parameters<typeof VerifyPool.start>[0], 'verificationKey'>) => {
    const p = await VerifyPool.start({ verificationKey: vk(), ...opts });
    pools.push(p);
    return p;
  };

  before(async () => {
    fx = await makeFixture();
    const h = decodeZkHeader(fx.requestHeader);
    const signals = [h.root, h.nullifier, requestSignal(boundRequest()), scopeToField(SCOPE), BigInt(EPOCH)];
    good = { signals, proof: h.proof };
    bad = { signals: [h.root, h.nullifier, requestSignal(boundRequest({ target: '/other' })), scopeToField(SCOPE), BigInt(EPOCH)], proof: h.proof };
  });

  after(async () => {
    await Promise.all(pools.map((p) => p.close()));
    await fx?.prover.close();
  });

  it('two workers answer like the inline verifier, for concurrent mixed jobs', async () => {
    const inline = await start({ size: 0 });
    const pool = await start({ size: 2 });
    assert.equal(pool.stats().threads, 2);
    const jobs = Array.from({ length: 24 }, (_, i) => (i % 3 === 0 ? bad : good));
    const [viaPool, viaInline] = await Promise.all([
      Promise.all(jobs.map((j) => pool.verify(j.signals, j.proof))),
      Promise.all(jobs.map((j) => inline.verify(j.signals, j.proof))),
    ]);
    assert.deepEqual(viaPool, jobs.map((j) => j === good));
    assert.deepEqual(viaInline, viaPool);
    assert.equal(pool.stats().pending, 0);
    assert.equal(inline.stats().pending, 0);
  });

  it('refuses beyond maxQueue with ZK_BUSY, and finishes what it accepted', async () => {
    const pool = await start({ size: 1, maxQueue: 3, testHooks: true });
    pool.testStall(0, 300);
    const accepted = [0, 1, 2].map(() => pool.verify(good.signals, good.proof));
    await expectCodeAsync(pool.verify(good.signals, good.proof), 'ZK_BUSY');
    await expectCodeAsync(pool.verify(good.signals, good.proof), 'ZK_BUSY');
    assert.deepEqual(await Promise.all(accepted), [true, true, true]);
    assert.equal(await pool.verify(good.signals, good.proof), true);
  });

  it('a crashed worker fails its jobs with GW_INTERNAL and is replaced', async () => {
    const errors: string[] = [];
    const pool = await start({ size: 1, testHooks: true, onError: (e) => errors.push(e.code) });
    pool.testCrash(0);
    await expectCodeAsync(pool.verify(good.signals, good.proof), 'GW_INTERNAL');
    assert.deepEqual(errors, ['GW_INTERNAL']);
    // the replacement comes up and verifies
    let ok: boolean | undefined;
    for (let i = 0; i < 100 && ok === undefined; i++) {
      try {
        ok = await pool.verify(good.signals, good.proof);
      } catch (err) {
        assert.ok(isCageError(err, 'GW_INTERNAL'));
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    assert.equal(ok, true);
    assert.equal(pool.stats().threads, 1);
  });

  it('a hung worker: its job fails after jobTimeoutMs and the worker is replaced', async () => {
    const pool = await start({ size: 1, jobTimeoutMs: 500, testHooks: true });
    pool.testStall(0, 5000);
    await expectCodeAsync(pool.verify(good.signals, good.proof), 'GW_INTERNAL');
    for (let i = 0; i < 500 && pool.stats().ready === 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(await pool.verify(good.signals, good.proof), true);
  });

  it('close() fails pending jobs, refuses new ones, and frees the threads', async () => {
    const pool = await start({ size: 2, testHooks: true });
    pool.testStall(0, 200);
    pool.testStall(1, 200);
    const pending = Array.from({ length: 8 }, () => pool.verify(good.signals, good.proof));
    const settled = Promise.allSettled(pending);
    await pool.close();
    for (const r of await settled) {
      assert.equal(r.status, 'rejected');
      assert.ok(isCageError(r.reason, 'GW_INTERNAL'));
    }
    await expectCodeAsync(pool.verify(good.signals, good.proof), 'GW_INTERNAL');
    assert.equal(pool.stats().threads, 0);
    await pool.close(); // idempotent
  });

  it('checks its options', async () => {
    await expectCodeAsync(VerifyPool.start({ verificationKey: vk(), size: 65 }), 'CONFIG_INVALID');
    await expectCodeAsync(VerifyPool.start({ verificationKey: vk(), maxQueue: 0 }), 'CONFIG_INVALID');
    await expectCodeAsync(VerifyPool.start({ verificationKey: vk(), sise: 2 } as never), 'CONFIG_INVALID');
    await expectCodeAsync(VerifyPool.start({ verificationKey: { ...vk(), nPublic: 4 } }), 'ZK_ARTIFACTS_MISSING');
    expectCode(() => readVerificationKey('/nonexistent/verification_key.json'), 'ZK_ARTIFACTS_MISSING');
  });
});
