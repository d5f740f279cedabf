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
import { buildResponseHeaders, wireValue } from './headers.js';
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
  /** uWS delivered the last chunk. */
  private received = false;
  /** The response ended first: the rest of the body is read and dropped. */
  private discarding = false;

  constructor(
    private readonly res: HttpResponse,
    private readonly ex: Exchange,
    private readonly maxBytes: number,
  ) {
    super({ highWaterMark: 256 * 1024 });
    res.onData((ab, isLast) => this.onChunk(ab, isLast));
  }

  private onChunk(ab: ArrayBuffer, isLast: boolean): void {
    if (isLast) this.received = true;
    if (this.destroyed || this.discarding) return;
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

  /**
   * The response is about to end before the upload did (an early 401, say): nobody will read the
   * rest. uWS must not stay paused (the client could neither finish its upload nor send its next
   * request), so it is resumed and what is left is read and dropped. Must run before the response
   * ends: uWS forbids touching `res` after that.
   */
  discardRest(): void {
    if (this.received || this.discarding) return;
    this.discarding = true;
    if (this.paused && !this.ex.aborted) {
      this.paused = false;
      this.res.resume();
    }
  }
}

const MODE_NONE = 0;
const MODE_LENGTH = 1;
const MODE_CHUNKED = 2;

/*
 * uWS `cork(cb)` runs cb synchronously; passing module-level functions that act on `current`
 * avoids allocating a closure per write on the hot path.
 */
let current: ProxyRequest | null = null;
/** `pr.res.cork(fn)` with `current` set to `pr` for the duration (no closure allocated). */
function corkFor(pr: ProxyRequest, fn: () => void): void {
  current = pr;
  pr.res.cork(fn);
}
function corkedWriteChunk(): void {
  current!.writeChunk();
}
function corkedEnd(): void {
  const pr = current!;
  if (pr.hasPendingHead()) pr.writeHead();
  pr.res.end();
}
function corkedEndWithoutBody(): void {
  const pr = current!;
  pr.writeHead();
  const status = pr.ex.status;
  const total = pr.contentLength;
  // uWS 20.30's endWithoutBody(n) writes `Content-Length: n` but then waits for n body bytes:
  // the response stays pending and the connection's next request is refused (closed). So the
  // length (HEAD, or a 304 that names one) is written as a plain header, and endWithoutBody()
  // without an argument ends at once and adds no length of its own.
  if (status !== 204 && total >= 0) pr.res.writeHeader('content-length', String(total));
  pr.res.endWithoutBody();
}

export class ProxyRequest implements Dispatcher.DispatchHandler {
  private upstream: Upstream | undefined = undefined;
  private abortUpstream: ((err?: Error) => void) | null = null;
  private resumeUpstream: (() => void) | null = null;
  private headersSent = false;
  private responded = false;
  private mode = MODE_NONE;
  private total = -1;
  private head: Array<string | Buffer> | null = null;
  private chunk: Buffer | null = null;
  private writeOk = true;
  private writeDone = false;
  private pending: Buffer | null = null;
  private pendingOffset = 0;
  private attempts = 0;
  private readonly dispatchOpts: Dispatcher.DispatchOptions;

  constructor(
    private readonly host: ForwardHost,
    readonly res: HttpResponse,
    readonly ex: Exchange,
    private readonly route: CompiledRoute,
    private readonly body: RequestBody | null,
  ) {
    this.dispatchOpts = {
      path: wireValue(ex.target),
      method: ex.method,
      headers: null,
      body,
      idempotent: IDEMPOTENT.has(ex.method),
      blocking: body !== null,
      reset: false,
    };
  }

  /**
   * Send with these upstream headers (built after the pipeline stages ran, since stages may
   * change the request's headers).
   */
  forward(headers: string[]): void {
    this.dispatchOpts.headers = headers;
    this.start();
  }

  /** Pick an upstream and send; answers 503 when none is healthy. */
  private start(exclude?: Upstream): void {
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
    this.total = head.contentLength;
    this.head = head.headers;
    const bodyless = ex.method === 'HEAD' || statusCode === 204 || statusCode === 304;
    if (bodyless || this.total === 0) {
      this.responded = true;
      if (this.body !== null) this.body.discardRest();
      corkFor(this, bodyless ? corkedEndWithoutBody : corkedEnd);
      return true;
    }
    // The head is written together with the first body bytes (uWS only completes a head when the
    // body starts), so a small response leaves in one write instead of two.
    this.mode = this.total > 0 ? MODE_LENGTH : MODE_CHUNKED;
    return true;
  }

