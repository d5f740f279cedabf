/**
 * The witness state machine of C2SP tlog-witness (https://c2sp.org/tlog-witness §add-checkpoint),
 * pure: a request body and the latest checkpoint recorded for its log go in; the answer, the state
 * to persist before answering, and any evidence of log misbehaviour come out. The shell
 * (notary/io/server.ts) serializes requests per log, persists durably, and only then cosigns.
 *
 * Checks, in the spec's order: body syntax (400) → origin known (404) → a trusted log signature
 * verifies (403) → old size ≤ checkpoint size (400) → old size = the recorded size, or 0 if none
 * (409, body = recorded size, `text/x.tlog.size`) → equal sizes need equal roots (409, a fork) →
 * the consistency proof verifies (422) → persist, cosign (200, one `— <DID> <cosignature>` line).
 *
 * Evidence kept (the spec allows logging such requests; the Court can use them later), each with
 * both log-signed checkpoints: `fork` (same size, another root: conclusive equivocation),
 * `bad-proof` (a consistency proof from the recorded checkpoint fails: suggestive, anyone can send
 * a garbage proof with a real checkpoint), `rollback` (a validly signed checkpoint smaller than
 * the one cosigned: the log must later prove it consistent, or it rewrote history).
 *
 * Trust: the body is attacker-controlled (no authentication beyond the log's signature) and is
 * parsed strictly; configured log keys and the recorded state are trusted.
 */
import { CageError, ERROR_CODES, isCageError, type CageErrorCode } from '../core/errors.js';
import { parseCheckpoint } from '../audit/checkpoint.js';
import { EMPTY_ROOT, HASH_SIZE } from '../audit/hash.js';
import { MAX_PROOF_HASHES, verifyConsistency } from '../audit/merkle.js';
import { decodeBase64, decodeUtf8, encodeBase64, openNote, parseNote, SIG_TYPE_ED25519, type NoteSigner, type NoteVerifier } from '../audit/note.js';

/** tlog-witness: clients MUST NOT send more than 63 consistency proof lines. */
export const MAX_WITNESS_PROOF_LINES = 63;
export const TLOG_SIZE_CONTENT_TYPE = 'text/x.tlog.size';
export const COSIGNATURE_CONTENT_TYPE = 'text/plain; charset=utf-8';

/** The latest checkpoint a witness cosigned for one log. */
export interface LogState {
  readonly origin: string;
  readonly size: number;
  readonly rootHash: Buffer;
  /** The log-signed checkpoint note, as received (kept as evidence material). */
  readonly note: string;
}

export interface AddCheckpointRequest {
  readonly oldSize: number;
  readonly proof: readonly Buffer[];
  /** The signed checkpoint note, as received. */
  readonly note: string;
  /** Its origin line (unverified until decided). */
  readonly origin: string;
}

export type EvidenceKind = 'fork' | 'bad-proof' | 'rollback';

/** Two log-signed checkpoints that the log cannot both have honestly produced (or must reconcile). */
export interface Evidence {
  readonly kind: EvidenceKind;
  readonly origin: string;
  /** What the witness had cosigned. */
  readonly recorded: LogState;
  /** What was submitted. */
  readonly submitted: AddCheckpointRequest;
  /** The witness's error code for the refusal. */
  readonly code: CageErrorCode;
  readonly message: string;
}

export interface WitnessResponse {
  readonly status: number;
  readonly contentType: string;
  readonly body: string;
  /** Set on refusals. */
  readonly code?: CageErrorCode;
}

export type Decision =
  | { readonly accept: false; readonly response: WitnessResponse; readonly evidence?: Evidence }
  /** Persist `state` durably, then answer `cosign(cosigner, checkpointBody)`. */
  | { readonly accept: true; readonly state: LogState; readonly checkpointBody: string; readonly changed: boolean; readonly evidence?: undefined };

/** The logs a witness serves: verifier keys (type 0x01) by origin = key name. Several keys per origin are allowed (rotation). */
export class KnownLogs {
  private readonly byOrigin = new Map<string, NoteVerifier[]>();

  constructor(verifiers: readonly NoteVerifier[]) {
    for (const v of verifiers) {
      if (v.type !== SIG_TYPE_ED25519) throw new CageError({ code: 'AUDIT_BAD_KEY', message: `log key ${v.name} must have signature type 0x01` });
      const list = this.byOrigin.get(v.name) ?? [];
      if (!list.some((x) => x.keyId === v.keyId && x.publicKey.equals(v.publicKey))) list.push(v);
      this.byOrigin.set(v.name, list);
    }
  }

  get origins(): string[] {
    return [...this.byOrigin.keys()];
  }

