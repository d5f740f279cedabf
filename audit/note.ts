/**
 * C2SP signed notes (https://c2sp.org/signed-note): parsing and formatting notes, verifier and
 * signer key strings in the form of Go's golang.org/x/mod/sumdb/note, Ed25519 signatures (type
 * 0x01) and timestamped Ed25519 cosignatures v1 (type 0x04, https://c2sp.org/tlog-cosignature).
 *
 * Trust: note text and signature lines are attacker-controlled and parsed strictly (UTF-8, no
 * control characters but newline, size and signature-count limits, canonical base64). Verifier
 * keys are configuration: trusted once parsed, and only they decide which signatures count.
 * Signatures from unknown keys are ignored; a failing signature from a known key rejects the note.
 */
import { createPrivateKey, createPublicKey, hash, randomBytes, sign as edSign, verify as edVerify, type KeyObject } from 'node:crypto';
import { CageError, type CageErrorCode } from '../core/errors.js';

/** signed-note §Signature types: Ed25519 over the note text. */
export const SIG_TYPE_ED25519 = 0x01;
/** signed-note §Signature types / tlog-cosignature: timestamped Ed25519 witness cosignature. */
export const SIG_TYPE_COSIGNATURE_V1 = 0x04;
/** Signature lines a note may carry (the spec asks for at least 16; Go's sumdb/note caps at 100). */
export const MAX_NOTE_SIGNATURES = 100;
/** Largest note accepted, in bytes (room for 100 post-quantum signatures of ~5 kB). */
export const MAX_NOTE_BYTES = 1024 * 1024;
/** Signature line prefix: em dash (U+2014) and a space. */
export const SIGNATURE_PREFIX = '\u2014 ';

const ED25519_SIZE = 32;
const ED25519_SIG_SIZE = 64;
const COSIGNATURE_SIZE = 8 + ED25519_SIG_SIZE;
const MAX_TIMESTAMP = (1n << 63n) - 1n;
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

function fail(code: CageErrorCode, message: string): CageError {
  return new CageError({ code, message });
}

// ---------------------------------------------------------------------------------------------
// Encodings shared by the audit formats (standard base64 of RFC 4648 §4, as the C2SP specs use).

const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Strict standard base64: padded, no whitespace, canonical (unused bits zero). Undefined if not. */
export function decodeBase64(s: string): Buffer | undefined {
  if (!BASE64_RE.test(s)) return undefined;
  const b = Buffer.from(s, 'base64');
  return b.toString('base64') === s ? b : undefined;
}

export function encodeBase64(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');
}

const LONE_SURROGATE_RE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

type MaybeWellFormed = { isWellFormed?: () => boolean };
const NATIVE_WELL_FORMED = typeof (String.prototype as MaybeWellFormed).isWellFormed === 'function';

/** True when `s` has no unpaired surrogate, i.e. it encodes to UTF-8 and back unchanged. */
export function isWellFormedString(s: string): boolean {
  return NATIVE_WELL_FORMED ? (s as unknown as Required<MaybeWellFormed>).isWellFormed() : !LONE_SURROGATE_RE.test(s);
}

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Decodes UTF-8 strictly; undefined when the bytes are not valid UTF-8. */
export function decodeUtf8(b: Uint8Array): string | undefined {
  try {
    return UTF8.decode(b);
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Key names, key IDs and key strings.

const WHITE_SPACE_RE = /\p{White_Space}/u;

/** signed-note §Format: key names are non-empty, without Unicode spaces or '+'. */
export function isValidKeyName(name: string): boolean {
  return name.length > 0 && !WHITE_SPACE_RE.test(name) && !name.includes('+') && isWellFormedString(name);
}

/** Key ID = SHA-256(key name ‖ 0x0A ‖ signature type ‖ public key)[:4], as a uint32. */
export function computeKeyId(name: string, type: number, publicKey: Uint8Array): number {
  const h = hash('sha256', Buffer.concat([Buffer.from(name + '\n', 'utf8'), Buffer.from([type]), publicKey]), 'buffer');
  return h.readUInt32BE(0);
}

/** The 8 lowercase hex digits of a key ID. */
export function formatKeyId(keyId: number): string {
  return keyId.toString(16).padStart(8, '0');
}

/** Verifies signatures of one key. `verify` answers for the note text (for cosignatures it rebuilds the signed message). */
export interface NoteVerifier {
  readonly name: string;
  readonly keyId: number;
  readonly type: number;
  /** The raw public key (32 bytes for both supported types). */
  readonly publicKey: Buffer;
  /** `<name>+<hex key ID>+<base64(type ‖ public key)>` */
  readonly verifierKey: string;
  verify(text: Uint8Array, signature: Uint8Array): boolean;
}

/** Signs note texts with one key; `sign` returns the signature bytes after the key ID. */
export interface NoteSigner {
  readonly name: string;
  readonly keyId: number;
  readonly type: number;
  readonly verifier: NoteVerifier;
  sign(text: Uint8Array): Buffer;
}

function importPublicKey(raw: Uint8Array): KeyObject {
  return createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, raw]), format: 'der', type: 'spki' });
}

