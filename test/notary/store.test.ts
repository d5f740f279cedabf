import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isCageError } from '../../core/errors.js';
import type { NoteSigner } from '../../audit/note.js';
import { buildDidDocument } from '../../notary/did.js';
import type { WriteStep } from '../../notary/io/files.js';
import { NotaryServer } from '../../notary/io/server.js';
import { NotaryStore, originFileName, type EvidenceFile } from '../../notary/io/store.js';
import { formatAddCheckpointBody, KnownLogs, type WitnessResponse } from '../../notary/witness.js';
import { ORIGIN, tempDir, TestLog, testNotary } from './helpers.js';

const log = new TestLog();
const notary = testNotary(11);
const logs = new KnownLogs([log.verifier]);
const STEPS: WriteStep[] = ['open-temp', 'write-temp', 'fsync-temp', 'rename', 'fsync-dir'];

async function startServer(dir: string, opts: { step?: (s: WriteStep) => void | Promise<void>; cosigner?: NoteSigner; maxEvidenceFiles?: number } = {}) {
  const store = await NotaryStore.open(dir, {
    ...(opts.step === undefined ? {} : { step: (s: WriteStep) => opts.step!(s) }),
    ...(opts.maxEvidenceFiles === undefined ? {} : { maxEvidenceFiles: opts.maxEvidenceFiles }),
  });
  const server = await NotaryServer.start({ cosigner: opts.cosigner ?? notary.cosigner, did: notary.did, didDocument: buildDidDocument(notary.did, notary.publicKey), logs, store, clock: () => 1_700_000_123 });
  return {
    store,
    server,
    stop: async () => {
      await server.close();
      await store.close();
    },
  };
}

function isCode(code: string) {
  return (err: unknown) => isCageError(err) && err.code === code;
}

