/**
 * `cage audit …` as a user runs it (a child process) against the files of real logs written by a
 * running cage: `verify` (exit 0 on a good proof, 1 on a changed record or another log's key, 2 on
 * bad input), `consistency` (a folder and the admin listener's /log/ URL; 1 when the new
 * checkpoint is another log's), `replay` (1 naming the exact entry after one byte of a full entry
 * bundle changed) and `show`. Two logs share one origin, so "another log" is told apart by keys
 * and hashes, not by name.
 */
import assert from 'node:assert/strict';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateSigner } from '../../audit/note.js';
import { Cage } from '../../gateway/cage.js';
import { buildConfig } from '../../gateway/config/load.js';
import { runCli } from '../helpers/cli.js';
import { ADMIN_TOKEN, baseConfig, tempDir } from '../helpers/e2e.js';
import { Fixtures, request, startHttpUpstream, type HttpUpstream } from '../helpers/servers.js';
import { adminGet, auditInfo, receiptOf, recordAt, waitCheckpoint } from '../helpers/audit.js';

const ORIGIN = 'example.test/cli-log';
/** Records in each log: more than one full tile (256), so full bundles and tiles exist. */
const RECORDS = 300;
const SHOW_ID = 'cli-show-request-1';

/** Sends `n` requests, `parallel` at a time; returns each receipt index by request id. */
async function drive(port: number, n: number, prefix: string, parallel = 16): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      const i = next++;
      const id = i === 7 && prefix === 'a' ? SHOW_ID : `${prefix}-${i}`;
      const r = await request(port, { path: `/${prefix}/${i}`, headers: { 'x-request-id': id } });
      assert.equal(r.status, 200);
      out.set(id, receiptOf(r).index);
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  return out;
}

function startLogCage(dir: string, up: HttpUpstream): Promise<Cage> {
  return Cage.start({ config: buildConfig(baseConfig(dir, [{ upstreams: [up.url] }], { audit: { origin: ORIGIN, checkpoint_interval: '100ms' } })) });
}

function stderrLines(stderr: string): string[] {
  return stderr.split('\n').filter((l) => l !== '');
}

/** Byte offset of entry `k`'s record inside an entry bundle (after its uint16 length). */
function entryOffset(bundle: Buffer, k: number): { at: number; length: number } {
  let at = 0;
  for (let i = 0; i < k; i++) at += 2 + bundle.readUInt16BE(at);
  return { at: at + 2, length: bundle.readUInt16BE(at) };
}

