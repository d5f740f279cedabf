/**
 * The real cage (`cage run --config …`, a child process) with an `audit: sync` route, killed with
 * SIGKILL at random moments while clients drive requests concurrently, then restarted on the same
 * data dir, several times. The promise of a sync route: an answer the client received in full
 * names a record that survives any crash. So after every restart, each acknowledged (receipt
 * index, request id) is in the log at that index, and every checkpoint seen published before a
 * kill is a prefix of the reopened log (consistency proof from the admin API, verified here).
 * The kill moment comes from a seeded RNG (AUDIT_CAGE_KILL9_SEED to replay one); the seed is in
 * every failure message.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { verifyConsistencyBetween } from '../../audit/verify.js';
import { startCli, type RunningCage } from '../helpers/cli.js';
import { ADMIN_TOKEN, StopWaiting, tempDir, waitFor } from '../helpers/e2e.js';
import { Fixtures, request, sleep, startHttpUpstream, type HttpUpstream } from '../helpers/servers.js';
import { auditInfo, consistencyHashes, receiptOf, recordAt } from '../helpers/audit.js';

const ROUNDS = 5;
const CLIENTS = 8;

interface Ack {
  index: number;
  id: string;
}

/** Clients sending requests until stopped; remembers every answer received in full. */
class Driver {
  readonly acks: Ack[] = [];
  private stopped = false;
  private readonly workers: Promise<void>[];
  private n = 0;
  /** A failed check in a client, rethrown by stop() (a stored rejection would go unhandled meanwhile). */
  private failure: unknown;

  constructor(
    private readonly port: number,
    private readonly round: number,
    private readonly origin: string,
  ) {
    this.workers = Array.from({ length: CLIENTS }, () =>
      this.work().catch((err: unknown) => {
        this.failure ??= err;
        this.stopped = true;
      }),
    );
  }

  private async work(): Promise<void> {
    while (!this.stopped) {
      const id = `kill9-r${this.round}-${this.n++}`;
      const path = `/r/${id}`;
      try {
        const r = await request(this.port, { path, headers: { 'x-request-id': id } });
        // Only an answer received in full counts as acknowledged.
        if (r.status !== 200 || r.body.toString() !== `ok ${path}` || r.headers['x-request-id'] !== id) continue;
        const receipt = receiptOf(r, `the answer to ${id}`);
        assert.equal(receipt.origin, this.origin);
        this.acks.push({ index: receipt.index, id });
      } catch (err) {
        if (err instanceof assert.AssertionError) throw err;
        // The cage died under this request: not acknowledged.
        if (this.stopped) return;
        await sleep(5);
      }
    }
  }

  get failed(): boolean {
    return this.failure !== undefined;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.workers);
    if (this.failure !== undefined) throw this.failure;
  }
}

/** Polls the admin API for published checkpoints until stopped (errors once the cage is gone are expected). */
class CheckpointWatcher {
  private stopped = false;
  private readonly loop: Promise<void>;
  private failure: unknown;

  constructor(
    adminPort: number,
    private readonly seen: Map<number, string>,
  ) {
    this.loop = (async () => {
      while (!this.stopped) {
        try {
          const cp = (await auditInfo(adminPort)).checkpoint;
          if (cp !== null) {
            const before = this.seen.get(cp.size);
            assert.ok(before === undefined || before === cp.note, `two different checkpoints of size ${cp.size}`);
            this.seen.set(cp.size, cp.note);
          }
        } catch (err) {
          if (err instanceof assert.AssertionError && /two different checkpoints/.test(err.message)) throw err;
        }
        await sleep(25);
      }
    })().catch((err: unknown) => {
      this.failure = err;
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
    if (this.failure !== undefined) throw this.failure;
  }
}

/** Runs `f` over `items`, `parallel` at a time. */
async function eachLimited<T>(items: readonly T[], parallel: number, f: (x: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: parallel }, async () => {
    while (next < items.length) await f(items[next++]!);
  }));
}

