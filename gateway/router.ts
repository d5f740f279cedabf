/**
 * Routes compiled once per config: host (exact, `*.suffix` wildcard, or any) and path prefix.
 * Matching order: exact host beats wildcard beats any-host; within those, the longest path prefix
 * wins, then config order. A prefix matches at a segment boundary: `/api` matches `/api`,
 * `/api/x` and `/api?q`, not `/apix` (a prefix ending in `/` matches anything below it).
 * The Host header is client input: it is lower-cased and its port stripped before lookup.
 * The path is matched raw (never decoded or normalized), so a path with dot-segments is refused
 * before routing (`hasDotSegment`).
 */

export interface Routable {
  readonly hosts: readonly string[];
  readonly pathPrefix: string;
}

interface Entry<R> {
  route: R;
  prefix: string;
  slashEnded: boolean;
}

export class Router<R extends Routable> {
  private readonly exact = new Map<string, Entry<R>[]>();
  private readonly wildcard: { suffix: string; entries: Entry<R>[] }[] = [];
  private readonly anyHost: Entry<R>[] = [];

  constructor(routes: readonly R[]) {
    const byLength = (a: Entry<R>, b: Entry<R>) => b.prefix.length - a.prefix.length;
    for (const route of routes) {
      const entry: Entry<R> = { route, prefix: route.pathPrefix, slashEnded: route.pathPrefix.endsWith('/') };
      if (route.hosts.length === 0) this.anyHost.push(entry);
      for (const pattern of route.hosts) {
        const h = normalizeHost(pattern);
        if (h.startsWith('*.')) {
          const suffix = h.slice(1);
          let w = this.wildcard.find((x) => x.suffix === suffix);
          if (w === undefined) this.wildcard.push((w = { suffix, entries: [] }));
          w.entries.push(entry);
        } else {
          let list = this.exact.get(h);
          if (list === undefined) this.exact.set(h, (list = []));
          list.push(entry);
        }
      }
    }
    // Stable sorts: longest prefix first, config order among equals.
    for (const list of this.exact.values()) list.sort(byLength);
    this.wildcard.sort((a, b) => b.suffix.length - a.suffix.length);
    for (const w of this.wildcard) w.entries.sort(byLength);
    this.anyHost.sort(byLength);
  }

  /** `host` as sent (any case, maybe with a port); `path` is the raw path without the query. */
  match(host: string, path: string): R | undefined {
    const h = normalizeHost(host);
    if (this.exact.size > 0) {
      const list = this.exact.get(h);
      if (list !== undefined) {
        const r = matchPath(list, path);
        if (r !== undefined) return r;
      }
    }
    for (const w of this.wildcard) {
      if (h.length > w.suffix.length && h.endsWith(w.suffix)) {
        const r = matchPath(w.entries, path);
        if (r !== undefined) return r;
      }
    }
    return matchPath(this.anyHost, path);
  }
}

function matchPath<R>(entries: readonly Entry<R>[], path: string): R | undefined {
  for (const e of entries) {
    if (e.prefix === '/') return e.route;
    if (!path.startsWith(e.prefix)) continue;
    if (e.slashEnded || path.length === e.prefix.length) return e.route;
    const c = path.charCodeAt(e.prefix.length);
    if (c === 47 /* / */) return e.route;
  }
  return undefined;
}

/** Lower-case, strip the port (keeps `[v6]` brackets). */
export function normalizeHost(host: string): string {
  let end = host.length;
  if (host.charCodeAt(0) === 91 /* [ */) {
    const close = host.indexOf(']');
    end = close === -1 ? end : close + 1;
  } else {
    const colon = host.indexOf(':');
    if (colon !== -1) end = colon;
  }
  const h = end === host.length ? host : host.slice(0, end);
  for (let i = 0; i < h.length; i++) {
    const c = h.charCodeAt(i);
    if (c >= 65 && c <= 90) return h.toLowerCase();
  }
  return h;
}

/** A `.` or `..` segment, literal or percent-encoded, between slashes or backslashes (or %2f / %5c). */
const DOT_SEGMENT_RE = /(?:^|\/|\\|%2f|%5c)(?:\.|%2e)(?:\.|%2e)?(?:$|\/|\\|%2f|%5c)/i;

/**
 * True when the raw path has a dot-segment (RFC 3986 §3.3). The router matches the raw path, but
 * an upstream that resolves dot-segments (§5.2.4) or decodes `%2e` would serve another one:
 * `/public/../admin` routes as /public and is served as /admin. Clients normalize these away
 * before sending, so a request that still has one is refused rather than rewritten.
 */
export function hasDotSegment(path: string): boolean {
  return (path.indexOf('.') !== -1 || path.indexOf('%') !== -1) && DOT_SEGMENT_RE.test(path);
}
