/**
 * Where the store finds a tile's hashes: the rightmost tile of each level (in the right edge),
 * full tiles completed but not yet on disk (pending, in completion order), recently used full
 * tiles (an LRU of expanded tiles), or the tile file itself. Tiles are immutable once complete,
 * and the first slots of an edge tile never change once set, so buffers are shared, not copied.
 */
import type { StoreLayout } from './layout.js';
import { TILE_WIDTH } from './paths.js';
import { expandTile, type RightEdge } from './tree.js';

export interface PendingTile {
  level: number;
  number: number;
  expanded: Buffer;
  /** One past the last entry the tile covers: (number + 1) · 256^(level+1). */
  end: number;
}

export function tileKey(level: number, n: number): number {
  return n * 64 + level;
}

export class TileCache {
  private queue: PendingTile[] = [];
  private head = 0;
  private readonly pending = new Map<number, Buffer>();
  private readonly lru = new Map<number, Buffer>();

  constructor(
    private readonly layout: StoreLayout,
    private readonly capacity: number,
  ) {}

  /** A full tile was completed in memory; it stays here until `flushed`. */
  addPending(level: number, n: number, expanded: Buffer): void {
    this.queue.push({ level, number: n, expanded, end: (n + 1) * TILE_WIDTH ** (level + 1) });
    this.pending.set(tileKey(level, n), expanded);
  }

  /**
   * Takes the next pending tiles whose entries are all below `limit`, at most `maxLevel0`
   * level-0 tiles plus the higher tiles completed with them, in completion order.
   */
  takePending(limit: number, maxLevel0: number): PendingTile[] {
    const out: PendingTile[] = [];
    let level0 = 0;
    while (this.head < this.queue.length) {
      const t = this.queue[this.head]!;
      if (t.end > limit || (t.level === 0 && level0 === maxLevel0)) break;
      if (t.level === 0) level0++;
      out.push(t);
      this.head++;
    }
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    return out;
  }

  /** The end of the first pending tile, or Infinity. */
  nextPendingEnd(): number {
    return this.head < this.queue.length ? this.queue[this.head]!.end : Infinity;
  }

  /** The tiles are durable on disk: keep them only as cache. */
  flushed(tiles: PendingTile[]): void {
    for (const t of tiles) {
      const key = tileKey(t.level, t.number);
      this.pending.delete(key);
      this.remember(key, t.expanded);
    }
  }

  /** The expanded tile `n` of tile level `level` (full, or the edge tile). */
  expanded(edge: RightEdge, level: number, n: number): Buffer {
    const e = edge.levels[level];
    if (e !== undefined && e.number === n) return e.buf;
    const key = tileKey(level, n);
    const p = this.pending.get(key);
    if (p !== undefined) return p;
    const cached = this.lru.get(key);
    if (cached !== undefined) {
      this.lru.delete(key);
      this.lru.set(key, cached);
      return cached;
    }
    const loaded = expandTile(this.layout.readTile(level, n));
    this.remember(key, loaded);
    return loaded;
  }

  remember(key: number, expanded: Buffer): void {
    this.lru.delete(key);
    this.lru.set(key, expanded);
    if (this.lru.size > this.capacity) this.lru.delete(this.lru.keys().next().value!);
  }
}
