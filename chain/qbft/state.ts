/**
 * The consensus state a validator persists so that, after a crash, it never signs two different
 * blocks at one height and round (and never forgets a prepared certificate, which the round-change
 * protocol relies on for safety). The machine emits it as a `persist` output before any broadcast
 * that depends on it; the shell hands the latest one back in `start`.
 *
 * Layout (big-endian):
 *   u8  version (1)
 *   u64 height
 *   u32 round                  (the current round; the node never signs anything in a lower one)
 *   u8  flags                  (bit 0: signedDigest present, bit 1: prepared present; others 0)
 *   [digest[32]]               signedDigest: the block this node proposed/prepared/committed in `round`
 *   [u32 preparedRound ‖ digest[32] ‖ u32 blockLength ‖ block ‖ u16 m ‖ m × (u16 length ‖ signed PREPARE)]
 *
 * Trust: written by this node to its own disk, but decoded defensively (a torn or damaged file must
 * not be mistaken for "nothing signed"): anything malformed throws CHAIN_BAD_CONSENSUS_STATE.
 */
import { CageError } from '../../core/errors.js';
import { DIGEST_SIZE, MAX_JUSTIFICATION, MessageType, decodeSignedPayload, type Payload, type SignedPayload } from './messages.js';

export const PERSISTED_STATE_VERSION = 1;

type PreparePayload = Extract<Payload, { type: typeof MessageType.PREPARE }>;

export interface PreparedCertificate {
  round: number;
  digest: Uint8Array;
  block: Uint8Array;
  prepares: SignedPayload<PreparePayload>[];
}

export interface PersistedState {
  height: number;
  round: number;
  signedDigest?: Uint8Array;
  prepared?: PreparedCertificate;
}

function bad(message: string): CageError {
  return new CageError({ code: 'CHAIN_BAD_CONSENSUS_STATE', message });
}

export function encodePersistedState(s: PersistedState): Uint8Array {
  const parts: Buffer[] = [];
  const head = Buffer.alloc(1 + 8 + 4 + 1);
  head[0] = PERSISTED_STATE_VERSION;
  head.writeUInt32BE(Math.floor(s.height / 0x1_0000_0000), 1);
  head.writeUInt32BE(s.height >>> 0, 5);
  head.writeUInt32BE(s.round, 9);
  head[13] = (s.signedDigest !== undefined ? 1 : 0) | (s.prepared !== undefined ? 2 : 0);
  parts.push(head);
  if (s.signedDigest !== undefined) parts.push(Buffer.from(s.signedDigest));
  const p = s.prepared;
  if (p !== undefined) {
    const h = Buffer.alloc(4 + DIGEST_SIZE + 4);
    h.writeUInt32BE(p.round, 0);
    h.set(p.digest, 4);
    h.writeUInt32BE(p.block.length, 4 + DIGEST_SIZE);
    parts.push(h, Buffer.from(p.block));
    const n = Buffer.alloc(2);
    n.writeUInt16BE(p.prepares.length);
    parts.push(n);
    for (const sp of p.prepares) {
      const l = Buffer.alloc(2);
      l.writeUInt16BE(sp.bytes.length);
      parts.push(l, Buffer.from(sp.bytes));
    }
  }
  return Buffer.concat(parts);
}

export function decodePersistedState(bytes: Uint8Array): PersistedState {
  if (!(bytes instanceof Uint8Array)) throw bad('state must be bytes');
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let off = 0;
  const need = (n: number) => {
    if (b.length - off < n) throw bad('truncated consensus state');
  };
  need(14);
  if (b[0] !== PERSISTED_STATE_VERSION) throw bad(`unknown consensus state version ${b[0]}`);
  const hi = b.readUInt32BE(1);
  if (hi > 0x1fffff) throw bad('height exceeds 2^53 - 1');
  const height = hi * 0x1_0000_0000 + b.readUInt32BE(5);
  const round = b.readUInt32BE(9);
  const flags = b[13]!;
  if (flags > 3) throw bad(`unknown flags ${flags}`);
  off = 14;
  const s: PersistedState = { height, round };
  if (flags & 1) {
    need(DIGEST_SIZE);
    s.signedDigest = Buffer.from(b.subarray(off, off + DIGEST_SIZE));
    off += DIGEST_SIZE;
  }
  if (flags & 2) {
    need(4 + DIGEST_SIZE + 4);
    const preparedRound = b.readUInt32BE(off);
    const digest = Buffer.from(b.subarray(off + 4, off + 4 + DIGEST_SIZE));
    const blockLength = b.readUInt32BE(off + 4 + DIGEST_SIZE);
    off += 4 + DIGEST_SIZE + 4;
    need(blockLength);
    const block = Buffer.from(b.subarray(off, off + blockLength));
    off += blockLength;
    need(2);
    const m = b.readUInt16BE(off);
    off += 2;
    if (m > MAX_JUSTIFICATION) throw bad('too many prepares');
    const prepares: SignedPayload<PreparePayload>[] = [];
    for (let i = 0; i < m; i++) {
      need(2);
      const len = b.readUInt16BE(off);
      off += 2;
      need(len);
      try {
        prepares.push(decodeSignedPayload(Buffer.from(b.subarray(off, off + len)), MessageType.PREPARE) as SignedPayload<PreparePayload>);
      } catch (err) {
        throw new CageError({ code: 'CHAIN_BAD_CONSENSUS_STATE', message: 'a stored PREPARE does not decode', cause: err });
      }
      off += len;
    }
    if (preparedRound > round) throw bad('prepared round after the current round');
    s.prepared = { round: preparedRound, digest, block, prepares };
  }
  if (off !== b.length) throw bad('bytes after the consensus state');
  return s;
}