function importSeed(seed: Uint8Array): { privateKey: KeyObject; publicKey: Buffer } {
  const privateKey = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: 'der', type: 'pkcs8' });
  const spki = createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
  return { privateKey, publicKey: Buffer.from(spki.subarray(SPKI_ED25519_PREFIX.length)) };
}

function ed25519Verify(key: KeyObject, message: Uint8Array, sig: Uint8Array): boolean {
  if (sig.length !== ED25519_SIG_SIZE) return false;
  try {
    return edVerify(null, message, key, sig);
  } catch {
    return false;
  }
}

/** `cosignature/v1\ntime <timestamp>\n` followed by the note text: the message a v1 cosignature signs. */
export function cosignatureMessage(text: Uint8Array, timestamp: number | bigint): Buffer {
  return Buffer.concat([Buffer.from(`cosignature/v1\ntime ${BigInt(timestamp).toString()}\n`, 'utf8'), text]);
}

/** The timestamp of a v1 cosignature's bytes (8-byte big-endian prefix), or undefined if malformed. */
export function cosignatureTimestamp(signature: Uint8Array): number | undefined {
  if (signature.length !== COSIGNATURE_SIZE) return undefined;
  const t = Buffer.from(signature.buffer, signature.byteOffset, 8).readBigUInt64BE(0);
  return t > MAX_TIMESTAMP ? undefined : Number(t);
}

function makeVerifier(name: string, type: number, publicKey: Buffer): NoteVerifier {
  const key = importPublicKey(publicKey);
  const keyId = computeKeyId(name, type, publicKey);
  const verifierKey = `${name}+${formatKeyId(keyId)}+${encodeBase64(Buffer.concat([Buffer.from([type]), publicKey]))}`;
  const verify =
    type === SIG_TYPE_ED25519
      ? (text: Uint8Array, sig: Uint8Array) => ed25519Verify(key, text, sig)
      : (text: Uint8Array, sig: Uint8Array) => {
          if (sig.length !== COSIGNATURE_SIZE) return false;
          const t = Buffer.from(sig.buffer, sig.byteOffset, 8).readBigUInt64BE(0);
          if (t > MAX_TIMESTAMP) return false;
          return ed25519Verify(key, cosignatureMessage(text, t), sig.subarray(8));
        };
  return Object.freeze({ name, keyId, type, publicKey, verifierKey, verify });
}

function checkType(type: number): void {
  if (type !== SIG_TYPE_ED25519 && type !== SIG_TYPE_COSIGNATURE_V1) {
    throw fail('AUDIT_BAD_KEY', `unsupported signature type 0x${type.toString(16).padStart(2, '0')}`);
  }
}

/** A verifier for a raw Ed25519 public key, as a log key (type 0x01) or a cosigner key (type 0x04). */
export function createVerifier(name: string, publicKey: Uint8Array, type: number = SIG_TYPE_ED25519): NoteVerifier {
  if (!isValidKeyName(name)) throw fail('AUDIT_BAD_KEY', `invalid key name ${JSON.stringify(name)}`);
  checkType(type);
  if (publicKey.length !== ED25519_SIZE) throw fail('AUDIT_BAD_KEY', `Ed25519 public key is ${publicKey.length} bytes, want ${ED25519_SIZE}`);
  return makeVerifier(name, type, Buffer.from(publicKey));
}

