/**
 * Path patterns for policy selectors: a small glob subset compiled to a matcher, never to a
 * regular expression (patterns come from bundles, paths from callers; neither may cost more than
 * linear time). Grammar, per '/'-separated segment:
 *   literal   `users`           the segment, exactly (case-sensitive)
 *   `*`                         any one non-empty segment
 *   pre*suf   `*.json`, `v*`    one segment with that prefix and suffix (at most one '*')
 *   `**`                        zero or more segments; at most once per pattern
 * A pattern starts with '/'. The query string ('?…') of a path is ignored. Paths are matched as
 * given: the gateway passes the same normalized path it routed on.
 */

type Segment = { kind: 0; text: string } | { kind: 1 } | { kind: 2; pre: string; suf: string };

export interface PathMatcher {
  readonly pattern: string;
  match(path: string): boolean;
}

const SEGMENT_CHARS = /^[A-Za-z0-9._~!$&'()+,;=:@%*-]*$/; // fixed, linear: one character class

/** Compiles a pattern; returns the reason as a string when it is not in the grammar. */
export function compilePathPattern(pattern: string): PathMatcher | string {
  if (pattern.length === 0 || pattern.length > 512) return 'a path pattern has 1 to 512 characters';
  if (pattern.charCodeAt(0) !== 47) return `path pattern ${JSON.stringify(pattern)} must start with '/'`;
  const raw = pattern.slice(1).split('/');
  if (raw.length > 64) return `path pattern ${JSON.stringify(pattern)} has more than 64 segments`;
  const head: Segment[] = [];
  const tail: Segment[] = [];
  let globstar = false;
  for (const s of raw) {
    if (s === '**') {
      if (globstar) return `path pattern ${JSON.stringify(pattern)} uses '**' more than once`;
      globstar = true;
      continue;
    }
    if (!SEGMENT_CHARS.test(s)) return `path pattern ${JSON.stringify(pattern)} has a character outside the glob subset in ${JSON.stringify(s)}`;
    const star = s.indexOf('*');
    let seg: Segment;
    if (star < 0) seg = { kind: 0, text: s };
    else if (s.length === 1) seg = { kind: 1 };
    else if (s.indexOf('*', star + 1) >= 0) return `path pattern segment ${JSON.stringify(s)} has more than one '*'`;
    else seg = { kind: 2, pre: s.slice(0, star), suf: s.slice(star + 1) };
    (globstar ? tail : head).push(seg);
  }
  return Object.freeze({ pattern, match: globstar ? (p: string) => matchGlobstar(head, tail, p) : (p: string) => matchExact(head, p) });
}

function pathEnd(path: string): number {
  const q = path.indexOf('?');
  return q < 0 ? path.length : q;
}

function segMatches(seg: Segment, path: string, s: number, e: number): boolean {
  if (seg.kind === 0) return e - s === seg.text.length && path.startsWith(seg.text, s);
  if (seg.kind === 1) return e > s;
  return e - s >= seg.pre.length + seg.suf.length && path.startsWith(seg.pre, s) && path.startsWith(seg.suf, e - seg.suf.length);
}

/** Matches the head segments from the front; returns the index after them, or -1. */
function matchHead(head: Segment[], path: string, end: number, mustEnd: boolean): number {
  if (end === 0 || path.charCodeAt(0) !== 47) return -1;
  let s = 1;
  for (let i = 0; i < head.length; i++) {
    if (s > end) return -1;
    let e = path.indexOf('/', s);
    if (e < 0 || e > end) e = end;
    if (!segMatches(head[i]!, path, s, e)) return -1;
    s = e + 1;
  }
  if (mustEnd) return s === end + 1 || (head.length === 0 && end === 1) ? s : -1;
  return s;
}

function matchExact(head: Segment[], path: string): boolean {
  return matchHead(head, path, pathEnd(path), true) >= 0;
}

function matchGlobstar(head: Segment[], tail: Segment[], path: string): boolean {
  const end = pathEnd(path);
  const s = matchHead(head, path, end, false);
  if (s < 0) return false;
  // tail segments, matched from the back; they must not overlap the head
  let e = end;
  for (let i = tail.length - 1; i >= 0; i--) {
    const slash = path.lastIndexOf('/', e - 1);
    if (slash < 0 || slash + 1 < s) return false;
    if (!segMatches(tail[i]!, path, slash + 1, e)) return false;
    e = slash;
  }
  return true;
}
