/**
 * The QBFT state machine for one validator (or a non-validating observer), one height at a time.
 * An auditor should be able to read it top to bottom next to the QBFT Dafny specification
 * (Consensys `qbft-formal-spec-and-verification`, node.dfy: UponProposal, UponPrepare, UponCommit,
 * UponRoundChange, UponRoundTimeout) and Besu's qbft-core (QbftBlockHeightManager, QbftRound,
 * RoundChangeManager, MessageValidator). Inputs and outputs are described in index.ts.
 *
 * Per height h:
 *  - round 0: the proposer (`opts.proposer(h, 0)`) builds a block and broadcasts PROPOSAL.
 *  - A validator accepts the first valid PROPOSAL of its round (right proposer, digest = hash of
 *    the block, block valid, justified if round > 0) and broadcasts PREPARE.
 *  - On Q PREPAREs matching the accepted proposal it is *prepared* (keeps the certificate) and
 *    broadcasts COMMIT with a commit seal. On Q COMMITs (valid seals) the block is decided.
 *  - On a round timeout (base·2^r) it moves to r+1 and broadcasts ROUND-CHANGE with its latest
 *    prepared certificate. On Q ROUND-CHANGEs for (h, r') the node moves to r' and, if proposer,
 *    re-proposes the block of the highest prepared certificate among them (or a new block if none),
 *    attaching the ROUND-CHANGEs and that certificate's PREPAREs as justification.
 *  - On f+1 ROUND-CHANGEs for rounds above its own it jumps to the lowest of them and sends its own
 *    ROUND-CHANGE (the spec's optional round skip), so lagging nodes catch up quickly.
 *
 * Deviations / choices, each safe by the spec's argument:
 *  - A justified PROPOSAL for a higher round of the current height moves the node to that round and
 *    is accepted (Besu; the Dafny isValidProposal takes one only after a proposal in its own round).
 *  - COMMITs of an earlier round of the current height still decide when the node holds that
 *    round's proposal (Q valid seals are final whatever round the node is in).
 *  - Round-change bookkeeping keeps each signer's highest ROUND-CHANGE only (an honest node only
 *    moves up), which bounds memory by the validator count.
 *  - Messages for heights above the current one are buffered (bounded per signer and in total,
 *    signature checked first) and replayed when the node reaches their height.
 *
 * Crash safety: before broadcasting anything it signs, the machine emits `persist` with its round,
 * the digest it signed in that round, and its prepared certificate (state.ts). After a restart it
 * resumes that round and will sign nothing for another digest in it.
 */
import { isCageError, type CageErrorCode } from '../../core/errors.js';
import type { CommitSeal, QbftInput, QbftOptions, QbftOutput } from './index.js';
import {
  MAX_JUSTIFICATION,
  MAX_MESSAGE_BYTES,
  MessageType,
  conflicts,
  decodeMessage,
  encodeMessage,
  signPayload,
  verifySignedPayload,
  type CommitMessage,
  type Payload,
  type PrepareMessage,
  type ProposalMessage,
  type QbftMessage,
  type RoundChangeMessage,
  type SignedPayload,
} from './messages.js';
import { signCommitSeal, verifyCommitSeal } from './seals.js';
import { decodePersistedState, encodePersistedState, type PersistedState, type PreparedCertificate } from './state.js';
import { maxFaulty, quorumSize } from './validators.js';

/** setTimeout's largest delay; round timers stop doubling there. */
export const MAX_TIMER_MS = 0x7fff_ffff;
/** How many rounds ahead PREPAREs and COMMITs are kept (a justified PROPOSAL can jump further). */
export const MAX_FUTURE_ROUNDS = 10;
const DEFAULT_MAX_FUTURE_MESSAGES = 1024;
const DEFAULT_MAX_FUTURE_HEIGHTS = 10;
const MAX_VERIFIED_CACHE = 65_536;

/** Round r times out after base·2^r ms, capped at MAX_TIMER_MS. */
export function roundTimeoutMs(baseMs: number, round: number): number {
  if (round >= 31) return MAX_TIMER_MS;
  return Math.min(MAX_TIMER_MS, baseMs * 2 ** round);
}

type PreparePayload = Extract<Payload, { type: typeof MessageType.PREPARE }>;
type CommitPayload = Extract<Payload, { type: typeof MessageType.COMMIT }>;
type RoundChangePayload = Extract<Payload, { type: typeof MessageType.ROUND_CHANGE }>;

/** A refusal: becomes a `reject` output. */
class Refusal {
  constructor(
    readonly code: CageErrorCode,
    readonly reason: string,
    readonly evidence?: [Uint8Array, Uint8Array],
  ) {}
}

