/**
 * circuits/build.ts's cache: an up-to-date build is skipped (npm test runs the build first, so
 * the artifacts exist here), and the inputs hash changes with the ptau choice.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { artifactPaths, requireArtifacts } from '../../circuits/artifacts.js';
import { buildCircuits, inputsHash, readManifest } from '../../circuits/build.js';
import { expectCode } from './helpers.js';

describe('circuits/build', () => {
  it('skips an up-to-date build and says so', async () => {
    const lines: string[] = [];
    const { built, manifest } = await buildCircuits({ log: (l) => lines.push(l) });
    assert.equal(built, false);
    assert.equal(manifest.inputsHash, inputsHash('local-13'));
    assert.match(lines.join('\n'), /up to date/);
    assert.deepEqual(readManifest(artifactPaths().dir), manifest);
    for (const f of ['wasm', 'zkey', 'verificationKey'] as const) assert.ok(existsSync(artifactPaths()[f]));
  });

  it('hashes the inputs deterministically, and the ptau choice with them', () => {
    assert.equal(inputsHash('local-13'), inputsHash('local-13'));
    assert.notEqual(inputsHash('local-13'), inputsHash('/some/ceremony.ptau'));
  });

  it('missing artifacts are ZK_ARTIFACTS_MISSING', () => {
    expectCode(() => requireArtifacts('/nonexistent-dir'), 'ZK_ARTIFACTS_MISSING');
  });
});
