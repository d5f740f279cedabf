/**
 * Runs the real `cage` command (`node --import tsx cli/main.ts …`, cwd the repository) as a child
 * process: to completion (`runCli`), or as a server (`startCli`, which waits for the
 * `cage: listening on …` line and reads the bound ports from it). Output is collected as it
 * arrives so tests can poll it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { StopWaiting, waitFor } from './e2e.js';
import type { Fixtures } from './servers.js';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI_ARGS = ['--import', 'tsx', 'cli/main.ts'];
const LISTENING_RE = /^cage: listening on https?:\/\/[^\s,]+:(\d+)(?:, admin on http:\/\/[^\s,]+:(\d+))?$/m;

export interface CliProcess {
  child: ChildProcess;
  stdout: string;
  stderr: string;
  /** Set once the process exited. */
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function spawnCli(args: string[], env: NodeJS.ProcessEnv = {}): CliProcess {
  const child = spawn(process.execPath, [...CLI_ARGS, ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env, NODE_OPTIONS: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const proc: CliProcess = {
    child,
    stdout: '',
    stderr: '',
    exit: undefined,
    exited: new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        proc.exit = { code, signal };
        resolve(proc.exit);
      });
    }),
  };
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (proc.stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (proc.stderr += d));
  return proc;
}

/** Runs to completion (killed after `timeoutMs`, a safety net only). */
export async function runCli(args: string[], timeoutMs = 30_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = spawnCli(args);
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), timeoutMs);
  const { code } = await proc.exited;
  clearTimeout(timer);
  // 'exit' can come before the pipes are drained.
  await Promise.all([streamEnd(proc.child.stdout!), streamEnd(proc.child.stderr!)]);
  return { code, stdout: proc.stdout, stderr: proc.stderr };
}

function streamEnd(s: NodeJS.ReadableStream): Promise<void> {
  return new Promise((resolve) => {
    if ((s as unknown as { readableEnded: boolean }).readableEnded) resolve();
    else s.once('close', () => resolve());
  });
}

export interface RunningCage {
  proc: CliProcess;
  port: number;
  /** 0 when the admin listener is off. */
  adminPort: number;
}

/**
 * Starts a long-running command and waits for its listening line. Registers a SIGKILL with `fx`
 * in case the test does not stop it itself.
 */
export async function startCli(args: string[], fx?: Fixtures): Promise<RunningCage> {
  const proc = spawnCli(args);
  fx?.add(async () => {
    if (proc.exit === undefined) {
      proc.child.kill('SIGKILL');
      await proc.exited;
    }
  });
  const m = await waitFor(() => {
    if (proc.exit !== undefined) throw new StopWaiting(`cage exited early (${proc.exit.code}): ${proc.stderr}`);
    return LISTENING_RE.exec(proc.stderr) ?? undefined;
  }, 'the listening line', 30_000).catch((err: Error) => {
    throw new Error(`${err.message}; stderr: ${proc.stderr}`);
  });
  return { proc, port: Number(m[1]), adminPort: m[2] === undefined ? 0 : Number(m[2]) };
}
