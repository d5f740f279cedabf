import { strict as assert } from 'node:assert';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isCageError, type CageErrorCode } from '../../core/errors.js';
import { generateSigner, signNote, parseNote } from '../../audit/note.js';
import { parsePolicy, verifyCheckpointPolicy } from '../../audit/policy.js';
import { buildDidDocument, type FetchLike } from '../../notary/did.js';
import { loadRegistry, NotaryRegistry, parseRegistry, POLICY_GROUP, registerNotary, saveRegistry } from '../../notary/registry.js';
import { MemoryWitness, KnownLogs } from '../../notary/witness.js';
import { tempDir, TestLog, testNotary } from './helpers.js';

const log = new TestLog();
const [n1, n2, n3] = [testNotary(21), testNotary(22), testNotary(23)];
const entry = (n: typeof n1, i: number) => ({ did: n.did, url: `http://127.0.0.1:${7000 + i}`, name: `w${i}`, verifierKey: n.verifier.verifierKey });

async function expectCode(code: CageErrorCode, fn: () => unknown): Promise<void> {
  try {
    await fn();
  } catch (err) {
    assert.ok(isCageError(err), String(err));
    assert.equal(err.code, code, err.message);
    return;
  }
  assert.fail(`accepted; wanted ${code}`);
}

/** The log's checkpoint cosigned by the given notaries (through real witnesses). */
function cosigned(size: number, notaries: (typeof n1)[]): string {
  let note = log.checkpoint(size);
  for (const n of notaries) {
    const w = new MemoryWitness(new KnownLogs([log.verifier]), n.cosigner);
    const r = w.addCheckpoint(log.body(0, size));
    assert.equal(r.status, 200);
    note += r.body;
  }
  return note;
}

