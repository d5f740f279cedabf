import assert from 'node:assert/strict';
import { compilePolicy, type DecisionInput } from '../../policies/compile.js';
import { compilePathPattern, type PathMatcher } from '../../policies/glob.js';
import { parseBundle } from '../../policies/load.js';

const policy = (yaml: string) => compilePolicy(parseBundle(`name: t\nversion: '1'\n${yaml}`).bundle);
const input = (over: Partial<DecisionInput> = {}): DecisionInput => ({
  method: 'GET', host: 'h', path: '/', routeName: 'r',
  identity: { kind: 'jwt', id: 'u', roles: [] }, signed: false, encrypted: { tls: true, pq: false },
  clientRegion: 'DE', upstreamRegion: 'DE', consent: [], bodyLength: 0, ...over,
});
const ids = (l: readonly { rule: string }[]): string[] => l.map((f) => f.rule);
const codes = (l: readonly { code: string }[]): string[] => l.map((f) => f.code);

describe('policies/glob', () => {
  const m = (p: string): PathMatcher => compilePathPattern(p) as PathMatcher;
  it('literal, *, pre*suf and ** segments', () => {
    assert.ok(m('/a/b').match('/a/b') && !m('/a/b').match('/a/b/') && !m('/a/b').match('/a/bc') && !m('/a/b').match('/a'));
    assert.ok(m('/a/*').match('/a/x') && !m('/a/*').match('/a/') && !m('/a/*').match('/a/x/y'));
    assert.ok(m('/f/*.json').match('/f/x.json') && !m('/f/*.json').match('/f/x.jso') && !m('/f/*.json').match('/f/.jso'));
    assert.ok(m('/a/**').match('/a') && m('/a/**').match('/a/x/y/z') && !m('/a/**').match('/ab'));
    assert.ok(m('/**/*.pdf').match('/x/y/z.pdf') && m('/**/*.pdf').match('/z.pdf') && !m('/**/*.pdf').match('/z.pdf/x'));
    assert.ok(m('/a/**/z').match('/a/z') && m('/a/**/z').match('/a/b/c/z') && !m('/a/**/z').match('/a'));
    assert.ok(m('/').match('/') && !m('/').match('/x'));
    assert.ok(m('/a/b').match('/a/b?x=/a/c'), 'the query string is ignored');
  });
  it('refuses what is outside the subset', () => {
    for (const bad of ['a/b', '/a/**/b/**', '/a/*x*', '/a/[bc]', '/a/(x|y)+', '']) assert.equal(typeof compilePathPattern(bad), 'string', bad);
  });
});

