/**
 * `npm run build:circuits`: compile circuits/membership.circom and run the Groth16 trusted setup,
 * writing every artifact to circuits/build/ (git-ignored, never committed; see docs/zk.md).
 *
 * Steps (one progress line each):
 *   1. compile with circom2 (WASM build of circom 2.2, `--O2`) → membership.r1cs, membership.wasm
 *   2. powers of tau, bn128, 2^13 (local, cached as pot13_final.ptau across source changes):
 *      new accumulator → one contribution with OS entropy → a public beacon → prepare phase 2.
 *      `--ptau FILE` uses a public ceremony's prepared ptau instead (e.g. the Hermez/Polygon
 *      `powersOfTau28_hez_final_13.ptau`, or any larger power).
 *   3. Groth16 phase 2: new zkey → one contribution with OS entropy → a beacon
 *   4. export the verification key → verification_key.json
 * The build is skipped when circuits/build/manifest.json records the same hash of the inputs
 * (circuit sources, the circomlib templates it includes, the tool versions, the ptau choice);
 * `--force` rebuilds. The manifest is written last, so an interrupted build reruns.
 *
 * Trust: the local ceremony has one contributor (this machine, whose entropy is discarded); a
 * zkey made only from beacons would have public toxic waste. See docs/zk.md.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as snarkjs from 'snarkjs';
import { CIRCUIT_NAME } from './artifacts.js';
import { terminateSnarkjsCurve } from './prover.js';

const require = createRequire(import.meta.url);
const HERE = dirname(fileURLToPath(import.meta.url));
/** Artifacts, relative to circuits/. */
export const DEFAULT_BUILD_DIR = join(HERE, 'build');
/** 2^13 = 8192 ≥ the circuit's ~5.6k constraints. */
export const PTAU_POWER = 13;
/** Bumped when the build steps change in a way that changes the artifacts. */
const BUILD_RECIPE = 'cage-zk-build-v1';
/** A fixed, public beacon: documents that the beacon adds no secrecy, only a final public step. */
const BEACON_HASH = '0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20';

export interface BuildOptions {
  buildDir?: string;
  ptau?: string;
  force?: boolean;
  log?: (line: string) => void;
}

export interface Manifest {
  recipe: string;
  inputsHash: string;
  ptau: string;
  ptauSha256: string;
  builtAt: string;
}

function sha256(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

function circomlibDir(): string {
  return join(dirname(require.resolve('circomlib/package.json')), 'circuits');
}

/** The hash of everything that determines the r1cs/wasm, plus the ptau choice. */
export function inputsHash(ptauChoice: string): string {
  const h = createHash('sha256');
  h.update(BUILD_RECIPE + '\0' + ptauChoice + '\0');
  h.update(readFileSync(join(HERE, `${CIRCUIT_NAME}.circom`)));
  for (const inc of ['poseidon.circom', 'poseidon_constants.circom', 'mux1.circom', 'bitify.circom']) {
    h.update(readFileSync(join(circomlibDir(), inc)));
  }
  for (const pkg of ['circom2', 'circomlib', 'snarkjs']) h.update(packageVersion(pkg) + '\0');
  return h.digest('hex');
}

/** A package's version, found by walking up from its entry point (snarkjs does not export package.json). */
function packageVersion(name: string): string {
  let dir = dirname(require.resolve(name));
  while (dir !== dirname(dir)) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version: string };
      if (pkg.name === name) return pkg.version;
    }
    dir = dirname(dir);
  }
  throw new Error(`circuits: cannot find the version of ${name}`);
}

export function readManifest(buildDir: string): Manifest | undefined {
  try {
    return JSON.parse(readFileSync(join(buildDir, 'manifest.json'), 'utf8')) as Manifest;
  } catch {
    return undefined;
  }
}

function run(cmd: string, args: string[]): Promise<void> {
  return new Promise((ok, fail) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => { output += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { output += d.toString(); });
    child.on('error', fail);
    child.on('exit', (code) => (code === 0 ? ok() : fail(new Error(`${cmd} ${args.join(' ')} exited ${code}:\n${output}`))));
  });
}

