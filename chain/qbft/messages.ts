/**
 * QBFT wire messages: a deterministic binary encoding, Ed25519 signing, and a defensive decoder.
 *
 * As in Besu's qbft-core, what a validator signs is a small *payload* (height, round, digest …);
 * a *message* wraps one signed payload plus unsigned attachments that are checked against it (the
 * proposed block, which must hash to the payload's digest; justifications, which are themselves
 * signed payloads). Ed25519 cannot recover a signer, so every signed payload names its signer.
 * A signed payload alone is self-contained evidence (the Court decodes two of them with
 * `decodeSignedPayload` and checks `conflicts`).
 *
 * Signed payload layout (all integers big-endian):
 *   u8  version (QBFT_VERSION = 1)
 *   u8  type: 1 PROPOSAL, 2 PREPARE, 3 COMMIT, 4 ROUND-CHANGE
 *   u64 height (≤ 2^53 − 1)
 *   u32 round (for ROUND-CHANGE: the target round)
 *   type fields:
 *     PROPOSAL, PREPARE: digest[32]                          (the block hash)
 *     COMMIT:            digest[32] ‖ commitSeal[64]          (seal: seals.ts commitSealData)
 *     ROUND-CHANGE:      u8 prepared (0|1) [‖ u32 preparedRound ‖ preparedDigest[32] if 1]
 *   u8  signer length (1..MAX_SIGNER_BYTES) ‖ signer (printable ASCII, a did:key)
 *   signature[64] = Ed25519(SIGNATURE_DOMAIN ‖ every byte above)
 *
 * Message layout:
 *   u8 version ‖ u8 type (= the payload's type) ‖ u16 length ‖ signed payload
 *   PROPOSAL:     u32 blockLength ‖ block ‖ u16 n ‖ n × (u16 length ‖ signed ROUND-CHANGE payload)
 *                 ‖ u16 m ‖ m × (u16 length ‖ signed PREPARE payload)
 *                 (both lists empty at round 0; at round r > 0 the ROUND-CHANGEs for (h, r) and,
 *                 if one of them is prepared, the PREPAREs of the highest prepared block)
 *   ROUND-CHANGE: u32 blockLength (0 iff not prepared) ‖ block ‖ u16 m ‖ m × (u16 length ‖ signed
 *                 PREPARE payload) (the prepared certificate; m = 0 iff not prepared)
 *   PREPARE, COMMIT: nothing more.
 * Nothing may follow; every flag and length is checked, so an accepted encoding is canonical
 * (decode(encode(x)) = x and encode(decode(b)) = b).
 *
 * Trust: everything decoded here is attacker-controlled. The decoder bounds every length and count
 * before allocating and throws CageError CHAIN_BAD_MESSAGE; it never checks signatures (that is
 * `verifySignedPayload`, with the caller's validator set).
 */
import { CageError } from '../../core/errors.js';
import type { QbftSigner, VerifyFn } from './index.js';

export const QBFT_VERSION = 1;
/** Domain separation for message signatures (commit seals use their own, seals.ts). */
export const SIGNATURE_DOMAIN = Buffer.from('http-cage/qbft/message/v1\0', 'latin1');
export const DIGEST_SIZE = 32;
export const SIGNATURE_SIZE = 64;
export const MAX_SIGNER_BYTES = 255;
/** Most signed payloads a justification may hold (bounds validator sets at 1024). */
export const MAX_JUSTIFICATION = 1024;
/** Default cap on a whole message (a proposal carries its block). */
export const MAX_MESSAGE_BYTES = 32 * 1024 * 1024;
const MAX_HEIGHT = Number.MAX_SAFE_INTEGER;
const MAX_ROUND = 0xffff_ffff;

export const MessageType = { PROPOSAL: 1, PREPARE: 2, COMMIT: 3, ROUND_CHANGE: 4 } as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];
const TYPE_NAMES = ['', 'PROPOSAL', 'PREPARE', 'COMMIT', 'ROUND-CHANGE'];

/** What a validator signs. */
export type Payload =
  | { type: typeof MessageType.PROPOSAL; height: number; round: number; digest: Uint8Array }
  | { type: typeof MessageType.PREPARE; height: number; round: number; digest: Uint8Array }
  | { type: typeof MessageType.COMMIT; height: number; round: number; digest: Uint8Array; commitSeal: Uint8Array }
  | {
      type: typeof MessageType.ROUND_CHANGE;
      height: number;
      round: number;
      prepared?: { round: number; digest: Uint8Array };
    };