interface AcceptedProposal {
  digest: Buffer;
  block: Uint8Array;
  payload: SignedPayload;
}

interface RoundState {
  proposal?: AcceptedProposal;
  prepares: Map<string, SignedPayload<PreparePayload>>;
  commits: Map<string, SignedPayload<CommitPayload>>;
  sentCommit: boolean;
}

interface FutureMessage {
  height: number;
  signer: string;
  key: string;
  message: QbftMessage;
}

function sameDigest(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(a, b) === 0;
}

function keyOf(p: SignedPayload): string {
  return Buffer.from(p.bytes.buffer, p.bytes.byteOffset, p.bytes.byteLength).toString('latin1');
}

export class QbftNode {
  private readonly opts: QbftOptions;
  private readonly self: string;
  private readonly maxFutureMessages: number;
  private readonly maxFutureHeights: number;
  private readonly maxMessageBytes: number;

  // Per height
  private height = -1;
  private round = 0;
  private validators: readonly string[] = [];
  private members = new Set<string>();
  private quorum = Infinity;
  private faulty = 0;
  private isValidator = false;
  /** True when the persisted state was unreadable: never sign at this height. */
  private silent = false;
  private decided = false;
  /** Digest this node signed (proposed/prepared/committed) in `round`. */
  private signedDigest: Buffer | undefined;
  private prepared: PreparedCertificate | undefined;
  private proposedRound = -1;
  private rounds = new Map<number, RoundState>();
  /** Each signer's highest valid ROUND-CHANGE at this height. */
  private roundChanges = new Map<string, RoundChangeMessage>();
  private verified = new Set<string>();

  // Across heights
  private pendingRestore: PersistedState | undefined;
  private future: FutureMessage[] = [];
  private futureKeys = new Set<string>();
  private futurePerSigner = new Map<string, number>();

  // Per handle() call
  private out: QbftOutput[] = [];
  private dirty = false;

  constructor(opts: QbftOptions) {
    const known = new Set(['signer', 'verify', 'blocks', 'validators', 'proposer', 'baseRoundTimeoutMs', 'maxFutureMessages', 'maxFutureHeights', 'maxMessageBytes']);
    for (const k of Object.keys(opts)) if (!known.has(k)) throw new TypeError(`QbftOptions: unknown option ${JSON.stringify(k)}`);
    if (typeof opts.signer?.id !== 'string' || typeof opts.signer.sign !== 'function') throw new TypeError('QbftOptions.signer needs id and sign');
    if (typeof opts.verify !== 'function') throw new TypeError('QbftOptions.verify must be a function');
    for (const f of ['createBlock', 'validateBlock', 'hashBlock', 'heightOf'] as const) {
      if (typeof opts.blocks?.[f] !== 'function') throw new TypeError(`QbftOptions.blocks.${f} must be a function`);
    }
    if (typeof opts.validators !== 'function' || typeof opts.proposer !== 'function') throw new TypeError('QbftOptions.validators and proposer must be functions');
    if (!(Number.isFinite(opts.baseRoundTimeoutMs) && opts.baseRoundTimeoutMs > 0)) throw new TypeError('QbftOptions.baseRoundTimeoutMs must be > 0');
    this.maxFutureMessages = positive(opts.maxFutureMessages, DEFAULT_MAX_FUTURE_MESSAGES, 'maxFutureMessages');
    this.maxFutureHeights = positive(opts.maxFutureHeights, DEFAULT_MAX_FUTURE_HEIGHTS, 'maxFutureHeights');
    this.maxMessageBytes = positive(opts.maxMessageBytes, MAX_MESSAGE_BYTES, 'maxMessageBytes');
    this.opts = opts;
    this.self = opts.signer.id;
  }

  /** The height the machine works on (-1 before start). */
  get currentHeight(): number {
    return this.height;
  }

  /** The current round. */
  get currentRound(): number {
    return this.round;
  }

  /** Feeds one input; returns the outputs in the order the shell must act on them. Never throws. */
  handle(input: QbftInput): QbftOutput[] {
    this.out = [];
    this.dirty = false;
    try {
      switch (input?.kind) {
        case 'start':
          this.onStart(input.height, input.persisted);
          break;
        case 'new-head':
          if (Number.isSafeInteger(input.height) && input.height >= this.height) this.startHeight(input.height + 1, undefined);
          break;
        case 'timeout':
          this.onTimeout(input.height, input.round);
          break;
        case 'message':
          this.onBytes(input.bytes);
          break;
        default:
          this.reject('CHAIN_BAD_MESSAGE', `unknown input kind ${String((input as { kind?: unknown })?.kind)}`);
      }
    } catch (err) {
      if (err instanceof Refusal) this.refuse(err);
      else this.reject(isCageError(err) ? err.code : 'CHAIN_BAD_MESSAGE', `unexpected: ${(err as Error)?.message ?? String(err)}`);
    }
    this.flushPersist();
    const out = this.out;
    this.out = [];
    return out;
  }

