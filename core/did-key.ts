/**
 * did:key for Ed25519 (https://w3c-ccg.github.io/did-key-spec/): multibase base58-btc `z` ‖
 * multicodec varint 0xed ‖ the 32-byte key. Shared by every room that names keys by DID (notaries,
 * request signatures, chain accounts, ZK session keys); did:web and DID documents stay in
 * notary/did.ts. Input DIDs are attacker-controlled: length-limited, exact multicodec and length.
 */
import { parse as parseDidUrl } from 'did-resolver';
import { CageError, type CageErrorCode } from './errors.js';

/** Multicodec `ed25519-pub` (https://github.com/multiformats/multicodec, table.csv). */
export const MULTICODEC_ED25519_PUB = 0xed;
/** Multibase prefix for base58-btc. */
export const MULTIBASE_BASE58BTC = 'z';
export const ED25519_PUBLIC_KEY_SIZE = 32;
/** Longest DID accepted (did:key Ed25519 DIDs are 56 characters; did:web needs room for a path). */
export const MAX_DID_LENGTH = 512;

// did:key spec §Signature Method Creation Algorithm (key lengths) and the multicodec table (names).
const KNOWN_CODECS = new Map<number, string>([
  [0xe7, 'secp256k1-pub'],
  [0xea, 'bls12_381-g1-pub'],
  [0xeb, 'bls12_381-g2-pub'],
  [0xec, 'x25519-pub'],
  [0xed, 'ed25519-pub'],
  [0x1200, 'p256-pub'],
  [0x1201, 'p384-pub'],
  [0x1202, 'p521-pub'],
  [0x1205, 'rsa-pub'],
]);

function fail(code: CageErrorCode, message: string): CageError {
  return new CageError({ code, message });
}

// ---------------------------------------------------------------------------------------------
// base58-btc (the Bitcoin alphabet) and unsigned varints (multiformats/unsigned-varint).

const ALPHABET = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';
const ALPHABET_INDEX = new Map([...ALPHABET].map((c, i) => [c, i]));
const MAX_BASE58_CHARS = 256;

export function encodeBase58btc(bytes: Uint8Array): string {
  let zeros = 0;
  while (zeros < bytes.length && bytes[zeros] === 0) zeros++;
  const digits: number[] = []; // base-58 digits, least significant first
  for (let i = zeros; i < bytes.length; i++) {
    let carry = bytes[i]!;
    for (let j = 0; j < digits.length; j++) {
      carry += digits[j]! * 256;
      digits[j] = carry % 58;
      carry = Math.floor(carry / 58);
    }
    while (carry > 0) {
      digits.push(carry % 58);
      carry = Math.floor(carry / 58);
    }
  }
  let out = '1'.repeat(zeros);
  for (let i = digits.length - 1; i >= 0; i--) out += ALPHABET[digits[i]!];
  return out;
}

/** Decodes base58-btc; undefined for characters outside the alphabet or overlong input. */
export function decodeBase58btc(s: string): Buffer | undefined {
  if (typeof s !== 'string' || s.length > MAX_BASE58_CHARS) return undefined;
  let zeros = 0;
  while (zeros < s.length && s[zeros] === '1') zeros++;
  const bytes: number[] = []; // least significant first
  for (let i = zeros; i < s.length; i++) {
    let carry = ALPHABET_INDEX.get(s[i]!);
    if (carry === undefined) return undefined;
    for (let j = 0; j < bytes.length; j++) {
      carry += bytes[j]! * 58;
      bytes[j] = carry % 256;
      carry = Math.floor(carry / 256);
    }
    while (carry > 0) {
      bytes.push(carry % 256);
      carry = Math.floor(carry / 256);
    }
  }
  return Buffer.from([...new Array<number>(zeros).fill(0), ...bytes.reverse()]);
}

/** Reads a minimal unsigned varint (at most 3 bytes: every key multicodec fits); undefined if malformed. */
function readVarint(b: Uint8Array): { value: number; length: number } | undefined {
  let value = 0;
  for (let i = 0; i < 3 && i < b.length; i++) {
    const byte = b[i]!;
    value += (byte & 0x7f) * 2 ** (7 * i);
    if ((byte & 0x80) === 0) {
      if (i > 0 && byte === 0) return undefined; // not minimal
      return { value, length: i + 1 };
    }
  }
  return undefined;
}

function codecName(code: number): string {
  return KNOWN_CODECS.get(code) ?? `0x${code.toString(16)}`;
}

