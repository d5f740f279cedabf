/**
 * The court's rules, set in genesis and changed by governance (`setCourtParam`). Fractions are
 * basis points (10,000 = 100 %). Stored as JSON at `court/params`.
 */
import type { CageErrorCode } from '../../../core/errors.js';
import type { StateView } from '../../module.js';
import { Args, paramStore } from '../bank/util.js';

export interface CourtParams {
  /** Share of an offender's bonded GEN (in the offending role) an automatic case slashes. */
  readonly slashBps: number;
  /** Share of the slashed GEN paid to the reporter; the rest is burnt. */
  readonly reporterShareBps: number;
  /** Share of the losing respondent's bond a judged case moves to the claimant. */
  readonly judgedSlashBps: number;
  /** GEN a claimant (or a consistency challenger) deposits; the loser's side receives it. */
  readonly caseDeposit: string;
  /** Blocks a judged case is open for votes. */
  readonly votingBlocks: number;
  /** Turnout, of all bonded GEN, for a judged case to count. */
  readonly quorumBps: number;
  /** Share of the claimant + respondent votes the claimant needs. */
  readonly thresholdBps: number;
  /** Validator evidence older than this many blocks is stale. */
  readonly evidenceMaxAgeBlocks: number;
  /** Notary cosignatures older than this (ms, against block time) are stale. */
  readonly evidenceMaxAgeMs: number;
  /** The validator set is never voted below this size by a slashing. */
  readonly minValidators: number;
  /** Blocks a log has to answer a consistency challenge with a proof. */
  readonly challengeBlocks: number;
}

export const DEFAULT_COURT_PARAMS: CourtParams = Object.freeze({
  slashBps: 1000,
  reporterShareBps: 5000,
  judgedSlashBps: 1000,
  caseDeposit: '10',
  votingBlocks: 50,
  quorumBps: 3334,
  thresholdBps: 5000,
  evidenceMaxAgeBlocks: 100_000,
  evidenceMaxAgeMs: 30 * 24 * 3600 * 1000,
  minValidators: 4,
  challengeBlocks: 50,
});

export function parseCourtParams(value: unknown, code: CageErrorCode): CourtParams {
  const a = Args.of(value ?? {}, Object.keys(DEFAULT_COURT_PARAMS), code, 'court params');
  const d = DEFAULT_COURT_PARAMS;
  const bps = (k: keyof CourtParams): number => (a.has(k) ? a.int(k, 0, 10_000) : (d[k] as number));
  const blocks = (k: keyof CourtParams, min = 1): number => (a.has(k) ? a.int(k, min, 10_000_000) : (d[k] as number));
  return {
    slashBps: bps('slashBps'),
    reporterShareBps: bps('reporterShareBps'),
    judgedSlashBps: bps('judgedSlashBps'),
    caseDeposit: a.has('caseDeposit') ? a.amount('caseDeposit', true).toString() : d.caseDeposit,
    votingBlocks: blocks('votingBlocks'),
    quorumBps: bps('quorumBps'),
    thresholdBps: bps('thresholdBps'),
    evidenceMaxAgeBlocks: blocks('evidenceMaxAgeBlocks'),
    evidenceMaxAgeMs: a.has('evidenceMaxAgeMs') ? a.int('evidenceMaxAgeMs', 1) : d.evidenceMaxAgeMs,
    minValidators: blocks('minValidators'),
    challengeBlocks: blocks('challengeBlocks'),
  };
}

export const COURT_PARAMS_KEY = 'court/params';

const store = paramStore(COURT_PARAMS_KEY, DEFAULT_COURT_PARAMS, parseCourtParams);

export const courtParams: (state: StateView) => CourtParams = store.get;

/** Governance: sets one court parameter (`slashBps`, `caseDeposit`, …). */
export const setCourtParam: (state: StateView, path: string, value: unknown, code: CageErrorCode) => CourtParams = store.set;
