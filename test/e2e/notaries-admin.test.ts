/**
 * The notary registry's admin API end to end (GET/POST /api/v1/notaries, GET/DELETE
 * /api/v1/notaries/{did}, PUT /api/v1/notaries/quorum, GET /api/v1/notaries/policy): the code of
 * every refusal, the token, strict JSON, and that every change — refused ones too — is an audit
 * record with route "(admin)", its method, path, status, error code and the request body's digest.
 * The registry survives a restart, and with notaries registered but unreachable nothing is
 * published, not even the final checkpoint at shutdown. The notaries here are DIDs only (no
 * process answers at their URLs): the registry resolves did:key offline.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parsePolicy } from '../../audit/policy.js';
import { Cage } from '../../gateway/cage.js';
import { buildConfig } from '../../gateway/config/load.js';
import { baseConfig, tempDir, waitFor } from '../helpers/e2e.js';
import { recordAt, sha256hex, type RecordJson } from '../helpers/audit.js';
import { adminCall, witnessedAuditInfo } from '../helpers/notary.js';
import { closedPort, errorCode, Fixtures, type Reply } from '../helpers/servers.js';
import { testNotary } from '../notary/helpers.js';

const ORIGIN = 'example.test/e2e-notaries-admin';
const OTHER_KEYS = JSON.parse(readFileSync(new URL('../vectors/did-key/other-keys.json', import.meta.url), 'utf8')) as { notEd25519: string[] };
/** X25519 (multicodec 0xec) and P-256 (0x1200) did:keys from the W3C CCG test vectors. */
const X25519_DID = OTHER_KEYS.notEd25519.find((d) => d.startsWith('did:key:z6LS'))!;
const P256_DID = OTHER_KEYS.notEd25519.find((d) => d.startsWith('did:key:zDn'))!;

const N1 = testNotary(11);
const N2 = testNotary(12);
const N3 = testNotary(13);

async function startCage(dir: string, fx: Fixtures): Promise<Cage> {
  const cage = await Cage.start({ config: buildConfig(baseConfig(dir, [{ name: 'app', upstreams: ['http://127.0.0.1:9'] }], { audit: { origin: ORIGIN, checkpoint_interval: '100ms' } })) });
  fx.add(() => cage.shutdown(1000));
  return cage;
}

interface Change {
  reply: Reply;
  record: RecordJson;
}

/**
 * Sends one registry call and returns the answer and the audit record it made: the log must have
 * grown by exactly one record (nothing else writes to this cage's log).
 */
async function change(cage: Cage, method: string, path: string, body: string | object = ''): Promise<Change> {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  const before = (await witnessedAuditInfo(cage.adminPort)).size;
  const reply = await adminCall(cage.adminPort, method, path, text === '' ? undefined : text);
  const after = (await witnessedAuditInfo(cage.adminPort)).size;
  assert.equal(after, before + 1, `${method} ${path} made one audit record`);
  const record = (await recordAt(cage.adminPort, before)).record;
  assert.equal(record.route, '(admin)');
  assert.equal(record.method, method);
  assert.equal(record.status, reply.status);
  assert.equal(record.requestBodyDigest, sha256hex(text), 'the record holds the digest of the change as sent');
  assert.equal(record.requestBodyLength, Buffer.byteLength(text));
  // A successful change's answer is recorded as sent; a refusal's record names its code (below).
  if (reply.status < 300) assert.equal(record.responseBodyDigest, sha256hex(reply.body), 'and of the answer');
  return { reply, record };
}

/** A refused change: its status and code in the answer, the same code in its audit record. */
async function refused(cage: Cage, method: string, path: string, body: string | object, status: number, code: string): Promise<Change> {
  const c = await change(cage, method, path, body);
  assert.equal(c.reply.status, status, `${method} ${path} ${JSON.stringify(body)}: ${c.reply.body.toString().slice(0, 300)}`);
  assert.equal(errorCode(c.reply), code);
  assert.equal(c.record.cageError, code);
  return c;
}

async function accepted(cage: Cage, method: string, path: string, body: string | object, status: number): Promise<{ quorum: number; notaries: { did: string; name: string; url: string; verifier_key: string }[] }> {
  const c = await change(cage, method, path, body);
  assert.equal(c.reply.status, status, `${method} ${path}: ${c.reply.body.toString().slice(0, 300)}`);
  assert.equal(c.record.cageError, undefined);
  assert.equal(c.record.path, path);
  return JSON.parse(c.reply.body.toString()) as { quorum: number; notaries: { did: string; name: string; url: string; verifier_key: string }[] };
}

