/**
 * Reads a log's published read side — `checkpoint`, hash tiles and entry bundles, C2SP
 * tlog-tiles — from a folder or over HTTP, as any verifier would: nothing here trusts the log.
 * Used by `cage audit consistency|replay|show`; works while the cage runs (no store lock).
 * Tiles are fetched on demand: the Merkle code asks a synchronous HashReader, which reports a
 * missing tile; the tile is fetched and the computation retried.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CageError } from '../../core/errors.js';
import { HASH_SIZE } from '../hash.js';
import type { HashReader } from '../merkle.js';
import { TILE_WIDTH, decodeEntryBundle, entriesPath, hashLocation, subtreeHash, tilePath } from '../tiles.js';

/** Fetches one file of the read side by its tlog-tiles path; undefined when it does not exist. */
export type TileFetch = (path: string) => Promise<Buffer | undefined>;

export function dirFetch(dir: string): TileFetch {
  return async (path) => {
    try {
      return await readFile(join(dir, path));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new CageError({ code: 'AUDIT_STORE_IO', message: `cannot read ${join(dir, path)}: ${(err as Error).message}`, cause: err });
    }
  };
}

export function httpFetch(base: string, token?: string): TileFetch {
  const root = base.endsWith('/') ? base : `${base}/`;
  return async (path) => {
    let res: Response;
    try {
      res = await fetch(new URL(path, root), { headers: token === undefined ? {} : { authorization: `Bearer ${token}` } });
    } catch (err) {
      throw new CageError({ code: 'AUDIT_STORE_IO', message: `cannot fetch ${root}${path}: ${(err as Error).message}`, cause: err });
    }
    if (res.status === 404) return undefined;
    if (!res.ok) throw new CageError({ code: 'AUDIT_STORE_IO', message: `GET ${root}${path}: HTTP ${res.status}` });
    return Buffer.from(await res.arrayBuffer());
  };
}

class MissingTile extends Error {
  constructor(readonly path: string) {
    super(path);
  }
}

export class TileReader {
  private readonly tiles = new Map<string, Buffer>();

  constructor(private readonly fetchFile: TileFetch) {}

  async checkpoint(): Promise<string> {
    const b = await this.fetchFile('checkpoint');
    if (b === undefined) throw new CageError({ code: 'AUDIT_INDEX_OUT_OF_RANGE', message: 'the log has no checkpoint' });
    return b.toString('utf8');
  }

  /** Path of the tile holding tile-level `level`, index `index`, as published for a tree of `size`. */
  private tileFor(level: number, index: number, size: number): { path: string; width: number } {
    const span = TILE_WIDTH ** level;
    const full = (index + 1) * span * TILE_WIDTH <= size;
    const width = full ? TILE_WIDTH : Math.floor(size / span) % TILE_WIDTH;
    return { path: tilePath({ level, index, width }), width };
  }

  /** A HashReader over the tiles of a tree of `size`; throws MissingTile for a tile not fetched yet. */
  private reader(size: number): HashReader {
    return (level, index) => {
      const loc = hashLocation(level, index);
      const { path, width } = this.tileFor(loc.tile.level, loc.tile.index, size);
      const tile = this.tiles.get(path);
      if (tile === undefined) throw new MissingTile(path);
      if (tile.length !== width * HASH_SIZE) {
        throw new CageError({ code: 'AUDIT_STORE_CORRUPT', message: `tile ${path} is ${tile.length} bytes, want ${width * HASH_SIZE}` });
      }
      return subtreeHash(tile, loc.offset, loc.count);
    };
  }

  /** Runs `compute` with a reader for `size`, fetching tiles it misses until it completes. */
  async withHashes<T>(size: number, compute: (read: HashReader) => T): Promise<T> {
    for (;;) {
      try {
        return compute(this.reader(size));
      } catch (err) {
        if (!(err instanceof MissingTile)) throw err;
        const b = await this.fetchFile(err.path);
        if (b === undefined) throw new CageError({ code: 'AUDIT_STORE_CORRUPT', message: `the log does not serve ${err.path}, which a tree of ${size} needs` });
        this.tiles.set(err.path, b);
      }
    }
  }

  /** The entries of bundle `n` as published for a tree of `size`. */
  async bundle(n: number, size: number): Promise<Buffer[]> {
    const full = (n + 1) * TILE_WIDTH <= size;
    const width = full ? TILE_WIDTH : size % TILE_WIDTH;
    const path = full ? entriesPath(n) : entriesPath(n, width);
    const b = await this.fetchFile(path);
    if (b === undefined) throw new CageError({ code: 'AUDIT_STORE_CORRUPT', message: `the log does not serve ${path}` });
    return decodeEntryBundle(b, width);
  }

  /** Level-0 hashes (leaf hashes) of tile `n` for a tree of `size`. */
  async leafTile(n: number, size: number): Promise<Buffer> {
    const { path, width } = this.tileFor(0, n, size);
    const b = this.tiles.get(path) ?? (await this.fetchFile(path));
    if (b === undefined) throw new CageError({ code: 'AUDIT_STORE_CORRUPT', message: `the log does not serve ${path}` });
    if (b.length !== width * HASH_SIZE) throw new CageError({ code: 'AUDIT_STORE_CORRUPT', message: `tile ${path} is ${b.length} bytes, want ${width * HASH_SIZE}` });
    return b;
  }
}
