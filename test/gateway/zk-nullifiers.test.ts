/**
 * The nullifier store on its own (no proofs): limits and replays per (scope, epoch), one winner
 * among concurrent copies, durability across reopen (counts and sessions), a torn last line,
 * and pruning of old epochs.
 */
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isCageError } from '../../core/errors.js';
import { NullifierStore, type NullifierUse } from '../../gateway/zk/nullifiers.js';

const hex = (n: number): string => n.toString(16).padStart(64, '0');

function use(n: number, signal: number, extra: Partial<NullifierUse> = {}): NullifierUse {
  return { scope: 'api', epoch: 100, nullifier: hex(n), signal: hex(signal), group: 'staff', root: hex(7), ...extra };
}

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (isCageError(err)) return err.code;
    throw err;
  }
  return 'accepted';
}

describe('gateway/zk NullifierStore', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'cage-zk-null-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('counts uses per (scope, epoch, nullifier): past the limit ZK_NULLIFIER_LIMIT, the same signal twice ZK_REPLAY', async () => {
    const s = await NullifierStore.open(dir, 3600, 100);
    assert.equal(await code(s.accept(use(1, 1), 2)), 'accepted');
    assert.equal(await code(s.accept(use(1, 1), 2)), 'ZK_REPLAY');
    assert.equal(await code(s.accept(use(1, 2), 2)), 'accepted');
    assert.equal(await code(s.accept(use(1, 3), 2)), 'ZK_NULLIFIER_LIMIT');
    // other scope, other epoch, other member: counted apart
    assert.equal(await code(s.accept(use(1, 3, { scope: 'other' }), 2)), 'accepted');
    assert.equal(await code(s.accept(use(1, 3, { epoch: 101 }), 2)), 'accepted');
    assert.equal(await code(s.accept(use(2, 3), 2)), 'accepted');
    assert.equal(s.uses('api', 100, hex(1)), 2);
    assert.equal(s.check('api', 100, hex(2), hex(9), 1)?.code, 'ZK_NULLIFIER_LIMIT');
    await s.close();
  });

  it('of two concurrent copies of one proof exactly one is accepted', async () => {
    const s = await NullifierStore.open(dir, 3600, 100);
    const results = await Promise.all([code(s.accept(use(5, 5), 10)), code(s.accept(use(5, 5), 10))]);
    assert.deepEqual(results.sort(), ['ZK_REPLAY', 'accepted']);
    await s.close();
  });

  it('a reopened store keeps the epoch’s uses and sessions; a torn last line is cut off', async () => {
    const s = await NullifierStore.open(dir, 3600, 100);
    await s.accept(use(1, 1), 5);
    await s.accept(use(2, 2, { session: 'did:key:z6MkSession' }), 5);
    await s.close();
    const file = join(dir, '3600s-100.jsonl');
    appendFileSync(file, '{"scope":"api","nullif'); // a crash mid-append
    const r = await NullifierStore.open(dir, 3600, 100);
    assert.ok(readFileSync(file, 'utf8').endsWith('\n'));
    assert.equal(await code(r.accept(use(1, 1), 5)), 'ZK_REPLAY');
    assert.equal(r.uses('api', 100, hex(2)), 1);
    const sess = r.session('did:key:z6MkSession');
    assert.deepEqual(sess?.facts, { group: 'staff', root: hex(7), nullifier: hex(2), scope: 'api', epoch: 100, mode: 'session' });
    await r.accept(use(3, 3), 5);
    await r.close();
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    assert.equal(lines.length, 3);
    for (const l of lines) JSON.parse(l);
  });

  it('drops epochs older than the previous one (on open and as epochs pass), and files of another epoch length', async () => {
    writeFileSync(join(dir, '3600s-97.jsonl'), `${JSON.stringify({ scope: 'api', nullifier: hex(1), signal: hex(1), group: 'g', root: hex(1) })}\n`);
    writeFileSync(join(dir, '60s-6000.jsonl'), '');
    writeFileSync(join(dir, '3600s-99.jsonl'), `${JSON.stringify({ scope: 'api', nullifier: hex(1), signal: hex(1), group: 'g', root: hex(1), session: 'did:key:z6Mkold' })}\n`);
    const s = await NullifierStore.open(dir, 3600, 100);
    assert.deepEqual(readdirSync(dir).sort(), ['3600s-99.jsonl']);
    assert.equal(s.uses('api', 99, hex(1)), 1);
    assert.ok(s.session('did:key:z6Mkold'));
    await s.accept(use(1, 1, { epoch: 101 }), 1);
    // epoch 101 arrived: 99 is older than the previous epoch (100) now
    await s.accept(use(1, 2, { epoch: 101, scope: 'b' }), 1);
    assert.equal(s.uses('api', 99, hex(1)), 0);
    assert.equal(s.session('did:key:z6Mkold'), undefined);
    await s.close();
    assert.equal(existsSync(join(dir, '3600s-99.jsonl')), false);
  });
});
