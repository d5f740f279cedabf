/**
 * The cage's side of anonymous membership: checks a `Cage-ZK-Proof` header against the cage's
 * own view (route scope, current epoch, the group's root history, the request it arrived with)
 * and verifies the Groth16 proof in the worker pool. Returns what the gateway needs to enforce
 * and audit (group, root, nullifier, scope, epoch; the session key for a session proof), or
 * throws a CageError with a distinct code.
 *
 * Order of checks, cheapest first; each failure has its own code:
 *   header syntax      ZK_BAD_HEADER      (header.ts; attacker bytes)
 *   mode               ZK_WRONG_MODE      (a session proof where a per-request one is required, …)
 *   scope              ZK_WRONG_SCOPE
 *   epoch              ZK_WRONG_EPOCH
 *   timestamp window   ZK_EXPIRED         (per-request proofs only)
 *   group              ZK_UNKNOWN_GROUP
 *   root               ZK_UNKNOWN_ROOT / ZK_STALE_ROOT (only roots from the group's own history)
 *   signal             ZK_WRONG_SIGNAL    (recomputed from this request / this session key)
 *   proof              ZK_BAD_PROOF       (pairing check in the pool; ZK_BUSY when it is full)
 * The public signals handed to the pairing are all the cage's own values; the header's copies
 * are only compared with them. Nullifier accounting (one per member per scope and epoch, replay)
 * is the gateway's job, on the returned nullifier.
 */
import { CageError } from '../core/errors.js';
import { requireArtifacts } from './artifacts.js';
import { requestSignal, scopeToField, sessionSignal } from './field.js';
import { checkVerificationKey, readVerificationKey, type VerificationKeyJson } from './groth16.js';
import type { RootStatus } from './group.js';
import { decodeZkHeader, type ZkProofHeader } from './header.js';
import { VerifyPool, type VerifyPoolOptions } from './verify-pool.js';

/** What the verifier needs of a group: Group is one. */
export interface RootHistory {
  rootStatus(root: bigint): RootStatus;
}
/** The groups the cage knows, by id (undefined: unknown group). */
export type GroupLookup = (groupId: string) => RootHistory | undefined;

export interface ZkContext {
  /** The route's scope: the proof must be for exactly this one. */
  scope: string;
  /** The accepted epoch(s) (e.g. the current one, or current and previous around a boundary). */
  epoch: number | readonly number[];
  groups: GroupLookup;
}

export interface ZkRequestContext extends ZkContext {
  /** Accepted |now − timestamp|, seconds. Default 60. */
  windowSeconds?: number;
}

/** The request as the cage received it. */
export interface ZkRequestFacts {
  method: string;
  /** Path and query as sent. */
  target: string;
  /** SHA-256 of the request body (of the empty string when there is none). */
  contentDigest: Uint8Array;
  /** The cage's clock, Unix milliseconds. */
  now: number;
}

export interface ZkVerified {
  mode: 'req' | 'ses';
  group: string;
  root: bigint;
  rootStatus: 'current' | 'recent';
  nullifier: bigint;
  scope: string;
  epoch: number;
}

export interface ZkSessionVerified extends ZkVerified {
  mode: 'ses';
  /** The Ed25519 session public key (raw 32 bytes) the member may sign requests with this epoch. */
  sessionKey: Uint8Array;
}

export interface ZkVerifierOptions {
  /** Folder with verification_key.json (default circuits/build). Ignored when verificationKey is given. */
  artifactsDir?: string;
  verificationKey?: VerificationKeyJson;
  /** Worker pool settings (size 0: inline, for tests and baselines). */
  pool?: Omit<VerifyPoolOptions, 'verificationKey'>;
}

export const DEFAULT_WINDOW_SECONDS = 60;
const SCOPE_CACHE_LIMIT = 1024;

function fail(code: 'ZK_WRONG_MODE' | 'ZK_WRONG_SCOPE' | 'ZK_WRONG_EPOCH' | 'ZK_EXPIRED' | 'ZK_UNKNOWN_GROUP' | 'ZK_UNKNOWN_ROOT' | 'ZK_STALE_ROOT' | 'ZK_WRONG_SIGNAL' | 'ZK_BAD_PROOF', message: string): CageError {
  return new CageError({ code, message });
}

export class ZkVerifier {
  readonly #pool: VerifyPool;
  readonly #scopeFields = new Map<string, bigint>();

