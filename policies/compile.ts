/**
 * Compiles a validated BISO bundle (policies/schema.ts) into a decision function, once, at load.
 * Per request nothing is parsed or interpreted: rules are indexed by route name, selectors and
 * region/role/purpose lists are sets or bit masks, path patterns are precompiled matchers
 * (policies/glob.ts), and the allow path returns a frozen, shared Green verdict without
 * allocating. Every input field comes from the gateway (identity, TLS state, geo lookup, parsed
 * Cage-Consent / Cage-Purpose headers); the body is attacker-controlled and only ever reaches the
 * fixed detectors of policies/detect.ts, bounded by the rule's `inspect.max_bytes`.
 */

import { CageError } from '../core/errors.js';
import { DETECTOR_BIT, detect, detectorNames } from './detect.js';
import { compilePathPattern, type PathMatcher } from './glob.js';
import { DATA_CLASSES, DATA_TYPES, type Bundle, type DataClass, type DataType, type IdentityKind, type Rule, type Selector } from './schema.js';

export interface DecisionInput {
  method: string;
  host: string;
  path: string;
  routeName: string;
  identity: { kind: IdentityKind; id?: string; roles: readonly string[] };
  signed: boolean;
  encrypted: { tls: boolean; pq: boolean };
  clientRegion?: string;
  upstreamRegion?: string;
  /** Parsed `Cage-Consent` header (comma-separated tokens). */
  consent: readonly string[];
  /** The `Cage-Purpose` header. */
  purpose?: string;
  bodyLength: number;
  /** Only when `needsBody(input)` returned a size: the first (at most) that many bytes. */
  body?: Uint8Array;
}

export type ViolationCode =
  | 'UNAUTHENTICATED' | 'IDENTITY_KIND' | 'ROLE_MISSING' | 'UNSIGNED' | 'UNENCRYPTED' | 'BODY_TOO_LARGE'
  | 'CLIENT_REGION' | 'UPSTREAM_REGION' | 'CONSENT_MISSING' | 'PURPOSE_MISSING' | 'PURPOSE_NOT_ALLOWED'
  | 'DATA_DETECTED' | 'BODY_NOT_INSPECTED';

export interface Finding {
  readonly rule: string;
  readonly code: ViolationCode;
  readonly message: string;
}
/** A finding of a shadow rule: what it would have done. */
export interface ShadowFinding extends Finding {
  readonly effect: 'deny' | 'warn';
}

export interface Verdict {
  readonly verdict: 'green' | 'yellow' | 'red';
  readonly violations: readonly Finding[];
  readonly warnings: readonly Finding[];
  readonly shadow: readonly ShadowFinding[];
  readonly dataClass: DataClass;
  readonly dataTypes: readonly DataType[];
}

export interface CompiledPolicy {
  readonly name: string;
  readonly version: string;
  readonly ruleIds: readonly string[];
  decide(input: DecisionInput): Verdict;
  /** 0 when no selected rule inspects the body; otherwise how many body bytes to buffer for decide. */
  needsBody(input: Omit<DecisionInput, 'body'>): number;
}

/** Where in the bundle a semantic error sits (a JSON path) and why. */
export interface BundleProblem {
  path: (string | number)[];
  reason: string;
}

const EMPTY: readonly never[] = Object.freeze([]);
const ENC_TLS = 1;
const ENC_PQ = 2;
// which groups of checks a rule has, so the loop skips the rest with one test
const C_IDENTITY = 1;
const C_TRANSPORT = 2;
const C_REGION = 4;
const C_CONSENT = 8;
const C_PURPOSE = 16;
const C_INSPECT = 32;

function anyIn(want: readonly string[], have: readonly string[]): boolean {
  for (let i = 0; i < want.length; i++) if (have.includes(want[i]!)) return true;
  return false;
}
function allIn(want: readonly string[], have: readonly string[]): boolean {
  for (let i = 0; i < want.length; i++) if (!have.includes(want[i]!)) return false;
  return true;
}

interface CSelect {
  methods: ReadonlySet<string> | null;
  paths: readonly PathMatcher[] | null;
}
interface CClass extends CSelect {
  classIdx: number;
  typeMask: number;
  green: Verdict;
}
interface CRule extends CSelect {
  id: string;
  effect: 'deny' | 'warn';
  shadow: boolean;
  classMask: number;
  typeMask: number;
  authenticated: boolean;
  identity: ReadonlySet<string> | null;
  roles: readonly string[] | null;
  signed: boolean;
  enc: number;
  maxBody: number;
  cAllow: ReadonlySet<string> | null;
  cBlock: ReadonlySet<string> | null;
  uAllow: ReadonlySet<string> | null;
  uBlock: ReadonlySet<string> | null;
  consentRegions: ReadonlySet<string> | null;
  consentTokens: readonly string[] | null;
  purposes: ReadonlySet<string> | null;
  inspectMask: number;
  inspectMax: number;
  checks: number;
}
interface RouteIndex {
  classes: readonly CClass[];
  rules: readonly CRule[];
  /** Union of the detectors the route's rules ask for; 0 when none inspects. */
  inspects: number;
}
interface Pending {
  rule: CRule;
  code: ViolationCode;
  message: string;
}

