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
