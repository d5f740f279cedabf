/**
 * The log's side of C2SP tlog-witness: POST <submission prefix>/add-checkpoint and classify the
 * answer. 200 → the cosignature lines (syntax checked here; the coordinator verifies them with the
 * notary's key); 409 with text/x.tlog.size → the notary's size (resend from there); anything else
 * → an error with a NOTARY_* code. Never throws for network or protocol failures.
 *
 * Trust: the notary's answer is untrusted: bodies are capped, lines parsed strictly, and a code
 * in a JSON error body is kept only when it is one of our NOTARY_* codes.
 */
import { ERROR_CODES, type CageErrorCode } from '../core/errors.js';
import { decodeUtf8, MAX_NOTE_SIGNATURES, parseSignatureLine } from '../audit/note.js';
import { formatAddCheckpointBody, TLOG_SIZE_CONTENT_TYPE } from './witness.js';

export interface AddCheckpointInput {
  readonly oldSize: number;
  readonly proof: readonly Uint8Array[];
  /** The log-signed checkpoint note. */
  readonly note: string;
}

export type AddCheckpointResult =
  /** Signature lines as sent, each without its newline (`— <name> <base64>`). */
  | { readonly status: 'cosigned'; readonly lines: readonly string[] }
  /** The notary's recorded size differs from oldSize: resend with a proof from `size`. */
  | { readonly status: 'conflict'; readonly size: number }
  /** httpStatus is 0 when no HTTP answer came. */
  | { readonly status: 'error'; readonly code: CageErrorCode; readonly httpStatus: number; readonly message: string };

export type FetchFn = (url: string, init: { method: 'POST'; body: string; headers: Record<string, string>; signal: AbortSignal }) => Promise<Response>;

export interface AddCheckpointOptions {
  /** Default: the global fetch (undici, keep-alive). */
  readonly fetch?: FetchFn;
  /** Whole-exchange timeout (default 10 s). */
  readonly timeoutMs?: number;
  /** Largest answer read (default 64 KiB). */
  readonly maxResponseBytes?: number;
}

const OPTION_KEYS = new Set(['fetch', 'timeoutMs', 'maxResponseBytes']);
const SIZE_BODY_RE = /^(0|[1-9][0-9]{0,15})\n$/;

const STATUS_CODES: Record<number, CageErrorCode> = {
  400: 'NOTARY_BAD_REQUEST',
  403: 'NOTARY_BAD_LOG_SIGNATURE',
  404: 'NOTARY_UNKNOWN_LOG',
  409: 'NOTARY_FORK',
  413: 'NOTARY_BODY_TOO_LARGE',
  422: 'NOTARY_BAD_PROOF',
  503: 'NOTARY_STORE_IO',
};

function error(code: CageErrorCode, httpStatus: number, message: string): AddCheckpointResult {
  return { status: 'error', code, httpStatus, message };
}

class TooLarge extends Error {}

async function readCapped(res: Response, limit: number): Promise<Buffer> {
  if (res.body === null) return Buffer.alloc(0);
  const reader = res.body.getReader();
  const chunks: Buffer[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return Buffer.concat(chunks);
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel().catch(() => undefined);
      throw new TooLarge();
    }
    chunks.push(Buffer.from(value));
  }
}

/** The NOTARY_* code of a JSON error body, if it names one of ours. */
function codeOf(body: string): { code?: CageErrorCode; message?: string } {
  try {
    const j = JSON.parse(body) as { error?: { code?: unknown; message?: unknown } };
    const code = j.error?.code;
    const message = typeof j.error?.message === 'string' ? j.error.message.slice(0, 500) : undefined;
    if (typeof code === 'string' && code.startsWith('NOTARY_') && Object.hasOwn(ERROR_CODES, code)) return { code: code as CageErrorCode, ...(message === undefined ? {} : { message }) };
    return message === undefined ? {} : { message };
  } catch {
    return {};
  }
}

/** Parses a 200 body: one or more `— name base64` lines, each ending in a newline. Undefined if malformed. */
export function parseCosignatureLines(body: string): string[] | undefined {
  if (body.length === 0 || !body.endsWith('\n')) return undefined;
  const lines = body.slice(0, -1).split('\n');
  if (lines.length > MAX_NOTE_SIGNATURES) return undefined;
  try {
    for (const l of lines) parseSignatureLine(l);
  } catch {
    return undefined;
  }
  return lines;
}

/** Submits a checkpoint to a notary (tlog-witness add-checkpoint). `url` is its submission prefix. */
export async function addCheckpoint(url: string, input: AddCheckpointInput, opts: AddCheckpointOptions = {}): Promise<AddCheckpointResult> {
  for (const k of Object.keys(opts)) if (!OPTION_KEYS.has(k)) throw new TypeError(`addCheckpoint: unknown option ${JSON.stringify(k)}`);
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const limit = opts.maxResponseBytes ?? 64 * 1024;
  const fetchImpl = opts.fetch ?? (globalThis.fetch as FetchFn);
  let body: string;
  try {
    body = formatAddCheckpointBody(input.oldSize, input.proof, input.note);
  } catch (err) {
    return error('NOTARY_BAD_REQUEST', 0, (err as Error).message);
  }
  const endpoint = `${url.replace(/\/+$/, '')}/add-checkpoint`;
  const signal = AbortSignal.timeout(timeoutMs);
  let res: Response;
  let raw: Buffer;
  try {
    res = await fetchImpl(endpoint, { method: 'POST', body, headers: { 'content-type': 'text/plain; charset=utf-8' }, signal });
    raw = await readCapped(res, limit);
  } catch (err) {
    if (err instanceof TooLarge) return error('NOTARY_BAD_RESPONSE', 0, `the answer of ${endpoint} exceeds ${limit} bytes`);
    if (signal.aborted) return error('NOTARY_TIMEOUT', 0, `${endpoint} did not answer within ${timeoutMs} ms`);
    const cause = (err as { cause?: { code?: string } }).cause?.code;
    return error('NOTARY_UNREACHABLE', 0, `${endpoint}: ${cause ?? (err as Error).message}`);
  }
  const text = decodeUtf8(raw);
  if (text === undefined) return error('NOTARY_BAD_RESPONSE', res.status, `the answer of ${endpoint} is not UTF-8`);
  if (res.status === 200) {
    const lines = parseCosignatureLines(text);
    return lines === undefined ? error('NOTARY_BAD_RESPONSE', 200, `the answer of ${endpoint} is not cosignature lines`) : { status: 'cosigned', lines };
  }
  const contentType = (res.headers.get('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
  if (res.status === 409 && contentType === TLOG_SIZE_CONTENT_TYPE) {
    const m = SIZE_BODY_RE.exec(text);
    if (m === null || !Number.isSafeInteger(Number(m[1]))) return error('NOTARY_BAD_RESPONSE', 409, `the size answer of ${endpoint} is malformed`);
    return { status: 'conflict', size: Number(m[1]) };
  }
  const { code, message } = codeOf(text);
  const fallback = STATUS_CODES[res.status] ?? 'NOTARY_BAD_RESPONSE';
  return error(code ?? fallback, res.status, message ?? `${endpoint} answered ${res.status}`);
}
