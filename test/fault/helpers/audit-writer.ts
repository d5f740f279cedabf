/**
 * Child process for test/fault/audit-kill9.test.ts: opens (recovering) the store at argv[2] and
 * appends deterministic entries forever, in bursts with several concurrent sync() calls, publishing
 * partial tiles and a checkpoint now and then. Prints one line per fact the parent may rely on:
 *   open <size>   the store opened with this many entries
 *   ack <size>    a sync() resolved: entries [0, size) are durable
 *   cp <size>     saveCheckpoint(size) resolved
 * Usage: node --import tsx test/fault/helpers/audit-writer.ts <dir> <seed>
 */
import { AuditStore } from '../../../audit/io/store.js';
import { auditEntryFor, auditNoteFor } from './audit-entries.js';

const [dir, seedArg] = process.argv.slice(2);
let seed = Number(seedArg) >>> 0 || 1;
/** mulberry32: a small seeded PRNG, so a failing schedule can be replayed. */
function random(): number {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

const store = await AuditStore.open(dir!, { segmentBytes: 64 << 10, flushEveryMs: 10, tileCacheSize: 4 });
process.stdout.write(`open ${store.size}\n`);
for (let round = 0; ; round++) {
  const waits: Promise<number>[] = [];
  const groups = 1 + Math.floor(random() * 6);
  for (let g = 0; g < groups; g++) {
    const burst = 1 + Math.floor(random() * 200);
    for (let k = 0; k < burst; k++) {
      const i = store.size;
      if (store.append(auditEntryFor(i)) !== i) throw new Error(`append returned the wrong index for ${i}`);
    }
    waits.push(store.sync());
  }
  const sizes = await Promise.all(waits);
  process.stdout.write(`ack ${Math.max(...sizes)}\n`);
  if (round % 7 === 3) {
    const size = store.durableSize;
    await store.writePartialTiles(size);
    await store.saveCheckpoint(size, auditNoteFor(size));
    process.stdout.write(`cp ${size}\n`);
  }
  if (random() < 0.3) await new Promise((r) => setTimeout(r, Math.floor(random() * 3)));
}
