/**
 * The pipeline's stage slots with real sockets: a stage registered in a slot runs on every
 * request before forwarding, can answer for the app with a coded JSON error, and may be async.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CageError } from '../../core/errors.js';
import { Cage } from '../../gateway/cage.js';
import { buildConfig } from '../../gateway/config/load.js';
import type { Stage } from '../../gateway/pipeline.js';

describe('e2e: pipeline stages', () => {
  let upstream: Server;
  let seenByApp: string[] = [];
  let cage: Cage;
  let base = '';

  before(async () => {
    upstream = createServer((req, res) => {
      seenByApp.push(`${req.method} ${req.url} identity=${req.headers['x-test-identity'] ?? ''}`);
      res.end('app');
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    const stages: Stage[] = [
      {
        slot: 'decide',
        name: 'deny-admin',
        handle: (ex) => (ex.path.startsWith('/admin') ? new CageError({ code: 'GW_DENIED', message: `identity "${ex.identity}" may not use ${ex.path}` }) : undefined),
      },
      {
        slot: 'identify',
        name: 'async-identify',
        handle: async (ex) => {
          await new Promise((r) => setImmediate(r));
          ex.identity = ex.header('x-user') ?? '';
          ex.headers.push('x-test-identity', ex.identity);
          return undefined;
        },
      },
    ];
    const config = buildConfig({
      listen: '127.0.0.1:0',
      admin: { enabled: false },
      data_dir: mkdtempSync(join(tmpdir(), 'cage-pipeline-')),
      log: { level: 'silent', access: false },
      routes: [{ upstreams: [`http://127.0.0.1:${(upstream.address() as AddressInfo).port}`] }],
    });
    cage = await Cage.start({ config, stages });
    base = `http://127.0.0.1:${cage.port}`;
  });

  after(async () => {
    await cage.shutdown(1000);
    upstream.close();
    upstream.closeAllConnections();
  });

  beforeEach(() => {
    seenByApp = [];
  });

  it('forwards what the stages allow, after the identify stage ran', async () => {
    const res = await fetch(`${base}/public?q=1`, { headers: { 'x-user': 'alice' } });
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'app');
    assert.deepEqual(seenByApp, ['GET /public?q=1 identity=alice']);
  });

  it('answers a denial with 403 and its code; the app never sees the request', async () => {
    const res = await fetch(`${base}/admin/users`, { method: 'POST', body: 'x'.repeat(100_000), headers: { 'x-user': 'mallory' } });
    assert.equal(res.status, 403);
    const body = (await res.json()) as { error: { code: string; request_id: string } };
    assert.equal(body.error.code, 'GW_DENIED');
    assert.equal(body.error.request_id, res.headers.get('x-request-id'));
    assert.deepEqual(seenByApp, []);
  });

  it('setStages swaps the pipeline for new requests', async () => {
    cage.gateway.setStages([{ slot: 'limit', name: 'closed', handle: () => new CageError({ code: 'GW_DENIED', message: 'closed' }) }]);
    const res = await fetch(`${base}/public`);
    assert.equal(res.status, 403);
    cage.gateway.setStages([]);
    assert.equal((await fetch(`${base}/public`)).status, 200);
  });
});
