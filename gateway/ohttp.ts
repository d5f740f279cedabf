/**
 * Post-quantum envelopes at the edge: the cage is an Oblivious HTTP gateway (RFC 9458) whose
 * keys are X-Wing (ML-KEM-768 + X25519) HPKE keys (pq/). It publishes its key configurations at
 * `pq.keys_path`; a `POST` with `Content-Type: message/ohttp-req` is decapsulated, the inner
 * Binary HTTP request (RFC 9292) is routed and run through the same pipeline as any other (the
 * Exchange says `pq = true`, so a policy can require it), forwarded, and the app's answer is
 * sealed back as `message/ohttp-res`. Errors found before decryption are answered in the clear
 * (400 with a code); after it, inside the envelope (RFC 9458 §5.2), so an observer learns nothing
 * from the outer status. Nothing from a bad envelope reaches the app.
 * Opening (the X-Wing decapsulation and HPKE open, ~1 ms of CPU) runs on a pool of worker threads
 * (pq/pool.ts, `pq.workers`); BHTTP decoding, the replay cache and sealing stay on the event loop.
 * The inner request is attacker-controlled exactly like a plaintext one: it is routed, checked
 * for dot-segments and framed by the cage, never trusted.
 */
import { createHash, hash } from 'node:crypto';
import type { HttpResponse } from 'uWebSockets.js';
import type { Dispatcher } from 'undici';
import { CageError, errorBody, isCageError } from '../core/errors.js';
import { KeyRing } from '../pq/keys.js';
import { MEDIA_TYPE_OHTTP_KEYS, MEDIA_TYPE_OHTTP_RESPONSE, OhttpGateway, PqInnerError, type OpenedRequest } from '../pq/ohttp.js';
import { DecapsulationPool } from '../pq/pool.js';
import { ReplayGuard } from '../pq/replay.js';
import type { PqConfig } from './config/load.js';
import type { BodyPeek, Exchange } from './exchange.js';
import { EMPTY_SHA256, IDEMPOTENT, classify, digestRawHead, upstreamMessage } from './forward.js';
import { buildResponseHeaders, buildUpstreamHeaders } from './headers.js';
import { runStages, type Stage } from './pipeline.js';
import { hasDotSegment } from './router.js';
import type { CompiledRoute, GatewayState } from './state.js';
import type { ExchangeAuditor } from './audit.js';
import type { Upstream } from './upstream/upstream.js';

