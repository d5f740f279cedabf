/**
 * Anonymous access through a real cage with real Groth16 proofs (issue 7): groups through the
 * admin API (durable, audited), require_zk routes in both modes (per-request proofs; sessions
 * opened by a proof, then RFC 9421 signatures by the session key), each refusal with its own
 * code, nullifier limits and replays surviving a restart, and audit records that hold the
 * nullifier and the root and nothing else about the member. About ten proofs, ~2 s each.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { rmSync } from 'node:fs';
import { BN254_BASE_FIELD } from '../../circuits/field.js';
import { Group, type GroupExport } from '../../circuits/group.js';
import { decodeZkHeader, encodeZkHeader } from '../../circuits/header.js';
import { Prover } from '../../circuits/prover.js';
import { signRequest } from '../../client/sign.js';
import { createIdentity, loadGroup, openSession, proveAccess, type Identity, type ZkSession } from '../../client/zk.js';
import { Cage } from '../../gateway/cage.js';
import { buildConfig } from '../../gateway/config/load.js';
import { admin, baseConfig, json, tempDir, waitFor } from '../helpers/e2e.js';
import { errorCode, Fixtures, request, startEchoUpstream, type Reply } from '../helpers/servers.js';

const EPOCH = '1000h'; // long epochs: the test never straddles a boundary
const EPOCH_SECONDS = 3_600_000;
const hex = (x: bigint): string => x.toString(16).padStart(64, '0');

interface AuditRecordJson {
  route: string;
  path: string;
  method: string;
  identity?: string;
  clientAddress: string;
  status: number;
}

describe('e2e: anonymous access (require_zk) with real proofs', function () {
  this.timeout(180_000);
  const fx = new Fixtures();
  let cage: Cage;
  let dir: string;
  let raw: Record<string, unknown>;
  let echo: Awaited<ReturnType<typeof startEchoUpstream>>;
  let prover: Prover;
  let member: Identity;
  let other: Identity;
  let group: Group;
  let session: ZkSession;
  let firstProof: string;
  let unusedProof: string;

  const url = (path: string): string => `http://127.0.0.1:${cage.port}${path}`;
  const prove = async (who: Identity, scope: string, method: string, path: string, body?: string, g: Group = group): Promise<string> =>
    (await proveAccess({ identity: who, group: g, scope, epochSeconds: EPOCH_SECONDS, prover, request: { method, url: url(path), body } })).header;
  const withProof = (header: string, path: string, method = 'GET', body?: string): Promise<Reply> => request(cage.port, { method, path, body, headers: { 'cage-zk-proof': header } });
  const signed = (s: ZkSession, path: string, method = 'GET', body?: string): Promise<Reply> => request(cage.port, { method, path, body, headers: s.sign({ method, url: url(path), body }) });
  const records = async (): Promise<AuditRecordJson[]> => {
    const size = json<{ size: number }>(await admin(cage, '/api/v1/audit')).size;
    const out: AuditRecordJson[] = [];
    for (let i = 0; i < size; i++) out.push(json<{ record: AuditRecordJson }>(await admin(cage, `/api/v1/audit/record/${i}`)).record);
    return out;
  };
  const adminJson = (path: string, method: string, body: unknown): Promise<Reply> => admin(cage, path, { method, body: JSON.stringify(body) });
  const startCage = async (): Promise<Cage> => Cage.start({ config: buildConfig(raw) });

  before(async () => {
    echo = await startEchoUpstream(fx);
    dir = tempDir();
    const up = `http://127.0.0.1:${echo.port}`;
    raw = baseConfig(dir, [
      { name: 'anon', match: { path: '/anon' }, upstreams: [up], require_zk: { group: 'staff', mode: 'any', limit: 2 } },
      { name: 'ses', match: { path: '/ses' }, upstreams: [up], require_zk: { group: 'staff', mode: 'session', limit: 1 } },
      { name: 'req', match: { path: '/req' }, upstreams: [up], require_zk: { group: 'staff', mode: 'request', scope: 'reqscope' } },
      { name: 'open', match: { path: '/' }, upstreams: [up] },
    ], { zk: { enabled: true, workers: 1, root_history: 4, epoch: EPOCH, window: '10m' } });
    cage = await startCage();
    prover = await Prover.create();
    [member, other] = await Promise.all([createIdentity(), createIdentity()]);
  });
  after(async () => {
    await prover?.close();
    await cage?.shutdown(1000);
    rmSync(dir, { recursive: true, force: true });
    await fx.closeAll();
  });

  it('creates a group through the admin API; the change is an audit record; the export is what a client proves from', async () => {
    const r = await adminJson('/api/v1/zk/groups', 'POST', { id: 'staff', members: [member.commitment.toString(), other.commitment.toString()] });
    assert.equal(r.status, 201, r.body.toString());
    assert.equal(json<{ members: number }>(r).members, 2);
    assert.equal(errorCode(await adminJson('/api/v1/zk/groups', 'POST', { id: 'staff' })), 'ZK_GROUP_EXISTS');
    assert.equal(errorCode(await adminJson('/api/v1/zk/groups', 'POST', { id: 'x', members: ['12abc'] })), 'ZK_BAD_GROUP');
    assert.equal(errorCode(await admin(cage, '/api/v1/zk/groups/nope')), 'ZK_GROUP_NOT_FOUND');
    const list = json<{ groups: { id: string; members: number }[] }>(await admin(cage, '/api/v1/zk/groups'));
    assert.deepEqual(list.groups.map((g) => [g.id, g.members]), [['staff', 2]]);
    const exp = json<GroupExport>(await admin(cage, '/api/v1/zk/groups/staff'));
    group = await loadGroup(exp);
    assert.ok(group.has(member.commitment));
    const roots = json<{ roots: { root: string }[] }>(await admin(cage, '/api/v1/zk/groups/staff/roots')).roots;
    assert.equal(roots[0]!.root, group.root.toString());
    const recs = await waitFor(async () => {
      const all = await records();
      return all.some((x) => x.route === '(admin)' && x.path === '/api/v1/zk/groups' && x.status === 201) ? all : undefined;
    }, 'the audit record of the group creation');
    assert.ok(recs.some((x) => x.route === '(admin)' && x.path === '/api/v1/zk/groups' && x.status === 409), 'refused changes are recorded too');
  });

  it('refuses a require_zk route without a proof (ZK_REQUIRED) or with a malformed header (ZK_BAD_HEADER); other routes are untouched', async () => {
    assert.equal(errorCode(await request(cage.port, { path: '/anon/x' })), 'ZK_REQUIRED');
    assert.equal((await request(cage.port, { path: '/anon/x' })).status, 401);
    assert.equal(errorCode(await withProof('v=1;m=req;g=staff', '/anon/x')), 'ZK_BAD_HEADER');
    assert.equal((await request(cage.port, { path: '/other' })).status, 200);
  });

  it('accepts a per-request proof: the app sees zk:<nullifier>, the audit record holds the nullifier and the root only', async () => {
    firstProof = await prove(member, 'anon', 'GET', '/anon/a');
    const r = await withProof(firstProof, '/anon/a');
    assert.equal(r.status, 200, r.body.toString());
    const h = decodeZkHeader(firstProof);
    assert.equal(echo.last!.headers['cage-identity-kind'], 'zk');
    assert.equal(echo.last!.headers['cage-identity'], `zk:${hex(h.nullifier)}`);
    // The app learns nothing about where the member is either.
    assert.equal(echo.last!.headers['x-forwarded-for'], 'unknown');
    assert.match(String(echo.last!.headers['forwarded']), /^for=unknown;/);
    const index = Number(/index=(\d+)/.exec(String(r.headers['cage-receipt']))![1]);
    const rec = await waitFor(async () => {
      const a = await admin(cage, `/api/v1/audit/record/${index}`);
      return a.status === 200 ? a.body.toString() : undefined;
    }, 'the record');
    const parsed = JSON.parse(rec) as { record: AuditRecordJson };
    assert.equal(parsed.record.identity, `zk:${hex(h.nullifier)};group=staff;root=${hex(group.root)};scope=anon;epoch=${h.epoch}`);
    assert.equal(parsed.record.clientAddress, '');
    for (const secret of [member.commitment.toString(), hex(member.commitment), member.secret.toString(), hex(member.secret)]) {
      assert.ok(!rec.includes(secret), `the record must not hold ${secret}`);
    }
  });

  it('refuses the same proof twice (ZK_REPLAY) and a per-request proof on a session-only route (ZK_WRONG_MODE)', async () => {
    const r = await withProof(firstProof, '/anon/a');
    assert.equal(r.status, 409);
    assert.equal(errorCode(r), 'ZK_REPLAY');
    assert.equal(errorCode(await withProof(firstProof, '/ses/a')), 'ZK_WRONG_MODE');
  });

  it('binds the body: a POST with its body passes; then the member is past its limit (429 ZK_NULLIFIER_LIMIT)', async () => {
    const body = '{"order":42}';
    const r = await withProof(await prove(member, 'anon', 'POST', '/anon/b', body), '/anon/b', 'POST', body);
    assert.equal(r.status, 200, r.body.toString());
    assert.equal(echo.last!.body, body);
    unusedProof = await prove(member, 'anon', 'GET', '/anon/c');
    const over = await withProof(unusedProof, '/anon/c');
    assert.equal(over.status, 429);
    assert.equal(errorCode(over), 'ZK_NULLIFIER_LIMIT');
  });

  it('refuses a proof for another request (ZK_WRONG_SIGNAL) or another scope (ZK_WRONG_SCOPE)', async () => {
    assert.equal(errorCode(await withProof(await prove(other, 'anon', 'GET', '/anon/x'), '/anon/y')), 'ZK_WRONG_SIGNAL');
    assert.equal(errorCode(await withProof(await prove(other, 'elsewhere', 'GET', '/anon/x'), '/anon/x')), 'ZK_WRONG_SCOPE');
    // a body other than the one proved
    const p = await prove(other, 'anon', 'POST', '/anon/x', 'one');
    assert.equal(errorCode(await withProof(p, '/anon/x', 'POST', 'two')), 'ZK_WRONG_SIGNAL');
  });

  it('refuses mutated proof bytes (ZK_BAD_PROOF) without counting them; the intact proof then passes', async () => {
    const good = await prove(other, 'anon', 'GET', '/anon/z');
    const h = decodeZkHeader(good);
    // -A is still a curve point, so only the pairing can tell
    const mutated = encodeZkHeader({ ...h, proof: { ...h.proof, a: [h.proof.a[0], BN254_BASE_FIELD - h.proof.a[1]] } });
    assert.notEqual(mutated, good);
    const bad = await withProof(mutated, '/anon/z');
    assert.equal(bad.status, 401);
    assert.equal(errorCode(bad), 'ZK_BAD_PROOF');
    assert.equal((await withProof(good, '/anon/z')).status, 200);
  });

  it('refuses a proof against a root the group never had (ZK_UNKNOWN_ROOT)', async () => {
    const forged = await Group.create('staff');
    forged.addMany([member.commitment, other.commitment, (await createIdentity()).commitment]);
    const p = await prove(other, 'reqscope', 'GET', '/req/x', undefined, forged);
    assert.equal(errorCode(await withProof(p, '/req/x')), 'ZK_UNKNOWN_ROOT');
  });

  it('opens a session with one proof; requests signed by the session key pass as the same zk identity', async () => {
    session = await openSession({ identity: member, group, scope: 'ses', epochSeconds: EPOCH_SECONDS, prover });
    const open = await request(cage.port, { path: '/ses/open', headers: { 'cage-zk-proof': session.header } });
    assert.equal(open.status, 200, open.body.toString());
    const id = `zk:${hex(session.nullifier)}`;
    assert.equal(echo.last!.headers['cage-identity'], id);
    for (const [method, body] of [['GET', undefined], ['POST', 'payload'], ['GET', undefined]] as const) {
      const r = await signed(session, '/ses/item', method, body);
      assert.equal(r.status, 200, r.body.toString());
      assert.equal(echo.last!.headers['cage-identity'], id);
      assert.equal(echo.last!.headers['cage-identity-kind'], 'zk');
    }
  });

  it('refuses the session proof twice, a second session past the limit, another key, and the session elsewhere', async () => {
    assert.equal(errorCode(await request(cage.port, { path: '/ses/open', headers: { 'cage-zk-proof': session.header } })), 'ZK_REPLAY');
    const second = await openSession({ identity: member, group, scope: 'ses', epochSeconds: EPOCH_SECONDS, prover });
    assert.equal(errorCode(await request(cage.port, { path: '/ses/open', headers: { 'cage-zk-proof': second.header } })), 'ZK_NULLIFIER_LIMIT');
    const { privateKey } = generateKeyPairSync('ed25519');
    const stranger = signRequest({ method: 'GET', url: url('/ses/item') }, privateKey).headers;
    assert.equal(errorCode(await request(cage.port, { path: '/ses/item', headers: stranger })), 'ZK_UNKNOWN_SESSION');
    assert.equal(errorCode(await signed(session, '/anon/item')), 'ZK_WRONG_SCOPE');
    assert.equal(errorCode(await signed(session, '/req/item')), 'ZK_WRONG_MODE');
    // a signature by the session key that does not verify never reaches the ZK stage
    const forged = session.sign({ method: 'GET', url: url('/ses/item') });
    assert.equal(errorCode(await request(cage.port, { path: '/ses/other', headers: forged })), 'IDENTITY_BAD_SIGNATURE');
  });

  it('keeps groups, nullifiers and sessions across a restart within the epoch', async () => {
    const before = json<GroupExport>(await admin(cage, '/api/v1/zk/groups/staff'));
    await cage.shutdown(1000);
    cage = await startCage();
    assert.deepEqual(json<GroupExport>(await admin(cage, '/api/v1/zk/groups/staff')), before);
    assert.equal(errorCode(await withProof(firstProof, '/anon/a')), 'ZK_REPLAY');
    assert.equal(errorCode(await withProof(unusedProof, '/anon/c')), 'ZK_NULLIFIER_LIMIT');
    const r = await signed(session, '/ses/after-restart');
    assert.equal(r.status, 200, r.body.toString());
    assert.equal(echo.last!.headers['cage-identity'], `zk:${hex(session.nullifier)}`);
  });

  it('a reload keeps the counts and applies new limits; a route can start requiring membership', async () => {
    const routes = (raw.routes as Record<string, unknown>[]).map((r) =>
      r.name === 'anon' ? { ...r, require_zk: { group: 'staff', mode: 'any', limit: 3 } } : r.name === 'open' ? { ...r, require_zk: { group: 'staff', scope: 'anon' } } : r,
    );
    const reloaded = await admin(cage, '/api/v1/config/reload', { method: 'POST', body: JSON.stringify({ ...raw, routes }) });
    assert.equal(reloaded.status, 200, reloaded.body.toString());
    assert.equal(errorCode(await withProof(firstProof, '/anon/a')), 'ZK_REPLAY');
    assert.equal((await withProof(unusedProof, '/anon/c')).status, 200, 'the third use is within the new limit');
    assert.equal(errorCode(await request(cage.port, { path: '/other' })), 'ZK_REQUIRED');
    // turning zk off with require_zk routes left is refused; the running config stays
    const off = await admin(cage, '/api/v1/config/reload', { method: 'POST', body: JSON.stringify({ ...raw, routes, zk: { enabled: false } }) });
    assert.equal(errorCode(off), 'ADMIN_RELOAD_FAILED');
    const back = await admin(cage, '/api/v1/config/reload', { method: 'POST', body: JSON.stringify(raw) });
    assert.equal(back.status, 200, back.body.toString());
    assert.equal((await request(cage.port, { path: '/other' })).status, 200);
  });

  it('refuses proofs and sessions whose root left the history (ZK_STALE_ROOT) after members are added and removed', async () => {
    const p = await prove(other, 'reqscope', 'GET', '/req/late');
    for (let i = 0; i < 3; i++) {
      const r = await adminJson('/api/v1/zk/groups/staff/members', 'POST', { commitments: [(await createIdentity()).commitment.toString()] });
      assert.equal(r.status, 200, r.body.toString());
    }
    const del = await admin(cage, `/api/v1/zk/groups/staff/members/${member.commitment}`, { method: 'DELETE' });
    assert.equal(del.status, 200, del.body.toString());
    assert.equal(json<{ members: number }>(del).members, 4);
    const r = await withProof(p, '/req/late');
    assert.equal(errorCode(r), 'ZK_STALE_ROOT');
    assert.equal(errorCode(await signed(session, '/ses/late')), 'ZK_STALE_ROOT');
    const recs = await waitFor(async () => {
      const all = (await records()).filter((x) => x.route === '(admin)' && x.path.startsWith('/api/v1/zk/groups/staff/members'));
      return all.length >= 4 ? all : undefined;
    }, 'audit records of the root changes');
    assert.deepEqual(recs.map((x) => x.method), ['POST', 'POST', 'POST', 'DELETE']);
    assert.equal(json<{ roots: { root: string }[] }>(await admin(cage, '/api/v1/zk/groups/staff/roots')).roots.length, 4);
  });
});
