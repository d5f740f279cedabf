/**
 * Blocks: a header committing to the ordered transactions, their results and the state after them,
 * followed by the transactions. The block hash is SHA-256 of the header bytes; commit seals and
 * the consensus round are not part of the block (QBFT seals sign hash ‖ round, and the store keeps
 * the seals next to the block), so every validator hashes the same bytes.
 *
 * Layout (integers big-endian):
 *
 *   header:
 *     0   4   magic "CBK1"
 *     4   8   height, u64
 *     .   32  parentHash (zero for the genesis block)
 *     .   8   timestamp, ms since the epoch, u64 (non-decreasing along the chain)
 *     .   1   proposer length p (0..128), then p bytes: the proposer's did:key ("" at genesis)
 *     .   32  txRoot: RFC 6962 Merkle root over the transaction hashes, in block order
 *     .   32  resultsRoot: RFC 6962 Merkle root over the results (see encodeResult)
 *     .   32  stateRoot: chain/state.ts after executing this block
 *     .   4   txCount, u32 (at most MAX_BLOCK_TXS)
 *   body: txCount × (u32 length ‖ transaction encoding, chain/tx.ts)
 *
 * Trust: block bytes come from peers (proposals, sync): `decodeBlock` bounds every length and
 * throws CHAIN_INVALID_BLOCK; transactions inside are decoded (not yet signature-checked) here.
 */
import { createHash } from 'node:crypto';
import { MemoryTree } from '../audit/merkle.js';
import { CageError } from '../core/errors.js';
import type { ChainEvent } from './module.js';
import { ByteReader } from './reader.js';
import { decodeTransaction, MAX_TX_BYTES, type Transaction } from './tx.js';

export const BLOCK_MAGIC = Buffer.from('CBK1', 'latin1');
export const MAX_BLOCK_TXS = 20_000;
export const MAX_BLOCK_BYTES = 32 * 1024 * 1024;
const MAX_PROPOSER_LENGTH = 128;

export interface BlockHeader {
  readonly height: number;
  readonly parentHash: Buffer;
  readonly timestamp: number;
  readonly proposer: string;
  readonly txRoot: Buffer;
  readonly resultsRoot: Buffer;
  readonly stateRoot: Buffer;
  readonly txCount: number;
}

export interface Block {
  readonly header: BlockHeader;
  readonly txs: readonly Transaction[];
  /** The encoding (header ‖ body). */
  readonly bytes: Buffer;
  /** SHA-256 of the header bytes. */
  readonly hash: Buffer;
}

/** What executing one transaction gave: `OK` or the CageError code it failed with, and its events. */
export interface TxResult {
  readonly code: string;
  readonly events: readonly ChainEvent[];
}

function bad(message: string): CageError {
  return new CageError({ code: 'CHAIN_INVALID_BLOCK', message });
}

function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

export function encodeHeader(h: BlockHeader): Buffer {
  const proposer = Buffer.from(h.proposer, 'latin1');
  if (proposer.length > MAX_PROPOSER_LENGTH) throw bad('proposer is too long');
  return Buffer.concat([
    BLOCK_MAGIC,
    u64(h.height),
    h.parentHash,
    u64(h.timestamp),
    Buffer.from([proposer.length]),
    proposer,
    h.txRoot,
    h.resultsRoot,
    h.stateRoot,
    u32(h.txCount),
  ]);
}

/** Encodes a block from its header fields and transactions (txCount is taken from `txs`). */
export function encodeBlock(header: Omit<BlockHeader, 'txCount'>, txs: readonly Transaction[]): Block {
  if (txs.length > MAX_BLOCK_TXS) throw bad(`a block holds at most ${MAX_BLOCK_TXS} transactions`);
  const full: BlockHeader = { ...header, txCount: txs.length };
  const head = encodeHeader(full);
  const parts: Buffer[] = [head];
  for (const tx of txs) parts.push(u32(tx.bytes.length), tx.bytes);
  const bytes = Buffer.concat(parts);
  return Object.freeze({ header: Object.freeze(full), txs, bytes, hash: hashHeader(head) });
}