/** A payload with its signer and signature; `bytes` is its exact encoding (what is re-embedded). */
export type SignedPayload<P extends Payload = Payload> = P & {
  readonly signer: string;
  readonly signature: Uint8Array;
  readonly bytes: Uint8Array;
};

type PayloadOf<T extends MessageType> = Extract<Payload, { type: T }>;

export interface ProposalMessage {
  type: typeof MessageType.PROPOSAL;
  payload: SignedPayload<PayloadOf<typeof MessageType.PROPOSAL>>;
  block: Uint8Array;
  roundChanges: SignedPayload<PayloadOf<typeof MessageType.ROUND_CHANGE>>[];
  prepares: SignedPayload<PayloadOf<typeof MessageType.PREPARE>>[];
}
export interface PrepareMessage {
  type: typeof MessageType.PREPARE;
  payload: SignedPayload<PayloadOf<typeof MessageType.PREPARE>>;
}
export interface CommitMessage {
  type: typeof MessageType.COMMIT;
  payload: SignedPayload<PayloadOf<typeof MessageType.COMMIT>>;
}
export interface RoundChangeMessage {
  type: typeof MessageType.ROUND_CHANGE;
  payload: SignedPayload<PayloadOf<typeof MessageType.ROUND_CHANGE>>;
  /** The prepared block (present iff `payload.prepared`). */
  preparedBlock?: Uint8Array;
  /** The prepared certificate: PREPAREs for (height, prepared.round, prepared.digest). */
  prepares: SignedPayload<PayloadOf<typeof MessageType.PREPARE>>[];
}
export type QbftMessage = ProposalMessage | PrepareMessage | CommitMessage | RoundChangeMessage;

function bad(message: string): CageError {
  return new CageError({ code: 'CHAIN_BAD_MESSAGE', message });
}

export function typeName(type: number): string {
  return TYPE_NAMES[type] ?? `type ${type}`;
}

// ---------------------------------------------------------------------------------------------
// Writing

class Writer {
  private buf: Buffer;
  private off = 0;
  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size);
  }
  u8(v: number): void {
    this.buf[this.off++] = v;
  }
  u16(v: number): void {
    if (!Number.isInteger(v) || v < 0 || v > 0xffff) throw bad(`${v} does not fit 16 bits`);
    this.buf.writeUInt16BE(v, this.off);
    this.off += 2;
  }
  u32(v: number): void {
    if (!Number.isInteger(v) || v < 0 || v > MAX_ROUND) throw bad(`${v} does not fit 32 bits`);
    this.buf.writeUInt32BE(v, this.off);
    this.off += 4;
  }
  u64(v: number): void {
    if (!Number.isSafeInteger(v) || v < 0) throw bad(`height ${v} is not a non-negative safe integer`);
    this.buf.writeUInt32BE(Math.floor(v / 0x1_0000_0000), this.off);
    this.buf.writeUInt32BE(v >>> 0, this.off + 4);
    this.off += 8;
  }
  fixed(b: Uint8Array, size: number, what: string): void {
    if (!(b instanceof Uint8Array) || b.length !== size) throw bad(`${what} must be ${size} bytes`);
    this.buf.set(b, this.off);
    this.off += size;
  }
  raw(b: Uint8Array): void {
    this.buf.set(b, this.off);
    this.off += b.length;
  }
  done(): Buffer {
    return this.off === this.buf.length ? this.buf : this.buf.subarray(0, this.off);
  }
}

function checkSigner(signer: string): Buffer {
  const b = Buffer.from(signer, 'latin1');
  if (b.length < 1 || b.length > MAX_SIGNER_BYTES || b.toString('latin1') !== signer) throw bad('signer must be 1..255 printable ASCII bytes');
  for (const c of b) if (c < 0x21 || c > 0x7e) throw bad('signer must be printable ASCII');
  return b;
}

function fieldsSize(p: Payload): number {
  switch (p.type) {
    case MessageType.PROPOSAL:
    case MessageType.PREPARE:
      return DIGEST_SIZE;
    case MessageType.COMMIT:
      return DIGEST_SIZE + SIGNATURE_SIZE;
    case MessageType.ROUND_CHANGE:
      return p.prepared === undefined ? 1 : 1 + 4 + DIGEST_SIZE;
  }
}