  // -------------------------------------------------------------------------------------------
  // Outputs

  private reject(code: CageErrorCode, reason: string, evidence?: [Uint8Array, Uint8Array]): void {
    const r: QbftOutput = { kind: 'reject', code, reason };
    if (evidence !== undefined) r.evidence = evidence;
    this.out.push(r);
  }

  private refuse(r: Refusal): void {
    this.reject(r.code, r.reason, r.evidence);
  }

  private flushPersist(): void {
    if (!this.dirty) return;
    this.dirty = false;
    const s: PersistedState = { height: this.height, round: this.round };
    if (this.signedDigest !== undefined) s.signedDigest = this.signedDigest;
    if (this.prepared !== undefined) s.prepared = this.prepared;
    this.out.push({ kind: 'persist', state: encodePersistedState(s) });
  }

  private broadcast(m: QbftMessage): void {
    this.flushPersist();
    this.out.push({ kind: 'broadcast', bytes: encodeMessage(m) });
  }

  private canSign(): boolean {
    return this.isValidator && !this.silent;
  }

  private sign<P extends Payload>(p: P): SignedPayload<P> {
    const sp = signPayload(p, this.opts.signer);
    this.markVerified(sp);
    return sp;
  }

  private markVerified(sp: SignedPayload): void {
    if (this.verified.size >= MAX_VERIFIED_CACHE) this.verified.clear();
    this.verified.add(keyOf(sp));
  }

  /** Verifies a payload's signature once per height. */
  private checkSignature(sp: SignedPayload): boolean {
    const k = keyOf(sp);
    if (this.verified.has(k)) return true;
    if (!verifySignedPayload(sp, this.opts.verify)) return false;
    if (this.verified.size >= MAX_VERIFIED_CACHE) this.verified.clear();
    this.verified.add(k);
    return true;
  }

  // -------------------------------------------------------------------------------------------
  // Heights and rounds

  private onStart(height: number, persisted: Uint8Array | undefined): void {
    if (!Number.isSafeInteger(height) || height < 0) throw new Refusal('CHAIN_BAD_MESSAGE', `start height ${height} is not a non-negative integer`);
    let state: PersistedState | undefined;
    let unreadable = false;
    if (persisted !== undefined) {
      try {
        state = decodePersistedState(persisted);
      } catch (err) {
        unreadable = true;
        this.reject('CHAIN_BAD_CONSENSUS_STATE', `persisted state does not decode (${(err as Error).message}); silent at height ${height}`);
      }
    }
    // A state from a height above `height` (the chain store lost blocks the node had moved past) is
    // kept until the node gets back there, so it still refuses to sign against it.
    this.pendingRestore = state !== undefined && state.height > height ? state : undefined;
    this.startHeight(height, state?.height === height ? state : undefined, unreadable);
  }

  private startHeight(height: number, restored: PersistedState | undefined, silent = false): void {
    this.height = height;
    this.round = 0;
    this.decided = false;
    this.silent = silent;
    this.signedDigest = undefined;
    this.prepared = undefined;
    this.proposedRound = -1;
    this.rounds = new Map();
    this.roundChanges = new Map();
    this.verified = new Set();
    let validators: readonly string[] = [];
    try {
      validators = this.opts.validators(height);
    } catch (err) {
      this.reject('CHAIN_NOT_VALIDATOR', `validators(${height}) failed: ${(err as Error)?.message}`);
    }
    this.validators = validators;
    this.members = new Set(validators);
    this.quorum = this.members.size === 0 ? Infinity : quorumSize(this.members.size);
    this.faulty = maxFaulty(this.members.size);
    this.isValidator = this.members.has(this.self);
    if (restored === undefined && this.pendingRestore?.height === height) restored = this.pendingRestore;
    if (this.pendingRestore !== undefined && this.pendingRestore.height <= height) this.pendingRestore = undefined;
    if (restored !== undefined) {
      this.round = restored.round;
      if (restored.signedDigest !== undefined) this.signedDigest = Buffer.from(restored.signedDigest);
      if (restored.prepared !== undefined) this.prepared = restored.prepared;
      for (const p of restored.prepared?.prepares ?? []) this.markVerified(p);
    }
    this.scheduleTimer();
    if (this.round === 0 && this.signedDigest === undefined) this.proposeIfProposer(0);
    this.replayFuture();
  }

