/**
 * A small JSON-RPC 2.0 client for a chain node's `/rpc` endpoint (chain/io/rpc.ts lists the
 * methods). Errors come back as CageErrors with the node's code (`error.data.code`), so callers
 * branch on the same codes as in-process code; transport failures are CHAIN_RPC_UNREACHABLE.
 *
 *   const c = new ChainClient('http://127.0.0.1:8545/rpc');
 *   const nonce = await c.nonce(key.did);
 *   const tx = signTransaction({ chainId, nonce, module: 'bank', method: 'transfer', args }, key);
 *   const receipt = await c.waitForTx(await c.sendTransaction(tx));
 */
import { CageError, ERROR_CODES, type CageErrorCode } from '../core/errors.js';
import type { Transaction } from './tx.js';

/** What chain_getTransaction answers for an included transaction. */
export interface TxReceipt {
  readonly hash: string;
  readonly height: number;
  readonly index: number;
  readonly blockHash: string;
  /** `OK` or the CageError code the transaction failed with. */
  readonly code: string;
  readonly events: readonly { type: string; data: Record<string, unknown> }[];
  readonly tx: Record<string, unknown>;
}

export interface ChainClientOptions {
  /** Per-call timeout (default 10 s). */
  readonly timeoutMs?: number;
}

export class ChainClient {
  private nextId = 1;
  readonly url: string;
  private readonly timeoutMs: number;

  constructor(url: string, opts: ChainClientOptions = {}) {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new CageError({ code: 'CHAIN_RPC_BAD_PARAMS', message: `${JSON.stringify(url)} is not a URL` });
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new CageError({ code: 'CHAIN_RPC_BAD_PARAMS', message: 'the RPC URL must be http(s)' });
    if (u.pathname === '/' || u.pathname === '') u.pathname = '/rpc';
    this.url = u.toString();
    this.timeoutMs = opts.timeoutMs ?? 10_000;
  }

  /** Calls one method; returns its result or throws a CageError. */
  async call<T = unknown>(method: string, params: unknown[] | Record<string, unknown> = []): Promise<T> {
    const id = this.nextId++;
    let res: Response;
    try {
      res = await fetch(this.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ jsonrpc: '2.0', id, method, params }),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      throw new CageError({ code: 'CHAIN_RPC_UNREACHABLE', message: `${this.url}: ${(err as Error).message}`, cause: err });
    }
    let body: { result?: T; error?: { code: number; message: string; data?: { code?: string } } };
    try {
      body = (await res.json()) as typeof body;
    } catch (err) {
      throw new CageError({ code: 'CHAIN_RPC_UNREACHABLE', message: `${this.url} answered ${res.status} without JSON`, cause: err });
    }
    if (typeof body !== 'object' || body === null) throw new CageError({ code: 'CHAIN_RPC_UNREACHABLE', message: `${this.url} answered a non-object` });
    if (body.error !== undefined) {
      const code = body.error.data?.code;
      const known = typeof code === 'string' && Object.hasOwn(ERROR_CODES, code);
      throw new CageError({ code: known ? (code as CageErrorCode) : 'CHAIN_RPC_ERROR', message: `${method}: ${String(body.error.message)}` });
    }
    return body.result as T;
  }

  /** Submits a signed transaction (or its bytes); returns its hash (hex). */
  async sendTransaction(tx: Transaction | Uint8Array): Promise<string> {
    const bytes = tx instanceof Uint8Array ? tx : tx.bytes;
    const r = await this.call<{ hash: string }>('chain_sendTransaction', [Buffer.from(bytes).toString('base64')]);
    return r.hash;
  }

  /** The next nonce for an account (state plus the sender's queued pool transactions). */
  async nonce(did: string): Promise<number> {
    return this.call<number>('chain_getNonce', [did]);
  }

  async getTransaction(hash: string): Promise<TxReceipt | null> {
    return this.call<TxReceipt | null>('chain_getTransaction', [hash]);
  }

  /**
   * Polls until the transaction is in a final block. Resolves with its receipt (failed ones too:
   * check `code`, or pass `requireOk` to throw CHAIN_TX_FAILED). Throws CHAIN_TX_TIMEOUT.
   */
  async waitForTx(hash: string, opts: { timeoutMs?: number; pollMs?: number; requireOk?: boolean } = {}): Promise<TxReceipt> {
    const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
    const poll = opts.pollMs ?? 50;
    for (;;) {
      const r = await this.getTransaction(hash);
      if (r !== null) {
        if (opts.requireOk === true && r.code !== 'OK') throw new CageError({ code: 'CHAIN_TX_FAILED', message: `transaction ${hash} failed with ${r.code}` });
        return r;
      }
      if (Date.now() >= deadline) throw new CageError({ code: 'CHAIN_TX_TIMEOUT', message: `transaction ${hash} is not in a final block yet` });
      await new Promise((resolve) => setTimeout(resolve, poll));
    }
  }
}
