/**
 * The split-origin audit record: both halves of one exchange (what the client sent, what the app
 * answered), in a canonical, versioned binary encoding that becomes a transparency log entry
 * (leaf = SHA-256(0x00 ‖ record)). Layout, byte by byte, in docs/formats.md §Audit record; the
 * headers digest and the Cage-Origin-Signature message are defined here too.
 *
 * Determinism: one record has exactly one encoding (fixed field order, minimal uvarints, presence
 * flags, no maps), so the same exchange always yields the same bytes and the same leaf hash.
 * Trust: `encodeRecord` takes the gateway's own values (checked for type and size, not trusted
 * blindly); `decodeRecord` takes bytes from disk or a proof file and rejects anything that is not
 * the canonical encoding (AUDIT_BAD_RECORD). `encodeRecord` runs per request: it sizes the output
 * first and allocates one Buffer.
 */
import { hash, verify as edVerify, type KeyObject } from 'node:crypto';
import { CageError } from '../core/errors.js';
import { decodeUtf8, isWellFormedString } from './note.js';

/** First byte of every record. */
export const RECORD_MAGIC = 0xca;
/** Second byte: the layout version this module writes. */
export const RECORD_VERSION = 1;
export const DIGEST_SIZE = 32;
export const ORIGIN_SIGNATURE_SIZE = 64;
/** No record exceeds this (the uint16 length prefix of a tlog-tiles entry bundle); the field limits keep every record below it. */
export const MAX_RECORD_BYTES = 0xffff;

/** Byte limits of the string fields (UTF-8 bytes). */
export const RECORD_LIMITS = Object.freeze({
  requestId: 256,
  route: 256,
  method: 64,
  host: 1024,
  path: 16384,
  clientAddress: 128,
  identity: 1024,
  signatureInput: 8192,
  signature: 8192,
  originKeyId: 256,
  cageError: 64,
  verdict: 32,
  reason: 256,
  reasons: 32,
});

const FLAG_IDENTITY = 0x01;
const FLAG_CLIENT_SIGNATURE = 0x02;
const FLAG_ORIGIN_SIGNATURE = 0x04;
const FLAG_DECISION = 0x08;
const FLAG_PATH_HASHED = 0x10;
const FLAG_CAGE_ERROR = 0x20;
const FLAG_INCOMPLETE = 0x40;
const FLAGS_KNOWN = 0x7f;
const MAX_STATUS = 999;

/** The RFC 9421 signature the client sent: its Signature-Input and Signature field values. */
export interface ClientSignature {
  readonly signatureInput: string;
  readonly signature: string;
}

/** The app's Cage-Origin-Signature over `originSignatureMessage(...)`, and whether it verified. */
export interface OriginSignature {
  readonly signature: Uint8Array;
  readonly keyId: string;
  /** False records a discrepancy: the app's signature did not verify against its key. */
  readonly verified: boolean;
}

/** The policy decision for the exchange. */
export interface Decision {
  readonly verdict: string;
  readonly reasons: readonly string[];
}

export interface AuditRecord {
  // Request side: what the client sent.
  readonly requestId: string;
  /** UNIX time in milliseconds when the request arrived. */
  readonly time: number;
  readonly route: string;
  readonly method: string;
  readonly host: string;
  /** The request target as received, or its 32-byte SHA-256 (`hashPath`) when a policy hides it. */
  readonly path: string | Uint8Array;
  readonly clientAddress: string;
  readonly identity?: string;
  readonly requestHeadersDigest: Uint8Array;
  readonly requestBodyDigest: Uint8Array;
  readonly requestBodyLength: number;
  readonly clientSignature?: ClientSignature;
  // Response side: what the app answered.
  readonly status: number;
  readonly responseHeadersDigest: Uint8Array;
  readonly responseBodyDigest: Uint8Array;
  readonly responseBodyLength: number;
  readonly durationMicros: number;
  /** The cage's error code when the cage answered instead of the app (e.g. GW_UPSTREAM_TIMEOUT). */
  readonly cageError?: string;
  readonly originSignature?: OriginSignature;
  readonly decision?: Decision;
  /** Set when the log sealed the record before the exchange ended (a response still streaming). */
  readonly incomplete?: boolean;
}

function bad(message: string): CageError {
  return new CageError({ code: 'AUDIT_BAD_RECORD', message });
}