  private scheduleTimer(): void {
    this.out.push({ kind: 'schedule-timeout', height: this.height, round: this.round, delayMs: roundTimeoutMs(this.opts.baseRoundTimeoutMs, this.round) });
  }

  /** Moves to a higher round of the current height (no ROUND-CHANGE sent here). */
  private moveToRound(round: number): void {
    if (round <= this.round) return;
    this.round = round;
    this.signedDigest = undefined;
    this.dirty = true;
    for (const r of this.rounds.keys()) if (r > round + MAX_FUTURE_ROUNDS) this.rounds.delete(r);
    this.scheduleTimer();
  }

  private onTimeout(height: number, round: number): void {
    if (height !== this.height || round !== this.round || this.decided) return;
    this.moveToRound(round + 1);
    this.sendRoundChange();
    this.afterRoundChange(this.round);
  }

  private sendRoundChange(): void {
    if (!this.canSign()) return;
    const p: RoundChangePayload = { type: MessageType.ROUND_CHANGE, height: this.height, round: this.round };
    const cert = this.prepared;
    if (cert !== undefined) p.prepared = { round: cert.round, digest: cert.digest };
    const sp = this.sign(p);
    const m: RoundChangeMessage = { type: MessageType.ROUND_CHANGE, payload: sp, prepares: cert?.prepares ?? [] };
    if (cert !== undefined) m.preparedBlock = cert.block;
    this.broadcast(m);
    this.recordRoundChange(m);
  }

  private roundState(round: number): RoundState {
    let rs = this.rounds.get(round);
    if (rs === undefined) {
      rs = { prepares: new Map(), commits: new Map(), sentCommit: false };
      this.rounds.set(round, rs);
    }
    return rs;
  }

  // -------------------------------------------------------------------------------------------
  // Proposing

  private proposeIfProposer(round: number): void {
    if (!this.canSign() || this.decided || round !== this.round || this.proposedRound >= round) return;
    if (this.proposerOf(round) !== this.self) return;
    if (this.signedDigest !== undefined) return; // signed something in this round before a restart
    let block: Uint8Array;
    let roundChanges: SignedPayload<RoundChangePayload>[] = [];
    let prepares: SignedPayload<PreparePayload>[] = [];
    if (round > 0) {
      const rcs = this.roundChangesFor(round);
      if (rcs.length < this.quorum) return;
      let best: RoundChangeMessage | undefined;
      for (const m of rcs) {
        const pr = m.payload.prepared;
        if (pr !== undefined && (best === undefined || pr.round > best.payload.prepared!.round)) best = m;
      }
      const chosen = best === undefined ? rcs.slice(0, this.quorum) : [best, ...rcs.filter((m) => m !== best).slice(0, this.quorum - 1)];
      roundChanges = chosen.map((m) => m.payload);
      if (best !== undefined) {
        block = best.preparedBlock!;
        prepares = best.prepares;
      } else {
        const b = this.createBlock(round);
        if (b === undefined) return;
        block = b;
      }
    } else {
      const b = this.createBlock(round);
      if (b === undefined) return;
      block = b;
    }
    let digest: Buffer;
    try {
      digest = Buffer.from(this.opts.blocks.hashBlock(block));
    } catch (err) {
      this.reject('CHAIN_BAD_BLOCK', `hashBlock failed on our own block: ${(err as Error)?.message}`);
      return;
    }
    this.proposedRound = round;
    this.signedDigest = digest;
    this.dirty = true;
    const sp = this.sign({ type: MessageType.PROPOSAL, height: this.height, round, digest });
    const m: ProposalMessage = { type: MessageType.PROPOSAL, payload: sp, block, roundChanges, prepares };
    this.broadcast(m);
    this.acceptProposal(m, digest);
  }

  private createBlock(round: number): Uint8Array | undefined {
    try {
      const b = this.opts.blocks.createBlock(this.height, round);
      if (!(b instanceof Uint8Array) || b.length === 0) throw new Error('createBlock returned no bytes');
      return b;
    } catch (err) {
      this.reject('CHAIN_BAD_BLOCK', `createBlock(${this.height}, ${round}) failed: ${(err as Error)?.message}`);
      return undefined;
    }
  }

  private proposerOf(round: number): string | undefined {
    try {
      return this.opts.proposer(this.height, round);
    } catch {
      return undefined;
    }
  }

  private roundChangesFor(round: number): RoundChangeMessage[] {
    const out: RoundChangeMessage[] = [];
    for (const m of this.roundChanges.values()) if (m.payload.round === round) out.push(m);
    return out;
  }

