/**
 * C2SP tiled transparency logs (https://c2sp.org/tlog-tiles), the pure parts: tile and entry
 * bundle paths (`tile/<L>/<N>[.p/<W>]`, `tile/entries/<N>[.p/<W>]`, N in x-prefixed 3-digit
 * groups), which tiles a tree size has and which change when it grows, where a Merkle subtree
 * hash lives in the tiles, and the entry bundle codec (big-endian uint16 length-prefixed entries).
 *
 * Tiles have height 8: a tile at level L holds up to 256 hashes of complete subtrees of 256^L
 * leaves (Merkle level 8·L). Trust: paths and bundles come from disk or the network and are parsed
 * strictly (one canonical spelling per tile); sizes and indices given by callers are checked.
 */
import { CageError } from '../core/errors.js';
import { HASH_SIZE, nodeHash } from './hash.js';

export const TILE_HEIGHT = 8;
/** Hashes in a full tile (2^TILE_HEIGHT); also entries in a full bundle. */
export const TILE_WIDTH = 256;
/** Bytes in a full hash tile. */
export const FULL_TILE_BYTES = TILE_WIDTH * HASH_SIZE;
/** Largest entry an entry bundle can hold (uint16 length prefix). */
export const MAX_ENTRY_BYTES = 0xffff;
/** tlog-tiles: `<L>` is between 0 and 63. */
export const MAX_TILE_LEVEL = 63;

/** A hash tile (`level` ≥ 0) or an entry bundle (`level` = 'entries'); `width` 256 means full. */
export interface TileId {
  readonly level: number | 'entries';
  readonly index: number;
  readonly width: number;
}

function bad(message: string): CageError {
  return new CageError({ code: 'AUDIT_BAD_TILE', message });
}

function checkCount(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new CageError({ code: 'AUDIT_INDEX_OUT_OF_RANGE', message: `${what} ${String(n)} is not an integer in [0, 2^53)` });
}

/** 256^level as a number (exact up to level 6, which already exceeds 2^53 leaves). */
function tileSpan(level: number): number {
  return TILE_WIDTH ** level;
}

/** `<N>` as zero-padded 3-digit path elements, all but the last prefixed with `x`: 1234067 → `x001/x234/067`. */
export function encodeTileIndex(index: number): string {
  checkCount(index, 'tile index');
  let digits = String(index);
  digits = digits.padStart(Math.ceil(digits.length / 3) * 3, '0');
  const groups: string[] = [];
  for (let i = 0; i < digits.length; i += 3) groups.push(digits.slice(i, i + 3));
  return groups.map((g, i) => (i < groups.length - 1 ? 'x' + g : g)).join('/');
}

function checkTile(t: TileId): void {
  if (t.level !== 'entries' && (!Number.isInteger(t.level) || t.level < 0 || t.level > MAX_TILE_LEVEL)) {
    throw bad(`tile level ${String(t.level)} is not an integer in [0, ${MAX_TILE_LEVEL}]`);
  }
  checkCount(t.index, 'tile index');
  if (!Number.isInteger(t.width) || t.width < 1 || t.width > TILE_WIDTH) throw bad(`tile width ${String(t.width)} is not in [1, ${TILE_WIDTH}]`);
}

/** The resource path of a tile or entry bundle, relative to the log prefix. */
export function tilePath(t: TileId): string {
  checkTile(t);
  const partial = t.width < TILE_WIDTH ? `.p/${t.width}` : '';
  return `tile/${t.level}/${encodeTileIndex(t.index)}${partial}`;
}

/** The path of entry bundle `index` (`width` < 256 for a partial bundle). */
export function entriesPath(index: number, width: number = TILE_WIDTH): string {
  return tilePath({ level: 'entries', index, width });
}

const LEVEL_RE = /^(?:0|[1-9][0-9]?)$/;
const WIDTH_RE = /^[1-9][0-9]{0,2}$/;

