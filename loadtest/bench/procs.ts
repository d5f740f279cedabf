// Child processes for the benchmark, each in its own session and process group (spawn
// `detached: true` calls setsid(2) in the child, the same as running it under `setsid`, so the
// kernel schedules each benchmark process as its own group and a whole tree can be signalled).
// Every child is tracked and killed, group-wide, on exit, on SIGINT/SIGTERM and on errors.
// Also: open-file limit raising, waiting for a port to answer, and RSS / CPU time from /proc.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import { request } from 'undici';

export interface Managed {
  name: string;
  pid: number;
  child: ChildProcess;
  /** Resolves with the exit code (or signal name) when the process exits. */
  exited: Promise<number | string>;
  hasExited(): boolean;
  logFile?: string;
}

const children = new Set<Managed>();
let interrupted = false;

/** True once a signal asked the benchmark to stop (errors from killed children are expected). */
export function wasInterrupted(): boolean {
  return interrupted;
}

export interface SpawnOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** stdout+stderr go to this file (appended); otherwise they are piped (see child.stdout). */
  logFile?: string;
  /** Raise the soft open-file limit first (to this many, or to the hard limit). */
  nofile?: number;
  /** Keep stdin as a pipe (for a line protocol); default ignored. */
  stdinPipe?: boolean;
}

/** Spawns `command args` in a new session; bash wraps it when the open-file limit is raised. */
export function spawnManaged(name: string, command: string, args: string[], options: SpawnOptions = {}): Managed {
  let file = command;
  let argv = args;
  if (options.nofile) {
    // `exec` keeps the PID: the pid we track is the real process, bash is gone.
    const script = `ulimit -n ${options.nofile} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"`;
    file = 'bash';
    argv = ['-c', script, 'bash', command, ...args];
  }
  let logFd: number | undefined;
  if (options.logFile) logFd = openSync(options.logFile, 'a');
  const out = logFd ?? 'pipe';
  const child = spawn(file, argv, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    detached: true,
    stdio: [options.stdinPipe ? 'pipe' : 'ignore', out, out],
  });
  if (logFd !== undefined) closeSync(logFd);
  if (child.pid === undefined) throw new Error(`could not start ${name}: ${command}`);
  let done = false;
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => {
      done = true;
      children.delete(managed);
      resolve(code ?? signal ?? 'unknown');
    });
    child.once('error', (err) => {
      done = true;
      children.delete(managed);
      resolve(`spawn error: ${err.message}`);
    });
  });
  const managed: Managed = { name, pid: child.pid, child, exited, hasExited: () => done };
  if (options.logFile) managed.logFile = options.logFile;
  children.add(managed);
  return managed;
}

/** Signals the whole process group of a managed child; ignores groups already gone. */
function signalGroup(proc: Managed, signal: NodeJS.Signals): void {
  try {
    process.kill(-proc.pid, signal);
  } catch {
    // already exited
  }
}

/** SIGTERM to the group, then SIGKILL after graceMs. */
export async function stopManaged(proc: Managed, graceMs = 3000): Promise<void> {
  if (proc.hasExited()) {
    signalGroup(proc, 'SIGKILL'); // leftovers of the group, if any
    return;
  }
  signalGroup(proc, 'SIGTERM');
  const stopped = await Promise.race([proc.exited.then(() => true), delay(graceMs, false)]);
  if (!stopped) {
    signalGroup(proc, 'SIGKILL');
    await Promise.race([proc.exited, delay(1000)]);
  }
  signalGroup(proc, 'SIGKILL');
}

export async function stopAll(): Promise<void> {
  await Promise.all([...children].map((c) => stopManaged(c)));
}

/** Kills every tracked group on any way out of the process (sync SIGKILL on 'exit'). */
export function installCleanupHandlers(): void {
  process.on('exit', () => {
    for (const c of children) signalGroup(c, 'SIGKILL');
  });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      interrupted = true;
      console.error(`\n${signal}: stopping benchmark processes`);
      void stopAll().finally(() => process.exit(130));
    });
  }
}

/** Last lines of a log file, for error messages. */
export function tail(file: string | undefined, lines = 20): string {
  if (!file) return '';
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/** Polls GET url until any HTTP response arrives; fails early if the process exits. */
export async function waitForHttp(url: string, proc: Managed | undefined, timeoutMs = 30_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let lastError = '';
  while (Date.now() < deadline) {
    if (proc?.hasExited()) {
      throw new Error(`${proc.name} exited (${await proc.exited}) before answering ${url}\n${tail(proc.logFile)}`);
    }
    try {
      const res = await request(url, { headersTimeout: 2000, bodyTimeout: 2000, reset: true });
      await res.body.dump();
      return res.statusCode;
    } catch (err) {
      lastError = err instanceof Error ? err.message : String(err);
    }
    await delay(200);
  }
  throw new Error(`${url} did not answer within ${timeoutMs}ms (${lastError})\n${tail(proc?.logFile)}`);
}

/** Fails if something already listens on 127.0.0.1:port. */
export async function assertPortFree(port: number): Promise<void> {
  try {
    const res = await request(`http://127.0.0.1:${port}/`, { headersTimeout: 1000, bodyTimeout: 1000, reset: true });
    await res.body.dump();
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'ECONNREFUSED') return;
  }
  throw new Error(`port ${port} is already in use on 127.0.0.1; stop whatever listens there`);
}

/** PIDs whose process group is pgid (reads /proc/<pid>/stat). */
export function groupPids(pgid: number): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) === pgid) pids.push(Number(entry)); // fields: state ppid pgrp ...
    } catch {
      // process vanished
    }
  }
  return pids;
}

/** VmRSS of one process in bytes (0 if gone). */
export function rssBytes(pid: number): number {
  try {
    const match = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Summed VmRSS of a process group in bytes (e.g. nginx master + worker). */
export function groupRssBytes(pgid: number): number {
  return groupPids(pgid).reduce((sum, pid) => sum + rssBytes(pid), 0);
}

let clockTicks = 0;
/** CPU time (user + system) used so far by a process group, in microseconds. */
export function groupCpuMicros(pgid: number): number {
  if (clockTicks === 0) {
    const out = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim();
    clockTicks = Number(out) || 100;
  }
  let ticks = 0;
  for (const pid of groupPids(pgid)) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14, 15 of stat)
    } catch {
      // process vanished
    }
  }
  return (ticks / clockTicks) * 1e6;
}

/** The hard open-file limit a child could raise itself to. */
export function hardNofileLimit(): number {
  const out = spawnSync('bash', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).stdout.trim();
  return out === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(out);
}

/**
 * Runs a benchmark's main: stops every managed process at the end, sets the exit code (main's,
 * or 2 on an error), and stays quiet when a signal already stopped everything.
 */
export function runBench(main: () => Promise<number>): void {
  main()
    .then(async (code) => {
      await stopAll();
      process.exitCode = code;
    })
    .catch(async (err: unknown) => {
      if (wasInterrupted()) return; // the signal handler stops everything and exits
      console.error(err instanceof Error ? (err.stack ?? err.message) : err);
      await stopAll();
      process.exitCode = 2;
    });
}