  hasPendingHead(): boolean {
    return this.head !== null;
  }

  get contentLength(): number {
    return this.total;
  }

  /** Inside a cork: status line and headers. */
  writeHead(): void {
    const res = this.res;
    const h = this.head!;
    this.head = null;
    res.writeStatus(statusLine(this.ex.status));
    for (let i = 0; i < h.length; i += 2) res.writeHeader(h[i] as string, h[i + 1]!);
  }

  /** Inside a cork: the head (if still pending) and `this.chunk`. */
  writeChunk(): void {
    if (this.head !== null) this.writeHead();
    if (this.mode === MODE_LENGTH) {
      const r = this.res.tryEnd(this.chunk!, this.total);
      this.writeOk = r[0];
      this.writeDone = r[1];
    } else {
      this.writeOk = this.res.write(this.chunk!);
      this.writeDone = false;
    }
  }

  onData(chunk: Buffer): boolean {
    if (this.responded || this.ex.aborted) return true;
    this.ex.bytesOut += chunk.length;
    const res = this.res;
    const offset = this.mode === MODE_LENGTH ? res.getWriteOffset() : 0;
    // This chunk may end the response (tryEnd): settle the request body first.
    if (this.body !== null && this.mode === MODE_LENGTH && offset + chunk.length >= this.total) this.body.discardRest();
    this.chunk = chunk;
    corkFor(this, corkedWriteChunk);
    this.chunk = null;
    if (this.writeDone) {
      this.responded = true;
      return true;
    }
    if (this.writeOk) return true;
    if (this.mode === MODE_LENGTH) {
      // tryEnd keeps nothing it could not send: retry from the offset uWS reports.
      this.pending = chunk;
      this.pendingOffset = offset;
    }
    // Only backpressured responses need the drain callback: bound here, not per request.
    res.onWritable((this.onWritable ??= this.drained.bind(this)));
    return false;
  }

  private onWritable: ((offset: number) => boolean) | null = null;

  /** uWS can take more: retry the pending tryEnd slice (length mode) and resume the upstream. */
  private drained(offset: number): boolean {
    if (this.ex.aborted) return true;
    if (this.mode !== MODE_LENGTH) {
      this.resumeUpstream?.(); // write() buffered everything already
      return true;
    }
    if (this.pending === null) return true;
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
  }

  onComplete(): void {
    const up = this.upstream!;
    up.inflight--;
    up.recordSuccess();
    if (!this.ex.aborted && !this.responded) {
      this.responded = true;
      if (this.mode === MODE_CHUNKED) {
        if (this.body !== null) this.body.discardRest();
        corkFor(this, corkedEnd);
      } else {
        this.res.close(); // length mode ending early cannot happen with strictContentLength
      }
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
    // The upstream's head arrived but is held back until its first body bytes: nothing has
    // reached the client yet, so it gets the error instead of a bare closed connection.
    if (this.head !== null && !this.responded) {
      this.head = null;
      this.fail(isCageError(err) ? err : new CageError({ code, message: upstreamMessage(code, up, err), cause: err }));
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
      // undici reports some protocol violations as socket errors: a 101 to a plain request
      // ('bad upgrade'), an unsolicited 100 Continue ('bad response').
      if (err.message === 'bad upgrade' || err.message === 'bad response') return 'GW_UPSTREAM_BAD_RESPONSE';
      return 'GW_UPSTREAM_RESET';
    case 'ECONNRESET':
    case 'EPIPE':
    case 'UND_ERR_CLOSED':
      return 'GW_UPSTREAM_RESET';
    // INVALID_ARG: undici refuses to send a client header its own checks reject (a control
    // character in a value, a name that is no token): the client's request is at fault.
    case 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH':
    case 'UND_ERR_INVALID_ARG':
      return 'GW_BAD_REQUEST';
    default:
      // undici's HTTPParserError (garbage instead of a response) often carries no HPE_ code.
      return code.startsWith('HPE_') || err.name === 'HTTPParserError' || code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH' || code === 'UND_ERR_INFO' || code === 'UND_ERR_HEADERS_OVERFLOW'
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
      return (err as NodeJS.ErrnoException).code === 'UND_ERR_INVALID_ARG'
        ? `request cannot be forwarded: ${err.message}`
        : 'request body does not match its Content-Length';
    default:
      return 'internal error while forwarding';
  }
}
