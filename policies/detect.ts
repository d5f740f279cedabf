/**
 * Fixed data detectors for body inspection: e-mail addresses, E.164-style phone numbers, IBANs
 * (ISO 13616 mod-97 check), payment card numbers (ISO/IEC 7812 prefixes + Luhn), US SSNs and UK
 * National Insurance numbers. The body is attacker-controlled: every detector is hand-written
 * code over bytes, with a bounded amount of work per start position (no regular expressions, no
 * backtracking), so a scan of n bytes costs O(n). Candidates start only at token boundaries, so
 * a long run of digits or letters is looked at once, not once per byte.
 */

/** Detector names as written in a bundle (`inspect.detect`). */
export const DETECTORS = ['email', 'phone', 'iban', 'card', 'ssn', 'nino'] as const;
export type Detector = (typeof DETECTORS)[number];

/** One bit per detector; a scan takes and returns a mask of these. */
export const DETECTOR_BIT: Readonly<Record<Detector, number>> = Object.freeze({ email: 1, phone: 2, iban: 4, card: 8, ssn: 16, nino: 32 });
export const ALL_DETECTORS = 63;

/** The detector names in a mask, in DETECTORS order. */
export function detectorNames(mask: number): Detector[] {
  return DETECTORS.filter((d) => (mask & DETECTOR_BIT[d]) !== 0);
}

const isDigit = (c: number): boolean => c >= 48 && c <= 57;
const isUpper = (c: number): boolean => c >= 65 && c <= 90;
const isLower = (c: number): boolean => c >= 97 && c <= 122;
const isAlpha = (c: number): boolean => isUpper(c) || isLower(c);
const isAlnum = (c: number): boolean => isDigit(c) || isAlpha(c);
const up = (c: number): number => (isLower(c) ? c - 32 : c);
/** Characters of an e-mail local part (RFC 5322 dot-atom, the common subset). */
const isLocal = (c: number): boolean => isAlnum(c) || c === 46 || c === 95 || c === 37 || c === 43 || c === 45;
const isDomain = (c: number): boolean => isAlnum(c) || c === 46 || c === 45;

// scratch space for candidates (the scan is synchronous and never re-entered)
const CARD_DIGITS = new Uint8Array(20);
const IBAN_CHARS = new Uint8Array(35);
// HMRC: first letter never D F I Q U V; second never D F I O Q U V (bit per letter A=0)
const NINO_BAD_FIRST = (1 << 3) | (1 << 5) | (1 << 8) | (1 << 16) | (1 << 20) | (1 << 21);
const NINO_BAD_SECOND = NINO_BAD_FIRST | (1 << 14);
const NINO_BAD_PREFIXES: readonly number[] = ['BG', 'GB', 'NK', 'KN', 'TN', 'NT', 'ZZ'].map((p) => p.charCodeAt(0) * 256 + p.charCodeAt(1));

const MAX_LOCAL = 64;
const MAX_DOMAIN = 253;

/**
 * Scans at most `limit` bytes of `body` for the detectors in `want`; returns the mask of those
 * found (stops early once every wanted detector has been seen).
 */
export function detect(body: Uint8Array, want: number = ALL_DETECTORS, limit: number = body.length): number {
  const end = Math.min(limit, body.length);
  let found = 0;
  let prev = 32; // the byte before i; start of input counts as a boundary
  for (let i = 0; i < end && (found & want) !== want; prev = body[i]!, i++) {
    const c = body[i]!;
    const todo = want & ~found;
    if (c === 64 /* @ */) {
      if (todo & 1 && isEmailAt(body, i, end)) found |= 1;
      continue;
    }
    if (c === 43 /* + */) {
      if (todo & 2 && !isAlnum(prev) && isPhoneAt(body, i + 1, end)) found |= 2;
      continue;
    }
    if (isAlnum(prev)) continue; // candidates below start at a token boundary only
    if (isDigit(c)) {
      if (todo & 8 && isCardAt(body, i, end)) found |= 8;
      if (todo & 16 && isSsnAt(body, i, end)) found |= 16;
    } else if (isAlpha(c)) {
      if (todo & 4 && isIbanAt(body, i, end)) found |= 4;
      if (todo & 32 && isNinoAt(body, i, end)) found |= 32;
    }
  }
  return found & want;
}

/** `at` is an '@': a local part of 1..64 chars before it, a dotted domain with a 2+ letter TLD after. */
function isEmailAt(b: Uint8Array, at: number, end: number): boolean {
  let s = at;
  while (s > 0 && at - s < MAX_LOCAL && isLocal(b[s - 1]!)) s--;
  if (s === at || b[s] === 46 || b[at - 1] === 46) return false;
  let e = at + 1;
  let lastDot = -1;
  while (e < end && e - at <= MAX_DOMAIN && isDomain(b[e]!)) {
    if (b[e] === 46) {
      if (e === at + 1 || b[e - 1] === 46) return false;
      lastDot = e;
    }
    e++;
  }
  if (b[e - 1] === 46) e--; // a sentence-ending dot is not part of the domain
  if (lastDot < 0 || lastDot >= e - 2) return false;
  for (let k = lastDot + 1; k < e; k++) if (!isAlpha(b[k]!)) return false;
  return true;
}