// ---------------------------------------------------------------------------------------------
// Ed25519 multikeys and did:key.

/** `z` ‖ base58-btc(0xed 0x01 ‖ key): the publicKeyMultibase of an Ed25519 key (and a did:key's tail). */
export function encodeEd25519Multibase(publicKey: Uint8Array): string {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== ED25519_PUBLIC_KEY_SIZE) {
    throw fail('NOTARY_KEY_NOT_ED25519', `an Ed25519 public key is ${ED25519_PUBLIC_KEY_SIZE} bytes`);
  }
  return MULTIBASE_BASE58BTC + encodeBase58btc(Buffer.concat([Buffer.from([MULTICODEC_ED25519_PUB, 0x01]), publicKey]));
}

/**
 * did:key §Decode Public Key Algorithm, restricted to Ed25519: throws NOTARY_BAD_DID (`what` is
 * not multibase base58-btc, or the multicodec header is malformed) or NOTARY_KEY_NOT_ED25519
 * (another key type, or not 32 bytes).
 */
export function decodeEd25519Multibase(value: string, what = 'publicKeyMultibase'): Buffer {
  if (typeof value !== 'string' || !value.startsWith(MULTIBASE_BASE58BTC)) throw fail('NOTARY_BAD_DID', `${what} is not multibase base58-btc (must start with "z")`);
  const raw = decodeBase58btc(value.slice(1));
  if (raw === undefined || raw.length === 0) throw fail('NOTARY_BAD_DID', `${what} is not valid base58-btc`);
  const header = readVarint(raw);
  if (header === undefined) throw fail('NOTARY_BAD_DID', `${what} has a malformed multicodec header`);
  if (header.value !== MULTICODEC_ED25519_PUB) {
    throw fail('NOTARY_KEY_NOT_ED25519', `${what} is a ${codecName(header.value)} key, not ed25519-pub (0xed)`);
  }
  const key = raw.subarray(header.length);
  if (key.length !== ED25519_PUBLIC_KEY_SIZE) {
    throw fail('NOTARY_KEY_NOT_ED25519', `${what} holds a ${key.length}-byte key, an Ed25519 key is ${ED25519_PUBLIC_KEY_SIZE} bytes`);
  }
  return Buffer.from(key);
}

/** The did:key of an Ed25519 public key: `did:key:z6Mk…`. */
export function didKeyFromPublicKey(publicKey: Uint8Array): string {
  return `did:key:${encodeEd25519Multibase(publicKey)}`;
}

/** Splits and checks the syntax shared by both methods (DID Core §3.1); no path, query or fragment. */
export function parseDid(did: string): { method: string; id: string } {
  if (typeof did !== 'string') throw fail('NOTARY_BAD_DID', 'a DID must be a string');
  if (did.length > MAX_DID_LENGTH) throw fail('NOTARY_BAD_DID', `a DID is at most ${MAX_DID_LENGTH} characters`);
  const parsed = parseDidUrl(did);
  if (parsed === null) throw fail('NOTARY_BAD_DID', `${JSON.stringify(did)} is not a DID`);
  if (parsed.didUrl !== parsed.did) throw fail('NOTARY_BAD_DID', `${JSON.stringify(did)} is a DID URL (path, query or fragment), not a DID`);
  return { method: parsed.method, id: parsed.id };
}

/**
 * did:key §Document Creation Algorithm steps 2–3, then the public key: `did:key:<mb>` or
 * `did:key:1:<mb>` (version 1, the only one defined). Throws NOTARY_BAD_DID or NOTARY_KEY_NOT_ED25519.
 */
export function publicKeyFromDidKey(did: string): Buffer {
  const { method, id } = parseDid(did);
  if (method !== 'key') throw fail('NOTARY_BAD_DID', `${JSON.stringify(did)} is not a did:key`);
  const parts = id.split(':');
  if (parts.length > 2 || (parts.length === 2 && parts[0] !== '1')) throw fail('NOTARY_BAD_DID', 'did:key version must be 1');
  return decodeEd25519Multibase(parts[parts.length - 1]!, 'the did:key value');
}

/** The canonical form of an Ed25519 did:key (`did:key:1:z…` → `did:key:z…`); throws like publicKeyFromDidKey. */
export function canonicalDidKey(did: string): string {
  return didKeyFromPublicKey(publicKeyFromDidKey(did));
}
