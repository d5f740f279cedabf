/** Shared fixtures for the chain-node tests: keys, a genesis, a Chain, and a sealed-block-less commit. */
import { Chain, parseGenesis, type Genesis } from '../../chain/chain.js';
import { createChainKey, type ChainKey } from '../../chain/keys.js';
import type { ChainModule } from '../../chain/module.js';
import { defaultModules } from '../../chain/modules/index.js';
import { signTransaction, type Transaction } from '../../chain/tx.js';
import { tempDir as notaryTempDir } from '../notary/helpers.js';

export const CHAIN_ID = 'test-chain';

/** A deterministic key from one seed byte. */
export function key(seedByte: number): ChainKey {
  return createChainKey(Buffer.alloc(32, seedByte));
}

export function genesisFor(validators: readonly ChainKey[], extra: Partial<Genesis> = {}): Genesis {
  return parseGenesis({ chainId: CHAIN_ID, timestamp: 1_700_000_000_000, validators: validators.map((k) => k.did), ...extra });
}

/** A chain at its genesis block, with a settable clock. */
export function newChain(validators: readonly ChainKey[], opts: { modules?: ChainModule[]; self?: ChainKey; now?: () => number } = {}): Chain {
  const chain = new Chain({
    genesis: genesisFor(validators),
    modules: opts.modules ?? defaultModules(),
    now: opts.now ?? (() => 1_700_000_001_000),
    self: (opts.self ?? validators[0]!).did,
  });
  chain.commit(chain.genesisExecution());
  return chain;
}

export function tx(k: ChainKey, nonce: number, module: string, method: string, args: unknown, chainId = CHAIN_ID): Transaction {
  return signTransaction({ chainId, nonce, module, method, args }, k);
}

/** Builds the next block from the pool on `chain`, and commits it (no consensus). */
export function produce(chain: Chain): ReturnType<Chain['executionFor']> {
  const block = chain.createBlock(chain.head.height + 1);
  const exec = chain.executionFor(block.bytes);
  chain.commit(exec);
  return exec;
}

/** A temporary folder (removed by `remove`). */
export function tempDir(prefix = 'cage-chain-'): Promise<{ path: string; remove: () => Promise<void> }> {
  return notaryTempDir(prefix);
}
