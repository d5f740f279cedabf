/**
 * A notary's evidence file is court evidence: the notary refuses a forked checkpoint (the real
 * witness decision), keeps the evidence file (the real notary store), and `cage court
 * submit-evidence` turns that file into a log-fork case that slashes the log's bond.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { courtEvidence } from '../../cli/court.js';
import { decideAddCheckpoint, KnownLogs, parseAddCheckpointBody } from '../../notary/witness.js';
import { NotaryStore } from '../../notary/io/store.js';
import { TestLog } from '../notary/helpers.js';
import { balance, harness, USERS } from '../chain/modules/fixtures.js';

describe('cli: cage court submit-evidence with a notary evidence file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cage-court-evidence-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('turns the two log-signed checkpoints a notary kept into a log-fork case that slashes the log', async () => {
    const [operator, reporter] = USERS as [(typeof USERS)[0], (typeof USERS)[0]];
    const log = new TestLog('example.com/log', 5, 'entry ');
    const fork = new TestLog('example.com/log', 5, 'forged ');
    const logs = new KnownLogs([log.verifier]);
    const first = decideAddCheckpoint(logs, parseAddCheckpointBody(log.body(0, 5)), undefined);
    assert.equal(first.accept, true);
    const second = decideAddCheckpoint(logs, parseAddCheckpointBody(fork.body(5, 5)), first.accept ? first.state : undefined);
    assert.equal(second.accept, false);
    assert.ok(second.evidence !== undefined, 'the witness keeps evidence of the fork');
    const store = await NotaryStore.open(join(dir, 'notary'));
    await store.saveEvidence(second.evidence, 1_800_000_000);
    await store.close();
    const [name] = readdirSync(join(dir, 'notary', 'evidence'));
    const file = JSON.parse(readFileSync(join(dir, 'notary', 'evidence', name!), 'utf8')) as unknown;

    const evidence = courtEvidence(file) as { type: string; a: string; b: string };
    assert.equal(evidence.type, 'log-fork');
    const h = harness();
    h.tx(operator.did, 'bank', 'bond', { role: 'log', amount: '200', logKey: log.verifier.verifierKey });
    const events = h.tx(reporter.did, 'court', 'submit', { evidence });
    assert.equal(events[0]!.type, 'court.slashed');
    assert.equal(balance(h, operator.did).bonds.log, '180');
    // Other evidence passes through untouched; a broken notary file is a usage error.
    const plain = { type: 'log-fork', a: 'x', b: 'y' };
    assert.equal(courtEvidence(plain), plain);
    assert.throws(() => courtEvidence({ type: 'cage-notary-evidence/v1', recorded: {} }), /recorded\.note/);
  });
});
