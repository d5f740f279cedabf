/**
 * Poseidon over BN254 (circomlib's parameters, the ones membership.circom uses), from circomlibjs's
 * WASM build: the fastest JS Poseidon measured here. Its outputs are Montgomery-form bytes;
 * `hash` converts them to plain field elements (F.toObject).
 */
import { buildPoseidon, type Poseidon } from 'circomlibjs';

export type PoseidonHash = (inputs: bigint[]) => bigint;

let instance: Promise<PoseidonHash> | undefined;

/** The shared Poseidon hash function (built once, on first use; about 50 ms). */
export function getPoseidon(): Promise<PoseidonHash> {
  instance ??= buildPoseidon().then((p: Poseidon) => (inputs: bigint[]) => p.F.toObject(p(inputs)));
  return instance;
}