const KEY_ID_RE = /^[0-9a-fA-F]{8}$/;

/** Splits at the first n−1 '+' (the base64 key data, last, may itself contain '+'). */
function splitKey(s: string, n: number): string[] | undefined {
  const out: string[] = [];
  let rest = s;
  for (let i = 0; i < n - 1; i++) {
    const p = rest.indexOf('+');
    if (p < 0) return undefined;
    out.push(rest.slice(0, p));
    rest = rest.slice(p + 1);
  }
  out.push(rest);
  return out;
}

// Parsed verifier keys (immutable), so a key string met again reuses its imported KeyObject.
const VERIFIER_CACHE = new Map<string, NoteVerifier>();
const VERIFIER_CACHE_MAX = 1024;

/** Parses a verifier key `<name>+<hex key ID>+<base64(type ‖ public key)>`; throws AUDIT_BAD_KEY. */
export function parseVerifierKey(vkey: string): NoteVerifier {
  if (typeof vkey !== 'string') throw fail('AUDIT_BAD_KEY', 'verifier key is not a string');
  const cached = VERIFIER_CACHE.get(vkey);
  if (cached !== undefined) return cached;
  const v = parseVerifierKeyUncached(vkey);
  if (VERIFIER_CACHE.size >= VERIFIER_CACHE_MAX) VERIFIER_CACHE.clear();
  VERIFIER_CACHE.set(vkey, v);
  return v;
}

function parseVerifierKeyUncached(vkey: string): NoteVerifier {
  const parts = splitKey(vkey, 3);
  if (parts === undefined) throw fail('AUDIT_BAD_KEY', 'verifier key must be <name>+<key ID>+<key>');
  const [name, id, b64] = parts as [string, string, string];
  if (!isValidKeyName(name)) throw fail('AUDIT_BAD_KEY', `invalid key name ${JSON.stringify(name)}`);
  if (!KEY_ID_RE.test(id)) throw fail('AUDIT_BAD_KEY', 'key ID must be 8 hex digits');
  const raw = decodeBase64(b64);
  if (raw === undefined || raw.length < 1) throw fail('AUDIT_BAD_KEY', 'verifier key data is not base64');
  const type = raw[0]!;
  checkType(type);
  const publicKey = raw.subarray(1);
  if (publicKey.length !== ED25519_SIZE) throw fail('AUDIT_BAD_KEY', `Ed25519 public key is ${publicKey.length} bytes, want ${ED25519_SIZE}`);
  if (computeKeyId(name, type, publicKey) !== Number.parseInt(id, 16)) throw fail('AUDIT_BAD_KEY', `key ID ${id} does not match the key`);
  return makeVerifier(name, type, Buffer.from(publicKey));
}

function makeEd25519Signer(name: string, seed: Uint8Array): NoteSigner {
  const { privateKey, publicKey } = importSeed(seed);
  const verifier = makeVerifier(name, SIG_TYPE_ED25519, publicKey);
  return Object.freeze({
    name,
    keyId: verifier.keyId,
    type: SIG_TYPE_ED25519,
    verifier,
    sign: (text: Uint8Array) => edSign(null, text, privateKey),
  });
}

/** `PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 ‖ seed)>`, as Go's sumdb/note writes signer keys. */
export function formatSignerKey(name: string, seed: Uint8Array): string {
  if (!isValidKeyName(name)) throw fail('AUDIT_BAD_KEY', `invalid key name ${JSON.stringify(name)}`);
  if (seed.length !== ED25519_SIZE) throw fail('AUDIT_BAD_KEY', `Ed25519 seed is ${seed.length} bytes, want ${ED25519_SIZE}`);
  const { publicKey } = importSeed(seed);
  const keyId = computeKeyId(name, SIG_TYPE_ED25519, publicKey);
  return `PRIVATE+KEY+${name}+${formatKeyId(keyId)}+${encodeBase64(Buffer.concat([Buffer.from([SIG_TYPE_ED25519]), seed]))}`;
}

