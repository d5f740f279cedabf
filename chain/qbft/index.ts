/**
 * QBFT consensus as a pure state machine (the chain's consensus core).
 *
 * Follows the QBFT specification (Consensys QBFT Dafny spec, Hyperledger Besu `consensus/qbft-core`,
 * IBFT 2.0 paper arXiv 1909.10194): PROPOSAL, PREPARE, COMMIT and ROUND-CHANGE messages, prepared
 * certificates carried in ROUND-CHANGEs and re-proposed, round timers base·2^r, proposer rotation,
 * commit seals, immediate finality. n validators tolerate f = ⌊(n−1)/3⌋ faulty ones; quorum
 * Q = ⌈2n/3⌉.
 *
 * The machine does no I/O and reads no clock: `QbftNode.handle(input)` takes one input (start,
 * a message's bytes, a fired timer, a block imported by sync) and returns outputs for the shell
 * (persist, broadcast, schedule a timer, decide, reject). The shell (chain/ node) owns sockets,
 * disk and timers.
 *
 * Trust: message bytes are attacker-controlled and decoded defensively (messages.ts); every
 * message is signed with Ed25519 and names its signer (Ed25519 cannot recover it). `handle` never
 * throws for anything a peer sends: hostile input becomes a `reject` output with a CageError code.
 * The callbacks (`QbftBlocks`, `validators`, `proposer`, `verify`, `signer.sign`) are trusted and
 * must be deterministic across validators for the same chain.
 *
 * Wire formats and signing domains are documented in messages.ts and seals.ts; persisted state in
 * state.ts.
 */

/** The local validator's key. `id` is its did:key; `sign` is Ed25519 over `data` (64 bytes back). */
export interface QbftSigner {
  readonly id: string;
  sign(data: Uint8Array): Uint8Array;
}

/**
 * Verifies an Ed25519 signature by the key `signerId` names (a did:key). Must return false, never
 * throw, for an unknown or malformed signer id. chain/keys.ts `verifyEd25519` is one (it caches keys);
 * a `ChainKey` from chain/keys.ts is a signer as `{ id: key.did, sign: key.sign }`.
 */
export type VerifyFn = (signerId: string, data: Uint8Array, signature: Uint8Array) => boolean;

/** What the machine needs from the chain (supplied by the node). All calls are synchronous. */
export interface QbftBlocks {
  /**
   * The proposer builds a new block for `height` on the current head (no seals). Called only when
   * the local node is the proposer of (height, round) and no prepared block must be re-proposed.
   * May throw: the machine then proposes nothing this round (reject output CHAIN_BAD_BLOCK) and the
   * round times out.
   */
  createBlock(height: number, round: number): Uint8Array;
  /** Full validity of a proposed block at `height` on the current head; null = valid. Must not throw. */
  validateBlock(block: Uint8Array, height: number): { code: string; message: string } | null;
  /** The block's 32-byte hash (the digest messages and seals sign). Excludes seals and the round. */
  hashBlock(block: Uint8Array): Uint8Array;
  /** The height a block claims (from its header). May throw on a malformed block (treated as bad). */
  heightOf(block: Uint8Array): number;
}

export interface QbftOptions {
  signer: QbftSigner;
  verify: VerifyFn;
  blocks: QbftBlocks;
  /**
   * The ordered validator set that finalizes `height` (did:keys, no duplicates). Called for the
   * current height and, when buffering future messages, for heights up to
   * `current + maxFutureHeights`: for heights beyond head+1 return the best-known (latest) set.
   * Must be the same on every honest node once the chain holds height-1.
   */
  validators(height: number): readonly string[];
  /**
   * The proposer of (height, round); deterministic across validators. Use `roundRobinProposer`
   * (the spec's rule: the validator after the previous block's proposer, plus `round`).
   */
  proposer(height: number, round: number): string;
  /** Timeout of round 0; round r times out after baseRoundTimeoutMs·2^r (capped at MAX_TIMER_MS). */
  baseRoundTimeoutMs: number;
  /** Bound on buffered messages for future heights/rounds (default 1024). */
  maxFutureMessages?: number;
  /** How many heights ahead a message may be and still be buffered (default 10, as Besu). */
  maxFutureHeights?: number;
  /** Upper bound on a message's encoded size in bytes (default MAX_MESSAGE_BYTES, 32 MiB). */
  maxMessageBytes?: number;
}