  verifiers(origin: string): readonly NoteVerifier[] | undefined {
    return this.byOrigin.get(origin);
  }
}

export function errorResponse(code: CageErrorCode, message: string): WitnessResponse {
  return { status: ERROR_CODES[code].status, contentType: 'application/json', body: JSON.stringify({ error: { code, message } }) + '\n', code };
}

function refuse(code: CageErrorCode, message: string, evidence?: Evidence): Decision {
  return evidence === undefined ? { accept: false, response: errorResponse(code, message) } : { accept: false, response: errorResponse(code, message), evidence };
}

function badRequest(message: string): CageError {
  return new CageError({ code: 'NOTARY_BAD_REQUEST', message });
}

const SIZE_RE = /^(?:0|[1-9][0-9]{0,15})$/;

/**
 * Parses an add-checkpoint body: `old <size>\n`, up to 63 base64 hash lines, `\n`, then the signed
 * checkpoint note. Throws NOTARY_BAD_REQUEST (the note's own syntax included).
 */
export function parseAddCheckpointBody(body: Uint8Array | string): AddCheckpointRequest {
  const text = typeof body === 'string' ? body : decodeUtf8(body);
  if (text === undefined) throw badRequest('body is not valid UTF-8');
  const nl = text.indexOf('\n');
  if (nl < 0) throw badRequest('body has no old size line');
  const first = text.slice(0, nl);
  if (!first.startsWith('old ')) throw badRequest('the first line must be "old <size>"');
  const sizeText = first.slice(4);
  if (!SIZE_RE.test(sizeText) || !Number.isSafeInteger(Number(sizeText))) throw badRequest('old size is not a decimal without leading zeroes below 2^53');
  const oldSize = Number(sizeText);
  const proof: Buffer[] = [];
  let at = nl + 1;
  for (;;) {
    const end = text.indexOf('\n', at);
    if (end < 0) throw badRequest('body has no blank line before the checkpoint');
    const line = text.slice(at, end);
    at = end + 1;
    if (line === '') break;
    if (proof.length >= MAX_WITNESS_PROOF_LINES) throw badRequest(`more than ${MAX_WITNESS_PROOF_LINES} consistency proof lines`);
    const h = decodeBase64(line);
    if (h === undefined || h.length !== HASH_SIZE) throw badRequest(`consistency proof line ${proof.length + 1} is not a base64 ${HASH_SIZE}-byte hash`);
    proof.push(h);
  }
  const note = text.slice(at);
  let origin: string;
  try {
    origin = parseCheckpoint(parseNote(note).text).origin;
  } catch (err) {
    if (isCageError(err)) throw badRequest(`checkpoint: ${err.code}: ${err.message}`);
    throw err;
  }
  return Object.freeze({ oldSize, proof: Object.freeze(proof), note, origin });
}

/** Formats an add-checkpoint body (the client side of parseAddCheckpointBody). */
export function formatAddCheckpointBody(oldSize: number, proof: readonly Uint8Array[], note: string): string {
  if (!Number.isSafeInteger(oldSize) || oldSize < 0) throw new CageError({ code: 'NOTARY_BAD_REQUEST', message: `old size ${String(oldSize)} is not an integer in [0, 2^53)` });
  if (proof.length > MAX_WITNESS_PROOF_LINES) throw new CageError({ code: 'NOTARY_BAD_REQUEST', message: `more than ${MAX_WITNESS_PROOF_LINES} proof hashes` });
  return `old ${oldSize}\n${proof.map((h) => encodeBase64(h) + '\n').join('')}\n${note}`;
}

/**
 * Decides one add-checkpoint request against the recorded state of its log (undefined: never
 * cosigned). Pure; never throws for attacker input.
 */