  // -------------------------------------------------------------------------------------------
  // Incoming messages

  private onBytes(bytes: Uint8Array): void {
    let m: QbftMessage;
    try {
      m = decodeMessage(bytes, this.maxMessageBytes);
    } catch (err) {
      throw new Refusal('CHAIN_BAD_MESSAGE', (err as Error).message);
    }
    if (this.height < 0) throw new Refusal('CHAIN_FUTURE_MESSAGE_DROPPED', 'not started');
    const h = m.payload.height;
    if (h < this.height) throw new Refusal('CHAIN_OLD_MESSAGE', `message for height ${h} at height ${this.height}`);
    if (h > this.height) {
      this.bufferFuture(m);
      return;
    }
    this.dispatch(m);
  }

  private dispatch(m: QbftMessage): void {
    if (this.decided) return; // the height is final; late messages are harmless
    switch (m.type) {
      case MessageType.PROPOSAL:
        return this.onProposal(m);
      case MessageType.PREPARE:
        return this.onPrepare(m);
      case MessageType.COMMIT:
        return this.onCommit(m);
      case MessageType.ROUND_CHANGE:
        return this.onRoundChange(m);
    }
  }

  private checkSender(sp: SignedPayload): void {
    if (!this.members.has(sp.signer)) throw new Refusal('CHAIN_NOT_VALIDATOR', `${sp.signer} is not a validator at height ${this.height}`);
    if (!this.checkSignature(sp)) throw new Refusal('CHAIN_BAD_SIGNATURE', `bad signature on a ${sp.type} by ${sp.signer}`);
  }

  private checkRoundWindow(round: number): void {
    if (round > this.round + MAX_FUTURE_ROUNDS) throw new Refusal('CHAIN_FUTURE_MESSAGE_DROPPED', `round ${round} is more than ${MAX_FUTURE_ROUNDS} ahead of ${this.round}`);
  }

  private onProposal(m: ProposalMessage): void {
    const sp = m.payload;
    if (sp.round < this.round) throw new Refusal('CHAIN_OLD_MESSAGE', `PROPOSAL for past round ${sp.round}`);
    if (sp.signer !== this.proposerOf(sp.round)) {
      throw new Refusal(this.members.has(sp.signer) ? 'CHAIN_WRONG_PROPOSER' : 'CHAIN_NOT_VALIDATOR', `${sp.signer} is not the proposer of (${this.height}, ${sp.round})`);
    }
    this.checkSender(sp);
    const existing = this.rounds.get(sp.round)?.proposal;
    if (existing !== undefined) {
      if (sameDigest(existing.digest, sp.digest)) return; // duplicate
      throw new Refusal('CHAIN_EQUIVOCATION', `${sp.signer} proposed two blocks at (${this.height}, ${sp.round})`, [existing.payload.bytes, sp.bytes]);
    }
    let digest: Buffer;
    try {
      digest = Buffer.from(this.opts.blocks.hashBlock(m.block));
    } catch (err) {
      throw new Refusal('CHAIN_BAD_BLOCK', `block does not hash: ${(err as Error)?.message}`);
    }
    if (!sameDigest(digest, sp.digest)) throw new Refusal('CHAIN_BAD_DIGEST', 'PROPOSAL digest is not the hash of its block');
    this.checkBlockHeight(m.block);
    if (sp.round === 0) {
      if (m.roundChanges.length > 0 || m.prepares.length > 0) throw new Refusal('CHAIN_BAD_JUSTIFICATION', 'a round-0 PROPOSAL carries no justification');
    } else {
      this.checkProposalJustification(m, digest);
    }
    let invalid: { code: string; message: string } | null;
    try {
      invalid = this.opts.blocks.validateBlock(m.block, this.height);
    } catch (err) {
      invalid = { code: 'CHAIN_BAD_BLOCK', message: (err as Error)?.message };
    }
    if (invalid !== null) throw new Refusal('CHAIN_BAD_BLOCK', `${invalid.code}: ${invalid.message}`);
    if (sp.round > this.round) this.moveToRound(sp.round);
    if (this.signedDigest !== undefined && !sameDigest(this.signedDigest, digest)) {
      throw new Refusal('CHAIN_EQUIVOCATION', `PROPOSAL for (${this.height}, ${sp.round}) conflicts with the block this node already signed in that round`);
    }
    this.acceptProposal(m, digest);
  }

