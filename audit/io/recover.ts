/**
 * Opening the store after a clean close or a crash: rebuild the in-memory state from the tiles
 * and the WAL, trim a torn tail, refuse damage that is not one.
 *
 * The invariant that makes this cheap: a WAL segment is deleted only once every full tile (all
 * levels) and entry bundle below the next segment's first index is durable. So with F = the first
 * segment's first index rounded up to a multiple of 256, everything below F is in tiles on disk,
 * and everything from the first segment on is in the WAL. The right edge is rebuilt from the roots
 * of the full tiles below F (at most 255 per level), and every WAL entry is verified by its leaf
 * hash, which the tree needs anyway.
 */
import { existsSync } from 'node:fs';
import { open, readdir, readFile } from 'node:fs/promises';
import type { EntryArena } from './arena.js';
import { writeAllAt } from './files.js';
import { corrupt, StoreLayout } from './layout.js';
import { TILE_WIDTH } from './paths.js';
import type { TileCache } from './tile-cache.js';
import { tileKey } from './tile-cache.js';
import { expandTile, ROOT_OFFSET, type RightEdge } from './tree.js';
import { encodeBatchHeader, scanSegment } from './wal-format.js';

export interface RecoveredWal {
  /** First entry index of each segment, ascending; the last one is appended to. */
  segments: number[];
  /** Bytes in the last segment (after trimming). */
  lastSegmentBytes: number;
  /** Entries recovered: the log's size. */
  size: number;
  /** Entries below this are in durable full tiles (a multiple of 256). */
  tiled: number;
}

/** Lists WAL segments by first index. */
export async function listSegments(layout: StoreLayout): Promise<number[]> {
  const firsts: number[] = [];
  for (const name of await readdir(layout.wal)) {
    const first = StoreLayout.segmentFirst(name);
    if (first !== undefined) firsts.push(first);
  }
  return firsts.sort((a, b) => a - b);
}

/** Seeds the right edge for a tree whose first `tiled` entries are in full tiles on disk. */
function seedEdge(layout: StoreLayout, edge: RightEdge, cache: TileCache, tiled: number): void {
  edge.seed(0, tiled / TILE_WIDTH);
  for (let k = 1, span = TILE_WIDTH; span <= tiled; k++, span *= TILE_WIDTH) {
    const n = Math.floor(tiled / (span * TILE_WIDTH));
    const count = Math.floor(tiled / span) % TILE_WIDTH;
    edge.seed(k, n);
    for (let p = 0; p < count; p++) {
      const below = n * TILE_WIDTH + p;
      const expanded = expandTile(layout.readTile(k - 1, below));
      cache.remember(tileKey(k - 1, below), expanded);
      edge.add(k, expanded, ROOT_OFFSET);
    }
  }
}

export async function recoverWal(layout: StoreLayout, segments: number[], edge: RightEdge, cache: TileCache, arena: EntryArena): Promise<RecoveredWal> {
  const tiled = Math.ceil(segments[0]! / TILE_WIDTH) * TILE_WIDTH;
  seedEdge(layout, edge, cache, tiled);
  let index = segments[0]!;
  let lastSegmentBytes = 0;
  for (let s = 0; s < segments.length; s++) {
    const first = segments[s]!;
    const path = layout.segment(first);
    if (first !== index) throw corrupt(`${path}: segment starts at entry ${first}, but the previous one ends at ${index}`);
    const buf = await readFile(path);
    const offsets: number[] = [];
    const scan = scanSegment(buf, first, (i, frame, leaf) => {
      offsets.push(frame);
      if (i >= tiled) edge.add(0, leaf, 0);
    });
    lastSegmentBytes = buf.length;
    const d = scan.damage;
    if (d !== undefined) {
      if (!d.torn || s < segments.length - 1) throw corrupt(`${path} at offset ${d.offset}: ${d.reason} (not a torn tail)`);
      const fh = await open(path, 'r+');
      try {
        if (d.rewrite !== undefined) await writeAllAt(fh, [encodeBatchHeader(d.rewrite)], d.rewrite.fileOffset);
        await fh.truncate(d.keepBytes);
        await fh.datasync();
      } finally {
        await fh.close();
      }
      lastSegmentBytes = d.keepBytes;
    }
    if (scan.count > 0 && first + scan.count > tiled) {
      arena.addRecovered({ buf, first, count: scan.count, offsets: Uint32Array.from(offsets), used: buf.length });
    }
    index = first + scan.count;
  }
  if (index < tiled) throw corrupt(`${layout.wal}: the WAL ends at entry ${index}, but tiles are durable up to ${tiled}: acknowledged entries are lost`);
  // A full bundle is written only once its entries are durable in the WAL; one beyond the
  // recovered size means the WAL lost entries it had acknowledged.
  const beyond = layout.bundle(Math.floor(index / TILE_WIDTH));
  if (existsSync(beyond)) throw corrupt(`${beyond}: a full entry bundle exists beyond the recovered size ${index}: acknowledged WAL entries are lost`);
  return { segments, lastSegmentBytes, size: index, tiled };
}