describe('notary/registry', () => {
  it('validates quorum k of n: 1 ≤ k ≤ n, 0 with no notaries', async () => {
    assert.equal(NotaryRegistry.empty().quorum, 0);
    let r = NotaryRegistry.empty().add(entry(n1, 1));
    assert.equal(r.quorum, 1);
    r = r.add(entry(n2, 2)).add(entry(n3, 3), { quorum: 2 });
    assert.deepEqual([r.notaries.length, r.quorum], [3, 2]);
    await expectCode('NOTARY_BAD_QUORUM', () => r.withQuorum(4));
    await expectCode('NOTARY_BAD_QUORUM', () => r.withQuorum(0));
    await expectCode('NOTARY_BAD_QUORUM', () => r.withQuorum(1.5));
    await expectCode('NOTARY_BAD_QUORUM', () => NotaryRegistry.create({ quorum: 1 }));
    // Removing below k needs the new quorum in the same change; the last removal goes to 0.
    const r3 = r.withQuorum(3);
    await expectCode('NOTARY_BAD_QUORUM', () => r3.remove(n1.did));
    assert.equal(r3.remove(n1.did, { quorum: 2 }).quorum, 2);
    assert.equal(r.remove(n1.did).remove(n2.did, { quorum: 1 }).remove(n3.did).quorum, 0);
    await expectCode('NOTARY_UNKNOWN_NOTARY', () => r.remove('did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp'));
    // Values are immutable: r did not change.
    assert.deepEqual([r.notaries.length, r.quorum], [3, 2]);
  });

  it('refuses duplicates, bad URLs and names, and keys that are not the DID\'s', async () => {
    const r = NotaryRegistry.empty().add(entry(n1, 1));
    await expectCode('NOTARY_DUPLICATE', () => r.add(entry(n1, 2)));
    await expectCode('NOTARY_DUPLICATE', () => r.add({ ...entry(n2, 2), name: 'w1' }));
    await expectCode('NOTARY_BAD_REGISTRY', () => r.add({ ...entry(n2, 2), url: 'ftp://x' }));
    await expectCode('NOTARY_BAD_REGISTRY', () => r.add({ ...entry(n2, 2), url: 'http://u:p@x' }));
    await expectCode('NOTARY_BAD_REGISTRY', () => r.add({ ...entry(n2, 2), url: 'http://x/?q' }));
    await expectCode('NOTARY_BAD_REGISTRY', () => r.add({ ...entry(n2, 2), name: 'has space' }));
    await expectCode('NOTARY_BAD_REGISTRY', () => r.add({ ...entry(n2, 2), name: 'none' }));
    await expectCode('NOTARY_BAD_REGISTRY', () => r.add({ ...entry(n2, 2), name: POLICY_GROUP }));
    await expectCode('NOTARY_BAD_REGISTRY', () => r.add({ ...entry(n2, 2), verifierKey: n3.verifier.verifierKey }));
    await expectCode('NOTARY_BAD_REGISTRY', () => r.add({ ...entry(n2, 2), verifierKey: generateSigner(n2.did, Buffer.alloc(32, 22)).verifierKey })); // type 0x01
    await expectCode('NOTARY_BAD_DID', () => r.add({ ...entry(n2, 2), did: 'did:example:1' }));
    assert.equal(r.add({ ...entry(n2, 2), url: 'https://w2.example/witness/' }).get(n2.did)!.url, 'https://w2.example/witness');
  });

  it('registers a notary by its DID: did:key offline, did:web through the injected fetch', async () => {
    let r = await registerNotary(NotaryRegistry.empty(), { did: n1.did, url: 'http://127.0.0.1:7001' });
    assert.equal(r.get(n1.did)!.verifierKey, n1.verifier.verifierKey);
    assert.equal(r.get(n1.did)!.name, n1.did);
    const web = 'did:web:witness.example';
    const webKey = testNotary(24).publicKey;
    const fetch: FetchLike = async (url) =>
      url === 'https://witness.example/.well-known/did.json' ? new Response(JSON.stringify(buildDidDocument(web, webKey))) : new Response('', { status: 404 });
    r = await registerNotary(r, { did: web, url: 'https://witness.example', name: 'web1' }, { resolve: { fetch }, quorum: 2 });
    assert.deepEqual([r.notaries.length, r.quorum], [2, 2]);
    assert.ok(r.get(web)!.verifierKey.startsWith(`${web}+`));
    await expectCode('NOTARY_DID_UNRESOLVABLE', () => registerNotary(r, { did: 'did:web:gone.example', url: 'https://gone.example' }, { resolve: { fetch } }));
    await expectCode('NOTARY_KEY_NOT_ED25519', () => registerNotary(r, { did: 'did:key:zDnaerx9CtbPJ1q36T5Ln5wYt3MQYeGRG5ehnPAmxcf5mDZpv', url: 'http://x' }));
    await expectCode('NOTARY_BAD_DID', () => registerNotary(r, { did: 'did:key:nope', url: 'http://x' }));
    await expectCode('NOTARY_DUPLICATE', () => registerNotary(r, { did: n1.did, url: 'http://127.0.0.1:7009' }));
  });

  it('exports a C2SP tlog-policy: log, witnesses with URLs, a k-of-n group and the quorum', () => {
    const r = NotaryRegistry.create({ notaries: [entry(n1, 1), entry(n2, 2), entry(n3, 3)], quorum: 2 });
    const text = r.toPolicy(log.verifier.verifierKey, { logUrl: 'https://cage.example/audit' });
    assert.equal(
      text,
      `log ${log.verifier.verifierKey} https://cage.example/audit\n` +
        `witness w1 ${n1.verifier.verifierKey} http://127.0.0.1:7001\n` +
        `witness w2 ${n2.verifier.verifierKey} http://127.0.0.1:7002\n` +
        `witness w3 ${n3.verifier.verifierKey} http://127.0.0.1:7003\n` +
        `group ${POLICY_GROUP} 2 w1 w2 w3\n` +
        `quorum ${POLICY_GROUP}\n`,
    );
    const p = parsePolicy(text);
    assert.equal(p.witnesses.length, 3);
    assert.equal(NotaryRegistry.empty().toPolicy(log.verifier), `log ${log.verifier.verifierKey}\nquorum none\n`);
  });

  it('checkQuorum counts verified cosignatures of registered notaries only, as the policy verifier does', () => {
    const r = NotaryRegistry.create({ notaries: [entry(n1, 1), entry(n2, 2), entry(n3, 3)], quorum: 2 });
    const policy = r.policy(log.verifier);
    const one = cosigned(6, [n1]);
    assert.deepEqual(r.checkQuorum(one, log.verifier), { met: false, quorum: 2, cosigners: [n1.did] });
    assert.throws(() => verifyCheckpointPolicy(policy, one), (e) => isCageError(e, 'AUDIT_QUORUM_NOT_MET'));
    const stranger = testNotary(29);
    const withStranger = cosigned(6, [n1, stranger]);
    assert.equal(r.checkQuorum(withStranger, log.verifier).met, false);
    const two = cosigned(6, [n3, n1]);
    const c = r.checkQuorum(two, log.verifier);
    assert.deepEqual([c.met, [...c.cosigners].sort()], [true, [n1.did, n3.did].sort()]);
    assert.deepEqual([...verifyCheckpointPolicy(policy, two).witnesses].sort(), ['w1', 'w3']);
    // A registered notary's line that fails to verify rejects the note.
    const bad = parseNote(two);
    const forged = signNote(bad.text, [log.signer], [...bad.signatures.slice(1).map((s) => ({ ...s, base64: Buffer.concat([Buffer.from(s.base64, 'base64').subarray(0, 12), Buffer.alloc(64)]).toString('base64') }))]);
    assert.throws(() => r.checkQuorum(forged, log.verifier), (e) => isCageError(e, 'AUDIT_BAD_SIGNATURE'));
    // With no notaries the quorum is "none": any log-signed checkpoint meets it.
    assert.equal(NotaryRegistry.empty().checkQuorum(log.checkpoint(6), log.verifier).met, true);
  });

  it('persists to one JSON file durably and loads it back; a missing file is empty, a damaged one refused', async () => {
    const dir = await tempDir();
    try {
      const path = join(dir.path, 'notaries.json');
      assert.equal((await loadRegistry(path)).notaries.length, 0);
      const r = NotaryRegistry.create({ notaries: [entry(n1, 1), entry(n2, 2)], quorum: 2 });
      await saveRegistry(path, r);
      const back = await loadRegistry(path);
      assert.deepEqual(back.toJSON(), r.toJSON());
      const json = JSON.parse(await readFile(path, 'utf8')) as { type: string; notaries: { verifier_key: string }[] };
      assert.equal(json.type, 'cage-notary-registry/v1');
      assert.equal(json.notaries[0]!.verifier_key, n1.verifier.verifierKey);
      await writeFile(path, '{"type":"cage-notary-registry/v1","quorum":1,"notaries":[],"extra":1}');
      await assert.rejects(() => loadRegistry(path), (e) => isCageError(e, 'NOTARY_STORE_CORRUPT'));
      await writeFile(path, '{"type":');
      await assert.rejects(() => loadRegistry(path), (e) => isCageError(e, 'NOTARY_STORE_CORRUPT'));
      await expectCode('NOTARY_BAD_REGISTRY', () => parseRegistry({ ...r.toJSON(), notaries: [{ ...r.toJSON().notaries[0]!, verifier_key: n2.verifier.verifierKey }] }));
      await expectCode('NOTARY_BAD_QUORUM', () => parseRegistry({ ...r.toJSON(), quorum: 3 }));
      await expectCode('NOTARY_STORE_IO', () => saveRegistry(join(dir.path, 'no', 'such', 'dir', 'x.json'), r));
    } finally {
      await dir.remove();
    }
  });
});
