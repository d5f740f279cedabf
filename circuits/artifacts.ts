/**
 * Where the built circuit artifacts live (circuits/build/, made by `npm run build:circuits`):
 * membership.wasm (witness generator), membership.zkey (proving key), verification_key.json.
 * CAGE_ZK_ARTIFACTS overrides the folder. Nothing here reads the files.
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CageError } from '../core/errors.js';

const HERE = dirname(fileURLToPath(import.meta.url));
export const CIRCUIT_NAME = 'membership';

export interface ArtifactPaths {
  dir: string;
  wasm: string;
  zkey: string;
  verificationKey: string;
}

/** The default folder: $CAGE_ZK_ARTIFACTS, else circuits/build next to the sources (also from dist/circuits). */
export function defaultArtifactsDir(): string {
  const env = process.env.CAGE_ZK_ARTIFACTS;
  if (env) return resolve(env);
  const local = join(HERE, 'build');
  const fromDist = join(HERE, '..', '..', 'circuits', 'build');
  return !existsSync(local) && existsSync(fromDist) ? fromDist : local;
}

export function artifactPaths(dir: string = defaultArtifactsDir()): ArtifactPaths {
  return { dir, wasm: join(dir, `${CIRCUIT_NAME}.wasm`), zkey: join(dir, `${CIRCUIT_NAME}.zkey`), verificationKey: join(dir, 'verification_key.json') };
}

/** The paths, or ZK_ARTIFACTS_MISSING naming the first file that is not there. */
export function requireArtifacts(dir?: string, which: readonly ('wasm' | 'zkey' | 'verificationKey')[] = ['wasm', 'zkey', 'verificationKey']): ArtifactPaths {
  const paths = artifactPaths(dir);
  for (const k of which) {
    if (!existsSync(paths[k])) throw new CageError({ code: 'ZK_ARTIFACTS_MISSING', message: `missing ${paths[k]}; run npm run build:circuits` });
  }
  return paths;
}