  private checkBlockHeight(block: Uint8Array): void {
    let h: number;
    try {
      h = this.opts.blocks.heightOf(block);
    } catch (err) {
      throw new Refusal('CHAIN_BAD_BLOCK', `block does not decode: ${(err as Error)?.message}`);
    }
    if (h !== this.height) throw new Refusal('CHAIN_BAD_BLOCK', `block is for height ${h}, not ${this.height}`);
  }

  /**
   * Dafny isProposalJustification for round r > 0: Q ROUND-CHANGEs for exactly (h, r) from distinct
   * validators, validly signed; if any is prepared, the block is the one with the highest prepared
   * round and Q distinct valid PREPAREs for (h, that round, its digest) come with it.
   */
  private checkProposalJustification(m: ProposalMessage, digest: Buffer): void {
    const r = m.payload.round;
    const signers = new Set<string>();
    let highest: RoundChangePayload['prepared'];
    const highestDigests: Buffer[] = [];
    for (const rc of m.roundChanges) {
      if (rc.height !== this.height || rc.round !== r) throw new Refusal('CHAIN_BAD_JUSTIFICATION', `justification holds a ROUND-CHANGE for (${rc.height}, ${rc.round}), not (${this.height}, ${r})`);
      this.checkJustificationSigner(rc, signers, 'ROUND-CHANGE');
      const pr = rc.prepared;
      if (pr === undefined) continue;
      if (pr.round >= r) throw new Refusal('CHAIN_BAD_JUSTIFICATION', `ROUND-CHANGE prepared at round ${pr.round} >= ${r}`);
      if (highest === undefined || pr.round > highest.round) {
        highest = pr;
        highestDigests.length = 0;
      }
      if (pr.round === highest.round) highestDigests.push(Buffer.from(pr.digest));
    }
    if (signers.size < this.quorum) throw new Refusal('CHAIN_BAD_JUSTIFICATION', `${signers.size} ROUND-CHANGEs, a quorum is ${this.quorum}`);
    if (highest === undefined) {
      if (m.prepares.length > 0) throw new Refusal('CHAIN_BAD_JUSTIFICATION', 'PREPAREs attached but no ROUND-CHANGE is prepared');
      return;
    }
    if (!highestDigests.some((d) => sameDigest(d, digest))) throw new Refusal('CHAIN_BAD_JUSTIFICATION', 'the block is not the highest prepared block of the round changes');
    this.checkPreparedCertificate(m.prepares, highest.round, digest);
  }

  private checkJustificationSigner(sp: SignedPayload, signers: Set<string>, what: string): void {
    if (!this.members.has(sp.signer)) throw new Refusal('CHAIN_BAD_JUSTIFICATION', `${what} by non-validator ${sp.signer}`);
    if (signers.has(sp.signer)) throw new Refusal('CHAIN_BAD_JUSTIFICATION', `two ${what}s by ${sp.signer}`);
    if (!this.checkSignature(sp)) throw new Refusal('CHAIN_BAD_JUSTIFICATION', `forged ${what} signature by ${sp.signer}`);
    signers.add(sp.signer);
  }

  /** Q distinct valid PREPAREs for (h, round, digest). */
  private checkPreparedCertificate(prepares: readonly SignedPayload<PreparePayload>[], round: number, digest: Uint8Array): void {
    if (prepares.length > MAX_JUSTIFICATION) throw new Refusal('CHAIN_BAD_JUSTIFICATION', 'too many PREPAREs');
    const signers = new Set<string>();
    for (const p of prepares) {
      if (p.height !== this.height || p.round !== round || !sameDigest(p.digest, digest)) {
        throw new Refusal('CHAIN_BAD_JUSTIFICATION', `PREPARE for (${p.height}, ${p.round}) or another digest in a certificate for round ${round}`);
      }
      this.checkJustificationSigner(p, signers, 'PREPARE');
    }
    if (signers.size < this.quorum) throw new Refusal('CHAIN_BAD_JUSTIFICATION', `${signers.size} PREPAREs, a quorum is ${this.quorum}`);
  }

  private acceptProposal(m: ProposalMessage, digest: Buffer): void {
    const round = m.payload.round;
    const rs = this.roundState(round);
    rs.proposal = { digest, block: m.block, payload: m.payload };
    if (this.canSign() && round === this.round) {
      if (this.signedDigest === undefined) {
        this.signedDigest = digest;
        this.dirty = true;
      }
      const sp = this.sign({ type: MessageType.PREPARE, height: this.height, round, digest });
      this.broadcast({ type: MessageType.PREPARE, payload: sp });
      rs.prepares.set(this.self, sp);
    }
    this.checkPrepared(round);
    this.checkCommitted(round);
  }

