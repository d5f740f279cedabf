// How the benchmark starts HTTP Cage: the compiled CLI (`bin/cage.js` → dist/, built by
// `npm run build` before the run), as users run it. CAGE_COMMAND is the one place to adjust if
// the CLI changes; {from}, {to} and {dataDir} are substituted. It runs from the repository root
// in its own session, with stdout/stderr (JSON access logs, if any) in a log file.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnManaged, type Managed } from './procs.js';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

export const CAGE_COMMAND: readonly string[] = [
  'node',
  'bin/cage.js',
  'reverse-proxy',
  '--from',
  '{from}',
  '--to',
  '{to}',
  '--data-dir',
  '{dataDir}',
  '--no-access-log',
  '--no-admin', // the admin listener defaults to 127.0.0.1:2019: two cages (or another run) would clash
];

/** Build dist/ so the bench measures the current sources. */
export function buildCage(): void {
  execFileSync('npm', ['run', 'build'], { cwd: REPO_ROOT, stdio: 'inherit' });
  if (!existsSync(join(REPO_ROOT, 'dist', 'cli', 'main.js'))) throw new Error('npm run build did not produce dist/cli/main.js');
}

export interface CageOptions {
  name: string;
  /** host:port to listen on. */
  from: string;
  /** Upstream URL. */
  to: string;
  /** Folder for --data-dir and the log file. */
  dir: string;
  /** Open-file limit to ask for (the idle test holds 10,000 client sockets). */
  nofile: number;
  /** Extra CLI flags (e.g. `--audit sync`). */
  extraArgs?: string[];
}

export function startCage(options: CageOptions): Managed {
  const dataDir = join(options.dir, `${options.name}-data`);
  mkdirSync(dataDir, { recursive: true });
  const fill = (arg: string): string =>
    arg.replace('{from}', options.from).replace('{to}', options.to).replace('{dataDir}', dataDir);
  const [command, ...args] = [...CAGE_COMMAND.map(fill), ...(options.extraArgs ?? [])];
  return spawnManaged(options.name, command!, args, {
    cwd: REPO_ROOT,
    logFile: join(options.dir, `${options.name}.log`),
    nofile: options.nofile,
  });
}