/** What the envelope handler needs from the gateway. */
export interface PqHost {
  readonly auditor: ExchangeAuditor;
  sendError(res: HttpResponse, ex: Exchange, err: CageError, closeConnection: boolean): void;
  finish(ex: Exchange): void;
}
/** Set by proxies in front of the cage, so taken from the outer request only. */
const OUTER_HOP_FIELDS = new Set(['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'forwarded']);

export class PqFront {
  private constructor(
    readonly keys: KeyRing,
    private gateway: OhttpGateway,
    private config: PqConfig,
    private readonly stopTimer: () => void,
    /** The replay cache (pq.replay_window), kept across reloads that leave the window alone. */
    private replay: ReplayGuard | undefined,
    /** Opens envelopes on pq.workers threads (inline when 0); holds copies of the ring's seeds. */
    private readonly pool: DecapsulationPool,
  ) {}

  /**
   * Opens (or makes) the key ring under `dir`, starts its rotation timer and the envelope workers.
   * `onError` gets rotation failures and replaced worker threads.
   */
  static async open(dir: string, config: PqConfig, onError: (err: unknown) => void): Promise<PqFront> {
    const keys = await KeyRing.open({ dir, rotateMs: config.rotateMs, graceMs: config.graceMs });
    const stop = keys.startTimer(Math.min(60_000, Math.max(1000, Math.floor(config.rotateMs / 10))), onError);
    let pool: DecapsulationPool;
    try {
      pool = await DecapsulationPool.start({ keys, size: config.workers, onError });
    } catch (err) {
      stop();
      throw err;
    }
    const replay = makeReplay(config);
    return new PqFront(keys, makeGateway(keys, config, replay), config, stop, replay, pool);
  }

  /** Take a reloaded config's limits and replay window (rotation settings apply on restart). */
  configure(config: PqConfig): void {
    if (config.maxRequestBytes !== this.config.maxRequestBytes || config.replayWindowMs !== this.config.replayWindowMs) {
      // The replay cache must outlive a reload: a new, empty one would accept again every envelope
      // seen within the window. It is replaced only when the window itself changes.
      if (config.replayWindowMs !== this.config.replayWindowMs) this.replay = makeReplay(config);
      this.gateway = makeGateway(this.keys, config, this.replay);
    }
    if (config.workers !== this.config.workers) this.pool.resize(config.workers);
    this.config = config;
  }

  get keysPath(): string {
    return this.config.keysPath;
  }

  get maxRequestBytes(): number {
    return this.config.maxRequestBytes;
  }

  /** Stops the rotation timer and the worker threads; resolves once the threads have exited (never rejects). */
  close(): Promise<void> {
    this.stopTimer();
    return this.pool.close();
  }

  /** GET keys_path: the key configurations (RFC 9458 §3), newest first. */
  serveKeys(res: HttpResponse, ex: Exchange): void {
    const body = this.keys.encodedConfigs();
    ex.status = 200;
    ex.bytesOut = body.length;
    res.cork(() => {
      res.writeStatus('200 OK');
      res.writeHeader('content-type', MEDIA_TYPE_OHTTP_KEYS);
      // Clients may cache keys; a rotation leaves the previous key valid for the grace period.
      res.writeHeader('cache-control', `public, max-age=${Math.max(0, Math.floor(Math.min(this.config.graceMs, 86_400_000) / 2000))}`);
      res.writeHeader('x-request-id', ex.id);
      res.end(body);
    });
  }

  /**
   * An encapsulated request: read the whole envelope (it is small and must be whole to open),
   * open it, run the inner request through the pipeline and answer sealed.
   */
  handle(host: PqHost, res: HttpResponse, ex: Exchange, state: GatewayState, trusted: boolean): void {
    const chunks: Buffer[] = [];
    let received = 0;
    let refused = false;
    res.onAborted(() => {
      ex.aborted = true;
    });
    res.onData((ab, isLast) => {
      if (refused || ex.aborted) return;
      received += ab.byteLength;
      if (received > this.config.maxRequestBytes) {
        refused = true;
        host.sendError(res, ex, new CageError({ code: 'GW_BODY_TOO_LARGE', message: `encapsulated request exceeds pq.max_request_bytes (${this.config.maxRequestBytes})` }), true);
        host.finish(ex);
        return;
      }
      if (!isLast) {
        // uWS reuses `ab` after this callback: copy (ArrayBuffer#slice owns its memory).
        if (ab.byteLength > 0) chunks.push(Buffer.from(ab.slice(0)));
        return;
      }
      // The envelope must own its ArrayBuffer (not a slice of Buffer's shared pool): the pool
      // transfers it to a worker thread without copying it again. One chunk, the usual case: one copy.
      let envelope: Buffer;
      if (chunks.length === 0) envelope = Buffer.from(ab.slice(0));
      else {
        envelope = Buffer.from(new ArrayBuffer(received));
        let o = 0;
        for (const c of chunks) o += c.copy(envelope, o);
        envelope.set(new Uint8Array(ab), o);
      }
      this.open(host, res, ex, state, trusted, envelope).catch((err: unknown) => {
        // A bug after the envelope was opened: answer in the clear if nothing was answered yet.
        if (ex.endedAt !== 0) return;
        if (!ex.aborted) host.sendError(res, ex, new CageError({ code: 'GW_INTERNAL', message: 'internal error handling an encapsulated request', cause: err }), true);
        host.finish(ex);
      });
    });
  }

  private async open(host: PqHost, res: HttpResponse, ex: Exchange, state: GatewayState, trusted: boolean, envelope: Buffer): Promise<void> {
    const contentType = ex.header('content-type');
    let opened: OpenedRequest;
    try {
      opened = await this.gateway.openRequestWith(this.pool, envelope, contentType);
    } catch (err) {
      // After the await the client may be gone (uWS: then nothing may be written); answer() and the
      // host's sendError write inside res.cork.
      if (err instanceof PqInnerError) {
        ex.errorCode = err.code;
        return this.answer(host, res, ex, err.status, err.sealJson(ex.id));
      }
      const e = isCageError(err) ? err : new CageError({ code: 'PQ_BAD_ENVELOPE', message: 'the envelope could not be opened', cause: err });
      if (ex.aborted) {
        ex.errorCode = e.code;
        return host.finish(ex);
      }
      host.sendError(res, ex, e, false);
      return host.finish(ex);
    }
    if (ex.aborted) return host.finish(ex);
    const sealError = (e: CageError): void => {
      ex.errorCode = e.code;
      this.answer(host, res, ex, e.status, opened.seal({ status: e.status, headers: [['content-type', 'application/json']], body: errorBody(e.code, e.message, ex.id) }));
    };
    const inner = opened.request;
    // The inner request takes the exchange's place: the pipeline and the record see it.
    ex.pq = true;
    ex.method = inner.method;
    ex.target = inner.path;
    const q = inner.path.indexOf('?');
    ex.path = q < 0 ? inner.path : inner.path.slice(0, q);
    ex.host = inner.authority !== '' ? inner.authority : ex.host;
    // Forwarding fields describe the outer hop: only a proxy in front of the cage could have written
    // them, and it cannot see inside the envelope. The outer ones are kept (and trusted as for any
    // request); the client's own copies inside are dropped, or a client behind a trusted proxy
    // could name any address it likes.
    const outer = ex.headers;
    const headers: string[] = [];
    for (const [name, value] of inner.headers) if (name !== 'host' && !OUTER_HOP_FIELDS.has(name)) headers.push(name, value);
    for (let i = 0; i < outer.length; i += 2) if (OUTER_HOP_FIELDS.has(outer[i]!)) headers.push(outer[i]!, outer[i + 1]!);
    headers.push('host', ex.host);
    ex.headers = headers;
    if (ex.path.charCodeAt(0) !== 47 || hasDotSegment(ex.path)) {
      return sealError(new CageError({ code: 'GW_BAD_REQUEST', message: 'the inner request target must be an absolute path without dot-segments' }));
    }
    if (inner.method === 'CONNECT') return sealError(new CageError({ code: 'GW_BAD_REQUEST', message: 'CONNECT is not supported by a reverse proxy' }));
    const route = state.router.match(ex.host, ex.path);
    if (route === undefined) return sealError(new CageError({ code: 'GW_NO_ROUTE', message: `no route for ${ex.host}${ex.path}` }));
    ex.route = route.name;
    ex.audit = host.auditor.enabled ? route.auditMode : 0;
    ex.bytesIn = inner.body.length;
    if (inner.body.length > route.config.maxBodyBytes) {
      return sealError(new CageError({ code: 'GW_BODY_TOO_LARGE', message: `request body of ${inner.body.length} bytes exceeds ${route.config.maxBodyBytes}` }));
    }
    if (ex.audit !== 0 && inner.body.length > 0) ex.requestBodyHash = createHash('sha256').update(inner.body);
    // Stages that look into the body (signature digests, policy inspection) see the opened one.
    if (inner.body.length > 0) ex.body = memoryBody(inner.body);
    const forward = (): void => {
      const handler = new InnerForward(this, host, res, ex, route, opened, inner.body, sealError, this.config.maxResponseBytes);
      handler.start(buildUpstreamHeaders(ex, trusted, route.config.requestHeaders));
    };
    runStages(
      state.stages as readonly Stage[],
      ex,
      0,
      (denied) => {
        if (ex.aborted) return host.finish(ex);
        if (denied !== undefined) return sealError(denied);
        forward();
      },
      () => {
        if (ex.aborted) return host.finish(ex);
        sealError(new CageError({ code: 'GW_INTERNAL', message: 'internal error in the request pipeline' }));
      },
    );
  }

  /** The outer answer: always 200 `message/ohttp-res` (the inner status is inside). */
  answer(host: PqHost, res: HttpResponse, ex: Exchange, innerStatus: number, sealed: Buffer, index = -1): void {
    if (ex.status === 0) ex.status = innerStatus;
    if (index < 0 && ex.audit !== 0 && ex.auditIndex < 0) index = host.auditor.complete(ex, EMPTY_SHA256);
    if (!ex.aborted) {
      res.cork(() => {
        res.writeStatus('200 OK');
        res.writeHeader('content-type', MEDIA_TYPE_OHTTP_RESPONSE);
        res.writeHeader('cache-control', 'no-store');
        res.writeHeader('x-request-id', ex.id);
        if (index >= 0) res.writeHeader('cage-receipt', host.auditor.receipt(index));
        res.end(sealed);
      });
    }
    host.finish(ex);
  }
}

function makeReplay(config: PqConfig): ReplayGuard | undefined {
  return config.replayWindowMs > 0 ? new ReplayGuard({ windowMs: config.replayWindowMs }) : undefined;
}

function makeGateway(keys: KeyRing, config: PqConfig, replay: ReplayGuard | undefined): OhttpGateway {
  return new OhttpGateway({ keys, maxRequestBytes: config.maxRequestBytes, replay });
}

/** Forwards the inner request and seals the whole answer (an envelope cannot be streamed). */
class InnerForward implements Dispatcher.DispatchHandler {
  private upstream: Upstream | undefined;
  private abortUpstream: ((err?: Error) => void) | null = null;
  private rawHeaders: Buffer[] = [];
  private chunks: Buffer[] = [];
  private bytes = 0;
  private attempts = 0;
  private headersSeen = false;

  constructor(
    private readonly front: PqFront,
    private readonly host: PqHost,
    private readonly res: HttpResponse,
    private readonly ex: Exchange,
    private readonly route: CompiledRoute,
    private readonly opened: OpenedRequest,
    private readonly body: Buffer,
    private readonly sealError: (e: CageError) => void,
    private readonly maxBytes: number,
  ) {}

  private opts: Dispatcher.DispatchOptions | undefined;

  start(headers: string[], exclude?: Upstream): void {
    const up = this.route.balancer.pick(Date.now(), exclude) ?? (exclude !== undefined && exclude.healthy(Date.now()) ? exclude : undefined);
    if (up === undefined) return this.sealError(new CageError({ code: 'GW_NO_HEALTHY_UPSTREAM', message: `no healthy upstream for route ${this.route.name}` }));
    this.opts ??= { path: this.ex.target, method: this.ex.method, headers, body: this.body.length > 0 ? this.body : null, idempotent: IDEMPOTENT.has(this.ex.method), reset: false };
    this.upstream = up;
    this.ex.upstream = up.label;
    up.inflight++;
    this.attempts++;
    up.pool.dispatch(this.opts, this);
  }

  onConnect(abort: (err?: Error) => void): void {
    this.abortUpstream = abort;
    if (this.ex.aborted) abort();
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[]): boolean {
    if (statusCode < 200) return true;
    this.headersSeen = true;
    this.ex.status = statusCode;
    this.ex.upstreamHeadersAt = performance.now();
    this.rawHeaders = rawHeaders;
    return true;
  }

  onData(chunk: Buffer): boolean {
    this.bytes += chunk.length;
    if (this.bytes > this.maxBytes) {
      this.abortUpstream?.(new CageError({ code: 'GW_UPSTREAM_BAD_RESPONSE', message: `the app's answer exceeds pq.max_response_bytes (${this.maxBytes}) and cannot be sealed` }));
      return false;
    }
    this.chunks.push(chunk);
    return true;
  }

  onComplete(): void {
    const up = this.upstream!;
    up.inflight--;
    up.recordSuccess();
    const ex = this.ex;
    if (ex.aborted) return this.host.finish(ex);
    const body = Buffer.concat(this.chunks, this.bytes);
    ex.bytesOut = body.length;
    const head = buildResponseHeaders(this.rawHeaders, this.route.config.responseHeaders, ex.id);
    const fields: Array<[string, string]> = [];
    for (let i = 0; i < head.headers.length; i += 2) {
      const v = head.headers[i + 1]!;
      fields.push([head.headers[i] as string, typeof v === 'string' ? v : v.toString('latin1')]);
    }
    let index = -1;
    if (ex.audit !== 0) {
      ex.responseHeadersDigest = digestRawHead(ex.status, this.rawHeaders);
      index = this.host.auditor.complete(ex, body.length === 0 ? EMPTY_SHA256 : hash('sha256', body, 'buffer'));
      if (index >= 0) fields.push(['cage-receipt', this.host.auditor.receipt(index)]);
    }
    const sealed = this.opened.seal({ status: ex.status, headers: fields, body });
    if (ex.audit === 2 && index >= 0) {
      this.host.auditor.durable(index).then(
        () => this.front.answer(this.host, this.res, ex, ex.status, sealed, index),
        (err: unknown) => {
          ex.auditIndex = index;
          this.sealErrorAfterSeal(isCageError(err) ? err : new CageError({ code: 'AUDIT_STORE_IO', message: 'the audit record could not be made durable', cause: err }));
        },
      );
      return;
    }
    this.front.answer(this.host, this.res, ex, ex.status, sealed, index);
  }

  /** The response context is single-use: after sealing, a failure can only be answered in the clear. */
  private sealErrorAfterSeal(err: CageError): void {
    this.host.sendError(this.res, this.ex, err, false);
    this.host.finish(this.ex);
  }

  onError(err: Error): void {
    const up = this.upstream;
    if (up !== undefined) up.inflight--;
    const ex = this.ex;
    if (ex.aborted) return this.host.finish(ex);
    const code = classify(err);
    if (up !== undefined && (code === 'GW_UPSTREAM_UNREACHABLE' || code === 'GW_UPSTREAM_RESET' || code === 'GW_UPSTREAM_TIMEOUT')) up.recordFailure(Date.now());
    if (!this.headersSeen && code === 'GW_UPSTREAM_UNREACHABLE' && this.attempts <= this.route.config.retries) {
      ex.retries++;
      this.start(this.opts!.headers as string[], up);
      return;
    }
    ex.status = 0;
    this.sealError(isCageError(err) ? err : new CageError({ code, message: upstreamMessage(code, up, err), cause: err }));
  }
}

/** A BodyPeek over a body already in memory (the opened envelope's). */
function memoryBody(body: Uint8Array): BodyPeek {
  const buf = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  return { peek: (n) => Promise.resolve({ bytes: buf.length > n ? buf.subarray(0, n) : buf, complete: buf.length <= n }) };
}
