/**
 * The ZK identify stage (after IdentifyStage, in the identify slot): on routes with `require_zk`
 * the caller must be an anonymous member of the route's group, by one of
 *   - a per-request proof (`Cage-ZK-Proof: …m=req…`) bound to this request (method, target,
 *     body digest, timestamp), verified in the worker pool;
 *   - a session-opening proof (`…m=ses…`) binding an Ed25519 key for (scope, epoch); the request
 *     that carries it goes through, and the session is remembered;
 *   - an RFC 9421 signature by a session key (IdentifyStage verified it and set the did:key),
 *     which costs a map lookup here.
 * Then ex.identityKind = 'zk', ex.identity = `zk:<nullifier hex>`, ex.zk = the facts (group,
 * root, nullifier, scope, epoch, mode): nothing that identifies the member. Routes without
 * `require_zk` are not touched. Every refusal is a CageError with a ZK_* code.
 *
 * Trust: the header is attacker input (decoded by circuits/header.ts, checked by
 * circuits/verifier.ts against the cage's own scope, epoch, group roots and request).
 */
import { createHash } from 'node:crypto';
import { decodeZkHeader, ZK_PROOF_HEADER } from '../../circuits/header.js';
import type { ZkVerifier, ZkVerified } from '../../circuits/verifier.js';
import { CageError, isCageError } from '../../core/errors.js';
import { didKeyFromPublicKey } from '../../core/did-key.js';
import type { ZkConfig, ZkRouteRequirement } from '../config/zk.js';
import { EMPTY_LIST, type Exchange, type ZkFacts } from '../exchange.js';
import { EMPTY_SHA256 } from '../forward.js';
import type { Stage, StageResult } from '../pipeline.js';
import type { GroupStore } from './groups.js';
import type { NullifierStore } from './nullifiers.js';

/** A field element as the 64 hex digits the store, the identity and the audit record use. */
export function fieldHex(x: bigint): string {
  return x.toString(16).padStart(64, '0');
}

export interface ZkParts {
  verifier: ZkVerifier;
  groups: GroupStore;
  nullifiers: NullifierStore;
  /** Unix ms. */
  now: () => number;
}

export class ZkStage implements Stage {
  readonly slot = 'identify' as const;
  readonly name = 'zk';
  private readonly epochSeconds: number;

  constructor(
    private readonly parts: ZkParts,
    private readonly config: ZkConfig,
  ) {
    this.epochSeconds = parts.nullifiers.epochSeconds;
  }

  handle(ex: Exchange): StageResult | Promise<StageResult> {
    const req = this.config.routes.get(ex.route);
    if (req === undefined) return undefined;
    const header = ex.header(ZK_PROOF_HEADER);
    if (header !== undefined) return this.withProof(ex, req, header);
    if (ex.identityKind === 'did' && ex.signed) return this.fromSession(ex, req);
    return new CageError({ code: 'ZK_REQUIRED', message: `route ${req.route} requires anonymous membership of group ${req.group} (${ZK_PROOF_HEADER} or a session signature)` });
  }

  private epoch(nowMs: number): number {
    return Math.floor(nowMs / 1000 / this.epochSeconds);
  }

