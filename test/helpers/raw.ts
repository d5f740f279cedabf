/**
 * A raw HTTP/1.1 client over `net`, for requests node:http refuses to send (bad framing, CR/LF
 * in values, smuggling attempts) and for checking exactly what came back: how many responses,
 * their framing, and whether the connection was closed. The response parser is deliberately
 * small: status line, headers, then a body by Content-Length, chunked, or until close.
 */
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';

export interface RawResponse {
  status: number;
  /** Header names lower-case; repeated headers keep every value. */
  headers: Map<string, string[]>;
  body: Buffer;
  framing: 'length' | 'chunked' | 'close' | 'none';
  /** False when the connection ended before the framing said the body was over. */
  complete: boolean;
}

export interface RawResult {
  responses: RawResponse[];
  /** The peer ended or reset the connection. */
  closed: boolean;
  /** The safety timeout fired before `expect` responses arrived or the peer closed. */
  timedOut: boolean;
  raw: Buffer;
}

export interface RawOptions {
  /** Stop once this many complete responses arrived (default 1); the socket is then destroyed. */
  expect?: number;
  /** Give up after this long (a safety net, never an assertion; default 5000 ms). */
  timeoutMs?: number;
  /** The requests were HEAD (their responses carry no body). */
  head?: boolean;
  /** Keep reading after `expect` responses until the peer closes (to prove it does). */
  untilClose?: boolean;
  tls?: ConnectionOptions;
}

/** Send `data` (written in pieces when an array; strings as latin1, one byte per char) and collect what comes back. */
export function rawRequest(port: number, data: string | Buffer | Array<string | Buffer>, opts: RawOptions = {}): Promise<RawResult> {
  const expect = opts.expect ?? 1;
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let settled = false;
    const socket: Socket = opts.tls !== undefined
      ? tlsConnect({ host: '127.0.0.1', port, ...opts.tls })
      : connect({ host: '127.0.0.1', port });
    const finish = (closed: boolean, timedOut: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      const raw = Buffer.concat(chunks);
      resolve({ responses: parseResponses(raw, closed, opts.head ?? false), closed, timedOut, raw });
    };
    const timer = setTimeout(() => finish(false, true), opts.timeoutMs ?? 5000);
    socket.on(opts.tls !== undefined ? 'secureConnect' : 'connect', () => {
      const parts = Array.isArray(data) ? data : [data];
      for (const p of parts) socket.write(typeof p === 'string' ? Buffer.from(p, 'latin1') : p);
    });
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      if (opts.untilClose) return;
      const done = parseResponses(Buffer.concat(chunks), false, opts.head ?? false).filter((r) => r.complete).length;
      if (done >= expect) finish(false, false);
    });
    socket.on('end', () => finish(true, false));
    socket.on('close', () => finish(true, false));
    socket.on('error', () => finish(true, false));
  });
}

/** Parse back-to-back responses; `ended` lets a close-delimited body count as complete. */
export function parseResponses(buf: Buffer, ended: boolean, head: boolean): RawResponse[] {
  const out: RawResponse[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const headEnd = buf.indexOf('\r\n\r\n', pos);
    if (headEnd === -1) break;
    const lines = buf.subarray(pos, headEnd).toString('latin1').split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]!);
    if (!m) break;
    const status = Number(m[1]);
    const headers = new Map<string, string[]>();
    for (const line of lines.slice(1)) {
      const i = line.indexOf(':');
      if (i <= 0) continue;
      const name = line.slice(0, i).trim().toLowerCase();
      const list = headers.get(name) ?? [];
      list.push(line.slice(i + 1).trim());
      headers.set(name, list);
    }
    pos = headEnd + 4;
    const te = headers.get('transfer-encoding')?.join(',').toLowerCase() ?? '';
    const cl = headers.get('content-length')?.[0];
    if (head || status === 204 || status === 304 || (status >= 100 && status < 200)) {
      out.push({ status, headers, body: Buffer.alloc(0), framing: 'none', complete: true });
      continue;
    }
    if (te.includes('chunked')) {
      const chunks: Buffer[] = [];
      let complete = false;
      for (;;) {
        const lineEnd = buf.indexOf('\r\n', pos);
        if (lineEnd === -1) break;
        const size = parseInt(buf.subarray(pos, lineEnd).toString('latin1'), 16);
        if (!Number.isFinite(size)) break;
        if (size === 0) {
          const trailerEnd = buf.indexOf('\r\n\r\n', lineEnd);
          const end = buf.indexOf('\r\n', lineEnd + 2) === lineEnd + 2 ? lineEnd + 4 : trailerEnd === -1 ? -1 : trailerEnd + 4;
          if (end !== -1 && end <= buf.length) {
            pos = end;
            complete = true;
          }
          break;
        }
        if (lineEnd + 2 + size + 2 > buf.length) {
          chunks.push(buf.subarray(lineEnd + 2, Math.min(buf.length, lineEnd + 2 + size)));
          pos = buf.length;
          break;
        }
        chunks.push(buf.subarray(lineEnd + 2, lineEnd + 2 + size));
        pos = lineEnd + 2 + size + 2;
      }
      out.push({ status, headers, body: Buffer.concat(chunks), framing: 'chunked', complete });
      if (!complete) break;
      continue;
    }
    if (cl !== undefined) {
      const n = Number(cl);
      const body = buf.subarray(pos, Math.min(buf.length, pos + n));
      out.push({ status, headers, body, framing: 'length', complete: body.length === n });
      pos += body.length;
      if (body.length < n) break;
      continue;
    }
    out.push({ status, headers, body: buf.subarray(pos), framing: 'close', complete: ended });
    break;
  }
  return out;
}

