/**
 * pq/pool.ts: envelopes opened on worker threads must give exactly what the inline path gives,
 * keep their error codes across the thread boundary, follow key rotation, survive a worker that
 * dies or hangs (its jobs fail with a code, never hang), refuse floods (PQ_BUSY) and leave no
 * thread behind. The pools run the real worker file (through tsx here, dist/ in production).
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { isCageError, type CageError } from '../../core/errors.js';
import { decodeResponse, encodeRequest } from '../../pq/bhttp.js';
import { AEAD_AES_128_GCM, AEAD_AES_256_GCM, AEAD_CHACHA20_POLY1305, KDF_HKDF_SHA256, KEM_DHKEM_X25519_HKDF_SHA256 } from '../../pq/hpke.js';
import { KeyRing } from '../../pq/keys.js';
import { encapsulateRequest, OhttpGateway, PqInnerError, type GatewayKey, type OpenedEnvelope } from '../../pq/ohttp.js';
import { DecapsulationPool, ownedBytes, type PoolOptions, type SeedSource } from '../../pq/pool.js';
import { ReplayGuard } from '../../pq/replay.js';
import { counterRng, expectCode, expectCodeAsync } from './helpers.js';

const MIN = 60_000;

class Clock {
  t = 1_700_000_000_000;
  now = (): number => this.t;
}

const inner = (path: string, body: Buffer = Buffer.alloc(0), headers: [string, string][] = []): Buffer =>
  encodeRequest({ method: body.length > 0 ? 'POST' : 'GET', scheme: 'https', authority: 'cage.test', path, headers, body });

/** A copy that owns its ArrayBuffer, as the cage builds envelopes (the pool may detach it). */
const owned = (b: Uint8Array): Buffer => Buffer.from(new Uint8Array(b).buffer);

/** Plain, comparable form of an OpenedEnvelope. */
const plain = (o: OpenedEnvelope): Record<string, unknown> => ({
  keyId: o.keyId, kemId: o.kemId, kdfId: o.kdfId, aeadId: o.aeadId,
  enc: Buffer.from(o.enc).toString('hex'), request: Buffer.from(o.request).toString('hex'), secret: Buffer.from(o.exportedSecret).toString('hex'),
});

/** Worker threads of this process (Linux), to see that close() leaves none. */
function threadCount(): number | undefined {
  return existsSync('/proc/self/task') ? readdirSync('/proc/self/task').length : undefined;
}

