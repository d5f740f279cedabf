/**
 * `cage notary init|serve` as real processes: three notaries, quorum 2, driven by the coordinator
 * over HTTP; SIGTERM stops one cleanly (quorum kept), a second (quorum lost, reported), restarting
 * them recovers. Also: key files, flag errors, the DID document, hostile bodies, fork evidence.
 */
import { strict as assert } from 'node:assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateSigner, parseSignerKey } from '../../audit/note.js';
import { WitnessCoordinator } from '../../notary/checkpointer.js';
import { NotaryRegistry, registerNotary } from '../../notary/registry.js';
import { formatAddCheckpointBody } from '../../notary/witness.js';
import { tempDir, TestLog } from './helpers.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const BIN = ['--import', 'tsx', 'test/notary/bin/notary.ts'];

interface Proc {
  child: ChildProcess;
  stdout: string;
  stderr: string;
  exited: Promise<number | null>;
}

function spawnNotary(args: string[]): Proc {
  const child = spawn(process.execPath, [...BIN, ...args], { cwd: REPO, env: { ...process.env, NODE_OPTIONS: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
  const p: Proc = { child, stdout: '', stderr: '', exited: new Promise((resolve) => child.once('exit', (code) => resolve(code))) };
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (p.stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (p.stderr += d));
  return p;
}

async function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = spawnNotary(args);
  const code = await p.exited;
  await new Promise((r) => setImmediate(r));
  return { code, stdout: p.stdout, stderr: p.stderr };
}

/** Waits for the listening line (the process's own output is the signal, not a timer). */
function listening(p: Proc): Promise<string> {
  return new Promise((resolve, reject) => {
    const check = () => {
      const m = /cage notary: listening on (http:\/\/[^\s]+) as /.exec(p.stderr);
      if (m !== null) {
        p.child.stderr!.off('data', check);
        resolve(m[1]!);
      }
    };
    p.child.stderr!.on('data', check);
    void p.exited.then((code) => reject(new Error(`notary exited (${code}) before listening: ${p.stderr}`)));
    check();
  });
}

describe('cage notary (processes)', function () {
  this.timeout(120_000);
  const log = new TestLog();
  let root: Awaited<ReturnType<typeof tempDir>>;
  const procs: Proc[] = [];

  before(async () => (root = await tempDir()));
  after(async () => {
    for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    await Promise.all(procs.map((p) => p.exited));
    await root.remove();
  });

  it('init writes a 0600 key file named by its did:key and prints the DID and verifier key; never overwrites', async () => {
    const key = join(root.path, 'k0.key');
    const r = await run(['init', '--out', key]);
    assert.equal(r.code, 0, r.stderr);
    const [didLine, vkeyLine] = r.stdout.trim().split('\n');
    const did = /^did {3}(did:key:z6Mk\S+)$/.exec(didLine!)![1]!;
    const vkey = /^vkey {2}(\S+)$/.exec(vkeyLine!)![1]!;
    assert.ok(vkey.startsWith(`${did}+`));
    assert.equal((await stat(key)).mode & 0o777, 0o600);
    const signer = parseSignerKey((await readFile(key, 'utf8')).trim());
    assert.equal(signer.name, did);
    const again = await run(['init', '--out', key]);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /CLI_BAD_ARGS/);
    const web = await run(['init', '--out', join(root.path, 'web.key'), '--did-web', 'did:web:notary.example']);
    assert.equal(web.code, 0, web.stderr);
    assert.match(web.stdout, /^did {3}did:web:notary\.example$/m);
  });

  it('serve refuses bad flags and keys that are not named by a DID (exit 2)', async () => {
    const plain = join(root.path, 'plain.key');
    await writeFile(plain, generateSigner('witness.example/w1', Buffer.alloc(32, 5)).signerKey + '\n');
    const cases = [
      ['serve', '--key', join(root.path, 'k0.key'), '--data-dir', join(root.path, 'x')],
      ['serve', '--key', plain, '--data-dir', join(root.path, 'x'), '--log', log.verifier.verifierKey],
      ['serve', '--key', join(root.path, 'k0.key'), '--data-dir', join(root.path, 'x'), '--log', 'not-a-key'],
      ['serve', '--bogus'],
      ['frobnicate'],
    ];
    for (const args of cases) {
      const r = await run(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /^cage: CLI_BAD_ARGS: /m);
    }
  });

  it('three notary processes, quorum 2: SIGTERM one (kept), two (lost, reported), restart (recovers)', async () => {
    const keys: string[] = [];
    for (let i = 1; i <= 3; i++) {
      keys.push(join(root.path, `n${i}.key`));
      assert.equal((await run(['init', '--out', keys[i - 1]!])).code, 0);
    }
    const dids = keys.map((k, i) => ({ i, key: k }));
    const start = async (i: number) => {
      const p = spawnNotary(['serve', '--key', keys[i]!, '--data-dir', join(root.path, `d${i}`), '--log', log.verifier.verifierKey, '--listen', '127.0.0.1:0']);
      procs.push(p);
      return { p, url: await listening(p) };
    };
    const running = await Promise.all(dids.map(({ i }) => start(i)));
    let reg = NotaryRegistry.empty();
    for (const [i, k] of keys.entries()) {
      const did = parseSignerKey((await readFile(k, 'utf8')).trim()).name;
      reg = await registerNotary(reg, { did, url: running[i]!.url, name: `n${i}` });
    }
    reg = reg.withQuorum(2);
    let current = reg;
    const c = new WitnessCoordinator({ logVerifier: log.verifier, consistency: (a, b) => log.proof(a, b), registry: () => current, retry: { attempts: 2, baseDelayMs: 5, maxDelayMs: 10 } });

    // Its DID document, health, and hostile bodies.
    const doc = (await (await fetch(`${running[0]!.url}/.well-known/did.json`)).json()) as { id: string; verificationMethod: { type: string }[] };
    assert.equal(doc.id, reg.notaries[0]!.did);
    assert.equal(doc.verificationMethod[0]!.type, 'Ed25519VerificationKey2020');
    assert.equal((await fetch(`${running[0]!.url}/healthz`)).status, 200);
    for (const body of ['', 'old x\n\n', 'old 0\n\n\u2014 junk\n', '\u0000'.repeat(100)]) {
      assert.equal((await fetch(`${running[0]!.url}/add-checkpoint`, { method: 'POST', body })).status, 400);
    }

    let r = await c.witness(log.checkpoint(8));
    assert.deepEqual([r.quorumMet, r.cosigners.length], [true, 3]);

    // A fork sent to notary 0 is refused and kept as evidence.
    const fork = await fetch(`${running[0]!.url}/add-checkpoint`, { method: 'POST', body: formatAddCheckpointBody(8, [], new TestLog(log.origin, 1, 'evil ').checkpoint(8)) });
    assert.equal(fork.status, 409);
    assert.equal(((await fork.json()) as { error: { code: string } }).error.code, 'NOTARY_FORK');
    assert.equal((await readdir(join(root.path, 'd0', 'evidence'))).filter((f) => f.includes('-fork-')).length, 1);

    // A second process on the same data directory is refused.
    const twin = await run(['serve', '--key', keys[0]!, '--data-dir', join(root.path, 'd0'), '--log', log.verifier.verifierKey, '--listen', '127.0.0.1:0']);
    assert.equal(twin.code, 1);
    assert.match(twin.stderr, /NOTARY_STORE_LOCKED/);

    running[2]!.p.child.kill('SIGTERM');
    assert.equal(await running[2]!.p.exited, 0);
    assert.match(running[2]!.p.stderr, /SIGTERM: stopping[\s\S]*stopped/);
    r = await c.witness(log.checkpoint(20));
    assert.deepEqual([r.quorumMet, r.outcomes[2]!.status, r.outcomes[2]!.code], [true, 'failed', 'NOTARY_UNREACHABLE']);

    running[1]!.p.child.kill('SIGTERM');
    assert.equal(await running[1]!.p.exited, 0);
    r = await c.witness(log.checkpoint(26));
    assert.deepEqual([r.quorumMet, r.cosigners.length], [false, 1]);
    assert.equal(c.metrics().quorumLagEntries, 6);

    const again = await Promise.all([start(1), start(2)]);
    current = reg.update(reg.notaries[1]!.did, { url: again[0]!.url }).update(reg.notaries[2]!.did, { url: again[1]!.url });
    r = await c.witness(log.checkpoint(33));
    assert.deepEqual([r.quorumMet, r.cosigners.length], [true, 3]);
    assert.equal(c.metrics().quorumLagEntries, 0);
    // The restarted notaries kept their state: a rollback to 20 is refused by all.
    for (const u of [running[0]!.url, again[0]!.url, again[1]!.url]) {
      const res = await fetch(`${u}/add-checkpoint`, { method: 'POST', body: formatAddCheckpointBody(33, [], log.checkpoint(20)) });
      assert.equal(res.status, 400);
    }
    for (const x of [running[0]!, ...again]) x.p.child.kill('SIGTERM');
    assert.deepEqual(await Promise.all([running[0]!.p.exited, again[0]!.p.exited, again[1]!.p.exited]), [0, 0, 0]);
  });
});
