/**
 * The chain's deterministic core: genesis, the transaction checks in front of the pool, block
 * building and re-execution, and the QBFT `QbftBlocks` adapter (createBlock / validateBlock /
 * hashBlock / heightOf). It holds the committed state in memory; chain/io/store.ts persists what
 * `commit` applies, and chain/io/node.ts drives consensus. No I/O here: the clock is injected.
 *
 * Execution of a block (every validator does the same): for each transaction in order — its
 * signature and chain id must verify and its nonce must be the sender's next nonce (else the
 * whole block is invalid: the proposer had to check them); the nonce is consumed; the module call
 * runs in its own overlay and either commits or, on a throw, is rolled back and recorded with its
 * error code. Then every module's `endBlock` runs. The state root, tx root and results root must
 * equal the header's.
 *
 * Trust: transactions (RPC, p2p) and blocks (proposals, sync) are attacker-controlled.
 */
import { CageError, isCageError } from '../core/errors.js';
import { canonicalDidKey } from '../core/did-key.js';
import {
  computeResultsRoot,
  computeTxRoot,
  decodeBlock,
  decodeHeader,
  encodeBlock,
  hashHeader,
  MAX_BLOCK_TXS,
  type Block,
  type TxResult,
} from './block.js';
import { Mempool, type MempoolOptions } from './mempool.js';
import { VALIDATORS_KEY, type ChainEvent, type ChainModule, type StateView } from './module.js';
import { MemoryState, nextStateRoot, Overlay, readNonce, writeNonce, ZERO_HASH, type StateReader } from './state.js';
import { decodeTransaction, verifyTransaction, type Transaction } from './tx.js';

/** The genesis file (JSON). */
export interface Genesis {
  readonly chainId: string;
  /** ms since the epoch; the genesis block's timestamp. */
  readonly timestamp: number;
  /** The first validator set (did:key, proposer order). */
  readonly validators: readonly string[];
  /** Each module's genesis section, by module name. */
  readonly modules?: Readonly<Record<string, unknown>>;
  /** Consensus timing (defaults in chain/io/node.ts). */
  readonly consensus?: { readonly blockPeriodMs?: number; readonly roundTimeoutMs?: number };
}

const GENESIS_KEYS = new Set(['chainId', 'timestamp', 'validators', 'modules', 'consensus']);

function badGenesis(message: string): CageError {
  return new CageError({ code: 'CHAIN_BAD_GENESIS', message });
}

/** Checks a parsed genesis file. Throws CHAIN_BAD_GENESIS naming the field. */
export function parseGenesis(input: unknown): Genesis {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw badGenesis('genesis must be a JSON object');
  const g = input as Record<string, unknown>;
  for (const k of Object.keys(g)) if (!GENESIS_KEYS.has(k)) throw badGenesis(`unknown genesis key ${JSON.stringify(k)}`);
  if (typeof g.chainId !== 'string' || !/^[\x21-\x7e]{1,64}$/.test(g.chainId)) throw badGenesis('chainId must be 1..64 printable ASCII characters');
  if (!Number.isSafeInteger(g.timestamp) || (g.timestamp as number) < 0) throw badGenesis('timestamp must be a non-negative integer (ms)');
  if (!Array.isArray(g.validators) || g.validators.length === 0 || g.validators.length > 256) throw badGenesis('validators must be 1..256 did:key strings');
  const validators = g.validators.map((v, i) => {
    try {
      if (typeof v !== 'string' || !v.startsWith('did:key:')) throw new Error('not a did:key');
      return canonicalDidKey(v);
    } catch {
      throw badGenesis(`validators[${i}] is not an Ed25519 did:key`);
    }
  });
  if (new Set(validators).size !== validators.length) throw badGenesis('validators holds a duplicate');
  if (g.modules !== undefined && (typeof g.modules !== 'object' || g.modules === null || Array.isArray(g.modules))) throw badGenesis('modules must be an object');
  const c = g.consensus as Record<string, unknown> | undefined;
  if (c !== undefined) {
    if (typeof c !== 'object' || c === null) throw badGenesis('consensus must be an object');
    for (const k of Object.keys(c)) {
      if (k !== 'blockPeriodMs' && k !== 'roundTimeoutMs') throw badGenesis(`unknown consensus key ${JSON.stringify(k)}`);
      if (!Number.isSafeInteger(c[k]) || (c[k] as number) < 1 || (c[k] as number) > 3_600_000) throw badGenesis(`consensus.${k} must be 1..3600000`);
    }
  }
  return Object.freeze({ ...(g as unknown as Genesis), validators });
}

export interface ChainHead {
  readonly height: number;
  readonly hash: Buffer;
  readonly timestamp: number;
  readonly stateRoot: Buffer;
}

