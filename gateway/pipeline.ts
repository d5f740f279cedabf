/**
 * The request pipeline's slots, in order: identify → limit → decide → open → (forward) → record.
 * A stage inspects the Exchange and either lets it continue (returns undefined) or answers for
 * the app (returns a CageError, sent as a JSON error with its code). Stages may be async, but the
 * runner only awaits when a stage actually returns a Promise, so a synchronous allow path
 * allocates no promise. Recorders see every finished exchange (access log, metrics; the audit
 * log later) and must not throw.
 */
import type { CageError } from '../core/errors.js';
import type { Exchange } from './exchange.js';

export const STAGE_SLOTS = ['identify', 'limit', 'decide', 'open'] as const;
export type StageSlot = (typeof STAGE_SLOTS)[number];

export type StageResult = CageError | undefined;

export interface Stage {
  readonly slot: StageSlot;
  readonly name: string;
  handle(ex: Exchange): StageResult | Promise<StageResult>;
}

export interface Recorder {
  record(ex: Exchange): void;
}

/** Stages sorted into slot order once, at build time. */
export function orderStages(stages: readonly Stage[]): readonly Stage[] {
  return [...stages].sort((a, b) => STAGE_SLOTS.indexOf(a.slot) - STAGE_SLOTS.indexOf(b.slot));
}

/**
 * Runs `stages` from index `from`; calls `done(result)` synchronously when every stage is
 * synchronous, else after the first Promise settles (then continues with the next stages).
 */
export function runStages(
  stages: readonly Stage[],
  ex: Exchange,
  from: number,
  done: (err: CageError | undefined) => void,
  fail: (err: unknown) => void,
): void {
  for (let i = from; i < stages.length; i++) {
    let r: StageResult | Promise<StageResult>;
    try {
      r = stages[i]!.handle(ex);
    } catch (err) {
      fail(err);
      return;
    }
    if (r === undefined) continue;
    if (r instanceof Promise) {
      r.then((res) => (res === undefined ? runStages(stages, ex, i + 1, done, fail) : done(res)), fail);
      return;
    }
    done(r);
    return;
  }
  done(undefined);
}
