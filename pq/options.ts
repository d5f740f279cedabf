/**
 * Option checks shared by the pq/ constructors (noble style): unknown keys are refused, so a typo
 * never silently turns a protection off, and each bad value names its option. Checked once, at
 * construction; never per request.
 */
import { CageError } from '../core/errors.js';

/** Refuses keys of `opts` that are not in `allowed`; `where` names the API in the message. */
export function rejectUnknownOptions(opts: object, allowed: readonly string[], where: string): void {
  for (const key of Object.keys(opts)) {
    if (!allowed.includes(key)) {
      throw new CageError({ code: 'CONFIG_INVALID', message: `${where}: unknown option "${key}" (allowed: ${allowed.join(', ')})` });
    }
  }
}

/** A safe integer in [min, max], or CONFIG_INVALID naming `name`. */
export function checkInteger(value: unknown, name: string, min: number, max: number = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new CageError({ code: 'CONFIG_INVALID', message: `${name} must be an integer in [${min}, ${max}], got ${String(value)}` });
  }
  return value;
}

/** Byte-string argument check: a Uint8Array, of `length` bytes when given (noble's `abytes`). */
export function checkBytes(value: unknown, name: string, length?: number): Uint8Array {
  if (!(value instanceof Uint8Array)) {
    throw new CageError({ code: 'CONFIG_INVALID', message: `${name} must be a Uint8Array` });
  }
  if (length !== undefined && value.length !== length) {
    throw new CageError({ code: 'CONFIG_INVALID', message: `${name} must be ${length} bytes, got ${value.length}` });
  }
  return value;
}
