/**
 * Verifying court evidence: signed artifacts in, a finding (who, what role, an identity that makes
 * the same misbehaviour count once) out. Everything is checked against keys the chain holds (a
 * log's key bonded through the bank, a notary's did:key, a validator's did:key) — no oracle.
 *
 * - Log fork: two checkpoints signed by a registered log key (audit/checkpoint.ts) with the same
 *   origin and size but different roots: conclusive. Different sizes are not conclusive by
 *   themselves (a consistency proof may exist): they open a challenge the log answers with one.
 * - Notary fork: one notary's tlog-cosignatures (audit/note.ts, key = its did:key) on two
 *   checkpoints of one origin and size with different roots: conclusive (a witness verifies
 *   consistency before cosigning, so it can never honestly cosign both).
 * - Validator equivocation: two QBFT signed payloads (chain/qbft/messages.ts) by one validator
 *   for one height, round and type (PROPOSAL, PREPARE or COMMIT) with different digests.
 * - Split origin: a C2SP tlog-proof of a cage record (audit/proof.ts, the record in `extra`) and
 *   the app's Ed25519 origin signature (audit/record.ts) over another status or body digest for
 *   the same request id: both valid, so a judged case decides who lied.
 *
 * Trust: evidence is attacker-controlled; every parse or signature failure is COURT_BAD_EVIDENCE.
 */
import { createHash } from 'node:crypto';
import { openCheckpoint, parseCheckpoint, type Checkpoint } from '../../../audit/checkpoint.js';
import { leafHash } from '../../../audit/hash.js';
import { verifyInclusion } from '../../../audit/merkle.js';
import { createVerifier, openNote, parseNote, SIG_TYPE_COSIGNATURE_V1 } from '../../../audit/note.js';
import { parseProof } from '../../../audit/proof.js';
import { decodeRecord, originSignatureMessage, type AuditRecord } from '../../../audit/record.js';
import { isCageError } from '../../../core/errors.js';
import { publicKeyFromDidKey } from '../../../core/did-key.js';
import { verifyEd25519 } from '../../keys.js';
import { conflicts, decodeSignedPayload, MessageType, typeName, verifySignedPayload, type SignedPayload } from '../../qbft/messages.js';
import { fail } from '../bank/util.js';

/** Runs `f`, turning any CageError from the audit/notary/qbft parsers into COURT_BAD_EVIDENCE. */
export function asEvidence<T>(what: string, f: () => T): T {
  try {
    return f();
  } catch (err) {
    if (isCageError(err)) throw fail('COURT_BAD_EVIDENCE', `${what}: ${err.message}`);
    throw err;
  }
}

/** A stable identity for one misbehaviour: the same fork or double vote, however re-packaged, maps here. */
export function evidenceId(parts: readonly (string | number)[]): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex');
}

function rootsOrdered(a: Checkpoint, b: Checkpoint): string[] {
  return [a.rootHash.toString('hex'), b.rootHash.toString('hex')].sort();
}

/** The origin a (not yet verified) checkpoint note claims. */
export function claimedOrigin(note: string, what: string): string {
  return asEvidence(what, () => parseCheckpoint(parseNote(note).text).origin);
}

export interface LogFinding {
  readonly origin: string;
  /** The smaller (or equal) checkpoint first. */
  readonly a: Checkpoint;
  readonly b: Checkpoint;
  /** True when the sizes are equal (a conclusive fork); false: a consistency challenge. */
  readonly conclusive: boolean;
  readonly id: string;
}

/** Verifies two checkpoints with the log's registered verifier key. */
export function verifyLogPair(noteA: string, noteB: string, verifierKey: string): LogFinding {
  const a = asEvidence('checkpoint a', () => openCheckpoint(noteA, verifierKey).checkpoint);
  const b = asEvidence('checkpoint b', () => openCheckpoint(noteB, verifierKey).checkpoint);
  const [lo, hi] = a.size <= b.size ? [a, b] : [b, a];
  if (lo.rootHash.equals(hi.rootHash) && lo.size === hi.size) throw fail('COURT_NOT_CONFLICTING', 'the two checkpoints are the same tree head');
  const conclusive = lo.size === hi.size;
  const roots = conclusive ? rootsOrdered(lo, hi) : [lo.rootHash.toString('hex'), hi.rootHash.toString('hex')];
  return { origin: lo.origin, a: lo, b: hi, conclusive, id: evidenceId(['log', lo.origin, lo.size, hi.size, ...roots]) };
}

export interface NotaryFinding {
  readonly notary: string;
  readonly origin: string;
  readonly size: number;
  /** Latest cosignature timestamp (UNIX seconds). */
  readonly time: number;
  readonly id: string;
}

