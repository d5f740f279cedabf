/**
 * A deterministic simulated network for the QBFT state machine: n nodes, a seeded RNG, a simulated
 * clock driving round timers, and a network that can drop, delay, duplicate, reorder (random
 * delays) and partition. Nodes can crash (losing everything but their chain and last `persist`
 * state) and restart. A toy chain (`ToyBlocks`) supplies blocks; a catch-up sync copies sealed
 * blocks from a reachable peer (after `verifySeals`), as the real node's sync does.
 *
 * Signatures: real Ed25519 (chain/keys.ts) by default; `fastSignatures` swaps in a SHA-256 based
 * stand-in (forgeable, test only) so the property test can run thousands of schedules quickly.
 */
import { createHash } from 'node:crypto';
import { createChainKey, verifyEd25519 } from '../../../chain/keys.js';
import {
  QbftNode,
  roundRobinProposer,
  verifySeals,
  type CommitSeal,
  type QbftBlocks,
  type QbftOutput,
  type QbftSigner,
  type VerifyFn,
} from '../../../chain/qbft/index.js';

// ---------------------------------------------------------------------------------------------
// Seeded RNG (mulberry32)

export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 0x9e3779b9;
  }
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  chance(p: number): boolean {
    return p > 0 && this.next() < p;
  }
}

// ---------------------------------------------------------------------------------------------
// Keys

export interface SimKey {
  signer: QbftSigner;
}

const fastSecrets = new Map<string, Buffer>();

/** Test-only stand-in for Ed25519: 64 bytes of SHA-256 over a per-id secret and the data. */
function fastSignature(secret: Buffer, data: Uint8Array): Buffer {
  const a = createHash('sha256').update(secret).update(data).digest();
  const b = createHash('sha256').update(a).update(secret).digest();
  return Buffer.concat([a, b]);
}

export const fastVerify: VerifyFn = (id, data, sig) => {
  const secret = fastSecrets.get(id);
  return secret !== undefined && sig.length === 64 && fastSignature(secret, data).equals(Buffer.from(sig));
};

export function makeKey(index: number, fast: boolean): SimKey {
  const seed = createHash('sha256').update(`qbft-sim-key-${index}`).digest();
  if (fast) {
    const id = `did:test:v${index}`;
    fastSecrets.set(id, seed);
    return { signer: { id, sign: (d) => fastSignature(seed, d) } };
  }
  const key = createChainKey(seed);
  return { signer: { id: key.did, sign: (d) => key.sign(d) } };
}

// ---------------------------------------------------------------------------------------------
// Toy blocks: u64 height ‖ parentHash[32] ‖ u8 len ‖ proposer ‖ u32 nonce

export interface ToyBlock {
  height: number;
  parent: Buffer;
  proposer: string;
  nonce: number;
}

export function encodeToyBlock(b: ToyBlock): Buffer {
  const p = Buffer.from(b.proposer, 'latin1');
  const out = Buffer.alloc(8 + 32 + 1 + p.length + 4);
  out.writeUInt32BE(Math.floor(b.height / 2 ** 32), 0);
  out.writeUInt32BE(b.height >>> 0, 4);
  b.parent.copy(out, 8);
  out[40] = p.length;
  p.copy(out, 41);
  out.writeUInt32BE(b.nonce >>> 0, 41 + p.length);
  return out;
}

export function decodeToyBlock(bytes: Uint8Array): ToyBlock {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (b.length < 45 || b.length !== 45 + b[40]!) throw new Error('not a toy block');
  return { height: b.readUInt32BE(0) * 2 ** 32 + b.readUInt32BE(4), parent: b.subarray(8, 40), proposer: b.subarray(41, 41 + b[40]!).toString('latin1'), nonce: b.readUInt32BE(41 + b[40]!) };
}

export function hashToyBlock(block: Uint8Array): Buffer {
  return createHash('sha256').update(block).digest();
}

export interface SealedBlock {
  block: Buffer;
  hash: Buffer;
  round: number;
  seals: CommitSeal[];
}

/** A node's chain: genesis at height 0, then sealed blocks. */
export class ToyChain {
  readonly blocks: SealedBlock[];
  constructor() {
    const g = encodeToyBlock({ height: 0, parent: Buffer.alloc(32), proposer: 'genesis', nonce: 0 });
    this.blocks = [{ block: g, hash: hashToyBlock(g), round: 0, seals: [] }];
  }
  get head(): SealedBlock {
    return this.blocks[this.blocks.length - 1]!;
  }
  get headHeight(): number {
    return this.blocks.length - 1;
  }
}

