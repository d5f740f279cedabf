/**
 * The ZK stage with the cage's clock in hand (real proofs, ~5): epochs and windows at their
 * boundaries, sessions that end with their epoch, and the `zk` / `require_zk` config checks.
 * The socket-level behaviour is test/e2e/zk.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { Prover } from '../../circuits/prover.js';
import { createIdentity, openSession, proveAccess, type Identity } from '../../client/zk.js';
import { isCageError } from '../../core/errors.js';
import { buildConfig, type CageConfig } from '../../gateway/config/load.js';
import { Exchange } from '../../gateway/exchange.js';
import type { Stage } from '../../gateway/pipeline.js';
import { ZkService } from '../../gateway/zk.js';
import type { Group } from '../../circuits/group.js';

const EPOCH_S = 3600;
const E = 500_000; // an epoch number; times below are inside it
const at = (epoch: number, second: number): number => (epoch * EPOCH_S + second) * 1000;

function config(dir: string, zk: Record<string, unknown> = { enabled: true, workers: 1 }, routes?: unknown[], extra: Record<string, unknown> = {}): CageConfig {
  return buildConfig({
    data_dir: dir,
    log: { level: 'silent' },
    routes: routes ?? [
      { name: 'api', match: { path: '/' }, upstreams: ['http://127.0.0.1:9'], require_zk: { group: 'staff' } },
    ],
    zk,
    ...extra,
  });
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (isCageError(err)) return err.code;
    throw err;
  }
  return 'ok';
}

describe('gateway/zk: config', () => {
  it('fills defaults: scope = route name, limit by mode, epoch and window in seconds', () => {
    const c = config('/tmp/x', { enabled: true }, [
      { name: 'a', upstreams: ['http://127.0.0.1:9'], require_zk: { group: 'g' } },
      { name: 'b', match: { path: '/b' }, upstreams: ['http://127.0.0.1:9'], require_zk: { group: 'g', mode: 'session', scope: 'shared' } },
    ]);
    assert.deepEqual({ ...c.zk.routes.get('a') }, { route: 'a', group: 'g', scope: 'a', mode: 'any', limit: 1000 });
    assert.deepEqual({ ...c.zk.routes.get('b') }, { route: 'b', group: 'g', scope: 'shared', mode: 'session', limit: 1 });
    assert.equal(c.zk.epochSeconds, 3600);
    assert.equal(c.zk.windowSeconds, 60);
    assert.equal(c.zk.workers, 2);
  });

  it('refuses require_zk without zk.enabled, unknown keys, session modes without signatures, and bad epochs', () => {
    const r = (q: unknown) => [{ name: 'a', upstreams: ['http://127.0.0.1:9'], require_zk: q }];
    assert.equal(codeOf(() => config('/tmp/x', {}, r({ group: 'g' }))), 'CONFIG_INVALID');
    assert.equal(codeOf(() => config('/tmp/x', { enabled: true }, r({ group: 'g', limt: 3 }))), 'CONFIG_INVALID');
    assert.equal(codeOf(() => config('/tmp/x', { enabled: true, sesion_limit: 3 }, r({ group: 'g' }))), 'CONFIG_INVALID');
    assert.equal(codeOf(() => config('/tmp/x', { enabled: true }, r({ group: 'g', mode: 'session' }), { identity: { signatures: { enabled: false } } })), 'CONFIG_INVALID');
    assert.equal(codeOf(() => config('/tmp/x', { enabled: true }, r({ group: 'g', mode: 'request' }), { identity: { signatures: { enabled: false } } })), 'ok');
    assert.equal(codeOf(() => config('/tmp/x', { enabled: true, epoch: '30s' }, r({ group: 'g' }))), 'CONFIG_INVALID');
    assert.equal(codeOf(() => config('/tmp/x', { enabled: true, window: '2h' }, r({ group: 'g' }))), 'CONFIG_INVALID');
  });
});

describe('gateway/zk: the stage across epochs (real proofs)', function () {
  this.timeout(120_000);
  let dir: string;
  let now = at(E, 100);
  let svc: ZkService;
  let stage: Stage;
  let prover: Prover;
  let member: Identity;
  let group: Group;

  const run = async (ex: Exchange): Promise<string> => {
    const r = await stage.handle(ex);
    return r === undefined ? 'ok' : r.code;
  };
  const withHeader = (header: string, target = '/x'): Exchange => {
    const ex = new Exchange();
    ex.route = 'api';
    ex.method = 'GET';
    ex.target = ex.path = target;
    ex.headers = ['cage-zk-proof', header];
    return ex;
  };
  /** As IdentifyStage leaves a request with a verified RFC 9421 signature by `did`. */
  const signedBy = (did: string): Exchange => {
    const ex = new Exchange();
    ex.route = 'api';
    ex.method = 'GET';
    ex.target = ex.path = '/y';
    ex.signed = true;
    ex.identity = did;
    ex.identityKind = 'did';
    return ex;
  };
  const proveAt = async (ms: number, target = '/x'): Promise<string> =>
    (await proveAccess({ identity: member, group, scope: 'api', epochSeconds: EPOCH_S, now: () => ms, prover, request: { method: 'GET', url: `http://cage${target}` } })).header;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cage-zk-stage-'));
    const c = config(dir, { enabled: true, workers: 1, session_limit: 1 });
    svc = await ZkService.open(dir, c.zk, pino({ level: 'silent' }), { now: () => now });
    member = await createIdentity();
    group = await svc.groups.create('staff', [member.commitment, (await createIdentity()).commitment]);
    stage = svc.stage(c.zk)!;
    prover = await Prover.create();
  });
  after(async () => {
    await prover?.close();
    await svc?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('accepts a per-request proof made just before an epoch boundary and arriving just after it, within the window', async () => {
    const header = await proveAt(at(E, EPOCH_S - 10));
    now = at(E + 1, 20);
    const ex = withHeader(header);
    assert.equal(await run(ex), 'ok');
    assert.equal(ex.identityKind, 'zk');
    assert.equal(ex.zk?.epoch, E);
    assert.equal(ex.zk?.mode, 'request');
  });

  it("refuses a proof from a member of another group the cage knows (ZK_UNKNOWN_GROUP: only the route's group counts)", async () => {
    const stranger = await createIdentity();
    const otherGroup = await svc.groups.create('contractors', [stranger.commitment]);
    now = at(E + 1, 30);
    const header = (await proveAccess({ identity: stranger, group: otherGroup, scope: 'api', epochSeconds: EPOCH_S, now: () => now, prover, request: { method: 'GET', url: 'http://cage/x' } })).header;
    assert.equal(await run(withHeader(header)), 'ZK_UNKNOWN_GROUP');
  });

  it('refuses a per-request proof older than the window (ZK_EXPIRED)', async () => {
    const header = await proveAt(at(E + 1, 100));
    now = at(E + 1, 100 + 61);
    assert.equal(await run(withHeader(header)), 'ZK_EXPIRED');
  });

  it('a session ends with its epoch (ZK_SESSION_EXPIRED); a proof for a later epoch is refused (ZK_WRONG_EPOCH); the next epoch opens a new one', async () => {
    now = at(E + 2, 10);
    const s = await openSession({ identity: member, group, scope: 'api', epochSeconds: EPOCH_S, now: () => now, prover });
    const open = withHeader(s.header);
    assert.equal(await run(open), 'ok');
    assert.equal(open.zk?.mode, 'session');
    const ex = signedBy(s.keyid);
    assert.equal(await run(ex), 'ok');
    assert.equal(ex.identity, open.identity);
    assert.equal(ex.identity, `zk:${s.nullifier.toString(16).padStart(64, '0')}`);

    const ahead = await openSession({ identity: member, group, scope: 'api', epoch: E + 3, epochSeconds: EPOCH_S, prover });
    assert.equal(await run(withHeader(ahead.header)), 'ZK_WRONG_EPOCH');

    now = at(E + 3, 5);
    assert.equal(await run(signedBy(s.keyid)), 'ZK_SESSION_EXPIRED');
    // the epoch's limit is fresh: the member may open a session for E + 3 (the one made ahead, now current)
    assert.equal(await run(withHeader(ahead.header)), 'ok');
    assert.equal(await run(signedBy(ahead.keyid)), 'ok');
    assert.notEqual(ahead.nullifier, s.nullifier, 'nullifiers are unlinkable across epochs');
  });
});
