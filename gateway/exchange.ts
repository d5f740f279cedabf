/**
 * One request/response exchange as it moves through the pipeline
 * (identify → limit → decide → open → forward → record). A class with every field set in the
 * constructor so all exchanges share one hidden class (test/gateway/exchange.test.ts checks it).
 * Everything in it that came from the client (headers, path, host) is attacker-controlled.
 */
import type { Hash } from 'node:crypto';
import type { CageErrorCode } from '../core/errors.js';

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
  /** Caller identity set by the identify stage; '' for anonymous. */
  identity = '';
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
