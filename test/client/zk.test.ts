/**
 * client/zk.ts and `cage zk`: what a caller's app does, end to end against the cage's own
 * verifiers (circuits/verifier.ts for proofs, gateway/identity/signatures.ts for the session's
 * RFC 9421 signatures), with real proofs. Group loading from a file and a URL; identity files.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { contentDigestOf } from '../../circuits/field.js';
import { Group } from '../../circuits/group.js';
import { Prover } from '../../circuits/prover.js';
import { ZkVerifier } from '../../circuits/verifier.js';
import { zkMain } from '../../cli/zk.js';
import { createIdentity, exportIdentity, importIdentity, loadGroup, openSession, proveAccess, type Identity } from '../../client/zk.js';
import { publicKeyFromDidKey } from '../../notary/did.js';
import { SignatureVerifier } from '../../gateway/identity/signatures.js';
import { expectCodeAsync } from '../circuits/helpers.js';

const NOW = 1_795_000_000_000;
const EPOCH_S = 3600;
const EPOCH = Math.floor(NOW / 1000 / EPOCH_S);

describe('client/zk (real proofs)', function () {
  this.timeout(120_000);
  let alice: Identity;
  let bob: Identity;
  let group: Group;
  let prover: Prover;
  let zk: ZkVerifier;
  let dir: string;
  const ctx = () => ({ scope: 'api', epoch: EPOCH, groups: (id: string) => (id === 'staff' ? group : undefined) });

  before(async () => {
    [alice, bob] = [await createIdentity(), await createIdentity()];
    group = await Group.create('staff');
    group.addMany([alice.commitment, bob.commitment, 99n]);
    prover = await Prover.create();
    zk = await ZkVerifier.create({ pool: { size: 1 } });
    dir = mkdtempSync(join(tmpdir(), 'cage-zk-'));
  });

  after(async () => {
    await zk?.close();
    await prover?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('proveAccess: the cage accepts the header for that request only', async () => {
    const url = 'https://cage.example/v1/orders?id=7';
    const body = '{"qty":2}';
    const p = await proveAccess({ identity: alice, group, scope: 'api', request: { method: 'post', url, body }, now: () => NOW, prover });
    assert.equal(p.headerName, 'cage-zk-proof');
    assert.equal(p.epoch, EPOCH);
    const facts = { method: 'POST', target: '/v1/orders?id=7', contentDigest: contentDigestOf(body), now: NOW + 2000 };
    const v = await zk.verifyRequestProof(p.header, facts, ctx());
    assert.equal(v.nullifier, p.nullifier);
    await expectCodeAsync(zk.verifyRequestProof(p.header, { ...facts, contentDigest: contentDigestOf('{"qty":3}') }, ctx()), 'ZK_WRONG_SIGNAL');
  });

  it('openSession: one proof for a fresh key, then RFC 9421 signatures the cage verifies', async () => {
    const s = await openSession({ identity: bob, group, scope: 'api', now: () => NOW, prover });
    assert.equal(s.epoch, EPOCH);
    assert.equal(s.expiresAt, (EPOCH + 1) * EPOCH_S);
    const v = await zk.verifySessionProof(s.header, ctx());
    assert.deepEqual(Buffer.from(v.sessionKey), Buffer.from(s.publicKey));
    assert.deepEqual(publicKeyFromDidKey(s.keyid), Buffer.from(s.publicKey));

    const sigs = new SignatureVerifier({ enabled: true, maxAgeS: 300, clockSkewS: 5, requireNonce: true, nonceCache: 100, maxBodyBytes: 1 << 20 }, () => Math.floor(NOW / 1000));
    const url = new URL('https://cage.example/v1/orders?id=8');
    const h = s.sign({ method: 'PUT', url, body: 'x=1' });
    const req = { method: 'PUT', scheme: 'https', authority: 'cage.example', target: '/v1/orders?id=8', headers: ['content-digest', h['content-digest']!] };
    const verified = sigs.verify(req, h['signature-input']!, h['signature']!, true);
    assert.equal(verified.did, s.keyid);
    SignatureVerifier.checkDigest(h['content-digest'], Buffer.from('x=1'));
    // the same signature on another target does not verify
    assert.throws(() => sigs.verify({ ...req, target: '/v1/orders?id=9' }, h['signature-input']!, h['signature']!, true));
    // a second session of the same member in the same epoch shows the same nullifier (the cage limits sessions on it)
    const again = await openSession({ identity: bob, group, scope: 'api', now: () => NOW, prover });
    assert.equal(again.nullifier, s.nullifier);
    assert.notEqual(again.keyid, s.keyid);
    assert.equal((await zk.verifySessionProof(again.header, ctx())).nullifier, v.nullifier);
  });

  it('refuses to prove for a non-member (ZK_NOT_MEMBER)', async () => {
    const carol = await createIdentity();
    await expectCodeAsync(proveAccess({ identity: carol, group, scope: 'api', request: { method: 'GET', url: 'http://h/' }, prover }), 'ZK_NOT_MEMBER');
  });

  it('identity files round-trip and are checked', async () => {
    const file = exportIdentity(alice);
    assert.equal((await importIdentity(JSON.parse(JSON.stringify(file)))).commitment, alice.commitment);
    await expectCodeAsync(importIdentity({ ...file, commitment: String(bob.commitment) }), 'ZK_BAD_IDENTITY');
    await expectCodeAsync(importIdentity({ ...file, secret: '0' }), 'ZK_BAD_IDENTITY');
    await expectCodeAsync(importIdentity({ ...file, format: 'x' }), 'ZK_BAD_IDENTITY');
    await expectCodeAsync(importIdentity(null), 'ZK_BAD_IDENTITY');
  });

  it('loadGroup reads a file or a URL, and refuses bad exports (ZK_BAD_GROUP)', async () => {
    const path = join(dir, 'group.json');
    writeFileSync(path, JSON.stringify(group.toJSON()));
    assert.equal((await loadGroup(path)).root, group.root);
    const server: Server = createServer((req, res) => {
      if (req.url === '/group') res.end(JSON.stringify(group.toJSON()));
      else if (req.url === '/junk') res.end('{not json');
      else res.writeHead(404).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      assert.equal((await loadGroup(`${base}/group`)).root, group.root);
      await expectCodeAsync(loadGroup(`${base}/junk`), 'ZK_BAD_GROUP');
      await expectCodeAsync(loadGroup(`${base}/missing`), 'ZK_BAD_GROUP');
    } finally {
      await new Promise((r) => server.close(r));
    }
    await expectCodeAsync(loadGroup(join(dir, 'nope.json')), 'ZK_BAD_GROUP');
  });

  it('cage zk identity new / prove print what the cage accepts', async () => {
    const lines: string[] = [];
    const errs: string[] = [];
    const o = { out: (l: string) => lines.push(l), err: (l: string) => errs.push(l) };
    const idFile = join(dir, 'me.json');
    assert.equal(await zkMain(['identity', 'new', '--out', idFile], o), 0);
    assert.equal(await zkMain(['identity', 'new', '--out', idFile], o), 1); // never overwrites a secret
    assert.match(errs.pop()!, /^cage: ZK_BAD_IDENTITY:/);
    const me = await importIdentity(JSON.parse(readFileSync(idFile, 'utf8')));
    assert.equal(lines.pop(), `commitment: ${me.commitment}`);
    group.add(me.commitment);
    const groupFile = join(dir, 'group2.json');
    writeFileSync(groupFile, JSON.stringify(group.toJSON()));
    writeFileSync(join(dir, 'body'), 'hello');
    const args = ['prove', '--group', groupFile, '--identity', idFile, '--scope', 'api', '--request', 'POST https://cage.example/up', '--body', join(dir, 'body'), '--epoch', String(EPOCH)];
    assert.equal(await zkMain(args, o), 0, errs.join('\n'));
    const line = lines.pop()!;
    assert.match(line, /^cage-zk-proof: v=1;m=req;/);
    const header = line.slice('cage-zk-proof: '.length);
    const ts = Number(/;t=(\d+);/.exec(header)![1]);
    await zk.verifyRequestProof(header, { method: 'POST', target: '/up', contentDigest: contentDigestOf('hello'), now: ts * 1000 }, ctx());

    assert.equal(await zkMain(['prove', '--group', groupFile], o), 2);
    assert.match(errs.pop()!, /^cage: CLI_BAD_ARGS: zk prove: --request is required/);
    assert.equal(await zkMain(['prove', '--group', groupFile, '--identity', idFile, '--scope', 'api', '--request', 'GET /relative'], o), 2);
    assert.equal(await zkMain(['nope'], o), 2);
  });
});
