/**
 * The uWS package silently falls back to a slow pure-JS server when its native binary fails to
 * load; the cage must refuse to start instead. A preload makes every native addon load fail, as a
 * binary built for another glibc or Node ABI would.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));

describe('fault: uWebSockets.js native binary', () => {
  it('loadUws fails loudly with GW_UWS_UNAVAILABLE when the binary cannot load', () => {
    const script = `
      const Module = require('node:module');
      Module._extensions['.node'] = () => { throw new Error('simulated: GLIBC_2.38 not found'); };
      import('./gateway/uws.ts').then((m) => {
        try { m.loadUws(); console.log('LOADED'); }
        catch (e) { console.log(e.code + ' ' + e.message); }
      });
    `;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', script], { cwd: root, encoding: 'utf8', timeout: 20_000 });
    assert.match(r.stdout, /^GW_UWS_UNAVAILABLE .*simulated: GLIBC_2\.38 not found/m);
    assert.doesNotMatch(r.stdout, /LOADED/);
  });

  it('loads the real binary here', async () => {
    const { loadUws } = await import('../../gateway/uws.js');
    assert.equal(typeof loadUws().App, 'function');
  });
});
