import assert from 'node:assert/strict';
import fc from 'fast-check';
import { normalizeHost, Router, type Routable } from '../../gateway/router.js';

interface R extends Routable {
  name: string;
}
const r = (name: string, pathPrefix: string, ...hosts: string[]): R => ({ name, pathPrefix, hosts });

describe('gateway/router', () => {
  const router = new Router<R>([
    r('root', '/'),
    r('api', '/api'),
    r('api-v2', '/api/v2'),
    r('static', '/static/'),
    r('example', '/', 'example.com'),
    r('example-api', '/api', 'example.com'),
    r('wild', '/', '*.example.org'),
    r('deep-wild', '/', '*.eu.example.org'),
    r('ported', '/', 'ported.test:8443'),
  ]);
  const match = (host: string, path: string) => router.match(host, path)?.name;

  it('matches path prefixes at segment boundaries, longest first', () => {
    assert.equal(match('x', '/'), 'root');
    assert.equal(match('x', '/api'), 'api');
    assert.equal(match('x', '/api/users'), 'api');
    assert.equal(match('x', '/apix'), 'root');
    assert.equal(match('x', '/api/v2'), 'api-v2');
    assert.equal(match('x', '/api/v2/x'), 'api-v2');
    assert.equal(match('x', '/api/v20'), 'api');
    assert.equal(match('x', '/static/a.css'), 'static');
    assert.equal(match('x', '/static'), 'root');
  });

  it('prefers exact hosts over wildcards over any host; hosts are case- and port-insensitive', () => {
    assert.equal(match('example.com', '/'), 'example');
    assert.equal(match('EXAMPLE.com:8080', '/api/x'), 'example-api');
    assert.equal(match('example.com', '/other'), 'example');
    assert.equal(match('a.example.org', '/'), 'wild');
    assert.equal(match('a.b.example.org', '/'), 'wild');
    assert.equal(match('x.eu.example.org', '/'), 'deep-wild');
    assert.equal(match('example.org', '/'), 'root');
    assert.equal(match('ported.test', '/'), 'ported');
  });

  it('returns undefined when nothing matches', () => {
    const only = new Router<R>([r('a', '/a', 'a.test')]);
    assert.equal(only.match('a.test', '/b'), undefined);
    assert.equal(only.match('b.test', '/a'), undefined);
  });

  it('falls back to any-host routes when the exact host has no matching path', () => {
    const rt = new Router<R>([r('host-api', '/api', 'h.test'), r('any', '/')]);
    assert.equal(rt.match('h.test', '/web')?.name, 'any');
  });

  it('normalizes hosts', () => {
    assert.equal(normalizeHost('Example.COM:80'), 'example.com');
    assert.equal(normalizeHost('[::1]:8080'), '[::1]');
    assert.equal(normalizeHost('plain'), 'plain');
  });

  it('agrees with a naive reference matcher on random routes and paths (property)', () => {
    const seg = fc.constantFrom('a', 'b', 'api', 'v1', 'x');
    const prefix = fc.array(seg, { minLength: 0, maxLength: 3 }).chain((segs) =>
      fc.boolean().map((slash) => (segs.length === 0 ? '/' : `/${segs.join('/')}${slash ? '/' : ''}`)),
    );
    const host = fc.constantFrom('a.test', 'b.test', '*.test', '');
    fc.assert(
      fc.property(
        fc.array(fc.tuple(prefix, host), { minLength: 1, maxLength: 6 }),
        fc.array(seg, { maxLength: 4 }).map((s) => `/${s.join('/')}`),
        fc.constantFrom('a.test', 'b.test', 'c.test', 'other'),
        (defs, path, reqHost) => {
          const routes = defs.map(([p, h], i) => r(`r${i}`, p, ...(h === '' ? [] : [h])));
          const got = new Router<R>(routes).match(reqHost, path)?.name;
          assert.equal(got, reference(routes, reqHost, path)?.name);
        },
      ),
      { numRuns: 500 },
    );
  });
});

/** The documented rules, written the slow obvious way. */
function reference(routes: R[], host: string, path: string): R | undefined {
  const prefixOk = (p: string) => p === '/' || path === p || (p.endsWith('/') ? path.startsWith(p) : path.startsWith(`${p}/`));
  const tiers: ((x: R) => boolean)[] = [
    (x) => x.hosts.includes(host),
    (x) => x.hosts.some((h) => h.startsWith('*.') && host.endsWith(h.slice(1)) && host.length > h.length - 1),
    (x) => x.hosts.length === 0,
  ];
  for (const tier of tiers) {
    const hits = routes.filter((x) => tier(x) && prefixOk(x.pathPrefix));
    if (hits.length > 0) return hits.reduce((best, x) => (x.pathPrefix.length > best.pathPrefix.length ? x : best));
  }
  return undefined;
}
