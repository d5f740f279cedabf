// Makes sure the benchmark's external tools exist: installs the Debian packages nginx and wrk
// with apt-get when `command -v` does not find them (idempotent; needs root, as on CI here).

import { spawnSync } from 'node:child_process';

function has(command: string): boolean {
  return spawnSync('bash', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
}

function run(command: string, args: string[]): void {
  const result = spawnSync(command, args, { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed (exit ${result.status})`);
}

/** Installs missing tools; `packages` maps command name to Debian package name. */
export function ensureTools(packages: Record<string, string>): void {
  const missing = Object.entries(packages).filter(([command]) => !has(command));
  if (missing.length === 0) return;
  const names = missing.map(([, pkg]) => pkg);
  console.error(`installing ${names.join(', ')} with apt-get`);
  run('apt-get', ['update', '-qq']);
  run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...names]);
  for (const [command] of missing) {
    if (!has(command)) throw new Error(`${command} still missing after apt-get install`);
  }
}

/** First line of `command args` output (stdout or stderr), for version reporting. */
export function versionOf(command: string, args: string[]): string {
  const result = spawnSync(command, args, { encoding: 'utf8' });
  return `${result.stdout ?? ''}${result.stderr ?? ''}`.split('\n')[0]!.trim();
}
