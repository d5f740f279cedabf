/**
 * The `Cage-ZK-Proof` request header: one Groth16 membership proof and the public values it is
 * for. Encode (client) and decode (cage). Pure.
 *
 * Layout (ASCII, `;`-separated `key=value`, each key exactly once, any order on decode):
 *   v=1                    format version
 *   m=req | m=ses          per-request proof | session-opening proof
 *   g=<group id>           [A-Za-z0-9._-]{1,64}
 *   s=<scope>              [A-Za-z0-9._:/@+-]{1,128}
 *   e=<epoch>              decimal, 0 ≤ e < 2^53, no leading zeros
 *   t=<unix seconds>       m=req only: the timestamp bound into the signal
 *   k=<b64url 32 B>        m=ses only: the Ed25519 session public key bound into the signal
 *   r=<b64url 32 B>        Merkle root, big-endian field element
 *   n=<b64url 32 B>        nullifier, big-endian field element
 *   h=<b64url 32 B>        signal hash the prover used (the cage recomputes it and compares)
 *   p=<b64url 256 B>       proof: A.x A.y B.x0 B.x1 B.y0 B.y1 C.x C.y, each 32 B big-endian < q
 * base64url without padding, canonical (re-encoding gives the same text).
 *
 * Trust: the whole header is attacker-controlled. decode() is bounded (MAX_HEADER_LENGTH), and
 * throws only CageError ZK_BAD_HEADER. Nothing decoded here is trusted: the verifier compares the
 * scope, epoch, root and signal with its own values and builds the public signals itself.
 */
import { CageError } from '../core/errors.js';
import { BN254_BASE_FIELD, bytesToBigint, fieldToBytes, isFieldElement } from './field.js';

export const ZK_PROOF_HEADER = 'cage-zk-proof';
export const ZK_HEADER_VERSION = 1;
export const MAX_HEADER_LENGTH = 1024;
export const PROOF_BYTES = 256;
const GROUP_RE = /^[A-Za-z0-9._-]{1,64}$/;
const SCOPE_RE = /^[A-Za-z0-9._:/@+-]{1,128}$/;
const DECIMAL_RE = /^(0|[1-9][0-9]{0,15})$/;
const B64URL_RE = /^[A-Za-z0-9_-]*$/;

/** A Groth16 proof over BN254 as affine coordinates. */
export interface ProofPoints {
  a: [bigint, bigint];
  b: [[bigint, bigint], [bigint, bigint]];
  c: [bigint, bigint];
}

interface HeaderCommon {
  group: string;
  scope: string;
  epoch: number;
  root: bigint;
  nullifier: bigint;
  signalHash: bigint;
  proof: ProofPoints;
}
export interface RequestProofHeader extends HeaderCommon {
  mode: 'req';
  timestamp: number;
}
export interface SessionProofHeader extends HeaderCommon {
  mode: 'ses';
  sessionKey: Uint8Array;
}
export type ZkProofHeader = RequestProofHeader | SessionProofHeader;

function bad(message: string): CageError {
  return new CageError({ code: 'ZK_BAD_HEADER', message });
}

export function encodeProof(p: ProofPoints): Uint8Array {
  const out = new Uint8Array(PROOF_BYTES);
  [p.a[0], p.a[1], p.b[0][0], p.b[0][1], p.b[1][0], p.b[1][1], p.c[0], p.c[1]].forEach((x, i) => {
    if (x < 0n || x >= BN254_BASE_FIELD) throw new RangeError('proof coordinate outside the base field');
    out.set(fieldToBytes(x), i * 32);
  });
  return out;
}

export function decodeProof(bytes: Uint8Array): ProofPoints {
  if (bytes.length !== PROOF_BYTES) throw bad(`proof must be ${PROOF_BYTES} bytes`);
  const x: bigint[] = [];
  for (let i = 0; i < 8; i++) {
    const v = bytesToBigint(bytes.subarray(i * 32, i * 32 + 32));
    if (v >= BN254_BASE_FIELD) throw bad('proof coordinate outside the base field');
    x.push(v);
  }
  return { a: [x[0]!, x[1]!], b: [[x[2]!, x[3]!], [x[4]!, x[5]!]], c: [x[6]!, x[7]!] };
}

/** snarkjs's proof object → points (affine; snarkjs always gives z = 1). */
export function proofFromSnarkjs(p: { pi_a: string[]; pi_b: string[][]; pi_c: string[] }): ProofPoints {
  const n = (s: string | undefined) => BigInt(s ?? 'x');
  return {
    a: [n(p.pi_a[0]), n(p.pi_a[1])],
    b: [[n(p.pi_b[0]?.[0]), n(p.pi_b[0]?.[1])], [n(p.pi_b[1]?.[0]), n(p.pi_b[1]?.[1])]],
    c: [n(p.pi_c[0]), n(p.pi_c[1])],
  };
}

