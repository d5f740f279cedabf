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
import { createHash, hash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { HttpResponse } from 'uWebSockets.js';
import type { Dispatcher } from 'undici';
import { CageError, isCageError, type CageErrorCode } from '../core/errors.js';
import type { BodyPeek, Exchange } from './exchange.js';
import { buildResponseHeaders, wireValue } from './headers.js';
import type { CompiledRoute } from './state.js';
import type { Upstream } from './upstream/upstream.js';
import { statusLine } from './uws.js';

/** RFC 9110 §9.2.2 idempotent methods: the ones a reset may be retried for. */
export const IDEMPOTENT: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);
const CONNECT_PHASE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT']);

/** SHA-256 of the empty string: the body digest of a bodyless request or response. */
export const EMPTY_SHA256: Buffer = hash('sha256', Buffer.alloc(0), 'buffer');

/** What the forwarder needs from the gateway around it. */
export interface ForwardHost {
  /**
   * Audit: write the exchange's complete record now (the response body is known) and return its
   * index, or reserve the next index for a record written at the end; -1 when the route is not
   * audited. `receipt(index)` is the Cage-Receipt header value.
   */
  auditComplete(ex: Exchange, bodyDigest: Buffer): number;
  auditReserve(ex: Exchange): number;
  /** Resolves once the record at `index` is durable (fsynced). */
  auditDurable(index: number): Promise<void>;
  receipt(index: number): string;
  /** Check the app's Cage-Origin-Signature over the final body digest (sets ex.originVerified). */
  verifyOrigin(ex: Exchange, key: string, bodyDigest: Buffer): boolean;
  /** Answer with a JSON error (before the response head only). */
  sendError(res: HttpResponse, ex: Exchange, err: CageError, closeConnection: boolean): void;
  /** The exchange is over (answered, failed or aborted): record it exactly once. */
  finish(ex: Exchange): void;
}

