/**
 * Crash consistency of a notary: `cage notary serve` is fed checkpoints (sequential ones, racing
 * stale ones) and killed with SIGKILL at a random moment, often with a request in flight, five
 * times over the same data directory. After each restart the size it has recorded is at least the
 * largest it answered 200 for, and no smaller checkpoint and no fork of it is ever cosigned: a
 * crash never lets a notary cosign a rollback or a fork.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { formatAddCheckpointBody } from '../../notary/witness.js';
import { tempDir, TestLog } from '../notary/helpers.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const ROUNDS = 5;

/** mulberry32: a seeded PRNG, so a failing schedule can be replayed from the seed in the message. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Served {
  child: ChildProcess;
  url: string;
  exited: Promise<unknown>;
}

function serve(key: string, dataDir: string, vkey: string): Promise<Served> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/notary/bin/notary.ts', 'serve', '--key', key, '--data-dir', dataDir, '--log', vkey, '--listen', '127.0.0.1:0'], {
      cwd: REPO,
      env: { ...process.env, NODE_OPTIONS: '' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const exited = new Promise((r) => child.once('exit', r));
    let err = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      err += d;
      const m = /listening on (http:\/\/\S+) as /.exec(err);
      if (m !== null) resolve({ child, url: m[1]!, exited });
    });
    void exited.then(() => reject(new Error(`notary exited before listening: ${err}`)));
  });
}

async function post(url: string, body: string): Promise<{ status: number; text: string } | undefined> {
  try {
    const res = await fetch(`${url}/add-checkpoint`, { method: 'POST', body });
    return { status: res.status, text: await res.text() };
  } catch {
    return undefined; // killed mid-request
  }
}

describe('fault: notary killed with SIGKILL', function () {
  this.timeout(180_000);

  it(`never cosigns a rollback or a fork after ${ROUNDS} random kills`, async () => {
    const seed = Date.now() % 1_000_000;
    const rand = prng(seed);
    const log = new TestLog();
    const forked = new TestLog(log.origin, 1, 'forged ');
    const dir = await tempDir();
    try {
      const key = join(dir.path, 'notary.key');
      const init = spawn(process.execPath, ['--import', 'tsx', 'test/notary/bin/notary.ts', 'init', '--out', key], { cwd: REPO, env: { ...process.env, NODE_OPTIONS: '' }, stdio: 'ignore' });
      assert.equal(await new Promise((r) => init.once('exit', r)), 0);
      const data = join(dir.path, 'data');
      let acked = 0; // largest size answered 200
      let recorded = 0; // what the notary said it holds, at the last restart
      for (let round = 0; round < ROUNDS; round++) {
        const n = await serve(key, data, log.verifier.verifierKey);
        const what = `seed ${seed}, round ${round}`;
        // 1. After the restart: what it holds covers everything it ever acknowledged.
        const probe = await post(n.url, formatAddCheckpointBody(0, [], log.checkpoint(Math.max(acked, 1))));
        assert.ok(probe !== undefined);
        const held = probe.status === 200 ? Math.max(acked, 1) : Number(probe.text.trim());
        if (probe.status === 200) acked = Math.max(acked, held);
        else assert.equal(probe.status, 409, `${what}: ${probe.text}`);
        assert.ok(held >= acked, `${what}: holds ${held} after acknowledging ${acked}`);
        assert.ok(held >= recorded, `${what}: went back from ${recorded} to ${held}`);
        recorded = held;
        // 2. A rollback and a fork of what it holds are refused.
        if (held > 1) {
          for (const body of [formatAddCheckpointBody(0, [], log.checkpoint(held - 1)), formatAddCheckpointBody(held, [], log.checkpoint(held - 1))]) {
            assert.notEqual((await post(n.url, body))!.status, 200, `${what}: cosigned a rollback`);
          }
        }
        const forkAnswer = await post(n.url, formatAddCheckpointBody(held, [], forked.checkpoint(held)));
        assert.equal(forkAnswer!.status, 409, `${what}: fork answered ${forkAnswer!.status}`);
        // 3. Feed it: sequential growth plus racing stale requests, then SIGKILL with requests in flight.
        let size = held;
        const steps = 3 + Math.floor(rand() * 12);
        for (let i = 0; i < steps; i++) {
          const next = size + 1 + Math.floor(rand() * 9);
          const racing = [post(n.url, log.body(size, next)), post(n.url, log.body(Math.max(0, size - 1), next + 1)), post(n.url, log.body(0, next))];
          const [main] = await Promise.all(racing);
          const statuses = (await Promise.all(racing)).map((r) => r?.status);
          statuses.forEach((st, j) => {
            if (st === 200) acked = Math.max(acked, j === 1 ? next + 1 : next);
          });
          if (main?.status === 200) size = next;
          else if (statuses[1] === 200) size = next + 1;
        }
        const inFlight = [size + 5, size + 7].map(async (to) => ({ to, r: await post(n.url, log.body(size, to)) }));
        await new Promise((r) => setTimeout(r, Math.floor(rand() * 4))); // a random kill moment, not a timed assertion
        n.child.kill('SIGKILL');
        for (const { to, r } of await Promise.all(inFlight)) if (r?.status === 200) acked = Math.max(acked, to);
        await n.exited;
      }
      assert.ok(acked > 0);
    } finally {
      await dir.remove();
    }
  });
});
