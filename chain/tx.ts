/**
 * Chain transactions: a call `module.method(args)` signed by an Ed25519 account named by its
 * `did:key`. The encoding is deterministic binary, so the signed bytes are the stored and hashed
 * bytes; the transaction hash is SHA-256 of the whole encoding (signature included).
 *
 * Layout (all integers big-endian):
 *
 *   off  size  field
 *   0    4     magic "CTX1"
 *   4    1     chainId length c (1..64), then c bytes of printable ASCII
 *   .    32    sender Ed25519 public key (the sender's did:key is derived from it)
 *   .    8     nonce, u64 (at most 2^53 − 1)
 *   .    1     module length m (1..32), then m bytes [a-z0-9_]
 *   .    1     method length k (1..64), then k bytes [A-Za-z0-9_]
 *   .    4     args length a (0..MAX_ARGS_BYTES), then a bytes of UTF-8 JSON (empty = null)
 *   .    8     fee, u64 (at most 2^53 − 1; 0 = none)
 *   .    64    Ed25519 signature by the sender over every byte before it
 *
 * Trust: `decodeTransaction` takes attacker-controlled bytes (RPC, p2p, blocks): every length is
 * bounded before it is read, and anything off the layout is CHAIN_BAD_TX. Decoding does not check
 * the signature; `verifyTransaction` does (CHAIN_BAD_TX_SIGNATURE).
 */
import { createHash } from 'node:crypto';
import { CageError } from '../core/errors.js';
import { didKeyFromPublicKey } from '../core/did-key.js';
import { verifyEd25519, type ChainKey } from './keys.js';
import { ByteReader } from './reader.js';

export const TX_MAGIC = Buffer.from('CTX1', 'latin1');
export const MAX_TX_BYTES = 64 * 1024;
export const MAX_ARGS_BYTES = MAX_TX_BYTES - 256;
const PUBLIC_KEY_SIZE = 32;
const SIGNATURE_SIZE = 64;
const CHAIN_ID_RE = /^[\x21-\x7e]{1,64}$/;
const MODULE_RE = /^[a-z0-9_]{1,32}$/;
const METHOD_RE = /^[A-Za-z0-9_]{1,64}$/;

/** The unsigned fields of a transaction. */
export interface TransactionFields {
  readonly chainId: string;
  readonly nonce: number;
  readonly module: string;
  readonly method: string;
  /** Any JSON value (attacker-controlled: modules check every field). */
  readonly args: unknown;
  readonly fee?: number;
}

/** A decoded, signed transaction. */
export interface Transaction extends Required<TransactionFields> {
  /** The signer's did:key. */
  readonly sender: string;
  readonly signature: Buffer;
  /** The full encoding (what blocks hold and the pool forwards). */
  readonly bytes: Buffer;
  /** SHA-256 of `bytes`. */
  readonly hash: Buffer;
}

function bad(message: string): CageError {
  return new CageError({ code: 'CHAIN_BAD_TX', message });
}

