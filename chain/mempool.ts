/**
 * The transaction pool: bounded in total and per sender, ordered per sender by nonce, senders
 * served in the order they first arrived (so one busy sender cannot starve the others within a
 * block). Transactions enter only after the chain's checks (signature, chain id, module, nonce);
 * the pool itself refuses duplicates and overflow.
 */
import { CageError } from '../core/errors.js';
import type { Transaction } from './tx.js';

export interface MempoolOptions {
  /** Most transactions held (default 50,000). */
  readonly maxTxs?: number;
  /** Most transactions held per sender (default 5,000). */
  readonly maxPerSender?: number;
}

export class Mempool {
  private readonly bySender = new Map<string, Map<number, Transaction>>();
  private readonly byHash = new Map<string, Transaction>();
  readonly maxTxs: number;
  readonly maxPerSender: number;

  constructor(opts: MempoolOptions = {}) {
    this.maxTxs = opts.maxTxs ?? 50_000;
    this.maxPerSender = opts.maxPerSender ?? 5_000;
  }

  get size(): number {
    return this.byHash.size;
  }

  has(hashHex: string): boolean {
    return this.byHash.has(hashHex);
  }

  /** Adds a checked transaction. Throws CHAIN_DUPLICATE_TX, CHAIN_BAD_NONCE (nonce taken), CHAIN_POOL_FULL. */
  add(tx: Transaction): void {
    const hex = tx.hash.toString('hex');
    if (this.byHash.has(hex)) throw new CageError({ code: 'CHAIN_DUPLICATE_TX', message: `transaction ${hex} is already in the pool` });
    let queue = this.bySender.get(tx.sender);
    if (queue?.has(tx.nonce)) throw new CageError({ code: 'CHAIN_BAD_NONCE', message: `the pool already holds nonce ${tx.nonce} for ${tx.sender}` });
    if (this.byHash.size >= this.maxTxs) throw new CageError({ code: 'CHAIN_POOL_FULL', message: `the pool holds ${this.maxTxs} transactions` });
    if ((queue?.size ?? 0) >= this.maxPerSender) throw new CageError({ code: 'CHAIN_POOL_FULL', message: `the pool holds ${this.maxPerSender} transactions of ${tx.sender}` });
    if (queue === undefined) {
      queue = new Map();
      this.bySender.set(tx.sender, queue);
    }
    queue.set(tx.nonce, tx);
    this.byHash.set(hex, tx);
  }

  /** Highest nonce + 1 the pool holds for a sender in an unbroken run from `from` (the next nonce to accept). */
  nextNonce(sender: string, from: number): number {
    const queue = this.bySender.get(sender);
    let n = from;
    while (queue?.has(n)) n++;
    return n;
  }

  /**
   * Picks up to `max` transactions for a block: per sender, the unbroken run of nonces starting at
   * the sender's next nonce in the state (`nonceOf`).
   */
  select(max: number, nonceOf: (sender: string) => number, maxBytes = Infinity): Transaction[] {
    const out: Transaction[] = [];
    let bytes = 0;
    for (const [sender, queue] of this.bySender) {
      let n = nonceOf(sender);
      for (let tx = queue.get(n); tx !== undefined; tx = queue.get(++n)) {
        if (out.length >= max || bytes + tx.bytes.length > maxBytes) return out;
        out.push(tx);
        bytes += tx.bytes.length;
      }
    }
    return out;
  }

  /** Drops included transactions and every transaction whose nonce is now below its sender's next nonce. */
  prune(included: readonly Transaction[], nonceOf: (sender: string) => number): void {
    const senders = new Set<string>();
    for (const tx of included) {
      this.byHash.delete(tx.hash.toString('hex'));
      senders.add(tx.sender);
    }
    for (const sender of senders) {
      const queue = this.bySender.get(sender);
      if (queue === undefined) continue;
      const next = nonceOf(sender);
      for (const [nonce, tx] of queue) {
        if (nonce < next) {
          queue.delete(nonce);
          this.byHash.delete(tx.hash.toString('hex'));
        }
      }
      if (queue.size === 0) this.bySender.delete(sender);
    }
  }
}
