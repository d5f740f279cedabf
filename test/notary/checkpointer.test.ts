import { strict as assert } from 'node:assert';
import { isCageError, type CageErrorCode } from '../../core/errors.js';
import { verifyCheckpointPolicy } from '../../audit/policy.js';
import { WitnessCoordinator, type NotaryClient } from '../../notary/checkpointer.js';
import type { AddCheckpointInput, AddCheckpointResult } from '../../notary/client.js';
import { NotaryRegistry } from '../../notary/registry.js';
import { formatAddCheckpointBody, KnownLogs, MemoryWitness, TLOG_SIZE_CONTENT_TYPE } from '../../notary/witness.js';
import { TestLog, testNotary, type TestNotary } from './helpers.js';

type Mode = 'up' | 'down' | 'forbidden';

interface FakeNotary {
  readonly n: TestNotary;
  readonly url: string;
  witness: MemoryWitness;
  mode: Mode;
  /** Requests wait on this while set. */
  gate?: Promise<void>;
  readonly calls: AddCheckpointInput[];
}

/** In-memory notaries behind the client interface; each request advances the clock by 7 ms. */
class FakeNet {
  readonly notaries: FakeNotary[];
  now = 1_000_000;
  readonly sleeps: number[] = [];
  readonly proofs: [number, number][] = [];

  constructor(
    readonly log: TestLog,
    count: number,
  ) {
    this.notaries = Array.from({ length: count }, (_, i) => {
      const n = testNotary(40 + i);
      return { n, url: `http://notary-${i}.test`, witness: new MemoryWitness(new KnownLogs([log.verifier]), n.cosigner), mode: 'up' as Mode, calls: [] };
    });
  }

  registry(quorum: number): NotaryRegistry {
    return NotaryRegistry.create({ notaries: this.notaries.map((f, i) => ({ did: f.n.did, url: f.url, name: `w${i}`, verifierKey: f.n.verifier.verifierKey })), quorum });
  }

  readonly client: NotaryClient = async (url, input) => {
    const f = this.notaries.find((x) => x.url === url)!;
    f.calls.push(input);
    if (f.gate !== undefined) await f.gate;
    this.now += 7;
    if (f.mode === 'down') return { status: 'error', code: 'NOTARY_UNREACHABLE', httpStatus: 0, message: 'connection refused' };
    const r = f.mode === 'forbidden' ? new MemoryWitness(new KnownLogs([]), f.n.cosigner).addCheckpoint(formatAddCheckpointBody(input.oldSize, input.proof, input.note)) : f.witness.addCheckpoint(formatAddCheckpointBody(input.oldSize, input.proof, input.note));
    if (r.status === 200) return { status: 'cosigned', lines: r.body.slice(0, -1).split('\n') };
    if (r.status === 409 && r.contentType === TLOG_SIZE_CONTENT_TYPE) return { status: 'conflict', size: Number(r.body.trim()) };
    return { status: 'error', code: (JSON.parse(r.body) as { error: { code: CageErrorCode } }).error.code, httpStatus: r.status, message: '' };
  };

  coordinator(quorum: number, extra: Partial<ConstructorParameters<typeof WitnessCoordinator>[0]> = {}): WitnessCoordinator {
    const reg = this.registry(quorum);
    return new WitnessCoordinator({
      logVerifier: this.log.verifier,
      consistency: (a, b) => {
        this.proofs.push([a, b]);
        return this.log.proof(a, b);
      },
      registry: () => reg,
      client: this.client,
      retry: { attempts: 4, baseDelayMs: 100, maxDelayMs: 1000 },
      clock: () => this.now,
      sleep: async (ms) => {
        this.sleeps.push(ms);
      },
      random: () => 1,
      ...extra,
    });
  }
}

