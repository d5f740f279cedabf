/**
 * Header rewriting at the edge (RFC 9110 §7.6.1 hop-by-hop fields; RFC 7239 Forwarded; the
 * de-facto X-Forwarded-For/-Proto/-Host). Incoming forwarding headers are client input: they are
 * kept (and appended to) only when the direct peer is in `trusted_proxies`, otherwise replaced.
 */
import { isUtf8 } from 'node:buffer';
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

/** What the cage asserts to the app about the caller: never taken from the client. */
const CAGE_ASSERTED = new Set(['cage-identity', 'cage-identity-kind', 'cage-verdict']);

/** An identity (a JWT sub may hold anything) as a header value: printable ASCII, else percent-encoded. */
function headerSafe(v: string): string {
  return /^[\x20-\x7e]*$/.test(v) ? v : encodeURIComponent(v);
}

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

/**
 * The peer address as forwarding headers should carry it. uWS prints IPv6 uncompressed
 * ("0000:0000:0000:0000:0000:0000:0000:0001"), and an IPv4 peer of a dual-stack listener as a
 * mapped IPv6 address: those become "127.0.0.1", and other IPv6 addresses their RFC 5952 text
 * ("::1"). IPv4 text is returned as is.
 */
export function canonicalAddress(a: string): string {
  if (a.indexOf(':') === -1) return a;
  const parts = a.split(':');
  if (parts.length !== 8) return a.toLowerCase();
  const g: number[] = [];
  for (const p of parts) {
    const v = parseInt(p, 16);
    if (p.length === 0 || p.length > 4 || !(v >= 0)) return a.toLowerCase();
    g.push(v);
  }
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff) {
    return `${g[6]! >> 8}.${g[6]! & 255}.${g[7]! >> 8}.${g[7]! & 255}`;
  }
  // RFC 5952 §4.2: the longest run of two or more zero groups becomes "::" (the first on a tie).
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = g.map((v) => v.toString(16));
  return best === -1 ? hex.join(':') : `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

/**
 * Adds the names listed in one Connection header value (lower-case) to `into`; returns the set,
 * or null while none was listed. A message may carry several Connection fields: every one counts.
 */
function addConnectionTokens(value: string, into: Set<string> | null): Set<string> | null {
  let out = into;
  for (const t of value.split(',')) {
    const n = t.trim().toLowerCase();
    if (n !== '' && n !== 'close' && n !== 'keep-alive') (out ??= new Set()).add(n);
  }
  return out;
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
 * A client's field value (or request target) as undici must get it. uWS hands them over decoded
 * as UTF-8 and undici writes them as latin1, so a non-ASCII value would reach the upstream with
 * other bytes than the client sent ("ü", c3 bc, would become fc): re-encode it so the latin1
 * write puts the original UTF-8 bytes back on the wire. ASCII (nearly every value) is returned as
 * is. Bytes that were not UTF-8 arrive as U+FFFD, which cannot be sent back as they came: such a
 * value is left as it is, and undici refuses it (the client gets 400 GW_BAD_REQUEST).
 */
export function wireValue(v: string): string {
  if (Buffer.byteLength(v) === v.length || v.indexOf('\uFFFD') !== -1) return v;
  return Buffer.from(v, 'utf8').toString('latin1');
}

/**
 * The header list sent upstream (flat [name, value, …], undici's cheapest form): hop-by-hop and
 * Connection-named fields dropped, forwarding headers rebuilt, the route's set/remove applied.
 */
export function buildUpstreamHeaders(ex: Exchange, trusted: boolean, ops: HeaderOps): string[] {
  const inH = ex.headers;
  const out: string[] = [];
  let named: Set<string> | null = null;
  for (let i = 0; i < inH.length; i += 2) if (inH[i] === 'connection') named = addConnectionTokens(inH[i + 1]!, named);
  let xff: string | undefined;
  let xfProto: string | undefined;
  let xfHost: string | undefined;
  let fwd: string | undefined;
  for (let i = 0; i < inH.length; i += 2) {
    const name = inH[i]!;
    if (HOP_BY_HOP.has(name) || (named !== null && named.has(name)) || CAGE_ASSERTED.has(name)) continue;
    const value = wireValue(inH[i + 1]!);
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
  const host = wireValue(ex.host);
  // An anonymous member (a Groth16 proof) stays anonymous to the app: no address goes upstream,
  // neither the peer's nor any a proxy in front added (RFC 7239 "unknown").
  const anonymous = ex.identityKind === 'zk';
  const peer = anonymous ? 'unknown' : ex.remoteAddress;
  if (anonymous) xff = fwd = undefined;
  out.push('x-forwarded-for', xff === undefined ? peer : `${xff}, ${peer}`);
  out.push('x-forwarded-proto', xfProto ?? ex.scheme);
  out.push('x-forwarded-host', xfHost ?? host);
  const element = `for=${anonymous ? 'unknown' : forwardedNode(peer)};host=${forwardedValue(host)};proto=${ex.scheme}`;
  out.push('forwarded', fwd === undefined ? element : `${fwd}, ${element}`);
  out.push('x-request-id', ex.id);
  if (ex.identityKind !== '') out.push('cage-identity-kind', ex.identityKind, 'cage-identity', headerSafe(ex.identity));
  if (ex.verdict === 'yellow') out.push('cage-verdict', `yellow; warnings="${ex.verdictReasons.filter((r) => r.endsWith(':warn')).join(' ')}"`);
  if (ops.remove.length > 0 || ops.set.length > 0) return applyOps(out, ops);
  return out;
}

/** Apply a route's `remove` then `set` to a flat header list (names lower-case). */
export function applyOps<V extends string | Buffer = string>(list: Array<string | V>, ops: HeaderOps): Array<string | V> {
  let out = list;
  if (ops.remove.length > 0 || ops.set.length > 0) {
    out = [];
    for (let i = 0; i < list.length; i += 2) {
      const n = list[i] as string;
      if (ops.remove.includes(n)) continue;
      if (ops.set.some((s) => s[0] === n)) continue;
      out.push(n, list[i + 1]!);
    }
    for (const [n, v] of ops.set) out.push(n, v);
  }
  return out;
}

/**
 * A response field value for uWS, which writes JS strings as UTF-8. ASCII and valid UTF-8 (a raw
 * UTF-8 filename in Content-Disposition, say) round-trip as a string; any other bytes (obs-text,
 * opaque per RFC 9110 §5.5) go as a copy of the raw bytes, never re-encoded.
 */
function responseValue(b: Buffer): string | Buffer {
  return isUtf8(b) ? b.toString('utf8') : Buffer.from(b);
}

/** Response fields the cage never copies from the upstream (uWS writes its own framing and Date). */
const RESPONSE_DROP = new Set([...HOP_BY_HOP, 'content-length', 'date']);

export interface ResponseHead {
  /** Flat [name, value, …] to write to the client (names are strings; values strings or raw bytes). */
  headers: Array<string | Buffer>;
  /** Content-Length from the upstream, or -1 when absent. */
  contentLength: number;
}

/** Convert undici's raw header Buffers into what the client gets. */
export function buildResponseHeaders(raw: Buffer[], ops: HeaderOps, requestId: string): ResponseHead {
  const out: Array<string | Buffer> = [];
  let contentLength = -1;
  let named: Set<string> | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i]!;
    if (n.length === 10 && n.toString('latin1').toLowerCase() === 'connection') named = addConnectionTokens(raw[i + 1]!.toString('latin1'), named);
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
    // The cage's own fields: an app must not forge a receipt or a request id for the client.
    if (name === 'x-request-id' || name === 'cage-receipt') continue;
    out.push(name, responseValue(raw[i + 1]!));
  }
  out.push('x-request-id', requestId);
  return { headers: applyOps(out, ops), contentLength };
}
