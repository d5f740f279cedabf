/**
 * Court: each automatic case produced by real misbehaviour — a log key signing two trees (real
 * signed checkpoints from audit/), a notary cosigning both sides through the real witness state
 * machine (notary/witness.ts), a validator double-signing with the real QBFT codec — slashed once;
 * judged cases (split origin, usage) decided by bonded votes in endBlock.
 */
import assert from 'node:assert/strict';
import { formatProof } from '../../../audit/proof.js';
import { encodeRecord, originSignatureMessage } from '../../../audit/record.js';
import { MemoryTree } from '../../../audit/merkle.js';
import { signCheckpoint } from '../../../audit/checkpoint.js';
import { supplyOf, usageTree, type UsageLine } from '../../../chain/modules/bank.js';
import { MessageType, signPayload } from '../../../chain/qbft/messages.js';
import { KnownLogs, MemoryWitness } from '../../../notary/witness.js';
import { SAMPLE } from '../../audit/fixtures.js';
import { TestLog, testNotary } from '../../notary/helpers.js';
import { balance, genesis, harness, key, USERS, VALIDATORS } from './fixtures.js';
import { ModuleHarness } from '../../helpers/chain-state.js';
import { anchorModule } from '../../../chain/modules/anchor.js';
import { bankModule } from '../../../chain/modules/bank.js';
import { courtModule } from '../../../chain/modules/court.js';
import { govModule } from '../../../chain/modules/gov.js';

const [operator, reporter, app, payer] = USERS as [typeof USERS[0], typeof USERS[0], typeof USERS[0], typeof USERS[0]];

/** A log bonded by `operator` (200 GEN) and a fork of it: same key, other entries. */
function bondedLog(h: ModuleHarness): { log: TestLog; fork: TestLog } {
  const log = new TestLog('example.com/log', 5, 'entry ');
  const fork = new TestLog('example.com/log', 5, 'forged ');
  h.tx(operator.did, 'bank', 'bond', { role: 'log', amount: '200', logKey: log.verifier.verifierKey });
  return { log, fork };
}

const gen = (h: ModuleHarness, did: string): string => balance(h, did).balances.GEN!;

