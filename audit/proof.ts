/**
 * C2SP transparency log proofs (https://c2sp.org/tlog-proof): the offline-verifiable text file
 *
 *     c2sp.org/tlog-proof@v1
 *     [extra <base64 opaque data>]
 *     index <decimal>
 *     <base64 hash>        (zero or more, leaf's sibling first; RFC 6962 §2.1.1 audit path)
 *     <empty line>
 *     <signed checkpoint note, verbatim>
 *
 * HTTP Cage puts the encoded audit record in `extra`, so a proof file alone is enough to check
 * what was recorded (the inclusion proof authenticates it). Trust: the file is attacker-controlled
 * and parsed strictly, every malformation failing with AUDIT_BAD_PROOF; `extra` is unauthenticated
 * until the inclusion proof has verified its hash; the checkpoint is checked by `verify.ts`.
 */
import { CageError } from '../core/errors.js';
import { HASH_SIZE } from './hash.js';
import { MAX_PROOF_HASHES } from './merkle.js';
import { decodeBase64, encodeBase64, decodeUtf8, isWellFormedString, MAX_NOTE_BYTES } from './note.js';

export const TLOG_PROOF_HEADER = 'c2sp.org/tlog-proof@v1';
/** Largest `extra` payload (an audit record is at most 65535 bytes). */
export const MAX_PROOF_EXTRA_BYTES = 65536;
/** Largest proof file: the note limit plus room for extra data and hashes. */
export const MAX_PROOF_FILE_BYTES = MAX_NOTE_BYTES + 128 * 1024;

export interface TlogProof {
  /** Opaque application data (HTTP Cage: the encoded audit record); unauthenticated by itself. */
  readonly extra?: Buffer;
  /** Zero-based index of the entry in the log. */
  readonly index: number;
  /** Inclusion proof hashes, leaf's sibling first. */
  readonly proof: readonly Buffer[];
  /** The signed checkpoint note, verbatim. */
  readonly checkpoint: string;
}

function bad(message: string): CageError {
  return new CageError({ code: 'AUDIT_BAD_PROOF', message });
}

const INDEX_RE = /^index (0|[1-9][0-9]*)$/;

/** Parses a tlog-proof file. Throws AUDIT_BAD_PROOF for every malformation of the proof part. */
export function parseProof(input: string | Uint8Array): TlogProof {
  let text: string;
  if (typeof input === 'string') {
    if (input.length > MAX_PROOF_FILE_BYTES || Buffer.byteLength(input, 'utf8') > MAX_PROOF_FILE_BYTES) throw bad(`proof file is larger than ${MAX_PROOF_FILE_BYTES} bytes`);
    if (!isWellFormedString(input)) throw bad('proof file is not valid UTF-8');
    text = input;
  } else {
    if (!(input instanceof Uint8Array)) throw bad('proof file is neither text nor bytes');
    if (input.length > MAX_PROOF_FILE_BYTES) throw bad(`proof file is larger than ${MAX_PROOF_FILE_BYTES} bytes`);
    const s = decodeUtf8(input);
    if (s === undefined) throw bad('proof file is not valid UTF-8');
    text = s;
  }
  let pos = 0;
  let lineNo = 0;
  const nextLine = (): string => {
    const nl = text.indexOf('\n', pos);
    lineNo++;
    if (nl < 0) throw bad(`proof file ends without a newline at line ${lineNo}`);
    const line = text.slice(pos, nl);
    pos = nl + 1;
    if (line.includes('\r')) throw bad(`line ${lineNo} contains a carriage return`);
    return line;
  };

  if (nextLine() !== TLOG_PROOF_HEADER) throw bad(`first line is not ${TLOG_PROOF_HEADER}`);
  let line = nextLine();
  let extra: Buffer | undefined;
  if (line.startsWith('extra')) {
    if (!line.startsWith('extra ')) throw bad('extra line must be "extra <base64>"');
    const b = decodeBase64(line.slice('extra '.length));
    if (b === undefined || b.length === 0) throw bad('extra data is not non-empty canonical base64');
    if (b.length > MAX_PROOF_EXTRA_BYTES) throw bad(`extra data is larger than ${MAX_PROOF_EXTRA_BYTES} bytes`);
    extra = b;
    line = nextLine();
  }
  const m = INDEX_RE.exec(line);
  if (m === null) throw bad(`line ${lineNo} is not "index <decimal without leading zeroes>"`);
  const index = Number(m[1]);
  if (!Number.isSafeInteger(index)) throw bad(`index ${m[1]} exceeds 2^53 - 1`);
  const proof: Buffer[] = [];
  for (;;) {
    line = nextLine();
    if (line === '') break;
    if (proof.length === MAX_PROOF_HASHES) throw bad(`proof has more than ${MAX_PROOF_HASHES} hashes`);
    const h = decodeBase64(line);
    if (h === undefined) throw bad(`proof hash on line ${lineNo} is not canonical base64`);
    if (h.length !== HASH_SIZE) throw bad(`proof hash on line ${lineNo} is ${h.length} bytes, want ${HASH_SIZE}`);
    proof.push(h);
  }
  const checkpoint = text.slice(pos);
  if (checkpoint.length === 0) throw bad('proof file has no checkpoint after the empty line');
  if (!checkpoint.endsWith('\n')) throw bad('checkpoint in the proof file does not end with a newline');
  return Object.freeze({ ...(extra === undefined ? {} : { extra }), index, proof: Object.freeze(proof), checkpoint });
}

/** Formats a tlog-proof file; the inverse of `parseProof`. */
export function formatProof(p: TlogProof): string {
  if (!Number.isSafeInteger(p.index) || p.index < 0) throw bad(`index ${String(p.index)} is not an integer in [0, 2^53)`);
  if (p.proof.length > MAX_PROOF_HASHES) throw bad(`proof has more than ${MAX_PROOF_HASHES} hashes`);
  let out = TLOG_PROOF_HEADER + '\n';
  if (p.extra !== undefined) {
    if (p.extra.length === 0 || p.extra.length > MAX_PROOF_EXTRA_BYTES) throw bad(`extra data must be 1 to ${MAX_PROOF_EXTRA_BYTES} bytes`);
    out += `extra ${encodeBase64(p.extra)}\n`;
  }
  out += `index ${p.index}\n`;
  for (const h of p.proof) {
    if (h.length !== HASH_SIZE) throw bad(`proof hash is ${h.length} bytes, want ${HASH_SIZE}`);
    out += encodeBase64(h) + '\n';
  }
  if (typeof p.checkpoint !== 'string' || p.checkpoint.length === 0 || !p.checkpoint.endsWith('\n')) throw bad('checkpoint must be a signed note ending in a newline');
  return out + '\n' + p.checkpoint;
}