function u64(n: number, what: string): Buffer {
  if (!Number.isSafeInteger(n) || n < 0) throw bad(`${what} must be an integer in [0, 2^53)`);
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

function checkFields(f: TransactionFields): void {
  if (typeof f.chainId !== 'string' || !CHAIN_ID_RE.test(f.chainId)) throw bad('chainId must be 1..64 printable ASCII characters');
  if (typeof f.module !== 'string' || !MODULE_RE.test(f.module)) throw bad('module must match [a-z0-9_]{1,32}');
  if (typeof f.method !== 'string' || !METHOD_RE.test(f.method)) throw bad('method must match [A-Za-z0-9_]{1,64}');
}

/** The bytes the sender signs (the encoding without the signature). */
function encodeUnsigned(f: TransactionFields, publicKey: Uint8Array): Buffer {
  checkFields(f);
  const argsJson = f.args === undefined || f.args === null ? '' : JSON.stringify(f.args);
  const args = Buffer.from(argsJson ?? '', 'utf8');
  if (args.length > MAX_ARGS_BYTES) throw bad(`args exceed ${MAX_ARGS_BYTES} bytes`);
  const argsLen = Buffer.alloc(4);
  argsLen.writeUInt32BE(args.length);
  return Buffer.concat([
    TX_MAGIC,
    Buffer.from([f.chainId.length]),
    Buffer.from(f.chainId, 'latin1'),
    publicKey,
    u64(f.nonce, 'nonce'),
    Buffer.from([f.module.length]),
    Buffer.from(f.module, 'latin1'),
    Buffer.from([f.method.length]),
    Buffer.from(f.method, 'latin1'),
    argsLen,
    args,
    u64(f.fee ?? 0, 'fee'),
  ]);
}

/** Encodes and signs a transaction with the sender's key. */
export function signTransaction(fields: TransactionFields, key: ChainKey): Transaction {
  const unsigned = encodeUnsigned(fields, key.publicKey);
  const signature = key.sign(unsigned);
  const bytes = Buffer.concat([unsigned, signature]);
  if (bytes.length > MAX_TX_BYTES) throw bad(`transaction exceeds ${MAX_TX_BYTES} bytes`);
  return decodeTransaction(bytes);
}

/** SHA-256 of a transaction encoding. */
export function hashTransaction(bytes: Uint8Array): Buffer {
  return createHash('sha256').update(bytes).digest();
}

// did:key derivation (base58) costs more than the rest of decoding; senders repeat, so cache it.
const MAX_CACHED_DIDS = 100_000;
let didCache = new Map<string, string>();

function senderDid(publicKey: Buffer): string {
  const k = publicKey.toString('latin1');
  let did = didCache.get(k);
  if (did === undefined) {
    did = didKeyFromPublicKey(publicKey);
    if (didCache.size >= MAX_CACHED_DIDS) didCache = new Map();
    didCache.set(k, did);
  }
  return did;
}

/** Decodes a transaction encoding (attacker-controlled). Throws CHAIN_BAD_TX; does not verify the signature. */
export function decodeTransaction(input: Uint8Array): Transaction {
  if (!(input instanceof Uint8Array)) throw bad('transaction is not bytes');
  if (input.length > MAX_TX_BYTES) throw bad(`transaction exceeds ${MAX_TX_BYTES} bytes`);
  const r = new ByteReader(input, bad, 'transaction');
  if (!r.bytes(4).equals(TX_MAGIC)) throw bad('transaction magic is not CTX1');
  const chainId = r.text(r.u8(), CHAIN_ID_RE, 'chainId');
  const publicKey = r.bytes(PUBLIC_KEY_SIZE);
  const nonce = r.u64('nonce');
  const module = r.text(r.u8(), MODULE_RE, 'module');
  const method = r.text(r.u8(), METHOD_RE, 'method');
  const argsLen = r.u32();
  if (argsLen > MAX_ARGS_BYTES) throw bad('args length exceeds the limit');
  const argsBytes = r.bytes(argsLen);
  let args: unknown = null;
  if (argsLen > 0) {
    try {
      args = JSON.parse(new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(argsBytes));
    } catch {
      throw bad('args are not UTF-8 JSON');
    }
  }
  const fee = r.u64('fee');
  const signature = Buffer.from(r.bytes(SIGNATURE_SIZE));
  r.end();
  const bytes = Buffer.from(r.buf);
  return Object.freeze({
    chainId,
    sender: senderDid(publicKey),
    nonce,
    module,
    method,
    args,
    fee,
    signature,
    bytes,
    hash: hashTransaction(bytes),
  });
}

/** Checks the sender's signature (and, when given, the chain id). Throws CHAIN_BAD_TX_SIGNATURE / CHAIN_WRONG_CHAIN. */
export function verifyTransaction(tx: Transaction, chainId?: string): void {
  if (chainId !== undefined && tx.chainId !== chainId) {
    throw new CageError({ code: 'CHAIN_WRONG_CHAIN', message: `transaction is for chain ${JSON.stringify(tx.chainId)}, not ${JSON.stringify(chainId)}` });
  }
  const signed = tx.bytes.subarray(0, tx.bytes.length - SIGNATURE_SIZE);
  if (!verifyEd25519(tx.sender, signed, tx.signature)) {
    throw new CageError({ code: 'CHAIN_BAD_TX_SIGNATURE', message: `signature does not verify for ${tx.sender}` });
  }
}

/** The JSON view of a transaction (RPC answers). */
export function transactionToJson(tx: Transaction): Record<string, unknown> {
  return {
    hash: tx.hash.toString('hex'),
    chainId: tx.chainId,
    sender: tx.sender,
    nonce: tx.nonce,
    module: tx.module,
    method: tx.method,
    args: tx.args,
    fee: tx.fee,
    raw: tx.bytes.toString('base64'),
  };
}
