/**
 * Validator-set arithmetic from the QBFT spec: n validators tolerate f = ⌊(n−1)/3⌋ faulty ones,
 * a quorum is Q = ⌈2n/3⌉ (Besu `BftHelpers.calculateRequiredValidatorQuorum`), and the proposer
 * rotates round-robin (Besu `ProposerSelector`, Dafny spec `proposer`).
 */

/** Q = ⌈2n/3⌉: any two quorums share at least f+1 validators, so at least one honest one. */
export function quorumSize(n: number): number {
  return Math.ceil((2 * n) / 3);
}

/** f = ⌊(n−1)/3⌋, the most faulty validators n can tolerate. */
export function maxFaulty(n: number): number {
  return Math.floor((n - 1) / 3);
}

/**
 * The proposer of round `round`: the validator after the previous block's proposer, plus `round`
 * (Besu's "change proposer each block"). With no previous proposer (the block after genesis) or
 * one no longer in the set, round 0 starts at index 0.
 */
export function roundRobinProposer(validators: readonly string[], previousProposer: string | undefined, round: number): string {
  const n = validators.length;
  if (n === 0) throw new RangeError('empty validator set');
  const prev = previousProposer === undefined ? -1 : validators.indexOf(previousProposer);
  const start = prev < 0 ? 0 : prev + 1;
  return validators[(start + (round % n)) % n]!;
}
