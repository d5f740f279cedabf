/**
 * The notary's HTTP shell (node:http) around the pure witness of notary/witness.ts:
 *
 *   POST /add-checkpoint     C2SP tlog-witness; requests for one log run one at a time (a promise
 *                            chain per origin), so checking the old size and persisting the new
 *                            state are atomic, as the spec requires; the cosignature is made only
 *                            after the store has made the new state durable.
 *   GET  /.well-known/did.json   the notary's DID document (for did:web hosting; did:key too)
 *   GET  /healthz            {"status":"ok","did",…}
 *
 * Every refusal carries a NOTARY_* code in a JSON body, except the 409 of an old-size mismatch,
 * whose body the spec fixes (`<size>\n`, text/x.tlog.size). Bodies are capped (413); a handler
 * error is a 500, never a crash. Trust: requests are anonymous and hostile; see witness.ts.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { isCageError } from '../../core/errors.js';
import { MAX_NOTE_BYTES, type NoteSigner } from '../../audit/note.js';
import { cosign, decideAddCheckpoint, errorResponse, parseAddCheckpointBody, type AddCheckpointRequest, type KnownLogs, type WitnessResponse } from '../witness.js';
import type { NotaryStore } from './store.js';

/** Default body limit: the largest note plus 63 proof lines and the old size line. */
export const DEFAULT_MAX_BODY_BYTES = MAX_NOTE_BYTES + 8 * 1024;

export interface NotaryEvent {
  readonly event: 'cosigned' | 'refused' | 'evidence' | 'error';
  readonly origin?: string;
  readonly size?: number;
  readonly code?: string;
  readonly status?: number;
  readonly message?: string;
  readonly path?: string;
}

export interface NotaryServerOptions {
  /** The v1 cosigner (type 0x04) whose key name is `did`. */
  readonly cosigner: NoteSigner;
  readonly did: string;
  /** Served at /.well-known/did.json. */
  readonly didDocument: object;
  readonly logs: KnownLogs;
  readonly store: NotaryStore;
  readonly host?: string;
  /** 0 (default) picks a free port. */
  readonly port?: number;
  readonly maxBodyBytes?: number;
  /** UNIX seconds, for evidence file times (the cosigner has its own clock). */
  readonly clock?: () => number;
  /** One structured event per cosignature, refusal or evidence file. */
  readonly onEvent?: (e: NotaryEvent) => void;
  /** Slow clients are cut off after this long per request (default 30 s). */
  readonly requestTimeoutMs?: number;
}

const OPTION_KEYS = new Set(['cosigner', 'did', 'didDocument', 'logs', 'store', 'host', 'port', 'maxBodyBytes', 'clock', 'onEvent', 'requestTimeoutMs']);

function send(res: ServerResponse, r: WitnessResponse, extra: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  const body = Buffer.from(r.body, 'utf8');
  res.writeHead(r.status, { 'content-type': r.contentType, 'content-length': String(body.length), 'cache-control': 'no-store', ...extra });
  res.end(body);
}

function sendJson(res: ServerResponse, status: number, value: unknown, contentType = 'application/json'): void {
  send(res, { status, contentType, body: JSON.stringify(value, null, 1) + '\n' });
}

class TooLarge extends Error {}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) > limit) {
      reject(new TooLarge());
      return;
    }
    const chunks: Buffer[] = [];
    let total = 0;
    req.on('data', (c: Buffer) => {
      total += c.length;
      if (total > limit) {
        req.removeAllListeners('data');
        req.pause();
        reject(new TooLarge());
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
    req.on('aborted', () => reject(new Error('request aborted')));
  });
}