describe('policies/compile', () => {
  it('a request no rule objects to gets the shared, frozen Green verdict of its class', () => {
    const p = policy('classify:\n  - { id: c, routes: [r], class: Restricted, types: [PHI] }\nrules:\n  - { id: enc, require: { encrypted: tls } }\n');
    const a = p.decide(input());
    assert.equal(a.verdict, 'green');
    assert.equal(a.dataClass, 'Restricted');
    assert.deepEqual(a.dataTypes, ['PHI']);
    assert.equal(p.decide(input({ path: '/other' })), a, 'same object, no allocation');
    assert.ok(Object.isFrozen(a) && Object.isFrozen(a.violations));
    assert.equal(p.decide(input({ routeName: 'x' })).dataClass, 'Internal', 'the default class');
  });

  it('each requirement gives its own code; all violations of a request are listed', () => {
    const p = policy(`rules:
  - id: all
    require:
      authenticated: true
      roles: [admin]
      signed: true
      encrypted: pq
      max_body_bytes: 10
      client_regions: { allow: [FR] }
      upstream_regions: { block: [DE] }
      purposes: [billing]
`);
    const v = p.decide(input({ identity: { kind: 'anonymous', roles: [] }, bodyLength: 11 }));
    assert.equal(v.verdict, 'red');
    assert.deepEqual(codes(v.violations), ['UNAUTHENTICATED', 'ROLE_MISSING', 'UNSIGNED', 'UNENCRYPTED', 'BODY_TOO_LARGE', 'CLIENT_REGION', 'UPSTREAM_REGION', 'PURPOSE_MISSING']);
    assert.deepEqual(new Set(ids(v.violations)), new Set(['all']));
    const ok = p.decide(input({ identity: { kind: 'jwt', roles: ['x', 'admin'] }, signed: true, encrypted: { tls: false, pq: true }, bodyLength: 10, clientRegion: 'FR', upstreamRegion: 'NL', purpose: 'billing' }));
    assert.equal(ok.verdict, 'green');
    assert.deepEqual(codes(p.decide(input({ identity: { kind: 'jwt', roles: ['admin'] }, signed: true, encrypted: { tls: false, pq: true }, clientRegion: 'FR', upstreamRegion: 'NL', purpose: 'spam' })).violations), ['PURPOSE_NOT_ALLOWED']);
  });

  it('unknown regions fail closed; groups expand; identity kinds; encryption any', () => {
    const p = policy(`region_groups: { EU: [DE, FR] }
rules:
  - { id: reg, require: { client_regions: { allow: [EU] } } }
  - { id: kind, require: { identity: [did] } }
  - { id: enc, require: { encrypted: any } }
`);
    assert.deepEqual(ids(p.decide(input({ clientRegion: undefined })).violations), ['reg', 'kind']);
    assert.deepEqual(ids(p.decide(input({ clientRegion: 'EU', identity: { kind: 'did', roles: [] } })).violations), []);
    assert.deepEqual(ids(p.decide(input({ clientRegion: 'US', identity: { kind: 'did', roles: [] } })).violations), ['reg']);
    assert.deepEqual(ids(p.decide(input({ identity: { kind: 'did', roles: [] }, encrypted: { tls: false, pq: false } })).violations), ['enc']);
  });

  it('consent: needed only for consent regions (and unknown ones); tokens or the purpose', () => {
    const p = policy('rules:\n  - { id: c, require: { consent: { regions: [GB] } } }\n  - { id: t, require: { consent: { regions: [BR], tokens: [a, b] } } }\n');
    assert.equal(p.decide(input({ clientRegion: 'US' })).verdict, 'green');
    assert.deepEqual(ids(p.decide(input({ clientRegion: 'GB' })).violations), ['c']);
    assert.deepEqual(ids(p.decide(input({ clientRegion: undefined, consent: ['a', 'b'] })).violations), []);
    assert.deepEqual(ids(p.decide(input({ clientRegion: undefined })).violations), ['c', 't']);
    assert.deepEqual(ids(p.decide(input({ clientRegion: 'GB', purpose: 'p', consent: ['q'] })).violations), ['c']);
    assert.equal(p.decide(input({ clientRegion: 'GB', purpose: 'p', consent: ['q', 'p'] })).verdict, 'green');
    assert.deepEqual(ids(p.decide(input({ clientRegion: 'BR', consent: ['a'] })).violations), ['t']);
  });

  it('selectors: routes, methods, paths, classes and types; route index keeps rule order', () => {
    const p = policy(`classify:
  - { id: k, paths: ['/pay/**'], class: Restricted, types: [PCI] }
rules:
  - { id: on-route, when: { routes: [a] }, require: { signed: true } }
  - { id: on-post, when: { methods: [POST] }, require: { signed: true } }
  - { id: on-path, when: { paths: ['/x/*'] }, require: { signed: true } }
  - { id: on-class, when: { classes: [Restricted] }, require: { signed: true } }
  - { id: on-type, when: { types: [PCI, PHI] }, require: { signed: true } }
`);
    assert.deepEqual(ids(p.decide(input({ routeName: 'a' })).violations), ['on-route']);
    assert.deepEqual(ids(p.decide(input({ method: 'POST', path: '/x/1' })).violations), ['on-post', 'on-path']);
    assert.deepEqual(ids(p.decide(input({ routeName: 'a', path: '/pay/1' })).violations), ['on-route', 'on-class', 'on-type']);
    assert.equal(p.decide(input({ routeName: 'b', path: '/x/1/2' })).verdict, 'green');
  });

  it('warn rules give Yellow; deny beats warn', () => {
    const p = policy('rules:\n  - { id: w, effect: warn, require: { signed: true } }\n  - { id: d, when: { methods: [DELETE] }, require: { signed: true } }\n');
    const y = p.decide(input());
    assert.equal(y.verdict, 'yellow');
    assert.deepEqual(ids(y.warnings), ['w']);
    const r = p.decide(input({ method: 'DELETE' }));
    assert.equal(r.verdict, 'red');
    assert.deepEqual([ids(r.violations), ids(r.warnings)], [['d'], ['w']]);
  });

  describe('shadow mode', () => {
    it('a shadow rule reports what it would do but never blocks or flags', () => {
      const p = policy('rules:\n  - { id: s, shadow: true, require: { signed: true } }\n  - { id: sw, shadow: true, effect: warn, require: { encrypted: pq } }\n');
      const v = p.decide(input());
      assert.equal(v.verdict, 'green');
      assert.deepEqual([v.violations, v.warnings], [[], []]);
      assert.deepEqual(v.shadow.map((s) => [s.rule, s.code, s.effect]), [['s', 'UNSIGNED', 'deny'], ['sw', 'UNENCRYPTED', 'warn']]);
    });
    it('a shadow bundle never blocks any rule; without shadow the same bundle blocks', () => {
      const body = "rules:\n  - { id: s, require: { signed: true } }\n";
      assert.equal(policy(body).decide(input()).verdict, 'red');
      const v = policy(`shadow: true\n${body}`).decide(input());
      assert.equal(v.verdict, 'green');
      assert.deepEqual(ids(v.shadow), ['s']);
    });
  });

  describe('body inspection', () => {
    const p = policy(`rules:
  - { id: card, when: { paths: ['/in/**'] }, require: { inspect: { detect: [card], max_bytes: 64 } } }
  - { id: mail, effect: warn, when: { paths: ['/in/**'] }, require: { inspect: { detect: [email] } } }
`);
    const pan = Buffer.from('{"n":"4111111111111111","e":"a@b.example"}');
    it('needsBody asks for the largest limit of the rules that apply, and 0 otherwise', () => {
      assert.equal(p.needsBody(input({ path: '/in/x', bodyLength: 10 })), 65536);
      assert.equal(p.needsBody(input({ path: '/out', bodyLength: 10 })), 0);
      assert.equal(p.needsBody(input({ path: '/in/x', bodyLength: 0 })), 0);
    });
    it('detections become findings under each rule, per its detectors', () => {
      const v = p.decide(input({ path: '/in/x', bodyLength: pan.length, body: pan }));
      assert.deepEqual([ids(v.violations), codes(v.violations), ids(v.warnings)], [['card'], ['DATA_DETECTED'], ['mail']]);
      assert.equal(p.decide(input({ path: '/out', bodyLength: pan.length, body: pan })).verdict, 'green');
    });
    it('fails closed: no body given, or a body beyond max_bytes', () => {
      assert.deepEqual(codes(p.decide(input({ path: '/in/x', bodyLength: 5 })).violations), ['BODY_NOT_INSPECTED']);
      const big = Buffer.alloc(100, 'x');
      assert.deepEqual(codes(p.decide(input({ path: '/in/x', bodyLength: 100, body: big })).violations), ['BODY_NOT_INSPECTED']);
      const late = Buffer.concat([Buffer.alloc(60, ' '), Buffer.from('4111111111111111')]);
      assert.deepEqual(codes(p.decide(input({ path: '/in/x', bodyLength: late.length, body: late })).violations), ['BODY_NOT_INSPECTED'], 'the card past 64 bytes is not scanned, but the request is still refused');
    });
  });

  it('refuses a bundle the schema cannot catch: duplicate ids, bad globs, nested groups, allow+block overlap', () => {
    const bad = [
      'rules:\n  - { id: a, require: { signed: true } }\n  - { id: a, require: { signed: true } }\n',
      "rules:\n  - { id: a, when: { paths: ['/a/**/b/**'] }, require: { signed: true } }\n",
      'region_groups: { EU: [DE], X: [EU] }\nrules: []\n',
      'region_groups: { EU: [DE] }\nrules:\n  - { id: a, require: { client_regions: { allow: [EU], block: [DE] } } }\n',
    ];
    for (const b of bad) assert.throws(() => policy(b), { code: 'POLICY_INVALID' }, b);
  });
});