/** Parses a path made by `tilePath` (exactly one spelling is accepted per tile). Throws AUDIT_BAD_TILE. */
export function parseTilePath(path: string): TileId {
  if (typeof path !== 'string' || path.length > 200) throw bad('tile path is not a short string');
  const parts = path.split('/');
  if (parts.length < 3 || parts[0] !== 'tile') throw bad(`not a tile path: ${JSON.stringify(path)}`);
  let level: number | 'entries';
  if (parts[1] === 'entries') {
    level = 'entries';
  } else {
    if (!LEVEL_RE.test(parts[1]!)) throw bad(`tile level ${JSON.stringify(parts[1])} is not a decimal without leading zeroes`);
    level = Number(parts[1]);
    if (level > MAX_TILE_LEVEL) throw bad(`tile level ${level} is above ${MAX_TILE_LEVEL}`);
  }
  let rest = parts.slice(2);
  let width = TILE_WIDTH;
  const last = rest[rest.length - 1]!;
  if (rest.length >= 2 && rest[rest.length - 2]!.endsWith('.p')) {
    if (!WIDTH_RE.test(last)) throw bad(`partial tile width ${JSON.stringify(last)} is not a decimal without leading zeroes`);
    width = Number(last);
    if (width >= TILE_WIDTH) throw bad(`partial tile width ${width} is not below ${TILE_WIDTH}`);
    rest = rest.slice(0, -1);
    rest[rest.length - 1] = rest[rest.length - 1]!.slice(0, -2);
  }
  let digits = '';
  rest.forEach((g, i) => {
    const isLast = i === rest.length - 1;
    const m = isLast ? /^[0-9]{3}$/.exec(g) : /^x([0-9]{3})$/.exec(g);
    if (m === null) throw bad(`tile index element ${JSON.stringify(g)} is malformed`);
    digits += isLast ? g : m[1]!;
  });
  if (rest.length > 1 && rest[0] === 'x000') throw bad('tile index has a leading zero group');
  if (rest.length > 6) throw bad('tile index is too large');
  const index = Number(digits);
  if (!Number.isSafeInteger(index)) throw bad('tile index is too large');
  return { level, index, width };
}

/** One level of a tree's tiles: `fullTiles` full tiles (indices 0…fullTiles−1), then an optional partial one. */
export interface TileLevel {
  readonly level: number;
  readonly fullTiles: number;
  /** Width of the partial tile at index `fullTiles`, or 0 when there is none. */
  readonly partialWidth: number;
}

/**
 * The hash tiles a tree of `size` leaves consists of (tlog-tiles §Merkle Tree): at level L,
 * floor(size / 256^(L+1)) full tiles and a partial tile of floor(size / 256^L) mod 256 hashes.
 * Entry bundles follow level 0's layout.
 */
export function tileLevels(size: number): TileLevel[] {
  checkCount(size, 'tree size');
  const out: TileLevel[] = [];
  for (let level = 0; Math.floor(size / tileSpan(level)) > 0; level++) {
    const hashes = Math.floor(size / tileSpan(level));
    out.push({ level, fullTiles: Math.floor(hashes / TILE_WIDTH), partialWidth: hashes % TILE_WIDTH });
  }
  return out;
}

/** The width of hash tile (level, index) in a tree of `size` leaves: 256, 1…255 for the partial tile, 0 if absent. */
export function tileWidth(level: number, index: number, size: number): number {
  checkCount(size, 'tree size');
  checkCount(index, 'tile index');
  const hashes = Math.floor(size / tileSpan(level));
  return Math.max(0, Math.min(TILE_WIDTH, hashes - index * TILE_WIDTH));
}

/**
 * The hash tiles (and entry bundles) whose content differs between the trees of `oldSize` and
 * `newSize` leaves: what an append must write. Each appears with its width at `newSize`.
 */
export function newTiles(oldSize: number, newSize: number, withEntries = true): TileId[] {
  checkCount(oldSize, 'old size');
  checkCount(newSize, 'new size');
  if (oldSize > newSize) throw new CageError({ code: 'AUDIT_INDEX_OUT_OF_RANGE', message: `old size ${oldSize} is greater than new size ${newSize}` });
  const out: TileId[] = [];
  for (let level = 0; Math.floor(newSize / tileSpan(level)) > 0; level++) {
    const a = Math.floor(oldSize / tileSpan(level));
    const b = Math.floor(newSize / tileSpan(level));
    if (b === a) continue;
    for (let n = Math.floor(a / TILE_WIDTH); n * TILE_WIDTH < b; n++) {
      const width = Math.min(TILE_WIDTH, b - n * TILE_WIDTH);
      if (level === 0 && withEntries) out.push({ level: 'entries', index: n, width });
      out.push({ level, index: n, width });
    }
  }
  return out;
}

/** Where a Merkle subtree hash lives: `count` consecutive hashes from `offset` in tile (level, index). */
export interface HashLocation {
  readonly tile: { readonly level: number; readonly index: number };
  readonly offset: number;
  /** A power of two; the subtree hash is the Merkle hash of these `count` tile hashes. */
  readonly count: number;
}

/**
 * Locates the complete-subtree hash at Merkle `level` and `index` (see merkle.ts's HashReader).
 * Tile level L = floor(level / 8) stores Merkle level 8L; the 2^(level mod 8) hashes below it are
 * combined with `subtreeHash`. The tile must be at least offset + count wide.
 */
