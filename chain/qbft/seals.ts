/**
 * Commit seals: the proof that a quorum committed a block at a round (QBFT spec, "commit seal").
 * A seal is Ed25519 over `SEAL_DOMAIN ‖ blockHash[32] ‖ u32 round (big-endian)`, named by its
 * signer (Ed25519 cannot recover one). The block hash excludes seals and round, so the same block
 * re-proposed in a later round gets seals for that round.
 *
 * Seal list encoding (for the node to store with the block):
 *   u16 count ‖ count × (u8 signerLength ‖ signer (ASCII) ‖ signature[64])
 *
 * Trust: seals come from peers (COMMIT messages, fetched blocks); `verifySeals` checks each one
 * against the validator set of the block's height.
 */
import { CageError } from '../../core/errors.js';
import type { CommitSeal, QbftSigner, VerifyFn } from './index.js';
import { DIGEST_SIZE, MAX_JUSTIFICATION, MAX_SIGNER_BYTES, SIGNATURE_SIZE } from './messages.js';
import { quorumSize } from './validators.js';

export const SEAL_DOMAIN = Buffer.from('http-cage/qbft/seal/v1\0', 'latin1');

function badSeal(message: string): CageError {
  return new CageError({ code: 'CHAIN_BAD_SEAL', message });
}

/** The bytes a commit seal signs. */
export function commitSealData(blockHash: Uint8Array, round: number): Buffer {
  if (!(blockHash instanceof Uint8Array) || blockHash.length !== DIGEST_SIZE) throw badSeal('a block hash is 32 bytes');
  if (!Number.isInteger(round) || round < 0 || round > 0xffff_ffff) throw badSeal(`round ${round} is not a u32`);
  const out = Buffer.allocUnsafe(SEAL_DOMAIN.length + DIGEST_SIZE + 4);
  SEAL_DOMAIN.copy(out, 0);
  out.set(blockHash, SEAL_DOMAIN.length);
  out.writeUInt32BE(round, SEAL_DOMAIN.length + DIGEST_SIZE);
  return out;
}

export function signCommitSeal(signer: QbftSigner, blockHash: Uint8Array, round: number): Uint8Array {
  return signer.sign(commitSealData(blockHash, round));
}

/** True when one seal's signature verifies (no set membership check). */
export function verifyCommitSeal(verify: VerifyFn, signer: string, blockHash: Uint8Array, round: number, signature: Uint8Array): boolean {
  if (!(signature instanceof Uint8Array) || signature.length !== SIGNATURE_SIZE) return false;
  try {
    return verify(signer, commitSealData(blockHash, round), signature) === true;
  } catch {
    return false;
  }
}

/**
 * Checks that `seals` finalize the block `blockHash` at `round` for `validators` (the set of the
 * block's height): at least Q = ⌈2n/3⌉ seals, distinct signers, every signer a member, every
 * signature valid. Throws CageError CHAIN_BAD_SEAL naming the first problem.
 */
export function verifySeals(blockHash: Uint8Array, round: number, seals: readonly CommitSeal[], validators: readonly string[], verify: VerifyFn): void {
  const data = commitSealData(blockHash, round);
  const members = new Set(validators);
  if (members.size === 0) throw badSeal('empty validator set');
  const q = quorumSize(members.size);
  if (!Array.isArray(seals) || seals.length < q) throw badSeal(`${Array.isArray(seals) ? seals.length : 0} seals, a quorum is ${q}`);
  const seen = new Set<string>();
  for (const seal of seals) {
    if (typeof seal?.signer !== 'string' || !members.has(seal.signer)) throw badSeal(`seal by ${String(seal?.signer)}, not a validator`);
    if (seen.has(seal.signer)) throw badSeal(`two seals by ${seal.signer}`);
    seen.add(seal.signer);
    let ok = false;
    if (seal.signature instanceof Uint8Array && seal.signature.length === SIGNATURE_SIZE) {
      try {
        ok = verify(seal.signer, data, seal.signature) === true;
      } catch {
        ok = false;
      }
    }
    if (!ok) throw badSeal(`seal by ${seal.signer} does not verify`);
  }
}

/** Encodes a seal list (layout above). */
export function encodeSeals(seals: readonly CommitSeal[]): Uint8Array {
  if (seals.length > MAX_JUSTIFICATION) throw badSeal(`more than ${MAX_JUSTIFICATION} seals`);
  const parts: Buffer[] = [Buffer.from([seals.length >> 8, seals.length & 0xff])];
  for (const s of seals) {
    const name = Buffer.from(s.signer, 'latin1');
    if (name.length < 1 || name.length > MAX_SIGNER_BYTES || name.toString('latin1') !== s.signer) throw badSeal('a seal signer is 1..255 ASCII bytes');
    if (s.signature.length !== SIGNATURE_SIZE) throw badSeal('a seal signature is 64 bytes');
    parts.push(Buffer.from([name.length]), name, Buffer.from(s.signature));
  }
  return Buffer.concat(parts);
}

/** Decodes a seal list; attacker-controlled bytes. Throws CHAIN_BAD_SEAL when malformed. */
export function decodeSeals(bytes: Uint8Array): CommitSeal[] {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length < 2) throw badSeal('truncated seal count');
  const n = buf.readUInt16BE(0);
  if (n > MAX_JUSTIFICATION) throw badSeal(`${n} seals (limit ${MAX_JUSTIFICATION})`);
  let off = 2;
  const out: CommitSeal[] = [];
  for (let i = 0; i < n; i++) {
    if (off >= buf.length) throw badSeal('truncated seal');
    const len = buf[off++]!;
    if (len === 0 || off + len + SIGNATURE_SIZE > buf.length) throw badSeal('truncated seal');
    const signer = buf.subarray(off, off + len);
    for (const c of signer) if (c < 0x21 || c > 0x7e) throw badSeal('a seal signer is printable ASCII');
    off += len;
    out.push({ signer: signer.toString('latin1'), signature: buf.subarray(off, off + SIGNATURE_SIZE) });
    off += SIGNATURE_SIZE;
  }
  if (off !== buf.length) throw badSeal('bytes after the seals');
  return out;
}