export function decideAddCheckpoint(logs: KnownLogs, req: AddCheckpointRequest, recorded: LogState | undefined): Decision {
  const verifiers = logs.verifiers(req.origin);
  if (verifiers === undefined) return refuse('NOTARY_UNKNOWN_LOG', `no log with origin ${JSON.stringify(req.origin)} is witnessed here`);
  if (recorded !== undefined && recorded.origin !== req.origin) throw new Error('decideAddCheckpoint: recorded state belongs to another log');

  // The log's signature (signed-note: unknown keys ignored, a failing known key rejects).
  let body: string;
  try {
    const opened = openNote(req.note, verifiers);
    body = opened.text;
  } catch (err) {
    if (!isCageError(err)) throw err;
    const code: CageErrorCode = err.code === 'AUDIT_BAD_NOTE' ? 'NOTARY_BAD_REQUEST' : 'NOTARY_BAD_LOG_SIGNATURE';
    return refuse(code, `checkpoint: ${err.message}`);
  }
  const cp = parseCheckpoint(body); // parsed already by parseAddCheckpointBody; same text
  const recordedSize = recorded?.size ?? 0;

  let rollback: Evidence | undefined;
  if (recorded !== undefined && cp.size < recorded.size) {
    rollback = { kind: 'rollback', origin: req.origin, recorded, submitted: req, code: 'NOTARY_SIZE_CONFLICT', message: `checkpoint size ${cp.size} is below the cosigned size ${recorded.size}` };
  }
  if (req.oldSize > cp.size) {
    const d = refuse('NOTARY_OLD_SIZE_TOO_LARGE', `old size ${req.oldSize} is greater than the checkpoint size ${cp.size}`, rollback);
    return d;
  }
  if (req.oldSize !== recordedSize) {
    return {
      accept: false,
      response: { status: 409, contentType: TLOG_SIZE_CONTENT_TYPE, body: `${recordedSize}\n`, code: 'NOTARY_SIZE_CONFLICT' },
      ...(rollback === undefined ? {} : { evidence: rollback }),
    };
  }
  // From here old size = recorded size ≤ checkpoint size.
  if (recorded !== undefined && cp.size === recorded.size) {
    if (!cp.rootHash.equals(recorded.rootHash)) {
      const message = `checkpoint size ${cp.size} has another root hash than the one cosigned`;
      return refuse('NOTARY_FORK', message, { kind: 'fork', origin: req.origin, recorded, submitted: req, code: 'NOTARY_FORK', message });
    }
    if (req.proof.length !== 0) return refuse('NOTARY_BAD_PROOF', 'a proof between equal sizes must be empty');
    return { accept: true, state: recorded, checkpointBody: body, changed: false };
  }
  if (cp.size === 0 && !cp.rootHash.equals(EMPTY_ROOT)) return refuse('NOTARY_BAD_PROOF', 'a checkpoint of size 0 must carry the empty tree root');
  if (recorded === undefined || recordedSize === 0) {
    if (req.proof.length !== 0) return refuse('NOTARY_BAD_PROOF', 'the proof from size 0 must be empty');
  } else {
    try {
      if (req.proof.length > MAX_PROOF_HASHES) throw new CageError({ code: 'AUDIT_BAD_PROOF', message: 'too many proof hashes' });
      verifyConsistency(recorded.size, cp.size, req.proof, recorded.rootHash, cp.rootHash);
    } catch (err) {
      if (!isCageError(err)) throw err;
      const message = `consistency proof from ${recorded.size} to ${cp.size}: ${err.message}`;
      return refuse('NOTARY_BAD_PROOF', message, { kind: 'bad-proof', origin: req.origin, recorded, submitted: req, code: 'NOTARY_BAD_PROOF', message });
    }
  }
  const state: LogState = Object.freeze({ origin: req.origin, size: cp.size, rootHash: cp.rootHash, note: req.note });
  return { accept: true, state, checkpointBody: body, changed: true };
}

/** The 200 answer: the witness's cosignature line(s) over the checkpoint body (tlog-cosignature). */
export function cosign(cosigners: NoteSigner | readonly NoteSigner[], checkpointBody: string): WitnessResponse {
  const list = Array.isArray(cosigners) ? (cosigners as readonly NoteSigner[]) : [cosigners as NoteSigner];
  const text = Buffer.from(checkpointBody, 'utf8');
  let body = '';
  for (const c of list) {
    const id = Buffer.alloc(4);
    id.writeUInt32BE(c.keyId, 0);
    body += `\u2014 ${c.name} ${encodeBase64(Buffer.concat([id, c.sign(text)]))}\n`;
  }
  return { status: 200, contentType: COSIGNATURE_CONTENT_TYPE, body };
}

/**
 * An in-memory witness for tests and embedding: parse, decide, record, cosign, in one call
 * (callers serialize; the durable server does the same with persistence in between).
 */
export class MemoryWitness {
  readonly states = new Map<string, LogState>();
  readonly evidence: Evidence[] = [];

  constructor(
    private readonly logs: KnownLogs,
    private readonly cosigner: NoteSigner,
  ) {}

  addCheckpoint(body: Uint8Array | string): WitnessResponse {
    let req: AddCheckpointRequest;
    try {
      req = parseAddCheckpointBody(body);
    } catch (err) {
      if (isCageError(err)) return errorResponse(err.code, err.message);
      throw err;
    }
    const d = decideAddCheckpoint(this.logs, req, this.states.get(req.origin));
    if (d.evidence !== undefined) this.evidence.push(d.evidence);
    if (!d.accept) return d.response;
    this.states.set(req.origin, d.state);
    return cosign(this.cosigner, d.checkpointBody);
  }
}