describe('pq/pool: opening envelopes on worker threads', function () {
  this.timeout(60_000);
  const pools: DecapsulationPool[] = [];
  async function startPool(opts: PoolOptions): Promise<DecapsulationPool> {
    const pool = await DecapsulationPool.start(opts);
    pools.push(pool);
    return pool;
  }
  after(async () => {
    await Promise.all(pools.map((p) => p.close()));
  });

  describe('same answers as the inline path', () => {
    let xwing: KeyRing;
    let dhkem: KeyRing;
    let pool: DecapsulationPool;
    before(async () => {
      xwing = await KeyRing.open({ rotateMs: 60 * MIN, graceMs: 10 * MIN });
      dhkem = await KeyRing.open({ rotateMs: 60 * MIN, graceMs: 10 * MIN, kemId: KEM_DHKEM_X25519_HKDF_SHA256 });
      pool = await startPool({ keys: xwing, size: 2, maxQueue: 1000 });
    });

    it('many envelopes (every AEAD, bodies from 0 bytes to 64 KiB) open byte for byte as OhttpGateway does, on both threads', async () => {
      const gateway = new OhttpGateway({ keys: xwing });
      const inline = await DecapsulationPool.start({ keys: xwing, size: 0 });
      const aeads = [AEAD_AES_256_GCM, AEAD_CHACHA20_POLY1305, AEAD_AES_128_GCM];
      const sizes = [0, 1, 100, 1000, 4095, 4096, 5000, 65536];
      const envelopes: Buffer[] = [];
      for (let i = 0; i < 96; i++) {
        const body = Buffer.alloc(sizes[i % sizes.length]!, i);
        envelopes.push(encapsulateRequest(xwing.current.config, inner(`/n/${i}`, body), { aeadId: aeads[i % aeads.length] }).bytes);
      }
      const viaPool = await Promise.all(envelopes.map((e) => pool.open(owned(e))));
      const viaInline = await Promise.all(envelopes.map((e) => inline.open(owned(e))));
      for (let i = 0; i < envelopes.length; i++) {
        const d = gateway.decapsulateRequest(envelopes[i]!);
        const expected = { keyId: d.keyId, kemId: d.suite.kem.id, kdfId: d.suite.kdf.id, aeadId: d.suite.aead.id, enc: Buffer.from(d.enc).toString('hex'), request: d.request.toString('hex') };
        assert.deepEqual({ ...plain(viaPool[i]!), secret: undefined }, { ...expected, secret: undefined }, `envelope ${i}`);
        assert.deepEqual(plain(viaPool[i]!), plain(viaInline[i]!), `envelope ${i}: pool and inline`);
      }
      await inline.close();
    });

    it('a ResponseContext rebuilt from the exported secret seals answers the client opens', async () => {
      const gateway = new OhttpGateway({ keys: xwing });
      for (const aeadId of [AEAD_AES_256_GCM, AEAD_CHACHA20_POLY1305, AEAD_AES_128_GCM]) {
        const sealed = encapsulateRequest(xwing.current.config, inner('/seal'), { aeadId });
        const opened = await gateway.openRequestWith(pool, owned(sealed.bytes), 'message/ohttp-req');
        assert.equal(opened.request.path, '/seal');
        const res = decodeResponse(sealed.decapsulateResponse(opened.seal({ status: 202, headers: [['x-a', 'b']], body: 'ok' })));
        assert.equal(res.status, 202);
        assert.equal(Buffer.from(res.body).toString(), 'ok');
      }
    });

    it('DHKEM(X25519) keys open the same way', async () => {
      const dhPool = await startPool({ keys: dhkem, size: 1 });
      const gateway = new OhttpGateway({ keys: dhkem });
      for (let i = 0; i < 8; i++) {
        const bytes = encapsulateRequest(dhkem.current.config, inner(`/dh/${i}`)).bytes;
        assert.deepEqual(Buffer.from((await dhPool.open(owned(bytes))).request), gateway.decapsulateRequest(bytes).request);
      }
    });

    it('transfers an envelope that owns its memory (detached here), copies one that does not', async () => {
      const bytes = encapsulateRequest(xwing.current.config, inner('/t')).bytes;
      const mine = owned(bytes);
      const p = pool.open(mine);
      assert.equal(mine.buffer.byteLength, 0, 'transferred to the worker, not copied');
      await p;
      const slab = Buffer.alloc(bytes.length + 64);
      bytes.copy(slab, 32);
      const view = slab.subarray(32, 32 + bytes.length);
      assert.equal((await pool.open(view)).keyId, xwing.current.config.keyId);
      assert.equal(slab.buffer.byteLength, slab.length, 'a view into a larger buffer is copied, never detached');
      assert.ok(view.equals(bytes));
      assert.equal(ownedBytes(view) === view, false);
      assert.equal(ownedBytes(mine) === mine, true);
    });

    it('error codes: header checks on this thread, decryption failures from the worker', async () => {
      const good = encapsulateRequest(xwing.current.config, inner('/e'), { aeadId: AEAD_AES_256_GCM }).bytes;
      const unknown = Buffer.from(good);
      unknown[0] = (unknown[0]! + 100) & 0xff;
      await expectCodeAsync(pool.open(owned(unknown)), 'PQ_UNKNOWN_KEY');
      const suite = Buffer.from(good);
      suite.writeUInt16BE(0x0009, 5);
      await expectCodeAsync(pool.open(owned(suite)), 'PQ_UNSUPPORTED_SUITE');
      await expectCodeAsync(pool.open(owned(good.subarray(0, 100))), 'PQ_BAD_ENVELOPE');
      for (const at of [7 + 5, 7 + 1100, good.length - 20, good.length - 1]) {
        const flipped = Buffer.from(good);
        flipped[at]! ^= 0x01;
        const err = await expectCodeAsync(pool.open(owned(flipped)), 'PQ_BAD_ENVELOPE');
        assert.ok(isCageError(err), 'a CageError, rebuilt on this side');
      }
      assert.equal(pool.stats().inflight, 0);
    });

    it("the worker's own key check: a key it was never given is PQ_UNKNOWN_KEY, a pair it does not hold PQ_UNSUPPORTED_SUITE", async () => {
      // Sources that let an envelope past this thread's check, to reach the worker's.
      const noSeeds: SeedSource = { findKey: (id) => xwing.findKey(id), keySeeds: () => [], onKeysChanged: () => () => undefined };
      const empty = await startPool({ keys: noSeeds, size: 1 });
      await expectCodeAsync(empty.open(owned(encapsulateRequest(xwing.current.config, inner('/x')).bytes)), 'PQ_UNKNOWN_KEY');
      const narrow: SeedSource = {
        findKey: (id) => xwing.findKey(id),
        keySeeds: () => xwing.keySeeds().map((s) => ({ ...s, symmetric: [{ kdfId: KDF_HKDF_SHA256, aeadId: AEAD_AES_256_GCM }] })),
        onKeysChanged: () => () => undefined,
      };
      const one = await startPool({ keys: narrow, size: 1 });
      await expectCodeAsync(one.open(owned(encapsulateRequest(xwing.current.config, inner('/x'), { aeadId: AEAD_CHACHA20_POLY1305 }).bytes)), 'PQ_UNSUPPORTED_SUITE');
      assert.equal((await one.open(owned(encapsulateRequest(xwing.current.config, inner('/x'), { aeadId: AEAD_AES_256_GCM }).bytes))).aeadId, AEAD_AES_256_GCM);
    });

    it('errors after opening stay on this thread: bad BHTTP is a sealed PqInnerError, a replay is caught across workers', async () => {
      const gateway = new OhttpGateway({ keys: xwing, replay: new ReplayGuard({ windowMs: 60_000 }) });
      const bad = encapsulateRequest(xwing.current.config, Buffer.from('not bhttp'));
      const err = await gateway.openRequestWith(pool, owned(bad.bytes), 'message/ohttp-req').catch((e: unknown) => e);
      assert.ok(err instanceof PqInnerError, String(err));
      assert.equal(err.code, 'PQ_BAD_BHTTP');
      assert.equal(decodeResponse(bad.decapsulateResponse(err.sealJson('r1'))).status, 400);
      await expectCodeAsync(gateway.openRequestWith(pool, owned(bad.bytes), 'text/plain'), 'PQ_BAD_ENVELOPE');
      // Two workers, one replay cache: the same envelope sent several times at once opens once.
      const sealed = encapsulateRequest(xwing.current.config, inner('/r', Buffer.alloc(0), [['date', new Date().toUTCString()]]));
      const results = await Promise.all([0, 1, 2, 3].map(() => gateway.openRequestWith(pool, owned(sealed.bytes), 'message/ohttp-req').then(() => 'ok', (e: CageError) => e.code)));
      assert.deepEqual(results.sort(), ['PQ_REPLAY', 'PQ_REPLAY', 'PQ_REPLAY', 'ok']);
    });
  });

  describe('keys follow rotation', () => {
    it('a new key opens after rotation, the old one within its grace, then neither thread takes it', async () => {
      const clock = new Clock();
      const ring = await KeyRing.open({ rotateMs: 60 * MIN, graceMs: 10 * MIN, now: clock.now, rng: counterRng() });
      const pool = await startPool({ keys: ring, size: 2 });
      const first = ring.current;
      const open = (key: GatewayKey, p = pool): Promise<OpenedEnvelope> => p.open(owned(encapsulateRequest(key.config, inner('/k')).bytes));
      assert.equal((await open(first)).keyId, first.config.keyId);

      // Requests for the first key race the rotation: sent before, opened after.
      const racing = [0, 1, 2, 3, 4, 5].map(() => open(first));
      clock.t += 60 * MIN;
      await ring.maintain();
      const second = ring.current;
      assert.notEqual(second.config.keyId, first.config.keyId);
      for (const r of await Promise.all(racing)) assert.equal(r.keyId, first.config.keyId);
      assert.equal((await open(second)).keyId, second.config.keyId, 'the new key reached the workers');
      assert.equal((await open(first)).keyId, first.config.keyId, 'the old key, within its grace');

      // A source that still names the first key after the ring forgot it: only the worker can refuse.
      const lenient: SeedSource = {
        findKey: (id) => (id === first.config.keyId ? first : ring.findKey(id)),
        keySeeds: () => ring.keySeeds(),
        onKeysChanged: (l) => ring.onKeysChanged(l),
      };
      const lenientPool = await startPool({ keys: lenient, size: 1 });
      assert.equal((await open(first, lenientPool)).keyId, first.config.keyId);

      clock.t += 10 * MIN;
      await expectCodeAsync(open(first), 'PQ_UNKNOWN_KEY'); // this thread's clock, before maintain()
      await ring.maintain();
      await expectCodeAsync(open(first, lenientPool), 'PQ_UNKNOWN_KEY'); // the worker forgot it too
      assert.equal((await open(second, lenientPool)).keyId, second.config.keyId);
      assert.equal((await open(second)).keyId, second.config.keyId);
    });
  });

  describe('faults', function () {
    this.timeout(20_000);
    const ring = KeyRing.open({ rotateMs: 60 * MIN, graceMs: 10 * MIN });
    const envelope = async (path = '/f'): Promise<Buffer> => owned(encapsulateRequest((await ring).current.config, inner(path)).bytes);

    it('a worker terminated mid-job: its jobs fail with GW_INTERNAL, the queue moves on, a new worker takes over', async () => {
      const replaced: CageError[] = [];
      const pool = await startPool({ keys: await ring, size: 1, testHooks: true, onError: (e) => replaced.push(e) });
      pool.testStall(0, 400);
      const inFlight = [pool.open(await envelope()), pool.open(await envelope())];
      const waiting = pool.open(await envelope('/waiting'));
      assert.deepEqual({ inflight: pool.stats().inflight, waiting: pool.stats().waiting }, { inflight: 2, waiting: 1 });
      await pool.testWorker(0).terminate();
      await Promise.all(inFlight.map((p) => expectCodeAsync(p, 'GW_INTERNAL')));
      assert.equal((await waiting).keyId, (await ring).current.config.keyId, 'the waiting job opens on the replacement');
      assert.equal((await pool.open(await envelope())).keyId, (await ring).current.config.keyId);
      assert.deepEqual(pool.stats(), { size: 1, threads: 1, ready: 1, inflight: 0, waiting: 0 });
      assert.equal(replaced.length, 1);
      assert.equal(replaced[0]!.code, 'GW_INTERNAL');
    });

    it('a worker that crashes (uncaught exception) with jobs in flight is replaced the same way', async () => {
      const pool = await startPool({ keys: await ring, size: 1, testHooks: true });
      pool.testStall(0, 200);
      pool.testCrash(0);
      const jobs = [pool.open(await envelope()), pool.open(await envelope())];
      await Promise.all(jobs.map((p) => expectCodeAsync(p, 'GW_INTERNAL')));
      assert.equal((await pool.open(await envelope())).keyId, (await ring).current.config.keyId);
    });

    it('a stuck worker: jobs fail after jobTimeoutMs and the worker is replaced', async () => {
      const pool = await startPool({ keys: await ring, size: 1, testHooks: true, jobTimeoutMs: 200 });
      pool.testStall(0, 5000);
      const started = performance.now();
      await expectCodeAsync(pool.open(await envelope()), 'GW_INTERNAL');
      assert.ok(performance.now() - started < 2500, `failed after ${performance.now() - started} ms`);
      // The replacement starts (slower than 200 ms under tsx; a job waiting that long would fail too).
      for (let i = 0; i < 250 && pool.stats().ready === 0; i++) await new Promise((r) => setTimeout(r, 20));
      assert.equal((await pool.open(await envelope())).keyId, (await ring).current.config.keyId);
    });

    it('a full queue refuses at once with PQ_BUSY (by count and by bytes), and drains', async () => {
      const one = await envelope();
      const pool = await startPool({ keys: await ring, size: 1, testHooks: true, maxQueue: 3 });
      pool.testStall(0, 300);
      const held = [pool.open(await envelope()), pool.open(await envelope()), pool.open(await envelope())];
      await expectCodeAsync(pool.open(await envelope()), 'PQ_BUSY');
      const err = await expectCodeAsync(pool.open(await envelope()), 'PQ_BUSY');
      assert.equal((err as CageError).status, 503);
      for (const r of await Promise.all(held)) assert.equal(r.keyId, (await ring).current.config.keyId);
      assert.equal((await pool.open(await envelope())).keyId, (await ring).current.config.keyId, 'room again');

      const byBytes = await startPool({ keys: await ring, size: 1, testHooks: true, maxQueueBytes: 2 * one.length + 1 });
      byBytes.testStall(0, 300);
      const two = [byBytes.open(await envelope()), byBytes.open(await envelope())];
      await expectCodeAsync(byBytes.open(await envelope()), 'PQ_BUSY');
      await Promise.all(two);
    });

    it('close(): jobs not done fail with GW_INTERNAL, later opens too, and no thread is left', async () => {
      const before = threadCount();
      const pool = await DecapsulationPool.start({ keys: await ring, size: 2, testHooks: true });
      if (before !== undefined) assert.ok(threadCount()! >= before + 2, 'the worker threads run');
      pool.testStall(0, 300);
      pool.testStall(1, 300);
      const jobs = [0, 1, 2, 3, 4].map(async () => pool.open(await envelope()));
      await new Promise((r) => setTimeout(r, 20));
      const failed = Promise.all(jobs.map((p) => expectCodeAsync(p, 'GW_INTERNAL')));
      await pool.close();
      await failed;
      await expectCodeAsync(pool.open(await envelope()), 'GW_INTERNAL');
      assert.deepEqual(pool.stats(), { size: 2, threads: 0, ready: 0, inflight: 0, waiting: 0 });
      if (before !== undefined) assert.equal(threadCount(), before, 'every worker thread has exited');
    });

    it('resize: to 0 opens inline (the threads stop), back up starts threads again', async () => {
      const pool = await startPool({ keys: await ring, size: 2 });
      pool.resize(0);
      assert.equal((await pool.open(await envelope())).keyId, (await ring).current.config.keyId);
      for (let i = 0; i < 100 && pool.stats().threads > 0; i++) await new Promise((r) => setTimeout(r, 20));
      assert.equal(pool.stats().threads, 0);
      pool.resize(1);
      assert.equal((await pool.open(await envelope())).keyId, (await ring).current.config.keyId);
      assert.deepEqual({ threads: pool.stats().threads, ready: pool.stats().ready }, { threads: 1, ready: 1 });
    });

    it('checks its options once (CONFIG_INVALID)', async () => {
      const keys = await ring;
      await expectCodeAsync(DecapsulationPool.start({ keys, size: 1, maxQeue: 3 } as never), 'CONFIG_INVALID');
      await expectCodeAsync(DecapsulationPool.start({ keys, size: 65 }), 'CONFIG_INVALID');
      await expectCodeAsync(DecapsulationPool.start({ keys, size: -1 }), 'CONFIG_INVALID');
      const pool = await startPool({ keys, size: 0 });
      expectCode(() => pool.resize(1.5), 'CONFIG_INVALID');
      expectCode(() => pool.testStall(0, 1), 'GW_INTERNAL');
    });
  });
});