async function registry(cage: Cage): Promise<{ quorum: number; notaries: { did: string; name: string; url: string; verifier_key: string }[] }> {
  const r = await adminCall(cage.adminPort, 'GET', '/api/v1/notaries');
  assert.equal(r.status, 200);
  return JSON.parse(r.body.toString()) as { quorum: number; notaries: { did: string; name: string; url: string; verifier_key: string }[] };
}

describe('e2e: notary registry admin API', function () {
  this.timeout(60_000);
  const fx = new Fixtures();
  let cage: Cage;
  let deadUrl: string;

  before(async () => {
    cage = await startCage(tempDir(fx), fx);
    deadUrl = `http://127.0.0.1:${await closedPort()}`;
  });

  after(() => fx.closeAll());

  it('needs the admin token (401, nothing changed or recorded)', async () => {
    const size = (await witnessedAuditInfo(cage.adminPort)).size;
    const calls: [string, string, unknown][] = [
      ['GET', '/api/v1/notaries', undefined],
      ['POST', '/api/v1/notaries', { did: N1.did, url: deadUrl }],
      ['PUT', '/api/v1/notaries/quorum', { quorum: 1 }],
      ['GET', `/api/v1/notaries/${N1.did}`, undefined],
      ['DELETE', `/api/v1/notaries/${N1.did}`, undefined],
      ['GET', '/api/v1/notaries/policy', undefined],
    ];
    for (const [method, path, body] of calls) {
      for (const token of [null, 'y'.repeat(32)]) {
        const r = await adminCall(cage.adminPort, method, path, body, token);
        assert.equal(r.status, 401, `${method} ${path}`);
        assert.equal(errorCode(r), 'ADMIN_UNAUTHORIZED');
      }
    }
    assert.deepEqual(await registry(cage), { quorum: 0, notaries: [] });
    assert.equal((await witnessedAuditInfo(cage.adminPort)).size, size);
  });

  it('has no policy to export without notaries', async () => {
    const r = await adminCall(cage.adminPort, 'GET', '/api/v1/notaries/policy');
    assert.equal(r.status, 400);
    assert.equal(errorCode(r), 'NOTARY_BAD_QUORUM');
    const info = await witnessedAuditInfo(cage.adminPort);
    assert.deepEqual(
      [info.witnessing?.quorum, info.witnessing?.notaries, info.witnessing?.quorum_met, info.witnessing?.lag_records],
      [0, 0, null, 0],
    );
  });

  it('refuses malformed requests, bad DIDs and non-Ed25519 keys with their codes, and records each refusal', async () => {
    const path = '/api/v1/notaries';
    await refused(cage, 'POST', path, 'not json', 400, 'NOTARY_BAD_REGISTRY');
    await refused(cage, 'POST', path, '[1,2]', 400, 'NOTARY_BAD_REGISTRY');
    await refused(cage, 'POST', path, { did: N1.did, url: deadUrl, colour: 'red' }, 400, 'NOTARY_BAD_REGISTRY');
    await refused(cage, 'POST', path, { did: N1.did }, 400, 'NOTARY_BAD_REGISTRY');
    await refused(cage, 'POST', path, { did: N1.did, url: deadUrl, name: 7 }, 400, 'NOTARY_BAD_REGISTRY');
    await refused(cage, 'POST', path, { did: N1.did, url: 'ftp://notary.example' }, 400, 'NOTARY_BAD_REGISTRY');
    await refused(cage, 'POST', path, { did: N1.did, url: deadUrl, quorum: 1.5 }, 400, 'NOTARY_BAD_QUORUM');
    for (const did of ['not-a-did', 'did:example:123456', `${N1.did}#key-1`, 'did:key:z0OIl', 'did:web:127.0.0.1']) {
      await refused(cage, 'POST', path, { did, url: deadUrl }, 400, 'NOTARY_BAD_DID');
    }
    // A did:web whose document cannot be fetched (nothing listens at that host and port).
    const port = await closedPort();
    await refused(cage, 'POST', path, { did: `did:web:localhost%3A${port}`, url: deadUrl }, 502, 'NOTARY_DID_UNRESOLVABLE');
    // did:keys of X25519 and P-256 keys (W3C CCG vectors): not Ed25519.
    assert.ok(X25519_DID !== undefined && P256_DID !== undefined);
    for (const did of [X25519_DID, P256_DID]) await refused(cage, 'POST', path, { did, url: deadUrl }, 422, 'NOTARY_KEY_NOT_ED25519');
    assert.deepEqual(await registry(cage), { quorum: 0, notaries: [] }, 'no refused change touched the registry');
  });

  it('registers, shows, refuses duplicates and out-of-range quorums, sets the quorum, exports the policy and removes', async () => {
    let reg = await accepted(cage, 'POST', '/api/v1/notaries', { did: N1.did, url: `${deadUrl}/n1/`, name: 'n1' }, 201);
    assert.equal(reg.quorum, 1, 'the first notary makes the quorum 1');
    assert.deepEqual(reg.notaries, [{ did: N1.did, name: 'n1', url: `${deadUrl}/n1`, verifier_key: N1.verifier.verifierKey }]);

    await refused(cage, 'POST', '/api/v1/notaries', { did: N1.did, url: `${deadUrl}/other` }, 409, 'NOTARY_DUPLICATE');
    await refused(cage, 'POST', '/api/v1/notaries', { did: N2.did, url: deadUrl, name: 'n1' }, 409, 'NOTARY_DUPLICATE');
    await refused(cage, 'POST', '/api/v1/notaries', { did: N2.did, url: deadUrl, quorum: 3 }, 400, 'NOTARY_BAD_QUORUM');
    assert.equal((await registry(cage)).notaries.length, 1);

    reg = await accepted(cage, 'POST', '/api/v1/notaries', { did: N2.did, url: `${deadUrl}/n2`, name: 'n2', quorum: 2 }, 201);
    assert.equal(reg.quorum, 2);
    reg = await accepted(cage, 'POST', '/api/v1/notaries', { did: N3.did, url: `${deadUrl}/n3`, name: 'n3' }, 201);
    assert.deepEqual([reg.quorum, reg.notaries.map((n) => n.name)], [2, ['n1', 'n2', 'n3']], 'adding keeps k');

    const q = '/api/v1/notaries/quorum';
    for (const body of [{ quorum: 4 }, { quorum: 0 }, { quorum: -1 }, { quorum: '2' }, {}]) await refused(cage, 'PUT', q, body, 400, 'NOTARY_BAD_QUORUM');
    await refused(cage, 'PUT', q, { quorum: 2, extra: true }, 400, 'NOTARY_BAD_REGISTRY');
    await refused(cage, 'PUT', q, '{', 400, 'NOTARY_BAD_REGISTRY');
    assert.equal((await accepted(cage, 'PUT', q, { quorum: 3 }, 200)).quorum, 3);
    assert.equal((await accepted(cage, 'PUT', q, { quorum: 2 }, 200)).quorum, 2);

    // One notary by DID; an unknown DID is 404 (the refused DELETE is recorded too).
    const one = await adminCall(cage.adminPort, 'GET', `/api/v1/notaries/${N2.did}`);
    assert.equal(one.status, 200);
    const shown = JSON.parse(one.body.toString()) as { did: string; name: string; url: string; verifier_key: string; stats: unknown };
    assert.deepEqual([shown.did, shown.name, shown.url, shown.verifier_key], [N2.did, 'n2', `${deadUrl}/n2`, N2.verifier.verifierKey]);
    const stranger = testNotary(99).did;
    const unknown = await adminCall(cage.adminPort, 'GET', `/api/v1/notaries/${stranger}`);
    assert.equal(unknown.status, 404);
    assert.equal(errorCode(unknown), 'NOTARY_UNKNOWN_NOTARY');
    const del = await refused(cage, 'DELETE', `/api/v1/notaries/${stranger}`, '', 404, 'NOTARY_UNKNOWN_NOTARY');
    assert.equal(del.record.path, `/api/v1/notaries/${stranger}`);

    // The policy: this log, the three notaries with their URLs, a 2-of-3 group.
    const policy = await adminCall(cage.adminPort, 'GET', '/api/v1/notaries/policy');
    assert.equal(policy.status, 200);
    assert.match(String(policy.headers['content-type']), /^text\/plain/);
    const p = parsePolicy(policy.body.toString());
    assert.equal(p.logs[0]!.verifier.verifierKey, (await witnessedAuditInfo(cage.adminPort)).verifier_key);
    assert.deepEqual(
      p.witnesses.map((w) => [w.name, w.verifier.verifierKey, w.url]),
      [
        ['n1', N1.verifier.verifierKey, `${deadUrl}/n1`],
        ['n2', N2.verifier.verifierKey, `${deadUrl}/n2`],
        ['n3', N3.verifier.verifierKey, `${deadUrl}/n3`],
      ],
    );
    assert.deepEqual(
      p.groups.map((g) => [g.threshold, [...g.members]]),
      [[2, ['n1', 'n2', 'n3']]],
    );

    // Removing down to k = n is fine; below it the new quorum must come with the change.
    reg = await accepted(cage, 'DELETE', `/api/v1/notaries/${N3.did}`, '', 200);
    assert.deepEqual([reg.quorum, reg.notaries.length], [2, 2]);
    await refused(cage, 'DELETE', `/api/v1/notaries/${N2.did}`, '', 400, 'NOTARY_BAD_QUORUM');
    await refused(cage, 'DELETE', `/api/v1/notaries/${N2.did}?quorum=5`, '', 400, 'NOTARY_BAD_QUORUM');
    const lowered = await change(cage, 'DELETE', `/api/v1/notaries/${N2.did}?quorum=1`);
    assert.equal(lowered.reply.status, 200);
    assert.equal(lowered.record.path, `/api/v1/notaries/${N2.did}?quorum=1`, 'the record names the new quorum the change set');
    assert.deepEqual(await registry(cage), { quorum: 1, notaries: [{ did: N1.did, name: 'n1', url: `${deadUrl}/n1`, verifier_key: N1.verifier.verifierKey }] });

    // Other methods are refused before any change (and are not records).
    const size = (await witnessedAuditInfo(cage.adminPort)).size;
    const patch = await adminCall(cage.adminPort, 'PATCH', '/api/v1/notaries', { quorum: 1 });
    assert.equal(patch.status, 405);
    assert.equal(errorCode(patch), 'ADMIN_METHOD_NOT_ALLOWED');
    assert.equal((await witnessedAuditInfo(cage.adminPort)).size, size);
  });
});