function b64(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64url');
}

function unb64(value: string, length: number, name: string): Uint8Array {
  if (value.length !== Math.ceil((length * 4) / 3) || !B64URL_RE.test(value)) throw bad(`${name}: expected ${length} bytes of base64url`);
  const bytes = Buffer.from(value, 'base64url');
  if (bytes.length !== length || bytes.toString('base64url') !== value) throw bad(`${name}: non-canonical base64url`);
  return new Uint8Array(bytes);
}

function field(value: string, name: string): bigint {
  const x = bytesToBigint(unb64(value, 32, name));
  if (!isFieldElement(x)) throw bad(`${name}: not a field element`);
  return x;
}

function decimal(value: string, name: string): number {
  if (!DECIMAL_RE.test(value)) throw bad(`${name}: expected a decimal integer`);
  const n = Number(value);
  if (!Number.isSafeInteger(n)) throw bad(`${name}: out of range`);
  return n;
}

export function encodeZkHeader(h: ZkProofHeader): string {
  if (!GROUP_RE.test(h.group)) throw new CageError({ code: 'ZK_BAD_GROUP', message: `group id must match ${GROUP_RE}` });
  if (!SCOPE_RE.test(h.scope)) throw bad(`scope must match ${SCOPE_RE}`);
  if (!Number.isSafeInteger(h.epoch) || h.epoch < 0) throw bad('epoch must be a non-negative safe integer');
  const parts = [`v=${ZK_HEADER_VERSION}`, `m=${h.mode}`, `g=${h.group}`, `s=${h.scope}`, `e=${h.epoch}`];
  if (h.mode === 'req') {
    if (!Number.isSafeInteger(h.timestamp) || h.timestamp < 0) throw bad('timestamp must be a non-negative safe integer');
    parts.push(`t=${h.timestamp}`);
  } else {
    if (h.sessionKey.length !== 32) throw bad('session key must be 32 bytes');
    parts.push(`k=${b64(h.sessionKey)}`);
  }
  parts.push(`r=${b64(fieldToBytes(h.root))}`, `n=${b64(fieldToBytes(h.nullifier))}`, `h=${b64(fieldToBytes(h.signalHash))}`, `p=${b64(encodeProof(h.proof))}`);
  return parts.join(';');
}

const KEYS: Record<'req' | 'ses', readonly string[]> = {
  req: ['v', 'm', 'g', 's', 'e', 't', 'r', 'n', 'h', 'p'],
  ses: ['v', 'm', 'g', 's', 'e', 'k', 'r', 'n', 'h', 'p'],
};

/** Parses an attacker-supplied header value. Throws CageError ZK_BAD_HEADER only. */
export function decodeZkHeader(value: string): ZkProofHeader {
  if (typeof value !== 'string') throw bad('missing header');
  if (value.length > MAX_HEADER_LENGTH) throw bad('header too long');
  const fields = new Map<string, string>();
  for (const part of value.trim().split(';')) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw bad('expected key=value');
    const key = part.slice(0, eq).trim();
    if (fields.has(key)) throw bad(`repeated field ${key}`);
    fields.set(key, part.slice(eq + 1).trim());
  }
  if (fields.get('v') !== String(ZK_HEADER_VERSION)) throw bad('unsupported version');
  const mode = fields.get('m');
  if (mode !== 'req' && mode !== 'ses') throw bad('unknown mode');
  const keys = KEYS[mode];
  for (const k of fields.keys()) if (!keys.includes(k)) throw bad(`unknown field ${k.slice(0, 16)}`);
  for (const k of keys) if (!fields.has(k)) throw bad(`missing field ${k}`);
  const group = fields.get('g')!;
  if (!GROUP_RE.test(group)) throw bad('bad group id');
  const scope = fields.get('s')!;
  if (!SCOPE_RE.test(scope)) throw bad('bad scope');
  const common = {
    group,
    scope,
    epoch: decimal(fields.get('e')!, 'epoch'),
    root: field(fields.get('r')!, 'root'),
    nullifier: field(fields.get('n')!, 'nullifier'),
    signalHash: field(fields.get('h')!, 'signal hash'),
    proof: decodeProof(unb64(fields.get('p')!, PROOF_BYTES, 'proof')),
  };
  if (mode === 'req') return { mode, ...common, timestamp: decimal(fields.get('t')!, 'timestamp') };
  return { mode, ...common, sessionKey: unb64(fields.get('k')!, 32, 'session key') };
}