describe('e2e: cage audit command line', function () {
  this.timeout(60_000);
  const fx = new Fixtures();
  let work: string;
  let dirA: string;
  let dirB: string;
  let cageA: Cage;
  let verifierKey: string;
  let keyFile: string;
  /** Files: proof of record 5 of log A, its record bytes, A's checkpoints (early and final), B's final checkpoint and a proof from B. */
  const f = { proof: '', record: '', oldCp: '', newCp: '', otherCp: '', otherProof: '' };
  let showIndex: number;

  before(async () => {
    work = tempDir(fx);
    dirA = tempDir(fx);
    dirB = tempDir(fx);
    const up = await startHttpUpstream((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(`answer to ${req.url}`);
    }, fx);
    cageA = await startLogCage(dirA, up);
    fx.add(() => cageA.shutdown(1000));
    const early = await drive(cageA.port, 20, 'early');
    assert.equal(early.size, 20);
    const oldCp = await waitCheckpoint(cageA.adminPort, 20);
    assert.equal(oldCp.size, 20);
    const ids = await drive(cageA.port, RECORDS - 20, 'a');
    showIndex = ids.get(SHOW_ID)!;
    const newCp = await waitCheckpoint(cageA.adminPort, RECORDS);
    assert.equal(newCp.size, RECORDS);
    verifierKey = (await auditInfo(cageA.adminPort)).verifier_key;
    keyFile = join(work, 'log.vkey');
    writeFileSync(keyFile, `${verifierKey}\n`);
    f.proof = join(work, 'proof-5.txt');
    writeFileSync(f.proof, (await adminGet(cageA.adminPort, '/api/v1/audit/proof/5')).body);
    f.record = join(work, 'record-5.bin');
    writeFileSync(f.record, Buffer.from((await recordAt(cageA.adminPort, 5)).bytes, 'base64'));
    f.oldCp = join(work, 'old.cp');
    writeFileSync(f.oldCp, oldCp.note);
    f.newCp = join(work, 'new.cp');
    writeFileSync(f.newCp, newCp.note);

    // Another log under the same origin, as large as A: same name, different key and tree.
    const cageB = await startLogCage(dirB, up);
    try {
      await drive(cageB.port, RECORDS, 'b');
      const otherCp = await waitCheckpoint(cageB.adminPort, RECORDS);
      assert.equal(otherCp.size, RECORDS);
      f.otherCp = join(work, 'other.cp');
      writeFileSync(f.otherCp, otherCp.note);
      f.otherProof = join(work, 'other-proof-5.txt');
      writeFileSync(f.otherProof, (await adminGet(cageB.adminPort, '/api/v1/audit/proof/5')).body);
    } finally {
      await cageB.shutdown(1000);
    }
  });

  after(() => fx.closeAll());

  it('verify: exit 0 on a good proof (with its own record, a given record, a key file)', async () => {
    const [plain, withRecord, withKeyFile] = await Promise.all([
      runCli(['audit', 'verify', '--proof', f.proof, '--log-key', verifierKey]),
      runCli(['audit', 'verify', '--proof', f.proof, '--log-key', verifierKey, '--record', f.record]),
      runCli(['audit', 'verify', '--proof', f.proof, '--log-key', `@${keyFile}`]),
    ]);
    for (const r of [plain, withRecord, withKeyFile]) {
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`^verified: record 5 is in ${ORIGIN} at tree size ${RECORDS}$`, 'm'));
      assert.match(r.stdout, /^ {2}request id {6}early-\d+$/m);
    }
  });

  it('verify: exit 1 on a changed record, a changed proof, or a proof signed by another log’s key', async () => {
    const record = readFileSync(f.record);
    record[record.length - 3] ^= 0x01;
    const changedRecord = join(work, 'record-5-changed.bin');
    writeFileSync(changedRecord, record);
    const lines = readFileSync(f.proof, 'utf8').split('\n');
    const extraAt = lines.findIndex((l) => l.startsWith('extra '));
    lines[extraAt] = `extra ${record.toString('base64')}`;
    const changedProof = join(work, 'proof-5-changed-extra.txt');
    writeFileSync(changedProof, lines.join('\n'));
    const stranger = generateSigner(ORIGIN).verifierKey;

    const [rec, proof, otherLog, otherKey] = await Promise.all([
      runCli(['audit', 'verify', '--proof', f.proof, '--log-key', verifierKey, '--record', changedRecord]),
      runCli(['audit', 'verify', '--proof', changedProof, '--log-key', verifierKey]),
      runCli(['audit', 'verify', '--proof', f.otherProof, '--log-key', verifierKey]),
      runCli(['audit', 'verify', '--proof', f.proof, '--log-key', stranger]),
    ]);
    assert.equal(rec.code, 1, rec.stderr);
    assert.match(rec.stderr, /^FAILED: AUDIT_BAD_RECORD: .*index 5/m);
    assert.equal(proof.code, 1, proof.stderr);
    assert.match(proof.stderr, /^FAILED: AUDIT_BAD_PROOF: /m);
    for (const r of [otherLog, otherKey]) {
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /^FAILED: AUDIT_BAD_SIGNATURE: /m);
      assert.equal(r.stdout, '');
    }
  });

  it('verify: exit 2 on a malformed proof file, a missing file or flag, or a malformed key', async () => {
    const garbage = join(work, 'garbage.txt');
    writeFileSync(garbage, 'c2sp.org/tlog-proof@v1\nindex five\n\nnot a checkpoint\n');
    const truncated = join(work, 'truncated.txt');
    writeFileSync(truncated, readFileSync(f.proof, 'utf8').split('\n').slice(0, 3).join('\n'));
    const cases = [
      ['audit', 'verify', '--proof', garbage, '--log-key', verifierKey],
      ['audit', 'verify', '--proof', truncated, '--log-key', verifierKey],
      ['audit', 'verify', '--proof', join(work, 'absent.txt'), '--log-key', verifierKey],
      ['audit', 'verify', '--log-key', verifierKey],
      ['audit', 'verify', '--proof', f.proof],
      ['audit', 'verify', '--proof', f.proof, '--log-key', 'not+a+key'],
      ['audit', 'verify', '--proof', f.proof, '--log-key', verifierKey, '--bogus'],
    ];
    const results = await Promise.all(cases.map((args) => runCli(args)));
    results.forEach((r, i) => {
      const what = cases[i]!.slice(2).join(' ');
      assert.equal(r.code, 2, `${what}: exit ${r.code}, stderr ${r.stderr}`);
      const lines = stderrLines(r.stderr);
      assert.equal(lines.length, 1, `${what}: ${r.stderr}`);
      assert.match(lines[0]!, /^cage: CLI_BAD_ARGS: audit verify: /, what);
    });
  });

  it('consistency: exit 0 for two checkpoints of one log, read from its folder and from the admin /log/ URL', async () => {
    const url = `http://127.0.0.1:${cageA.adminPort}/log/`;
    const [dir, web, webNoKey] = await Promise.all([
      runCli(['audit', 'consistency', '--old', f.oldCp, '--new', f.newCp, '--log', dirA]),
      runCli(['audit', 'consistency', '--old', f.oldCp, '--new', f.newCp, '--log', url, '--token', ADMIN_TOKEN, '--log-key', verifierKey]),
      runCli(['audit', 'consistency', '--old', f.oldCp, '--new', f.newCp, '--log', url, '--token', ADMIN_TOKEN]),
    ]);
    for (const r of [dir, web, webNoKey]) {
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`^consistent: ${ORIGIN} size 20 -> ${RECORDS} is append-only`, 'm'));
    }
    assert.equal(dir.stderr, '');
    assert.match(webNoKey.stderr, /NOT verified/);
  });

  it('consistency: exit 1 when the new checkpoint is another log’s (same origin), by its key and by its hashes', async () => {
    const url = `http://127.0.0.1:${cageA.adminPort}/log/`;
    const [byKey, byHashes, missing] = await Promise.all([
      runCli(['audit', 'consistency', '--old', f.oldCp, '--new', f.otherCp, '--log', dirA]),
      // Without a key only the Merkle proof is checked: A's tiles cannot prove B's root.
      runCli(['audit', 'consistency', '--old', f.oldCp, '--new', f.otherCp, '--log', url, '--token', ADMIN_TOKEN]),
      runCli(['audit', 'consistency', '--old', f.oldCp, '--new', f.newCp]),
    ]);
    assert.equal(byKey.code, 1, byKey.stderr);
    assert.match(byKey.stderr, /^FAILED: AUDIT_BAD_SIGNATURE: /m);
    assert.equal(byHashes.code, 1, byHashes.stderr);
    assert.match(byHashes.stderr, /^FAILED: AUDIT_BAD_PROOF: /m);
    assert.equal(missing.code, 2, missing.stderr);
    assert.match(missing.stderr, /^cage: CLI_BAD_ARGS: audit consistency: --log is required$/m);
  });

  it('show: finds a record by request id and by index', async () => {
    const [byId, byIndex] = await Promise.all([
      runCli(['audit', 'show', '--data-dir', dirA, '--request-id', SHOW_ID]),
      runCli(['audit', 'show', '--data-dir', dirA, '--index', String(showIndex), '--json']),
    ]);
    assert.equal(byId.code, 0, byId.stderr);
    assert.match(byId.stdout, new RegExp(`^record ${showIndex}$`, 'm'));
    assert.match(byId.stdout, new RegExp(`^ {2}request id {6}${SHOW_ID}$`, 'm'));
    assert.match(byId.stdout, /^ {2}request {9}GET \/a\/7$/m);
    assert.equal(byIndex.code, 0, byIndex.stderr);
    const shown = JSON.parse(byIndex.stdout) as { index: number; record: { requestId: string; path: string } };
    assert.equal(shown.index, showIndex);
    assert.equal(shown.record.requestId, SHOW_ID);
    const absent = await runCli(['audit', 'show', '--data-dir', dirA, '--request-id', 'no-such-request']);
    assert.equal(absent.code, 1);
    assert.match(absent.stderr, /^FAILED: AUDIT_INDEX_OUT_OF_RANGE: /m);
  });

  // Last: stops cage A, so its files are final.
  it('replay: exit 0 on the log as written; exit 1 naming the exact entry after one byte of a full entry bundle changed', async () => {
    await cageA.shutdown(1000);
    const good = await runCli(['audit', 'replay', '--data-dir', dirA]);
    assert.equal(good.code, 0, good.stderr);
    assert.match(good.stdout, new RegExp(`^replayed: ${RECORDS} entries, \\d+ checkpoints of ${ORIGIN}: every leaf hash and root matches$`, 'm'));

    const copy = join(tempDir(fx), 'data');
    cpSync(dirA, copy, { recursive: true });
    const bundleFile = join(copy, 'audit', 'tile', 'entries', '000');
    const bundle = readFileSync(bundleFile);
    const target = 77;
    const { at, length } = entryOffset(bundle, target);
    assert.ok(length > 20);
    bundle[at + 10] ^= 0x01;
    writeFileSync(bundleFile, bundle);
    const bad = await runCli(['audit', 'replay', '--data-dir', copy]);
    assert.equal(bad.code, 1, bad.stderr);
    assert.match(bad.stderr, new RegExp(`^FAILED: AUDIT_STORE_CORRUPT: entry ${target}: `, 'm'));
    assert.equal(bad.stdout, '');
  });
});