/** The request body as a Readable fed by uWS `onData`, pausing uWS when undici is not reading. */
export class RequestBody extends Readable implements BodyPeek {
  private paused = false;
  /** While a stage peeks: the chunks so far (they are pushed as usual too), and how many it wants. */
  private peekChunks: Buffer[] | null = null;
  private peekBytes = 0;
  private peekWant = 0;
  private peekDone: ((r: { bytes: Buffer; complete: boolean }) => void) | null = null;
  private peekFail: ((err: Error) => void) | null = null;
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
      const err = new CageError({ code: 'GW_BODY_TOO_LARGE', message: `request body exceeds ${this.maxBytes} bytes` });
      this.peekFail?.(err);
      this.destroy(err);
      return;
    }
    // uWS reuses the chunk's memory after this callback: copy it.
    const chunk = n > 0 ? Buffer.copyBytesFrom(new Uint8Array(ab)) : null;
    if (chunk !== null && this.ex.audit !== 0) (this.ex.requestBodyHash ??= createHash('sha256')).update(chunk);
    if (chunk !== null && this.peekChunks !== null) {
      this.peekChunks.push(chunk);
      this.peekBytes += n;
    }
    // A peeking stage holds the body back until it has what it asked for: no pause before that.
    if (chunk !== null && !this.push(chunk) && this.peekChunks === null) {
      if (!isLast && !this.paused && !this.ex.aborted) {
        this.paused = true;
        this.res.pause();
      }
    }
    if (isLast) this.push(null);
    if (this.peekChunks !== null && (this.peekBytes >= this.peekWant || isLast)) this.settlePeek();
  }

  /**
   * Stages run before anything reads the stream, so every chunk so far is still in its buffer:
   * a peek starts from those (Node 20 keeps them in an array in _readableState, checked against
   * readableLength) and collects new ones until it has `n` bytes or the body ended.
   */
  peek(n: number): Promise<{ bytes: Buffer; complete: boolean }> {
    if (this.peekChunks !== null) return Promise.reject(new Error('RequestBody.peek: a peek is already pending'));
    if (this.destroyed) return Promise.reject(new CageError({ code: 'GW_BAD_REQUEST', message: 'the request body is gone' }));
    return new Promise((resolve, reject) => {
      const buffered = (this as unknown as { _readableState: { buffer: unknown } })._readableState.buffer;
      const chunks: Buffer[] = [];
      let bytes = 0;
      if (this.readableLength > 0) {
        if (!Array.isArray(buffered)) throw new Error('RequestBody.peek: unexpected stream buffer layout');
        for (const c of buffered as Buffer[]) {
          chunks.push(c);
          bytes += c.length;
        }
        if (bytes !== this.readableLength) throw new Error('RequestBody.peek: unexpected stream buffer layout');
      }
      this.peekChunks = chunks;
      this.peekBytes = bytes;
      this.peekWant = n;
      this.peekDone = resolve;
      this.peekFail = reject;
      if (this.paused && !this.ex.aborted) {
        this.paused = false;
        this.res.resume();
      }
      if (bytes >= n || this.received) this.settlePeek();
    });
  }

  private settlePeek(): void {
    const all = Buffer.concat(this.peekChunks!);
    const done = this.peekDone!;
    this.peekChunks = null;
    this.peekDone = this.peekFail = null;
    done({ bytes: all.length > this.peekWant ? all.subarray(0, this.peekWant) : all, complete: this.received && all.length <= this.peekWant });
  }

  /** The client went away while a stage waited for the body. */
  abortPeek(): void {
    this.peekFail?.(new CageError({ code: 'GW_BAD_REQUEST', message: 'the client closed the connection' }));
    this.peekChunks = null;
    this.peekDone = this.peekFail = null;
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
  /** Hold the whole response until its record is durable (audit: sync) or its signature checked. */
  private readonly buffered: boolean;
  private bufferedChunks: Buffer[] | null = null;
  private bufferedBytes = 0;
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
    this.buffered = ex.audit === 2 || route.config.originSignature?.required === true;
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
    if (ex.audit !== 0) {
      ex.responseHeadersDigest = digestRawHead(statusCode, rawHeaders);
      if (this.route.config.originSignature !== undefined) ex.originSignature = findHeader(rawHeaders, 'cage-origin-signature');
    }
    const bodyless = ex.method === 'HEAD' || statusCode === 204 || statusCode === 304;
    if (this.buffered) {
      // Everything waits for onComplete: the record needs the whole body.
      if (this.total > this.route.syncMaxResponseBytes) this.tooLarge();
      return true;
    }
    if (bodyless || this.total === 0) {
      this.responded = true;
      if (this.body !== null) this.body.discardRest();
      this.setReceipt(this.host.auditComplete(ex, EMPTY_SHA256));
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

  /** Add the Cage-Receipt header for the record at `index` (nothing when not audited). */
  private setReceipt(index: number): void {
    if (index >= 0) this.head!.push('cage-receipt', this.host.receipt(index));
  }

  /** A sync-audited response over the limit: the upstream is cut, the client gets 502. */
  private tooLarge(): void {
    const err = new CageError({
      code: 'AUDIT_RESPONSE_TOO_LARGE',
      message: `response exceeds audit.sync_max_response_bytes (${this.route.syncMaxResponseBytes}) on a route that holds answers for its record`,
    });
    if (this.abortUpstream !== null) this.abortUpstream(err);
  }

  /** Inside a cork: status line and headers. */
  writeHead(): void {
    const res = this.res;
    const h = this.head!;
    this.head = null;
    res.writeStatus(statusLine(this.ex.status));
    for (let i = 0; i < h.length; i += 2) res.writeHeader(h[i] as string, h[i + 1]!);
    const extra = this.ex.extraHeaders;
    if (extra !== null) for (let i = 0; i < extra.length; i += 2) res.writeHeader(extra[i]!, extra[i + 1]!);
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
    const ex = this.ex;
    ex.bytesOut += chunk.length;
    if (this.buffered) {
      this.bufferedBytes += chunk.length;
      if (this.bufferedBytes > this.route.syncMaxResponseBytes) {
        this.bufferedChunks = null;
        this.tooLarge();
        return true;
      }
      (this.bufferedChunks ??= []).push(chunk);
      return true;
    }
    const res = this.res;
    const offset = this.mode === MODE_LENGTH ? res.getWriteOffset() : 0;
    if (ex.audit !== 0) {
      if (this.head !== null) {
        // First bytes: when they are the whole body, the record is complete before the head
        // leaves (one append, no reservation); otherwise the index is reserved for the end.
        if (this.mode === MODE_LENGTH && offset === 0 && chunk.length === this.total) {
          ex.responseBodyDigest = hash('sha256', chunk, 'buffer');
          this.setReceipt(this.host.auditComplete(ex, ex.responseBodyDigest));
        } else {
          (ex.responseBodyHash = createHash('sha256')).update(chunk);
          this.setReceipt(this.host.auditReserve(ex));
        }
      } else {
        ex.responseBodyHash?.update(chunk);
      }
    }
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
    if (this.buffered) {
      this.completeBuffered();
      return;
    }
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

  /**
   * The whole response is here (buffered mode): check the app's signature, write the record, and
   * answer once it is durable (sync) or at once (a required signature on an async route).
   */
  private completeBuffered(): void {
    const ex = this.ex;
    if (ex.aborted || this.responded) {
      this.host.finish(ex);
      return;
    }
    const chunks = this.bufferedChunks;
    this.bufferedChunks = null;
    const body = chunks === null ? EMPTY_BODY : chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, this.bufferedBytes);
    const digest = body.length === 0 ? EMPTY_SHA256 : hash('sha256', body, 'buffer');
    ex.responseBodyDigest = digest;
    const sig = this.route.config.originSignature;
    if (sig !== undefined && !this.host.verifyOrigin(ex, sig.key, digest) && sig.required) {
      this.head = null;
      this.fail(new CageError({ code: 'AUDIT_ORIGIN_SIGNATURE_INVALID', message: `the app's Cage-Origin-Signature is ${ex.originSignature === null ? 'missing' : 'invalid'}` }));
      return;
    }
    const index = this.host.auditComplete(ex, digest);
    this.setReceipt(index);
    if (ex.audit !== 2 || index < 0) {
      this.answerBuffered(body);
      return;
    }
    this.host.auditDurable(index).then(
      () => this.answerBuffered(body),
      (err: unknown) => {
        this.head = null;
        this.fail(isCageError(err) ? err : new CageError({ code: 'AUDIT_STORE_IO', message: 'the audit record could not be made durable', cause: err }));
      },
    );
  }

  /** Write a buffered response: head and body in one go, backpressure through onWritable. */
  private answerBuffered(body: Buffer): void {
    const ex = this.ex;
    if (ex.aborted) {
      this.host.finish(ex);
      return;
    }
    const bodyless = ex.method === 'HEAD' || ex.status === 204 || ex.status === 304;
    if (this.body !== null) this.body.discardRest();
    if (bodyless || body.length === 0) {
      this.responded = true;
      corkFor(this, bodyless ? corkedEndWithoutBody : corkedEnd);
      this.host.finish(ex);
      return;
    }
    this.mode = MODE_LENGTH;
    this.total = body.length;
    this.chunk = body;
    corkFor(this, corkedWriteChunk);
    this.chunk = null;
    if (this.writeDone) this.responded = true;
    else if (!this.writeOk) {
      this.pending = body;
      this.pendingOffset = 0;
      this.res.onWritable((this.onWritable ??= this.drained.bind(this)));
    }
    this.host.finish(ex);
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

const EMPTY_BODY = Buffer.alloc(0);
/**
 * Digest of the response head as the app sent it: SHA-256 over `<status>\r\n` then every field
 * as `name: value\r\n` in arrival order, names lower-cased, values as raw bytes (docs/formats.md).
 * Built as one latin1 string (a byte-exact image of the raw bytes) and hashed in one call: the
 * per-field `update`s it replaces cost 5% of the proxy's CPU.
 */
export function digestRawHead(status: number, raw: Buffer[]): Buffer {
  let s = `${status}\r\n`;
  for (let i = 0; i < raw.length; i += 2) s += `${raw[i]!.toString('latin1').toLowerCase()}: ${raw[i + 1]!.toString('latin1')}\r\n`;
  return createHash('sha256').update(s, 'latin1').digest();
}

/** First value of a response field (raw undici headers), as a latin1 string, or null. */
function findHeader(raw: Buffer[], name: string): string | null {
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length === name.length && raw[i]!.toString('latin1').toLowerCase() === name) return raw[i + 1]!.toString('latin1');
  }
  return null;
}

export function classify(err: Error): CageErrorCode {
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

export function upstreamMessage(code: CageErrorCode, up: Upstream | undefined, err: Error): string {
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