/** QbftBlocks over a ToyChain (what B's node does over the real chain). */
export function toyBlocks(chain: ToyChain, self: string, rng: Rng): QbftBlocks {
  return {
    createBlock: (height) => encodeToyBlock({ height, parent: chain.head.hash, proposer: self, nonce: rng.int(0, 0xffffffff) }),
    validateBlock: (block, height) => {
      let b: ToyBlock;
      try {
        b = decodeToyBlock(block);
      } catch {
        return { code: 'TOY_BAD_BLOCK', message: 'does not decode' };
      }
      if (b.height !== height) return { code: 'TOY_BAD_HEIGHT', message: `height ${b.height}` };
      if (height !== chain.headHeight + 1 || !b.parent.equals(chain.head.hash)) return { code: 'TOY_BAD_PARENT', message: 'does not extend the head' };
      return null;
    },
    hashBlock: hashToyBlock,
    heightOf: (block) => decodeToyBlock(block).height,
  };
}

// ---------------------------------------------------------------------------------------------
// The simulation

export interface SimOptions {
  seed: number;
  /** Total nodes (validators or not, per `validatorsAt`). */
  n: number;
  /** Indices of the validators of a height (default: all nodes). Same on every node. */
  validatorsAt?: (height: number) => number[];
  baseTimeoutMs?: number;
  minDelayMs?: number;
  maxDelayMs?: number;
  dropRate?: number;
  dupRate?: number;
  /** Delay between deciding (or importing) a block and starting the next height. */
  blockPeriodMs?: number;
  /** Catch-up sync period per node (0 = never). */
  syncIntervalMs?: number;
  fastSignatures?: boolean;
  /** Nodes that equivocate: two different proposals (one to each half), conflicting prepares. */
  byzantine?: number[];
}

type Event =
  | { t: number; seq: number; kind: 'deliver'; to: number; from: number; bytes: Uint8Array }
  | { t: number; seq: number; kind: 'timeout'; node: number; incarnation: number; height: number; round: number }
  | { t: number; seq: number; kind: 'new-head'; node: number; incarnation: number; height: number }
  | { t: number; seq: number; kind: 'sync'; node: number };

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

class Heap {
  private a: Event[] = [];
  get size(): number {
    return this.a.length;
  }
  private less(x: Event, y: Event): boolean {
    return x.t < y.t || (x.t === y.t && x.seq < y.seq);
  }
  push(e: Event): void {
    const a = this.a;
    a.push(e);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(a[i]!, a[p]!)) break;
      [a[i], a[p]] = [a[p]!, a[i]!];
      i = p;
    }
  }
  pop(): Event | undefined {
    const a = this.a;
    if (a.length === 0) return undefined;
    const top = a[0]!;
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && this.less(a[l]!, a[m]!)) m = l;
        if (r < a.length && this.less(a[r]!, a[m]!)) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m]!, a[i]!];
        i = m;
      }
    }
    return top;
  }
  peekTime(): number {
    return this.a.length === 0 ? Infinity : this.a[0]!.t;
  }
}

export class SimNode {
  chain = new ToyChain();
  persisted: Uint8Array | undefined;
  qbft: QbftNode | undefined;
  alive = true;
  incarnation = 0;
  rejects = new Map<string, number>();
  broadcasts = 0;
  /** Every schedule-timeout output: [height, round, delayMs]. */
  timers: [number, number, number][] = [];
  /** Every (height, round) this node decided at. */
  decisions: { height: number; round: number }[] = [];
  constructor(
    readonly index: number,
    readonly key: SimKey,
  ) {}
  get id(): string {
    return this.key.signer.id;
  }
  rejected(code: string): number {
    return this.rejects.get(code) ?? 0;
  }
}

export class Sim {
  readonly rng: Rng;
  readonly nodes: SimNode[];
  opts: Required<Omit<SimOptions, 'byzantine'>> & { byzantine: number[] };
  readonly verify: VerifyFn;
  now = 0;
  private seq = 0;
  private queue = new Heap();
  /** Blocks decided or imported anywhere, by height: hash hex. Two values = a fork. */
  readonly finalHashes = new Map<number, Set<string>>();
  /** Set when two different blocks became final at one height. */
  fork: string | undefined;
  /** Returns true when `from` can reach `to`. */
  reachable: (from: number, to: number) => boolean = () => true;
  /** Messages the network carried (after drops). */
  delivered = 0;
  /** Tap on every message sent (tests inspect or rewrite traffic). */
  onSend: ((from: number, to: number, bytes: Uint8Array) => Uint8Array | null) | undefined;