/** Semantic checks the schema cannot express; null when the bundle is sound. */
export function checkBundle(b: Bundle): BundleProblem | null {
  const ids = new Map<string, string>();
  const seen = (id: string, path: (string | number)[]): BundleProblem | null => {
    if (ids.has(id)) return { path, reason: `duplicate id ${JSON.stringify(id)} (also at ${ids.get(id)})` };
    ids.set(id, path.join('/'));
    return null;
  };
  const patterns = (sel: Selector | undefined, path: (string | number)[]): BundleProblem | null => {
    for (const [i, p] of (sel?.paths ?? []).entries()) {
      const m = compilePathPattern(p);
      if (typeof m === 'string') return { path: [...path, 'paths', i], reason: m };
    }
    return null;
  };
  for (const [g, members] of Object.entries(b.region_groups)) {
    for (const [i, m] of members.entries()) {
      if (m !== g && m in b.region_groups) return { path: ['region_groups', g, i], reason: `region group ${g} names group ${m}; groups do not nest` };
    }
  }
  for (const [i, c] of b.classify.entries()) {
    const p = seen(c.id, ['classify', i, 'id']) ?? patterns(c, ['classify', i]);
    if (p) return p;
  }
  for (const [i, r] of b.rules.entries()) {
    const p = seen(r.id, ['rules', i, 'id']) ?? patterns(r.when, ['rules', i, 'when']);
    if (p) return p;
    const ca = r.require.client_regions;
    if (ca?.allow && ca.block) {
      const allow = expandRegions(ca.allow, b.region_groups);
      const both = [...expandRegions(ca.block, b.region_groups)].find((x) => allow.has(x));
      if (both) return { path: ['rules', i, 'require', 'client_regions', 'block'], reason: `region ${both} is both allowed and blocked` };
    }
  }
  return null;
}

function expandRegions(list: readonly string[], groups: Readonly<Record<string, readonly string[]>>): Set<string> {
  const out = new Set<string>();
  for (const r of list) {
    out.add(r);
    for (const m of groups[r] ?? EMPTY) out.add(m);
  }
  return out;
}

function compileSelect(sel: Selector | undefined): CSelect {
  return {
    methods: sel?.methods ? new Set(sel.methods) : null,
    paths: sel?.paths ? sel.paths.map((p) => compilePathPattern(p) as PathMatcher) : null,
  };
}

function typeMaskOf(types: readonly DataType[]): number {
  let m = 0;
  for (const t of types) m |= 1 << DATA_TYPES.indexOf(t);
  return m;
}

function compileRule(r: Rule, b: Bundle): CRule {
  const q = r.require;
  const regions = (l: readonly string[] | undefined): ReadonlySet<string> | null => (l ? expandRegions(l, b.region_groups) : null);
  let inspectMask = 0;
  for (const d of q.inspect?.detect ?? EMPTY) inspectMask |= DETECTOR_BIT[d];
  let classMask = 0;
  for (const c of r.when?.classes ?? EMPTY) classMask |= 1 << DATA_CLASSES.indexOf(c);
  const sel = compileSelect(r.when);
  const rule: CRule = {
    methods: sel.methods,
    paths: sel.paths,
    id: r.id,
    effect: r.effect,
    shadow: r.shadow || b.shadow,
    classMask,
    typeMask: typeMaskOf(r.when?.types ?? EMPTY),
    authenticated: q.authenticated === true || q.roles !== undefined,
    identity: q.identity ? new Set(q.identity) : null,
    roles: q.roles ?? null,
    signed: q.signed === true,
    enc: q.encrypted === undefined ? 0 : q.encrypted === 'tls' ? ENC_TLS : q.encrypted === 'pq' ? ENC_PQ : ENC_TLS | ENC_PQ,
    maxBody: q.max_body_bytes ?? -1,
    cAllow: regions(q.client_regions?.allow),
    cBlock: regions(q.client_regions?.block),
    uAllow: regions(q.upstream_regions?.allow),
    uBlock: regions(q.upstream_regions?.block),
    consentRegions: regions(q.consent?.regions),
    consentTokens: q.consent?.tokens ?? null,
    purposes: q.purposes ? new Set(q.purposes) : null,
    inspectMask,
    inspectMax: q.inspect?.max_bytes ?? 0,
    checks: 0,
  };
  rule.checks =
    (rule.authenticated || rule.identity !== null ? C_IDENTITY : 0) |
    (rule.signed || rule.enc !== 0 || rule.maxBody >= 0 ? C_TRANSPORT : 0) |
    (q.client_regions || q.upstream_regions ? C_REGION : 0) |
    (rule.consentRegions !== null ? C_CONSENT : 0) |
    (rule.purposes !== null ? C_PURPOSE : 0) |
    (inspectMask !== 0 ? C_INSPECT : 0);
  return rule;
}