describe('e2e: notary registry across a restart', function () {
  this.timeout(60_000);
  const fx = new Fixtures();
  after(() => fx.closeAll());

  it('keeps the registry; with the notaries unreachable nothing more is published, not even at shutdown', async () => {
    const dir = tempDir(fx);
    const deadUrl = `http://127.0.0.1:${await closedPort()}`;
    let cage = await startCage(dir, fx);
    // A first record, published with the log's own signature (no notaries yet).
    const first = await refused(cage, 'PUT', '/api/v1/notaries/quorum', { quorum: 1 }, 400, 'NOTARY_BAD_QUORUM');
    assert.equal(first.record.path, '/api/v1/notaries/quorum');
    const published = await waitFor(async () => {
      const cp = (await witnessedAuditInfo(cage.adminPort)).checkpoint;
      return cp !== null && cp.size === 1 ? cp : undefined;
    }, 'the first record published');

    await accepted(cage, 'POST', '/api/v1/notaries', { did: N1.did, url: `${deadUrl}/n1`, name: 'n1' }, 201);
    await accepted(cage, 'POST', '/api/v1/notaries', { did: N2.did, url: `${deadUrl}/n2`, name: 'n2', quorum: 2 }, 201);
    const before = await registry(cage);
    const policy = (await adminCall(cage.adminPort, 'GET', '/api/v1/notaries/policy')).body.toString();
    const stuck = await waitFor(async () => {
      const info = await witnessedAuditInfo(cage.adminPort);
      return info.witnessing?.quorum_met === false && info.signed_size === 3 ? info : undefined;
    }, 'a witness round that failed for lack of notaries');
    assert.deepEqual(stuck.checkpoint, published, 'nothing published without the quorum');
    assert.equal(stuck.witnessing!.lag_records, 2);

    await cage.shutdown(1000);
    const file = JSON.parse(readFileSync(join(dir, 'notaries.json'), 'utf8')) as { type: string; quorum: number; notaries: unknown[] };
    assert.deepEqual([file.type, file.quorum, file.notaries.length], ['cage-notary-registry/v1', 2, 2]);

    cage = await startCage(dir, fx);
    assert.deepEqual(await registry(cage), before);
    assert.equal((await adminCall(cage.adminPort, 'GET', '/api/v1/notaries/policy')).body.toString(), policy, 'same log key, same notaries, same policy');
    const info = await witnessedAuditInfo(cage.adminPort);
    assert.deepEqual(info.checkpoint, published, 'the shutdown did not publish an uncosigned checkpoint');
    assert.equal(info.size, 3);
    // Witnessing resumes after the restart (and still cannot meet the quorum).
    await waitFor(async () => {
      const w = (await witnessedAuditInfo(cage.adminPort)).witnessing!;
      return w.quorum_met === false && w.lag_records === 2;
    }, 'the restarted cage witnessing again');
    // Changes go on from the reloaded registry.
    const reg = await accepted(cage, 'DELETE', `/api/v1/notaries/${N1.did}?quorum=1`, '', 200);
    assert.deepEqual([reg.quorum, reg.notaries.map((n) => n.did)], [1, [N2.did]]);
  });
});