describe('notary/checkpointer (WitnessCoordinator)', () => {
  const log = new TestLog();

  it('gathers cosignatures from every notary in parallel; the note satisfies the exported policy', async () => {
    const net = new FakeNet(log, 3);
    const c = net.coordinator(2);
    const r = await c.witness(log.checkpoint(5));
    assert.equal(r.quorumMet, true);
    assert.equal(r.cosigners.length, 3);
    assert.equal(r.lines.length, 3);
    assert.deepEqual(r.outcomes.map((o) => [o.status, o.requests]), [['cosigned', 1], ['cosigned', 1], ['cosigned', 1]]);
    const verdict = verifyCheckpointPolicy(net.registry(2).policy(log.verifier), r.note);
    assert.deepEqual([...verdict.witnesses].sort(), ['w0', 'w1', 'w2']);
    // The next checkpoint goes with a proof from the size each notary cosigned.
    const r2 = await c.witness(log.checkpoint(12), { size: 12 });
    assert.equal(r2.quorumMet, true);
    assert.deepEqual(net.proofs, [[5, 12], [5, 12], [5, 12]]);
    assert.deepEqual(net.notaries.map((f) => f.calls.at(-1)!.oldSize), [5, 5, 5]);
    // The fake clock moves 7 ms per answer, and the three requests were in flight together.
    assert.deepEqual(c.metrics().notaries.map((s) => [s.lastSize, s.requests, s.failures]), [[12, 2, 0], [12, 2, 0], [12, 2, 0]]);
    assert.deepEqual(c.metrics().notaries.map((s) => s.lastLatencyMs).sort(), [14, 21, 7]);
  });

  it('one notary down: bounded retries with exponential backoff, the quorum is still met', async () => {
    const net = new FakeNet(log, 3);
    net.notaries[2]!.mode = 'down';
    const c = net.coordinator(2);
    const r = await c.witness(log.checkpoint(5));
    assert.equal(r.quorumMet, true);
    assert.deepEqual([...r.cosigners].sort(), [net.notaries[0]!.n.did, net.notaries[1]!.n.did].sort());
    const down = r.outcomes[2]!;
    assert.deepEqual([down.status, down.code, down.requests], ['failed', 'NOTARY_UNREACHABLE', 4]);
    assert.deepEqual(net.sleeps, [100, 200, 400]);
    const st = c.metrics().notaries[2]!;
    assert.deepEqual([st.failures, st.consecutiveFailures, st.lastError, st.lastSize], [4, 4, 'NOTARY_UNREACHABLE', -1]);
  });

  it('two down: the quorum is not met and the lag is reported; once they are back it recovers', async () => {
    const net = new FakeNet(log, 3);
    const c = net.coordinator(2);
    assert.equal((await c.witness(log.checkpoint(4))).quorumMet, true);
    net.notaries[1]!.mode = 'down';
    net.notaries[2]!.mode = 'down';
    const t0 = net.now;
    const r = await c.witness(log.checkpoint(9));
    assert.equal(r.quorumMet, false);
    assert.deepEqual(r.cosigners, [net.notaries[0]!.n.did]);
    assert.deepEqual(r.outcomes.map((o) => o.status), ['cosigned', 'failed', 'failed']);
    net.now = t0 + 30_000;
    let m = c.metrics();
    assert.deepEqual([m.latestSize, m.quorumSize, m.quorumLagEntries, m.quorumLagSeconds], [9, 4, 5, 30]);
    await c.witness(log.checkpoint(11));
    m = c.metrics();
    assert.deepEqual([m.quorumLagEntries, m.quorumLagSeconds], [7, (net.now - t0) / 1000], 'the lag counts from the oldest checkpoint not yet quorum-cosigned');
    net.notaries[1]!.mode = 'up';
    net.notaries[2]!.mode = 'up';
    const back = await c.witness(log.checkpoint(15));
    assert.equal(back.quorumMet, true);
    assert.equal(back.cosigners.length, 3);
    m = c.metrics();
    assert.deepEqual([m.quorumSize, m.quorumLagEntries, m.quorumLagSeconds], [15, 0, 0]);
    assert.equal(m.notaries[1]!.consecutiveFailures, 0);
    // Notaries 1 and 2 had cosigned 4: they got a proof from 4.
    assert.deepEqual(net.notaries[1]!.calls.at(-1)!.oldSize, 4);
  });

  it('handles 409 by resending with a proof from the notary\'s size', async () => {
    const net = new FakeNet(log, 2);
    for (const f of net.notaries) assert.equal(f.witness.addCheckpoint(log.body(0, 6)).status, 200); // cosigned by an earlier cage run
    const c = net.coordinator(2); // knows nothing: starts from old 0
    const r = await c.witness(log.checkpoint(10));
    assert.equal(r.quorumMet, true);
    assert.deepEqual(r.outcomes.map((o) => o.requests), [2, 2]);
    assert.deepEqual(net.notaries[0]!.calls.map((x) => x.oldSize), [0, 6]);
    assert.deepEqual(net.proofs, [[6, 10], [6, 10]]);
    assert.deepEqual(net.sleeps, [], 'a 409 is answered at once, not after a backoff');
  });

  it('a notary ahead of the checkpoint (or claiming to be) is probed once and left out', async () => {
    const net = new FakeNet(log, 1);
    assert.equal(net.notaries[0]!.witness.addCheckpoint(log.body(0, 20)).status, 200);
    const c = net.coordinator(1);
    const r = await c.witness(log.checkpoint(10));
    assert.deepEqual([r.outcomes[0]!.status, r.outcomes[0]!.requests, r.quorumMet], ['ahead', 1, false]);
    // Remembered size 20 > 12: the next round probes from 0 once more before giving up.
    const r2 = await c.witness(log.checkpoint(12));
    assert.deepEqual([r2.outcomes[0]!.status, r2.outcomes[0]!.requests], ['ahead', 1]);
    assert.deepEqual(net.notaries[0]!.calls.map((x) => x.oldSize), [0, 0]);
  });

  it('a refusal (404 unknown log) is a verdict: no retry', async () => {
    const net = new FakeNet(log, 2);
    net.notaries[1]!.mode = 'forbidden';
    const r = await net.coordinator(1).witness(log.checkpoint(3));
    assert.deepEqual([r.outcomes[1]!.status, r.outcomes[1]!.code, r.outcomes[1]!.requests], ['failed', 'NOTARY_UNKNOWN_LOG', 1]);
    assert.deepEqual(net.sleeps, []);
    assert.equal(r.quorumMet, true);
  });

  it('a cosignature that does not verify with the DID\'s key is refused (NOTARY_BAD_COSIGNATURE) and not counted', async () => {
    const net = new FakeNet(log, 2);
    net.notaries[1]!.witness = new MemoryWitness(new KnownLogs([log.verifier]), testNotary(99).cosigner); // signs with another key
    const c = net.coordinator(2);
    const r = await c.witness(log.checkpoint(3));
    assert.deepEqual([r.outcomes[1]!.status, r.outcomes[1]!.code], ['failed', 'NOTARY_BAD_COSIGNATURE']);
    assert.deepEqual([r.quorumMet, r.cosigners.length, r.lines.length], [false, 1, 1]);
  });

  it('onQuorum fires once, as soon as k notaries cosigned, before a slow notary answers', async () => {
    const net = new FakeNet(log, 3);
    let release!: () => void;
    net.notaries[2]!.gate = new Promise((r) => (release = r));
    const c = net.coordinator(2);
    const early: number[] = [];
    let fired!: () => void;
    const firedP = new Promise<void>((r) => (fired = r));
    const done = c.witness(log.checkpoint(5), {
      onQuorum: (r) => {
        early.push(r.cosigners.length);
        fired();
      },
    });
    await firedP;
    assert.deepEqual(early, [2]);
    assert.equal(net.notaries[2]!.calls.length, 1, 'the slow notary is still answering');
    release();
    const r = await done;
    assert.equal(r.cosigners.length, 3);
    assert.deepEqual(early, [2]);
  });

  it('a newer checkpoint supersedes an older one still retrying for a notary', async () => {
    const net = new FakeNet(log, 2);
    net.notaries[1]!.mode = 'down';
    let wake!: () => void;
    let sleeping!: () => void;
    const asleep = new Promise<void>((r) => (sleeping = r));
    const c = net.coordinator(1, {
      sleep: (ms) => {
        net.sleeps.push(ms);
        sleeping();
        return new Promise<void>((r) => (wake = r));
      },
    });
    const first = c.witness(log.checkpoint(5));
    await asleep; // notary 1 failed once and is backing off
    net.notaries[1]!.mode = 'up';
    const second = c.witness(log.checkpoint(8));
    wake();
    const r1 = await first;
    const r2 = await second;
    assert.deepEqual([r1.outcomes[1]!.status, r1.outcomes[1]!.requests], ['superseded', 1]);
    assert.equal(r2.outcomes[1]!.status, 'cosigned');
    assert.deepEqual(net.notaries[1]!.calls.map((x) => x.note.split('\n')[1]), ['5', '8']);
  });

  it('with no notaries the quorum is none (met); bad inputs are refused', async () => {
    const c = new WitnessCoordinator({ logVerifier: log.verifier, consistency: () => [], registry: NotaryRegistry.empty() });
    const r = await c.witness(log.checkpoint(2));
    assert.deepEqual([r.quorumMet, r.quorum, r.lines.length], [true, 0, 0]);
    assert.throws(() => new WitnessCoordinator({ logVerifier: log.verifier, consistency: () => [], registry: NotaryRegistry.empty(), retries: 3 } as never), TypeError);
    assert.throws(() => new WitnessCoordinator({ logVerifier: log.verifier, consistency: () => [], registry: NotaryRegistry.empty(), retry: { attempts: 0 } }), TypeError);
    await assert.rejects(() => c.witness(new TestLog('example.com/log', 77).checkpoint(2)), (e) => isCageError(e, 'AUDIT_BAD_SIGNATURE'));
    await assert.rejects(() => c.witness(log.checkpoint(2), { size: 3 }), (e) => isCageError(e, 'AUDIT_BAD_CHECKPOINT'));
  });

  it('backoff doubles up to the cap, half of it jittered', () => {
    const c = new FakeNet(log, 1).coordinator(1, { random: () => 0 });
    assert.deepEqual([0, 1, 2, 3, 4, 5].map((i) => c.backoffMs(i)), [50, 100, 200, 400, 500, 500]);
    const d = new FakeNet(log, 1).coordinator(1, { random: () => 1 });
    assert.deepEqual([0, 1, 2, 3, 4, 5].map((i) => d.backoffMs(i)), [100, 200, 400, 800, 1000, 1000]);
  });

  it('never throws for a client failure: an exotic error result is just a failed outcome', async () => {
    const net = new FakeNet(log, 1);
    const weird: NotaryClient = async (): Promise<AddCheckpointResult> => ({ status: 'error', code: 'NOTARY_BAD_RESPONSE', httpStatus: 500, message: 'teapot' });
    const r = await net.coordinator(1, { client: weird }).witness(log.checkpoint(2));
    assert.deepEqual([r.outcomes[0]!.status, r.outcomes[0]!.requests, r.quorumMet], ['failed', 4, false]);
  });
});
