/**
 * pqFetch: `fetch` with the request and response bodies — and the inner method, path and headers —
 * protected end to end by the cage's post-quantum envelope (RFC 9458 Oblivious-HTTP framing, HPKE
 * with the X-Wing hybrid KEM, Binary HTTP inside).
 *
 *   const res = await pqFetch('https://api.example.com/v1/things', { method: 'POST', body: '…' });
 *
 * It fetches the gateway's key configuration (`<origin>/.well-known/ohttp-keys` unless told
 * otherwise; cached for `keysMaxAgeMs`), picks the first X-Wing configuration with a KDF/AEAD pair
 * it implements, encodes the request as Binary HTTP with a Date field (RFC 9458 §6.5.1), seals it,
 * POSTs it as message/ohttp-req to the same URL, and opens the message/ohttp-res answer into a
 * standard `Response`. Only the outer POST (URL, sizes, timing) is visible to the network and to
 * TLS-terminating intermediaries.
 *
 * Trust: the key configuration is only as good as the channel it came over (HTTPS, or pinned
 * through `keyConfigs`); RFC 9458 §3 requires it to be authenticated. An answer that is not
 * encapsulated is never handed back as if it were: it raises a CageError (its code when the body
 * names a PQ_* code), after one retry with fresh keys when the gateway says PQ_UNKNOWN_KEY.
 */
import { CageError, ERROR_CODES, type CageErrorCode } from '../core/errors.js';
import { decodeResponse, encodeRequest, resolveBhttpLimits, type BhttpLimits, type Field } from '../pq/bhttp.js';
import { KEM_XWING, type Rng } from '../pq/hpke.js';
import {
  decodeKeyConfigList, encapsulateRequest, MEDIA_TYPE_OHTTP_KEYS, MEDIA_TYPE_OHTTP_REQUEST, MEDIA_TYPE_OHTTP_RESPONSE,
  selectSuite, type KeyConfig,
} from '../pq/ohttp.js';
import { checkInteger, rejectUnknownOptions } from '../pq/options.js';

export const DEFAULT_KEYS_PATH = '/.well-known/ohttp-keys';

export interface PqOptions {
  /** Where the application/ohttp-keys list lives. Default `<origin of the URL>/.well-known/ohttp-keys`. */
  keysUrl?: string | URL;
  /** Pinned configurations (application/ohttp-keys bytes or decoded); no key fetch then. */
  keyConfigs?: Uint8Array | readonly KeyConfig[];
  /** Only X-Wing configurations (default true); false also accepts DHKEM(X25519), which is not post-quantum. */
  requirePostQuantum?: boolean;
  kdfId?: number;
  aeadId?: number;
  /** Add a Date field when the request has none (default true; RFC 9458 §6.5.1). */
  addDate?: boolean;
  /** Zero bytes of Binary HTTP padding, to hide the body length. Default 0. */
  padding?: number;
  /** How long a fetched key list is reused. Default 5 minutes. */
  keysMaxAgeMs?: number;
  /** Largest encapsulated answer read. Default 64 MiB. */
  maxResponseBytes?: number;
  bhttpLimits?: Partial<BhttpLimits>;
  fetch?: typeof globalThis.fetch;
  now?: () => number;
  rng?: Rng;
}

export type PqRequestInit = RequestInit & { pq?: PqOptions };

const OPTION_KEYS = ['keysUrl', 'keyConfigs', 'requirePostQuantum', 'kdfId', 'aeadId', 'addDate', 'padding', 'keysMaxAgeMs', 'maxResponseBytes', 'bhttpLimits', 'fetch', 'now', 'rng'];

/** Fields that describe the connection, not the message (RFC 9110 §7.6.1), and Host (carried as authority). */
const NOT_FORWARDED = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'transfer-encoding', 'upgrade', 'host', 'expect']);
const NULL_BODY_STATUS = new Set([204, 205, 304]);

const keyCache = new Map<string, { configs: KeyConfig[]; expires: number }>();

/** Forgets every fetched key list (after a key compromise, or in tests). */
export function clearPqKeyCache(): void {
  keyCache.clear();
}

function fail(code: CageErrorCode, message: string, cause?: unknown): CageError {
  return new CageError({ code, message, cause });
}

function mediaType(contentType: string | null): string {
  return (contentType ?? '').split(';')[0]!.trim().toLowerCase();
}

