import { strict as assert } from 'node:assert';
import { createServer } from 'node:net';
import { isCageError } from '../../core/errors.js';
import { Cage } from '../../gateway/cage.js';
import { buildConfig } from '../../gateway/config/load.js';
import { baseConfig, tempDir } from '../helpers/e2e.js';
import { Fixtures, request, startHttpUpstream } from '../helpers/servers.js';

/** A port that was free a moment ago (bound and released by the kernel's choice). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

describe('e2e: the listener owns its address', () => {
  const fx = new Fixtures();
  after(() => fx.closeAll());

  it('a second cage on the same fixed address fails with GW_LISTEN_FAILED instead of sharing the port (no SO_REUSEPORT)', async () => {
    const up = await startHttpUpstream((_req, res) => res.end('one'), fx);
    const port = await freePort();
    const first = await Cage.start({ config: buildConfig(baseConfig(tempDir(fx), [{ upstreams: [up.url] }], { listen: `127.0.0.1:${port}`, admin: { enabled: false } })) });
    fx.add(() => first.shutdown(1000));
    const config = buildConfig(baseConfig(tempDir(fx), [{ upstreams: [up.url] }], { listen: `127.0.0.1:${port}`, admin: { enabled: false } }));
    await assert.rejects(Cage.start({ config }), (err) => isCageError(err, 'GW_LISTEN_FAILED'));
    // And the first still answers every connection (none were handed to a half-started second).
    for (let i = 0; i < 20; i++) assert.equal((await request(port, { path: `/${i}` })).body.toString(), 'one');
  });
});
