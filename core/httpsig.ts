/**
 * HTTP Message Signatures (RFC 9421) for requests, Ed25519 only: parsing `Signature-Input` and
 * `Signature` (RFC 8941 dictionaries), building the signature base (§2.5) and signing/verifying
 * with node:crypto. Pure: the caller supplies the request's parts, the key and the clock, and
 * decides policy (which components must be covered, time windows, nonces) in gateway/identity.
 *
 * Both headers are attacker-controlled: the parser is bounded (length, members, components,
 * parameters) and never throws anything but a CageError with an IDENTITY_* code.
 */
import { createPublicKey, sign as edSign, verify as edVerify, type KeyObject } from 'node:crypto';
import { CageError } from './errors.js';

/** Largest Signature-Input / Signature field value parsed. */
export const MAX_SIGNATURE_FIELD = 8192;
const MAX_MEMBERS = 8;
const MAX_COMPONENTS = 32;
const MAX_PARAMS = 8;

export type BareItem = string | number | boolean | Uint8Array | { token: string };
export interface Item {
  value: BareItem;
  params: Map<string, BareItem>;
}
export interface InnerList {
  items: Item[];
  params: Map<string, BareItem>;
}

function malformed(message: string): CageError {
  return new CageError({ code: 'IDENTITY_SIGNATURE_MALFORMED', message });
}

// ---- RFC 8941 parsing (§4.2), the subset these two fields use --------------------------------

class Parser {
  i = 0;
  constructor(readonly s: string) {}
  peek(): string {
    return this.s[this.i] ?? '';
  }
  skipSp(): void {
    while (this.s[this.i] === ' ') this.i++;
  }
  skipOws(): void {
    while (this.s[this.i] === ' ' || this.s[this.i] === '\t') this.i++;
  }
  key(): string {
    const start = this.i;
    const c = this.peek();
    if (!(c >= 'a' && c <= 'z') && c !== '*') throw malformed(`a dictionary key must start with a lower-case letter at ${this.i}`);
    while (/[a-z0-9_\-.*]/.test(this.peek()) && this.i < this.s.length) this.i++;
    return this.s.slice(start, this.i);
  }
  bareItem(): BareItem {
    const c = this.peek();
    if (c === '"') return this.string();
    if (c === ':') return this.bytes();
    if (c === '?') {
      this.i++;
      const b = this.peek();
      if (b !== '0' && b !== '1') throw malformed('a boolean is ?0 or ?1');
      this.i++;
      return b === '1';
    }
    if (c === '-' || (c >= '0' && c <= '9')) return this.integer();
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c === '*') {
      const start = this.i;
      while (/[A-Za-z0-9!#$%&'*+\-.^_`|~:/]/.test(this.peek()) && this.i < this.s.length) this.i++;
      return { token: this.s.slice(start, this.i) };
    }
    throw malformed(`unexpected ${JSON.stringify(c)} at ${this.i}`);
  }
  string(): string {
    this.i++; // "
    let out = '';
    for (;;) {
      if (this.i >= this.s.length) throw malformed('unterminated string');
      const c = this.s[this.i++]!;
      if (c === '\\') {
        const n = this.s[this.i++];
        if (n !== '"' && n !== '\\') throw malformed('bad escape in a string');
        out += n;
      } else if (c === '"') {
        return out;
      } else {
        const code = c.charCodeAt(0);
        if (code < 0x20 || code > 0x7e) throw malformed('non-printable character in a string');
        out += c;
      }
    }
  }
  bytes(): Uint8Array {
    this.i++; // :
    const end = this.s.indexOf(':', this.i);
    if (end < 0) throw malformed('unterminated byte sequence');
    const b64 = this.s.slice(this.i, end);
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64)) throw malformed('a byte sequence must be base64');
    this.i = end + 1;
    return Buffer.from(b64, 'base64');
  }
  integer(): number {
    const m = /^-?\d{1,15}/.exec(this.s.slice(this.i, this.i + 16));
    if (m === null) throw malformed('bad integer');
    if (this.s[this.i + m[0].length] === '.') throw malformed('decimals are not used here');
    this.i += m[0].length;
    return Number(m[0]);
  }
  params(): Map<string, BareItem> {
    const params = new Map<string, BareItem>();
    while (this.peek() === ';') {
      this.i++;
      this.skipSp();
      const k = this.key();
      let v: BareItem = true;
      if (this.peek() === '=') {
        this.i++;
        v = this.bareItem();
      }
      if (params.size >= MAX_PARAMS && !params.has(k)) throw malformed('too many parameters');
      params.set(k, v);
    }
    return params;
  }
  innerList(): InnerList {
    this.i++; // (
    const items: Item[] = [];
    for (;;) {
      this.skipSp();
      if (this.peek() === ')') {
        this.i++;
        return { items, params: this.params() };
      }
      if (items.length >= MAX_COMPONENTS) throw malformed(`more than ${MAX_COMPONENTS} covered components`);
      const value = this.bareItem();
      items.push({ value, params: this.params() });
      const c = this.peek();
      if (c !== ' ' && c !== ')') throw malformed(`expected a space or ")" at ${this.i}`);
    }
  }
}

