/**
 * A chain node: the I/O shell around the pure parts. It restores the chain from the store, drives
 * QBFT (chain/qbft) with messages from the p2p transport and with timers, imports decided blocks
 * (one atomic store batch each), catches up from peers by fetching sealed blocks (seals checked
 * with `verifySeals` against the set that finalizes each height, blocks re-executed), and serves the
 * pool to the RPC. Every input goes through one serial queue, so consensus, imports and sync never
 * interleave; `persist` is fsynced before the broadcasts that follow it.
 *
 * Timing: after a block is imported the node waits `blockPeriodMs` before starting the next height
 * (QBFT `new-head`), so an idle chain makes `1000 / blockPeriodMs` small empty blocks a second;
 * round r times out after `roundTimeoutMs · 2^r`.
 */
import { EventEmitter } from 'node:events';
import { CageError, isCageError } from '../../core/errors.js';
import { decodeHeader, type Block } from '../block.js';
import { Chain, hashBlockBytes, parseGenesis, type Execution, type Genesis } from '../chain.js';
import { verifyEd25519, type ChainKey } from '../keys.js';
import type { ChainModule } from '../module.js';
import { defaultModules } from '../modules/index.js';
import { QbftNode, roundRobinProposer, verifySeals, type CommitSeal, type QbftInput, type QbftOutput } from '../qbft/index.js';
import type { Transaction } from '../tx.js';
import { P2P, type SyncBlock } from './p2p.js';
import { ChainStore } from './store.js';

export interface ChainNodeOptions {
  readonly dataDir: string;
  readonly genesis: Genesis | unknown;
  readonly key: ChainKey;
  readonly modules?: readonly ChainModule[];
  /** p2p listen address `host:port` (omit for a single validator with no peers). */
  readonly listen?: string;
  /** Peer p2p addresses `host:port` to dial. */
  readonly peers?: readonly string[];
  readonly blockPeriodMs?: number;
  readonly roundTimeoutMs?: number;
  readonly maxBlockTxs?: number;
  readonly now?: () => number;
  /** Diagnostics (rejects, sync errors); default silent. */
  readonly log?: (event: string, data: Record<string, unknown>) => void;
}

export const DEFAULT_BLOCK_PERIOD_MS = 200;
export const DEFAULT_ROUND_TIMEOUT_MS = 2000;
const SYNC_BATCH = 64;

export interface NodeEvents {
  head: [Block, Execution];
}

export class ChainNode extends EventEmitter<NodeEvents> {
  readonly chain: Chain;
  readonly store: ChainStore;
  readonly key: ChainKey;
  p2p: P2P | undefined;
  private qbft!: QbftNode;
  private queue: Promise<void> = Promise.resolve();
  private readonly timers = new Set<NodeJS.Timeout>();
  private headProposer: string | undefined;
  private startedHeight = 0;
  private closed = false;
  private syncing = false;
  private gossip: Buffer[] = [];
  private gossipTimer: NodeJS.Timeout | undefined;
  readonly blockPeriodMs: number;
  readonly roundTimeoutMs: number;
  private readonly log: (event: string, data: Record<string, unknown>) => void;

  private constructor(chain: Chain, store: ChainStore, opts: ChainNodeOptions, genesis: Genesis) {
    super();
    this.chain = chain;
    this.store = store;
    this.key = opts.key;
    this.blockPeriodMs = opts.blockPeriodMs ?? genesis.consensus?.blockPeriodMs ?? DEFAULT_BLOCK_PERIOD_MS;
    this.roundTimeoutMs = opts.roundTimeoutMs ?? genesis.consensus?.roundTimeoutMs ?? DEFAULT_ROUND_TIMEOUT_MS;
    this.log = opts.log ?? (() => {});
  }

