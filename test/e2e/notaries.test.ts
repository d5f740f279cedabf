/**
 * DID notaries witnessing the cage's audit log end to end: an in-process cage (checkpoints every
 * 200 ms) and three `cage notary serve` processes, quorum 2. Traffic gets receipts and the
 * published checkpoint carries the quorum's cosignatures (checked with the exported tlog-policy,
 * in process and by `cage audit verify --policy`); one notary killed keeps the quorum; two killed
 * stop publication (reported in /api/v1/audit and /metrics) while requests are still answered;
 * restarting them recovers with a checkpoint consistent with the last one published; a notary
 * that hangs does not hold back publication. A second log under the same origin but another key
 * (and a third with an origin the notaries do not know) gets no cosignature from the same
 * notaries, and the first log is unaffected.
 * No wall-clock assertions: every condition is polled (`waitFor`), timeouts are safety nets.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseNote } from '../../audit/note.js';
import { parseProof } from '../../audit/proof.js';
import { parsePolicy, verifyCheckpointPolicy, type Policy } from '../../audit/policy.js';
import { verifyConsistencyBetween, verifyProof } from '../../audit/verify.js';
import type { Cage } from '../../gateway/cage.js';
import { runCli } from '../helpers/cli.js';
import { startAdminCage, startNamedUpstream, tempDir, waitFor, type NamedUpstream } from '../helpers/e2e.js';
import { adminGet, consistencyHashes, receiptOf } from '../helpers/audit.js';
import {
  adminCall,
  initNotaryKey,
  metricSample,
  NotaryProcess,
  policyText,
  registerNotaryAt,
  setQuorumAt,
  witnessedAuditInfo,
  type WitnessedAuditInfo,
} from '../helpers/notary.js';
import { errorCode, Fixtures, request } from '../helpers/servers.js';

const ORIGIN = 'example.test/e2e-notaries';
const AUDIT = { origin: ORIGIN, checkpoint_interval: '200ms' };

/** One request through the cage: asserts 200 and a receipt of `origin`; returns its record index. */
async function traffic(cage: Cage, origin = ORIGIN): Promise<number> {
  const r = await request(cage.port, { path: `/app/${Math.random().toString(36).slice(2)}` });
  assert.equal(r.status, 200, `the request path answers: ${r.body.toString().slice(0, 200)}`);
  const receipt = receiptOf(r);
  assert.equal(receipt.origin, origin);
  return receipt.index;
}

/** Polls until the published checkpoint covers record `index` and the quorum is met; returns the audit view. */
function waitPublished(cage: Cage, index: number, what: string): Promise<WitnessedAuditInfo & { checkpoint: { size: number; note: string } }> {
  return waitFor(
    async () => {
      const info = await witnessedAuditInfo(cage.adminPort);
      return info.checkpoint !== null && info.checkpoint.size > index && info.witnessing?.quorum_met === true ? (info as WitnessedAuditInfo & { checkpoint: { size: number; note: string } }) : undefined;
    },
    what,
    30_000,
  );
}

/** The policy witnesses (names) whose cosignatures on `note` verify; throws AUDIT_QUORUM_NOT_MET without a quorum. */
function cosignersOf(policy: Policy, note: string): string[] {
  return [...verifyCheckpointPolicy(policy, note).witnesses].sort();
}

async function proofText(cage: Cage, index: number): Promise<string> {
  return (await adminGet(cage.adminPort, `/api/v1/audit/proof/${index}`)).body.toString('utf8');
}

/** Removes every cosignature line from a tlog-proof file's checkpoint (keeps the log's own signature). */
function stripCosignatures(proof: string, logName: string): string {
  return proof
    .split('\n')
    .filter((line) => !line.startsWith('\u2014 ') || line.startsWith(`\u2014 ${logName} `))
    .join('\n');
}

async function metricsText(cage: Cage): Promise<string> {
  const r = await request(cage.adminPort, { path: '/metrics' });
  assert.equal(r.status, 200);
  return r.body.toString('utf8');
}