function selects(s: CSelect, input: Omit<DecisionInput, 'body'>): boolean {
  if (s.methods !== null && !s.methods.has(input.method)) return false;
  if (s.paths !== null) {
    for (let i = 0; i < s.paths.length; i++) if (s.paths[i]!.match(input.path)) return true;
    return false;
  }
  return true;
}

function ruleSelects(r: CRule, input: Omit<DecisionInput, 'body'>, cls: CClass): boolean {
  if (r.classMask !== 0 && (r.classMask & (1 << cls.classIdx)) === 0) return false;
  if (r.typeMask !== 0 && (r.typeMask & cls.typeMask) === 0) return false;
  return selects(r, input);
}

function regionProblem(region: string | undefined, allow: ReadonlySet<string> | null, block: ReadonlySet<string> | null, what: string): string | null {
  if (allow === null && block === null) return null;
  if (region === undefined) return `${what} region is unknown`;
  if (allow !== null && !allow.has(region)) return `${what} region ${region} is not allowed`;
  if (block !== null && block.has(region)) return `${what} region ${region} is blocked`;
  return null;
}

/** Compiles a validated bundle. Throws POLICY_INVALID on a semantic error (load.ts names the line). */
export function compilePolicy(bundle: Bundle): CompiledPolicy {
  const problem = checkBundle(bundle);
  if (problem) throw new CageError({ code: 'POLICY_INVALID', message: `${problem.path.join('.')}: ${problem.reason}` });

  const mkClass = (sel: Selector | undefined, cls: DataClass, types: readonly DataType[]): CClass & { routes: readonly string[] | null } => ({
    ...compileSelect(sel),
    routes: sel?.routes ?? null,
    classIdx: DATA_CLASSES.indexOf(cls),
    typeMask: typeMaskOf(types),
    green: Object.freeze({ verdict: 'green', violations: EMPTY, warnings: EMPTY, shadow: EMPTY, dataClass: cls, dataTypes: Object.freeze([...types]) }),
  });
  const classes = bundle.classify.map((c) => mkClass(c, c.class, c.types));
  const fallback = mkClass(undefined, bundle.default_class, bundle.default_types);
  const rules = bundle.rules.map((r) => ({ rule: compileRule(r, bundle), routes: r.when?.routes ?? null }));

  const build = (route: string | null): RouteIndex => {
    const keep = <T extends { routes: readonly string[] | null }>(x: T): boolean => x.routes === null || (route !== null && x.routes.includes(route));
    const rs = rules.filter(keep).map((x) => x.rule);
    return Object.freeze({ classes: [...classes.filter(keep), fallback], rules: rs, inspects: rs.reduce((m, r) => m | r.inspectMask, 0) });
  };
  const general = build(null);
  const byRoute = new Map<string, RouteIndex>();
  for (const name of new Set([...classes, ...rules].flatMap((x) => x.routes ?? []))) byRoute.set(name, build(name));

  const classify = (idx: RouteIndex, input: Omit<DecisionInput, 'body'>): CClass => {
    for (let i = 0; i < idx.classes.length; i++) if (selects(idx.classes[i]!, input)) return idx.classes[i]!;
    return fallback;
  };

  const pending: Pending[] = []; // reused: decide is synchronous and never re-entered
  const add = (rule: CRule, code: ViolationCode, message: string): void => {
    pending.push({ rule, code, message });
  };

  const decide = (input: DecisionInput): Verdict => {
    const idx = byRoute.get(input.routeName) ?? general;
    const cls = classify(idx, input);
    pending.length = 0;
    let scanned = -1;
    let scannedLimit = -1;
    const rs = idx.rules;
    for (let i = 0; i < rs.length; i++) {
      const r = rs[i]!;
      if (!ruleSelects(r, input, cls)) continue;
      if (r.checks === 0) continue;
      const id = input.identity;
      if (r.checks & C_IDENTITY) {
        if (r.authenticated && id.kind === 'anonymous') add(r, 'UNAUTHENTICATED', 'the caller is not authenticated');
        if (r.identity !== null && !r.identity.has(id.kind)) add(r, 'IDENTITY_KIND', `identity kind ${id.kind} is not accepted`);
        if (r.roles !== null && !anyIn(r.roles, id.roles)) add(r, 'ROLE_MISSING', `the caller has none of the roles ${r.roles.join(', ')}`);
      }
      if (r.checks & C_TRANSPORT) {
        if (r.signed && !input.signed) add(r, 'UNSIGNED', 'the request is not signed');
        if (r.enc !== 0 && !((r.enc & ENC_TLS && input.encrypted.tls) || (r.enc & ENC_PQ && input.encrypted.pq))) {
          add(r, 'UNENCRYPTED', r.enc === ENC_TLS ? 'the request did not arrive over TLS' : r.enc === ENC_PQ ? 'the request is not in a PQ envelope' : 'the request is neither over TLS nor in a PQ envelope');
        }
        if (r.maxBody >= 0 && input.bodyLength > r.maxBody) add(r, 'BODY_TOO_LARGE', `the body (${input.bodyLength} bytes) exceeds ${r.maxBody} bytes`);
      }
      if (r.checks & C_REGION) {
        const cp = regionProblem(input.clientRegion, r.cAllow, r.cBlock, 'client');
        if (cp !== null) add(r, 'CLIENT_REGION', cp);
        const up = regionProblem(input.upstreamRegion, r.uAllow, r.uBlock, 'upstream');
        if (up !== null) add(r, 'UPSTREAM_REGION', up);
      }
      if (r.checks & C_CONSENT && (input.clientRegion === undefined || r.consentRegions!.has(input.clientRegion))) {
        const tokens = r.consentTokens;
        const ok = tokens !== null ? allIn(tokens, input.consent) : input.purpose !== undefined ? input.consent.includes(input.purpose) : input.consent.length > 0;
        if (!ok) add(r, 'CONSENT_MISSING', `Cage-Consent lacks ${tokens?.join(', ') ?? input.purpose ?? 'any consent'} for client region ${input.clientRegion ?? '(unknown)'}`);
      }
      if (r.checks & C_PURPOSE) {
        if (input.purpose === undefined) add(r, 'PURPOSE_MISSING', 'no Cage-Purpose given');
        else if (!r.purposes!.has(input.purpose)) add(r, 'PURPOSE_NOT_ALLOWED', `purpose ${input.purpose} is not allowed`);
      }
      if (r.checks & C_INSPECT && input.bodyLength > 0) {
        if (input.body === undefined) add(r, 'BODY_NOT_INSPECTED', 'the body was not buffered for inspection');
        else {
          if (scannedLimit !== r.inspectMax) {
            scanned = detect(input.body, idx.inspects, r.inspectMax);
            scannedLimit = r.inspectMax;
          }
          const hit = scanned & r.inspectMask;
          if (hit !== 0) add(r, 'DATA_DETECTED', `the body contains ${detectorNames(hit).join(', ')}`);
          if (input.bodyLength > r.inspectMax || input.body.length > r.inspectMax) add(r, 'BODY_NOT_INSPECTED', `the body exceeds inspect.max_bytes (${r.inspectMax})`);
        }
      }
    }
    if (pending.length === 0) return cls.green;
    return makeVerdict(pending, cls.green);
  };

  const needsBody = (input: Omit<DecisionInput, 'body'>): number => {
    const idx = byRoute.get(input.routeName) ?? general;
    if (idx.inspects === 0 || input.bodyLength === 0) return 0;
    const cls = classify(idx, input);
    let max = 0;
    for (const r of idx.rules) if (r.inspectMask !== 0 && r.inspectMax > max && ruleSelects(r, input, cls)) max = r.inspectMax;
    return max;
  };

  return Object.freeze({
    name: bundle.name,
    version: bundle.version,
    ruleIds: Object.freeze(bundle.rules.map((r) => r.id)),
    decide,
    needsBody,
  });
}

function makeVerdict(pending: readonly Pending[], green: Verdict): Verdict {
  const violations: Finding[] = [];
  const warnings: Finding[] = [];
  const shadow: ShadowFinding[] = [];
  for (const p of pending) {
    if (p.rule.shadow) shadow.push(Object.freeze({ rule: p.rule.id, code: p.code, message: p.message, effect: p.rule.effect }));
    else (p.rule.effect === 'deny' ? violations : warnings).push(Object.freeze({ rule: p.rule.id, code: p.code, message: p.message }));
  }
  return Object.freeze({
    verdict: violations.length > 0 ? 'red' : warnings.length > 0 ? 'yellow' : 'green',
    violations: Object.freeze(violations),
    warnings: Object.freeze(warnings),
    shadow: Object.freeze(shadow),
    dataClass: green.dataClass,
    dataTypes: green.dataTypes,
  });
}
