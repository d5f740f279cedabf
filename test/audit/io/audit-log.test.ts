import { strict as assert } from 'node:assert';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openCheckpoint } from '../../../audit/checkpoint.js';
import { leafHash } from '../../../audit/hash.js';
import { AuditLog } from '../../../audit/io/audit-log.js';
import { MemoryTree } from '../../../audit/merkle.js';
import { generateSigner } from '../../../audit/note.js';
import { encodeRecord } from '../../../audit/record.js';
import { verifyConsistencyBetween, verifyProof } from '../../../audit/verify.js';

const entry = (i: number): Buffer => Buffer.from(`record-${i}`);
const D = (b: number): Buffer => Buffer.alloc(32, b);
/** A real split-origin record (the proof files carry records and verifyProof decodes them). */
const record = (i: number): Buffer =>
  encodeRecord({
    requestId: `req-${i}`,
    time: 1_790_000_000_000 + i,
    route: 'r',
    method: 'GET',
    host: 'h',
    path: `/${i}`,
    clientAddress: '127.0.0.1',
    requestHeadersDigest: D(1),
    requestBodyDigest: D(2),
    requestBodyLength: 0,
    status: 200,
    responseHeadersDigest: D(3),
    responseBodyDigest: D(4),
    responseBodyLength: 0,
    durationMicros: 1,
  });