/** Parses a signer key (Ed25519 only, like Go's sumdb/note); the key ID must match the derived public key. */
export function parseSignerKey(skey: string): NoteSigner {
  if (typeof skey !== 'string') throw fail('AUDIT_BAD_KEY', 'signer key is not a string');
  const parts = splitKey(skey, 5);
  if (parts === undefined || parts[0] !== 'PRIVATE' || parts[1] !== 'KEY') {
    throw fail('AUDIT_BAD_KEY', 'signer key must be PRIVATE+KEY+<name>+<key ID>+<key>');
  }
  const [, , name, id, b64] = parts as [string, string, string, string, string];
  if (!isValidKeyName(name)) throw fail('AUDIT_BAD_KEY', `invalid key name ${JSON.stringify(name)}`);
  if (!KEY_ID_RE.test(id)) throw fail('AUDIT_BAD_KEY', 'key ID must be 8 hex digits');
  const raw = decodeBase64(b64);
  if (raw === undefined || raw.length < 1) throw fail('AUDIT_BAD_KEY', 'signer key data is not base64');
  if (raw[0] !== SIG_TYPE_ED25519) throw fail('AUDIT_BAD_KEY', `unsupported signer key type 0x${raw[0]!.toString(16).padStart(2, '0')}`);
  const seed = raw.subarray(1);
  if (seed.length !== ED25519_SIZE) throw fail('AUDIT_BAD_KEY', `Ed25519 seed is ${seed.length} bytes, want ${ED25519_SIZE}`);
  const signer = makeEd25519Signer(name, seed);
  if (signer.keyId !== Number.parseInt(id, 16)) throw fail('AUDIT_BAD_KEY', `key ID ${id} does not match the key`);
  return signer;
}

/** A new Ed25519 key: its signer, signer key string (secret) and verifier key string. `seed` is for tests. */
export function generateSigner(name: string, seed: Uint8Array = randomBytes(ED25519_SIZE)): { signer: NoteSigner; signerKey: string; verifierKey: string } {
  const signerKey = formatSignerKey(name, seed);
  const signer = makeEd25519Signer(name, seed);
  return { signer, signerKey, verifierKey: signer.verifier.verifierKey };
}

/**
 * A v1 cosigner (type 0x04) from an Ed25519 signer key string. `clock` returns the current UNIX
 * time in seconds (injected so the core stays free of ambient time).
 */
export function createCosigner(signerKey: string, clock: () => number): NoteSigner {
  const base = parseSignerKey(signerKey);
  const seed = decodeBase64(splitKey(signerKey, 5)![4]!)!.subarray(1);
  const { privateKey, publicKey } = importSeed(seed);
  const verifier = makeVerifier(base.name, SIG_TYPE_COSIGNATURE_V1, publicKey);
  return Object.freeze({
    name: base.name,
    keyId: verifier.keyId,
    type: SIG_TYPE_COSIGNATURE_V1,
    verifier,
    sign: (text: Uint8Array) => {
      const t = clock();
      if (!Number.isSafeInteger(t) || t < 0) throw fail('AUDIT_BAD_SIGNATURE', `cosigner clock returned ${String(t)}, not a UNIX time in seconds`);
      const out = Buffer.alloc(COSIGNATURE_SIZE);
      out.writeBigUInt64BE(BigInt(t), 0);
      edSign(null, cosignatureMessage(text, t), privateKey).copy(out, 8);
      return out;
    },
  });
}

// ---------------------------------------------------------------------------------------------
// Notes.

/** One signature line: `— <name> base64(key ID ‖ signature)`. */
export interface NoteSignature {
  readonly name: string;
  readonly keyId: number;
  /** The signature bytes after the 4-byte key ID. */
  readonly signature: Buffer;
  /** The line's base64 text, as found. */
  readonly base64: string;
}

export interface Note {
  /** The note text, ending in a newline (what signatures cover). */
  readonly text: string;
  readonly signatures: readonly NoteSignature[];
}

export interface VerifiedSignature extends NoteSignature {
  readonly verifier: NoteVerifier;
  /** For cosignatures (type 0x04): the cosigner's UNIX timestamp in seconds. */
  readonly timestamp?: number;
}