/** True when the record carries an origin signature that failed to verify. */
export function hasDiscrepancy(r: AuditRecord): boolean {
  return r.originSignature !== undefined && !r.originSignature.verified;
}

/** SHA-256 of the UTF-8 path: what `path` holds when a policy asks for the path to be hashed. */
export function hashPath(path: string): Buffer {
  return hash('sha256', path, 'buffer');
}

// ---------------------------------------------------------------------------------------------
// uvarint: unsigned LEB128, minimal, at most 8 bytes, value ≤ 2^53 − 1 (arithmetic, no 32-bit ops).

function uvarintSize(v: number): number {
  let n = 1;
  while (v >= 128) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

function writeUvarint(buf: Buffer, o: number, v: number): number {
  while (v >= 128) {
    buf[o++] = (v % 128) + 128;
    v = Math.floor(v / 128);
  }
  buf[o++] = v;
  return o;
}

// ---------------------------------------------------------------------------------------------
// Encoding.

function strLen(s: unknown, max: number, what: string): number {
  if (typeof s !== 'string') throw bad(`${what} is not a string`);
  const n = Buffer.byteLength(s, 'utf8');
  if (n > max) throw bad(`${what} is ${n} bytes, more than ${max}`);
  if (!isWellFormedString(s)) throw bad(`${what} is not well-formed Unicode`);
  return uvarintSize(n) + n;
}

function intSize(v: unknown, max: number, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || v > max) throw bad(`${what} ${String(v)} is not an integer in [0, ${max}]`);
  return uvarintSize(v);
}

function checkBytes(b: unknown, size: number, what: string): void {
  if (!(b instanceof Uint8Array) || b.length !== size) throw bad(`${what} must be ${size} bytes`);
}

function writeStr(buf: Buffer, o: number, s: string): number {
  const n = Buffer.byteLength(s, 'utf8');
  o = writeUvarint(buf, o, n);
  return o + buf.write(s, o, n, 'utf8');
}

