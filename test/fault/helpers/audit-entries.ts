/**
 * Deterministic audit entries for the kill -9 test: entry i is a pure function of i, so the
 * parent can recompute every entry the killed writer appended. Lengths vary (0 to 400 bytes).
 */
import { createHash } from 'node:crypto';

export function auditEntryFor(i: number): Buffer {
  const len = i % 113 === 0 ? 0 : 1 + ((i * 2654435761) >>> 0) % 400;
  const seed = createHash('sha256').update(`kill9 entry ${i}`).digest();
  const out = Buffer.allocUnsafe(len);
  for (let k = 0; k < len; k += 32) seed.copy(out, k, 0, Math.min(32, len - k));
  return out;
}

/** A stand-in signed note for size n (the store does not parse notes). */
export function auditNoteFor(size: number): string {
  return `kill9.example/log\n${size}\nroot-of-${size}\n\n— kill9.example/log sig-${size}\n`;
}
