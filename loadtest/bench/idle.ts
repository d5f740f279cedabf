// The idle-connection memory test: a separate child process (loadtest/idle-conns.ts) opens N
// keep-alive connections to the target, completes one request on each and leaves them idle;
// then the target's RSS is read and compared with its RSS just before.

import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as delay } from 'node:timers/promises';
import { REPO_ROOT } from './cage.js';
import { groupRssBytes, spawnManaged, stopManaged, type Managed } from './procs.js';

export interface IdleResult {
  target: string;
  requested: number;
  open: number;
  failed: number;
  /** Connections the server had closed by the time RSS was read. */
  closedByPeer: number;
  openMs: number;
  rssBeforeBytes: number;
  rssAfterBytes: number;
  /** (after - before) / open connections. */
  bytesPerConnection: number;
  budgetBytes: number;
  withinBudget: boolean;
  /** Every connection opened and still open when RSS was read. */
  allOpen: boolean;
  /** withinBudget && allOpen: a target that refuses or drops connections cannot pass. */
  passed: boolean;
  errors: Record<string, number>;
}

interface ChildEvent {
  event: string;
  open?: number;
  failed?: number;
  ms?: number;
  closedByPeer?: number;
  errors?: Record<string, number>;
  message?: string;
}

/** Reads the child's JSON lines as an async queue of events. */
function eventReader(proc: Managed): () => Promise<ChildEvent> {
  const queue: ChildEvent[] = [];
  const waiters: ((e: ChildEvent) => void)[] = [];
  const lines = createInterface({ input: proc.child.stdout! });
  lines.on('line', (line) => {
    let event: ChildEvent;
    try {
      event = JSON.parse(line) as ChildEvent;
    } catch {
      return; // not ours (e.g. a warning)
    }
    const waiter = waiters.shift();
    if (waiter) waiter(event);
    else queue.push(event);
  });
  void proc.exited.then((code) => {
    for (const waiter of waiters.splice(0)) waiter({ event: 'exit', message: `idle client exited (${code})` });
  });
  return () => {
    const queued = queue.shift();
    if (queued) return Promise.resolve(queued);
    if (proc.hasExited()) return Promise.resolve({ event: 'exit', message: 'idle client exited' });
    return new Promise((resolve) => waiters.push(resolve));
  };
}

async function expectEvent(next: () => Promise<ChildEvent>, name: string, timeoutMs: number): Promise<ChildEvent> {
  const timeout = delay(timeoutMs).then((): ChildEvent => ({ event: 'timeout', message: `no ${name} within ${timeoutMs}ms` }));
  const event = await Promise.race([next(), timeout]);
  if (event.event !== name) throw new Error(`idle test: ${event.message ?? JSON.stringify(event)}`);
  return event;
}

export interface IdleOptions {
  target: string;
  port: number;
  /** Process group whose RSS is measured. */
  pgid: number;
  count: number;
  budgetBytes: number;
  /** Open-file limit asked for the client (count + margin). */
  nofile: number;
  /** Pause between the last connection and the RSS reading. */
  settleMs?: number;
}

export async function runIdleTest(options: IdleOptions): Promise<IdleResult> {
  const rssBeforeBytes = groupRssBytes(options.pgid);
  const proc = spawnManaged(
    'idle client',
    'node',
    ['--import', 'tsx', join('loadtest', 'idle-conns.ts'), '--port', String(options.port), '--count', String(options.count)],
    { cwd: REPO_ROOT, nofile: options.nofile, stdinPipe: true },
  );
  proc.child.stderr?.on('data', (chunk: Buffer) => process.stderr.write(`[idle client] ${chunk.toString()}`));
  try {
    const next = eventReader(proc);
    const ready = await expectEvent(next, 'ready', 120_000);
    await delay(options.settleMs ?? 1000);
    const rssAfterBytes = groupRssBytes(options.pgid);
    proc.child.stdin!.write('status\n');
    const status = await expectEvent(next, 'status', 10_000);
    const open = status.open ?? 0;
    return {
      target: options.target,
      requested: options.count,
      open,
      failed: ready.failed ?? 0,
      closedByPeer: status.closedByPeer ?? 0,
      openMs: ready.ms ?? 0,
      rssBeforeBytes,
      rssAfterBytes,
      bytesPerConnection: open > 0 ? (rssAfterBytes - rssBeforeBytes) / open : Number.NaN,
      budgetBytes: options.budgetBytes,
      withinBudget: rssAfterBytes <= options.budgetBytes,
      allOpen: open === options.count,
      passed: rssAfterBytes <= options.budgetBytes && open === options.count,
      errors: ready.errors ?? {},
    };
  } finally {
    proc.child.stdin?.end('close\n');
    await stopManaged(proc);
  }
}
