/**
 * The member's side (client): identities and Groth16 membership proofs with snarkjs
 * (`groth16.fullProve`: witness from membership.wasm, proof with membership.zkey; about 1 s of
 * wall time and 190 MB at depth 20).
 *
 * - Identity: a random secret s (31 bytes, < r); commitment = Poseidon(s) is what a group holds.
 * - Per-request proof: signal = F(method, target, SHA-256(body), timestamp) (field.ts), header m=req.
 * - Session proof: signal = F(Ed25519 session public key), header m=ses; the member then signs
 *   requests with the session key (RFC 9421) for that epoch.
 * nullifier = Poseidon(s, Poseidon(scope, epoch)): the same for every proof a member makes in one
 * scope and epoch, unlinkable across scopes and epochs.
 *
 * snarkjs proves on its shared multi-threaded curve (globalThis.curve_bn128); Prover.close()
 * terminates it, or the process would stay alive.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as snarkjs from 'snarkjs';
import { CageError } from '../core/errors.js';
import { requireArtifacts } from './artifacts.js';
import { bytesToBigint, isFieldElement, requestSignal, scopeToField, sessionSignal, type BoundRequest } from './field.js';
import type { Group } from './group.js';
import { encodeZkHeader, proofFromSnarkjs, type ProofPoints } from './header.js';
import { getPoseidon } from './poseidon.js';

export const IDENTITY_FORMAT = 'cage-zk-identity/v1';

export interface Identity {
  secret: bigint;
  commitment: bigint;
}

export interface IdentityFile {
  format: typeof IDENTITY_FORMAT;
  secret: string;
  commitment: string;
}

function badIdentity(message: string): CageError {
  return new CageError({ code: 'ZK_BAD_IDENTITY', message });
}

/** A new identity from `rng` (default: the OS CSPRNG). */
export async function createIdentity(rng: (n: number) => Uint8Array = randomBytes): Promise<Identity> {
  const secret = bytesToBigint(rng(31));
  if (secret === 0n) throw badIdentity('the RNG returned zeros');
  return identityFromSecret(secret);
}

export async function identityFromSecret(secret: bigint): Promise<Identity> {
  if (secret <= 0n || !isFieldElement(secret)) throw badIdentity('the secret must be a non-zero field element');
  const poseidon = await getPoseidon();
  return { secret, commitment: poseidon([secret]) };
}

export function exportIdentity(id: Identity): IdentityFile {
  return { format: IDENTITY_FORMAT, secret: id.secret.toString(), commitment: id.commitment.toString() };
}

/** Parses an identity file (untrusted: checks the format and that the commitment matches the secret). */
export async function importIdentity(json: unknown): Promise<Identity> {
  const o = json as Partial<IdentityFile>;
  if (typeof o !== 'object' || o === null || o.format !== IDENTITY_FORMAT) throw badIdentity(`not a ${IDENTITY_FORMAT} identity`);
  const dec = /^[1-9][0-9]{0,77}$/;
  if (typeof o.secret !== 'string' || !dec.test(o.secret) || typeof o.commitment !== 'string' || !dec.test(o.commitment)) throw badIdentity('secret and commitment must be decimal strings');
  const id = await identityFromSecret(BigInt(o.secret));
  if (id.commitment !== BigInt(o.commitment)) throw badIdentity('the commitment does not match the secret');
  return id;
}

export interface MembershipProof {
  root: bigint;
  nullifier: bigint;
  signalHash: bigint;
  proof: ProofPoints;
}

export interface ProveInput {
  identity: Identity;
  group: Group;
  scope: string;
  epoch: number;
}

/** The nullifier a member shows in (scope, epoch). */
export async function nullifierFor(secret: bigint, scope: string, epoch: number): Promise<bigint> {
  const poseidon = await getPoseidon();
  return poseidon([secret, poseidon([scopeToField(scope), BigInt(epoch)])]);
}

export class Prover {
  readonly #wasm: Uint8Array;
  readonly #zkey: Uint8Array;

  private constructor(wasm: Uint8Array, zkey: Uint8Array) {
    this.#wasm = wasm;
    this.#zkey = zkey;
  }

  /** Loads membership.wasm and membership.zkey once (ZK_ARTIFACTS_MISSING when not built). */
  static async create(opts: { artifactsDir?: string } = {}): Promise<Prover> {
    const paths = requireArtifacts(opts.artifactsDir, ['wasm', 'zkey']);
    return new Prover(readFileSync(paths.wasm), readFileSync(paths.zkey));
  }

  /** The circuit's input (witness assignment) for a member; exposed for tests of the circuit itself. */
  async witnessInput(p: ProveInput, signalHash: bigint): Promise<Record<string, string | string[]>> {
    if (!Number.isSafeInteger(p.epoch) || p.epoch < 0) throw new CageError({ code: 'ZK_BAD_HEADER', message: 'epoch must be a non-negative safe integer' });
    const path = p.group.merkleProof(p.identity.commitment);
    return {
      secret: p.identity.secret.toString(),
      pathIndices: path.pathIndices.map(String),
      siblings: path.siblings.map(String),
      root: path.root.toString(),
      nullifier: (await nullifierFor(p.identity.secret, p.scope, p.epoch)).toString(),
      signalHash: signalHash.toString(),
      scope: scopeToField(p.scope).toString(),
      epoch: String(p.epoch),
    };
  }

  /** A membership proof bound to `signalHash` (ZK_NOT_MEMBER when the identity is not in the group). */
  async prove(p: ProveInput, signalHash: bigint): Promise<MembershipProof> {
    const input = await this.witnessInput(p, signalHash);
    const { proof, publicSignals } = await snarkjs.groth16.fullProve(input, this.#wasm, this.#zkey);
    return { root: BigInt(publicSignals[0]!), nullifier: BigInt(publicSignals[1]!), signalHash, proof: proofFromSnarkjs(proof) };
  }

  /** A `Cage-ZK-Proof` header value for one request (method, target, body digest, timestamp in Unix seconds). */
  async proveRequest(p: ProveInput, request: BoundRequest): Promise<string> {
    const m = await this.prove(p, requestSignal(request));
    return encodeZkHeader({ mode: 'req', group: p.group.id, scope: p.scope, epoch: p.epoch, timestamp: request.timestamp, ...m });
  }

  /** A `Cage-ZK-Proof` header value opening a session for the Ed25519 public key `sessionKey` (32 bytes). */
  async proveSession(p: ProveInput, sessionKey: Uint8Array): Promise<string> {
    const m = await this.prove(p, sessionSignal(sessionKey));
    return encodeZkHeader({ mode: 'ses', group: p.group.id, scope: p.scope, epoch: p.epoch, sessionKey, ...m });
  }

  /** Terminates snarkjs's shared curve (its worker threads keep the process alive otherwise). */
  async close(): Promise<void> {
    await terminateSnarkjsCurve();
  }
}

/** snarkjs caches a multi-threaded curve in globalThis.curve_bn128 that keeps the process alive. */
export async function terminateSnarkjsCurve(): Promise<void> {
  const g = globalThis as { curve_bn128?: { terminate(): Promise<void> } | null };
  const curve = g.curve_bn128;
  if (curve) {
    g.curve_bn128 = null;
    await curve.terminate();
  }
}