/** Encodes a record (layout v1, docs/formats.md). Throws AUDIT_BAD_RECORD for a value out of its type or limits. */
export function encodeRecord(r: AuditRecord): Buffer {
  const L = RECORD_LIMITS;
  const MAX = Number.MAX_SAFE_INTEGER;
  let flags = 0;
  let size = 3;
  size += strLen(r.requestId, L.requestId, 'requestId');
  size += intSize(r.time, MAX, 'time');
  size += strLen(r.route, L.route, 'route');
  size += strLen(r.method, L.method, 'method');
  size += strLen(r.host, L.host, 'host');
  if (typeof r.path === 'string') {
    size += strLen(r.path, L.path, 'path');
  } else {
    checkBytes(r.path, DIGEST_SIZE, 'hashed path');
    flags |= FLAG_PATH_HASHED;
    size += DIGEST_SIZE;
  }
  size += strLen(r.clientAddress, L.clientAddress, 'clientAddress');
  if (r.identity !== undefined) {
    flags |= FLAG_IDENTITY;
    size += strLen(r.identity, L.identity, 'identity');
  }
  checkBytes(r.requestHeadersDigest, DIGEST_SIZE, 'requestHeadersDigest');
  checkBytes(r.requestBodyDigest, DIGEST_SIZE, 'requestBodyDigest');
  size += 2 * DIGEST_SIZE + intSize(r.requestBodyLength, MAX, 'requestBodyLength');
  const cs = r.clientSignature;
  if (cs !== undefined) {
    flags |= FLAG_CLIENT_SIGNATURE;
    size += strLen(cs.signatureInput, L.signatureInput, 'clientSignature.signatureInput') + strLen(cs.signature, L.signature, 'clientSignature.signature');
  }
  size += intSize(r.status, MAX_STATUS, 'status');
  checkBytes(r.responseHeadersDigest, DIGEST_SIZE, 'responseHeadersDigest');
  checkBytes(r.responseBodyDigest, DIGEST_SIZE, 'responseBodyDigest');
  size += 2 * DIGEST_SIZE + intSize(r.responseBodyLength, MAX, 'responseBodyLength') + intSize(r.durationMicros, MAX, 'durationMicros');
  if (r.cageError !== undefined) {
    flags |= FLAG_CAGE_ERROR;
    size += strLen(r.cageError, L.cageError, 'cageError');
  }
  const os = r.originSignature;
  if (os !== undefined) {
    flags |= FLAG_ORIGIN_SIGNATURE;
    checkBytes(os.signature, ORIGIN_SIGNATURE_SIZE, 'originSignature.signature');
    if (typeof os.verified !== 'boolean') throw bad('originSignature.verified is not a boolean');
    size += ORIGIN_SIGNATURE_SIZE + strLen(os.keyId, L.originKeyId, 'originSignature.keyId') + 1;
  }
  const d = r.decision;
  if (d !== undefined) {
    flags |= FLAG_DECISION;
    size += strLen(d.verdict, L.verdict, 'decision.verdict');
    if (!Array.isArray(d.reasons) || d.reasons.length > L.reasons) throw bad(`decision.reasons must be a list of at most ${L.reasons}`);
    size += uvarintSize(d.reasons.length);
    for (const reason of d.reasons) size += strLen(reason, L.reason, 'decision.reasons[]');
  }
  if (r.incomplete !== undefined && typeof r.incomplete !== 'boolean') throw bad('incomplete is not a boolean');
  if (r.incomplete === true) flags |= FLAG_INCOMPLETE;

  const buf = Buffer.allocUnsafe(size);
  buf[0] = RECORD_MAGIC;
  buf[1] = RECORD_VERSION;
  buf[2] = flags;
  let o = 3;
  o = writeStr(buf, o, r.requestId);
  o = writeUvarint(buf, o, r.time);
  o = writeStr(buf, o, r.route);
  o = writeStr(buf, o, r.method);
  o = writeStr(buf, o, r.host);
  if (typeof r.path === 'string') o = writeStr(buf, o, r.path);
  else {
    buf.set(r.path, o);
    o += DIGEST_SIZE;
  }
  o = writeStr(buf, o, r.clientAddress);
  if (r.identity !== undefined) o = writeStr(buf, o, r.identity);
  buf.set(r.requestHeadersDigest, o);
  buf.set(r.requestBodyDigest, o + DIGEST_SIZE);
  o = writeUvarint(buf, o + 2 * DIGEST_SIZE, r.requestBodyLength);
  if (cs !== undefined) {
    o = writeStr(buf, o, cs.signatureInput);
    o = writeStr(buf, o, cs.signature);
  }
  o = writeUvarint(buf, o, r.status);
  buf.set(r.responseHeadersDigest, o);
  buf.set(r.responseBodyDigest, o + DIGEST_SIZE);
  o = writeUvarint(buf, o + 2 * DIGEST_SIZE, r.responseBodyLength);
  o = writeUvarint(buf, o, r.durationMicros);
  if (r.cageError !== undefined) o = writeStr(buf, o, r.cageError);
  if (os !== undefined) {
    buf.set(os.signature, o);
    o = writeStr(buf, o + ORIGIN_SIGNATURE_SIZE, os.keyId);
    buf[o++] = os.verified ? 1 : 0;
  }
  if (d !== undefined) {
    o = writeStr(buf, o, d.verdict);
    o = writeUvarint(buf, o, d.reasons.length);
    for (const reason of d.reasons) o = writeStr(buf, o, reason);
  }
  if (o !== size) throw bad(`internal: record encoder wrote ${o} bytes, sized ${size}`);
  return buf;
}

// ---------------------------------------------------------------------------------------------
// Decoding.

class Reader {
  o = 0;
  constructor(readonly b: Buffer) {}

  need(n: number, what: string): void {
    if (this.o + n > this.b.length) throw bad(`record is truncated in ${what}`);
  }

  byte(what: string): number {
    this.need(1, what);
    return this.b[this.o++]!;
  }

  uvarint(what: string, max = Number.MAX_SAFE_INTEGER): number {
    let v = 0;
    let scale = 1;
    for (let i = 0; ; i++) {
      if (i === 8) throw bad(`${what} is a uvarint longer than 8 bytes`);
      const c = this.byte(what);
      v += (c % 128) * scale;
      if (c < 128) {
        if (c === 0 && i > 0) throw bad(`${what} is a non-minimal uvarint`);
        break;
      }
      scale *= 128;
    }
    if (v > max) throw bad(`${what} ${v} is above ${max}`);
    return v;
  }

  bytes(n: number, what: string): Buffer {
    this.need(n, what);
    const out = Buffer.from(this.b.subarray(this.o, this.o + n));
    this.o += n;
    return out;
  }

  str(max: number, what: string): string {
    const n = this.uvarint(`${what} length`);
    if (n > max) throw bad(`${what} is ${n} bytes, more than ${max}`);
    this.need(n, what);
    const s = decodeUtf8(this.b.subarray(this.o, this.o + n));
    if (s === undefined) throw bad(`${what} is not valid UTF-8`);
    this.o += n;
    return s;
  }
}

