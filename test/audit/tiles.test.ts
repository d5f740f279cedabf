import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import { MemoryTree } from '../../audit/merkle.js';
import {
  decodeEntryBundle,
  encodeEntryBundle,
  encodeTileIndex,
  entriesPath,
  hashLocation,
  newTiles,
  parseTilePath,
  splitHashTile,
  subtreeHash,
  tileLevels,
  tilePath,
  tileWidth,
  TILE_WIDTH,
  type TileId,
} from '../../audit/tiles.js';
import { code } from './fixtures.js';


describe('audit/tiles', () => {
  it('encodes indices as x-prefixed 3-digit groups (tlog-tiles example)', () => {
    assert.equal(encodeTileIndex(1234067), 'x001/x234/067');
    assert.equal(encodeTileIndex(0), '000');
    assert.equal(encodeTileIndex(999), '999');
    assert.equal(encodeTileIndex(1000), 'x001/000');
    assert.equal(tilePath({ level: 0, index: 1234067, width: 256 }), 'tile/0/x001/x234/067');
    assert.equal(tilePath({ level: 2, index: 5, width: 17 }), 'tile/2/005.p/17');
    assert.equal(entriesPath(1234067), 'tile/entries/x001/x234/067');
    assert.equal(entriesPath(3, 112), 'tile/entries/003.p/112');
  });

  it('parses every path it formats back to the same tile', () => {
    const tile: fc.Arbitrary<TileId> = fc.record({
      level: fc.oneof(fc.integer({ min: 0, max: 63 }), fc.constant('entries' as const)),
      index: fc.oneof(fc.nat({ max: 5000 }), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER })),
      width: fc.oneof(fc.constant(256), fc.integer({ min: 1, max: 255 })),
    });
    fc.assert(fc.property(tile, (t) => assert.deepEqual(parseTilePath(tilePath(t)), { ...t })));
  });

  it('accepts exactly one spelling per tile', () => {
    for (const bad of [
      'tile/0/x001/234/067', // non-last group without x
      'tile/0/x000/067', // leading zero group
      'tile/0/67', // not 3 digits
      'tile/00/067', // level with a leading zero
      'tile/64/000', // level above 63
      'tile/0/067.p/256', // partial width 256
      'tile/0/067.p/0',
      'tile/0/067.p/07',
      'tile/0/067.p/',
      'tile/0/067.p',
      'tile/8/0/x001/x234/067', // Go sumdb's tile/H/L/N layout
      'tiles/0/000',
      '/tile/0/000',
      'tile/data/000',
      'tile/0/x001/x002/x003/x004/x005/x006/007',
    ]) {
      assert.equal(code(() => parseTilePath(bad)), 'AUDIT_BAD_TILE', bad);
    }
  });

  it('lays out a tree of 70,000 leaves as the spec describes', () => {
    assert.deepEqual(tileLevels(70000), [
      { level: 0, fullTiles: 273, partialWidth: 112 },
      { level: 1, fullTiles: 1, partialWidth: 17 },
      { level: 2, fullTiles: 0, partialWidth: 1 },
    ]);
    assert.deepEqual(tileLevels(256), [
      { level: 0, fullTiles: 1, partialWidth: 0 },
      { level: 1, fullTiles: 0, partialWidth: 1 },
    ]);
    assert.deepEqual(tileLevels(0), []);
    assert.equal(tileWidth(0, 273, 70000), 112);
    assert.equal(tileWidth(0, 272, 70000), 256);
    assert.equal(tileWidth(0, 274, 70000), 0);
    assert.equal(tileWidth(2, 0, 70000), 1);
  });

  it('newTiles lists what an append changes', () => {
    assert.deepEqual(newTiles(0, 1), [
      { level: 'entries', index: 0, width: 1 },
      { level: 0, index: 0, width: 1 },
    ]);
    assert.deepEqual(newTiles(255, 257, false), [
      { level: 0, index: 0, width: 256 },
      { level: 0, index: 1, width: 1 },
      { level: 1, index: 0, width: 1 },
    ]);
    assert.deepEqual(newTiles(10, 10), []);
    // Every tile of the new layout that differs from the old one is listed, and only those.
    fc.assert(
      fc.property(fc.nat({ max: 200000 }), fc.nat({ max: 70000 }), (a, d) => {
        const listed = new Set(newTiles(a, a + d, false).map((t) => `${t.level}/${t.index}/${t.width}`));
        for (const l of tileLevels(a + d)) {
          for (let n = 0; n <= l.fullTiles; n++) {
            const w = tileWidth(l.level, n, a + d);
            if (w === 0) continue;
            const changed = tileWidth(l.level, n, a) !== w;
            assert.equal(listed.has(`${l.level}/${n}/${w}`), changed, `${a}→${a + d} tile ${l.level}/${n}`);
          }
        }
      }),
      { numRuns: 200 },
    );
  });

  it('hashLocation + subtreeHash reproduce every complete subtree hash from tiles', () => {
    const t = new MemoryTree();
    const N = 70000;
    for (let i = 0; i < N; i++) t.appendLeafHash(Buffer.alloc(32, i % 251).fill(i % 7, 0, 1));
    // Build the tiles of the tree: tile (L, n) holds hashes of Merkle level 8L.
    const tile = (level: number, index: number): Buffer => {
      const w = tileWidth(level, index, N);
      return Buffer.concat(Array.from({ length: w }, (_, i) => t.read(8 * level, index * TILE_WIDTH + i)));
    };
    for (const [level, index] of [[0, 0], [0, 69999], [3, 7], [8, 1], [9, 0], [12, 16], [15, 1], [16, 0], [7, 272]] as const) {
      const loc = hashLocation(level, index);
      const h = subtreeHash(tile(loc.tile.level, loc.tile.index), loc.offset, loc.count);
      assert.deepEqual(h, t.read(level, index), `${level}/${index}`);
    }
    assert.deepEqual(hashLocation(0, 1234567), { tile: { level: 0, index: 4822 }, offset: 135, count: 1 });
    assert.deepEqual(hashLocation(10, 3), { tile: { level: 1, index: 0 }, offset: 12, count: 4 });
    assert.equal(splitHashTile(tile(0, 273), 112).length, 112);
    assert.equal(code(() => splitHashTile(tile(0, 273), 113)), 'AUDIT_BAD_TILE');
  });

  it('entry bundles round-trip and are big-endian uint16 length-prefixed', () => {
    assert.deepEqual(encodeEntryBundle([Buffer.from('ab'), Buffer.alloc(0), Buffer.alloc(300, 1)]).subarray(0, 8), Buffer.from([0, 2, 0x61, 0x62, 0, 0, 0x01, 0x2c]));
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 600 }), { maxLength: 256 }), (entries) => {
        const got = decodeEntryBundle(encodeEntryBundle(entries), entries.length);
        assert.deepEqual(got.map((b) => Buffer.from(b).toString('hex')), entries.map((b) => Buffer.from(b).toString('hex')));
      }),
      { numRuns: 100 },
    );
    const max = Buffer.alloc(0xffff, 9);
    assert.equal(decodeEntryBundle(encodeEntryBundle([max]))[0]!.length, 0xffff);
  });
});
