/**
 * One request/response exchange as it moves through the pipeline
 * (identify → limit → decide → open → forward → record). A class with every field set in the
 * constructor so all exchanges share one hidden class (test/gateway/exchange.test.ts checks it).
 * Everything in it that came from the client (headers, path, host) is attacker-controlled.
 */
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
  /** Flags raised by stages (e.g. a Yellow policy verdict); empty on the allow path. */
  flags: string[] | null = null;

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
