/**
 * Bounded polling instead of fixed sleeps: the test machine is two noisy cores, so tests wait for
 * a condition, and the timeout is only a safety net (it fails the test, it never measures it).
 */
import { sleep } from './servers.js';

export async function waitUntil(probe: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000, intervalMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(intervalMs);
  }
}