export function hashLocation(level: number, index: number): HashLocation {
  if (!Number.isInteger(level) || level < 0 || level > 63) throw new CageError({ code: 'AUDIT_INDEX_OUT_OF_RANGE', message: `Merkle level ${String(level)} is not in [0, 63]` });
  checkCount(index, 'subtree index');
  const tileLevel = Math.floor(level / TILE_HEIGHT);
  const count = 2 ** (level % TILE_HEIGHT);
  const first = index * count;
  if (!Number.isSafeInteger(first)) throw new CageError({ code: 'AUDIT_INDEX_OUT_OF_RANGE', message: `subtree ${index} at level ${level} is beyond 2^53` });
  return { tile: { level: tileLevel, index: Math.floor(first / TILE_WIDTH) }, offset: first % TILE_WIDTH, count };
}

/** The Merkle hash of `count` (a power of two) consecutive 32-byte hashes of `tile` starting at `offset`. */
export function subtreeHash(tile: Uint8Array, offset: number, count: number): Buffer {
  if (!Number.isInteger(count) || count < 1 || count > TILE_WIDTH || (count & (count - 1)) !== 0) throw bad(`subtree width ${count} is not a power of two up to ${TILE_WIDTH}`);
  if (!Number.isInteger(offset) || offset < 0 || (offset + count) * HASH_SIZE > tile.length) throw bad(`tile of ${tile.length} bytes has no hashes ${offset}…${offset + count - 1}`);
  let row: Uint8Array[] = [];
  for (let i = 0; i < count; i++) row.push(tile.subarray((offset + i) * HASH_SIZE, (offset + i + 1) * HASH_SIZE));
  while (row.length > 1) {
    const next: Uint8Array[] = [];
    for (let i = 0; i < row.length; i += 2) next.push(nodeHash(row[i]!, row[i + 1]!));
    row = next;
  }
  return Buffer.from(row[0]!);
}

/** Checks a hash tile's bytes against its expected width; returns its hashes. */
export function splitHashTile(tile: Uint8Array, width: number): Buffer[] {
  if (!Number.isInteger(width) || width < 1 || width > TILE_WIDTH) throw bad(`tile width ${String(width)} is not in [1, ${TILE_WIDTH}]`);
  if (tile.length !== width * HASH_SIZE) throw bad(`tile is ${tile.length} bytes, want ${width * HASH_SIZE} for width ${width}`);
  const out: Buffer[] = [];
  for (let i = 0; i < width; i++) out.push(Buffer.from(tile.subarray(i * HASH_SIZE, (i + 1) * HASH_SIZE)));
  return out;
}

/** tlog-tiles §Log entries: each entry prefixed with its length as a big-endian uint16. */
export function encodeEntryBundle(entries: readonly Uint8Array[]): Buffer {
  if (entries.length > TILE_WIDTH) throw bad(`an entry bundle holds at most ${TILE_WIDTH} entries, got ${entries.length}`);
  let total = 0;
  for (const e of entries) {
    if (e.length > MAX_ENTRY_BYTES) throw bad(`entry of ${e.length} bytes exceeds ${MAX_ENTRY_BYTES}`);
    total += 2 + e.length;
  }
  const out = Buffer.allocUnsafe(total);
  let o = 0;
  for (const e of entries) {
    out.writeUInt16BE(e.length, o);
    out.set(e, o + 2);
    o += 2 + e.length;
  }
  return out;
}

/** Splits an entry bundle; `width` (when given) is the number of entries it must hold. Throws AUDIT_BAD_TILE. */
export function decodeEntryBundle(bundle: Uint8Array, width?: number): Buffer[] {
  const b = Buffer.from(bundle.buffer, bundle.byteOffset, bundle.byteLength);
  const out: Buffer[] = [];
  let o = 0;
  while (o < b.length) {
    if (out.length === TILE_WIDTH) throw bad(`entry bundle has more than ${TILE_WIDTH} entries`);
    if (o + 2 > b.length) throw bad(`entry bundle is truncated in the length of entry ${out.length}`);
    const n = b.readUInt16BE(o);
    if (o + 2 + n > b.length) throw bad(`entry bundle is truncated in entry ${out.length}`);
    out.push(Buffer.from(b.subarray(o + 2, o + 2 + n)));
    o += 2 + n;
  }
  if (width !== undefined && out.length !== width) throw bad(`entry bundle has ${out.length} entries, want ${width}`);
  return out;
}
