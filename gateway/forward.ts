/**
 * Forwarding one exchange to an upstream: an undici Pool `dispatch()` with a raw handler (the
 * cheapest undici path) that streams the response into the uWS response with backpressure both
 * ways. With a Content-Length the body goes out through `tryEnd` (uWS writes the length), without
 * one through `write` (chunked). A failure before the response head is retried when safe, else
 * answered with a JSON error; after the head it cuts the connection, so the client sees a
 * truncated body rather than a forged complete one.
 *
 * Retry rules: a connect-phase failure (refused, unreachable, connect timeout) sent nothing, so it
 * is retried on another upstream for any method while the request body has not been read; a reset
 * after sending is retried only for idempotent methods without a body.
 */
import { Readable } from 'node:stream';
import type { HttpResponse } from 'uWebSockets.js';
import type { Dispatcher } from 'undici';
import { CageError, isCageError, type CageErrorCode } from '../core/errors.js';
import type { Exchange } from './exchange.js';
import { buildResponseHeaders } from './headers.js';
import type { CompiledRoute } from './state.js';
import type { Upstream } from './upstream/upstream.js';
import { statusLine } from './uws.js';

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);
const CONNECT_PHASE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT']);

/** What the forwarder needs from the gateway around it. */
export interface ForwardHost {
  /** Answer with a JSON error (before the response head only). */
  sendError(res: HttpResponse, ex: Exchange, err: CageError, closeConnection: boolean): void;
  /** The exchange is over (answered, failed or aborted): record it exactly once. */
  finish(ex: Exchange): void;
}

/** The request body as a Readable fed by uWS `onData`, pausing uWS when undici is not reading. */
export class RequestBody extends Readable {
  private paused = false;

  constructor(
    private readonly res: HttpResponse,
    private readonly ex: Exchange,
    private readonly maxBytes: number,
  ) {
    super({ highWaterMark: 256 * 1024 });
    res.onData((ab, isLast) => this.onChunk(ab, isLast));
  }

  private onChunk(ab: ArrayBuffer, isLast: boolean): void {
    if (this.destroyed) return;
    const n = ab.byteLength;
    this.ex.bytesIn += n;
    if (this.ex.bytesIn > this.maxBytes) {
      this.destroy(new CageError({ code: 'GW_BODY_TOO_LARGE', message: `request body exceeds ${this.maxBytes} bytes` }));
      return;
    }
    // uWS reuses the chunk's memory after this callback: copy it.
    if (n > 0 && !this.push(Buffer.copyBytesFrom(new Uint8Array(ab)))) {
      if (!isLast && !this.paused && !this.ex.aborted) {
        this.paused = true;
        this.res.pause();
      }
    }
    if (isLast) this.push(null);
  }

  override _read(): void {
    if (this.paused && !this.ex.aborted) {
      this.paused = false;
      this.res.resume();
    }
  }
}

const MODE_NONE = 0;
const MODE_LENGTH = 1;
const MODE_CHUNKED = 2;

export class ProxyRequest implements Dispatcher.DispatchHandler {
  private upstream: Upstream | undefined = undefined;
  private abortUpstream: ((err?: Error) => void) | null = null;
  private resumeUpstream: (() => void) | null = null;
  private headersSent = false;
  private responded = false;
  private mode = MODE_NONE;
  private total = -1;
  private pending: Buffer | null = null;
  private pendingOffset = 0;
  private attempts = 0;
  private readonly dispatchOpts: Dispatcher.DispatchOptions;

  constructor(
    private readonly host: ForwardHost,
    private readonly res: HttpResponse,
    private readonly ex: Exchange,
    private readonly route: CompiledRoute,
    headers: string[],
    private readonly body: RequestBody | null,
  ) {
    this.dispatchOpts = {
      path: ex.target,
      method: ex.method,
      headers,
      body,
      idempotent: IDEMPOTENT.has(ex.method),
      blocking: body !== null,
      reset: false,
    };
  }

  /** Pick an upstream and send; answers 503 when none is healthy. */
  start(exclude?: Upstream): void {
    const up = this.route.balancer.pick(Date.now(), exclude) ?? (exclude !== undefined && exclude.healthy(Date.now()) ? exclude : undefined);
    if (up === undefined) {
      this.fail(new CageError({ code: 'GW_NO_HEALTHY_UPSTREAM', message: `no healthy upstream for route ${this.route.name}` }));
      return;
    }
    this.upstream = up;
    this.ex.upstream = up.label;
    up.inflight++;
    this.attempts++;
    up.pool.dispatch(this.dispatchOpts, this);
  }

  /** Client went away: stop the upstream side. */
  clientAborted(): void {
    this.ex.aborted = true;
    if (this.abortUpstream !== null) this.abortUpstream(new CageError({ code: 'GW_BAD_REQUEST', message: 'client aborted' }));
    if (this.body !== null) this.body.destroy();
  }

