/**
 * The contract between the chain's state machine and its modules (`anchor`, `validators`, `bank`,
 * `court`, `gov`). A module is pure: it reads and writes a key-value state through `StateView`,
 * sees the transaction's context, and either returns events or throws a `CageError` (the
 * transaction then fails, all its writes are rolled back, and the block records the code).
 * Every validator runs the same modules over the same blocks and must reach the same state root,
 * so a module never reads clocks, randomness, the network or the disk: time is `ctx.time`, the
 * block's timestamp.
 *
 * Keys are strings under the module's own prefix (`bank/…`, `court/…`); values are bytes. Modules
 * that call into each other (the court slashing bonded stake held by the bank) import each other's
 * exported functions and pass the same `StateView`: there is no other cross-module channel.
 */

/** A transactional key-value view of the chain state. Writes are visible to later reads in the
 *  same transaction and are discarded if the transaction throws. Iteration is in key order. */
export interface StateView {
  get(key: string): Uint8Array | undefined;
  set(key: string, value: Uint8Array): void;
  delete(key: string): void;
  /** Keys starting with `prefix`, ascending, with their values. */
  entries(prefix: string): Iterable<[string, Uint8Array]>;
}

/** What a module sees of the transaction and block it runs in. */
export interface TxContext {
  /** Block height the transaction is included at. */
  readonly height: number;
  /** The block's timestamp, ms since the epoch (chosen by the proposer, checked by validators). */
  readonly time: number;
  /** The signer, a `did:key` (Ed25519). Already authenticated and nonce-checked by the chain. */
  readonly sender: string;
  /** SHA-256 of the encoded signed transaction. */
  readonly txHash: Uint8Array;
  /** The validator set the block is finalized by (did:key, in proposer order). */
  readonly validators: readonly string[];
}

/** What `endBlock` sees: the block, without a sender. */
export interface BlockContext {
  readonly height: number;
  readonly time: number;
  readonly validators: readonly string[];
  /** The block's proposer (did:key). */
  readonly proposer: string;
}

/** An event a transaction or block end emits (indexed by the RPC, shown in receipts). */
export interface ChainEvent {
  readonly type: string;
  readonly data: Record<string, unknown>;
}

export interface ChainModule {
  /** The module's name, also the prefix of its keys and of its methods (`bank.transfer`). */
  readonly name: string;
  /** Writes the module's initial state from its section of the genesis file (JSON). */
  initGenesis(state: StateView, genesis: unknown): void;
  /** Runs one call `module.method(args)`. `args` is decoded JSON and attacker-controlled: check
   *  every field. Throws a CageError to fail the transaction. */
  deliverTx(state: StateView, ctx: TxContext, method: string, args: unknown): ChainEvent[];
  /** Runs after a block's transactions (timers: unbonding, voting windows). Must not throw. */
  endBlock?(state: StateView, ctx: BlockContext): ChainEvent[];
  /** Answers a read-only RPC query `module.method(params)`; throws a CageError for bad params. */
  query(state: StateView, method: string, params: unknown): unknown;
}

/**
 * The validator set lives in the state under this key (JSON array of did:key strings, in proposer
 * order). The chain reads it after each block: a module that changes it (a validator vote, a
 * slashing that votes a validator out) changes who finalizes the next block.
 */
export const VALIDATORS_KEY = 'validators/set';