/** A block with the outcome of executing it: what the store writes and `commit` applies. */
export interface Execution {
  readonly block: Block;
  readonly writes: ReadonlyMap<string, Uint8Array | null>;
  readonly results: readonly TxResult[];
  readonly blockEvents: readonly ChainEvent[];
  /** The validator set after this block (finalizes the next height). */
  readonly validators: readonly string[];
}

export interface ChainOptions {
  readonly genesis: Genesis;
  readonly modules: readonly ChainModule[];
  /** Wall clock for block timestamps (ms). */
  readonly now: () => number;
  /** This node's did:key (the proposer field of blocks it builds). */
  readonly self?: string;
  readonly mempool?: MempoolOptions;
  /** Most transactions a block this node builds holds (default 2,000). */
  readonly maxBlockTxs?: number;
  /** How far ahead of the local clock a proposed block's timestamp may be (default 15 s). */
  readonly maxClockDriftMs?: number;
}

/** The state key holding the genesis file (JSON). */
export const GENESIS_KEY = 'chain/genesis';
const MAX_CACHED_EXECUTIONS = 16;
const MAX_VERIFIED_CACHE = 200_000;

function readValidators(state: StateReader): string[] {
  const v = state.get(VALIDATORS_KEY);
  if (v === undefined) return [];
  return JSON.parse(Buffer.from(v).toString('utf8')) as string[];
}

export class Chain {
  readonly genesis: Genesis;
  readonly chainId: string;
  readonly modules: ReadonlyMap<string, ChainModule>;
  readonly state = new MemoryState();
  readonly mempool: Mempool;
  private headValue!: ChainHead;
  private validatorSet: readonly string[] = [];
  private readonly executions = new Map<string, Execution>();
  private verified = new Set<string>();
  private readonly now: () => number;
  private readonly self: string;
  private readonly maxBlockTxs: number;
  private readonly maxClockDriftMs: number;

  constructor(opts: ChainOptions) {
    this.genesis = opts.genesis;
    this.chainId = opts.genesis.chainId;
    const modules = new Map<string, ChainModule>();
    for (const m of opts.modules) {
      if (modules.has(m.name)) throw badGenesis(`module ${m.name} is registered twice`);
      modules.set(m.name, m);
    }
    this.modules = modules;
    this.now = opts.now;
    this.self = opts.self ?? '';
    this.mempool = new Mempool(opts.mempool);
    this.maxBlockTxs = Math.min(opts.maxBlockTxs ?? 2_000, MAX_BLOCK_TXS);
    this.maxClockDriftMs = opts.maxClockDriftMs ?? 15_000;
  }

  get head(): ChainHead {
    return this.headValue;
  }

  /** The validator set that finalizes the next height (head + 1). */
  get validators(): readonly string[] {
    return this.validatorSet;
  }

  /** Builds the genesis block and its state writes (height 0). Call `commit` with it on an empty store. */
  genesisExecution(): Execution {
    const overlay = new Overlay(this.state);
    overlay.set(VALIDATORS_KEY, Buffer.from(JSON.stringify(this.genesis.validators), 'utf8'));
    // The whole genesis file is part of the genesis state, so another chain id or parameter is another chain.
    overlay.set(GENESIS_KEY, Buffer.from(JSON.stringify(this.genesis), 'utf8'));
    for (const m of this.modules.values()) {
      try {
        m.initGenesis(overlay, this.genesis.modules?.[m.name]);
      } catch (err) {
        throw badGenesis(`module ${m.name} refused its genesis section: ${(err as Error).message}`);
      }
    }
    const stateRoot = nextStateRoot(ZERO_HASH, overlay.writes);
    const block = encodeBlock(
      { height: 0, parentHash: ZERO_HASH, timestamp: this.genesis.timestamp, proposer: '', txRoot: computeTxRoot([]), resultsRoot: computeResultsRoot([]), stateRoot },
      [],
    );
    return { block, writes: overlay.writes, results: [], blockEvents: [], validators: readValidators(overlay) };
  }

  /** Restores the in-memory chain from the store: the head and every state key. */
  restore(head: ChainHead, state: Iterable<[string, Uint8Array]>): void {
    const writes = new Map<string, Uint8Array | null>();
    for (const [k, v] of state) writes.set(k, v);
    this.state.apply(writes);
    this.headValue = head;
    this.validatorSet = readValidators(this.state);
  }

  /** Applies an executed block to the in-memory state (after the store made it durable). */
  commit(exec: Execution): void {
    const h = exec.block.header;
    if (this.headValue !== undefined && h.height !== this.headValue.height + 1) {
      throw new CageError({ code: 'CHAIN_INVALID_BLOCK', message: `block ${h.height} does not follow head ${this.headValue.height}` });
    }
    this.state.apply(exec.writes);
    this.headValue = { height: h.height, hash: exec.block.hash, timestamp: h.timestamp, stateRoot: h.stateRoot };
    this.validatorSet = exec.validators;
    this.executions.clear();
    this.mempool.prune(exec.block.txs, (s) => readNonce(this.state, s));
  }