/** The bytes a signer signs over (without the domain): everything before the signature. */
export function encodePayloadBody(p: Payload, signer: string): Buffer {
  const s = checkSigner(signer);
  const w = new Writer(14 + fieldsSize(p) + 1 + s.length);
  w.u8(QBFT_VERSION);
  w.u8(p.type);
  w.u64(p.height);
  w.u32(p.round);
  switch (p.type) {
    case MessageType.PROPOSAL:
    case MessageType.PREPARE:
      w.fixed(p.digest, DIGEST_SIZE, 'digest');
      break;
    case MessageType.COMMIT:
      w.fixed(p.digest, DIGEST_SIZE, 'digest');
      w.fixed(p.commitSeal, SIGNATURE_SIZE, 'commitSeal');
      break;
    case MessageType.ROUND_CHANGE:
      if (p.prepared === undefined) w.u8(0);
      else {
        w.u8(1);
        w.u32(p.prepared.round);
        w.fixed(p.prepared.digest, DIGEST_SIZE, 'prepared digest');
      }
      break;
    default:
      throw bad(`unknown payload type ${(p as { type: number }).type}`);
  }
  w.u8(s.length);
  w.raw(s);
  return w.done();
}

function signingInput(body: Uint8Array): Buffer {
  return Buffer.concat([SIGNATURE_DOMAIN, body]);
}

/** Signs a payload: the signer is `signer.id`. */
export function signPayload<P extends Payload>(payload: P, signer: QbftSigner): SignedPayload<P> {
  const body = encodePayloadBody(payload, signer.id);
  const signature = signer.sign(signingInput(body));
  if (signature.length !== SIGNATURE_SIZE) throw bad('signer returned a signature that is not 64 bytes');
  return { ...payload, signer: signer.id, signature, bytes: Buffer.concat([body, signature]) };
}

/** The encoding of a signed payload (its `bytes`, recomputed from the fields). */
export function encodeSignedPayload(p: SignedPayload): Uint8Array {
  const body = encodePayloadBody(p, p.signer);
  if (p.signature.length !== SIGNATURE_SIZE) throw bad('signature must be 64 bytes');
  return Buffer.concat([body, p.signature]);
}

/** Checks the signature of a decoded payload (not the validator set; that is the caller's). */
export function verifySignedPayload(p: SignedPayload, verify: VerifyFn): boolean {
  const body = p.bytes.subarray(0, p.bytes.length - SIGNATURE_SIZE);
  try {
    return verify(p.signer, signingInput(body), p.signature) === true;
  } catch {
    return false;
  }
}

/** Builds a signed message from a payload and its attachments. */
export function signMessage(signer: QbftSigner, payload: Payload, attachments: { block?: Uint8Array; roundChanges?: SignedPayload[]; prepares?: SignedPayload[] } = {}): QbftMessage {
  const sp = signPayload(payload, signer);
  return withAttachments(sp, attachments);
}

function withAttachments(sp: SignedPayload, a: { block?: Uint8Array; roundChanges?: SignedPayload[]; prepares?: SignedPayload[] }): QbftMessage {
  switch (sp.type) {
    case MessageType.PROPOSAL:
      if (a.block === undefined) throw bad('a PROPOSAL carries its block');
      return { type: sp.type, payload: sp, block: a.block, roundChanges: (a.roundChanges ?? []) as ProposalMessage['roundChanges'], prepares: (a.prepares ?? []) as ProposalMessage['prepares'] };
    case MessageType.ROUND_CHANGE: {
      const m: RoundChangeMessage = { type: sp.type, payload: sp, prepares: (a.prepares ?? []) as RoundChangeMessage['prepares'] };
      if (a.block !== undefined) m.preparedBlock = a.block;
      return m;
    }
    case MessageType.PREPARE:
      return { type: sp.type, payload: sp };
    case MessageType.COMMIT:
      return { type: sp.type, payload: sp };
  }
}

/** Verifies the signature of the message's payload and of every signed payload it carries. */
export function verifySignedMessage(m: QbftMessage, verify: VerifyFn): boolean {
  if (!verifySignedPayload(m.payload, verify)) return false;
  if (m.type === MessageType.PROPOSAL) {
    for (const rc of m.roundChanges) if (!verifySignedPayload(rc, verify)) return false;
  }
  if (m.type === MessageType.PROPOSAL || m.type === MessageType.ROUND_CHANGE) {
    for (const p of m.prepares) if (!verifySignedPayload(p, verify)) return false;
  }
  return true;
}

function listSize(list: readonly SignedPayload[]): number {
  let n = 2;
  for (const p of list) n += 2 + p.bytes.length;
  return n;
}

function writeList(w: Writer, list: readonly SignedPayload[], type: MessageType, what: string): void {
  if (list.length > MAX_JUSTIFICATION) throw bad(`${what} holds more than ${MAX_JUSTIFICATION} entries`);
  w.u16(list.length);
  for (const p of list) {
    if (p.type !== type) throw bad(`${what} holds a ${typeName(p.type)}`);
    w.u16(p.bytes.length);
    w.raw(p.bytes);
  }
}

