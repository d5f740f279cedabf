/**
 * Binary HTTP messages (RFC 9292): known-length requests and responses are encoded; known- and
 * indeterminate-length ones are decoded, with informational (1xx) responses, trailers, truncation
 * (§3.8) and zero padding. Integers are QUIC variable-length integers (RFC 9000 §16).
 *
 * Trust: the decoder runs on decrypted bytes from an unknown client (or, on the client, from the
 * gateway): every length is checked against the bytes left and against `BhttpLimits` before any
 * allocation, field names and values follow RFC 9113 §8.2.1, and anything invalid (RFC 9292 §4)
 * is CageError PQ_BAD_BHTTP. Pseudo-fields (":…") are refused, including extension ones.
 */
import { CageError } from '../core/errors.js';
import { checkInteger, rejectUnknownOptions } from './options.js';

/** One field line: lowercase name, value as latin1 (each char is one byte). */
export type Field = [name: string, value: string];

export interface BhttpRequest {
  method: string;
  scheme: string;
  /** Empty when absent (RFC 9292 §3.4). */
  authority: string;
  path: string;
  headers: Field[];
  body: Uint8Array;
  trailers: Field[];
}

export interface BhttpInformational {
  /** 100..199 */
  status: number;
  headers: Field[];
}

export interface BhttpResponse {
  informational: BhttpInformational[];
  /** 200..599 */
  status: number;
  headers: Field[];
  body: Uint8Array;
  trailers: Field[];
}

/** Decoder bounds. Every one applies to a single message. */
export interface BhttpLimits {
  /** Bytes in one field section (known-length: its length prefix; indeterminate: the lines read). */
  maxFieldSectionBytes: number;
  /** Field lines across all sections of the message. */
  maxFields: number;
  /** Content bytes. */
  maxBodyBytes: number;
  /** Bytes of each of method, scheme, authority, path. */
  maxControlBytes: number;
  /** Informational (1xx) responses before the final one. */
  maxInformational: number;
}

export const DEFAULT_BHTTP_LIMITS: Readonly<BhttpLimits> = Object.freeze({
  maxFieldSectionBytes: 64 * 1024,
  maxFields: 256,
  maxBodyBytes: 16 * 1024 * 1024,
  maxControlBytes: 8 * 1024,
  maxInformational: 8,
});

const LIMIT_KEYS = Object.keys(DEFAULT_BHTTP_LIMITS);

/** Merges and checks limits once (unknown keys refused). */
export function resolveBhttpLimits(limits: Partial<BhttpLimits> = {}): Readonly<BhttpLimits> {
  rejectUnknownOptions(limits, LIMIT_KEYS, 'bhttp limits');
  const out = { ...DEFAULT_BHTTP_LIMITS, ...limits };
  for (const key of LIMIT_KEYS) checkInteger(out[key as keyof BhttpLimits], `bhttp limits.${key}`, 0);
  return Object.freeze(out);
}

// RFC 9292 §3.3 framing indicators.
export const FRAMING_KNOWN_REQUEST = 0;
export const FRAMING_KNOWN_RESPONSE = 1;
export const FRAMING_INDETERMINATE_REQUEST = 2;
export const FRAMING_INDETERMINATE_RESPONSE = 3;

/** RFC 9000 §16: the largest value a variable-length integer can carry. */
export const VARINT_MAX = 2 ** 62 - 1;

function bad(message: string): CageError {
  return new CageError({ code: 'PQ_BAD_BHTTP', message });
}

// ---------------------------------------------------------------------------------------------
// Validation tables (RFC 9110 §5.6.2 tchar; RFC 9113 §8.2.1 field rules).

const TCHAR = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") TCHAR[c.charCodeAt(0)] = 1;

/** Field names: one or more tchar, no uppercase (RFC 9113 §8.2.1). */
function isFieldName(b: Uint8Array): boolean {
  if (b.length === 0) return false;
  for (const c of b) if (c >= 128 || TCHAR[c] !== 1 || (c >= 0x41 && c <= 0x5a)) return false;
  return true;
}

/** Field values: no NUL, CR or LF; no leading or trailing SP / HTAB (RFC 9113 §8.2.1). */
function isFieldValue(b: Uint8Array): boolean {
  for (const c of b) if (c === 0x00 || c === 0x0a || c === 0x0d) return false;
  if (b.length === 0) return true;
  const first = b[0]!;
  const last = b[b.length - 1]!;
  return first !== 0x20 && first !== 0x09 && last !== 0x20 && last !== 0x09;
}

function isToken(b: Uint8Array): boolean {
  if (b.length === 0) return false;
  for (const c of b) if (c >= 128 || TCHAR[c] !== 1) return false;
  return true;
}