  // ---- transactions -------------------------------------------------------------------------

  /** Decodes and checks a transaction for the pool. Throws CHAIN_BAD_TX, CHAIN_WRONG_CHAIN, CHAIN_BAD_TX_SIGNATURE, CHAIN_UNKNOWN_MODULE, CHAIN_BAD_NONCE. */
  checkTx(bytes: Uint8Array): Transaction {
    const tx = decodeTransaction(bytes);
    if (!this.modules.has(tx.module)) throw new CageError({ code: 'CHAIN_UNKNOWN_MODULE', message: `no module ${JSON.stringify(tx.module)}` });
    const next = readNonce(this.state, tx.sender);
    if (tx.nonce < next) throw new CageError({ code: 'CHAIN_BAD_NONCE', message: `nonce ${tx.nonce} is used; the next nonce of ${tx.sender} is ${next}` });
    if (tx.nonce >= next + this.mempool.maxPerSender) throw new CageError({ code: 'CHAIN_BAD_NONCE', message: `nonce ${tx.nonce} is too far ahead of ${next}` });
    this.verifyOnce(tx);
    return tx;
  }

  /** Checks a transaction and adds it to the pool; returns it. */
  submit(bytes: Uint8Array): Transaction {
    const tx = this.checkTx(bytes);
    this.mempool.add(tx);
    return tx;
  }

  /** The next nonce for an account, counting the unbroken run it has in the pool. */
  pendingNonce(did: string): number {
    return this.mempool.nextNonce(did, readNonce(this.state, did));
  }

  private verifyOnce(tx: Transaction): void {
    const hex = tx.hash.toString('hex');
    if (this.verified.has(hex)) return;
    verifyTransaction(tx, this.chainId);
    if (this.verified.size >= MAX_VERIFIED_CACHE) this.verified = new Set();
    this.verified.add(hex);
  }

  // ---- blocks -------------------------------------------------------------------------------

  /** Executes transactions on top of the head; returns the writes, results and events. */
  private run(txs: readonly Transaction[], height: number, timestamp: number, proposer: string): Omit<Execution, 'block'> & { stateRoot: Buffer } {
    const block = new Overlay(this.state);
    const validators = this.validatorSet;
    const results: TxResult[] = [];
    for (const tx of txs) {
      try {
        this.verifyOnce(tx);
      } catch (err) {
        throw new CageError({ code: 'CHAIN_INVALID_BLOCK', message: `transaction ${tx.hash.toString('hex')}: ${(err as Error).message}` });
      }
      const next = readNonce(block, tx.sender);
      if (tx.nonce !== next) throw new CageError({ code: 'CHAIN_INVALID_BLOCK', message: `transaction ${tx.hash.toString('hex')} has nonce ${tx.nonce}, want ${next}` });
      writeNonce(block, tx.sender, next + 1);
      results.push(this.deliver(block, tx, { height, time: timestamp, sender: tx.sender, txHash: tx.hash, validators }));
    }
    const blockEvents: ChainEvent[] = [];
    for (const m of this.modules.values()) {
      if (m.endBlock === undefined) continue;
      const layer = new Overlay(block);
      try {
        blockEvents.push(...m.endBlock(layer, { height, time: timestamp, validators, proposer }));
        layer.commitTo(block);
      } catch {
        // endBlock must not throw; if it does, its writes are dropped (deterministically on every node).
      }
    }
    const after = readValidators(block);
    return { writes: block.writes, results, blockEvents, validators: after.length > 0 ? after : validators, stateRoot: nextStateRoot(this.headValue.stateRoot, block.writes) };
  }

  private deliver(block: Overlay, tx: Transaction, ctx: { height: number; time: number; sender: string; txHash: Buffer; validators: readonly string[] }): TxResult {
    const m = this.modules.get(tx.module);
    if (m === undefined) return { code: 'CHAIN_UNKNOWN_MODULE', events: [] };
    const layer = new Overlay(block);
    try {
      const events = m.deliverTx(layer, ctx, tx.method, tx.args);
      layer.commitTo(block);
      return { code: 'OK', events };
    } catch (err) {
      return { code: isCageError(err) ? err.code : 'CHAIN_BAD_ARGS', events: [] };
    }
  }

