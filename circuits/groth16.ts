/**
 * Groth16 verification over BN254 for the membership circuit, on a single-threaded curve
 * (ffjavascript's `buildBn128(true)`, through snarkjs's `curves`): about 9 ms of CPU a proof
 * against ~25 ms for snarkjs's default multi-threaded curve, and no hidden threads. The
 * verification key is parsed once. The same check as snarkjs's groth16.verify
 * (e(−A, B)·e(vk_x, γ)·e(C, δ)·e(α, β) = 1) plus a subgroup check of B in G2, which snarkjs omits.
 *
 * The public signals come from the caller (the cage's own root, nullifier, signal, scope, epoch),
 * never from the prover; their count is checked against the key (snarkjs does not check it).
 * `pairingEq` is async: it is awaited (a forgotten await is an always-true Promise).
 * One instance owns one curve (WASM memory); close() frees it.
 */
import { readFileSync } from 'node:fs';
import * as snarkjs from 'snarkjs';
import { CageError } from '../core/errors.js';
import { BN254_BASE_FIELD, SNARK_SCALAR_FIELD } from './field.js';
import type { ProofPoints } from './header.js';

/** Public inputs of membership.circom, in its order: root, nullifier, signalHash, scope, epoch. */
export const PUBLIC_SIGNAL_COUNT = 5;

/** snarkjs's verification_key.json, the fields used here. */
export interface VerificationKeyJson {
  protocol: string;
  curve: string;
  nPublic: number;
  vk_alpha_1: string[];
  vk_beta_2: string[][];
  vk_gamma_2: string[][];
  vk_delta_2: string[][];
  IC: string[][];
}

type Point = Uint8Array;
/** ffjavascript's curve, the part used here. */
interface Curve {
  G1: CurveGroup;
  G2: CurveGroup;
  pairingEq(...points: Point[]): Promise<boolean>;
  terminate(): Promise<void>;
}
interface CurveGroup {
  fromObject(o: unknown): Point;
  add(a: Point, b: Point): Point;
  neg(a: Point): Point;
  timesScalar(a: Point, s: bigint): Point;
  isValid(a: Point): boolean;
  isZero(a: Point): boolean;
}

function missing(message: string, cause?: unknown): CageError {
  return new CageError({ code: 'ZK_ARTIFACTS_MISSING', message, cause });
}

/** Reads and checks a verification key file (ZK_ARTIFACTS_MISSING when absent or not this circuit's shape). */
export function readVerificationKey(file: string): VerificationKeyJson {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw missing(`cannot read the verification key ${file}; run npm run build:circuits`, err);
  }
  return checkVerificationKey(json);
}

export function checkVerificationKey(json: unknown): VerificationKeyJson {
  const vk = json as VerificationKeyJson;
  if (typeof vk !== 'object' || vk === null || vk.protocol !== 'groth16' || vk.curve !== 'bn128' || vk.nPublic !== PUBLIC_SIGNAL_COUNT || !Array.isArray(vk.IC) || vk.IC.length !== PUBLIC_SIGNAL_COUNT + 1) {
    throw missing(`not a Groth16 bn128 verification key with ${PUBLIC_SIGNAL_COUNT} public inputs`);
  }
  return vk;
}

const big = (v: unknown): unknown => (Array.isArray(v) ? v.map(big) : BigInt(v as string));

export class Groth16Verifier {
  readonly #curve: Curve;
  readonly #ic: Point[];
  readonly #gamma2: Point;
  readonly #delta2: Point;
  readonly #alpha1: Point;
  readonly #beta2: Point;
  #closed = false;

  private constructor(curve: Curve, vk: VerificationKeyJson) {
    this.#curve = curve;
    this.#ic = vk.IC.map((p) => curve.G1.fromObject(big(p)));
    this.#gamma2 = curve.G2.fromObject(big(vk.vk_gamma_2));
    this.#delta2 = curve.G2.fromObject(big(vk.vk_delta_2));
    this.#alpha1 = curve.G1.fromObject(big(vk.vk_alpha_1));
    this.#beta2 = curve.G2.fromObject(big(vk.vk_beta_2));
  }

  static async create(vk: VerificationKeyJson): Promise<Groth16Verifier> {
    checkVerificationKey(vk);
    const curve = (await snarkjs.curves.getCurveFromName('bn128', { singleThread: true })) as Curve;
    try {
      return new Groth16Verifier(curve, vk);
    } catch (err) {
      await curve.terminate();
      throw missing('the verification key does not parse', err);
    }
  }

  /** Whether `proof` is valid for `signals` (true/false; it throws only on misuse). */
  async verify(signals: readonly bigint[], proof: ProofPoints): Promise<boolean> {
    if (this.#closed) throw new CageError({ code: 'GW_INTERNAL', message: 'the Groth16 verifier is closed' });
    if (signals.length !== PUBLIC_SIGNAL_COUNT) throw new CageError({ code: 'GW_INTERNAL', message: `expected ${PUBLIC_SIGNAL_COUNT} public signals` });
    const { G1, G2 } = this.#curve;
    for (const s of signals) if (s < 0n || s >= SNARK_SCALAR_FIELD) return false;
    for (const x of [...proof.a, ...proof.b[0], ...proof.b[1], ...proof.c]) if (x < 0n || x >= BN254_BASE_FIELD) return false;
    const a = G1.fromObject([proof.a[0], proof.a[1], 1n]);
    const b = G2.fromObject([proof.b[0], proof.b[1], [1n, 0n]]);
    const c = G1.fromObject([proof.c[0], proof.c[1], 1n]);
    // On the curve (G1 has cofactor 1), and B in the order-r subgroup of G2.
    if (!G1.isValid(a) || !G1.isValid(c) || !G2.isValid(b) || !G2.isZero(G2.timesScalar(b, SNARK_SCALAR_FIELD))) return false;
    let vkx = this.#ic[0]!;
    for (let i = 0; i < signals.length; i++) {
      if (signals[i] !== 0n) vkx = G1.add(vkx, G1.timesScalar(this.#ic[i + 1]!, signals[i]!));
    }
    const ok = await this.#curve.pairingEq(G1.neg(a), b, vkx, this.#gamma2, c, this.#delta2, this.#alpha1, this.#beta2);
    return ok === true;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#curve.terminate();
  }
}