  private constructor(pool: VerifyPool) {
    this.#pool = pool;
  }

  /** Parses the verification key once and starts the pool (ZK_ARTIFACTS_MISSING without a key). */
  static async create(opts: ZkVerifierOptions = {}): Promise<ZkVerifier> {
    const vk = opts.verificationKey !== undefined ? checkVerificationKey(opts.verificationKey) : readVerificationKey(requireArtifacts(opts.artifactsDir, ['verificationKey']).verificationKey);
    return new ZkVerifier(await VerifyPool.start({ ...opts.pool, verificationKey: vk }));
  }

  get pool(): VerifyPool {
    return this.#pool;
  }

  /** A per-request proof (`m=req`) for this exact request. */
  async verifyRequestProof(header: string, req: ZkRequestFacts, ctx: ZkRequestContext): Promise<ZkVerified> {
    const h = decodeZkHeader(header);
    if (h.mode !== 'req') throw fail('ZK_WRONG_MODE', 'a session proof where a per-request proof is required');
    this.#checkScopeEpoch(h, ctx);
    const window = ctx.windowSeconds ?? DEFAULT_WINDOW_SECONDS;
    if (Math.abs(req.now / 1000 - h.timestamp) > window) throw fail('ZK_EXPIRED', `the proof's timestamp is more than ${window} s from the cage's clock`);
    const rootStatus = this.#checkRoot(h, ctx);
    const signal = requestSignal({ method: req.method, target: req.target, contentDigest: req.contentDigest, timestamp: h.timestamp });
    return { ...(await this.#verify(h, signal)), rootStatus };
  }

  /** A session-opening proof (`m=ses`): the member may sign with the returned key for the epoch. */
  async verifySessionProof(header: string, ctx: ZkContext): Promise<ZkSessionVerified> {
    const h = decodeZkHeader(header);
    if (h.mode !== 'ses') throw fail('ZK_WRONG_MODE', 'a per-request proof where a session proof is required');
    this.#checkScopeEpoch(h, ctx);
    const rootStatus = this.#checkRoot(h, ctx);
    const verified = await this.#verify(h, sessionSignal(h.sessionKey));
    return { ...verified, rootStatus, mode: 'ses', sessionKey: h.sessionKey };
  }

  close(): Promise<void> {
    return this.#pool.close();
  }

  #checkScopeEpoch(h: ZkProofHeader, ctx: ZkContext): void {
    if (h.scope !== ctx.scope) throw fail('ZK_WRONG_SCOPE', 'the proof is for another scope');
    const ok = typeof ctx.epoch === 'number' ? h.epoch === ctx.epoch : ctx.epoch.includes(h.epoch);
    if (!ok) throw fail('ZK_WRONG_EPOCH', `the proof is for epoch ${h.epoch}`);
  }

  #checkRoot(h: ZkProofHeader, ctx: ZkContext): 'current' | 'recent' {
    const group = ctx.groups(h.group);
    if (group === undefined) throw fail('ZK_UNKNOWN_GROUP', 'the proof names an unknown group');
    const status = group.rootStatus(h.root);
    if (status === 'stale') throw fail('ZK_STALE_ROOT', 'the proof is for a root that is no longer accepted');
    if (status !== 'current' && status !== 'recent') throw fail('ZK_UNKNOWN_ROOT', 'the proof is for a root the group never had');
    return status;
  }

  async #verify(h: ZkProofHeader, signal: bigint): Promise<Omit<ZkVerified, 'rootStatus'>> {
    if (h.signalHash !== signal) throw fail('ZK_WRONG_SIGNAL', 'the proof is bound to another request or session key');
    // Public signals in membership.circom's order, every one the cage's own value.
    const signals = [h.root, h.nullifier, signal, this.#scopeField(h.scope), BigInt(h.epoch)];
    if (!(await this.#pool.verify(signals, h.proof))) throw fail('ZK_BAD_PROOF', 'the proof does not verify');
    return { mode: h.mode, group: h.group, root: h.root, nullifier: h.nullifier, scope: h.scope, epoch: h.epoch };
  }

  #scopeField(scope: string): bigint {
    let f = this.#scopeFields.get(scope);
    if (f === undefined) {
      if (this.#scopeFields.size >= SCOPE_CACHE_LIMIT) this.#scopeFields.clear();
      f = scopeToField(scope);
      this.#scopeFields.set(scope, f);
    }
    return f;
  }
}