/**
 * Inputs. The shell feeds them one at a time, in any order; stale ones are ignored.
 * - `start`: begin at `height` (head+1). On restart pass the latest `persist` state: if it is for
 *   the same height the node resumes its round and refuses to sign anything conflicting with what
 *   it signed before the crash; a state for another height is ignored. A state that does not decode
 *   gives reject CHAIN_BAD_CONSENSUS_STATE and the node stays silent (never signs) at that height.
 * - `message`: bytes from a peer. Do not loop the node's own broadcasts back (harmless if you do:
 *   they are duplicates).
 * - `timeout`: a timer from `schedule-timeout` fired.
 * - `new-head`: a block at `height` was imported (after a `decide`, or by sync). The machine moves
 *   to height+1 and replays buffered messages. After `decide` the machine waits at the decided
 *   height until the shell imports the block and sends `new-head` (so `createBlock` for the next
 *   height sees the new head; any block period is the shell's delay before sending it). Make the
 *   imported block durable before sending `new-head`: persisted consensus state is only kept for
 *   the current height, so a restart must never come back below a height it already left.
 *   A message for a height above the current one is buffered; a shell that sees such messages
 *   (compare `decodeMessage(bytes).payload.height` with `node.currentHeight`) should start sync.
 */
export type QbftInput =
  | { kind: 'start'; height: number; persisted?: Uint8Array }
  | { kind: 'message'; bytes: Uint8Array }
  | { kind: 'timeout'; height: number; round: number }
  | { kind: 'new-head'; height: number };

/**
 * Outputs, in order. The shell must act on them in order:
 * - `persist`: make `state` durable (replacing the previous one) BEFORE sending any later
 *   `broadcast` of the same batch. Feed it back as `start.persisted` after a restart.
 * - `broadcast`: send to every other validator of the current height. The machine has already
 *   applied its own message to itself.
 * - `schedule-timeout`: call back with `{kind:'timeout', height, round}` after `delayMs`. Earlier
 *   timers need not be cancelled (stale ones are ignored).
 * - `decide`: `block` is final at `height`, sealed at `round` by `seals` (≥ Q distinct validators,
 *   each verified). Import it (store the seals and round with it), then send `new-head`.
 * - `reject`: diagnostics for a dropped input (tests, metrics, logs); `code` is a CageError code.
 *   For CHAIN_EQUIVOCATION, `evidence` holds the two conflicting signed payloads (see
 *   messages.ts `decodeSignedPayload`, `conflicts`), usable as Court evidence.
 */
export type QbftOutput =
  | { kind: 'persist'; state: Uint8Array }
  | { kind: 'broadcast'; bytes: Uint8Array }
  | { kind: 'schedule-timeout'; height: number; round: number; delayMs: number }
  | { kind: 'decide'; height: number; round: number; block: Uint8Array; seals: CommitSeal[] }
  | { kind: 'reject'; code: string; reason: string; evidence?: [Uint8Array, Uint8Array] };

/** A commit seal: `signer`'s Ed25519 signature over `commitSealData(blockHash, round)` (seals.ts). */
export interface CommitSeal {
  signer: string;
  signature: Uint8Array;
}

export { QbftNode, MAX_TIMER_MS, roundTimeoutMs } from './machine.js';
export { quorumSize, maxFaulty, roundRobinProposer } from './validators.js';
export { commitSealData, signCommitSeal, verifySeals, encodeSeals, decodeSeals } from './seals.js';
export {
  MessageType,
  MAX_MESSAGE_BYTES,
  MAX_SIGNER_BYTES,
  MAX_JUSTIFICATION,
  QBFT_VERSION,
  SIGNATURE_DOMAIN,
  encodeMessage,
  decodeMessage,
  encodeSignedPayload,
  decodeSignedPayload,
  signPayload,
  verifySignedPayload,
  signMessage,
  verifySignedMessage,
  conflicts,
  type Payload,
  type SignedPayload,
  type QbftMessage,
  type ProposalMessage,
  type PrepareMessage,
  type CommitMessage,
  type RoundChangeMessage,
} from './messages.js';
export { encodePersistedState, decodePersistedState, type PersistedState } from './state.js';