  onConnect(abort: (err?: Error) => void): void {
    this.abortUpstream = abort;
    if (this.ex.aborted) abort();
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
    if (statusCode < 200) return true; // 1xx informational: not forwarded (uWS cannot send them)
    const ex = this.ex;
    if (ex.aborted) return true;
    this.resumeUpstream = resume;
    this.headersSent = true;
    ex.status = statusCode;
    ex.upstreamHeadersAt = performance.now();
    const head = buildResponseHeaders(rawHeaders, this.route.config.responseHeaders, ex.id);
    const bodyless = ex.method === 'HEAD' || statusCode === 204 || statusCode === 304;
    this.total = head.contentLength;
    const res = this.res;
    const h = head.headers;
    res.cork(() => {
      res.writeStatus(statusLine(statusCode));
      for (let i = 0; i < h.length; i += 2) res.writeHeader(h[i]!, h[i + 1]!);
      if (bodyless) {
        this.responded = true;
        // endWithoutBody() with no argument writes no Content-Length (204/304, or length unknown).
        if (statusCode === 204 || this.total < 0) res.endWithoutBody();
        else res.endWithoutBody(this.total);
      } else if (this.total === 0) {
        this.responded = true;
        res.end();
      }
    });
    this.mode = this.total > 0 ? MODE_LENGTH : MODE_CHUNKED;
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.responded || this.ex.aborted) return true;
    this.ex.bytesOut += chunk.length;
    const res = this.res;
    if (this.mode === MODE_LENGTH) {
      const offset = res.getWriteOffset();
      let result: [boolean, boolean] = [true, false];
      res.cork(() => {
        result = res.tryEnd(chunk, this.total);
      });
      if (result[1]) {
        this.responded = true;
        return true;
      }
      if (!result[0]) {
        this.pending = chunk;
        this.pendingOffset = offset;
        res.onWritable(this.onWritableLength);
        return false;
      }
      return true;
    }
    let ok = true;
    res.cork(() => {
      ok = res.write(chunk);
    });
    if (!ok) {
      res.onWritable(this.onWritableChunked);
      return false;
    }
    return true;
  }

  private readonly onWritableLength = (offset: number): boolean => {
    if (this.ex.aborted || this.pending === null) return true;
    const [ok, done] = this.res.tryEnd(this.pending.subarray(offset - this.pendingOffset), this.total);
    if (done) {
      this.responded = true;
      this.pending = null;
      return true;
    }
    if (ok) {
      this.pending = null;
      this.resumeUpstream?.();
    }
    return ok;
  };

  private readonly onWritableChunked = (): boolean => {
    if (!this.ex.aborted) this.resumeUpstream?.();
    return true;
  };

  onComplete(): void {
    const up = this.upstream!;
    up.inflight--;
    up.recordSuccess();
    if (!this.ex.aborted && !this.responded) {
      this.responded = true;
      if (this.mode === MODE_CHUNKED) this.res.cork(() => this.res.end());
      else this.res.close(); // length mode ending early cannot happen with strictContentLength
    }
    this.host.finish(this.ex);
  }

  onError(err: Error): void {
    const up = this.upstream;
    if (up !== undefined) up.inflight--;
    const ex = this.ex;
    if (ex.aborted) {
      this.host.finish(ex);
      return;
    }
    const code = classify(err);
    const connectPhase = CONNECT_PHASE.has((err as NodeJS.ErrnoException).code ?? '');
    if (up !== undefined && (code === 'GW_UPSTREAM_UNREACHABLE' || code === 'GW_UPSTREAM_RESET' || code === 'GW_UPSTREAM_TIMEOUT')) {
      up.recordFailure(Date.now());
    }
    if (!this.headersSent) {
      if (this.attempts <= this.route.config.retries && this.retriable(connectPhase, code)) {
        ex.retries++;
        this.abortUpstream = null;
        this.start(up);
        return;
      }
      this.fail(isCageError(err) ? err : new CageError({ code, message: upstreamMessage(code, this.upstream, err), cause: err }));
      return;
    }
    // Mid-body failure: the head is out; cut the connection so the client sees the truncation.
    ex.errorCode = code;
    if (!this.responded) {
      this.responded = true;
      this.res.close();
    }
    this.host.finish(ex);
  }

  private retriable(connectPhase: boolean, code: CageErrorCode): boolean {
    if (connectPhase) return this.body === null || !this.body.readableDidRead;
    return code === 'GW_UPSTREAM_RESET' && this.body === null && IDEMPOTENT.has(this.ex.method);
  }

  private fail(err: CageError): void {
    this.responded = true;
    // An unread request body cannot be skipped safely: close after answering.
    const close = this.body !== null && !this.body.readableEnded;
    this.host.sendError(this.res, this.ex, err, close);
    this.host.finish(this.ex);
  }
}

function classify(err: Error): CageErrorCode {
  if (isCageError(err)) return err.code;
  const code = (err as NodeJS.ErrnoException).code ?? '';
  switch (code) {
    case 'ECONNREFUSED':
    case 'ENOTFOUND':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EAI_AGAIN':
      return 'GW_UPSTREAM_UNREACHABLE';
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
      return 'GW_UPSTREAM_TIMEOUT';
    case 'UND_ERR_SOCKET':
    case 'ECONNRESET':
    case 'EPIPE':
    case 'UND_ERR_CLOSED':
      return 'GW_UPSTREAM_RESET';
    case 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH':
      return 'GW_BAD_REQUEST';
    default:
      return code.startsWith('HPE_') || code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH' || code === 'UND_ERR_INFO'
        ? 'GW_UPSTREAM_BAD_RESPONSE'
        : 'GW_INTERNAL';
  }
}

function upstreamMessage(code: CageErrorCode, up: Upstream | undefined, err: Error): string {
  const where = up === undefined ? 'upstream' : `upstream ${up.label}`;
  switch (code) {
    case 'GW_UPSTREAM_UNREACHABLE':
      return `${where} unreachable (${(err as NodeJS.ErrnoException).code})`;
    case 'GW_UPSTREAM_TIMEOUT':
      return `${where} timed out (${(err as NodeJS.ErrnoException).code})`;
    case 'GW_UPSTREAM_RESET':
      return `${where} closed the connection before answering`;
    case 'GW_UPSTREAM_BAD_RESPONSE':
      return `${where} sent a malformed response`;
    case 'GW_BAD_REQUEST':
      return 'request body does not match its Content-Length';
    default:
      return 'internal error while forwarding';
  }
}