/** Builds the artifacts unless they are up to date. Returns the manifest and whether it built. */
export async function buildCircuits(opts: BuildOptions = {}): Promise<{ manifest: Manifest; built: boolean }> {
  const buildDir = resolve(opts.buildDir ?? DEFAULT_BUILD_DIR);
  const log = opts.log ?? ((line: string) => process.stdout.write(line + '\n'));
  const ptauChoice = opts.ptau ? resolve(opts.ptau) : `local-${PTAU_POWER}`;
  const hash = inputsHash(ptauChoice);
  const old = readManifest(buildDir);
  const artifacts = [`${CIRCUIT_NAME}.wasm`, `${CIRCUIT_NAME}.zkey`, 'verification_key.json'];
  if (!opts.force && old && old.inputsHash === hash && artifacts.every((f) => existsSync(join(buildDir, f)))) {
    log(`circuits: up to date (${buildDir}, inputs ${hash.slice(0, 12)})`);
    return { manifest: old, built: false };
  }
  mkdirSync(buildDir, { recursive: true });
  rmSync(join(buildDir, 'manifest.json'), { force: true });
  const t0 = Date.now();
  const step = (n: number, what: string) => log(`circuits: [${n}/4] ${what} (+${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  try {
    step(1, 'compiling membership.circom with circom2 --O2');
    const out = join(buildDir, 'compile');
    rmSync(out, { recursive: true, force: true });
    mkdirSync(out, { recursive: true });
    await run(process.execPath, [require.resolve('circom2/cli.js'), join(HERE, `${CIRCUIT_NAME}.circom`), '--O2', '--r1cs', '--wasm', '-o', out, '-l', circomlibDir()]);
    renameSync(join(out, `${CIRCUIT_NAME}.r1cs`), join(buildDir, `${CIRCUIT_NAME}.r1cs`));
    renameSync(join(out, `${CIRCUIT_NAME}_js`, `${CIRCUIT_NAME}.wasm`), join(buildDir, `${CIRCUIT_NAME}.wasm`));
    rmSync(out, { recursive: true, force: true });

    let ptau: string;
    if (opts.ptau) {
      ptau = resolve(opts.ptau);
      step(2, `using the ceremony file ${ptau}`);
    } else {
      ptau = join(buildDir, `pot${PTAU_POWER}_final.ptau`);
      if (existsSync(ptau)) {
        step(2, `powers of tau 2^${PTAU_POWER}: reusing ${ptau}`);
      } else {
        step(2, `powers of tau 2^${PTAU_POWER}: new accumulator, contribution, beacon, prepare phase 2 (minutes of CPU)`);
        const p0 = join(buildDir, 'pot_0.ptau');
        const p1 = join(buildDir, 'pot_1.ptau');
        const p2 = join(buildDir, 'pot_2.ptau');
        const curve = await snarkjs.curves.getCurveFromName('bn128');
        await snarkjs.powersOfTau.newAccumulator(curve, PTAU_POWER, p0);
        await snarkjs.powersOfTau.contribute(p0, p1, 'cage local contribution', randomBytes(64).toString('hex'));
        await snarkjs.powersOfTau.beacon(p1, p2, 'cage final beacon', BEACON_HASH, 10);
        log('circuits:       preparing phase 2 (the slow part)');
        await snarkjs.powersOfTau.preparePhase2(p2, ptau + '.tmp');
        renameSync(ptau + '.tmp', ptau);
        for (const f of [p0, p1, p2]) rmSync(f, { force: true });
      }
    }

    step(3, 'Groth16 phase 2: new zkey, contribution, beacon');
    const z0 = join(buildDir, `${CIRCUIT_NAME}_0.zkey`);
    const z1 = join(buildDir, `${CIRCUIT_NAME}_1.zkey`);
    await snarkjs.zKey.newZKey(join(buildDir, `${CIRCUIT_NAME}.r1cs`), ptau, z0);
    await snarkjs.zKey.contribute(z0, z1, 'cage local phase 2', randomBytes(64).toString('hex'));
    await snarkjs.zKey.beacon(z1, join(buildDir, `${CIRCUIT_NAME}.zkey`), 'cage phase 2 beacon', BEACON_HASH, 10);
    for (const f of [z0, z1]) rmSync(f, { force: true });

    step(4, 'exporting the verification key');
    const vk = await snarkjs.zKey.exportVerificationKey(join(buildDir, `${CIRCUIT_NAME}.zkey`));
    writeFileSync(join(buildDir, 'verification_key.json'), JSON.stringify(vk, null, 1));

    const manifest: Manifest = { recipe: BUILD_RECIPE, inputsHash: hash, ptau: ptauChoice, ptauSha256: sha256(readFileSync(ptau)), builtAt: new Date().toISOString() };
    writeFileSync(join(buildDir, 'manifest.json'), JSON.stringify(manifest, null, 1) + '\n');
    log(`circuits: done in ${((Date.now() - t0) / 1000).toFixed(1)} s → ${buildDir}`);
    return { manifest, built: true };
  } finally {
    await terminateSnarkjsCurve();
  }
}

const USAGE = `Usage: npm run build:circuits -- [--ptau FILE] [--force] [--out DIR]
  --ptau FILE  a prepared (phase 2) powers-of-tau file from a public ceremony, power ≥ ${PTAU_POWER}
  --force      rebuild even when the artifacts are up to date
  --out DIR    artifacts folder (default circuits/build)`;

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({ options: { ptau: { type: 'string' }, force: { type: 'boolean' }, out: { type: 'string' }, help: { type: 'boolean', short: 'h' } } }));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  if (values.ptau && !existsSync(values.ptau)) {
    process.stderr.write(`circuits: no such ptau file: ${values.ptau}\n`);
    return 2;
  }
  await buildCircuits({ ptau: values.ptau, force: values.force, buildDir: values.out });
  return 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().then((code) => { process.exitCode = code; }, (err: unknown) => {
    process.stderr.write(`circuits: build failed: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exitCode = 1;
  });
}
