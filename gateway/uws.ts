/**
 * Loads uWebSockets.js's native binary directly. The package itself falls back to a slow pure-JS
 * server with only a console warning when the binary fails to load; the cage refuses to start
 * instead (GW_UWS_UNAVAILABLE), so a deployment never runs degraded without anyone knowing.
 */
import { STATUS_CODES } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { CageError } from '../core/errors.js';

export type Uws = typeof import('uWebSockets.js');

const require = createRequire(import.meta.url);
let loaded: Uws | undefined;

export function loadUws(): Uws {
  if (loaded !== undefined) return loaded;
  const file = `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`;
  let path = file;
  try {
    path = join(dirname(require.resolve('uWebSockets.js/package.json')), 'binaries', file);
    loaded = require(path) as Uws;
  } catch (err) {
    throw new CageError({
      code: 'GW_UWS_UNAVAILABLE',
      message: `uWebSockets.js native binary ${path} did not load: ${(err as Error).message}`,
      cause: err,
    });
  }
  return loaded;
}

/** Reason phrases for status lines ("200 OK"), built once. */
const STATUS_LINES: string[] = [];
for (let code = 100; code < 600; code++) STATUS_LINES[code] = `${code} ${STATUS_CODES[code] ?? 'Unknown'}`;

export function statusLine(code: number): string {
  return STATUS_LINES[code] ?? `${code} Unknown`;
}
