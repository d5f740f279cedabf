// k6-style durations ("500ms", "30s", "1m30s", "2h") to milliseconds and back to short text.

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Parses a k6 duration string into milliseconds; throws on anything else. */
export function parseDuration(text: string): number {
  let total = 0;
  let consumed = 0;
  for (const match of text.trim().matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) {
    total += Number(match[1]) * UNIT_MS[match[2]!]!;
    consumed += match[0].length;
  }
  if (consumed === 0 || consumed !== text.trim().length) {
    throw new Error(`invalid duration "${text}" (expected e.g. 500ms, 30s, 1m30s)`);
  }
  return total;
}

/** Formats milliseconds for humans: 850ms, 12.5s, 2m05s. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)}s`;
  const minutes = Math.floor(ms / 60_000);
  const seconds = Math.round((ms % 60_000) / 1000);
  return `${minutes}m${String(seconds).padStart(2, '0')}s`;
}