export interface OpenedNote extends Note {
  /** Signatures from known keys, all verified (duplicates of one key listed once). */
  readonly verified: readonly VerifiedSignature[];
  /** Signatures from unknown keys, unverified (identical lines listed once). */
  readonly unverified: readonly NoteSignature[];
}

function badNote(message: string): CageError {
  return fail('AUDIT_BAD_NOTE', message);
}

// Any ASCII control character other than newline (signed-note §Format).
// eslint-disable-next-line no-control-regex -- matching the control characters the spec forbids
const CONTROL_RE = /[\0-\x09\x0b-\x1f]/;

/** Checks note text rules (UTF-8, control characters, trailing newline); returns its UTF-8 bytes. */
function checkText(text: string, what: string): Buffer {
  if (!isWellFormedString(text)) throw badNote(`${what} is not valid UTF-8`);
  if (CONTROL_RE.test(text)) throw badNote(`${what} contains an ASCII control character other than newline`);
  if (!text.endsWith('\n')) throw badNote(`${what} does not end with a newline`);
  return Buffer.from(text, 'utf8');
}

function toNoteString(input: string | Uint8Array): string {
  if (typeof input === 'string') {
    if (input.length > MAX_NOTE_BYTES || Buffer.byteLength(input, 'utf8') > MAX_NOTE_BYTES) throw badNote(`note is larger than ${MAX_NOTE_BYTES} bytes`);
    if (!isWellFormedString(input)) throw badNote('note is not valid UTF-8');
    return input;
  }
  if (!(input instanceof Uint8Array)) throw badNote('note is neither text nor bytes');
  if (input.length > MAX_NOTE_BYTES) throw badNote(`note is larger than ${MAX_NOTE_BYTES} bytes`);
  const s = decodeUtf8(input);
  if (s === undefined) throw badNote('note is not valid UTF-8');
  return s;
}

/** Parses one signature line (without its newline). */
export function parseSignatureLine(line: string): NoteSignature {
  if (!line.startsWith(SIGNATURE_PREFIX)) throw badNote('signature line does not start with an em dash and a space');
  const rest = line.slice(SIGNATURE_PREFIX.length);
  const sp = rest.indexOf(' ');
  if (sp < 0) throw badNote('signature line has no space between key name and signature');
  const name = rest.slice(0, sp);
  const b64 = rest.slice(sp + 1);
  if (!isValidKeyName(name)) throw badNote(`signature line has an invalid key name ${JSON.stringify(name)}`);
  const raw = decodeBase64(b64);
  if (raw === undefined) throw badNote(`signature by ${name} is not canonical base64`);
  if (raw.length < 5) throw badNote(`signature by ${name} is shorter than a key ID and one byte`);
  return Object.freeze({ name, keyId: raw.readUInt32BE(0), signature: raw.subarray(4), base64: b64 });
}

/**
 * Parses a signed note without verifying it: the text (up to and including the newline before
 * the last blank line) and its signature lines. Throws AUDIT_BAD_NOTE.
 */
export function parseNote(input: string | Uint8Array): Note {
  const msg = toNoteString(input);
  if (CONTROL_RE.test(msg)) throw badNote('note contains an ASCII control character other than newline');
  const split = msg.lastIndexOf('\n\n');
  if (split < 0) throw badNote('note has no blank line before its signatures');
  const text = msg.slice(0, split + 1);
  const sigBlock = msg.slice(split + 2);
  if (sigBlock.length === 0) throw badNote('note has no signature lines');
  if (!sigBlock.endsWith('\n')) throw badNote('the last signature line does not end with a newline');
  const lines = sigBlock.slice(0, -1).split('\n');
  if (lines.length > MAX_NOTE_SIGNATURES) throw badNote(`note has ${lines.length} signature lines, more than ${MAX_NOTE_SIGNATURES}`);
  return Object.freeze({ text, signatures: Object.freeze(lines.map(parseSignatureLine)) });
}

function formatSignatureLine(s: { name: string; base64: string }): string {
  return `${SIGNATURE_PREFIX}${s.name} ${s.base64}\n`;
}