  constructor(opts: SimOptions) {
    this.opts = {
      validatorsAt: () => Array.from({ length: opts.n }, (_, i) => i),
      baseTimeoutMs: 1000,
      minDelayMs: 1,
      maxDelayMs: 20,
      dropRate: 0,
      dupRate: 0,
      syncIntervalMs: 0,
      blockPeriodMs: 1,
      fastSignatures: false,
      byzantine: [],
      ...opts,
    };
    this.rng = new Rng(opts.seed);
    this.verify = this.opts.fastSignatures ? fastVerify : verifyEd25519;
    this.nodes = Array.from({ length: opts.n }, (_, i) => new SimNode(i, makeKey(i, this.opts.fastSignatures)));
  }

  validatorIds(height: number): string[] {
    return this.opts.validatorsAt(height).map((i) => this.nodes[i]!.id);
  }

  /** Builds a fresh state machine for node i over its chain (used at start and restart). */
  private makeMachine(node: SimNode): QbftNode {
    const rng = new Rng(this.rng.int(1, 0x7fffffff));
    return new QbftNode({
      signer: node.key.signer,
      verify: this.verify,
      blocks: toyBlocks(node.chain, node.id, rng),
      validators: (h) => this.validatorIds(h),
      proposer: (h, r) => {
        const prev = node.chain.blocks[h - 1];
        const prevProposer = prev === undefined ? undefined : decodeToyBlock(prev.block).proposer;
        return roundRobinProposer(this.validatorIds(h), prevProposer, r);
      },
      baseRoundTimeoutMs: this.opts.baseTimeoutMs,
    });
  }

  start(): void {
    for (const node of this.nodes) {
      if (node.alive) {
        node.qbft = this.makeMachine(node);
        this.apply(node, node.qbft.handle({ kind: 'start', height: node.chain.headHeight + 1, persisted: node.persisted }));
      }
      if (this.opts.syncIntervalMs > 0) this.push({ kind: 'sync', node: node.index, t: this.now + this.rng.int(1, this.opts.syncIntervalMs) });
    }
  }

  crash(i: number): void {
    const node = this.nodes[i]!;
    node.alive = false;
    node.qbft = undefined;
    node.incarnation++;
  }

  restart(i: number): void {
    const node = this.nodes[i]!;
    if (node.alive) return;
    node.alive = true;
    node.qbft = this.makeMachine(node);
    this.apply(node, node.qbft.handle({ kind: 'start', height: node.chain.headHeight + 1, persisted: node.persisted }));
  }

  private push(e: DistributiveOmit<Event, 'seq'>): void {
    this.queue.push({ ...e, seq: this.seq++ } as Event);
  }

  /** Sends bytes over the simulated network (subject to partitions, drops, delays, duplicates). */
  send(from: number, to: number, bytes: Uint8Array): void {
    if (from === to) return;
    if (this.onSend !== undefined) {
      const b = this.onSend(from, to, bytes);
      if (b === null) return;
      bytes = b;
    }
    if (!this.reachable(from, to) || this.rng.chance(this.opts.dropRate)) return;
    const copies = this.rng.chance(this.opts.dupRate) ? 2 : 1;
    for (let c = 0; c < copies; c++) {
      this.push({ kind: 'deliver', to, from, bytes, t: this.now + this.rng.int(this.opts.minDelayMs, this.opts.maxDelayMs) });
    }
  }

  /** Delivers bytes to node i right now (as if from the network). */
  inject(i: number, bytes: Uint8Array): QbftOutput[] {
    const node = this.nodes[i]!;
    const out = node.qbft!.handle({ kind: 'message', bytes });
    this.apply(node, out);
    return out;
  }

  apply(node: SimNode, outputs: QbftOutput[]): void {
    for (const o of outputs) {
      switch (o.kind) {
        case 'persist':
          node.persisted = o.state;
          break;
        case 'broadcast':
          node.broadcasts++;
          for (const other of this.nodes) {
            if (other.index === node.index) continue;
            const bytes = this.opts.byzantine.includes(node.index) ? this.equivocate(node, other.index, o.bytes) : o.bytes;
            this.send(node.index, other.index, bytes);
          }
          break;
        case 'schedule-timeout':
          node.timers.push([o.height, o.round, o.delayMs]);
          this.push({ kind: 'timeout', node: node.index, incarnation: node.incarnation, height: o.height, round: o.round, t: this.now + o.delayMs });
          break;
        case 'decide': {
          const hash = hashToyBlock(o.block);
          verifySeals(hash, o.round, o.seals, this.validatorIds(o.height), this.verify);
          node.decisions.push({ height: o.height, round: o.round });
          this.importBlock(node, { block: Buffer.from(o.block), hash, round: o.round, seals: o.seals });
          this.push({ kind: 'new-head', node: node.index, incarnation: node.incarnation, height: o.height, t: this.now + this.opts.blockPeriodMs });
          break;
        }
        case 'reject':
          node.rejects.set(o.code, (node.rejects.get(o.code) ?? 0) + 1);
          break;
      }
    }
  }

