/**
 * Drives one QbftNode directly (no network) with messages crafted from the other validators' keys:
 * the scenarios after Besu's QbftBlockHeightManagerTest / QbftRoundTest.
 */
import { createHash } from 'node:crypto';
import { verifyEd25519 } from '../../../chain/keys.js';
import {
  MessageType,
  QbftNode,
  decodeMessage,
  encodeMessage,
  roundRobinProposer,
  signCommitSeal,
  signMessage,
  signPayload,
  type QbftMessage,
  type QbftOutput,
  type SignedPayload,
} from '../../../chain/qbft/index.js';
import { Rng, ToyChain, encodeToyBlock, hashToyBlock, makeKey, toyBlocks, type SimKey } from './sim.js';

export const BASE_MS = 1000;

export type PreparePayload = SignedPayload<Extract<SignedPayload, { type: typeof MessageType.PREPARE }>>;

export class Harness {
  readonly keys: SimKey[];
  readonly chain = new ToyChain();
  node: QbftNode;
  /** Validator indices of height 1 (and later), default 0..3; index 4 is an outsider. */
  validatorIdx = [0, 1, 2, 3];
  persisted: Uint8Array | undefined;

  constructor(readonly local: number) {
    this.keys = [0, 1, 2, 3, 4].map((i) => makeKey(100 + i, false));
    this.node = this.makeNode();
  }

  makeNode(): QbftNode {
    return new QbftNode({
      signer: this.keys[this.local]!.signer,
      verify: verifyEd25519,
      blocks: toyBlocks(this.chain, this.id(this.local), new Rng(7)),
      validators: () => this.validatorIdx.map((i) => this.id(i)),
      proposer: (h, r) => roundRobinProposer(this.validatorIdx.map((i) => this.id(i)), h === 1 ? undefined : this.id(this.validatorIdx[(h - 2) % this.validatorIdx.length]!), r),
      baseRoundTimeoutMs: BASE_MS,
      maxFutureMessages: 64,
    });
  }

  id(i: number): string {
    return this.keys[i]!.signer.id;
  }

  handle(input: Parameters<QbftNode['handle']>[0]): QbftOutput[] {
    const out = this.node.handle(input);
    for (const o of out) if (o.kind === 'persist') this.persisted = o.state;
    return out;
  }

  start(height = 1): QbftOutput[] {
    return this.handle({ kind: 'start', height });
  }

  /** Simulates a crash and restart from the last persisted state. */
  restart(height = 1): QbftOutput[] {
    this.node = this.makeNode();
    return this.handle({ kind: 'start', height, persisted: this.persisted });
  }

  deliver(m: QbftMessage | Uint8Array): QbftOutput[] {
    return this.handle({ kind: 'message', bytes: m instanceof Uint8Array ? m : encodeMessage(m) });
  }

  block(height = 1, nonce = 1, proposer = 0): Buffer {
    return encodeToyBlock({ height, parent: this.chain.head.hash, proposer: this.id(proposer), nonce });
  }

  proposal(from: number, round: number, block: Uint8Array, opts: { height?: number; roundChanges?: SignedPayload[]; prepares?: SignedPayload[]; digest?: Uint8Array } = {}): QbftMessage {
    const digest = opts.digest ?? hashToyBlock(block);
    return signMessage(this.keys[from]!.signer, { type: MessageType.PROPOSAL, height: opts.height ?? 1, round, digest }, { block, roundChanges: opts.roundChanges ?? [], prepares: opts.prepares ?? [] });
  }

  preparePayload(from: number, round: number, digest: Uint8Array, height = 1): PreparePayload {
    return signPayload({ type: MessageType.PREPARE, height, round, digest }, this.keys[from]!.signer) as PreparePayload;
  }

  prepare(from: number, round: number, digest: Uint8Array, height = 1): QbftMessage {
    return { type: MessageType.PREPARE, payload: this.preparePayload(from, round, digest, height) } as QbftMessage;
  }

  commit(from: number, round: number, digest: Uint8Array, height = 1, commitSeal?: Uint8Array): QbftMessage {
    const seal = commitSeal ?? signCommitSeal(this.keys[from]!.signer, digest, round);
    return signMessage(this.keys[from]!.signer, { type: MessageType.COMMIT, height, round, digest, commitSeal: seal });
  }

  roundChange(from: number, round: number, prepared?: { round: number; block: Uint8Array; by: number[] }, height = 1): QbftMessage {
    if (prepared === undefined) return signMessage(this.keys[from]!.signer, { type: MessageType.ROUND_CHANGE, height, round });
    const digest = hashToyBlock(prepared.block);
    return signMessage(
      this.keys[from]!.signer,
      { type: MessageType.ROUND_CHANGE, height, round, prepared: { round: prepared.round, digest } },
      { block: prepared.block, prepares: prepared.by.map((i) => this.preparePayload(i, prepared.round, digest, height)) },
    );
  }
}

export function digestOf(b: Uint8Array): Buffer {
  return createHash('sha256').update(b).digest();
}

/** The decoded broadcasts of an output batch. */
export function broadcasts(out: QbftOutput[]): QbftMessage[] {
  return out.filter((o) => o.kind === 'broadcast').map((o) => decodeMessage((o as { bytes: Uint8Array }).bytes));
}

export function rejects(out: QbftOutput[]): string[] {
  return out.filter((o) => o.kind === 'reject').map((o) => (o as { code: string }).code);
}

export function kinds(out: QbftOutput[]): string[] {
  return out.map((o) => o.kind);
}