describe('notary/io/store (durable state and evidence)', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  beforeEach(async () => (dir = await tempDir()));
  afterEach(async () => dir.remove());

  it('keeps the latest cosigned checkpoint of each log across a restart', async () => {
    let s = await startServer(dir.path);
    assert.equal((await s.server.addCheckpoint(log.body(0, 5))).status, 200);
    assert.equal((await s.server.addCheckpoint(log.body(5, 9))).status, 200);
    await s.stop();
    s = await startServer(dir.path);
    assert.equal(s.store.get(ORIGIN)!.size, 9);
    const r = await s.server.addCheckpoint(log.body(0, 12));
    assert.equal(r.status, 409);
    assert.equal(r.body, '9\n');
    assert.equal((await s.server.addCheckpoint(log.body(9, 12))).status, 200);
    await s.stop();
    const file = JSON.parse(await readFile(join(dir.path, 'state', originFileName(ORIGIN)), 'utf8')) as Record<string, unknown>;
    assert.equal(file.type, 'cage-notary-state/v1');
    assert.equal(file.size, 12);
    assert.equal(file.note, log.checkpoint(12));
  });

  it('cosigns only after every step of the durable write (temp, fsync, rename, dir fsync)', async () => {
    const events: string[] = [];
    const recording: NoteSigner = { ...notary.cosigner, sign: (t: Uint8Array) => (events.push('sign'), notary.cosigner.sign(t)) };
    const s = await startServer(dir.path, { step: (st) => void events.push(st), cosigner: recording });
    assert.equal((await s.server.addCheckpoint(log.body(0, 4))).status, 200);
    assert.deepEqual(events, [...STEPS, 'sign']);
    // Re-cosigning the recorded checkpoint writes nothing.
    events.length = 0;
    assert.equal((await s.server.addCheckpoint(log.body(4, 4))).status, 200);
    assert.deepEqual(events, ['sign']);
    await s.stop();
  });

  for (const [i, step] of STEPS.entries()) {
    it(`a crash before "${step}" never lets the notary cosign a rollback or a fork after restarting`, async () => {
      let s = await startServer(dir.path, {
        step: (st) => {
          if (armed && st === step) throw new Error(`simulated crash before ${st}`);
        },
      });
      let armed = false;
      const cosigned: number[] = [];
      const send = async (body: string): Promise<WitnessResponse> => {
        const r = await s.server.addCheckpoint(body);
        if (r.status === 200) cosigned.push(Number(body.slice(body.indexOf('\n\n') + 2).split('\n')[1]));
        return r;
      };
      assert.equal((await send(log.body(0, 4))).status, 200);
      armed = true;
      const r = await send(log.body(4, 8));
      assert.equal(r.status, 503, 'no cosignature when the state is not durable');
      assert.equal(JSON.parse(r.body).error.code, 'NOTARY_STORE_IO');
      // The failed store refuses every later write in this process (its page cache is suspect).
      armed = false;
      assert.equal((await send(log.body(4, 6))).status, 503);
      assert.equal(s.store.failure?.code, 'NOTARY_STORE_IO');
      await s.server.close();
      s.store.abandon(); // "crash": the lock file stays behind; the restart takes it over
      await writeFile(join(dir.path, 'tmp', `.${originFileName(ORIGIN)}.99.1.tmp`), '{"half":'); // as a real crash leaves it

      s = await startServer(dir.path);
      const recovered = s.store.get(ORIGIN)!.size;
      assert.equal(recovered, i < STEPS.indexOf('fsync-dir') ? 4 : 8, 'old state before the rename, new after it');
      assert.deepEqual(await readdir(join(dir.path, 'tmp')), [], 'temp files of the crash are gone');
      // Nothing smaller than what was cosigned, nor a fork of it, is ever cosigned after the restart.
      const forked = new TestLog(ORIGIN, 1, 'rewritten ');
      for (const body of [log.body(0, 2), formatAddCheckpointBody(recovered, [], log.checkpoint(2)), formatAddCheckpointBody(recovered, [], forked.checkpoint(recovered)), formatAddCheckpointBody(0, [], forked.checkpoint(4))]) {
        assert.notEqual((await send(body)).status, 200);
      }
      assert.ok(Math.max(...cosigned) <= s.store.get(ORIGIN)!.size);
      // And it goes on from where it is.
      assert.equal((await send(log.body(recovered, 10))).status, 200);
      await s.stop();
    });
  }

  it('refuses to start on a damaged state file, or one its log key does not sign, rather than forget', async () => {
    let s = await startServer(dir.path);
    await s.server.addCheckpoint(log.body(0, 5));
    await s.stop();
    const path = join(dir.path, 'state', originFileName(ORIGIN));
    const good = await readFile(path, 'utf8');
    await writeFile(path, good.slice(0, good.length / 2));
    await assert.rejects(() => NotaryStore.open(dir.path), isCode('NOTARY_STORE_CORRUPT'));
    // A state whose size was edited no longer matches its signed note.
    await writeFile(path, good.replace('"size": 5', '"size": 50'));
    const store = await NotaryStore.open(dir.path);
    assert.throws(() => store.verify(logs), isCode('NOTARY_STORE_CORRUPT'));
    await store.close();
    await writeFile(path, good);
    s = await startServer(dir.path);
    assert.equal(s.store.get(ORIGIN)!.size, 5);
    await s.stop();
  });

  it('one live process per data directory (NOTARY_STORE_LOCKED); a dead holder\'s lock is taken over', async () => {
    const a = await NotaryStore.open(dir.path);
    await assert.rejects(() => NotaryStore.open(dir.path), isCode('NOTARY_STORE_LOCKED'));
    await a.close();
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    await writeFile(join(dir.path, 'lock'), `${dead.stdout}\n`);
    const b = await NotaryStore.open(dir.path);
    assert.equal((await readFile(join(dir.path, 'lock'), 'utf8')).trim(), String(process.pid));
    await b.close();
  });

  it('writes evidence files with both signed checkpoints, once per distinct request, up to the cap', async () => {
    const s = await startServer(dir.path, { maxEvidenceFiles: 2 });
    await s.server.addCheckpoint(log.body(0, 10));
    const forked = new TestLog(ORIGIN, 1, 'rewritten ');
    const forkBody = formatAddCheckpointBody(10, [], forked.checkpoint(10));
    const r = await s.server.addCheckpoint(forkBody);
    assert.equal(r.status, 409);
    assert.equal(JSON.parse(r.body).error.code, 'NOTARY_FORK');
    await s.server.addCheckpoint(forkBody); // the same request again: no second file
    let files = await s.store.listEvidence();
    assert.equal(files.length, 1);
    const ev = JSON.parse(await readFile(files[0]!, 'utf8')) as EvidenceFile;
    assert.equal(ev.type, 'cage-notary-evidence/v1');
    assert.equal(ev.kind, 'fork');
    assert.equal(ev.time, 1_700_000_123);
    assert.equal(ev.recorded.note, log.checkpoint(10));
    assert.equal(ev.recorded.size, 10);
    assert.equal(ev.submitted.note, forked.checkpoint(10));
    assert.equal(ev.submitted.body, forkBody);
    // A bad proof and a rollback are kept too, until the cap.
    const bad = log.proof(10, 15);
    bad[0] = Buffer.alloc(32, 9);
    assert.equal((await s.server.addCheckpoint(formatAddCheckpointBody(10, bad, log.checkpoint(15)))).status, 422);
    assert.equal((await s.server.addCheckpoint(log.body(0, 3))).status, 409);
    files = await s.store.listEvidence();
    assert.equal(files.length, 2);
    assert.deepEqual((await Promise.all(files.map(async (f) => (JSON.parse(await readFile(f, 'utf8')) as EvidenceFile).kind))).sort(), ['bad-proof', 'fork']);
    await s.stop();
  });
});