/** Parses an sf-dictionary (RFC 8941 §4.2.2) whose members are items or inner lists. */
export function parseDictionary(field: string): Map<string, Item | InnerList> {
  if (typeof field !== 'string' || field.length > MAX_SIGNATURE_FIELD) throw malformed(`a signature field is at most ${MAX_SIGNATURE_FIELD} characters`);
  const p = new Parser(field);
  const out = new Map<string, Item | InnerList>();
  p.skipSp();
  while (p.i < field.length) {
    const k = p.key();
    let member: Item | InnerList;
    if (p.peek() === '=') {
      p.i++;
      if (p.peek() === '(') member = p.innerList();
      else member = { value: p.bareItem(), params: p.params() };
    } else {
      member = { value: true, params: p.params() };
    }
    if (out.size >= MAX_MEMBERS && !out.has(k)) throw malformed(`more than ${MAX_MEMBERS} signatures`);
    out.set(k, member);
    p.skipOws();
    if (p.i >= field.length) break;
    if (p.peek() !== ',') throw malformed(`expected "," at ${p.i}`);
    p.i++;
    p.skipOws();
    if (p.i >= field.length) throw malformed('trailing comma');
  }
  return out;
}

// ---- RFC 8941 serialization (§4.1), for @signature-params ------------------------------------