/** Encodes a message (layout in the module comment). Throws CHAIN_BAD_MESSAGE on inconsistent fields. */
export function encodeMessage(m: QbftMessage): Uint8Array {
  const pb = m.payload.bytes;
  if (m.payload.type !== m.type) throw bad('message type differs from its payload type');
  let size = 4 + pb.length;
  if (m.type === MessageType.PROPOSAL) size += 4 + m.block.length + listSize(m.roundChanges) + listSize(m.prepares);
  else if (m.type === MessageType.ROUND_CHANGE) size += 4 + (m.preparedBlock?.length ?? 0) + listSize(m.prepares);
  const w = new Writer(size);
  w.u8(QBFT_VERSION);
  w.u8(m.type);
  w.u16(pb.length);
  w.raw(pb);
  if (m.type === MessageType.PROPOSAL) {
    if (m.block.length === 0) throw bad('a PROPOSAL carries a non-empty block');
    w.u32(m.block.length);
    w.raw(m.block);
    writeList(w, m.roundChanges, MessageType.ROUND_CHANGE, 'round-change justification');
    writeList(w, m.prepares, MessageType.PREPARE, 'prepare justification');
  } else if (m.type === MessageType.ROUND_CHANGE) {
    const prepared = m.payload.prepared !== undefined;
    if (prepared !== (m.preparedBlock !== undefined && m.preparedBlock.length > 0) || prepared !== m.prepares.length > 0) {
      throw bad('a ROUND-CHANGE carries a block and prepares exactly when it is prepared');
    }
    w.u32(m.preparedBlock?.length ?? 0);
    if (m.preparedBlock !== undefined) w.raw(m.preparedBlock);
    writeList(w, m.prepares, MessageType.PREPARE, 'prepared certificate');
  }
  return w.done();
}

// ---------------------------------------------------------------------------------------------
// Reading (attacker-controlled bytes)

class Reader {
  off = 0;
  constructor(readonly buf: Buffer) {}
  need(n: number, what: string): void {
    if (this.buf.length - this.off < n) throw bad(`truncated ${what}`);
  }
  u8(what: string): number {
    this.need(1, what);
    return this.buf[this.off++]!;
  }
  u16(what: string): number {
    this.need(2, what);
    const v = this.buf.readUInt16BE(this.off);
    this.off += 2;
    return v;
  }
  u32(what: string): number {
    this.need(4, what);
    const v = this.buf.readUInt32BE(this.off);
    this.off += 4;
    return v;
  }
  u64(what: string): number {
    this.need(8, what);
    const hi = this.buf.readUInt32BE(this.off);
    const lo = this.buf.readUInt32BE(this.off + 4);
    this.off += 8;
    if (hi > Math.floor(MAX_HEIGHT / 0x1_0000_0000)) throw bad(`${what} exceeds 2^53 - 1`);
    return hi * 0x1_0000_0000 + lo;
  }
  bytes(n: number, what: string): Buffer {
    this.need(n, what);
    const b = this.buf.subarray(this.off, this.off + n);
    this.off += n;
    return b;
  }
}