describe('audit/io/audit-log', () => {
  const dirs: string[] = [];
  const logs: AuditLog[] = [];
  function newDir(): string {
    const d = mkdtempSync(join(tmpdir(), 'audit-log-'));
    dirs.push(d);
    return d;
  }
  async function open(dir: string, extra: Partial<Parameters<typeof AuditLog.open>[0]> = {}): Promise<AuditLog> {
    const l = await AuditLog.open({ dir, origin: 'test.example/log', checkpointIntervalMs: 3_600_000, ...extra });
    logs.push(l);
    return l;
  }
  afterEach(async () => {
    for (const l of logs.splice(0)) await l.close().catch(() => undefined);
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('appends in index order; checkpoints sign the RFC 6962 root; proofs verify offline', async () => {
    const log = await open(newDir());
    const tree = new MemoryTree();
    for (let i = 0; i < 300; i++) {
      assert.equal(log.append(record(i)), i);
      tree.append(record(i));
    }
    await log.durable(299);
    await log.checkpoint();
    const cp = log.latestCheckpoint()!;
    const opened = openCheckpoint(cp.note, log.verifierKey).checkpoint;
    assert.equal(opened.size, 300);
    assert.deepEqual(opened.rootHash, tree.root());
    const r = verifyProof({ proof: log.proof(123), logKey: log.verifierKey });
    assert.equal(r.index, 123);
    assert.deepEqual(r.leafHash, leafHash(record(123)));
    assert.equal(r.record?.requestId, 'req-123');
    assert.deepEqual(log.record(123), record(123));
  });

  it('a reserved index holds later records back until it is filled, then they follow in order', async () => {
    const log = await open(newDir());
    assert.equal(log.append(entry(0)), 0);
    const reserved = log.reserve(() => Buffer.from('sealed'));
    assert.equal(reserved, 1);
    assert.equal(log.append(entry(2)), 2);
    assert.equal(log.append(entry(3)), 3);
    assert.equal(log.size, 1, 'only the record before the reservation is in the tree');
    assert.equal(log.nextIndex, 4);
    log.fill(1, entry(1));
    assert.equal(log.size, 4);
    await log.durable(3);
    for (let i = 0; i < 4; i++) assert.deepEqual(log.record(i), entry(i));
  });

  it('seals a reservation still pending after max_pending with what its reserver knows, and drops the late fill', async () => {
    let now = 1_000_000;
    const log = await open(newDir(), { maxPendingMs: 500, now: () => now });
    log.reserve(() => Buffer.from('incomplete-0'));
    log.append(entry(1));
    assert.equal(log.size, 0);
    now += 501;
    // The log's tick runs on a timer; closing seals every pending slot too, so drive it via checkpoint-free waiting.
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(log.size, 2, 'the overdue slot was sealed and the queue drained');
    assert.deepEqual(log.record(0), Buffer.from('incomplete-0'));
    assert.equal(log.sealed, 1);
    log.fill(0, entry(0));
    assert.equal(log.lateFills, 1);
    assert.deepEqual(log.record(0), Buffer.from('incomplete-0'), 'a late fill never rewrites a sealed record');
  });

  it('durable(i) resolves only once record i is fsynced, and waits for a reservation ahead of it', async () => {
    const log = await open(newDir());
    const slot = log.reserve(() => Buffer.from('x'));
    const i = log.append(entry(1));
    let done = false;
    const p = log.durable(i).then(() => {
      done = true;
    });
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(done, false, 'record 1 cannot be durable while slot 0 is open');
    log.fill(slot, entry(0));
    await p;
    assert.ok(log.durableSize >= 2);
  });

  it('checkpoints only cover durable records and stay consistent across a reopen; the origin and key persist', async () => {
    const dir = newDir();
    const a = await open(dir);
    for (let i = 0; i < 10; i++) a.append(entry(i));
    await a.checkpoint();
    const first = a.latestCheckpoint()!;
    const key = a.verifierKey;
    await a.close();
    logs.splice(logs.indexOf(a), 1);
    const b = await open(dir, { origin: undefined });
    assert.equal(b.origin, 'test.example/log');
    assert.equal(b.verifierKey, key);
    assert.equal(b.append(entry(10)), 10);
    await b.checkpoint();
    const second = b.latestCheckpoint()!;
    const proof = b.consistency(first.size, second.size);
    const both = verifyConsistencyBetween(first.note, second.note, proof, key);
    assert.equal(both.old.size, 10);
    assert.equal(both.new.size, 11);
  });

  it('refuses another origin for an existing log, and a key named for another origin', async () => {
    const dir = newDir();
    const a = await open(dir);
    await a.close();
    logs.splice(logs.indexOf(a), 1);
    await assert.rejects(AuditLog.open({ dir, origin: 'other.example/log' }), (e: { code?: string }) => e.code === 'CONFIG_INVALID');
    const keyFile = join(newDir(), 'k');
    writeFileSync(keyFile, `${generateSigner('someone.else/log').signerKey}\n`);
    await assert.rejects(AuditLog.open({ dir: newDir(), origin: 'test.example/log', keyFile }), (e: { code?: string }) => e.code === 'AUDIT_BAD_KEY');
  });

  it('keeps its signer key private: mode 0600, under state/ (never a published path)', async () => {
    const dir = newDir();
    await open(dir);
    const file = join(dir, 'state', 'log.key');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.match(readFileSync(file, 'utf8'), /^PRIVATE\+KEY\+test\.example\/log\+/);
  });

  it('answers out-of-range proof and consistency requests with AUDIT_INDEX_OUT_OF_RANGE', async () => {
    const log = await open(newDir());
    log.append(entry(0));
    assert.throws(() => log.proof(0), (e: { code?: string }) => e.code === 'AUDIT_INDEX_OUT_OF_RANGE', 'no checkpoint covers it yet');
    await log.checkpoint();
    assert.throws(() => log.proof(1), (e: { code?: string }) => e.code === 'AUDIT_INDEX_OUT_OF_RANGE');
    assert.throws(() => log.proof(-1), (e: { code?: string }) => e.code === 'AUDIT_INDEX_OUT_OF_RANGE');
    assert.throws(() => log.consistency(1, 0), (e: { code?: string }) => e.code === 'AUDIT_INDEX_OUT_OF_RANGE');
    assert.throws(() => log.consistency(0, 2), (e: { code?: string }) => e.code === 'AUDIT_INDEX_OUT_OF_RANGE');
    assert.throws(() => log.record(5), (e: { code?: string }) => e.code === 'AUDIT_INDEX_OUT_OF_RANGE');
  });
});