function serializeBare(v: BareItem): string {
  if (typeof v === 'string') return `"${v.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
  if (typeof v === 'number') return String(v);
  if (typeof v === 'boolean') return v ? '?1' : '?0';
  if (v instanceof Uint8Array) return `:${Buffer.from(v).toString('base64')}:`;
  return v.token;
}

function serializeParams(params: Map<string, BareItem>): string {
  let out = '';
  for (const [k, v] of params) out += v === true ? `;${k}` : `;${k}=${serializeBare(v)}`;
  return out;
}

/** The serialization of a signature's inner list: the value of `@signature-params`. */
export function serializeInnerList(list: InnerList): string {
  return `(${list.items.map((it) => serializeBare(it.value) + serializeParams(it.params)).join(' ')})${serializeParams(list.params)}`;
}

// ---- the signature base (§2.5) ---------------------------------------------------------------

/** The request as the signer saw it. `headers` is a flat [name, value, …] list, names lower-case. */
export interface SignedRequest {
  method: string;
  /** `http` or `https`. */
  scheme: string;
  /** The Host (authority). */
  authority: string;
  /** Path and query as sent (`/foo?x=1`). */
  target: string;
  headers: readonly string[];
}

export interface SignatureParams {
  label: string;
  components: string[];
  created: number | undefined;
  expires: number | undefined;
  nonce: string | undefined;
  alg: string | undefined;
  keyid: string | undefined;
  tag: string | undefined;
  /** The serialized inner list (the `@signature-params` value). */
  serialized: string;
}

function fieldValue(headers: readonly string[], name: string): string | undefined {
  let out: string | undefined;
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i] !== name) continue;
    const v = headers[i + 1]!.trim();
    out = out === undefined ? v : `${out}, ${v}`;
  }
  return out;
}

function normalizedAuthority(authority: string, scheme: string): string {
  const a = authority.toLowerCase();
  if (scheme === 'http' && a.endsWith(':80')) return a.slice(0, -3);
  if (scheme === 'https' && a.endsWith(':443')) return a.slice(0, -4);
  return a;
}

/** The value of one covered component (§2.1, §2.2), or a CageError when it cannot be built. */
export function componentValue(req: SignedRequest, name: string): string {
  const q = req.target.indexOf('?');
  switch (name) {
    case '@method':
      return req.method;
    case '@target-uri':
      return `${req.scheme.toLowerCase()}://${normalizedAuthority(req.authority, req.scheme)}${req.target}`;
    case '@authority':
      return normalizedAuthority(req.authority, req.scheme);
    case '@scheme':
      return req.scheme.toLowerCase();
    case '@request-target':
      return req.target;
    case '@path':
      return q < 0 ? req.target : req.target.slice(0, q) || '/';
    case '@query':
      return q < 0 ? '?' : req.target.slice(q);
    default: {
      if (name.startsWith('@')) throw new CageError({ code: 'IDENTITY_SIGNATURE_MALFORMED', message: `derived component ${name} is not supported on requests` });
      if (name !== name.toLowerCase()) throw malformed(`component ${JSON.stringify(name)} must be lower-case`);
      const v = fieldValue(req.headers, name);
      if (v === undefined) throw new CageError({ code: 'IDENTITY_BAD_SIGNATURE', message: `covered field ${name} is not in the request` });
      return v;
    }
  }
}

/** §2.5: one line per covered component, then `"@signature-params": …`. */
export function signatureBase(req: SignedRequest, params: Pick<SignatureParams, 'components' | 'serialized'>): string {
  let base = '';
  const seen = new Set<string>();
  for (const c of params.components) {
    if (seen.has(c)) throw malformed(`component ${c} is covered twice`);
    seen.add(c);
    const v = componentValue(req, c);
    if (/[\r\n]/.test(v)) throw malformed(`component ${c} holds a line break`);
    base += `"${c}": ${v}\n`;
  }
  return `${base}"@signature-params": ${params.serialized}`;
}

function paramString(params: Map<string, BareItem>, k: string): string | undefined {
  const v = params.get(k);
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw malformed(`signature parameter ${k} must be a string`);
  return v;
}

function paramInt(params: Map<string, BareItem>, k: string): number | undefined {
  const v = params.get(k);
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v)) throw malformed(`signature parameter ${k} must be an integer`);
  return v;
}

/** Every signature in a request: its parameters from Signature-Input and its bytes from Signature. */
export function parseSignatures(signatureInput: string, signature: string): Array<{ params: SignatureParams; signature: Uint8Array }> {
  const inputs = parseDictionary(signatureInput);
  const sigs = parseDictionary(signature);
  const out: Array<{ params: SignatureParams; signature: Uint8Array }> = [];
  for (const [label, member] of inputs) {
    if (!('items' in member)) throw malformed(`Signature-Input ${label} must be an inner list`);
    const sig = sigs.get(label);
    if (sig === undefined) continue;
    if ('items' in sig || !(sig.value instanceof Uint8Array)) throw malformed(`Signature ${label} must be a byte sequence`);
    const components = member.items.map((it) => {
      if (typeof it.value !== 'string') throw malformed('covered components are strings');
      if (it.params.size > 0) throw malformed(`component parameters (${[...it.params.keys()].join(', ')}) are not supported`);
      return it.value;
    });
    for (const k of member.params.keys()) if (!['created', 'expires', 'nonce', 'alg', 'keyid', 'tag'].includes(k)) throw malformed(`unknown signature parameter ${k}`);
    out.push({
      params: {
        label,
        components,
        created: paramInt(member.params, 'created'),
        expires: paramInt(member.params, 'expires'),
        nonce: paramString(member.params, 'nonce'),
        alg: paramString(member.params, 'alg'),
        keyid: paramString(member.params, 'keyid'),
        tag: paramString(member.params, 'tag'),
        serialized: serializeInnerList(member),
      },
      signature: sig.value,
    });
  }
  if (out.length === 0) throw malformed('no signature in Signature matches a label in Signature-Input');
  return out;
}