  /** Builds a block at head + 1 from the pool (QbftBlocks.createBlock). */
  createBlock(height: number): Block {
    if (height !== this.headValue.height + 1) {
      throw new CageError({ code: 'CHAIN_INVALID_BLOCK', message: `cannot build block ${height} on head ${this.headValue.height}` });
    }
    const txs = this.mempool.select(this.maxBlockTxs, (s) => readNonce(this.state, s), 16 * 1024 * 1024);
    const timestamp = Math.max(this.now(), this.headValue.timestamp);
    const r = this.run(txs, height, timestamp, this.self);
    const block = encodeBlock(
      { height, parentHash: this.headValue.hash, timestamp, proposer: this.self, txRoot: computeTxRoot(txs), resultsRoot: computeResultsRoot(r.results), stateRoot: r.stateRoot },
      txs,
    );
    this.remember({ block, ...r });
    return block;
  }

  /**
   * Re-executes a block on the head and compares every root (the proposal check, and the import
   * check for synced blocks; `checkClock` is off for old blocks). Throws CHAIN_INVALID_BLOCK.
   */
  executeBlock(bytes: Uint8Array, checkClock: boolean): Execution {
    const head = decodeHeader(bytes).header;
    const cached = this.executions.get(hashOf(bytes));
    if (cached !== undefined && cached.block.bytes.equals(bytes)) return cached;
    const invalid = (message: string): CageError => new CageError({ code: 'CHAIN_INVALID_BLOCK', message: `block ${head.height}: ${message}` });
    if (head.height !== this.headValue.height + 1) throw invalid(`does not follow head ${this.headValue.height}`);
    let block: Block;
    try {
      block = decodeBlock(bytes);
    } catch (err) {
      throw invalid((err as Error).message);
    }
    const h = block.header;
    if (!h.parentHash.equals(this.headValue.hash)) throw invalid('parent hash is not the head');
    if (h.timestamp < this.headValue.timestamp) throw invalid('timestamp is before the parent');
    if (checkClock && h.timestamp > this.now() + this.maxClockDriftMs) throw invalid('timestamp is too far in the future');
    if (!computeTxRoot(block.txs).equals(h.txRoot)) throw invalid('tx root mismatch');
    const r = this.run(block.txs, h.height, h.timestamp, h.proposer);
    if (!computeResultsRoot(r.results).equals(h.resultsRoot)) throw invalid('results root mismatch');
    if (!r.stateRoot.equals(h.stateRoot)) throw invalid('state root mismatch');
    const exec: Execution = { block, writes: r.writes, results: r.results, blockEvents: r.blockEvents, validators: r.validators };
    this.remember(exec);
    return exec;
  }

  /** QbftBlocks.validateBlock: null when valid. */
  validateBlock(bytes: Uint8Array, height: number): { code: string; message: string } | null {
    try {
      const h = decodeHeader(bytes).header;
      if (h.height !== height) return { code: 'CHAIN_INVALID_BLOCK', message: `block is for height ${h.height}, not ${height}` };
      this.executeBlock(bytes, true);
      return null;
    } catch (err) {
      return { code: isCageError(err) ? err.code : 'CHAIN_INVALID_BLOCK', message: (err as Error).message };
    }
  }

  /** The execution of a block this node built or validated (decide path), or re-executes it. */
  executionFor(bytes: Uint8Array): Execution {
    return this.executeBlock(bytes, false);
  }

  private remember(exec: Execution): void {
    if (this.executions.size >= MAX_CACHED_EXECUTIONS) this.executions.delete(this.executions.keys().next().value!);
    this.executions.set(exec.block.hash.toString('hex'), exec);
  }

  // ---- queries ------------------------------------------------------------------------------

  /** Runs a module query on the committed state. Throws CHAIN_UNKNOWN_MODULE or the module's code. */
  query(module: string, method: string, params: unknown): unknown {
    const m = this.modules.get(module);
    if (m === undefined) throw new CageError({ code: 'CHAIN_UNKNOWN_MODULE', message: `no module ${JSON.stringify(module)}` });
    return m.query(readOnly(this.state), method, params);
  }
}

/** The block hash (SHA-256 of the header) of block bytes (QbftBlocks.hashBlock). */
export function hashOf(bytes: Uint8Array): string {
  return hashBlockBytes(bytes).toString('hex');
}

export function hashBlockBytes(bytes: Uint8Array): Buffer {
  const { length } = decodeHeader(bytes);
  return hashHeader(bytes.subarray(0, length));
}

/** A StateView that refuses writes (queries). */
export function readOnly(state: StateReader): StateView {
  return {
    get: (k) => state.get(k),
    entries: (p) => state.entries(p),
    set: () => {
      throw new CageError({ code: 'CHAIN_BAD_ARGS', message: 'queries cannot write state' });
    },
    delete: () => {
      throw new CageError({ code: 'CHAIN_BAD_ARGS', message: 'queries cannot write state' });
    },
  };
}