describe('fault: the cage killed with SIGKILL under sync-audited load', function () {
  this.timeout(120_000);
  const fx = new Fixtures();
  let up: HttpUpstream;
  let configFile: string;

  before(async () => {
    up = await startHttpUpstream((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(`ok ${req.url}`);
    }, fx);
    const dir = tempDir(fx);
    configFile = join(dir, 'cage.yaml');
    writeFileSync(
      configFile,
      [
        'listen: 127.0.0.1:0',
        `admin: { listen: 127.0.0.1:0, token: ${ADMIN_TOKEN} }`,
        `data_dir: ${join(dir, 'data')}`,
        'log: { level: silent, access: false }',
        'audit: { origin: example.test/kill9, checkpoint_interval: 150ms }',
        'routes:',
        '  - name: sync',
        `    upstreams: [${up.url}]`,
        '    audit: sync',
        '',
      ].join('\n'),
    );
  });

  after(() => fx.closeAll());

  it(`keeps every acknowledged record at its index and every published checkpoint a prefix, across ${ROUNDS} kills`, async () => {
    const seed = Number(process.env.AUDIT_CAGE_KILL9_SEED ?? Date.now() % 1_000_000);
    let rng = seed || 1;
    const random = (): number => (rng = (rng * 48271) % 2147483647) / 2147483647;
    const acked: Ack[] = [];
    /** Every checkpoint seen published, by size. */
    const seen = new Map<number, string>();
    let verifierKey: string | undefined;
    let lastSize = 0;

    let cage: RunningCage = await startCli(['run', '--config', configFile], fx);
    for (let round = 0; round <= ROUNDS; round++) {
      const context = `seed ${seed}, after kill ${round}`;
      const info = await auditInfo(cage.adminPort);
      verifierKey ??= info.verifier_key;
      assert.equal(info.verifier_key, verifierKey, `${context}: the log key stays`);
      assert.ok(info.size >= lastSize, `${context}: the log shrank from ${lastSize} to ${info.size}`);

      if (round > 0) {
        // Every acknowledged answer's record is at its index, with its request id.
        const maxAcked = acked.reduce((m, a) => Math.max(m, a.index), -1);
        assert.ok(info.size > maxAcked, `${context}: reopened with ${info.size} records, but index ${maxAcked} was acknowledged`);
        const byIndex = new Map<number, string>();
        for (const a of acked) {
          assert.ok(!byIndex.has(a.index), `${context}: index ${a.index} was acknowledged twice (${byIndex.get(a.index)} and ${a.id})`);
          byIndex.set(a.index, a.id);
        }
        await eachLimited(acked, 16, async (a) => {
          const rec = (await recordAt(cage.adminPort, a.index)).record;
          assert.equal(rec.requestId, a.id, `${context}: record ${a.index}`);
          assert.equal(rec.status, 200, `${context}: record ${a.index}`);
          assert.equal(rec.path, `/r/${a.id}`, `${context}: record ${a.index}`);
        });
        // Every checkpoint seen before a kill is a prefix of the reopened log.
        const latest = info.checkpoint;
        const maxSeen = Math.max(0, ...seen.keys());
        assert.ok(latest !== null && latest.size >= maxSeen, `${context}: the reopened log's checkpoint (${latest?.size}) is behind one already published (${maxSeen})`);
        for (const [size, note] of seen) {
          const proof = await consistencyHashes(cage.adminPort, size, latest.size);
          const both = verifyConsistencyBetween(note, latest.note, proof, verifierKey);
          assert.equal(both.old.size, size);
        }
      }
      lastSize = info.size;
      if (round === ROUNDS) break;

      // Load, then a kill at a random moment (at least one answer acknowledged first).
      const driver = new Driver(cage.port, round, info.origin);
      const watcher = new CheckpointWatcher(cage.adminPort, seen);
      await waitFor(() => {
        if (driver.failed) throw new StopWaiting('a client check failed');
        return driver.acks.length > 0;
      }, `${context}: a first acknowledged answer`, 20_000).catch(async (err: unknown) => {
        await driver.stop(); // rethrows the client's failure, if that is what stopped the wait
        throw err;
      });
      await sleep(Math.floor(random() * 1200));
      cage.proc.child.kill('SIGKILL');
      const exit = await cage.proc.exited;
      await Promise.all([driver.stop(), watcher.stop()]);
      assert.equal(exit.signal, 'SIGKILL', `${context}: the cage must die by the kill:\n${cage.proc.stderr}`);
      acked.push(...driver.acks);
      cage = await startCli(['run', '--config', configFile], fx);
    }
    cage.proc.child.kill('SIGTERM');
    assert.deepEqual(await cage.proc.exited, { code: 0, signal: null });
    assert.ok(acked.length >= ROUNDS, `seed ${seed}: every round acknowledged something`);
    assert.ok(seen.size > 0, `seed ${seed}: checkpoints were seen`);
  });
});
