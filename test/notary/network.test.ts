/**
 * Real sockets: three notary servers (in-process, own data dirs), the HTTP client and the
 * coordinator with quorum 2. Stopping one keeps the quorum; stopping two loses it (reported);
 * restarting them (same ports, same state) recovers.
 */
import { strict as assert } from 'node:assert';
import { verifyCheckpointPolicy } from '../../audit/policy.js';
import { WitnessCoordinator } from '../../notary/checkpointer.js';
import { buildDidDocument } from '../../notary/did.js';
import { NotaryServer } from '../../notary/io/server.js';
import { NotaryStore } from '../../notary/io/store.js';
import { NotaryRegistry, registerNotary } from '../../notary/registry.js';
import { KnownLogs } from '../../notary/witness.js';
import { tempDir, TestLog, testNotary, type TestNotary } from './helpers.js';

interface Running {
  n: TestNotary;
  dir: string;
  port: number;
  server?: NotaryServer;
  store?: NotaryStore;
}

describe('notary: three notaries over HTTP, quorum 2', () => {
  const log = new TestLog();
  const notaries: Running[] = [];
  let root: Awaited<ReturnType<typeof tempDir>>;

  async function up(r: Running): Promise<void> {
    r.store = await NotaryStore.open(r.dir);
    r.server = await NotaryServer.start({
      cosigner: r.n.cosigner,
      did: r.n.did,
      didDocument: buildDidDocument(r.n.did, r.n.publicKey),
      logs: new KnownLogs([log.verifier]),
      store: r.store,
      port: r.port,
    });
    r.port = r.server.port;
  }

  async function down(r: Running): Promise<void> {
    await r.server?.close();
    await r.store?.close();
    r.server = undefined;
    r.store = undefined;
  }

  before(async () => {
    root = await tempDir();
    for (let i = 0; i < 3; i++) {
      const r: Running = { n: testNotary(60 + i), dir: `${root.path}/n${i}`, port: 0 };
      await up(r);
      notaries.push(r);
    }
  });

  after(async () => {
    for (const r of notaries) await down(r);
    await root.remove();
  });

  it('witnesses, survives one notary down, reports two down, and recovers', async () => {
    let reg = NotaryRegistry.empty();
    for (const [i, r] of notaries.entries()) reg = await registerNotary(reg, { did: r.n.did, url: r.server!.url, name: `n${i}` });
    reg = reg.withQuorum(2);
    const c = new WitnessCoordinator({
      logVerifier: log.verifier,
      consistency: (a, b) => log.proof(a, b),
      registry: reg,
      timeoutMs: 5_000,
      retry: { attempts: 3, baseDelayMs: 5, maxDelayMs: 20 },
    });
    const policy = reg.policy(log.verifier);

    let r = await c.witness(log.checkpoint(10));
    assert.equal(r.quorumMet, true);
    assert.equal(r.cosigners.length, 3);
    assert.equal(verifyCheckpointPolicy(policy, r.note).witnesses.length, 3);

    await down(notaries[2]!);
    r = await c.witness(log.checkpoint(25));
    assert.equal(r.quorumMet, true);
    assert.deepEqual(r.outcomes.map((o) => o.status), ['cosigned', 'cosigned', 'failed']);
    assert.equal(r.outcomes[2]!.code, 'NOTARY_UNREACHABLE');
    assert.equal(r.outcomes[2]!.requests, 3);
    assert.deepEqual([...verifyCheckpointPolicy(policy, r.note).witnesses].sort(), ['n0', 'n1']);

    await down(notaries[1]!);
    r = await c.witness(log.checkpoint(31));
    assert.equal(r.quorumMet, false);
    assert.deepEqual(r.cosigners, [notaries[0]!.n.did]);
    let m = c.metrics();
    assert.deepEqual([m.latestSize, m.quorumSize, m.quorumLagEntries], [31, 25, 6]);
    assert.ok(m.notaries[1]!.failures >= 3 && m.notaries[2]!.failures >= 6);

    await up(notaries[1]!);
    await up(notaries[2]!);
    r = await c.witness(log.checkpoint(40));
    assert.equal(r.quorumMet, true);
    assert.equal(r.cosigners.length, 3);
    m = c.metrics();
    assert.deepEqual([m.quorumSize, m.quorumLagEntries], [40, 0]);
    // Each restarted notary resumed from its durable state (n2 had cosigned 10, n1 had cosigned 25).
    assert.deepEqual(
      notaries.map((x) => x.store!.get(log.origin)!.size),
      [40, 40, 40],
    );
    assert.ok(m.notaries.every((s) => s.lastLatencyMs >= 0 && s.consecutiveFailures === 0));
  });
});