/** After '+': 8..15 digits (first 1-9), single ' ', '-', '.' separators between digits. */
function isPhoneAt(b: Uint8Array, i: number, end: number): boolean {
  if (i >= end || !isDigit(b[i]!) || b[i] === 48) return false;
  let digits = 0;
  let k = i;
  while (k < end && digits <= 15) {
    const c = b[k]!;
    if (isDigit(c)) { digits++; k++; continue; }
    if ((c === 32 || c === 45 || c === 46) && k + 1 < end && isDigit(b[k + 1]!)) { k++; continue; }
    break;
  }
  return digits >= 8 && digits <= 15 && !(k < end && isAlnum(b[k]!));
}

/**
 * A card number: 13..19 digits, optionally in groups split by single spaces or dashes, ending at
 * a token boundary, with an issuer prefix (2, 3, 4, 5, 6) and a valid Luhn check digit. At most
 * 19 digits (+ separators) are read; a longer run is not a card number.
 */
function isCardAt(b: Uint8Array, i: number, end: number): boolean {
  const first = b[i]! - 48;
  if (first < 2 || first > 6) return false;
  const d = CARD_DIGITS;
  let n = 0;
  let k = i;
  while (k < end && n <= 19) {
    const c = b[k]!;
    if (isDigit(c)) { d[n++] = c - 48; k++; continue; }
    if ((c === 32 || c === 45) && k + 1 < end && isDigit(b[k + 1]!)) { k++; continue; }
    break;
  }
  if (n < 13 || n > 19 || (k < end && isAlnum(b[k]!))) return false;
  return luhnValid(d, n);
}

/** Luhn (ISO/IEC 7812-1 annex B) over the first n digits of d. */
export function luhnValid(d: Uint8Array, n: number): boolean {
  let sum = 0;
  for (let j = 0; j < n; j++) {
    let v = d[n - 1 - j]!;
    if (j & 1) { v *= 2; if (v > 9) v -= 9; }
    sum += v;
  }
  return sum % 10 === 0;
}

/** US SSN written AAA-GG-SSSS: area not 000, 666 or 9xx; group not 00; serial not 0000. */
function isSsnAt(b: Uint8Array, i: number, end: number): boolean {
  if (i + 11 > end) return false;
  for (let k = 0; k < 11; k++) {
    const c = b[i + k]!;
    if (k === 3 || k === 6 ? c !== 45 : !isDigit(c)) return false;
  }
  if (i + 11 < end && isAlnum(b[i + 11]!)) return false;
  const num = (o: number, len: number): number => { let v = 0; for (let k = 0; k < len; k++) v = v * 10 + b[i + o + k]! - 48; return v; };
  const area = num(0, 3);
  return area !== 0 && area !== 666 && area < 900 && num(4, 2) !== 0 && num(7, 4) !== 0;
}

/** UK NINO: 2 prefix letters (HMRC exclusions), 6 digits, suffix A-D; optional single spaces between pairs. */
function isNinoAt(b: Uint8Array, i: number, end: number): boolean {
  if (i + 9 > end) return false;
  const p1 = up(b[i]!);
  const p2 = up(b[i + 1]!);
  if (!isUpper(p1) || !isUpper(p2)) return false;
  if ((NINO_BAD_FIRST >> (p1 - 65)) & 1 || (NINO_BAD_SECOND >> (p2 - 65)) & 1) return false;
  if (!isDigit(b[i + 2]!) && b[i + 2] !== 32) return false;
  if (NINO_BAD_PREFIXES.includes(p1 * 256 + p2)) return false;
  let k = i + 2;
  for (let pair = 0; pair < 3; pair++) {
    if (k < end && b[k] === 32) k++;
    if (k + 2 > end || !isDigit(b[k]!) || !isDigit(b[k + 1]!)) return false;
    k += 2;
  }
  if (k < end && b[k] === 32) k++;
  if (k >= end) return false;
  const s = up(b[k]!);
  if (s < 65 || s > 68) return false;
  return !(k + 1 < end && isAlnum(b[k + 1]!));
}

/**
 * IBAN (ISO 13616): country letters, 2 check digits, then alphanumerics, 15..34 characters in all,
 * optionally in groups split by single spaces; valid when the mod-97 of the rearranged number is 1
 * (computed digit by digit, no big integers).
 */
function isIbanAt(b: Uint8Array, i: number, end: number): boolean {
  if (i + 4 > end || !isUpper(b[i]!) || !isUpper(b[i + 1]!) || !isDigit(b[i + 2]!) || !isDigit(b[i + 3]!)) return false;
  const chars = IBAN_CHARS;
  let n = 0;
  let k = i;
  while (k < end && n <= 34) {
    const c = b[k]!;
    if (isDigit(c) || isUpper(c)) { chars[n++] = c; k++; continue; }
    if (c === 32 && k + 1 < end && (isDigit(b[k + 1]!) || isUpper(b[k + 1]!))) { k++; continue; }
    break;
  }
  if (n < 15 || n > 34 || (k < end && isAlnum(b[k]!))) return false;
  let rem = 0;
  for (let j = 0; j < n; j++) {
    const c = chars[(j + 4) % n]!;
    if (isDigit(c)) rem = (rem * 10 + (c - 48)) % 97;
    else rem = (rem * 100 + (c - 55)) % 97;
  }
  return rem === 1;
}
