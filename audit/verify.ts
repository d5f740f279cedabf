/**
 * Offline verification, as `cage audit verify` runs it: a C2SP tlog-proof file checked against
 * the log's verifier key (and optionally a tlog-policy's witness quorum), the record it proves
 * (given by the user, or carried in the proof's `extra` line), and consistency between two
 * checkpoints. Follows tlog-proof, tlog-checkpoint, signed-note and RFC 9162 §2.1.3–2.1.4.
 *
 * Trust: everything but the verifier key / policy is attacker-controlled. Each failure is a
 * CageError naming what failed: AUDIT_BAD_PROOF (file syntax, inclusion, consistency),
 * AUDIT_BAD_NOTE / AUDIT_BAD_SIGNATURE / AUDIT_BAD_CHECKPOINT (the checkpoint),
 * AUDIT_QUORUM_NOT_MET (the policy), AUDIT_BAD_RECORD (record missing, not decodable, or not the
 * one the log holds).
 */
import { CageError } from '../core/errors.js';
import { openCheckpoint, type Checkpoint } from './checkpoint.js';
import { EMPTY_ROOT, HASH_SIZE, leafHash } from './hash.js';
import { MAX_PROOF_HASHES, verifyConsistency, verifyInclusion } from './merkle.js';
import { decodeBase64, parseVerifierKey, type NoteVerifier, type VerifiedSignature } from './note.js';
import { verifyCheckpointPolicy, type Policy } from './policy.js';
import { parseProof } from './proof.js';
import { decodeRecord, type AuditRecord } from './record.js';

export interface VerifyProofInput {
  /** The tlog-proof file. */
  readonly proof: string | Uint8Array;
  /** The log's verifier key; may be left out when `policy` names the log. */
  readonly logKey?: string | NoteVerifier;
  /** The record the user holds; defaults to the proof's extra data. */
  readonly record?: Uint8Array;
  /** Instead of record bytes: the leaf hash to prove. */
  readonly leafHash?: Uint8Array;
  /** Witness keys whose cosignatures to verify and report. */
  readonly cosigners?: readonly NoteVerifier[];
  /** A tlog-policy the checkpoint must satisfy (log key and witness quorum). */
  readonly policy?: Policy;
}

export interface VerifyProofResult {
  readonly ok: true;
  readonly checkpoint: Checkpoint;
  readonly index: number;
  readonly leafHash: Buffer;
  /** The proven record bytes and their decoding, when the record was given or carried. */
  readonly recordBytes?: Buffer;
  readonly record?: AuditRecord;
  /** Verified cosignatures from `cosigners`. */
  readonly cosignatures: readonly VerifiedSignature[];
  /** With a policy: the policy witnesses whose cosignatures verified. */
  readonly witnesses?: readonly string[];
}

function badRecord(message: string): CageError {
  return new CageError({ code: 'AUDIT_BAD_RECORD', message });
}

function tryInclusion(leaf: Uint8Array, index: number, cp: Checkpoint, proof: readonly Uint8Array[]): CageError | undefined {
  try {
    verifyInclusion(leaf, index, cp.size, proof, cp.rootHash);
    return undefined;
  } catch (err) {
    if (err instanceof CageError) return err;
    throw err;
  }
}