  private onPrepare(m: PrepareMessage): void {
    const sp = m.payload;
    if (sp.round < this.round) throw new Refusal('CHAIN_OLD_MESSAGE', `PREPARE for past round ${sp.round}`);
    this.checkRoundWindow(sp.round);
    this.checkSender(sp);
    const rs = this.roundState(sp.round);
    if (!this.isNewVote(rs.prepares, sp, 'prepared')) return;
    rs.prepares.set(sp.signer, sp);
    this.checkPrepared(sp.round);
  }

  /** False for a repeat of a signer's PREPARE/COMMIT in a round; a Refusal (with evidence) for a conflicting one. */
  private isNewVote(votes: Map<string, SignedPayload<PreparePayload> | SignedPayload<CommitPayload>>, sp: SignedPayload<PreparePayload> | SignedPayload<CommitPayload>, verb: string): boolean {
    const existing = votes.get(sp.signer);
    if (existing === undefined) return true;
    if (sameDigest(existing.digest, sp.digest)) return false;
    throw new Refusal('CHAIN_EQUIVOCATION', `${sp.signer} ${verb} two blocks at (${this.height}, ${sp.round})`, [existing.bytes, sp.bytes]);
  }

  private checkPrepared(round: number): void {
    const rs = this.rounds.get(round);
    if (rs?.proposal === undefined || rs.sentCommit || round !== this.round) return;
    const digest = rs.proposal.digest;
    const matching: SignedPayload<PreparePayload>[] = [];
    for (const p of rs.prepares.values()) if (sameDigest(p.digest, digest)) matching.push(p);
    if (matching.length < this.quorum) return;
    rs.sentCommit = true;
    if (!this.canSign()) return;
    if (this.signedDigest === undefined || !sameDigest(this.signedDigest, digest)) return; // never commit what we did not prepare
    this.prepared = { round, digest, block: rs.proposal.block, prepares: matching.slice(0, this.quorum) };
    this.dirty = true;
    const commitSeal = signCommitSeal(this.opts.signer, digest, round);
    const sp = this.sign({ type: MessageType.COMMIT, height: this.height, round, digest, commitSeal });
    this.broadcast({ type: MessageType.COMMIT, payload: sp });
    rs.commits.set(this.self, sp);
    this.checkCommitted(round);
  }

  private onCommit(m: CommitMessage): void {
    const sp = m.payload;
    this.checkRoundWindow(sp.round);
    if (sp.round < this.round && this.rounds.get(sp.round)?.proposal === undefined) {
      throw new Refusal('CHAIN_OLD_MESSAGE', `COMMIT for past round ${sp.round} without its proposal`);
    }
    this.checkSender(sp);
    const rs = this.roundState(sp.round);
    if (!this.isNewVote(rs.commits, sp, 'committed')) return;
    if (!verifyCommitSeal(this.opts.verify, sp.signer, sp.digest, sp.round, sp.commitSeal)) {
      throw new Refusal('CHAIN_BAD_SEAL', `commit seal by ${sp.signer} does not verify`);
    }
    rs.commits.set(sp.signer, sp);
    this.checkCommitted(sp.round);
  }

  private checkCommitted(round: number): void {
    const rs = this.rounds.get(round);
    if (this.decided || rs?.proposal === undefined) return;
    const digest = rs.proposal.digest;
    const seals: CommitSeal[] = [];
    for (const c of rs.commits.values()) if (sameDigest(c.digest, digest)) seals.push({ signer: c.signer, signature: c.commitSeal });
    if (seals.length < this.quorum) return;
    this.decided = true;
    this.out.push({ kind: 'decide', height: this.height, round, block: rs.proposal.block, seals });
  }

  /** Dafny validRoundChange: target round > 0, a prepared certificate that proves its block. */
  private onRoundChange(m: RoundChangeMessage): void {
    const sp = m.payload;
    if (sp.round === 0) throw new Refusal('CHAIN_BAD_MESSAGE', 'ROUND-CHANGE to round 0');
    if (sp.round < this.round) throw new Refusal('CHAIN_OLD_MESSAGE', `ROUND-CHANGE for past round ${sp.round}`);
    this.checkSender(sp);
    const existing = this.roundChanges.get(sp.signer);
    if (existing !== undefined) {
      if (existing.payload.round > sp.round) return; // superseded
      if (existing.payload.round === sp.round) {
        if (!conflicts(existing.payload, sp)) return; // duplicate
        throw new Refusal('CHAIN_EQUIVOCATION', `${sp.signer} sent two ROUND-CHANGEs for (${this.height}, ${sp.round})`, [existing.payload.bytes, sp.bytes]);
      }
    }
    const pr = sp.prepared;
    if (pr !== undefined) {
      if (pr.round >= sp.round) throw new Refusal('CHAIN_BAD_JUSTIFICATION', `prepared round ${pr.round} is not below the target round ${sp.round}`);
      const block = m.preparedBlock!;
      let digest: Buffer;
      try {
        digest = Buffer.from(this.opts.blocks.hashBlock(block));
      } catch (err) {
        throw new Refusal('CHAIN_BAD_BLOCK', `prepared block does not hash: ${(err as Error)?.message}`);
      }
      if (!sameDigest(digest, pr.digest)) throw new Refusal('CHAIN_BAD_DIGEST', 'prepared digest is not the hash of the prepared block');
      this.checkBlockHeight(block);
      this.checkPreparedCertificate(m.prepares, pr.round, pr.digest);
    }
    this.recordRoundChange(m);
    this.afterRoundChange(sp.round);
  }

