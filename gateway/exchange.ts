/**
 * One request/response exchange as it moves through the pipeline
 * (identify → limit → decide → open → forward → record). A class with every field set in the
 * constructor so all exchanges share one hidden class (test/gateway/exchange.test.ts checks it).
 * Everything in it that came from the client (headers, path, host) is attacker-controlled.
 */
import type { Hash } from 'node:crypto';
import type { CageErrorCode } from '../core/errors.js';

export type IdentityKind = '' | 'api-key' | 'jwt' | 'did' | 'zk';

/** What the cage learns from an anonymous membership proof: the group, which of its roots the
 *  proof was against, the nullifier for (scope, epoch), and nothing else. */
export interface ZkFacts {
  readonly group: string;
  readonly root: string;
  readonly nullifier: string;
  readonly scope: string;
  readonly epoch: number;
  /** 'request' (a proof per request) or 'session' (a key bound by an epoch proof). */
  readonly mode: 'request' | 'session';
}

/** A request body that stages can look into before it is forwarded (gateway/forward.ts). */
export interface BodyPeek {
  /** Resolves with the first `n` bytes (fewer when the body is shorter) once they have arrived;
   *  `complete` is true when that is the whole body. Rejects when the body exceeds the route's
   *  limit or the client goes away. The bytes are still forwarded afterwards. */
  peek(n: number): Promise<{ bytes: Buffer; complete: boolean }>;
}

/** The shared empty list (roles, reasons): never mutated. */
export const EMPTY_LIST: readonly string[] = Object.freeze([]);

export class Exchange {
  /** X-Request-Id: the client's when well-formed, else generated. */
  id = '';
  method = '';
  /** Raw path + query as sent (not decoded). */
  target = '';
  /** Path alone (the router's input). */
  path = '';
  host = '';
  scheme: 'http' | 'https' = 'http';
  remoteAddress = '';
  /** Request headers as a flat [name, value, …] list, names lower-case, in arrival order. */
  headers: string[] = [];
  route = '';
  /** Caller identity set by the identify stage; '' for anonymous. API key name, JWT `sub`
   *  (prefixed with its issuer), did:key, or for anonymous members `zk:<nullifier>`. */
  identity = '';
  /** How the caller was identified; '' for anonymous. */
  identityKind: IdentityKind = '';
  /** Roles of the identity (API key roles, a JWT's roles claim). */
  roles: readonly string[] = EMPTY_LIST;
  /** Rate-limit class of the identity (an API key's class); '' for the default class. */
  rateClass = '';
  /** The request carried a verified RFC 9421 signature (DID or anonymous session key). */
  signed = false;
  /** Anonymous membership (Groth16) facts; never anything that identifies the member. */
  zk: ZkFacts | null = null;
  /** The BISO policy verdict: '' when no policy ran, else 'green' | 'yellow' | 'red'. */
  verdict: '' | 'green' | 'yellow' | 'red' = '';
  /** Rule ids behind a Yellow or Red verdict (`bundle/rule:CODE`), and shadow findings. */
  verdictReasons: readonly string[] = EMPTY_LIST;
  /** The request body, for stages that must see (a bounded prefix of) it before forwarding. */
  body: BodyPeek | null = null;
  /** Extra response headers (flat [name, value, …]) the cage adds to its own answer or the app's. */
  extraHeaders: string[] | null = null;
  upstream = '';
  status = 0;
  /** Error code when the cage answered instead of the app. */
  errorCode: CageErrorCode | '' = '';
  bytesIn = 0;
  bytesOut = 0;
  /** performance.now() at arrival, at upstream response headers, at the end. */
  startedAt = 0;
  upstreamHeadersAt = 0;
  endedAt = 0;
  retries = 0;
  aborted = false;
  /** The request arrived in a post-quantum envelope (X-Wing HPKE, OHTTP) and was opened by the cage. */
  pq = false;
  /** Flags raised by stages (e.g. a Yellow policy verdict); empty on the allow path. */
  flags: string[] | null = null;

  // ---- audit (split-origin record); see gateway/audit.ts ----
  /** Wall-clock arrival time, ms since the epoch. */
  time = 0;
  /** The route's audit mode: 0 off, 1 async, 2 sync. */
  audit = 0;
  /** Index of this exchange's record in the audit log; -1 until it has one. */
  auditIndex = -1;
  /** The index is reserved (the receipt went out) but the record is not written yet. */
  auditPending = false;
  /** SHA-256 of the request body so far (created at the first body byte). */
  requestBodyHash: Hash | null = null;
  /** SHA-256 of the response body as it streams (when not known in one piece). */
  responseBodyHash: Hash | null = null;
  /** Final response body digest, when known. */
  responseBodyDigest: Buffer | null = null;
  /** Digest of the response head as the app sent it. */
  responseHeadersDigest: Buffer | null = null;
  /** The app's Cage-Origin-Signature header, if it sent one. */
  originSignature: string | null = null;
  /** 0 not checked, 1 verified, 2 failed (a discrepancy). */
  originVerified = 0;

  /** The identity with its kind: `api-key:ci`, `jwt:alice`; a DID or `zk:…` says its kind itself. */
  qualifiedIdentity(): string {
    const k = this.identityKind;
    return k === '' || k === 'did' || k === 'zk' ? this.identity : `${k}:${this.identity}`;
  }

  addHeader(name: string, value: string): void {
    (this.extraHeaders ??= []).push(name, value);
  }

  addFlag(flag: string): void {
    (this.flags ??= []).push(flag);
  }

  /** First value of a request header (name lower-case), or undefined. */
  header(name: string): string | undefined {
    const h = this.headers;
    for (let i = 0; i < h.length; i += 2) if (h[i] === name) return h[i + 1];
    return undefined;
  }
}