/** Verifies a tlog-proof file end to end; returns what it proves or throws a CageError naming the failure. */
export function verifyProof(input: VerifyProofInput): VerifyProofResult {
  const file = parseProof(input.proof);
  if (input.logKey === undefined && input.policy === undefined) {
    throw new CageError({ code: 'AUDIT_BAD_KEY', message: 'verifying a proof needs the log key or a policy' });
  }
  let checkpoint: Checkpoint | undefined;
  let cosignatures: readonly VerifiedSignature[] = [];
  let witnesses: readonly string[] | undefined;
  const log = input.logKey === undefined ? undefined : typeof input.logKey === 'string' ? parseVerifierKey(input.logKey) : input.logKey;
  if (log !== undefined) {
    const opened = openCheckpoint(file.checkpoint, log, input.cosigners === undefined ? {} : { cosigners: input.cosigners });
    checkpoint = opened.checkpoint;
    cosignatures = opened.cosignatures;
  }
  if (input.policy !== undefined) {
    const verdict = verifyCheckpointPolicy(input.policy, file.checkpoint);
    if (log !== undefined && verdict.log.verifier.verifierKey !== log.verifierKey) {
      throw new CageError({ code: 'AUDIT_BAD_SIGNATURE', message: 'the checkpoint is signed by a policy log other than the given log key' });
    }
    checkpoint ??= verdict.checkpoint;
    witnesses = verdict.witnesses;
  }
  const cp = checkpoint!;
  const index = file.index;
  if (index >= cp.size) throw new CageError({ code: 'AUDIT_BAD_PROOF', message: `index ${index} is not below the checkpoint size ${cp.size}` });

  const recordBytes = input.record !== undefined ? Buffer.from(input.record) : file.extra;
  let leaf: Buffer;
  if (recordBytes !== undefined) {
    leaf = leafHash(recordBytes);
    if (input.leafHash !== undefined && !leaf.equals(input.leafHash)) throw badRecord('the record does not hash to the given leaf hash');
  } else if (input.leafHash !== undefined) {
    if (input.leafHash.length !== HASH_SIZE) throw badRecord(`leaf hash is ${input.leafHash.length} bytes, want ${HASH_SIZE}`);
    leaf = Buffer.from(input.leafHash);
  } else {
    throw badRecord('nothing to prove: give the record (or its leaf hash), or a proof that carries it as extra data');
  }

  const err = tryInclusion(leaf, index, cp, file.proof);
  if (err !== undefined) {
    // The user's record is not at `index`. If the proof's own extra data is, say so precisely.
    if (input.record !== undefined && file.extra !== undefined && !file.extra.equals(recordBytes!)) {
      if (tryInclusion(leafHash(file.extra), index, cp, file.proof) === undefined) {
        throw badRecord(`the log holds a different record at index ${index} than the one given`);
      }
    }
    throw err;
  }
  let record: AuditRecord | undefined;
  if (recordBytes !== undefined) record = decodeRecord(recordBytes);
  return Object.freeze({
    ok: true as const,
    checkpoint: cp,
    index,
    leafHash: leaf,
    ...(recordBytes === undefined ? {} : { recordBytes, record }),
    cosignatures,
    ...(witnesses === undefined ? {} : { witnesses }),
  });
}

/** Consistency proof hashes as text: one base64 hash per line, each line ending in a newline (tlog-witness style). */
export function parseProofHashes(text: string): Buffer[] {
  if (text === '') return [];
  if (!text.endsWith('\n')) throw new CageError({ code: 'AUDIT_BAD_PROOF', message: 'proof hashes must each end with a newline' });
  const lines = text.slice(0, -1).split('\n');
  if (lines.length > MAX_PROOF_HASHES) throw new CageError({ code: 'AUDIT_BAD_PROOF', message: `proof has more than ${MAX_PROOF_HASHES} hashes` });
  return lines.map((l, i) => {
    const h = decodeBase64(l);
    if (h === undefined || h.length !== HASH_SIZE) throw new CageError({ code: 'AUDIT_BAD_PROOF', message: `proof hash ${i} is not a base64 ${HASH_SIZE}-byte hash` });
    return h;
  });
}

/**
 * Verifies two signed checkpoints of one log and the consistency proof between them (RFC 9162
 * §2.1.4.2). `proof` is a list of hashes or their text form (see parseProofHashes).
 */
export function verifyConsistencyBetween(
  oldCheckpointNote: string | Uint8Array,
  newCheckpointNote: string | Uint8Array,
  proof: readonly Uint8Array[] | string,
  verifier: string | NoteVerifier,
): { old: Checkpoint; new: Checkpoint } {
  const log = typeof verifier === 'string' ? parseVerifierKey(verifier) : verifier;
  const older = openCheckpoint(oldCheckpointNote, log).checkpoint;
  const newer = openCheckpoint(newCheckpointNote, log).checkpoint;
  const hashes = typeof proof === 'string' ? parseProofHashes(proof) : proof;
  if (older.size === 0 && !older.rootHash.equals(EMPTY_ROOT)) {
    throw new CageError({ code: 'AUDIT_BAD_CHECKPOINT', message: 'a checkpoint of size 0 must carry the empty tree root' });
  }
  verifyConsistency(older.size, newer.size, hashes, older.rootHash, newer.rootHash);
  return { old: older, new: newer };
}