describe('chain/modules/court', () => {
  describe('log fork', () => {
    it('slashes the log for two signed checkpoints of one size with different roots, once', () => {
      const h = harness();
      const { log, fork } = bondedLog(h);
      const supply = supplyOf(h.view, 'GEN');
      const evidence = { type: 'log-fork', a: log.checkpoint(5), b: fork.checkpoint(5) };
      const events = h.tx(reporter.did, 'court', 'submit', { evidence });
      assert.equal(events[0]!.type, 'court.slashed');
      assert.equal(balance(h, operator.did).bonds.log, '180', '10 % of 200 slashed');
      assert.equal(gen(h, reporter.did), '1010', 'half of it to the reporter');
      assert.equal(supplyOf(h.view, 'GEN'), supply - 10n, 'the rest burnt');
      assert.equal(h.code(reporter.did, 'court', 'submit', { evidence }), 'COURT_DUPLICATE_EVIDENCE');
      assert.equal(h.code(payer.did, 'court', 'submit', { evidence: { ...evidence, a: evidence.b, b: evidence.a } }), 'COURT_DUPLICATE_EVIDENCE');
      assert.equal(balance(h, operator.did).bonds.log, '180');
    });

    it('refuses same-head pairs, unknown logs, foreign signatures and garbage', () => {
      const h = harness();
      const { log, fork } = bondedLog(h);
      const submit = (a: unknown, b: unknown) => h.code(reporter.did, 'court', 'submit', { evidence: { type: 'log-fork', a, b } });
      assert.equal(submit(log.checkpoint(5), log.checkpoint(5)), 'COURT_NOT_CONFLICTING');
      const stranger = new TestLog('other.example/log', 6);
      assert.equal(submit(stranger.checkpoint(2), stranger.checkpoint(2)), 'COURT_UNKNOWN_KEY');
      const impostor = new TestLog('example.com/log', 9, 'forged ');
      assert.equal(submit(log.checkpoint(5), impostor.checkpoint(5)), 'COURT_BAD_EVIDENCE', 'signed by another key under the same name');
      assert.equal(submit('not a note', fork.checkpoint(5)), 'COURT_BAD_EVIDENCE');
      assert.equal(submit(log.checkpoint(5), 42), 'COURT_BAD_ARGS');
      assert.equal(h.code(reporter.did, 'court', 'submit', { evidence: { type: 'log-fork', a: 'x', b: 'y', extra: 1 } }), 'COURT_BAD_ARGS');
      assert.equal(h.code(reporter.did, 'court', 'submit', { evidence: { type: 'gossip' } }), 'COURT_BAD_ARGS');
      assert.equal(balance(h, operator.did).bonds.log, '200');
    });

    it('finds the log key in the anchor module when the log is anchored but not bonded in the bank', () => {
      const h = new ModuleHarness([anchorModule, bankModule, courtModule, govModule], VALIDATORS.map((v) => v.did), genesis());
      const log = new TestLog('anchored.example/log', 8);
      const fork = new TestLog('anchored.example/log', 8, 'forged ');
      h.tx(operator.did, 'anchor', 'register', { origin: log.origin, policy: `log ${log.verifier.verifierKey}\nquorum none\n` });
      h.tx(operator.did, 'bank', 'bond', { role: 'notary', amount: '100' }); // stake, but not as this log
      const [e] = h.tx(reporter.did, 'court', 'submit', { evidence: { type: 'log-fork', a: log.checkpoint(3), b: fork.checkpoint(3) } });
      assert.equal(e!.data.offender, operator.did);
      assert.equal(e!.data.slashed, '0', 'no GEN bonded as a log: nothing to slash');
      assert.equal(balance(h, operator.did).bonds.notary, '100', 'other roles are untouched');
    });

    it('turns different sizes into a challenge an honest log answers with a consistency proof', () => {
      const h = harness();
      const { log } = bondedLog(h);
      const [e] = h.tx(reporter.did, 'court', 'submit', { evidence: { type: 'log-fork', a: log.checkpoint(7), b: log.checkpoint(3) } });
      assert.equal(e!.type, 'court.challenge');
      const caseId = e!.data.caseId as number;
      assert.equal(gen(h, reporter.did), '990', 'the challenger deposits');
      const bad = log.proof(2, 7).map((x) => x.toString('base64'));
      assert.equal(h.code(operator.did, 'court', 'answer', { caseId, proof: bad }), 'COURT_BAD_EVIDENCE');
      h.tx(operator.did, 'court', 'answer', { caseId, proof: log.proof(3, 7).map((x) => x.toString('base64')) });
      assert.equal((h.query('court', 'case', { id: caseId }) as { outcome: string }).outcome, 'answered');
      assert.equal(gen(h, operator.did), String(800 + 10), 'the deposit goes to the log');
      assert.equal(balance(h, operator.did).bonds.log, '200');
      h.advanceTo(h.height + 10);
      assert.equal(balance(h, operator.did).bonds.log, '200');
    });

    it('slashes a log that cannot answer: two sizes no consistency proof joins', () => {
      const h = harness();
      const { log, fork } = bondedLog(h);
      const [e] = h.tx(reporter.did, 'court', 'submit', { evidence: { type: 'log-fork', a: log.checkpoint(3), b: fork.checkpoint(7) } });
      const caseId = e!.data.caseId as number;
      const tryProof = fork.proof(3, 7).map((x) => x.toString('base64'));
      assert.equal(h.code(operator.did, 'court', 'answer', { caseId, proof: tryProof }), 'COURT_BAD_EVIDENCE');
      const events = h.advanceTo(h.height + 5);
      assert.ok(events.some((x) => x.type === 'court.slashed'));
      assert.equal(balance(h, operator.did).bonds.log, '180');
      assert.equal(gen(h, reporter.did), '1010', 'deposit back plus the reward');
      assert.equal(h.code(operator.did, 'court', 'answer', { caseId, proof: tryProof }), 'COURT_CASE_CLOSED');
    });
  });

  describe('notary fork', () => {
    it('slashes and drops a notary that cosigned both sides (real witness cosignatures), once', () => {
      const h = harness();
      const { log, fork } = bondedLog(h);
      const notary = testNotary(9);
      h.tx(payer.did, 'bank', 'transfer', { to: notary.did, token: 'GEN', amount: '300' });
      h.tx(notary.did, 'bank', 'bond', { role: 'notary', amount: '300' });
      // The notary cosigns the log's real checkpoint, then — its state wiped (or bribed) — the fork's.
      const honest = new MemoryWitness(new KnownLogs([log.verifier]), notary.cosigner);
      const wiped = new MemoryWitness(new KnownLogs([log.verifier]), notary.cosigner);
      const cosA = honest.addCheckpoint(log.body(0, 5));
      const cosB = wiped.addCheckpoint(fork.body(0, 5));
      assert.equal(cosA.status, 200);
      assert.equal(cosB.status, 200);
      const a = log.checkpoint(5) + cosA.body;
      const b = fork.checkpoint(5) + cosB.body;
      const evidence = { type: 'notary-fork', notary: notary.did, a, b };
      assert.deepEqual(h.query('court', 'notary', { did: notary.did }), { did: notary.did, dropped: false });
      h.tx(reporter.did, 'court', 'submit', { evidence });
      assert.deepEqual(h.query('court', 'notary', { did: notary.did }), { did: notary.did, dropped: true });
      assert.equal(balance(h, notary.did).bonds.notary, '270');
      assert.equal(h.code(reporter.did, 'court', 'submit', { evidence }), 'COURT_DUPLICATE_EVIDENCE');
      // The log signed the fork too: that is a separate offence, by another party.
      assert.equal(h.code(reporter.did, 'court', 'submit', { evidence: { type: 'log-fork', a, b } }), 'OK');
    });

    it('refuses an unbonded notary, stale cosignatures, a missing cosignature and a non-fork', () => {
      const h = harness();
      const { log, fork } = bondedLog(h);
      const notary = testNotary(9);
      const w1 = new MemoryWitness(new KnownLogs([log.verifier]), notary.cosigner);
      const w2 = new MemoryWitness(new KnownLogs([log.verifier]), notary.cosigner);
      const a = log.checkpoint(5) + w1.addCheckpoint(log.body(0, 5)).body;
      const b = fork.checkpoint(5) + w2.addCheckpoint(fork.body(0, 5)).body;
      const submit = (ev: Record<string, unknown>) => h.code(reporter.did, 'court', 'submit', { evidence: { type: 'notary-fork', notary: notary.did, ...ev } });
      assert.equal(submit({ a, b }), 'COURT_UNKNOWN_KEY');
      h.tx(payer.did, 'bank', 'transfer', { to: notary.did, token: 'GEN', amount: '300' });
      h.tx(notary.did, 'bank', 'bond', { role: 'notary', amount: '300' });
      assert.equal(submit({ a, b: fork.checkpoint(5) }), 'COURT_BAD_EVIDENCE', 'b carries no cosignature');
      const c = log.checkpoint(6) + w1.addCheckpoint(log.body(5, 6)).body;
      assert.equal(submit({ a, b: c }), 'COURT_NOT_CONFLICTING', 'sizes differ: cosigning both is honest');
      const other = testNotary(10);
      assert.equal(h.code(reporter.did, 'court', 'submit', { evidence: { type: 'notary-fork', notary: other.did, a, b } }), 'COURT_BAD_EVIDENCE');
      h.time = 1_700_000_000_000 + 31 * 24 * 3600 * 1000;
      assert.equal(submit({ a, b }), 'COURT_STALE_EVIDENCE');
    });
  });

  describe('validator equivocation', () => {
    const signer = (k: (typeof VALIDATORS)[0]) => ({ id: k.did, sign: (d: Uint8Array) => k.sign(d) });
    const prepare = (k: (typeof VALIDATORS)[0], height: number, digestByte: number) =>
      Buffer.from(signPayload({ type: MessageType.PREPARE, height, round: 0, digest: Buffer.alloc(32, digestByte) }, signer(k)).bytes).toString('base64');

    it('slashes a double-signing validator and votes it out, keeping the minimum set', () => {
      const h = harness();
      const [v1, v2] = VALIDATORS as [typeof VALIDATORS[0], typeof VALIDATORS[0]];
      const events = h.tx(reporter.did, 'court', 'submit', { evidence: { type: 'validator-equivocation', a: prepare(v1, 1, 1), b: prepare(v1, 1, 2) } });
      assert.ok(events.some((e) => e.type === 'court.validatorRemoved'));
      assert.deepEqual(h.validators, VALIDATORS.slice(1).map((v) => v.did));
      assert.equal(balance(h, v1.did).bonds.validator, '90');
      assert.equal(h.code(reporter.did, 'court', 'submit', { evidence: { type: 'validator-equivocation', a: prepare(v1, 1, 2), b: prepare(v1, 1, 1) } }), 'COURT_DUPLICATE_EVIDENCE');
      // The set is at the minimum (3): the next offender is slashed but stays.
      const more = h.tx(reporter.did, 'court', 'submit', { evidence: { type: 'validator-equivocation', a: prepare(v2, 1, 1), b: prepare(v2, 1, 3) } });
      assert.ok(more.some((e) => e.type === 'court.validatorKept'));
      assert.equal(h.validators.length, 3);
      assert.equal(balance(h, v2.did).bonds.validator, '90');
    });

    it('refuses agreeing messages, tampered signatures, strangers and stale heights', () => {
      const h = harness({ court: { evidenceMaxAgeBlocks: 10 } });
      const v = VALIDATORS[0]!;
      const submit = (a: string, b: string) => h.code(reporter.did, 'court', 'submit', { evidence: { type: 'validator-equivocation', a, b } });
      assert.equal(submit(prepare(v, 1, 1), prepare(v, 1, 1)), 'COURT_NOT_CONFLICTING');
      assert.equal(submit(prepare(v, 1, 1), prepare(v, 2, 2)), 'COURT_NOT_CONFLICTING', 'different heights');
      const raw = Buffer.from(prepare(v, 1, 2), 'base64');
      raw[raw.length - 1]! ^= 1;
      assert.equal(submit(prepare(v, 1, 1), raw.toString('base64')), 'COURT_BAD_EVIDENCE');
      assert.equal(submit(prepare(v, 1, 1), 'AAAA'), 'COURT_BAD_EVIDENCE');
      const stranger = key(40);
      assert.equal(submit(prepare(stranger, 1, 1), prepare(stranger, 1, 2)), 'COURT_UNKNOWN_KEY');
      h.advanceTo(20);
      assert.equal(submit(prepare(v, 3, 1), prepare(v, 3, 2)), 'COURT_STALE_EVIDENCE');
      assert.equal(submit(prepare(v, 15, 1), prepare(v, 15, 2)), 'OK');
    });
  });

  describe('judged cases', () => {
    /** A cage record in the log, proven by a tlog-proof; the app signs another body digest. */
    function splitOrigin(h: ModuleHarness) {
      const { log } = bondedLog(h);
      const record = encodeRecord({ ...SAMPLE, requestId: 'req-42' });
      const tree = new MemoryTree();
      tree.append(Buffer.from('earlier record'));
      const index = tree.append(record);
      tree.append(Buffer.from('later record'));
      const checkpoint = signCheckpoint(log.signer, { origin: log.origin, size: tree.size, rootHash: tree.root(), extensions: [] });
      const proof = formatProof({ extra: record, index, proof: tree.inclusionProof(index), checkpoint });
      const digest = Buffer.alloc(32, 0x77);
      const receipt = {
        app: app.did,
        requestId: 'req-42',
        status: 200,
        responseBodyDigest: digest.toString('hex'),
        signature: app.sign(originSignatureMessage('req-42', 200, digest)).toString('base64'),
      };
      return { proof, receipt };
    }

    it('opens a split-origin case; bonded votes for the claimant move the log’s stake in endBlock', () => {
      const h = harness();
      const { proof, receipt } = splitOrigin(h);
      const [e] = h.tx(app.did, 'court', 'submit', { evidence: { type: 'split-origin', proof, receipt } });
      const caseId = e!.data.caseId as number;
      assert.equal(gen(h, app.did), '990');
      assert.equal(h.code(app.did, 'court', 'submit', { evidence: { type: 'split-origin', proof, receipt } }), 'COURT_DUPLICATE_EVIDENCE');
      for (const v of VALIDATORS.slice(0, 3)) h.tx(v.did, 'court', 'vote', { caseId, side: 'claimant' });
      assert.equal(h.code(VALIDATORS[0]!.did, 'court', 'vote', { caseId, side: 'respondent' }), 'COURT_ALREADY_VOTED');
      assert.equal(h.code(operator.did, 'court', 'vote', { caseId, side: 'respondent' }), 'COURT_NO_STAKE', 'a party');
      assert.equal(h.code(payer.did, 'court', 'vote', { caseId, side: 'respondent' }), 'COURT_NO_STAKE', 'no bond');
      assert.equal(h.code(VALIDATORS[3]!.did, 'court', 'vote', { caseId, side: 'maybe' }), 'COURT_BAD_ARGS');
      const end = (h.query('court', 'case', { id: caseId }) as { endHeight: number }).endHeight;
      h.advanceTo(end);
      assert.equal((h.query('court', 'case', { id: caseId }) as { status: string }).status, 'open');
      const events = h.endBlock();
      assert.ok(events.some((x) => x.type === 'court.decided' && x.data.outcome === 'claimant'));
      assert.equal(balance(h, operator.did).bonds.log, '180');
      assert.equal(gen(h, app.did), '1020', 'deposit back and 20 GEN of the log’s bond');
      assert.equal(h.code(VALIDATORS[3]!.did, 'court', 'vote', { caseId, side: 'claimant' }), 'COURT_CASE_CLOSED');
    });

    it('pays the deposit to the respondent when votes reject the claim, and returns it without quorum', () => {
      const h = harness();
      const { proof, receipt } = splitOrigin(h);
      const [e] = h.tx(app.did, 'court', 'submit', { evidence: { type: 'split-origin', proof, receipt } });
      const caseId = e!.data.caseId as number;
      for (const v of VALIDATORS.slice(0, 2)) h.tx(v.did, 'court', 'vote', { caseId, side: 'respondent' });
      h.tx(VALIDATORS[2]!.did, 'court', 'vote', { caseId, side: 'claimant' }); // 300 of 600 bonded voted; 2 : 1 against
      h.advanceTo(h.height + 6);
      assert.equal((h.query('court', 'case', { id: caseId }) as { outcome: string }).outcome, 'respondent');
      assert.equal(gen(h, operator.did), '810');
      assert.equal(balance(h, operator.did).bonds.log, '200');

      const h2 = harness();
      const s2 = splitOrigin(h2);
      const [e2] = h2.tx(app.did, 'court', 'submit', { evidence: { type: 'split-origin', ...s2 } });
      h2.tx(VALIDATORS[0]!.did, 'court', 'vote', { caseId: e2!.data.caseId, side: 'claimant' }); // 100 of 600 bonded: no quorum
      h2.advanceTo(h2.height + 6);
      assert.equal((h2.query('court', 'case', { id: e2!.data.caseId }) as { outcome: string }).outcome, 'no-quorum');
      assert.equal(gen(h2, app.did), '1000');
    });

    it('refuses a receipt that agrees with the record, a forged receipt and a bad inclusion proof', () => {
      const h = harness();
      const { proof, receipt } = splitOrigin(h);
      const agreeing = { ...receipt, responseBodyDigest: Buffer.from(SAMPLE.responseBodyDigest).toString('hex'), signature: app.sign(originSignatureMessage('req-42', 200, Buffer.from(SAMPLE.responseBodyDigest))).toString('base64') };
      const submit = (ev: Record<string, unknown>) => h.code(app.did, 'court', 'submit', { evidence: { type: 'split-origin', ...ev } });
      assert.equal(submit({ proof, receipt: agreeing }), 'COURT_NOT_CONFLICTING');
      assert.equal(submit({ proof, receipt: { ...receipt, status: 201 } }), 'COURT_BAD_EVIDENCE');
      assert.equal(submit({ proof: proof.replace(/index \d+/, 'index 0'), receipt }), 'COURT_BAD_EVIDENCE');
      assert.equal(submit({ proof, receipt: { ...receipt, requestId: 'req-43' } }), 'COURT_NOT_CONFLICTING');
    });

    it('decides a usage dispute: the payer proves its line, wins, and is refunded into escrow', () => {
      const h = harness();
      h.tx(operator.did, 'bank', 'bond', { role: 'log', amount: '200', logKey: new TestLog().verifier.verifierKey });
      h.tx(payer.did, 'bank', 'escrowDeposit', { amount: '500' });
      const lines: UsageLine[] = [
        { payer: reporter.did, subject: 'api-key:a', count: 1, amount: '1' },
        { payer: payer.did, subject: 'nullifier:9f', count: 100, amount: '400' },
      ];
      h.tx(operator.did, 'bank', 'usageReport', { epoch: 1, lines });
      const proof = usageTree(lines).inclusionProof(1).map((x) => x.toString('hex'));
      const evidence = { type: 'usage', operator: operator.did, epoch: 1, index: 1, line: lines[1], proof, claimedCount: 25 };
      assert.equal(h.code(reporter.did, 'court', 'submit', { evidence }), 'COURT_NOT_PARTY');
      assert.equal(h.code(payer.did, 'court', 'submit', { evidence: { ...evidence, line: { ...lines[1], amount: '40' } } }), 'BANK_BAD_USAGE_PROOF');
      assert.equal(h.code(payer.did, 'court', 'submit', { evidence: { ...evidence, claimedCount: 100 } }), 'COURT_NOT_CONFLICTING');
      const [e] = h.tx(payer.did, 'court', 'submit', { evidence });
      for (const v of VALIDATORS) h.tx(v.did, 'court', 'vote', { caseId: e!.data.caseId, side: 'claimant' });
      h.advanceTo(h.height + 6);
      const c = h.query('court', 'case', { id: e!.data.caseId }) as { outcome: string; detail: { refund: string } };
      assert.equal(c.outcome, 'claimant');
      assert.equal(c.detail.refund, '300', '75 of 100 calls were not made');
      assert.equal(balance(h, payer.did).escrow, String(100 + 300));
      assert.equal(balance(h, operator.did).bonds.log, '180');
    });
  });
});