function toBuffer(b: Uint8Array): Buffer {
  if (!(b instanceof Uint8Array)) throw bad('a message must be bytes');
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

/**
 * Decodes one signed payload (exactly `bytes`, nothing after it). Throws CHAIN_BAD_MESSAGE.
 * The signature is not checked. `expected` restricts the type (for justification entries).
 */
export function decodeSignedPayload(bytes: Uint8Array, expected?: MessageType): SignedPayload {
  const buf = toBuffer(bytes);
  const r = new Reader(buf);
  const version = r.u8('version');
  if (version !== QBFT_VERSION) throw bad(`unknown version ${version}`);
  const type = r.u8('type');
  if (type < MessageType.PROPOSAL || type > MessageType.ROUND_CHANGE) throw bad(`unknown payload type ${type}`);
  if (expected !== undefined && type !== expected) throw bad(`expected a ${typeName(expected)} payload, got ${typeName(type)}`);
  const height = r.u64('height');
  const round = r.u32('round');
  let payload: Payload;
  switch (type) {
    case MessageType.PROPOSAL:
    case MessageType.PREPARE:
      payload = { type, height, round, digest: r.bytes(DIGEST_SIZE, 'digest') };
      break;
    case MessageType.COMMIT:
      payload = { type, height, round, digest: r.bytes(DIGEST_SIZE, 'digest'), commitSeal: r.bytes(SIGNATURE_SIZE, 'commit seal') };
      break;
    default: {
      const flag = r.u8('prepared flag');
      if (flag > 1) throw bad(`prepared flag ${flag} is not 0 or 1`);
      if (flag === 0) payload = { type: MessageType.ROUND_CHANGE, height, round };
      else {
        const preparedRound = r.u32('prepared round');
        payload = { type: MessageType.ROUND_CHANGE, height, round, prepared: { round: preparedRound, digest: r.bytes(DIGEST_SIZE, 'prepared digest') } };
      }
    }
  }
  const signerLength = r.u8('signer length');
  if (signerLength === 0) throw bad('empty signer');
  const signerBytes = r.bytes(signerLength, 'signer');
  for (const c of signerBytes) if (c < 0x21 || c > 0x7e) throw bad('signer is not printable ASCII');
  const signature = r.bytes(SIGNATURE_SIZE, 'signature');
  if (r.off !== buf.length) throw bad('bytes after the signature');
  return { ...payload, signer: signerBytes.toString('latin1'), signature, bytes: buf };
}

function readList<T extends MessageType>(r: Reader, type: T, what: string): SignedPayload<PayloadOf<T>>[] {
  const n = r.u16(`${what} count`);
  if (n > MAX_JUSTIFICATION) throw bad(`${what} holds ${n} entries (limit ${MAX_JUSTIFICATION})`);
  const out: SignedPayload<PayloadOf<T>>[] = [];
  for (let i = 0; i < n; i++) {
    const len = r.u16(`${what} entry length`);
    out.push(decodeSignedPayload(r.bytes(len, `${what} entry`), type) as SignedPayload<PayloadOf<T>>);
  }
  return out;
}

/** Decodes a message. Throws CageError CHAIN_BAD_MESSAGE for anything malformed (never another error). */
export function decodeMessage(bytes: Uint8Array, maxBytes = MAX_MESSAGE_BYTES): QbftMessage {
  const buf = toBuffer(bytes);
  if (buf.length > maxBytes) throw bad(`message of ${buf.length} bytes exceeds ${maxBytes}`);
  const r = new Reader(buf);
  const version = r.u8('version');
  if (version !== QBFT_VERSION) throw bad(`unknown version ${version}`);
  const type = r.u8('type');
  if (type < MessageType.PROPOSAL || type > MessageType.ROUND_CHANGE) throw bad(`unknown message type ${type}`);
  const payloadLength = r.u16('payload length');
  const payload = decodeSignedPayload(r.bytes(payloadLength, 'payload'), type as MessageType);
  let m: QbftMessage;
  if (payload.type === MessageType.PROPOSAL) {
    const blockLength = r.u32('block length');
    if (blockLength === 0) throw bad('a PROPOSAL carries a non-empty block');
    const block = r.bytes(blockLength, 'block');
    const roundChanges = readList(r, MessageType.ROUND_CHANGE, 'round-change justification');
    const prepares = readList(r, MessageType.PREPARE, 'prepare justification');
    m = { type: payload.type, payload, block, roundChanges, prepares };
  } else if (payload.type === MessageType.ROUND_CHANGE) {
    const blockLength = r.u32('block length');
    const block = r.bytes(blockLength, 'prepared block');
    const prepares = readList(r, MessageType.PREPARE, 'prepared certificate');
    const prepared = payload.prepared !== undefined;
    if (prepared !== blockLength > 0 || prepared !== prepares.length > 0) throw bad('a ROUND-CHANGE carries a block and prepares exactly when it is prepared');
    m = { type: payload.type, payload, prepares };
    if (prepared) m.preparedBlock = block;
  } else if (payload.type === MessageType.PREPARE) {
    m = { type: payload.type, payload };
  } else {
    m = { type: payload.type, payload };
  }
  if (r.off !== buf.length) throw bad('bytes after the message');
  return m;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(a, b) === 0;
}

/**
 * True when `a` and `b` are conflicting signed payloads by one signer for one (height, round, type):
 * two PROPOSALs, PREPAREs or COMMITs with different digests, or two ROUND-CHANGEs with different
 * prepared certificates. An honest validator never signs such a pair (Court evidence); signatures
 * are not checked here.
 */
export function conflicts(a: SignedPayload, b: SignedPayload): boolean {
  if (a.signer !== b.signer || a.type !== b.type || a.height !== b.height || a.round !== b.round) return false;
  if (a.type === MessageType.ROUND_CHANGE && b.type === MessageType.ROUND_CHANGE) {
    if (a.prepared === undefined || b.prepared === undefined) return a.prepared !== b.prepared;
    return a.prepared.round !== b.prepared.round || !sameBytes(a.prepared.digest, b.prepared.digest);
  }
  return !sameBytes((a as { digest: Uint8Array }).digest, (b as { digest: Uint8Array }).digest);
}