/** Decodes a record, accepting only the canonical encoding of a known version. Throws AUDIT_BAD_RECORD. */
export function decodeRecord(bytes: Uint8Array): AuditRecord {
  if (!(bytes instanceof Uint8Array)) throw bad('record is not bytes');
  if (bytes.length > MAX_RECORD_BYTES) throw bad(`record is ${bytes.length} bytes, more than ${MAX_RECORD_BYTES}`);
  const r = new Reader(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  const L = RECORD_LIMITS;
  if (r.byte('magic') !== RECORD_MAGIC) throw bad('record does not start with the record magic byte 0xca');
  const version = r.byte('version');
  if (version !== RECORD_VERSION) throw bad(`unsupported record version ${version}`);
  const flags = r.byte('flags');
  if ((flags | FLAGS_KNOWN) !== FLAGS_KNOWN) throw bad(`record flags 0x${flags.toString(16)} set unknown bits`);
  const requestId = r.str(L.requestId, 'requestId');
  const time = r.uvarint('time');
  const route = r.str(L.route, 'route');
  const method = r.str(L.method, 'method');
  const host = r.str(L.host, 'host');
  const path = flags & FLAG_PATH_HASHED ? r.bytes(DIGEST_SIZE, 'hashed path') : r.str(L.path, 'path');
  const clientAddress = r.str(L.clientAddress, 'clientAddress');
  const identity = flags & FLAG_IDENTITY ? r.str(L.identity, 'identity') : undefined;
  const requestHeadersDigest = r.bytes(DIGEST_SIZE, 'requestHeadersDigest');
  const requestBodyDigest = r.bytes(DIGEST_SIZE, 'requestBodyDigest');
  const requestBodyLength = r.uvarint('requestBodyLength');
  let clientSignature: ClientSignature | undefined;
  if (flags & FLAG_CLIENT_SIGNATURE) {
    const signatureInput = r.str(L.signatureInput, 'clientSignature.signatureInput');
    clientSignature = { signatureInput, signature: r.str(L.signature, 'clientSignature.signature') };
  }
  const status = r.uvarint('status', MAX_STATUS);
  const responseHeadersDigest = r.bytes(DIGEST_SIZE, 'responseHeadersDigest');
  const responseBodyDigest = r.bytes(DIGEST_SIZE, 'responseBodyDigest');
  const responseBodyLength = r.uvarint('responseBodyLength');
  const durationMicros = r.uvarint('durationMicros');
  const cageError = flags & FLAG_CAGE_ERROR ? r.str(L.cageError, 'cageError') : undefined;
  let originSignature: OriginSignature | undefined;
  if (flags & FLAG_ORIGIN_SIGNATURE) {
    const signature = r.bytes(ORIGIN_SIGNATURE_SIZE, 'originSignature.signature');
    const keyId = r.str(L.originKeyId, 'originSignature.keyId');
    const v = r.byte('originSignature.verified');
    if (v > 1) throw bad(`originSignature.verified byte is ${v}, not 0 or 1`);
    originSignature = { signature, keyId, verified: v === 1 };
  }
  let decision: Decision | undefined;
  if (flags & FLAG_DECISION) {
    const verdict = r.str(L.verdict, 'decision.verdict');
    const n = r.uvarint('decision.reasons count', L.reasons);
    const reasons: string[] = [];
    for (let i = 0; i < n; i++) reasons.push(r.str(L.reason, 'decision.reasons[]'));
    decision = { verdict, reasons };
  }
  if (r.o !== r.b.length) throw bad(`record has ${r.b.length - r.o} trailing bytes`);
  return {
    requestId,
    time,
    route,
    method,
    host,
    path,
    clientAddress,
    ...(identity === undefined ? {} : { identity }),
    requestHeadersDigest,
    requestBodyDigest,
    requestBodyLength,
    ...(clientSignature === undefined ? {} : { clientSignature }),
    status,
    responseHeadersDigest,
    responseBodyDigest,
    responseBodyLength,
    durationMicros,
    ...(cageError === undefined ? {} : { cageError }),
    ...(originSignature === undefined ? {} : { originSignature }),
    ...(decision === undefined ? {} : { decision }),
    ...(flags & FLAG_INCOMPLETE ? { incomplete: true } : {}),
  };
}

// ---------------------------------------------------------------------------------------------
// Headers digest and the origin-signature message.

const NAME_FORBIDDEN_RE = /[:\r\n]/;
const VALUE_FORBIDDEN_RE = /[\r\n]/;

/**
 * SHA-256 over the header fields in received order, each as the UTF-8 of
 * `lowercase(name) ": " value "\n"` (no other normalization; repeated fields stay separate).
 * No fields: SHA-256 of the empty string. Accepts a flat [name, value, name, value, …] list (the
 * gateway's form) or [name, value] pairs. Names with ':' CR or LF, values with CR or LF are
 * refused (AUDIT_BAD_RECORD), since they would make the encoding ambiguous.
 */
export function digestHeaders(headers: readonly string[] | Iterable<readonly [string, string]>): Buffer {
  let s = '';
  if (Array.isArray(headers) && (headers.length === 0 || typeof headers[0] === 'string')) {
    const flat = headers as readonly string[];
    if (flat.length % 2 !== 0) throw bad('flat header list has an odd length');
    for (let i = 0; i < flat.length; i += 2) s += headerLine(flat[i]!, flat[i + 1]!);
  } else {
    for (const [name, value] of headers as Iterable<readonly [string, string]>) s += headerLine(name, value);
  }
  return hash('sha256', s, 'buffer');
}

function headerLine(name: string, value: string): string {
  if (typeof name !== 'string' || typeof value !== 'string' || NAME_FORBIDDEN_RE.test(name) || VALUE_FORBIDDEN_RE.test(value)) {
    throw bad('header names must not contain ":" CR or LF, nor values CR or LF');
  }
  return name.toLowerCase() + ': ' + value + '\n';
}

/** Domain separator of the Cage-Origin-Signature message. */
export const ORIGIN_SIGNATURE_DOMAIN = 'cage-origin-signature/v1\n';
const ORIGIN_DOMAIN_BYTES = Buffer.from(ORIGIN_SIGNATURE_DOMAIN, 'ascii');

/**
 * The bytes an app signs with Ed25519 for a Cage-Origin-Signature:
 * "cage-origin-signature/v1\n" ‖ uint16be(len(requestId)) ‖ requestId (UTF-8) ‖ uint16be(status) ‖ responseBodyDigest (32).
 */
export function originSignatureMessage(requestId: string, status: number, responseBodyDigest: Uint8Array): Buffer {
  if (typeof requestId !== 'string' || !isWellFormedString(requestId)) throw bad('requestId is not a well-formed string');
  const n = Buffer.byteLength(requestId, 'utf8');
  if (n > RECORD_LIMITS.requestId) throw bad(`requestId is ${n} bytes, more than ${RECORD_LIMITS.requestId}`);
  if (!Number.isInteger(status) || status < 0 || status > MAX_STATUS) throw bad(`status ${String(status)} is not in [0, ${MAX_STATUS}]`);
  checkBytes(responseBodyDigest, DIGEST_SIZE, 'responseBodyDigest');
  const d = ORIGIN_DOMAIN_BYTES.length;
  const out = Buffer.allocUnsafe(d + 2 + n + 2 + DIGEST_SIZE);
  ORIGIN_DOMAIN_BYTES.copy(out, 0);
  out.writeUInt16BE(n, d);
  out.write(requestId, d + 2, n, 'utf8');
  out.writeUInt16BE(status, d + 2 + n);
  out.set(responseBodyDigest, d + 4 + n);
  return out;
}

/** Verifies an app's Ed25519 origin signature with its (once-imported) public key. */
export function verifyOriginSignature(publicKey: KeyObject, requestId: string, status: number, responseBodyDigest: Uint8Array, signature: Uint8Array): boolean {
  if (signature.length !== ORIGIN_SIGNATURE_SIZE) return false;
  try {
    return edVerify(null, originSignatureMessage(requestId, status, responseBodyDigest), publicKey, signature);
  } catch {
    return false;
  }
}

/** A record as plain JSON values (digests and signatures as hex), for the admin API and `cage audit show --json`. */
export function recordToJson(r: AuditRecord): unknown {
  const hexify = (v: unknown): unknown =>
    v instanceof Uint8Array
      ? Buffer.from(v).toString('hex')
      : Array.isArray(v)
        ? v.map(hexify)
        : typeof v === 'object' && v !== null
          ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, hexify(x)]))
          : v;
  return hexify(r);
}
