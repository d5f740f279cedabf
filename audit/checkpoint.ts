/**
 * C2SP checkpoints (https://c2sp.org/tlog-checkpoint): the signed-note body `<origin>\n<tree
 * size>\n<base64 root hash>\n[extension lines]`, signed by the log's key and optionally cosigned
 * by witnesses (https://c2sp.org/tlog-cosignature).
 *
 * Trust: checkpoint text is attacker-controlled until `openCheckpoint` has verified the log's
 * signature with a configured verifier key; the body is parsed strictly either way. Tree sizes
 * above 2^53 − 1 are refused (JS numbers), although the spec allows up to 2^64 − 1.
 */
import { CageError } from '../core/errors.js';
import { HASH_SIZE } from './hash.js';
import {
  decodeBase64,
  encodeBase64,
  isWellFormedString,
  openNote,
  signNote,
  type NoteSignature,
  type NoteSigner,
  type NoteVerifier,
  type VerifiedSignature,
  parseVerifierKey,
} from './note.js';

export interface Checkpoint {
  /** Line 1: the log's identity, e.g. `example.com/log42`. */
  readonly origin: string;
  /** Line 2: number of leaves. */
  readonly size: number;
  /** Line 3: the RFC 6962 root hash at `size` (32 bytes). */
  readonly rootHash: Buffer;
  /** Lines 4…: opaque, non-empty extension lines (NOT RECOMMENDED by the spec). */
  readonly extensions: readonly string[];
}

function bad(message: string): CageError {
  return new CageError({ code: 'AUDIT_BAD_CHECKPOINT', message });
}

const SIZE_RE = /^(?:0|[1-9][0-9]*)$/;
// eslint-disable-next-line no-control-regex -- matching the control characters the spec forbids
const CONTROL_RE = /[\0-\x1f]/;

/** Parses a checkpoint body (the note text, ending in a newline). Throws AUDIT_BAD_CHECKPOINT. */
export function parseCheckpoint(body: string): Checkpoint {
  if (typeof body !== 'string') throw bad('checkpoint body is not text');
  if (!isWellFormedString(body)) throw bad('checkpoint body is not valid UTF-8');
  if (!body.endsWith('\n')) throw bad('checkpoint body does not end with a newline');
  const lines = body.slice(0, -1).split('\n');
  if (lines.length < 3) throw bad(`checkpoint body has ${lines.length} lines, needs origin, size and root hash`);
  for (const line of lines) if (CONTROL_RE.test(line)) throw bad('checkpoint body contains a control character');
  const [origin, sizeText, rootText, ...extensions] = lines as [string, string, string, ...string[]];
  if (origin.length === 0) throw bad('checkpoint origin line is empty');
  if (!SIZE_RE.test(sizeText)) throw bad('checkpoint tree size is not a decimal without leading zeroes');
  const size = Number(sizeText);
  if (!Number.isSafeInteger(size)) throw bad(`checkpoint tree size ${sizeText} exceeds 2^53 - 1`);
  const rootHash = decodeBase64(rootText);
  if (rootHash === undefined) throw bad('checkpoint root hash is not canonical base64');
  if (rootHash.length !== HASH_SIZE) throw bad(`checkpoint root hash is ${rootHash.length} bytes, want ${HASH_SIZE}`);
  extensions.forEach((e, i) => {
    if (e.length === 0) throw bad(`checkpoint extension line ${i + 1} is empty`);
  });
  return Object.freeze({ origin, size, rootHash, extensions: Object.freeze(extensions) });
}

/** Formats a checkpoint body; the inverse of `parseCheckpoint`. */
export function formatCheckpoint(cp: Checkpoint): string {
  if (typeof cp.origin !== 'string' || cp.origin.length === 0 || cp.origin.includes('\n') || CONTROL_RE.test(cp.origin)) {
    throw bad('checkpoint origin must be one non-empty line');
  }
  if (!Number.isSafeInteger(cp.size) || cp.size < 0) throw bad(`checkpoint size ${String(cp.size)} is not an integer in [0, 2^53)`);
  if (!(cp.rootHash instanceof Uint8Array) || cp.rootHash.length !== HASH_SIZE) throw bad(`checkpoint root hash must be ${HASH_SIZE} bytes`);
  let out = `${cp.origin}\n${cp.size}\n${encodeBase64(cp.rootHash)}\n`;
  for (const e of cp.extensions) {
    if (e.length === 0 || CONTROL_RE.test(e)) throw bad('checkpoint extension lines must be non-empty single lines');
    out += e + '\n';
  }
  return out;
}

/** Signs a checkpoint with the log's signer (and any others); returns the note text. */
export function signCheckpoint(signer: NoteSigner | readonly NoteSigner[], cp: Checkpoint): string {
  const signers = Array.isArray(signer) ? (signer as readonly NoteSigner[]) : [signer as NoteSigner];
  return signNote(formatCheckpoint(cp), signers);
}

export interface OpenedCheckpoint {
  readonly checkpoint: Checkpoint;
  /** The checkpoint body exactly as signed. */
  readonly body: string;
  /** The log's verified signature. */
  readonly logSignature: VerifiedSignature;
  /** Verified signatures from the `cosigners` passed in (with their timestamps). */
  readonly cosignatures: readonly VerifiedSignature[];
  /** Every other signature line, unverified (unknown keys: witnesses, rotated log keys, …). */
  readonly otherSignatures: readonly NoteSignature[];
}

export interface OpenCheckpointOptions {
  /** Expected origin line; defaults to the log key's name (tlog-checkpoint: the key name SHOULD match the origin). */
  readonly origin?: string;
  /** Known cosigner keys: their signatures are verified, and a failing one rejects the checkpoint. */
  readonly cosigners?: readonly NoteVerifier[];
}

/**
 * Verifies a signed checkpoint against the log's verifier key and parses it. Throws AUDIT_BAD_NOTE,
 * AUDIT_BAD_SIGNATURE (no valid log signature, or a failing known signature) or
 * AUDIT_BAD_CHECKPOINT (body malformed, or origin not the expected one).
 */
export function openCheckpoint(noteText: string | Uint8Array, logVerifier: NoteVerifier | string, opts: OpenCheckpointOptions = {}): OpenedCheckpoint {
  const log = typeof logVerifier === 'string' ? parseVerifierKey(logVerifier) : logVerifier;
  const cosigners = opts.cosigners ?? [];
  const opened = openNote(noteText, [log, ...cosigners]);
  const logSignature = opened.verified.find((s) => s.name === log.name && s.keyId === log.keyId);
  if (logSignature === undefined) {
    throw new CageError({ code: 'AUDIT_BAD_SIGNATURE', message: `checkpoint has no signature from the log key ${log.name}` });
  }
  const checkpoint = parseCheckpoint(opened.text);
  const origin = opts.origin ?? log.name;
  if (checkpoint.origin !== origin) throw bad(`checkpoint origin ${JSON.stringify(checkpoint.origin)} is not ${JSON.stringify(origin)}`);
  return Object.freeze({
    checkpoint,
    body: opened.text,
    logSignature,
    cosignatures: Object.freeze(opened.verified.filter((s) => s !== logSignature)),
    otherSignatures: opened.unverified,
  });
}