/** RFC 3986 §3.1: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ). */
function isScheme(b: Uint8Array): boolean {
  if (b.length === 0) return false;
  for (let i = 0; i < b.length; i++) {
    const c = b[i]!;
    const alpha = (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
    if (!alpha && (i === 0 || !((c >= 0x30 && c <= 0x39) || c === 0x2b || c === 0x2d || c === 0x2e))) return false;
  }
  return true;
}

/** Visible ASCII only; authority additionally without userinfo, path or query delimiters. */
function isVisible(b: Uint8Array, forbidden: string): boolean {
  for (const c of b) if (c <= 0x20 || c >= 0x7f || forbidden.includes(String.fromCharCode(c))) return false;
  return true;
}

function isPath(b: Uint8Array): boolean {
  if (b.length === 0 || !isVisible(b, '#')) return false;
  return b[0] === 0x2f || (b.length === 1 && b[0] === 0x2a); // "/…" or "*"
}

// ---------------------------------------------------------------------------------------------
// Decoding.

class Reader {
  pos: number;
  constructor(readonly buf: Uint8Array, pos = 0, readonly end = buf.length) {
    this.pos = pos;
  }

  get atEnd(): boolean {
    return this.pos >= this.end;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  /** RFC 9000 §16; non-minimal encodings are allowed (RFC 9292 §3). */
  varint(what: string): number {
    if (this.pos >= this.end) throw bad(`truncated before ${what}`);
    const first = this.buf[this.pos]!;
    const len = 1 << (first >> 6);
    if (this.pos + len > this.end) throw bad(`truncated inside ${what}`);
    let v = first & 0x3f;
    for (let i = 1; i < len; i++) v = v * 256 + this.buf[this.pos + i]!;
    this.pos += len;
    // Above 2^53 the double is inexact, but every use is bounded far below by a limit.
    return v;
  }

  /** A view (no copy) of the next n bytes, as a Buffer. */
  bytes(n: number, what: string): Buffer {
    if (n > this.remaining) throw bad(`${what} length ${n} exceeds the ${this.remaining} bytes left`);
    const out = Buffer.from(this.buf.buffer, this.buf.byteOffset + this.pos, n);
    this.pos += n;
    return out;
  }
}

const latin1 = (b: Buffer): string => b.toString('latin1');

interface FieldBudget {
  fields: number;
}

function readFieldLine(r: Reader, nameLen: number, limits: BhttpLimits, budget: FieldBudget, out: Field[]): void {
  if (++budget.fields > limits.maxFields) throw bad(`more than ${limits.maxFields} field lines`);
  const name = r.bytes(nameLen, 'field name');
  if (name[0] === 0x3a) throw bad('pseudo-fields are not accepted');
  if (!isFieldName(name)) throw bad('invalid field name');
  const value = r.bytes(r.varint('field value length'), 'field value');
  if (!isFieldValue(value)) throw bad(`invalid value for field "${latin1(name)}"`);
  out.push([latin1(name), latin1(value)]);
}

function readKnownFieldSection(r: Reader, limits: BhttpLimits, budget: FieldBudget): Field[] {
  const length = r.varint('field section length');
  if (length > limits.maxFieldSectionBytes) throw bad(`field section of ${length} bytes exceeds ${limits.maxFieldSectionBytes}`);
  if (length > r.remaining) throw bad(`field section length ${length} exceeds the ${r.remaining} bytes left`);
  const section = new Reader(r.buf, r.pos, r.pos + length);
  r.pos += length;
  const out: Field[] = [];
  while (!section.atEnd) {
    const nameLen = section.varint('field name length');
    if (nameLen === 0) throw bad('zero-length field name');
    readFieldLine(section, nameLen, limits, budget, out);
  }
  return out;
}

function readIndeterminateFieldSection(r: Reader, limits: BhttpLimits, budget: FieldBudget): Field[] {
  const start = r.pos;
  const out: Field[] = [];
  for (;;) {
    const nameLen = r.varint('field line or section terminator');
    if (nameLen === 0) return out;
    readFieldLine(r, nameLen, limits, budget, out);
    if (r.pos - start > limits.maxFieldSectionBytes) throw bad(`field section exceeds ${limits.maxFieldSectionBytes} bytes`);
  }
}

function readKnownContent(r: Reader, limits: BhttpLimits): Uint8Array {
  const length = r.varint('content length');
  if (length > limits.maxBodyBytes) throw bad(`content of ${length} bytes exceeds ${limits.maxBodyBytes}`);
  return r.bytes(length, 'content');
}

function readIndeterminateContent(r: Reader, limits: BhttpLimits): Uint8Array {
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const length = r.varint('content chunk length');
    if (length === 0) break;
    total += length;
    if (total > limits.maxBodyBytes) throw bad(`content exceeds ${limits.maxBodyBytes} bytes`);
    chunks.push(r.bytes(length, 'content chunk'));
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks); // Buffers either way
}

/** Header section, content, trailer section and padding, with RFC 9292 §3.8 truncation. */
function readTail(r: Reader, known: boolean, limits: BhttpLimits, budget: FieldBudget): { headers: Field[]; body: Uint8Array; trailers: Field[] } {
  const tail = { headers: [] as Field[], body: Buffer.alloc(0) as Uint8Array, trailers: [] as Field[] };
  if (r.atEnd) return tail;
  tail.headers = known ? readKnownFieldSection(r, limits, budget) : readIndeterminateFieldSection(r, limits, budget);
  if (r.atEnd) return tail;
  tail.body = known ? readKnownContent(r, limits) : readIndeterminateContent(r, limits);
  if (r.atEnd) return tail;
  tail.trailers = known ? readKnownFieldSection(r, limits, budget) : readIndeterminateFieldSection(r, limits, budget);
  for (let i = r.pos; i < r.end; i++) if (r.buf[i] !== 0) throw bad('non-zero padding');
  return tail;
}

function readControl(r: Reader, what: string, limits: BhttpLimits): Buffer {
  const length = r.varint(`${what} length`);
  if (length > limits.maxControlBytes) throw bad(`${what} of ${length} bytes exceeds ${limits.maxControlBytes}`);
  return r.bytes(length, what);
}

/** Decodes a request (framing 0 or 2). Throws PQ_BAD_BHTTP. */
export function decodeRequest(bytes: Uint8Array, limits: Readonly<BhttpLimits> = DEFAULT_BHTTP_LIMITS): BhttpRequest {
  const r = new Reader(bytes);
  const framing = r.varint('framing indicator');
  if (framing !== FRAMING_KNOWN_REQUEST && framing !== FRAMING_INDETERMINATE_REQUEST) throw bad(`framing indicator ${framing} is not a request`);
  const method = readControl(r, 'method', limits);
  const scheme = readControl(r, 'scheme', limits);
  const authority = readControl(r, 'authority', limits);
  const path = readControl(r, 'path', limits);
  if (!isToken(method)) throw bad('invalid method');
  if (!isScheme(scheme)) throw bad('invalid scheme');
  if (!isVisible(authority, '/?#@')) throw bad('invalid authority');
  if (!isPath(path)) throw bad('invalid path');
  const tail = readTail(r, framing === FRAMING_KNOWN_REQUEST, limits, { fields: 0 });
  return { method: latin1(method), scheme: latin1(scheme), authority: latin1(authority), path: latin1(path), ...tail };
}

/** Decodes a response (framing 1 or 3), informational responses included. Throws PQ_BAD_BHTTP. */
export function decodeResponse(bytes: Uint8Array, limits: Readonly<BhttpLimits> = DEFAULT_BHTTP_LIMITS): BhttpResponse {
  const r = new Reader(bytes);
  const framing = r.varint('framing indicator');
  if (framing !== FRAMING_KNOWN_RESPONSE && framing !== FRAMING_INDETERMINATE_RESPONSE) throw bad(`framing indicator ${framing} is not a response`);
  const known = framing === FRAMING_KNOWN_RESPONSE;
  const budget = { fields: 0 };
  const informational: BhttpInformational[] = [];
  for (;;) {
    const status = r.varint('status code');
    if (status >= 200 && status <= 599) {
      return { informational, status, ...readTail(r, known, limits, budget) };
    }
    if (status < 100 || status > 199) throw bad(`status code ${status} out of range`);
    if (informational.length >= limits.maxInformational) throw bad(`more than ${limits.maxInformational} informational responses`);
    // An informational response is followed by more control data: it cannot be truncated.
    const headers = known ? readKnownFieldSection(r, limits, budget) : readIndeterminateFieldSection(r, limits, budget);
    informational.push({ status, headers });
  }
}

// ---------------------------------------------------------------------------------------------
// Encoding (known-length only).

/** RFC 9000 §16, on the fewest bytes. */
export function encodeVarint(value: number): Buffer {
  if (!Number.isSafeInteger(value) || value < 0) throw bad(`cannot encode ${value} as a varint`);
  if (value < 0x40) return Buffer.of(value);
  if (value < 0x4000) return Buffer.of(0x40 | (value >> 8), value & 0xff);
  if (value < 0x40000000) {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(value);
    b[0]! |= 0x80;
    return b;
  }
  const b = Buffer.alloc(8);
  b.writeUInt32BE(Math.floor(value / 2 ** 32), 0);
  b.writeUInt32BE(value % 2 ** 32, 4);
  b[0]! |= 0xc0;
  return b;
}

export interface BhttpEncodeOptions {
  /** Omit empty trailers, then empty content, then empty headers at the end (RFC 9292 §3.8). */
  truncate?: boolean;
  /** Zero bytes appended (RFC 9292 §3.8), to hide the length. */
  padding?: number;
}

class Writer {
  readonly parts: Buffer[] = [];
  varint(v: number): void {
    this.parts.push(encodeVarint(v));
  }
  lengthPrefixed(b: Uint8Array): void {
    this.varint(b.length);
    this.parts.push(Buffer.from(b.buffer, b.byteOffset, b.length));
  }
}

function encodeFieldSection(fields: readonly (readonly [string, string])[], what: string): Buffer {
  const w = new Writer();
  for (const [name, value] of fields) {
    const n = Buffer.from(name, 'latin1');
    const v = Buffer.from(value, 'latin1');
    if (name[0] === ':' || !isFieldName(n) || n.toString('latin1') !== name) throw bad(`invalid ${what} field name "${name}"`);
    if (!isFieldValue(v) || v.toString('latin1') !== value) throw bad(`invalid value for ${what} field "${name}"`);
    w.lengthPrefixed(n);
    w.lengthPrefixed(v);
  }
  return Buffer.concat(w.parts);
}

function writeTail(w: Writer, headers: readonly Field[], body: Uint8Array, trailers: readonly Field[], opts: BhttpEncodeOptions): void {
  const h = encodeFieldSection(headers, 'header');
  const t = encodeFieldSection(trailers, 'trailer');
  const truncate = opts.truncate === true;
  const keepTrailers = !truncate || t.length > 0;
  const keepBody = keepTrailers || body.length > 0;
  const keepHeaders = keepBody || h.length > 0;
  if (keepHeaders) w.lengthPrefixed(h);
  if (keepBody) w.lengthPrefixed(body);
  if (keepTrailers) w.lengthPrefixed(t);
  if (opts.padding) w.parts.push(Buffer.alloc(checkInteger(opts.padding, 'padding', 0, 1 << 24)));
}

function asciiControl(value: string, ok: (b: Uint8Array) => boolean, what: string): Buffer {
  const b = Buffer.from(value, 'latin1');
  if (b.toString('latin1') !== value || !ok(b)) throw bad(`invalid ${what} "${value}"`);
  return b;
}

/** Encodes a known-length request (framing 0). Throws PQ_BAD_BHTTP for invalid fields. */
export function encodeRequest(req: Omit<BhttpRequest, 'trailers' | 'body'> & { body?: Uint8Array; trailers?: Field[] }, opts: BhttpEncodeOptions = {}): Buffer {
  const w = new Writer();
  w.varint(FRAMING_KNOWN_REQUEST);
  w.lengthPrefixed(asciiControl(req.method, isToken, 'method'));
  w.lengthPrefixed(asciiControl(req.scheme, isScheme, 'scheme'));
  w.lengthPrefixed(asciiControl(req.authority, (b) => isVisible(b, '/?#@'), 'authority'));
  w.lengthPrefixed(asciiControl(req.path, isPath, 'path'));
  writeTail(w, req.headers, req.body ?? new Uint8Array(0), req.trailers ?? [], opts);
  return Buffer.concat(w.parts);
}

/** Encodes a known-length response (framing 1), informational responses first. */
export function encodeResponse(res: Omit<BhttpResponse, 'informational' | 'trailers' | 'body'> & { informational?: BhttpInformational[]; body?: Uint8Array; trailers?: Field[] }, opts: BhttpEncodeOptions = {}): Buffer {
  const w = new Writer();
  w.varint(FRAMING_KNOWN_RESPONSE);
  for (const info of res.informational ?? []) {
    if (!Number.isInteger(info.status) || info.status < 100 || info.status > 199) throw bad(`informational status ${info.status} out of range`);
    w.varint(info.status);
    w.lengthPrefixed(encodeFieldSection(info.headers, 'header'));
  }
  if (!Number.isInteger(res.status) || res.status < 200 || res.status > 599) throw bad(`status ${res.status} out of range`);
  w.varint(res.status);
  writeTail(w, res.headers, res.body ?? new Uint8Array(0), res.trailers ?? [], opts);
  return Buffer.concat(w.parts);
}
