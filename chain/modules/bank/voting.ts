/**
 * GEN-weighted voting shared by court cases and governance proposals. A vote weighs the voter's
 * bonded GEN when cast; bonded stake can leave an account only through the unbonding delay, and
 * every voting window is at most that delay (checked when params change), so one stake cannot
 * vote twice from two accounts in one window. Quorum and threshold are basis points: turnout is
 * measured against all bonded GEN, the threshold against the non-abstaining votes.
 */
import type { CageErrorCode } from '../../../core/errors.js';
import type { StateView } from '../../module.js';
import { fail, readJson, writeJson, BPS } from './util.js';

export interface Tally {
  /** Decimal strings, by choice. */
  readonly [choice: string]: string;
}

export interface VoteCodes {
  readonly closed: CageErrorCode;
  readonly again: CageErrorCode;
  readonly noStake: CageErrorCode;
}

/**
 * Records `voter`'s choice under `prefix` and returns the new tally. Refuses a second vote, a vote
 * after `endHeight` and a voter without bonded stake.
 */
export function castVote(state: StateView, prefix: string, voter: string, choice: string, weight: bigint, tally: Tally, height: number, endHeight: number, codes: VoteCodes): Tally {
  if (height > endHeight) throw fail(codes.closed, `voting closed at height ${endHeight}`);
  if (weight <= 0n) throw fail(codes.noStake, `${voter} has no bonded GEN`);
  const key = `${prefix}${voter}`;
  if (readJson(state, key) !== undefined) throw fail(codes.again, `${voter} already voted`);
  writeJson(state, key, { choice, weight: weight.toString() });
  return { ...tally, [choice]: (BigInt(tally[choice] ?? '0') + weight).toString() };
}

/** Whether `yes` carries: turnout ≥ quorum of all bonded GEN, and yes ≥ threshold of yes + no. */
export function decide(tally: Tally, yes: string, no: string, totalBonded: bigint, quorumBps: number, thresholdBps: number): 'passed' | 'rejected' | 'no-quorum' {
  let turnout = 0n;
  for (const v of Object.values(tally)) turnout += BigInt(v);
  if (totalBonded === 0n || turnout * BPS < totalBonded * BigInt(quorumBps)) return 'no-quorum';
  const y = BigInt(tally[yes] ?? '0');
  const n = BigInt(tally[no] ?? '0');
  if (y + n === 0n) return 'rejected';
  return y * BPS >= (y + n) * BigInt(thresholdBps) && y > 0n ? 'passed' : 'rejected';
}

/** Deletes the per-voter records of a closed vote. */
export function clearVotes(state: StateView, prefix: string): void {
  const keys = [...state.entries(prefix)].map(([k]) => k);
  for (const k of keys) state.delete(k);
}