  private recordRoundChange(m: RoundChangeMessage): void {
    this.roundChanges.set(m.payload.signer, m);
  }

  /** After a new ROUND-CHANGE: the f+1 round skip, the move on a quorum, and proposing. */
  private afterRoundChange(target: number): void {
    if (this.decided) return;
    // Optional round skip (IBFT 2.0 paper, Dafny UponRoundChange): f+1 validators are ahead of us.
    let ahead = 0;
    let lowestAhead = Infinity;
    for (const rc of this.roundChanges.values()) {
      if (rc.payload.round > this.round) {
        ahead++;
        lowestAhead = Math.min(lowestAhead, rc.payload.round);
      }
    }
    if (ahead >= this.faulty + 1 && lowestAhead !== Infinity) {
      this.moveToRound(lowestAhead);
      this.sendRoundChange();
    }
    // A quorum of ROUND-CHANGEs for a round at or above ours: move there and, if proposer, propose.
    if (target >= this.round && this.roundChangesFor(target).length >= this.quorum) {
      this.moveToRound(target);
      this.proposeIfProposer(target);
    } else if (target !== this.round && this.roundChangesFor(this.round).length >= this.quorum) {
      this.proposeIfProposer(this.round);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Future heights

  private bufferFuture(m: QbftMessage): void {
    const h = m.payload.height;
    if (h > this.height + this.maxFutureHeights) throw new Refusal('CHAIN_FUTURE_MESSAGE_DROPPED', `height ${h} is more than ${this.maxFutureHeights} ahead of ${this.height}`);
    const sp = m.payload;
    let set: readonly string[];
    try {
      set = this.opts.validators(h);
    } catch {
      set = this.validators;
    }
    if (!set.includes(sp.signer)) throw new Refusal('CHAIN_NOT_VALIDATOR', `${sp.signer} is not a validator at height ${h}`);
    const key = keyOf(sp);
    if (this.futureKeys.has(key)) return;
    if (!verifySignedPayload(sp, this.opts.verify)) throw new Refusal('CHAIN_BAD_SIGNATURE', `bad signature on a future message by ${sp.signer}`);
    const perSigner = Math.max(4, Math.floor(this.maxFutureMessages / Math.max(1, set.length)));
    const count = this.futurePerSigner.get(sp.signer) ?? 0;
    if (this.future.length >= this.maxFutureMessages || count >= perSigner) throw new Refusal('CHAIN_FUTURE_MESSAGE_DROPPED', 'future-message buffer is full');
    this.future.push({ height: h, signer: sp.signer, key, message: m });
    this.futureKeys.add(key);
    this.futurePerSigner.set(sp.signer, count + 1);
  }

  private replayFuture(): void {
    if (this.future.length === 0) return;
    const now: FutureMessage[] = [];
    const keep: FutureMessage[] = [];
    for (const f of this.future) {
      if (f.height === this.height) now.push(f);
      else if (f.height > this.height) keep.push(f);
    }
    this.future = keep;
    this.futureKeys = new Set(keep.map((f) => f.key));
    this.futurePerSigner = new Map();
    for (const f of keep) this.futurePerSigner.set(f.signer, (this.futurePerSigner.get(f.signer) ?? 0) + 1);
    for (const f of now) {
      this.markVerified(f.message.payload); // checked when buffered
      try {
        this.dispatch(f.message);
      } catch (err) {
        if (err instanceof Refusal) this.refuse(err);
        else throw err;
      }
    }
  }
}

function positive(v: number | undefined, dflt: number, name: string): number {
  if (v === undefined) return dflt;
  if (!Number.isSafeInteger(v) || v <= 0) throw new TypeError(`QbftOptions.${name} must be a positive integer`);
  return v;
}