const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** A node:crypto public key from a raw 32-byte Ed25519 key. */
export function ed25519PublicKey(raw: Uint8Array): KeyObject {
  return createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
}

/** Verifies an Ed25519 signature over the signature base. */
export function verifyEd25519Base(base: string, signature: Uint8Array, key: KeyObject): boolean {
  if (signature.length !== 64) return false;
  return edVerify(null, Buffer.from(base, 'utf8'), key, signature);
}

export interface SignOptions {
  label?: string;
  components: string[];
  created: number;
  expires?: number;
  nonce?: string;
  keyid: string;
  /** Include `alg="ed25519"` (optional in RFC 9421). */
  alg?: boolean;
  tag?: string;
}

/** Signs a request: returns the `Signature-Input` and `Signature` field values. */
export function signRequestEd25519(req: SignedRequest, privateKey: KeyObject, opts: SignOptions): { signatureInput: string; signature: string } {
  const label = opts.label ?? 'sig1';
  const params = new Map<string, BareItem>([['created', opts.created]]);
  if (opts.expires !== undefined) params.set('expires', opts.expires);
  if (opts.nonce !== undefined) params.set('nonce', opts.nonce);
  if (opts.alg === true) params.set('alg', 'ed25519');
  params.set('keyid', opts.keyid);
  if (opts.tag !== undefined) params.set('tag', opts.tag);
  const serialized = serializeInnerList({ items: opts.components.map((c) => ({ value: c, params: new Map() })), params });
  const base = signatureBase(req, { components: opts.components, serialized });
  const sig = edSign(null, Buffer.from(base, 'utf8'), privateKey);
  return { signatureInput: `${label}=${serialized}`, signature: `${label}=:${sig.toString('base64')}:` };
}

// ---- Content-Digest (RFC 9530) ----------------------------------------------------------------

const DIGEST_ALGS: Record<string, 'sha256' | 'sha512'> = { 'sha-256': 'sha256', 'sha-512': 'sha512' };

/**
 * Checks a `Content-Digest` field against the body: every sha-256 / sha-512 digest it carries
 * must match, and at least one must be there (other algorithms are ignored, RFC 9530 §2).
 * Throws IDENTITY_BAD_DIGEST.
 */
export function checkContentDigest(field: string, body: Uint8Array, hash: (alg: 'sha256' | 'sha512', data: Uint8Array) => Buffer): void {
  let dict: Map<string, Item | InnerList>;
  try {
    dict = parseDictionary(field);
  } catch (err) {
    throw new CageError({ code: 'IDENTITY_BAD_DIGEST', message: `Content-Digest is malformed: ${(err as Error).message}`, cause: err });
  }
  let checked = 0;
  for (const [alg, member] of dict) {
    const a = DIGEST_ALGS[alg];
    if (a === undefined) continue;
    if ('items' in member || !(member.value instanceof Uint8Array)) throw new CageError({ code: 'IDENTITY_BAD_DIGEST', message: `Content-Digest ${alg} must be a byte sequence` });
    if (!hash(a, body).equals(Buffer.from(member.value))) throw new CageError({ code: 'IDENTITY_BAD_DIGEST', message: `Content-Digest ${alg} does not match the body` });
    checked++;
  }
  if (checked === 0) throw new CageError({ code: 'IDENTITY_BAD_DIGEST', message: 'Content-Digest carries no sha-256 or sha-512 digest' });
}

/** A `Content-Digest` field value for a body (sha-256). */
export function contentDigest(body: Uint8Array, hash: (alg: 'sha256', data: Uint8Array) => Buffer): string {
  return `sha-256=:${hash('sha256', body).toString('base64')}:`;
}