export class NotaryServer {
  private readonly queues = new Map<string, Promise<unknown>>();
  private readonly inFlight = new Set<Promise<unknown>>();
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly opts: NotaryServerOptions,
    private readonly server: Server,
    readonly port: number,
    readonly host: string,
  ) {}

  /** Starts listening; resolves once bound. Throws NOTARY_STORE_CORRUPT if the store disagrees with the log keys. */
  static async start(opts: NotaryServerOptions): Promise<NotaryServer> {
    for (const k of Object.keys(opts)) if (!OPTION_KEYS.has(k)) throw new TypeError(`notary server: unknown option ${JSON.stringify(k)}`);
    if (opts.cosigner.name !== opts.did) throw new TypeError(`notary server: the cosigner's key name ${opts.cosigner.name} is not the DID ${opts.did}`);
    const max = opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
    if (!Number.isSafeInteger(max) || max < 64) throw new TypeError('notary server: maxBodyBytes must be an integer >= 64');
    opts.store.verify(opts.logs);
    const server = createServer({ requestTimeout: opts.requestTimeoutMs ?? 30_000, headersTimeout: Math.min(opts.requestTimeoutMs ?? 30_000, 20_000), keepAliveTimeout: 5_000 });
    const host = opts.host ?? '127.0.0.1';
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port ?? 0, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const ns = new NotaryServer(opts, server, (server.address() as AddressInfo).port, host);
    server.on('request', (req, res) => ns.track(ns.route(req, res, max)));
    server.on('clientError', (_err, socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      else socket.destroy();
    });
    return ns;
  }

  get url(): string {
    return `http://${this.host.includes(':') ? `[${this.host}]` : this.host}:${this.port}`;
  }

  private track(p: Promise<void>): void {
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
  }

  private emit(e: NotaryEvent): void {
    try {
      this.opts.onEvent?.(e);
    } catch {
      // a logger's failure is not the request's
    }
  }

  private async route(req: IncomingMessage, res: ServerResponse, maxBody: number): Promise<void> {
    try {
      const path = (req.url ?? '/').split('?')[0]!;
      const method = req.method ?? 'GET';
      if (path === '/add-checkpoint') {
        if (method !== 'POST') return this.methodNotAllowed(req, res, 'POST');
        let body: Buffer;
        try {
          body = await readBody(req, maxBody);
        } catch (err) {
          if (err instanceof TooLarge) {
            send(res, errorResponse('NOTARY_BODY_TOO_LARGE', `the body exceeds ${maxBody} bytes`), { connection: 'close' });
            res.once('finish', () => req.destroy());
          } else {
            req.destroy();
          }
          return;
        }
        send(res, await this.addCheckpoint(body));
        return;
      }
      if (path === '/.well-known/did.json') {
        if (method !== 'GET' && method !== 'HEAD') return this.methodNotAllowed(req, res, 'GET, HEAD');
        return sendJson(res, 200, this.opts.didDocument, 'application/did+json');
      }
      if (path === '/healthz') {
        if (method !== 'GET' && method !== 'HEAD') return this.methodNotAllowed(req, res, 'GET, HEAD');
        const failure = this.opts.store.failure;
        return sendJson(res, failure === undefined ? 200 : 503, { status: failure === undefined ? 'ok' : 'failing', did: this.opts.did, logs: this.opts.logs.origins, ...(failure === undefined ? {} : { error: failure.code }) });
      }
      req.resume();
      send(res, errorResponse('NOTARY_NOT_FOUND', `no notary endpoint at ${path}`));
    } catch (err) {
      this.emit({ event: 'error', code: 'NOTARY_INTERNAL', message: err instanceof Error ? err.message : String(err) });
      send(res, errorResponse('NOTARY_INTERNAL', 'internal error'));
    }
  }

  private methodNotAllowed(req: IncomingMessage, res: ServerResponse, allow: string): void {
    req.resume();
    send(res, errorResponse('NOTARY_METHOD_NOT_ALLOWED', `${req.method} is not allowed here (allowed: ${allow})`), { allow });
  }

  /** Runs `fn` after every earlier task of the same log. */
  private serialize<T>(origin: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.queues.get(origin) ?? Promise.resolve();
    const run = prev.then(fn);
    const tail = run.catch(() => undefined);
    this.queues.set(origin, tail);
    void tail.then(() => {
      if (this.queues.get(origin) === tail) this.queues.delete(origin);
    });
    return run;
  }

  /** The add-checkpoint handler without HTTP: parse, then (serialized per log) decide, persist, cosign. */
  async addCheckpoint(body: Uint8Array | string): Promise<WitnessResponse> {
    let req: AddCheckpointRequest;
    try {
      req = parseAddCheckpointBody(body);
    } catch (err) {
      if (!isCageError(err)) throw err;
      this.emit({ event: 'refused', code: err.code, status: 400, message: err.message });
      return errorResponse(err.code, err.message);
    }
    if (this.opts.logs.verifiers(req.origin) === undefined) {
      const r = errorResponse('NOTARY_UNKNOWN_LOG', `no log with origin ${JSON.stringify(req.origin)} is witnessed here`);
      this.emit({ event: 'refused', origin: req.origin, code: r.code!, status: r.status });
      return r;
    }
    return this.serialize(req.origin, async () => {
      const store = this.opts.store;
      const d = decideAddCheckpoint(this.opts.logs, req, store.get(req.origin));
      if (d.evidence !== undefined) {
        const path = await store.saveEvidence(d.evidence, (this.opts.clock ?? (() => Math.floor(Date.now() / 1000)))());
        if (path !== undefined) this.emit({ event: 'evidence', origin: req.origin, code: d.evidence.code, path });
      }
      if (!d.accept) {
        this.emit({ event: 'refused', origin: req.origin, code: d.response.code!, status: d.response.status });
        return d.response;
      }
      if (d.changed) {
        try {
          await store.saveState(d.state);
        } catch (err) {
          const code = isCageError(err) ? err.code : 'NOTARY_STORE_IO';
          this.emit({ event: 'error', origin: req.origin, code, message: err instanceof Error ? err.message : String(err) });
          return errorResponse('NOTARY_STORE_IO', 'the notary could not persist its state; nothing was cosigned');
        }
      }
      const r = cosign(this.opts.cosigner, d.checkpointBody);
      this.emit({ event: 'cosigned', origin: req.origin, size: d.state.size, status: 200 });
      return r;
    });
  }

  /**
   * Stops accepting connections, lets add-checkpoint work already decided finish (its state is
   * then durable and its answer sent), then cuts the remaining connections (clients still sending
   * a body: they retry elsewhere or later).
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
      this.server.closeIdleConnections();
      while (this.queues.size > 0) await Promise.allSettled([...this.queues.values()]);
      await new Promise((resolve) => setImmediate(resolve)); // let the last answers be written
      this.server.closeAllConnections();
      await closed;
      await Promise.allSettled([...this.inFlight]);
    })();
    return this.closing;
  }
}