export function hashHeader(headerBytes: Uint8Array): Buffer {
  return createHash('sha256').update(headerBytes).digest();
}

/** Decodes the header only and returns it with its byte length (cheap: hashBlock, heightOf). */
export function decodeHeader(input: Uint8Array): { header: BlockHeader; length: number } {
  if (!(input instanceof Uint8Array)) throw bad('block is not bytes');
  const r = new ByteReader(input, bad, 'block header');
  if (!r.bytes(4).equals(BLOCK_MAGIC)) throw bad('block magic is not CBK1');
  const height = r.u64('height');
  const parentHash = Buffer.from(r.bytes(32));
  const timestamp = r.u64('timestamp');
  const plen = r.u8();
  if (plen > MAX_PROPOSER_LENGTH) throw bad('proposer is too long');
  const proposer = r.text(plen, /^[\x21-\x7e]*$/, 'proposer');
  const txRoot = Buffer.from(r.bytes(32));
  const resultsRoot = Buffer.from(r.bytes(32));
  const stateRoot = Buffer.from(r.bytes(32));
  const txCount = r.u32();
  if (txCount > MAX_BLOCK_TXS) throw bad(`block claims ${txCount} transactions`);
  const off = r.offset;
  return { header: Object.freeze({ height, parentHash, timestamp, proposer, txRoot, resultsRoot, stateRoot, txCount }), length: off };
}

/** Decodes a whole block (attacker-controlled). Throws CHAIN_INVALID_BLOCK (or CHAIN_BAD_TX for a bad transaction). */
export function decodeBlock(input: Uint8Array): Block {
  if (input.length > MAX_BLOCK_BYTES) throw bad(`block exceeds ${MAX_BLOCK_BYTES} bytes`);
  const { header, length } = decodeHeader(input);
  const b = Buffer.from(input.buffer, input.byteOffset, input.length);
  let off = length;
  const txs: Transaction[] = [];
  for (let i = 0; i < header.txCount; i++) {
    if (off + 4 > b.length) throw bad('block body is truncated');
    const len = b.readUInt32BE(off);
    off += 4;
    if (len > MAX_TX_BYTES || off + len > b.length) throw bad('transaction length in block is out of range');
    txs.push(decodeTransaction(b.subarray(off, off + len)));
    off += len;
  }
  if (off !== b.length) throw bad('trailing bytes after the block body');
  return Object.freeze({ header, txs, bytes: Buffer.from(b), hash: hashHeader(b.subarray(0, length)) });
}

/** The RFC 6962 root over transaction hashes. */
export function computeTxRoot(txs: readonly Transaction[]): Buffer {
  const tree = new MemoryTree();
  for (const tx of txs) tree.append(tx.hash);
  return tree.root();
}

/** A result's leaf bytes: UTF-8 JSON `{"code":…,"events":[…]}`. */
export function encodeResult(r: TxResult): Buffer {
  return Buffer.from(JSON.stringify({ code: r.code, events: r.events }), 'utf8');
}

export function computeResultsRoot(results: readonly TxResult[]): Buffer {
  const tree = new MemoryTree();
  for (const r of results) tree.append(encodeResult(r));
  return tree.root();
}

/** The JSON view of a header (RPC answers). */
export function headerToJson(b: Block): Record<string, unknown> {
  const h = b.header;
  return {
    hash: b.hash.toString('hex'),
    height: h.height,
    parentHash: h.parentHash.toString('hex'),
    timestamp: h.timestamp,
    proposer: h.proposer,
    txRoot: h.txRoot.toString('hex'),
    resultsRoot: h.resultsRoot.toString('hex'),
    stateRoot: h.stateRoot.toString('hex'),
    txCount: h.txCount,
  };
}