  private importBlock(node: SimNode, sb: SealedBlock): void {
    const h = decodeToyBlock(sb.block).height;
    if (h !== node.chain.headHeight + 1) throw new Error(`node ${node.index} imports height ${h} on head ${node.chain.headHeight}`);
    node.chain.blocks.push(sb);
    let set = this.finalHashes.get(h);
    if (set === undefined) this.finalHashes.set(h, (set = new Set()));
    set.add(sb.hash.toString('hex'));
    if (set.size > 1 && this.fork === undefined) this.fork = `fork at height ${h}: ${[...set].join(', ')}`;
  }

  /** Catch-up: copy sealed blocks from a random reachable live peer, checking their seals. */
  private sync(node: SimNode): void {
    const peers = this.nodes.filter((p) => p !== node && p.alive && this.reachable(p.index, node.index) && this.reachable(node.index, p.index));
    if (peers.length === 0 || !node.alive) return;
    const peer = peers[this.rng.int(0, peers.length - 1)]!;
    let imported = false;
    while (peer.chain.headHeight > node.chain.headHeight) {
      const sb = peer.chain.blocks[node.chain.headHeight + 1]!;
      verifySeals(sb.hash, sb.round, sb.seals, this.validatorIds(node.chain.headHeight + 1), this.verify);
      if (!decodeToyBlock(sb.block).parent.equals(node.chain.head.hash)) throw new Error('sync: fork between peers');
      this.importBlock(node, sb);
      imported = true;
    }
    if (imported) this.apply(node, node.qbft!.handle({ kind: 'new-head', height: node.chain.headHeight }));
  }

  /** Byzantine sender: rewrites some messages into conflicting, validly signed ones. */
  private equivocate(node: SimNode, to: number, bytes: Uint8Array): Uint8Array {
    return this.equivocator?.(node, to, bytes) ?? bytes;
  }
  equivocator: ((node: SimNode, to: number, bytes: Uint8Array) => Uint8Array | undefined) | undefined;

  /** Runs events until `until` (simulated ms) or `stop()` returns true. Returns true if stopped. */
  run(until: number, stop?: () => boolean): boolean {
    while (this.queue.peekTime() <= until) {
      if (stop?.()) return true;
      const e = this.queue.pop()!;
      this.now = e.t;
      const node = this.nodes[e.kind === 'deliver' ? e.to : e.node]!;
      if (e.kind === 'sync') this.push({ kind: 'sync', node: node.index, t: this.now + this.opts.syncIntervalMs });
      if (!node.alive || node.qbft === undefined) continue;
      switch (e.kind) {
        case 'deliver':
          this.delivered++;
          this.apply(node, node.qbft.handle({ kind: 'message', bytes: e.bytes }));
          break;
        case 'timeout':
          if (e.incarnation === node.incarnation) this.apply(node, node.qbft.handle({ kind: 'timeout', height: e.height, round: e.round }));
          break;
        case 'new-head':
          if (e.incarnation === node.incarnation) this.apply(node, node.qbft.handle({ kind: 'new-head', height: e.height }));
          break;
        case 'sync':
          this.sync(node);
          break;
      }
    }
    if (stop?.()) return true;
    this.now = Math.max(this.now, until);
    return false;
  }

  /** Runs until every node in `which` (default: all alive) has at least `height` blocks. */
  runUntilHeight(height: number, until: number, which?: number[]): boolean {
    const ids = which ?? this.nodes.filter((n) => n.alive).map((n) => n.index);
    return this.run(until, () => ids.every((i) => this.nodes[i]!.chain.headHeight >= height));
  }

  /** Throws if two different blocks were final at one height anywhere. */
  assertNoFork(): void {
    if (this.fork !== undefined) throw new Error(this.fork);
  }

  minHeight(which?: number[]): number {
    const ids = which ?? this.nodes.map((n) => n.index);
    return Math.min(...ids.map((i) => this.nodes[i]!.chain.headHeight));
  }
}