  /** Opens the store (writing genesis on first start), restores the chain and starts consensus and p2p. */
  static async start(opts: ChainNodeOptions): Promise<ChainNode> {
    const genesis = parseGenesis(opts.genesis);
    const now = opts.now ?? Date.now;
    const chain = new Chain({ genesis, modules: opts.modules ?? defaultModules(), now, self: opts.key.did, maxBlockTxs: opts.maxBlockTxs });
    const store = await ChainStore.open(opts.dataDir);
    const node = new ChainNode(chain, store, opts, genesis);
    try {
      await node.restore();
      if (opts.listen !== undefined || (opts.peers?.length ?? 0) > 0) {
        node.p2p = new P2P({
          key: opts.key,
          chainId: genesis.chainId,
          genesisHash: (await store.genesisHash())!,
          isValidator: (did) => node.isKnownValidator(did),
          onConsensus: (bytes) => node.input({ kind: 'message', bytes }),
          onTxs: (txs) => node.receiveTxs(txs),
          onStatus: (height) => node.peerHeight(height),
          getBlocks: (from, to) => node.blocksForPeer(from, to),
          onBlocks: (blocks) => node.importSynced(blocks),
          head: () => node.chain.head.height,
          log: node.log,
        });
        await node.p2p.start(opts.listen, opts.peers ?? []);
      }
      node.startConsensus(await store.consensus());
    } catch (err) {
      await node.close();
      throw err;
    }
    return node;
  }

  private async restore(): Promise<void> {
    const head = await this.store.head();
    const genesisExec = this.chain.genesisExecution();
    const storedGenesis = await this.store.genesisHash();
    if (head === undefined) {
      await this.store.commitBlock(genesisExec, 0, []);
      this.chain.commit(genesisExec);
      return;
    }
    if (storedGenesis !== genesisExec.block.hash.toString('hex')) {
      throw new CageError({ code: 'CHAIN_BAD_GENESIS', message: `the store holds another chain (genesis ${storedGenesis ?? 'missing'})` });
    }
    const state: [string, Uint8Array][] = [];
    for await (const e of this.store.state()) state.push(e);
    const top = await this.store.block(head.height);
    if (top === undefined) throw new CageError({ code: 'CHAIN_STORE_CORRUPT', message: `the head block ${head.height} is missing` });
    this.chain.restore(head, state);
    this.headProposer = decodeHeader(top.bytes).header.proposer || undefined;
  }

  private isKnownValidator(did: string): boolean {
    return this.chain.validators.includes(did);
  }

  private startConsensus(persisted: Buffer | undefined): void {
    this.qbft = new QbftNode({
      signer: { id: this.key.did, sign: (d) => this.key.sign(d) },
      verify: verifyEd25519,
      blocks: {
        createBlock: (height) => this.chain.createBlock(height).bytes,
        validateBlock: (block, height) => this.chain.validateBlock(block, height),
        hashBlock: (block) => hashBlockBytes(block),
        heightOf: (block) => decodeHeader(block).header.height,
      },
      validators: () => this.chain.validators,
      proposer: (height, round) => roundRobinProposer(this.chain.validators, height === this.chain.head.height + 1 ? this.headProposer : undefined, round),
      baseRoundTimeoutMs: this.roundTimeoutMs,
    });
    const height = this.chain.head.height + 1;
    this.startedHeight = height;
    this.input({ kind: 'start', height, ...(persisted === undefined ? {} : { persisted }) });
  }

  /** Queues one consensus input; outputs are acted on in order. */
  input(i: QbftInput): void {
    this.enqueue(async () => this.act(this.qbft.handle(i)));
  }

  private enqueue(task: () => Promise<void>): void {
    this.queue = this.queue.then(async () => {
      if (this.closed) return;
      try {
        await task();
      } catch (err) {
        this.log('error', { code: isCageError(err) ? err.code : 'INTERNAL', message: (err as Error).message });
      }
    });
  }

  private async act(outputs: QbftOutput[]): Promise<void> {
    for (const o of outputs) {
      if (this.closed) return;
      switch (o.kind) {
        case 'persist':
          await this.store.putConsensus(o.state);
          break;
        case 'broadcast':
          this.p2p?.broadcastConsensus(o.bytes);
          break;
        case 'schedule-timeout':
          this.later(o.delayMs, () => this.input({ kind: 'timeout', height: o.height, round: o.round }));
          break;
        case 'decide':
          await this.importDecided(o.height, o.round, o.block, o.seals);
          break;
        case 'reject':
          this.log('reject', { code: o.code, reason: o.reason });
          break;
      }
    }
  }

