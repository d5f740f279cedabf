/**
 * The cage anchors its audit log on the embedded chain: a cage started with the defaults runs a
 * single-validator chain in-process, registers its log (policy: the log key, no notaries) and
 * anchors each newer published checkpoint with a consistency proof; after a restart the chain
 * (same data dir) still holds the anchors and anchoring continues from the anchored size.
 */
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { auditMain } from '../../cli/audit.js';
import { Cage } from '../../gateway/cage.js';
import { buildConfig } from '../../gateway/config/load.js';
import type { AnchoredCheckpoint } from '../../chain/modules/anchor.js';
import { baseConfig, tempDir, waitFor } from '../helpers/e2e.js';
import { request, startEchoUpstream, Fixtures } from '../helpers/servers.js';

const ORIGIN = 'example.test/anchored';

describe('cage: audit checkpoints anchored on the embedded chain', function () {
  this.timeout(60_000);
  const fx = new Fixtures();
  after(() => fx.closeAll());

  it('registers the log and anchors newer checkpoints, across a restart', async () => {
    const up = await startEchoUpstream(fx);
    const dir = tempDir();
    const config = buildConfig(baseConfig(dir, [{ upstreams: [up.url] }], { audit: { origin: ORIGIN, checkpoint_interval: '100ms' }, chain: { block_period: '20ms', anchor_interval: '50ms', rpc_listen: '127.0.0.1:0' } }));
    let cage = await Cage.start({ config });
    try {
      const anchored = (): AnchoredCheckpoint | null => cage.chain!.node!.chain.query('anchor', 'checkpoint', { origin: ORIGIN }) as AnchoredCheckpoint | null;
      for (let i = 0; i < 5; i++) assert.equal((await request(cage.port, { path: `/a${i}` })).status, 200);
      const first = await waitFor(() => (anchored()?.size ?? 0) >= 5 && anchored()!, 'the first anchor', 30_000);
      assert.ok(first.size <= cage.audit!.latestCheckpoint()!.size);
      assert.match(first.checkpoint, new RegExp(`^${ORIGIN}\\n${first.size}\\n`));
      for (let i = 0; i < 5; i++) assert.equal((await request(cage.port, { path: `/b${i}` })).status, 200);
      const second = await waitFor(() => (anchored()?.size ?? 0) >= 10 && anchored()!, 'a later anchor', 30_000);
      assert.ok(second.height > first.height);
      const log = cage.chain!.node!.chain.query('anchor', 'log', { origin: ORIGIN }) as { owner: string; policy: string };
      assert.equal(log.owner, cage.chain!.node!.key.did);
      assert.match(log.policy, /quorum none/);
      // `cage audit verify --anchor`: the proof's checkpoint (or a later consistent one) is anchored
      await waitFor(() => anchored()?.size === cage.audit!.latestCheckpoint()!.size, 'the latest checkpoint anchored', 30_000);
      const proofFile = join(dir, 'proof.txt');
      writeFileSync(proofFile, cage.audit!.proof(3));
      const out: string[] = [];
      const output = { out: (l: string) => out.push(l), err: (l: string) => out.push(l), progress: () => {} };
      const rpcUrl = `http://127.0.0.1:${cage.chain!.rpc!.port}/rpc`;
      assert.equal(await auditMain(['verify', '--proof', proofFile, '--log-key', cage.audit!.verifierKey, '--anchor', rpcUrl], output), 0, out.join('\n'));
      assert.ok(out.some((l) => l.startsWith('anchored: size')), out.join('\n'));
      await cage.shutdown(1000);
      cage = await Cage.start({ config });
      assert.ok((anchored()?.size ?? 0) >= 10, 'the anchors survive a restart');
      for (let i = 0; i < 3; i++) assert.equal((await request(cage.port, { path: `/c${i}` })).status, 200);
      await waitFor(() => (anchored()?.size ?? 0) >= 13, 'an anchor after the restart', 30_000);
    } finally {
      await cage.shutdown(1000);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
