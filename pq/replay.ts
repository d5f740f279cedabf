/**
 * Optional freshness window and replay cache for encapsulated requests (RFC 9458 §6.5, §6.5.1).
 *
 * What Oblivious HTTP itself does not prevent (RFC 9458 §6.5):
 * - Replays. An Encapsulated Request is a self-contained ciphertext: the relay, or anyone who
 *   recorded it (including a network attacker on TLS early data), can send the same bytes again and
 *   the gateway decrypts them again. Nothing in HPKE or the framing binds a request to a time or a
 *   connection, and the gateway must not link requests, so TLS's own anti-replay cannot apply.
 * - Retried non-idempotent requests: a relay or client must not retry without a positive signal
 *   that the request was not processed, but the gateway cannot tell a retry from a replay.
 * - Responses are safe either way: the gateway's fresh response_nonce gives each response its own
 *   key and nonce even when the request is replayed.
 *
 * The mitigation here is the one §6.5.1 suggests: the inner request carries a `Date` (or another
 * configured header), accepted only within ±windowMs of the gateway's clock; inside that window the
 * `enc` of every accepted request is remembered, and a second request with the same `enc` is
 * refused (PQ_REPLAY). `enc` is fresh per request (a new KEM encapsulation), so valid requests never
 * collide. A cache entry is dropped once its request's Date leaves the window, so the cache is
 * bounded by the request rate times 2·window (and by maxEntries: when full, new requests are
 * refused rather than letting replays through). The window is not secret (§6.5.1): a client can
 * probe it. The Date reveals the client's clock to the gateway (§6.8).
 *
 * Pure: the clock is injected, and sweeping happens inside `check` (no timers).
 */
import { createHash } from 'node:crypto';
import { CageError } from '../core/errors.js';
import type { Field } from './bhttp.js';
import { checkInteger, rejectUnknownOptions } from './options.js';

export interface ReplayGuardOptions {
  /** Accepted clock difference, either way, in ms. */
  windowMs: number;
  /** Remembered requests at most; beyond it new requests are refused (fail closed). Default 100 000. */
  maxEntries?: number;
  /** Lowercase name of the inner header that carries the time. Default "date". */
  header?: string;
  /** Refuse requests without the header (PQ_STALE). Default true; false lets them pass unchecked and uncached. */
  requireDate?: boolean;
  now?: () => number;
}

const OPTION_KEYS = ['windowMs', 'maxEntries', 'header', 'requireDate', 'now'];

const IMF_FIXDATE = /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d{2}) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT$/;
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/**
 * An IMF-fixdate (RFC 9110 §5.6.7, what `Date.prototype.toUTCString` writes) or a count of Unix
 * seconds, as ms since the epoch; undefined otherwise. The obsolete HTTP-date forms are refused.
 */
export function parseRequestTime(value: string): number | undefined {
  if (/^\d{1,12}$/.test(value)) return Number(value) * 1000;
  const m = IMF_FIXDATE.exec(value);
  if (!m) return undefined;
  const [, , day, mon, year, hh, mm, ss] = m;
  const t = Date.UTC(Number(year), MONTHS.indexOf(mon!), Number(day), Number(hh), Number(mm), Number(ss));
  // Reject roll-overs such as "31 Feb" or "25:00:00".
  const d = new Date(t);
  if (d.getUTCDate() !== Number(day) || d.getUTCHours() !== Number(hh) || d.getUTCMinutes() !== Number(mm) || d.getUTCSeconds() !== Number(ss)) return undefined;
  return t;
}

export class ReplayGuard {
  readonly windowMs: number;
  readonly maxEntries: number;
  readonly header: string;
  readonly requireDate: boolean;
  readonly #now: () => number;
  /** sha256(enc) in base64 → when the entry may be forgotten (request time + window). */
  readonly #seen = new Map<string, number>();
  #nextSweep = 0;

  constructor(opts: ReplayGuardOptions) {
    rejectUnknownOptions(opts, OPTION_KEYS, 'ReplayGuard');
    this.windowMs = checkInteger(opts.windowMs, 'ReplayGuard windowMs', 1);
    this.maxEntries = checkInteger(opts.maxEntries ?? 100_000, 'ReplayGuard maxEntries', 1);
    this.header = opts.header ?? 'date';
    if (!/^[a-z0-9-]+$/.test(this.header)) throw new CageError({ code: 'CONFIG_INVALID', message: 'ReplayGuard header must be a lowercase field name' });
    this.requireDate = opts.requireDate ?? true;
    this.#now = opts.now ?? Date.now;
  }

  /** Requests remembered now. */
  get size(): number {
    return this.#seen.size;
  }

  /**
   * Checks one decrypted request: its time header within the window (PQ_STALE), then its `enc`
   * not seen before (PQ_REPLAY), and remembers it. `enc` and `headers` are attacker-chosen.
   */
  check(enc: Uint8Array, headers: readonly Field[]): void {
    const now = this.#now();
    let value: string | undefined;
    for (const [name, v] of headers) {
      if (name !== this.header) continue;
      if (value !== undefined) throw new CageError({ code: 'PQ_STALE', message: `more than one ${this.header} field` });
      value = v;
    }
    if (value === undefined) {
      if (this.requireDate) throw new CageError({ code: 'PQ_STALE', message: `the inner request has no ${this.header} field` });
      return;
    }
    const t = parseRequestTime(value);
    if (t === undefined) throw new CageError({ code: 'PQ_STALE', message: `the inner ${this.header} field is not an IMF-fixdate` });
    if (Math.abs(now - t) > this.windowMs) {
      throw new CageError({ code: 'PQ_STALE', message: `the inner ${this.header} is ${Math.round((t - now) / 1000)} s from the gateway's clock (window ±${this.windowMs / 1000} s)` });
    }
    this.#sweep(now);
    const key = createHash('sha256').update(enc).digest('base64');
    const until = this.#seen.get(key);
    if (until !== undefined && until >= now) throw new CageError({ code: 'PQ_REPLAY', message: 'this encapsulated request was already accepted' });
    if (this.#seen.size >= this.maxEntries) {
      this.#sweep(now, true);
      if (this.#seen.size >= this.maxEntries) throw new CageError({ code: 'PQ_REPLAY', message: `replay cache full (${this.maxEntries} requests within the window); request refused` });
    }
    // Replayable while |now - t| <= window, i.e. until t + window.
    this.#seen.set(key, t + this.windowMs);
  }

  /** Drops entries whose window has passed; a full pass at most every window/4 unless forced. */
  #sweep(now: number, force = false): void {
    if (!force && now < this.#nextSweep) return;
    this.#nextSweep = now + Math.max(1, Math.floor(this.windowMs / 4));
    for (const [key, until] of this.#seen) if (until < now) this.#seen.delete(key);
  }
}
