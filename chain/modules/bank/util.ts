/**
 * Shared helpers of the bank, court and gov modules: JSON values in the key-value state, strict
 * argument readers (every call's `args` is decoded JSON from an attacker: unknown keys are refused,
 * every field is type-checked), decimal-string amounts as bigint, and basis-point fractions.
 *
 * Amounts never pass through JS numbers: on the wire and in state they are decimal strings
 * without sign or leading zeroes, at most 39 digits (below 2^130, far above any supply).
 */
import { CageError, type CageErrorCode } from '../../../core/errors.js';
import { publicKeyObject } from '../../keys.js';
import type { StateView } from '../../module.js';

import { readJson, writeJson } from '../../state.js';

export { readJson, writeJson };

export const TOKENS = ['GEN', 'NEX', 'FLX', 'AUR'] as const;
export type Token = (typeof TOKENS)[number];
export const ROLES = ['validator', 'notary', 'log'] as const;
export type Role = (typeof ROLES)[number];
/** Fractions are integers in basis points: 10,000 = 100 %. */
export const BPS = 10_000n;

const enc = new TextEncoder();
const dec = new TextDecoder();

export function fail(code: CageErrorCode, message: string): CageError {
  return new CageError({ code, message });
}

const AMOUNT_RE = /^(?:0|[1-9][0-9]{0,38})$/;

/** Reads a stored decimal amount (0 when absent). */
export function readAmount(state: StateView, key: string): bigint {
  const v = state.get(key);
  return v === undefined ? 0n : BigInt(dec.decode(v));
}

/** Writes a decimal amount; zero deletes the key (so empty accounts leave no state behind). */
export function writeAmount(state: StateView, key: string, value: bigint): void {
  if (value < 0n) throw fail('BANK_INSUFFICIENT_FUNDS', `${key} would go negative`);
  if (value === 0n) state.delete(key);
  else state.set(key, enc.encode(value.toString()));
}

/** Left-pads a height so keys iterate in height order. */
export function heightKey(height: number): string {
  return height.toString().padStart(15, '0');
}

/** Reads a call's argument object; unknown keys are refused (a typo must not silently drop a field). */
export class Args {
  private constructor(
    private readonly o: Record<string, unknown>,
    readonly code: CageErrorCode,
    private readonly what: string,
  ) {}

  static of(value: unknown, allowed: readonly string[], code: CageErrorCode, what = 'args'): Args {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw fail(code, `${what} must be an object`);
    for (const k of Object.keys(value)) if (!allowed.includes(k)) throw fail(code, `${what}.${k} is not a known field`);
    return new Args(value as Record<string, unknown>, code, what);
  }

  has(k: string): boolean {
    return this.o[k] !== undefined;
  }

  raw(k: string): unknown {
    return this.o[k];
  }

  str(k: string, re?: RegExp, max = 4096): string {
    const v = this.o[k];
    if (typeof v !== 'string' || v.length === 0 || v.length > max) throw fail(this.code, `${this.what}.${k} must be a non-empty string of at most ${max} characters`);
    if (re !== undefined && !re.test(v)) throw fail(this.code, `${this.what}.${k} is malformed`);
    return v;
  }

  optStr(k: string, re?: RegExp, max = 4096): string | undefined {
    return this.o[k] === undefined ? undefined : this.str(k, re, max);
  }

  int(k: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
    const v = this.o[k];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) throw fail(this.code, `${this.what}.${k} must be an integer in [${min}, ${max}]`);
    return v;
  }

  bool(k: string): boolean {
    const v = this.o[k];
    if (typeof v !== 'boolean') throw fail(this.code, `${this.what}.${k} must be true or false`);
    return v;
  }

  /** A decimal-string amount; positive unless `allowZero`. */
  amount(k: string, allowZero = false): bigint {
    return parseAmount(this.o[k], this.code, `${this.what}.${k}`, allowZero);
  }

  did(k: string): string {
    return checkDid(this.o[k], this.code, `${this.what}.${k}`);
  }

  oneOf<T extends string>(k: string, values: readonly T[]): T {
    const v = this.o[k];
    if (typeof v !== 'string' || !(values as readonly string[]).includes(v)) throw fail(this.code, `${this.what}.${k} must be one of ${values.join(', ')}`);
    return v as T;
  }

  list(k: string, max: number, min = 1): unknown[] {
    const v = this.o[k];
    if (!Array.isArray(v) || v.length < min || v.length > max) throw fail(this.code, `${this.what}.${k} must be a list of ${min} to ${max} items`);
    return v;
  }

  obj(k: string, allowed: readonly string[]): Args {
    return Args.of(this.o[k], allowed, this.code, `${this.what}.${k}`);
  }
}

export function parseAmount(v: unknown, code: CageErrorCode, what: string, allowZero = false): bigint {
  if (typeof v !== 'string' || !AMOUNT_RE.test(v)) throw fail(code, `${what} must be a decimal string of at most 39 digits`);
  const n = BigInt(v);
  if (n === 0n && !allowZero) throw fail(code, `${what} must be positive`);
  return n;
}

/** A did:key naming an Ed25519 key (the only account type). */
export function checkDid(v: unknown, code: CageErrorCode, what: string): string {
  if (typeof v !== 'string' || v.length > 128 || publicKeyObject(v) === null) throw fail(code, `${what} must be an Ed25519 did:key`);
  return v;
}

/** `amount × bps / 10,000`, rounded down. */
export function fraction(amount: bigint, bps: number): bigint {
  return (amount * BigInt(bps)) / BPS;
}

const HEX32_RE = /^[0-9a-f]{64}$/;
export function isHex32(s: unknown): s is string {
  return typeof s === 'string' && HEX32_RE.test(s);
}

/**
 * A copy of the params object `params` with the dotted `path` set to `value`. Only an existing
 * leaf can be set (a typo in a governance proposal must not add a dead key); the caller then
 * re-validates the whole object with the module's params parser.
 */
export function withParam(params: object, path: string, value: unknown, code: CageErrorCode): Record<string, unknown> {
  const copy = structuredClone(params) as Record<string, unknown>;
  const parts = typeof path === 'string' ? path.split('.') : [];
  if (parts.length === 0 || parts.some((p) => p.length === 0)) throw fail(code, `parameter path ${JSON.stringify(path)} is malformed`);
  let node: Record<string, unknown> = copy;
  for (let i = 0; i < parts.length - 1; i++) {
    const next = Object.hasOwn(node, parts[i]!) ? node[parts[i]!] : undefined;
    if (typeof next !== 'object' || next === null || Array.isArray(next)) throw fail(code, `unknown parameter ${path}`);
    node = next as Record<string, unknown>;
  }
  if (!Object.hasOwn(node, parts[parts.length - 1]!)) throw fail(code, `unknown parameter ${path}`);
  node[parts[parts.length - 1]!] = value;
  return copy;
}

/** Reading and governed updating of one module's params object stored as JSON at `key`. */
export function paramStore<P extends object>(key: string, defaults: P, parse: (value: unknown, code: CageErrorCode) => P) {
  const get = (state: StateView): P => readJson<P>(state, key) ?? defaults;
  return {
    get,
    /** Sets one parameter by dotted path; the whole object is re-validated by `parse`. */
    set(state: StateView, path: string, value: unknown, code: CageErrorCode): P {
      const next = parse(withParam(get(state), path, value, code), code);
      writeJson(state, key, next);
      return next;
    },
  };
}