/** Reads a body, refusing more than `max` bytes. */
async function readBounded(res: Response, max: number): Promise<Buffer> {
  if (!res.body) return Buffer.alloc(0);
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    total += chunk.length;
    if (total > max) {
      await res.body.cancel().catch(() => undefined);
      throw fail('PQ_BAD_ENVELOPE', `answer larger than ${max} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

async function fetchConfigs(keysUrl: string, opts: PqOptions, fetchImpl: typeof globalThis.fetch, now: number, signal: AbortSignal | null): Promise<KeyConfig[]> {
  const cached = keyCache.get(keysUrl);
  if (cached && cached.expires > now) return cached.configs;
  const res = await fetchImpl(keysUrl, { headers: { accept: MEDIA_TYPE_OHTTP_KEYS }, signal, redirect: 'error' });
  const body = await readBounded(res, 256 * 1024);
  if (res.status !== 200 || mediaType(res.headers.get('content-type')) !== MEDIA_TYPE_OHTTP_KEYS) {
    throw fail('PQ_UNSUPPORTED_SUITE', `key configuration at ${keysUrl} answered ${res.status} ${res.headers.get('content-type') ?? ''}`.trim());
  }
  const configs = decodeKeyConfigList(body);
  keyCache.set(keysUrl, { configs, expires: now + (opts.keysMaxAgeMs ?? 300_000) });
  return configs;
}

function pickConfig(configs: readonly KeyConfig[], opts: PqOptions): KeyConfig {
  const requirePq = opts.requirePostQuantum ?? true;
  for (const config of configs) {
    if (requirePq && config.kemId !== KEM_XWING) continue;
    try {
      selectSuite(config, opts.kdfId, opts.aeadId);
      return config;
    } catch {
      // try the next configuration
    }
  }
  throw fail('PQ_UNSUPPORTED_SUITE', `no usable key configuration${requirePq ? ' with the X-Wing KEM' : ''} among ${configs.length}`);
}

/** A non-encapsulated answer: the error code it names (when it is a PQ_* code), else PQ_BAD_ENVELOPE. */
async function clearTextError(res: Response): Promise<CageError> {
  const text = (await readBounded(res, 64 * 1024).catch(() => Buffer.alloc(0))).toString('utf8');
  let code: CageErrorCode = 'PQ_BAD_ENVELOPE';
  let detail = '';
  try {
    const parsed = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
    const named = parsed.error?.code;
    if (typeof named === 'string' && named.startsWith('PQ_') && named in ERROR_CODES) code = named as CageErrorCode;
    if (typeof parsed.error?.message === 'string') detail = `: ${parsed.error.message}`;
  } catch {
    // not JSON: keep PQ_BAD_ENVELOPE
  }
  return fail(code, `the gateway answered ${res.status} without encapsulation${detail}`);
}

/**
 * Sends `input` through the post-quantum envelope and resolves to the inner response. `init` is a
 * standard RequestInit plus `pq` options. Rejects with CageError (PQ_*) when the exchange cannot
 * be protected, and with the usual fetch errors for network failures.
 */
export async function pqFetch(input: string | URL | Request, init: PqRequestInit = {}): Promise<Response> {
  const { pq: pqOptions, ...requestInit } = init;
  const opts = pqOptions ?? {};
  rejectUnknownOptions(opts, OPTION_KEYS, 'pqFetch pq');
  const maxResponseBytes = checkInteger(opts.maxResponseBytes ?? 64 * 1024 * 1024, 'pq.maxResponseBytes', 1);
  const limits = resolveBhttpLimits(opts.bhttpLimits ?? { maxBodyBytes: maxResponseBytes });
  const fetchImpl = opts.fetch ?? globalThis.fetch;
  const now = opts.now ?? Date.now;

  const request = new Request(input, requestInit);
  const url = new URL(request.url);
  url.hash = '';
  const keysUrl = opts.keysUrl !== undefined ? new URL(opts.keysUrl, url).href : new URL(DEFAULT_KEYS_PATH, url.origin).href;

  const headers: Field[] = [];
  for (const [name, value] of request.headers) if (!NOT_FORWARDED.has(name)) headers.push([name, value]);
  if ((opts.addDate ?? true) && !request.headers.has('date')) headers.push(['date', new Date(now()).toUTCString()]);
  const body = request.body ? Buffer.from(await request.arrayBuffer()) : Buffer.alloc(0);
  const inner = encodeRequest(
    { method: request.method, scheme: url.protocol.slice(0, -1), authority: url.host, path: `${url.pathname}${url.search}`, headers, body },
    { padding: opts.padding ?? 0 },
  );

  const pinned = opts.keyConfigs === undefined ? undefined : opts.keyConfigs instanceof Uint8Array ? decodeKeyConfigList(opts.keyConfigs) : [...opts.keyConfigs];
  for (let attempt = 0; ; attempt++) {
    const configs = pinned ?? (await fetchConfigs(keysUrl, opts, fetchImpl, now(), request.signal));
    const config = pickConfig(configs, opts);
    const sealed = encapsulateRequest(config, inner, { kdfId: opts.kdfId, aeadId: opts.aeadId, rng: opts.rng });
    const res = await fetchImpl(url, {
      method: 'POST',
      headers: { 'content-type': MEDIA_TYPE_OHTTP_REQUEST, accept: MEDIA_TYPE_OHTTP_RESPONSE },
      body: sealed.bytes,
      signal: request.signal,
      redirect: 'manual',
    });
    if (mediaType(res.headers.get('content-type')) !== MEDIA_TYPE_OHTTP_RESPONSE) {
      const err = await clearTextError(res);
      // A stale key list: the request was not processed, so one retry with fresh keys is safe.
      if (err.code === 'PQ_UNKNOWN_KEY' && pinned === undefined && attempt === 0) {
        keyCache.delete(keysUrl);
        continue;
      }
      throw err;
    }
    const plain = sealed.decapsulateResponse(await readBounded(res, maxResponseBytes));
    const answer = decodeResponse(plain, limits);
    return new Response(NULL_BODY_STATUS.has(answer.status) ? null : answer.body, { status: answer.status, headers: answer.headers });
  }
}