  /** A request signed by a session key: the session must be for this route's group, scope and the current epoch. */
  private fromSession(ex: Exchange, req: ZkRouteRequirement): StageResult {
    const s = this.parts.nullifiers.session(ex.identity);
    if (s === undefined) return new CageError({ code: 'ZK_UNKNOWN_SESSION', message: 'the request is signed with a key that opened no anonymous session here' });
    if (req.mode === 'request') return new CageError({ code: 'ZK_WRONG_MODE', message: `route ${req.route} takes per-request proofs only` });
    const f = s.facts;
    if (f.scope !== req.scope) return new CageError({ code: 'ZK_WRONG_SCOPE', message: "the session is for another scope than the route's" });
    if (f.group !== req.group) return new CageError({ code: 'ZK_UNKNOWN_GROUP', message: "the session is for another group than the route's" });
    if (f.epoch !== this.epoch(this.parts.now())) return new CageError({ code: 'ZK_SESSION_EXPIRED', message: `the session was opened for epoch ${f.epoch}` });
    // A session lives as long as its root is accepted: a member removed from the group loses it
    // once the root history has moved past the root the session was proved against.
    const group = this.parts.groups.get(f.group);
    if (group === undefined) return new CageError({ code: 'ZK_UNKNOWN_GROUP', message: "the session's group no longer exists" });
    const status = group.rootStatus(s.root);
    if (status !== 'current' && status !== 'recent') return new CageError({ code: 'ZK_STALE_ROOT', message: "the session's root is no longer accepted; open a new session" });
    this.identify(ex, f);
    return undefined;
  }

  private async withProof(ex: Exchange, req: ZkRouteRequirement, header: string): Promise<StageResult> {
    try {
      const h = decodeZkHeader(header);
      if (req.mode === 'request' && h.mode === 'ses') throw new CageError({ code: 'ZK_WRONG_MODE', message: `route ${req.route} takes per-request proofs only` });
      if (req.mode === 'session' && h.mode === 'req') throw new CageError({ code: 'ZK_WRONG_MODE', message: `route ${req.route} takes session proofs only` });
      const store = this.parts.nullifiers;
      // Cheap refusals before the pairing: an accepted proof again, or a member past its limit.
      const early = store.check(h.scope, h.epoch, fieldHex(h.nullifier), fieldHex(h.signalHash), req.limit);
      if (early !== undefined) return early;
      const nowMs = this.parts.now();
      const groups = (id: string) => (id === req.group ? this.parts.groups.get(id) : undefined);
      let v: ZkVerified;
      let session: string | undefined;
      if (h.mode === 'req') {
        // Around an epoch boundary a proof made just before it is still within the window.
        const epochs = [...new Set([this.epoch(nowMs - this.config.windowSeconds * 1000), this.epoch(nowMs)])];
        const contentDigest = ex.body === null ? EMPTY_SHA256 : await this.bodyDigest(ex);
        v = await this.parts.verifier.verifyRequestProof(header, { method: ex.method, target: ex.target, contentDigest, now: nowMs }, { scope: req.scope, epoch: epochs, groups, windowSeconds: this.config.windowSeconds });
      } else {
        const s = await this.parts.verifier.verifySessionProof(header, { scope: req.scope, epoch: this.epoch(nowMs), groups });
        session = didKeyFromPublicKey(s.sessionKey);
        v = s;
      }
      const facts: ZkFacts = Object.freeze({ group: v.group, root: fieldHex(v.root), nullifier: fieldHex(v.nullifier), scope: v.scope, epoch: v.epoch, mode: h.mode === 'req' ? 'request' : 'session' });
      await store.accept({ scope: facts.scope, epoch: facts.epoch, nullifier: facts.nullifier, signal: fieldHex(h.signalHash), group: facts.group, root: facts.root, session }, req.limit);
      this.identify(ex, facts);
      return undefined;
    } catch (err) {
      if (isCageError(err)) return err;
      throw err;
    }
  }

  private async bodyDigest(ex: Exchange): Promise<Buffer> {
    const max = this.config.maxBodyBytes;
    const { bytes, complete } = await ex.body!.peek(max + 1);
    if (!complete) throw new CageError({ code: 'GW_BODY_TOO_LARGE', message: `a body bound by a per-request proof is read before forwarding and may be at most ${max} bytes (zk.max_body_bytes)` });
    return createHash('sha256').update(bytes).digest();
  }

  private identify(ex: Exchange, f: ZkFacts): void {
    ex.identityKind = 'zk';
    ex.identity = `zk:${f.nullifier}`;
    ex.zk = f;
    ex.roles = EMPTY_LIST;
    ex.rateClass = '';
  }
}

