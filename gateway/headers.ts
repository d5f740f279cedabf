/**
 * Header rewriting at the edge (RFC 9110 §7.6.1 hop-by-hop fields; RFC 7239 Forwarded; the
 * de-facto X-Forwarded-For/-Proto/-Host). Incoming forwarding headers are client input: they are
 * kept (and appended to) only when the direct peer is in `trusted_proxies`, otherwise replaced.
 */
import { BlockList } from 'node:net';
import { parseCidr } from './config/load.js';
import type { HeaderOps } from './config/load.js';
import type { Exchange } from './exchange.js';

/** Hop-by-hop fields, plus `expect` (undici refuses it) and `proxy-connection` (legacy). */
const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade',
  'proxy-authenticate', 'proxy-authorization', 'expect',
]);

/** Set by the cage on the way in; client copies are dropped and rebuilt. */
const FORWARDING = new Set(['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'forwarded', 'x-request-id']);

export function isHopByHop(name: string): boolean {
  return HOP_BY_HOP.has(name);
}

export function compileTrustedProxies(cidrs: readonly string[]): BlockList | undefined {
  if (cidrs.length === 0) return undefined;
  const list = new BlockList();
  for (const c of cidrs) {
    const p = parseCidr(c)!;
    list.addSubnet(p.address, p.prefix, p.family);
  }
  return list;
}

export function isTrusted(list: BlockList | undefined, address: string): boolean {
  if (list === undefined || address === '') return false;
  return list.check(address, address.includes(':') ? 'ipv6' : 'ipv4');
}

/** Names listed in a Connection header value (lower-case), or null when none. */
function connectionTokens(value: string | undefined): Set<string> | null {
  if (value === undefined) return null;
  const out = new Set<string>();
  for (const t of value.split(',')) {
    const n = t.trim().toLowerCase();
    if (n !== '' && n !== 'close' && n !== 'keep-alive') out.add(n);
  }
  return out.size === 0 ? null : out;
}

/** Forwarded `for=` node: IPv6 in quotes and brackets (RFC 7239 §6). */
function forwardedNode(address: string): string {
  return address.includes(':') ? `"[${address}]"` : address;
}

const TOKEN_RE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
function forwardedValue(v: string): string {
  return TOKEN_RE.test(v) ? v : `"${v.replace(/["\\]/g, '\\$&')}"`;
}

/**
 * The header list sent upstream (flat [name, value, …], undici's cheapest form): hop-by-hop and
 * Connection-named fields dropped, forwarding headers rebuilt, the route's set/remove applied.
 */
export function buildUpstreamHeaders(ex: Exchange, trusted: boolean, ops: HeaderOps): string[] {
  const inH = ex.headers;
  const out: string[] = [];
  const named = connectionTokens(ex.header('connection'));
  let xff: string | undefined;
  let xfProto: string | undefined;
  let xfHost: string | undefined;
  let fwd: string | undefined;
  for (let i = 0; i < inH.length; i += 2) {
    const name = inH[i]!;
    const value = inH[i + 1]!;
    if (HOP_BY_HOP.has(name) || (named !== null && named.has(name))) continue;
    if (FORWARDING.has(name)) {
      if (trusted) {
        if (name === 'x-forwarded-for') xff = xff === undefined ? value : `${xff}, ${value}`;
        else if (name === 'x-forwarded-proto') xfProto ??= value;
        else if (name === 'x-forwarded-host') xfHost ??= value;
        else if (name === 'forwarded') fwd = fwd === undefined ? value : `${fwd}, ${value}`;
      }
      continue;
    }
    out.push(name, value);
  }
  const peer = ex.remoteAddress;
  out.push('x-forwarded-for', xff === undefined ? peer : `${xff}, ${peer}`);
  out.push('x-forwarded-proto', xfProto ?? ex.scheme);
  out.push('x-forwarded-host', xfHost ?? ex.host);
  const element = `for=${forwardedNode(peer)};host=${forwardedValue(ex.host)};proto=${ex.scheme}`;
  out.push('forwarded', fwd === undefined ? element : `${fwd}, ${element}`);
  out.push('x-request-id', ex.id);
  if (ops.remove.length > 0 || ops.set.length > 0) return applyOps(out, ops);
  return out;
}

/** Apply a route's `remove` then `set` to a flat header list (names lower-case). */
export function applyOps(list: string[], ops: HeaderOps): string[] {
  let out = list;
  if (ops.remove.length > 0 || ops.set.length > 0) {
    out = [];
    for (let i = 0; i < list.length; i += 2) {
      const n = list[i]!;
      if (ops.remove.includes(n)) continue;
      if (ops.set.some((s) => s[0] === n)) continue;
      out.push(n, list[i + 1]!);
    }
    for (const [n, v] of ops.set) out.push(n, v);
  }
  return out;
}

/** Response fields the cage never copies from the upstream (uWS writes its own framing and Date). */
const RESPONSE_DROP = new Set([...HOP_BY_HOP, 'content-length', 'date']);

export interface ResponseHead {
  /** Flat [name, value, …] to write to the client. */
  headers: string[];
  /** Content-Length from the upstream, or -1 when absent. */
  contentLength: number;
}

/** Convert undici's raw header Buffers into what the client gets. */
export function buildResponseHeaders(raw: Buffer[], ops: HeaderOps, requestId: string): ResponseHead {
  const out: string[] = [];
  let contentLength = -1;
  let named: Set<string> | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toString('latin1').toLowerCase();
    if (name === 'connection') named = connectionTokens(raw[i + 1]!.toString('latin1'));
  }
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toString('latin1').toLowerCase();
    if (RESPONSE_DROP.has(name) || (named !== null && named.has(name))) {
      if (name === 'content-length') {
        const v = raw[i + 1]!.toString('latin1');
        contentLength = /^\d{1,15}$/.test(v) ? Number(v) : -1;
      }
      continue;
    }
    if (name === 'x-request-id') continue;
    out.push(name, raw[i + 1]!.toString('latin1'));
  }
  out.push('x-request-id', requestId);
  return { headers: applyOps(out, ops), contentLength };
}
