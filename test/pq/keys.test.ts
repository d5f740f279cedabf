import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeRequest } from '../../pq/bhttp.js';
import { KEM_XWING } from '../../pq/hpke.js';
import { KeyRing } from '../../pq/keys.js';
import { decodeKeyConfigList, encapsulateRequest, OhttpGateway, type KeyConfig } from '../../pq/ohttp.js';
import { counterRng, expectCode } from './helpers.js';

const MIN = 60_000;
const request = encodeRequest({ method: 'GET', scheme: 'https', authority: 'a.test', path: '/', headers: [] });

class Clock {
  t = 1_700_000_000_000;
  now = (): number => this.t;
}

/** Sends one request with `config` through a gateway over `ring`: the error code, or 'ok'. */
function tryKey(ring: KeyRing, config: KeyConfig): string {
  const gateway = new OhttpGateway({ keys: ring });
  try {
    gateway.decapsulateRequest(encapsulateRequest(config, request).bytes);
    return 'ok';
  } catch (err) {
    return (err as { code: string }).code;
  }
}

describe('pq/keys: KeyRing rotation, grace and persistence', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'cage-pq-keys-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('rotates every rotateMs, accepts the old key for graceMs, then refuses it (PQ_UNKNOWN_KEY)', async () => {
    const clock = new Clock();
    const ring = await KeyRing.open({ rotateMs: 60 * MIN, graceMs: 10 * MIN, now: clock.now, rng: counterRng() });
    const first = ring.current.config;
    assert.equal(first.kemId, KEM_XWING);
    assert.equal(tryKey(ring, first), 'ok');

    clock.t += 59 * MIN;
    await ring.maintain();
    assert.equal(ring.current.config.keyId, first.keyId, 'not yet due');

    clock.t += 1 * MIN;
    await ring.maintain();
    const second = ring.current.config;
    assert.equal(second.keyId, (first.keyId + 1) & 0xff);
    assert.notDeepEqual(second.publicKey, first.publicKey);
    assert.deepEqual(ring.configs().map((c) => c.keyId), [second.keyId, first.keyId], 'newest first');
    assert.equal(tryKey(ring, first), 'ok', 'old key within grace');
    assert.equal(tryKey(ring, second), 'ok');

    clock.t += 10 * MIN - 1;
    assert.equal(tryKey(ring, first), 'ok', 'last millisecond of grace');
    clock.t += 1;
    assert.equal(tryKey(ring, first), 'PQ_UNKNOWN_KEY', 'refused at once, before maintain()');
    assert.deepEqual(ring.configs().map((c) => c.keyId), [second.keyId]);
    await ring.maintain();
    assert.deepEqual(decodeKeyConfigList(ring.encodedConfigs()).map((c) => c.keyId), [second.keyId]);
    assert.equal(tryKey(ring, second), 'ok');
  });

  it('publishes application/ohttp-keys that decode to the accepted keys, cached between changes', async () => {
    const clock = new Clock();
    const ring = await KeyRing.open({ rotateMs: MIN, graceMs: MIN, now: clock.now });
    const a = ring.encodedConfigs();
    assert.equal(ring.encodedConfigs(), a, 'same Buffer while nothing changed');
    clock.t += MIN;
    await ring.maintain();
    const b = ring.encodedConfigs();
    assert.notEqual(b, a);
    assert.equal(decodeKeyConfigList(b).length, 2);
  });

  it('with graceMs 0 the old key is refused as soon as the new one exists', async () => {
    const clock = new Clock();
    const ring = await KeyRing.open({ rotateMs: MIN, graceMs: 0, now: clock.now });
    const old = ring.current.config;
    clock.t += MIN;
    await ring.maintain();
    assert.equal(tryKey(ring, old), 'PQ_UNKNOWN_KEY');
    assert.equal(ring.configs().length, 1);
  });

  it('overlapping maintain() calls rotate once', async () => {
    const clock = new Clock();
    const ring = await KeyRing.open({ dir, rotateMs: MIN, graceMs: MIN, now: clock.now });
    clock.t += MIN;
    await Promise.all([ring.maintain(), ring.maintain(), ring.maintain()]);
    assert.equal(ring.configs().length, 2);
    assert.equal(readdirSync(dir).length, 2);
  });

  it('key ids wrap from 255 to 0 and skip ids still held', async () => {
    const clock = new Clock();
    const rng = counterRng();
    let first = true;
    const ring = await KeyRing.open({ rotateMs: MIN, graceMs: 10 * MIN, now: clock.now, rng: (n) => (first ? ((first = false), Uint8Array.of(254)) : rng(n)) });
    const ids = [ring.current.config.keyId];
    for (let i = 0; i < 3; i++) {
      clock.t += MIN;
      await ring.maintain();
      ids.push(ring.current.config.keyId);
    }
    assert.deepEqual(ids, [254, 255, 0, 1]);
  });

  it('persists keys as 0600 files in a 0700 directory; a restart keeps them and their grace', async () => {
    const clock = new Clock();
    const keysDir = join(dir, 'keys');
    const ring = await KeyRing.open({ dir: keysDir, rotateMs: 60 * MIN, graceMs: 30 * MIN, now: clock.now });
    const first = ring.current.config;
    clock.t += 60 * MIN;
    await ring.maintain();
    const second = ring.current.config;
    assert.equal(statSync(keysDir).mode & 0o777, 0o700);
    const files = readdirSync(keysDir).sort();
    assert.deepEqual(files, [`key-${first.keyId}.json`, `key-${second.keyId}.json`].sort());
    for (const f of files) assert.equal(statSync(join(keysDir, f)).mode & 0o777, 0o600, f);

    // "Restart": a new ring on the same directory has the same keys and the same retirement.
    const again = await KeyRing.open({ dir: keysDir, rotateMs: 60 * MIN, graceMs: 30 * MIN, now: clock.now });
    assert.deepEqual(again.configs(), ring.configs());
    assert.equal(tryKey(again, first), 'ok');
    clock.t += 30 * MIN;
    assert.equal(tryKey(again, first), 'PQ_UNKNOWN_KEY');
    await again.maintain();
    assert.deepEqual(readdirSync(keysDir), [`key-${second.keyId}.json`], 'expired key file deleted');
  });

  it('a restart long after the last rotation rotates at once and drops what expired meanwhile', async () => {
    const clock = new Clock();
    const opts = { dir, rotateMs: 60 * MIN, graceMs: MIN, now: clock.now };
    const ring = await KeyRing.open(opts);
    const old = ring.current.config;
    clock.t += 600 * MIN;
    const again = await KeyRing.open(opts);
    const fresh = again.current.config;
    assert.notEqual(fresh.keyId, old.keyId);
    assert.equal(tryKey(again, old), 'ok', 'the replaced key gets its grace from now');
    clock.t += MIN;
    await again.maintain();
    assert.equal(tryKey(again, old), 'PQ_UNKNOWN_KEY');
    assert.deepEqual(readdirSync(dir), [`key-${fresh.keyId}.json`]);
  });

  it('refuses damaged or world-readable key files (PQ_KEY_STORE), and bad options (CONFIG_INVALID)', async () => {
    const clock = new Clock();
    await KeyRing.open({ dir, rotateMs: MIN, graceMs: MIN, now: clock.now });
    const [file] = readdirSync(dir);
    chmodSync(join(dir, file!), 0o644);
    await assert.rejects(KeyRing.open({ dir, rotateMs: MIN, graceMs: MIN, now: clock.now }), (err: { code?: string }) => err.code === 'PQ_KEY_STORE');
    writeFileSync(join(dir, file!), '{"version":1,"keyId":3', { mode: 0o600 });
    chmodSync(join(dir, file!), 0o600);
    await assert.rejects(KeyRing.open({ dir, rotateMs: MIN, graceMs: MIN, now: clock.now }), (err: { code?: string }) => err.code === 'PQ_KEY_STORE');
    writeFileSync(join(dir, file!), JSON.stringify({ version: 1, keyId: 999, kemId: KEM_XWING, createdAt: 1, seed: 'AAAA', symmetric: [] }));
    await assert.rejects(KeyRing.open({ dir, rotateMs: MIN, graceMs: MIN, now: clock.now }), (err: { code?: string }) => err.code === 'PQ_KEY_STORE');
    await assert.rejects(KeyRing.open({ rotateMs: MIN, graceMs: MIN, rotateEvery: 5 } as never), (err: { code?: string }) => err.code === 'CONFIG_INVALID');
    await assert.rejects(KeyRing.open({ rotateMs: 0, graceMs: MIN }), (err: { code?: string }) => err.code === 'CONFIG_INVALID');
    await assert.rejects(KeyRing.open({ rotateMs: MIN, graceMs: MIN, symmetric: [{ kdfId: 1, aeadId: 0x77 }] }), (err: { code?: string }) => err.code === 'PQ_UNSUPPORTED_SUITE');
    expectCode(() => new OhttpGateway({ keys: [] }).decapsulateRequest(Buffer.alloc(10)), 'PQ_UNKNOWN_KEY');
  });
});
