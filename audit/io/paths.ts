/**
 * C2SP tlog-tiles resource paths (https://c2sp.org/tlog-tiles, "Merkle Tree" and "Log entries"):
 * `tile/<L>/<N>[.p/<W>]` and `tile/entries/<N>[.p/<W>]`, where `<N>` is written as zero-padded
 * 3-digit path elements, all but the last prefixed with `x` (1234067 → `x001/x234/067`), and
 * `.p/<W>` (W in 1..255) marks a partial tile. A private copy for the store; audit/tiles.ts is the
 * shared one.
 */

/** Tile height 8: a full tile holds 2^8 = 256 hashes (8,192 bytes); a full bundle 256 entries. */
export const TILE_HEIGHT = 8;
export const TILE_WIDTH = 256;

function pad3(n: number): string {
  return n < 10 ? `00${n}` : n < 100 ? `0${n}` : String(n);
}

/** The `<N>` part of a tile path: 1234067 → `x001/x234/067`. */
export function formatTileIndex(n: number): string {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`tile index must be a non-negative safe integer, got ${n}`);
  let s = pad3(n % 1000);
  for (let rest = Math.floor(n / 1000); rest > 0; rest = Math.floor(rest / 1000)) s = `x${pad3(rest % 1000)}/${s}`;
  return s;
}

function suffix(width: number): string {
  if (width === TILE_WIDTH) return '';
  if (!Number.isInteger(width) || width < 1 || width > TILE_WIDTH) throw new RangeError(`tile width must be 1..256, got ${width}`);
  return `.p/${width}`;
}

/** `tile/<L>/<N>[.p/<W>]`, relative to the log's root; width 256 (the default) is a full tile. */
export function tilePath(level: number, n: number, width = TILE_WIDTH): string {
  if (!Number.isInteger(level) || level < 0 || level > 63) throw new RangeError(`tile level must be 0..63, got ${level}`);
  return `tile/${level}/${formatTileIndex(n)}${suffix(width)}`;
}

/** `tile/entries/<N>[.p/<W>]`, relative to the log's root. */
export function bundlePath(n: number, width = TILE_WIDTH): string {
  return `tile/entries/${formatTileIndex(n)}${suffix(width)}`;
}