/** First value of a header in a raw response. */
export function rawHeader(r: RawResponse, name: string): string | undefined {
  return r.headers.get(name)?.[0];
}

/** The cage error code of a raw response's JSON body. */
export function rawErrorCode(r: RawResponse): string {
  const parsed = JSON.parse(r.body.toString()) as { error?: { code?: unknown } };
  if (typeof parsed.error?.code !== 'string') throw new Error(`not a cage error body: ${r.body.toString().slice(0, 200)}`);
  return parsed.error.code;
}

/**
 * One client connection for sequential raw exchanges (send, wait for the whole response, send
 * the next), to check what a response leaves on the connection for the one after it.
 */
export class RawConnection {
  private buf = Buffer.alloc(0);
  private consumed = 0;
  private waiter: (() => void) | null = null;
  closed = false;

  private constructor(private readonly socket: Socket) {
    socket.on('data', (c: Buffer) => {
      this.buf = Buffer.concat([this.buf, c]);
      this.waiter?.();
    });
    const onClose = () => {
      this.closed = true;
      this.waiter?.();
    };
    socket.on('end', onClose);
    socket.on('close', onClose);
    socket.on('error', onClose);
  }

  static open(port: number): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port }, () => resolve(new RawConnection(socket)));
      socket.once('error', reject);
    });
  }

  /** Send `data`; resolves with the next complete response, or undefined when the peer closed first. */
  async exchange(data: string | Buffer, opts: { head?: boolean; timeoutMs?: number } = {}): Promise<RawResponse | undefined> {
    this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
    return this.next(opts);
  }

  async next(opts: { head?: boolean; timeoutMs?: number } = {}): Promise<RawResponse | undefined> {
    const deadline = Date.now() + (opts.timeoutMs ?? 5000);
    for (;;) {
      const rest = this.buf.subarray(this.consumed);
      const [r] = parseResponses(rest, this.closed, opts.head ?? false);
      if (r !== undefined && r.complete) {
        this.consumed += responseLength(rest, r, opts.head ?? false);
        return r;
      }
      if (this.closed || Date.now() > deadline) return undefined;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.max(1, deadline - Date.now()));
        this.waiter = () => {
          clearTimeout(t);
          this.waiter = null;
          resolve();
        };
      });
    }
  }

  /** Bytes received and not consumed by a parsed response (stray body bytes show up here). */
  get unread(): Buffer {
    return this.buf.subarray(this.consumed);
  }

  close(): void {
    this.socket.destroy();
  }
}

/** How many bytes of `buf` the first response `r` (just parsed from it) occupies. */
function responseLength(buf: Buffer, r: RawResponse, head: boolean): number {
  const headEnd = buf.indexOf('\r\n\r\n') + 4;
  if (head || r.framing === 'none') return headEnd;
  if (r.framing === 'length') return headEnd + r.body.length;
  if (r.framing === 'close') return buf.length;
  // chunked: find the terminating zero chunk after the head
  let pos = headEnd;
  for (;;) {
    const lineEnd = buf.indexOf('\r\n', pos);
    const size = parseInt(buf.subarray(pos, lineEnd).toString('latin1'), 16);
    if (size === 0) {
      const end = buf.indexOf('\r\n\r\n', lineEnd);
      return buf.indexOf('\r\n', lineEnd + 2) === lineEnd + 2 ? lineEnd + 4 : end + 4;
    }
    pos = lineEnd + 2 + size + 2;
  }
}

/**
 * Server side of a raw upstream: split what arrives on `socket` into whole requests (head plus a
 * Content-Length or chunked body, as the cage frames them) and call `onRequest(head, n)` for
 * each, `n` counting requests on this connection.
 */
export function readRequests(socket: Socket, onRequest: (head: string, n: number) => void): void {
  let buf = Buffer.alloc(0);
  let n = 0;
  socket.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    for (;;) {
      const end = buf.indexOf('\r\n\r\n');
      if (end === -1) return;
      const head = buf.subarray(0, end).toString('latin1');
      const m = /\r\ncontent-length: *(\d+)/i.exec(head);
      let total = end + 4 + (m ? Number(m[1]) : 0);
      if (/\r\ntransfer-encoding: *chunked/i.test(head)) {
        const last = buf.indexOf('\r\n0\r\n\r\n', end);
        if (last === -1) return;
        total = last + 7;
      }
      if (buf.length < total) return;
      buf = buf.subarray(total);
      onRequest(head, n++);
    }
  });
}