/** Formats a note: text, blank line, one line per signature. */
export function formatNote(note: Note): string {
  checkText(note.text, 'note text');
  if (note.signatures.length === 0) throw badNote('a note needs at least one signature');
  if (note.signatures.length > MAX_NOTE_SIGNATURES) throw badNote(`note has more than ${MAX_NOTE_SIGNATURES} signatures`);
  let out = note.text + '\n';
  for (const s of note.signatures) {
    if (!isValidKeyName(s.name)) throw badNote(`invalid key name ${JSON.stringify(s.name)}`);
    const raw = decodeBase64(s.base64);
    if (raw === undefined || raw.length < 5 || raw.readUInt32BE(0) !== s.keyId) throw badNote(`signature by ${s.name} does not match its key ID`);
    out += formatSignatureLine(s);
  }
  if (Buffer.byteLength(out, 'utf8') > MAX_NOTE_BYTES) throw badNote(`note is larger than ${MAX_NOTE_BYTES} bytes`);
  return out;
}

/** Signs `text` with each signer. An existing signature by the same key (name and ID) is replaced; others are kept first. */
export function signNote(text: string, signers: readonly NoteSigner[], existing: readonly NoteSignature[] = []): string {
  const bytes = checkText(text, 'note text');
  const fresh: NoteSignature[] = signers.map((s) => {
    if (!isValidKeyName(s.name)) throw fail('AUDIT_BAD_KEY', `invalid signer name ${JSON.stringify(s.name)}`);
    const id = Buffer.alloc(4);
    id.writeUInt32BE(s.keyId, 0);
    const sig = s.sign(bytes);
    return { name: s.name, keyId: s.keyId, signature: sig, base64: encodeBase64(Buffer.concat([id, sig])) };
  });
  const replaced = new Set(signers.map((s) => `${s.name}+${s.keyId}`));
  const kept = existing.filter((s) => !replaced.has(`${s.name}+${s.keyId}`));
  return formatNote({ text, signatures: [...kept, ...fresh] });
}

/**
 * Parses and verifies a note against known verifiers (signed-note §Signatures): signatures whose
 * (name, key ID) match no verifier are ignored; every signature from a known key is verified and
 * one failure rejects the note; at least one must verify. Throws AUDIT_BAD_NOTE (syntax),
 * AUDIT_BAD_KEY (two different keys share a name and ID) or AUDIT_BAD_SIGNATURE.
 */
export function openNote(input: string | Uint8Array, verifiers: readonly NoteVerifier[]): OpenedNote {
  const note = parseNote(input);
  const known = new Map<string, NoteVerifier>();
  for (const v of verifiers) {
    const k = `${v.name}+${v.keyId}`;
    const prev = known.get(k);
    if (prev !== undefined && (prev.type !== v.type || !prev.publicKey.equals(v.publicKey))) {
      throw fail('AUDIT_BAD_KEY', `ambiguous key ${v.name}+${formatKeyId(v.keyId)}: two verifiers share its name and key ID`);
    }
    known.set(k, v);
  }
  const textBytes = Buffer.from(note.text, 'utf8');
  const verified: VerifiedSignature[] = [];
  const unverified: NoteSignature[] = [];
  const seenKeys = new Set<string>();
  const seenLines = new Set<string>();
  for (const s of note.signatures) {
    const k = `${s.name}+${s.keyId}`;
    const v = known.get(k);
    if (v === undefined) {
      const line = `${s.name} ${s.base64}`;
      if (!seenLines.has(line)) {
        seenLines.add(line);
        unverified.push(s);
      }
      continue;
    }
    if (!v.verify(textBytes, s.signature)) {
      throw fail('AUDIT_BAD_SIGNATURE', `invalid signature for key ${s.name}+${formatKeyId(s.keyId)}`);
    }
    if (seenKeys.has(k)) continue;
    seenKeys.add(k);
    const timestamp = v.type === SIG_TYPE_COSIGNATURE_V1 ? cosignatureTimestamp(s.signature) : undefined;
    verified.push(Object.freeze({ ...s, verifier: v, ...(timestamp === undefined ? {} : { timestamp }) }));
  }
  if (verified.length === 0) throw fail('AUDIT_BAD_SIGNATURE', 'note has no signature from a known key');
  return Object.freeze({ text: note.text, signatures: note.signatures, verified, unverified });
}
