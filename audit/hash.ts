/**
 * RFC 6962 / RFC 9162 §2.1.1 hashing: the leaf and interior node hashes every other audit module
 * builds on. SHA-256 through node:crypto's one-shot `hash` (the fastest here on small inputs).
 */
import { createHash, hash } from 'node:crypto';

export const HASH_SIZE = 32;
/** RFC 9162 §2.1.1: leaf hash = SHA-256(0x00 ‖ entry). */
export const RFC6962_LEAF_PREFIX = 0x00;
/** RFC 9162 §2.1.1: node hash = SHA-256(0x01 ‖ left ‖ right). */
export const RFC6962_NODE_PREFIX = 0x01;

const LEAF_PREFIX_BYTE = Buffer.from([RFC6962_LEAF_PREFIX]);
const NODE_SCRATCH = Buffer.alloc(1 + 2 * HASH_SIZE);
NODE_SCRATCH[0] = RFC6962_NODE_PREFIX;

/** The root of the empty tree: SHA-256 of the empty string. */
export const EMPTY_ROOT: Buffer = hash('sha256', Buffer.alloc(0), 'buffer');

/** Leaf hash of one entry: SHA-256(0x00 ‖ entry). */
export function leafHash(entry: Uint8Array): Buffer {
  return createHash('sha256').update(LEAF_PREFIX_BYTE).update(entry).digest();
}

/** Interior node hash: SHA-256(0x01 ‖ left ‖ right). Both inputs must be 32 bytes. */
export function nodeHash(left: Uint8Array, right: Uint8Array): Buffer {
  NODE_SCRATCH.set(left, 1);
  NODE_SCRATCH.set(right, 1 + HASH_SIZE);
  return hash('sha256', NODE_SCRATCH, 'buffer');
}