describe('e2e: DID notaries witness the audit log (three notary processes, quorum 2)', function () {
  this.timeout(240_000);
  const fx = new Fixtures();
  let up: NamedUpstream;
  let cage: Cage;
  let logKey: string;
  let root: string;
  let notaries: NotaryProcess[];
  let policy: Policy;
  let policyFile: string;
  /** The checkpoint published when the quorum was lost. */
  let frozen: { size: number; note: string };

  before(async () => {
    up = await startNamedUpstream('A', fx);
    cage = await startAdminCage([{ name: 'app', upstreams: [up.url] }], { audit: AUDIT }, fx);
    logKey = (await witnessedAuditInfo(cage.adminPort)).verifier_key;
    root = tempDir(fx);
    const keys = await Promise.all([1, 2, 3].map((i) => initNotaryKey(root, `n${i}`)));
    notaries = keys.map((k, i) => new NotaryProcess(k, join(root, `data-n${i + 1}`), [logKey], fx));
    await Promise.all(notaries.map((n) => n.start()));
  });

  after(() => fx.closeAll());

  it('registers three notaries, quorum 2: traffic gets receipts and quorum-cosigned checkpoints are published', async () => {
    for (const [i, n] of notaries.entries()) await registerNotaryAt(cage.adminPort, { did: n.did, url: n.url, name: `n${i + 1}` });
    await setQuorumAt(cage.adminPort, 2);
    const listed = JSON.parse((await adminGet(cage.adminPort, '/api/v1/notaries')).body.toString()) as { quorum: number; notaries: { did: string; verifier_key: string }[] };
    assert.equal(listed.quorum, 2);
    assert.deepEqual(
      listed.notaries.map((n) => [n.did, n.verifier_key]),
      notaries.map((n) => [n.did, n.key.vkey]),
      'the cage derived from each DID the verifier key the notary printed',
    );

    const text = await policyText(cage.adminPort);
    policy = parsePolicy(text);
    assert.equal(policy.logs[0]!.verifier.verifierKey, logKey);
    assert.deepEqual(policy.witnesses.map((w) => w.url), notaries.map((n) => n.url));
    policyFile = join(root, 'policy.txt');
    writeFileSync(policyFile, text);

    const index = await traffic(cage);
    const info = await waitPublished(cage, index, 'a quorum-cosigned checkpoint covering the first request');
    assert.ok(cosignersOf(policy, info.checkpoint.note).length >= 2);
    assert.equal(info.witnessing!.quorum, 2);
    assert.equal(info.witnessing!.notaries, 3);
    // The read side publishes the same cosigned note.
    assert.equal((await adminGet(cage.adminPort, '/log/checkpoint')).body.toString(), (await witnessedAuditInfo(cage.adminPort)).checkpoint!.note);

    // The record's proof verifies offline with the exported policy: in process and with the CLI.
    const proof = await proofText(cage, index);
    const verified = verifyProof({ proof, policy });
    assert.equal(verified.index, index);
    assert.ok(verified.witnesses!.length >= 2, `witnesses ${verified.witnesses?.join(', ')}`);
    assert.equal(verified.record?.route, 'app');
    const proofFile = join(root, 'proof-1.txt');
    writeFileSync(proofFile, proof);
    const cli = await runCli(['audit', 'verify', '--proof', proofFile, '--policy', policyFile]);
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(cli.stdout, /witnesses \(quorum met\): n\d, n\d/);
    // Without its cosignatures the same proof fails the policy (the CLI really checks them).
    const bare = join(root, 'proof-1-bare.txt');
    writeFileSync(bare, stripCosignatures(proof, ORIGIN));
    const refused = await runCli(['audit', 'verify', '--proof', bare, '--policy', policyFile]);
    assert.equal(refused.code, 1, refused.stdout + refused.stderr);
    assert.match(refused.stderr, /AUDIT_QUORUM_NOT_MET/);
  });

  it('one notary killed: the quorum holds and published checkpoints keep advancing', async () => {
    const n3 = notaries[2]!;
    await n3.stop('SIGKILL');
    let last = (await witnessedAuditInfo(cage.adminPort)).checkpoint!.size;
    for (let round = 0; round < 3; round++) {
      const index = await traffic(cage);
      const info = await waitPublished(cage, index, `checkpoint round ${round} with n3 dead`);
      assert.ok(info.checkpoint.size > last);
      last = info.checkpoint.size;
      const who = cosignersOf(policy, info.checkpoint.note);
      assert.deepEqual(who, ['n1', 'n2'], 'only the live notaries cosigned this size');
      assert.ok(verifyProof({ proof: await proofText(cage, index), policy }).witnesses!.length >= 2);
    }
    const info = await witnessedAuditInfo(cage.adminPort);
    const dead = info.witnessing!.per_notary.find((n) => n.did === n3.did)!;
    assert.ok(dead.failures > 0);
    assert.equal(dead.last_error, 'NOTARY_UNREACHABLE');
  });

  it('two notaries down: the published checkpoint stops, the lag is reported, requests still get 200 + receipts', async () => {
    const [n1, n2] = notaries as [NotaryProcess, NotaryProcess];
    await n2.stop('SIGTERM');
    // Wait for a witness round that ran without n2 (n1 cosigned a size n2 never saw) and failed.
    const first = await traffic(cage);
    const lost = await waitFor(
      async () => {
        const info = await witnessedAuditInfo(cage.adminPort);
        const w = info.witnessing!;
        const n1Size = w.per_notary.find((n) => n.did === n1.did)!.cosigned_size;
        return w.quorum_met === false && n1Size > first && w.lag_records > 0 ? info : undefined;
      },
      'the quorum reported lost',
      30_000,
    );
    frozen = lost.checkpoint!;
    assert.ok(frozen.size <= first, `the record sent after n2 stopped (${first}) is not in a published checkpoint (${frozen.size})`);

    // Traffic keeps flowing: every request answered with a receipt, indices increasing.
    let index = first;
    for (let i = 0; i < 5; i++) {
      const next = await traffic(cage);
      assert.ok(next > index);
      index = next;
    }
    // Two more witness rounds (n1 cosigns each new size; rounds run one after another): had the
    // cage published without the quorum, the checkpoint would have moved by now.
    const n1Now = () => witnessedAuditInfo(cage.adminPort).then((i) => i.witnessing!.per_notary.find((n) => n.did === n1.did)!.cosigned_size);
    await waitFor(async () => (await n1Now()) > index, 'n1 cosigning the latest records', 30_000);
    const later = await traffic(cage);
    await waitFor(async () => (await n1Now()) > later, 'n1 cosigning a later round', 30_000);

    const info = await witnessedAuditInfo(cage.adminPort);
    assert.deepEqual(info.checkpoint, frozen, 'the published checkpoint did not advance without the quorum');
    assert.equal((await adminGet(cage.adminPort, '/log/checkpoint')).body.toString(), frozen.note);
    assert.equal(info.witnessing!.quorum_met, false);
    assert.ok(info.signed_size > later);
    assert.equal(info.witnessing!.lag_records, info.signed_size - frozen.size);
    assert.ok(info.witnessing!.lag_records > lost.witnessing!.lag_records, 'the lag grows with the traffic');
    await waitFor(async () => (await witnessedAuditInfo(cage.adminPort)).witnessing!.lag_seconds > 0, 'a lag in seconds');

    const m = await metricsText(cage);
    assert.ok(metricSample(m, 'cage_notary_quorum_lag_records')! > 0, 'cage_notary_quorum_lag_records > 0');
    assert.equal(metricSample(m, 'cage_notary_quorum'), 2);
    assert.ok(metricSample(m, 'cage_notary_failures_total', { notary: n2.did })! > 0);
    assert.ok(metricSample(m, 'cage_notary_cosigned_size', { notary: n1.did })! > later);

    // A proof fetched now is against the latest cosigned checkpoint, which still meets the policy.
    const proof = await proofText(cage, frozen.size - 1);
    assert.equal(parseProof(proof).checkpoint, frozen.note);
    const v = verifyProof({ proof, policy });
    assert.equal(v.checkpoint.size, frozen.size);
    assert.ok(v.witnesses!.length >= 2);
    assert.ok(parseNote(frozen.note).signatures.length >= 3, 'the log signature and at least two cosignatures');
    // A record past it has no proof yet.
    const notYet = await adminCall(cage.adminPort, 'GET', `/api/v1/audit/proof/${later}`);
    assert.equal(errorCode(notYet), 'AUDIT_INDEX_OUT_OF_RANGE');
  });

  it('restarted: the quorum recovers and the new checkpoint is consistent with the one frozen meanwhile', async () => {
    const [, n2, n3] = notaries as [NotaryProcess, NotaryProcess, NotaryProcess];
    await Promise.all([n2.start(), n3.start()]);
    const index = await traffic(cage);
    const info = await waitPublished(cage, index, 'a cosigned checkpoint after the restart');
    assert.ok(info.checkpoint.size > frozen.size);
    assert.ok(cosignersOf(policy, info.checkpoint.note).length >= 2);
    const hashes = await consistencyHashes(cage.adminPort, frozen.size, info.checkpoint.size);
    const c = verifyConsistencyBetween(frozen.note, info.checkpoint.note, hashes, logKey);
    assert.deepEqual([c.old.size, c.new.size], [frozen.size, info.checkpoint.size]);
    // Once every signed checkpoint is cosigned again, the lag is back to 0.
    await waitFor(async () => {
      const w = (await witnessedAuditInfo(cage.adminPort)).witnessing!;
      return w.quorum_met === true && w.lag_records === 0;
    }, 'the lag back to 0', 30_000);
    await waitFor(async () => metricSample(await metricsText(cage), 'cage_notary_quorum_lag_records') === 0, 'the lag metric back to 0');
    // The restarted notaries cosign again from their stored state (with consistency proofs): with
    // n1 stopped, n2 and n3 alone make the quorum.
    const n1 = notaries[0]!;
    await n1.stop('SIGTERM');
    const again = await traffic(cage);
    const onlyRestarted = await waitPublished(cage, again, 'a checkpoint cosigned by the two restarted notaries');
    assert.deepEqual(cosignersOf(policy, onlyRestarted.checkpoint.note), ['n2', 'n3']);
    const proofFile = join(root, 'proof-after.txt');
    writeFileSync(proofFile, await proofText(cage, again));
    const cli = await runCli(['audit', 'verify', '--proof', proofFile, '--policy', policyFile]);
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(cli.stdout, /witnesses \(quorum met\): n2, n3/);
    await n1.start();
    const last = await traffic(cage);
    await waitFor(async () => {
      const w = (await witnessedAuditInfo(cage.adminPort)).witnessing!;
      return w.per_notary.every((n) => n.cosigned_size > last);
    }, 'all three notaries cosigning again', 30_000);
  });

  it('a notary that hangs (SIGSTOP) does not hold back publication while the other two make the quorum', async () => {
    const n3 = notaries[2]!;
    n3.proc!.child.kill('SIGSTOP');
    try {
      // Each add-checkpoint to n3 now waits for the client timeout (10 s, retried); the cage must
      // publish on the quorum without waiting for it. Three rounds in a row.
      let last = (await witnessedAuditInfo(cage.adminPort)).checkpoint!.size;
      for (let round = 0; round < 3; round++) {
        const index = await traffic(cage);
        const info = await waitPublished(cage, index, `checkpoint round ${round} with n3 hung`);
        assert.ok(info.checkpoint.size > last);
        last = info.checkpoint.size;
        assert.deepEqual(cosignersOf(policy, info.checkpoint.note), ['n1', 'n2']);
      }
      // With everything signed published, no lag is reported, in records or seconds, although
      // n3's round is still hanging.
      await waitFor(async () => {
        const w = (await witnessedAuditInfo(cage.adminPort)).witnessing!;
        return w.lag_records === 0 && w.lag_seconds === 0;
      }, 'no lag while the quorum publishes without n3');
      assert.equal(metricSample(await metricsText(cage), 'cage_notary_quorum_lag_seconds'), 0);
    } finally {
      n3.proc!.child.kill('SIGCONT');
    }
  });

  describe('a second log under the same origin with another key, and a log the notaries do not know', () => {
    it('gets no cosignature (NOTARY_BAD_LOG_SIGNATURE / NOTARY_UNKNOWN_LOG), reports the quorum unmet; the first log is unaffected', async () => {
      const twin = await startAdminCage([{ name: 'app', upstreams: [up.url] }], { audit: AUDIT }, fx);
      const stranger = await startAdminCage([{ name: 'app', upstreams: [up.url] }], { audit: { ...AUDIT, origin: 'example.test/other-log' } }, fx);
      const twinInfo0 = await witnessedAuditInfo(twin.adminPort);
      assert.equal(twinInfo0.origin, ORIGIN);
      assert.notEqual(twinInfo0.verifier_key, logKey, 'same origin, another log key');
      for (const [c, origin, code] of [
        [twin, ORIGIN, 'NOTARY_BAD_LOG_SIGNATURE'],
        [stranger, 'example.test/other-log', 'NOTARY_UNKNOWN_LOG'],
      ] as const) {
        for (const [i, n] of notaries.entries()) await registerNotaryAt(c.adminPort, { did: n.did, url: n.url, name: `n${i + 1}`, ...(i === 2 ? { quorum: 2 } : {}) });
        for (let i = 0; i < 3; i++) await traffic(c, origin);
        const info = await waitFor(
          async () => {
            const x = await witnessedAuditInfo(c.adminPort);
            const w = x.witnessing!;
            return w.quorum_met === false && w.lag_records > 0 && w.per_notary.every((n) => n.last_error === code) ? x : undefined;
          },
          `${origin}: every notary refusing with ${code}`,
          30_000,
        );
        assert.equal(info.checkpoint, null, 'nothing was published: no checkpoint of this log was ever cosigned');
        assert.ok(info.witnessing!.per_notary.every((n) => n.cosigned_size === -1));
        assert.ok(metricSample(await metricsText(c), 'cage_notary_quorum_lag_records')! > 0);
        const noProof = await adminCall(c.adminPort, 'GET', '/api/v1/audit/proof/0');
        assert.equal(errorCode(noProof), 'AUDIT_INDEX_OUT_OF_RANGE');
      }
      // The notaries logged the refusals (one JSON line each), and the first log goes on.
      for (const n of notaries) assert.match(n.stderr(), /NOTARY_BAD_LOG_SIGNATURE/);
      const index = await traffic(cage);
      const info = await waitPublished(cage, index, 'the first log still cosigned');
      assert.ok(cosignersOf(policy, info.checkpoint.note).length >= 2);
      assert.ok(verifyProof({ proof: await proofText(cage, index), policy }).witnesses!.length >= 2);
    });
  });
});