  private later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (!this.closed) fn();
    }, ms);
    this.timers.add(t);
  }

  private async importDecided(height: number, round: number, bytes: Uint8Array, seals: CommitSeal[]): Promise<void> {
    if (height !== this.chain.head.height + 1) return; // already imported by sync
    const exec = this.chain.executionFor(bytes);
    await this.commit(exec, round, seals);
  }

  private async commit(exec: Execution, round: number, seals: readonly CommitSeal[]): Promise<void> {
    await this.store.commitBlock(exec, round, seals);
    this.chain.commit(exec);
    this.headProposer = exec.block.header.proposer || undefined;
    this.emit('head', exec.block, exec);
    this.p2p?.broadcastStatus(exec.block.header.height);
    const height = exec.block.header.height;
    this.later(this.blockPeriodMs, () => this.enqueue(async () => {
      if (this.chain.head.height === height) await this.act(this.qbft.handle({ kind: 'new-head', height }));
    }));
  }

  // ---- sync -----------------------------------------------------------------------------------

  private peerHeight(height: number): void {
    if (height > this.chain.head.height && !this.syncing) {
      this.syncing = true;
      this.p2p?.requestBlocks(this.chain.head.height + 1, Math.min(height, this.chain.head.height + SYNC_BATCH));
      this.later(2000, () => {
        this.syncing = false;
      });
    }
  }

  private async blocksForPeer(from: number, to: number): Promise<SyncBlock[]> {
    const out: SyncBlock[] = [];
    for (let h = from; h <= Math.min(to, from + SYNC_BATCH - 1, this.chain.head.height); h++) {
      const b = await this.store.block(h);
      if (b === undefined) break;
      out.push(b);
    }
    return out;
  }

  /** Imports blocks fetched from a peer: seals verified against the set for each height, block re-executed. */
  importSynced(blocks: readonly SyncBlock[]): void {
    this.enqueue(async () => {
      this.syncing = false;
      for (const b of blocks) {
        const height = decodeHeader(b.bytes).header.height;
        if (height <= this.chain.head.height) continue;
        if (height !== this.chain.head.height + 1) break;
        try {
          verifySeals(hashBlockBytes(b.bytes), b.round, b.seals, this.chain.validators, verifyEd25519);
          const exec = this.chain.executionFor(b.bytes);
          await this.store.commitBlock(exec, b.round, b.seals);
          this.chain.commit(exec);
          this.headProposer = exec.block.header.proposer || undefined;
          this.emit('head', exec.block, exec);
          await this.act(this.qbft.handle({ kind: 'new-head', height }));
        } catch (err) {
          this.log('sync-reject', { height, code: isCageError(err) ? err.code : 'INTERNAL', message: (err as Error).message });
          break;
        }
      }
    });
  }

  // ---- transactions ---------------------------------------------------------------------------

  /** Checks a transaction, adds it to the pool and gossips it to the peers. Throws the check's CageError. */
  submitTransaction(bytes: Uint8Array): Transaction {
    const tx = this.chain.submit(bytes);
    if (this.p2p !== undefined) {
      this.gossip.push(tx.bytes);
      this.gossipTimer ??= setTimeout(() => {
        this.gossipTimer = undefined;
        const batch = this.gossip;
        this.gossip = [];
        this.p2p?.broadcastTxs(batch);
      }, 2);
    }
    return tx;
  }

  private receiveTxs(txs: readonly Uint8Array[]): void {
    for (const bytes of txs) {
      try {
        this.chain.submit(bytes);
      } catch {
        // Duplicates and stale nonces are expected between peers.
      }
    }
  }

  get startHeight(): number {
    return this.startedHeight;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    if (this.gossipTimer !== undefined) clearTimeout(this.gossipTimer);
    await this.p2p?.close();
    await this.queue.catch(() => {});
    await this.store.close();
  }
}
