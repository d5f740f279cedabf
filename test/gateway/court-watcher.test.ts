import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import pino from 'pino';
import { didKeyOf } from '../../client/sign.js';
import { CourtWatcher } from '../../gateway/anchor.js';
import type { Cage } from '../../gateway/cage.js';
import { admin, json, startAdminCage, waitFor } from '../helpers/e2e.js';
import { Fixtures } from '../helpers/servers.js';

describe('gateway: notaries the Court dropped leave the registry', () => {
  const fx = new Fixtures();
  let cage: Cage;
  const honest = didKeyOf(generateKeyPairSync('ed25519').privateKey);
  const forked = didKeyOf(generateKeyPairSync('ed25519').privateKey);
  before(async () => {
    cage = await startAdminCage([{ upstreams: ['http://127.0.0.1:9'] }], { chain: { mode: 'off' } }, fx);
    for (const [i, did] of [honest, forked].entries()) {
      const r = await admin(cage, '/api/v1/notaries', { method: 'POST', body: JSON.stringify({ did, url: 'http://127.0.0.1:9/', quorum: i + 1 }) });
      assert.equal(r.status, 201, r.body.toString());
    }
  });
  after(() => fx.closeAll());

  it('removes only the dropped notary, lowers the quorum with it, and records the change as done by the court', async () => {
    const before = json<{ size: number }>(await admin(cage, '/api/v1/audit')).size;
    const chain = { query: async <T>(_m: string, _method: string, p: unknown): Promise<T> => ({ did: (p as { did: string }).did, dropped: (p as { did: string }).did === forked }) as T };
    const w = new CourtWatcher(chain, cage.notaries!, 60_000, pino({ level: 'silent' }));
    await w.tick();
    assert.equal(w.dropped, 1);
    const view = json<{ quorum: number; notaries: Array<{ did: string }> }>(await admin(cage, '/api/v1/notaries'));
    assert.deepEqual(view.notaries.map((n) => n.did), [honest]);
    assert.equal(view.quorum, 1);
    await w.tick();
    assert.equal(w.dropped, 1, 'nothing more to drop');
    const rec = await waitFor(async () => {
      const r = await admin(cage, `/api/v1/audit/record/${before}`);
      return r.status === 200 ? json<{ record: { identity?: string; method: string; path: string } }>(r).record : undefined;
    }, 'the record of the drop');
    assert.equal(rec.identity, 'court');
    assert.equal(rec.method, 'DELETE');
    const first = json<{ record: { identity?: string } }>(await admin(cage, '/api/v1/audit/record/0')).record;
    assert.equal(first.identity, 'admin-token', 'admin changes are recorded as the admin token holder');
  });
});