/** Verifies that `did` cosigned two checkpoints of one origin and size with different roots. */
export function verifyNotaryPair(did: string, noteA: string, noteB: string): NotaryFinding {
  const verifier = asEvidence('notary', () => createVerifier(did, publicKeyFromDidKey(did), SIG_TYPE_COSIGNATURE_V1));
  const open = (note: string, what: string): { cp: Checkpoint; time: number } =>
    asEvidence(what, () => {
      const n = openNote(note, [verifier]);
      const sig = n.verified.find((s) => s.verifier === verifier);
      if (sig === undefined || sig.timestamp === undefined) throw fail('COURT_BAD_EVIDENCE', `${what} has no cosignature by ${did}`);
      return { cp: parseCheckpoint(n.text), time: sig.timestamp };
    });
  const a = open(noteA, 'checkpoint a');
  const b = open(noteB, 'checkpoint b');
  if (a.cp.origin !== b.cp.origin || a.cp.size !== b.cp.size || a.cp.rootHash.equals(b.cp.rootHash)) {
    throw fail('COURT_NOT_CONFLICTING', 'a notary fork needs two cosigned checkpoints of one origin and size with different roots');
  }
  return { notary: did, origin: a.cp.origin, size: a.cp.size, time: Math.max(a.time, b.time), id: evidenceId(['notary', did, a.cp.origin, a.cp.size, ...rootsOrdered(a.cp, b.cp)]) };
}

export interface ValidatorFinding {
  readonly validator: string;
  readonly height: number;
  readonly round: number;
  readonly type: string;
  readonly id: string;
}

const EQUIVOCATION_TYPES: readonly number[] = [MessageType.PROPOSAL, MessageType.PREPARE, MessageType.COMMIT];

/** Verifies two conflicting QBFT signed payloads (base64 of their encodings) by one validator. */
export function verifyValidatorPair(a64: string, b64: string): ValidatorFinding {
  const decode = (s: string, what: string): SignedPayload =>
    asEvidence(what, () => {
      const p = decodeSignedPayload(Buffer.from(s, 'base64'));
      if (!verifySignedPayload(p, verifyEd25519)) throw fail('COURT_BAD_EVIDENCE', `${what}: the signature does not verify`);
      return p;
    });
  const a = decode(a64, 'message a');
  const b = decode(b64, 'message b');
  if (!EQUIVOCATION_TYPES.includes(a.type) || !conflicts(a, b)) {
    throw fail('COURT_NOT_CONFLICTING', 'equivocation needs two PROPOSALs, PREPAREs or COMMITs by one signer for one height and round with different digests');
  }
  return { validator: a.signer, height: a.height, round: a.round, type: typeName(a.type), id: evidenceId(['validator', a.signer, a.height, a.round, a.type]) };
}

export interface Receipt {
  readonly app: string;
  readonly requestId: string;
  readonly status: number;
  /** Hex SHA-256 of the response body the app says it sent. */
  readonly responseBodyDigest: string;
  /** Base64 Ed25519 signature over `originSignatureMessage`. */
  readonly signature: string;
}

export interface SplitFinding {
  readonly origin: string;
  readonly index: number;
  readonly record: AuditRecord;
  readonly id: string;
}

/**
 * Verifies a split-origin dispute: the tlog-proof's checkpoint with the log's key, the record's
 * inclusion, the app's receipt signature, and that the two disagree for one request id.
 */
export function verifySplitOrigin(proofText: string, receipt: Receipt, verifierKey: (origin: string) => string): SplitFinding {
  const p = asEvidence('proof', () => parseProof(proofText));
  if (p.extra === undefined) throw fail('COURT_BAD_EVIDENCE', 'the proof carries no audit record (extra)');
  const origin = claimedOrigin(p.checkpoint, 'proof checkpoint');
  const cp = asEvidence('proof checkpoint', () => openCheckpoint(p.checkpoint, verifierKey(origin)).checkpoint);
  asEvidence('proof', () => verifyInclusion(leafHash(p.extra!), p.index, cp.size, p.proof, cp.rootHash));
  const record = asEvidence('record', () => decodeRecord(p.extra!));
  if (record.requestId !== receipt.requestId) throw fail('COURT_NOT_CONFLICTING', 'the receipt and the record name different requests');
  const digest = Buffer.from(receipt.responseBodyDigest, 'hex');
  const msg = asEvidence('receipt', () => originSignatureMessage(receipt.requestId, receipt.status, digest));
  if (!verifyEd25519(receipt.app, msg, Buffer.from(receipt.signature, 'base64'))) throw fail('COURT_BAD_EVIDENCE', "the app's receipt signature does not verify");
  if (record.status === receipt.status && Buffer.compare(record.responseBodyDigest, digest) === 0) {
    throw fail('COURT_NOT_CONFLICTING', 'the receipt and the record agree');
  }
  return { origin, index: p.index, record, id: evidenceId(['split', origin, p.index]) };
}
