/**
 * The hashes of one tile, expanded: a tile's 256 hashes (RFC 9162 §2.1.1 subtree roots at tree
 * level 8·L) plus the 255 interior nodes above them inside the tile, so any complete subtree of a
 * tile is one lookup. Layout: sub-level j (0 = the tile's own hashes, 8 = the tile's root) starts at
 * hash slot SUB_BASE[j]; the first 8,192 bytes are exactly the C2SP tile file.
 *
 * `RightEdge` keeps the rightmost (still filling) tile of every tile level and hashes a new leaf
 * in amortised one node hash; completed tiles are handed out, the root moves one tile level up.
 * Hashing uses node:crypto's one-shot `hash` on a pair already adjacent in the tile buffer (one
 * copy, no Hash object), the same computation as audit/hash.ts's nodeHash.
 */
import { hash } from 'node:crypto';
import { HASH_SIZE, RFC6962_NODE_PREFIX } from '../hash.js';
import { TILE_HEIGHT, TILE_WIDTH } from './paths.js';

/** Bytes of a full C2SP tile file: 256 hashes. */
export const TILE_BYTES = TILE_WIDTH * HASH_SIZE;
/** Hash slots of an expanded tile: 256 + 128 + … + 1. */
const EXPANDED_SLOTS = 2 * TILE_WIDTH - 1;
export const EXPANDED_BYTES = EXPANDED_SLOTS * HASH_SIZE;
/** First slot of each sub-level inside an expanded tile. */
const SUB_BASE = [0, 256, 384, 448, 480, 496, 504, 508, 510] as const;
/** Byte offset of the tile root in an expanded tile. */
export const ROOT_OFFSET = SUB_BASE[TILE_HEIGHT] * HASH_SIZE;

const NODE_INPUT = Buffer.alloc(1 + 2 * HASH_SIZE);
NODE_INPUT[0] = RFC6962_NODE_PREFIX;

/** Byte offset of node `q` of sub-level `j` (0..8) inside an expanded tile. */
export function nodeOffset(j: number, q: number): number {
  return (SUB_BASE[j as 0]! + q) * HASH_SIZE;
}

/** RFC 9162 node hash of the pair of adjacent hashes at `buf[at .. at+64)`, written to `buf[to ..]`. */
function hashPairInto(buf: Buffer, at: number, to: number): void {
  buf.copy(NODE_INPUT, 1, at, at + 2 * HASH_SIZE);
  hash('sha256', NODE_INPUT, 'buffer').copy(buf, to);
}

/** Expands a full tile (256 hashes, 8,192 bytes) with its 255 interior nodes. */
export function expandTile(tile: Uint8Array): Buffer {
  const buf = Buffer.allocUnsafe(EXPANDED_BYTES);
  buf.set(tile.subarray(0, TILE_BYTES), 0);
  for (let j = 0; j < TILE_HEIGHT; j++) {
    const width = TILE_WIDTH >> j;
    for (let q = 0; q < width; q += 2) hashPairInto(buf, nodeOffset(j, q), nodeOffset(j + 1, q >> 1));
  }
  return buf;
}

/** The rightmost tile of one tile level: its number, how many of its 256 hashes are set, its nodes. */
export interface EdgeTile {
  number: number;
  count: number;
  buf: Buffer;
}

export type TileCompleted = (level: number, number: number, expanded: Buffer) => void;

export class RightEdge {
  /** levels[L] is the rightmost tile of tile level L. */
  readonly levels: EdgeTile[] = [];

  constructor(private readonly onComplete: TileCompleted) {}

  /** Starts tile level `level` at tile `number`, empty (used when rebuilding from disk). */
  seed(level: number, number: number): void {
    this.levels[level] = { number, count: 0, buf: Buffer.allocUnsafe(EXPANDED_BYTES) };
  }

  /** Appends the 32-byte hash `src[at .. at+32)` as the next hash of tile level `level`. */
  add(level: number, src: Buffer, at: number): void {
    let t = this.levels[level];
    if (t === undefined) {
      t = { number: 0, count: 0, buf: Buffer.allocUnsafe(EXPANDED_BYTES) };
      this.levels[level] = t;
    }
    const buf = t.buf;
    let q = t.count;
    src.copy(buf, q * HASH_SIZE, at, at + HASH_SIZE);
    // Each odd position closes a pair: hash it into the sub-level above, and carry on upwards.
    for (let j = 0; (q & 1) === 1; j++) {
      hashPairInto(buf, nodeOffset(j, q - 1), nodeOffset(j + 1, q >> 1));
      q >>= 1;
    }
    if (++t.count < TILE_WIDTH) return;
    const done = t.number;
    this.levels[level] = { number: done + 1, count: 0, buf: Buffer.allocUnsafe(EXPANDED_BYTES) };
    this.onComplete(level, done, buf);
    if (this.levels[level + 1] === undefined) this.seed(level + 1, Math.floor(done / TILE_WIDTH));
    this.add(level + 1, buf, ROOT_OFFSET);
  }
}
