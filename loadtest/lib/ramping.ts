// A ramping-VUs executor like k6's: the number of virtual users follows the stages by linear
// interpolation; each VU loops iteration -> think time while its index is below the current
// target. At the end of the stages VUs stop after their iteration (sleep is cut short); those
// still busy after gracefulStop are aborted through the signal. Bounded in time and iterations.

import { setTimeout as delay } from 'node:timers/promises';

export interface RampStage {
  durationMs: number;
  target: number;
}

export interface RampOptions {
  startVUs: number;
  stages: RampStage[];
  /** Think time after each iteration, ms. */
  sleepMs: number;
  /** Time allowed for in-flight iterations after the last stage, ms. */
  gracefulStopMs: number;
  /** Hard cap on iterations across all VUs (the loop is bounded in count as well as time). */
  maxIterations: number;
  /** How often the VU target is recomputed, ms. */
  tickMs?: number;
}

export interface VuContext {
  /** 0-based VU index; VUs above the target are the ones stopped on ramp-down, like k6. */
  id: number;
  /** 0-based iteration number of this VU. */
  iteration: number;
  /** Aborted when the run is over and the graceful stop expired: stop and record nothing. */
  signal: AbortSignal;
}

export interface RampResult {
  durationMs: number;
  iterations: number;
  maxVUs: number;
  /** Iterations that threw unexpectedly (iteration functions should record their own errors). */
  crashed: number;
  /** Whether in-flight iterations had to be aborted after gracefulStop. */
  interrupted: boolean;
}

/** Target VUs at time t (ms) since start. */
export function targetAt(startVUs: number, stages: RampStage[], t: number): number {
  let from = startVUs;
  let stageStart = 0;
  for (const stage of stages) {
    if (t < stageStart + stage.durationMs) {
      const progress = stage.durationMs === 0 ? 1 : (t - stageStart) / stage.durationMs;
      return Math.round(from + (stage.target - from) * progress);
    }
    from = stage.target;
    stageStart += stage.durationMs;
  }
  return from;
}

/** Runs the executor; resolves when every VU has stopped. */
export async function runRamping(
  options: RampOptions,
  iterate: (vu: VuContext) => Promise<void>,
): Promise<RampResult> {
  const totalMs = options.stages.reduce((sum, s) => sum + s.durationMs, 0);
  const tickMs = options.tickMs ?? 50;
  const softStop = new AbortController(); // ends think time at the end of the run
  const hardStop = new AbortController(); // aborts in-flight iterations after gracefulStop
  const active = new Map<number, Promise<void>>();
  let target = options.startVUs;
  let iterations = 0;
  let crashed = 0;
  let maxVUs = 0;

  const vuLoop = async (id: number): Promise<void> => {
    for (let iteration = 0; ; iteration++) {
      if (softStop.signal.aborted || id >= target || iterations >= options.maxIterations) return;
      iterations += 1;
      try {
        await iterate({ id, iteration, signal: hardStop.signal });
      } catch {
        crashed += 1;
      }
      if (options.sleepMs > 0) {
        await delay(options.sleepMs, undefined, { signal: softStop.signal }).catch(() => undefined);
      }
    }
  };

  const start = performance.now();
  for (;;) {
    const elapsed = performance.now() - start;
    if (elapsed >= totalMs || iterations >= options.maxIterations) break;
    target = targetAt(options.startVUs, options.stages, elapsed);
    for (let id = 0; id < target; id++) {
      if (!active.has(id)) {
        active.set(
          id,
          vuLoop(id).finally(() => active.delete(id)),
        );
      }
    }
    maxVUs = Math.max(maxVUs, active.size);
    await delay(Math.min(tickMs, Math.max(1, totalMs - elapsed)));
  }

  softStop.abort();
  const everyone = Promise.allSettled([...active.values()]);
  const graceTimer = new AbortController();
  const finished = await Promise.race([
    everyone.then(() => true),
    delay(options.gracefulStopMs, false, { signal: graceTimer.signal }).catch(() => true),
  ]);
  graceTimer.abort();
  if (!finished) {
    hardStop.abort();
    await everyone;
  }
  return { durationMs: performance.now() - start, iterations, maxVUs, crashed, interrupted: !finished };
}
