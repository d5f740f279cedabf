/**
 * One error type for the whole cage: `CageError` carries a stable `code` from the registry below.
 * HTTP answers put the code in a JSON body (`{"error":{"code","message","request_id"}}`); tests
 * assert codes, never messages. `docs/errors.md` lists every code; test/core/errors.test.ts keeps
 * the two in sync.
 */

/** Every error code, its HTTP status (when it reaches a client) and what it means. */
export const ERROR_CODES = {
  // Requests refused at the edge
  GW_BAD_REQUEST: { status: 400, summary: 'The request is malformed (bad request line, header or framing).' },
  GW_NO_ROUTE: { status: 404, summary: 'No route matches the request host and path.' },
  GW_BODY_TOO_LARGE: { status: 413, summary: "The request body exceeds the route's max_body_bytes." },
  GW_HEADERS_TOO_LARGE: { status: 431, summary: 'The request headers exceed limits.max_header_bytes.' },
  GW_DENIED: { status: 403, summary: 'A pipeline stage (policy, identity) refused the request.' },
  GW_INTERNAL: { status: 500, summary: 'An unexpected error inside the cage; the request id locates it in the log.' },
  // Upstream failures
  GW_UPSTREAM_UNREACHABLE: { status: 502, summary: 'The upstream refused the connection or could not be reached.' },
  GW_UPSTREAM_RESET: { status: 502, summary: 'The upstream closed or reset the connection before answering.' },
  GW_UPSTREAM_BAD_RESPONSE: { status: 502, summary: 'The upstream sent a response the cage cannot parse or forward.' },
  GW_UPSTREAM_TIMEOUT: { status: 504, summary: 'The upstream did not connect, answer or send body data within its timeout.' },
  GW_NO_HEALTHY_UPSTREAM: { status: 503, summary: "All of the route's upstreams are marked unhealthy." },
  GW_WS_UPSTREAM_FAILED: { status: 502, summary: 'The upstream refused or failed the WebSocket handshake.' },
  // Start-up and listeners
  GW_UWS_UNAVAILABLE: { status: 500, summary: "uWebSockets.js's native binary did not load; the cage does not fall back to a slow server." },
  GW_LISTEN_FAILED: { status: 500, summary: 'A listener could not bind its address (in use, or not permitted).' },
  GW_TLS_INVALID: { status: 500, summary: 'The TLS certificate or key file is missing or unreadable.' },
  // Configuration
  CONFIG_NOT_FOUND: { status: 400, summary: 'The config file does not exist or cannot be read.' },
  CONFIG_PARSE_ERROR: { status: 400, summary: 'The config file is not valid YAML.' },
  CONFIG_INVALID: { status: 400, summary: 'The config does not match the schema (unknown key, wrong type, bad value); the path is named.' },
  CONFIG_ENV_MISSING: { status: 400, summary: 'A value written as env:VAR names an environment variable that is not set.' },
  // Command line
  CLI_BAD_ARGS: { status: 400, summary: 'An unknown command or flag, or a flag with a bad value.' },
  // Admin API
  ADMIN_UNAUTHORIZED: { status: 401, summary: 'The admin API needs `Authorization: Bearer <admin token>`.' },
  ADMIN_NOT_FOUND: { status: 404, summary: 'No admin endpoint at this path.' },
  ADMIN_METHOD_NOT_ALLOWED: { status: 405, summary: 'The admin endpoint does not accept this method.' },
  ADMIN_RELOAD_FAILED: { status: 422, summary: 'A config reload was refused; the old config keeps running.' },
  // Audit log
  AUDIT_BAD_NOTE: { status: 400, summary: 'A signed note is malformed (missing blank line, bad signature line, bad encoding).' },
  AUDIT_BAD_KEY: { status: 400, summary: 'A verifier or signer key string is malformed or of an unsupported type.' },
  AUDIT_BAD_SIGNATURE: { status: 400, summary: "A note or checkpoint has no valid signature from the required key, or a known key's signature fails." },
  AUDIT_BAD_CHECKPOINT: { status: 400, summary: 'A checkpoint body is malformed (origin, size or root hash line).' },
  AUDIT_BAD_PROOF: { status: 400, summary: 'An inclusion or consistency proof is malformed or does not verify.' },
  AUDIT_BAD_RECORD: { status: 400, summary: 'An audit record does not decode, or does not hash to the proven leaf.' },
  AUDIT_BAD_TILE: { status: 400, summary: 'A tile path, hash tile or entry bundle is malformed (bad path element, wrong width, truncated bundle).' },
  AUDIT_BAD_POLICY: { status: 400, summary: 'A tlog-policy file is malformed (unknown keyword, bad key, undefined or duplicate name, no quorum line).' },
  AUDIT_QUORUM_NOT_MET: { status: 400, summary: "A checkpoint's verified cosignatures do not satisfy the policy's witness quorum." },
  AUDIT_INDEX_OUT_OF_RANGE: { status: 404, summary: "The record index or tree size is beyond the log's current size." },
  AUDIT_STORE_CORRUPT: { status: 500, summary: 'The audit log on disk is damaged beyond the torn tail that recovery trims.' },
  AUDIT_STORE_IO: { status: 503, summary: 'The audit log could not write or fsync; sync-mode routes refuse requests until it can.' },
  AUDIT_STORE_LOCKED: { status: 500, summary: 'The audit log directory is already open in this or another live process (see its state/lock file).' },
  AUDIT_ENTRY_TOO_LARGE: { status: 500, summary: 'An audit entry exceeds 65,535 bytes, the most a tlog-tiles entry bundle can hold.' },
  AUDIT_CHECKPOINT_REFUSED: { status: 500, summary: 'The store refused to save a checkpoint: its size is beyond the durable size or below the latest saved one.' },
  AUDIT_ORIGIN_SIGNATURE_INVALID: { status: 502, summary: "The app's Cage-Origin-Signature did not verify and the route refuses unsigned or badly signed answers." },
  AUDIT_RESPONSE_TOO_LARGE: { status: 502, summary: 'A sync-audited response exceeded audit.sync_max_response_bytes before its record could be made durable.' },
  // Post-quantum envelope (Oblivious-HTTP style, X-Wing HPKE)
  PQ_BAD_ENVELOPE: { status: 400, summary: 'An encapsulated request or response is malformed, truncated, tampered with, or does not decrypt.' },
  PQ_UNKNOWN_KEY: { status: 400, summary: 'The encapsulated request names a key id the cage does not hold (never issued, or past its grace period).' },
  PQ_UNSUPPORTED_SUITE: { status: 400, summary: 'The KEM, KDF or AEAD id of an encapsulated request or key configuration is not one the key accepts.' },
  PQ_BAD_BHTTP: { status: 400, summary: 'The decrypted message is not valid Binary HTTP (RFC 9292), or exceeds the configured limits.' },
  PQ_REQUIRED: { status: 403, summary: 'The route accepts only encapsulated requests (message/ohttp-req).' },
  PQ_REPLAY: { status: 400, summary: 'The encapsulated request was already answered within the freshness window (same enc).' },
  PQ_STALE: { status: 400, summary: "The inner request's Date is missing or outside the freshness window." },
  PQ_KEY_STORE: { status: 500, summary: 'The post-quantum key directory could not be read or written, or holds a damaged key file.' },
  PQ_BUSY: { status: 503, summary: 'Too many encapsulated requests are waiting to be opened (the worker pool queue is full); retry later.' },
  // BISO policies (policies/)
  POLICY_INVALID: { status: 400, summary: 'A policy bundle is refused at load: not YAML, too large or too deep, an alias, a schema or semantic error; file:line and the reason are named.' },
  POLICY_BAD_SIGNATURE: { status: 400, summary: "A policy bundle's Ed25519 signature is missing where required, malformed, by an untrusted key, or does not verify over the canonical form." },
  POLICY_DENIED: { status: 403, summary: 'The BISO policy gave a Red verdict; the body names the violated rule ids.' },
  // DID notaries (witnesses), their registry and the witnessing of checkpoints
  NOTARY_BAD_DID: { status: 400, summary: 'A DID is malformed, uses a method other than did:key or did:web, or its document does not describe it (wrong id).' },
  NOTARY_DID_UNRESOLVABLE: { status: 502, summary: 'A did:web document could not be fetched (unreachable, timeout, not 200, too large, not JSON).' },
  NOTARY_KEY_NOT_ED25519: { status: 422, summary: 'The DID names no Ed25519 key (another multicodec, JWK curve or verification method type), or the key has the wrong length.' },
  NOTARY_BAD_REQUEST: { status: 400, summary: 'An add-checkpoint body is malformed (old size line, proof lines, blank line or the signed checkpoint).' },
  NOTARY_OLD_SIZE_TOO_LARGE: { status: 400, summary: "add-checkpoint: the old size is greater than the checkpoint's size." },
  NOTARY_UNKNOWN_LOG: { status: 404, summary: "add-checkpoint: the notary witnesses no log with the checkpoint's origin." },
  NOTARY_BAD_LOG_SIGNATURE: { status: 403, summary: 'add-checkpoint: no signature on the checkpoint verifies with a log key the notary trusts for its origin.' },
  NOTARY_SIZE_CONFLICT: { status: 409, summary: 'add-checkpoint: the old size is not the size the notary last cosigned; the body (text/x.tlog.size) is that size.' },
  NOTARY_FORK: { status: 409, summary: "add-checkpoint: same size as the notary's latest checkpoint but another root hash; refused, both checkpoints kept as evidence." },
  NOTARY_BAD_PROOF: { status: 422, summary: 'add-checkpoint: the consistency proof does not verify (or a size-0 checkpoint lacks the empty root); refused, kept as evidence.' },
  NOTARY_BODY_TOO_LARGE: { status: 413, summary: "The request body exceeds the notary's limit." },
  NOTARY_NOT_FOUND: { status: 404, summary: 'No notary endpoint at this path.' },
  NOTARY_METHOD_NOT_ALLOWED: { status: 405, summary: 'The notary endpoint does not accept this method.' },
  NOTARY_STORE_IO: { status: 503, summary: 'The notary state or registry file could not be written or fsynced; nothing was cosigned or saved.' },
  NOTARY_STORE_LOCKED: { status: 500, summary: 'The notary data directory is in use by another live notary process (see its lock file).' },
  NOTARY_STORE_CORRUPT: { status: 500, summary: 'A notary state or registry file is damaged or does not match its log key; the notary refuses to start rather than forget.' },
  NOTARY_INTERNAL: { status: 500, summary: 'An unexpected error inside the notary.' },
  NOTARY_UNREACHABLE: { status: 502, summary: 'The cage could not connect to a notary, or the connection failed mid-request.' },
  NOTARY_TIMEOUT: { status: 504, summary: 'A notary did not answer add-checkpoint within the timeout.' },
  NOTARY_BAD_RESPONSE: { status: 502, summary: 'A notary answered with an unexpected status or a malformed body.' },
  NOTARY_BAD_COSIGNATURE: { status: 502, summary: "A notary's cosignature does not verify with the key its DID names." },
  NOTARY_BAD_QUORUM: { status: 400, summary: 'The notary quorum k is not 1 <= k <= n (or 0 with no notaries), or a change would break that.' },
  NOTARY_DUPLICATE: { status: 409, summary: 'The notary registry already holds this DID, key or name.' },
  NOTARY_UNKNOWN_NOTARY: { status: 404, summary: 'The notary registry holds no notary with this DID.' },
  NOTARY_BAD_REGISTRY: { status: 400, summary: 'A notary registry entry or file is malformed (URL, name, verifier key that does not match the DID).' },
} as const satisfies Record<string, { status: number; summary: string }>;

export type CageErrorCode = keyof typeof ERROR_CODES;

export interface CageErrorOptions {
  code: CageErrorCode;
  message: string;
  cause?: unknown;
}

export class CageError extends Error {
  readonly code: CageErrorCode;

  constructor(opts: CageErrorOptions) {
    super(opts.message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'CageError';
    this.code = opts.code;
  }

  /** The HTTP status this error answers with. */
  get status(): number {
    return ERROR_CODES[this.code].status;
  }
}

export function isCageError(err: unknown, code?: CageErrorCode): err is CageError {
  return err instanceof CageError && (code === undefined || err.code === code);
}

/** The JSON body every error answer carries. */
export function errorBody(code: CageErrorCode, message: string, requestId: string): string {
  return JSON.stringify({ error: { code, message, request_id: requestId } });
}
