/**
 * Policy test cases (`*.cases.yaml` next to a bundle) and the runner behind `cage policy test`:
 * each case is a request as the gateway would describe it and the verdict it must get. A case
 * lists the rule ids it expects in `violations`, `warnings` and `shadow` (omitted = none). The
 * body, when given, reaches decide only if `needsBody` asks for it, cut to the size it names, as
 * the gateway does. Coverage counts the rule ids some case made fire.
 */

import { Ajv } from 'ajv';
import { parse } from 'yaml';
import { CageError } from '../core/errors.js';
import type { CompiledPolicy, DecisionInput, Verdict } from './compile.js';
import { IDENTITY_KINDS, type IdentityKind } from './schema.js';

export interface CaseInput {
  method?: string;
  host?: string;
  path?: string;
  route?: string;
  identity?: { kind: IdentityKind; id?: string; roles?: string[] };
  signed?: boolean;
  tls?: boolean;
  pq?: boolean;
  client_region?: string;
  upstream_region?: string;
  consent?: string[];
  purpose?: string;
  body?: string;
  body_length?: number;
}

export interface PolicyCase {
  name: string;
  input: CaseInput;
  expect: { verdict: Verdict['verdict']; violations?: string[]; warnings?: string[]; shadow?: string[]; data_class?: string };
}

export interface CaseFile {
  defaults?: CaseInput;
  cases: PolicyCase[];
}

export interface CaseFailure {
  name: string;
  expected: PolicyCase['expect'];
  got: { verdict: string; violations: string[]; warnings: string[]; shadow: string[]; data_class: string };
}

export interface CaseReport {
  passed: number;
  failed: CaseFailure[];
  coverage: { hit: string[]; missed: string[]; total: number };
}

const strList = { type: 'array', items: { type: 'string', maxLength: 128 }, maxItems: 256 };
const INPUT_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    method: { type: 'string' }, host: { type: 'string' }, path: { type: 'string' }, route: { type: 'string' },
    identity: {
      type: 'object', additionalProperties: false, required: ['kind'],
      properties: { kind: { enum: [...IDENTITY_KINDS] }, id: { type: 'string' }, roles: strList },
    },
    signed: { type: 'boolean' }, tls: { type: 'boolean' }, pq: { type: 'boolean' },
    client_region: { type: 'string' }, upstream_region: { type: 'string' },
    consent: strList, purpose: { type: 'string' }, body: { type: 'string' }, body_length: { type: 'integer', minimum: 0 },
  },
};
const CASES_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['cases'],
  properties: {
    defaults: INPUT_SCHEMA,
    cases: {
      type: 'array', minItems: 1, maxItems: 10000,
      items: {
        type: 'object', additionalProperties: false, required: ['name', 'input', 'expect'],
        properties: {
          name: { type: 'string' },
          input: INPUT_SCHEMA,
          expect: {
            type: 'object', additionalProperties: false, required: ['verdict'],
            properties: { verdict: { enum: ['green', 'yellow', 'red'] }, violations: strList, warnings: strList, shadow: strList, data_class: { type: 'string' } },
          },
        },
      },
    },
  },
};
const validateCases = new Ajv({ strict: true }).compile<CaseFile>(CASES_SCHEMA);

/** Parses a cases file; POLICY_INVALID names the first schema error. */
export function parseCases(text: string, file = '<cases>'): CaseFile {
  let value: unknown;
  try {
    value = parse(text, { maxAliasCount: 0, uniqueKeys: true });
  } catch (err) {
    throw new CageError({ code: 'POLICY_INVALID', message: `${file}: ${(err as Error).message.split('\n')[0]}` });
  }
  if (!validateCases(value)) {
    const e = validateCases.errors![0]!;
    throw new CageError({ code: 'POLICY_INVALID', message: `${file}: ${e.instancePath || 'cases'} ${e.message ?? e.keyword}` });
  }
  return value;
}

/** The DecisionInput a case describes (before the body is attached). */
export function caseToInput(c: CaseInput, defaults: CaseInput = {}): DecisionInput {
  const x = { ...defaults, ...c };
  const body = x.body === undefined ? undefined : Buffer.from(x.body, 'utf8');
  return {
    method: x.method ?? 'GET',
    host: x.host ?? 'localhost',
    path: x.path ?? '/',
    routeName: x.route ?? 'default',
    identity: { kind: x.identity?.kind ?? 'anonymous', id: x.identity?.id, roles: x.identity?.roles ?? [] },
    signed: x.signed ?? false,
    encrypted: { tls: x.tls ?? false, pq: x.pq ?? false },
    clientRegion: x.client_region,
    upstreamRegion: x.upstream_region,
    consent: x.consent ?? [],
    purpose: x.purpose,
    bodyLength: x.body_length ?? body?.length ?? 0,
    body,
  };
}

const ids = (l: readonly { rule: string }[]): string[] => [...new Set(l.map((f) => f.rule))].sort();
const same = (a: readonly string[] | undefined, b: readonly string[]): boolean => JSON.stringify([...(a ?? [])].sort()) === JSON.stringify(b);

/** Runs every case against a compiled policy. */
export function runCases(policy: CompiledPolicy, file: CaseFile): CaseReport {
  const hit = new Set<string>();
  const failed: CaseFailure[] = [];
  let passed = 0;
  for (const c of file.cases) {
    const { body, ...head } = caseToInput(c.input, file.defaults);
    const want = policy.needsBody(head);
    const v = policy.decide(want > 0 && body ? { ...head, body: body.subarray(0, want) } : head);
    const got = { verdict: v.verdict, violations: ids(v.violations), warnings: ids(v.warnings), shadow: ids(v.shadow), data_class: v.dataClass };
    for (const id of [...got.violations, ...got.warnings, ...got.shadow]) hit.add(id);
    const e = c.expect;
    const ok = e.verdict === got.verdict && same(e.violations, got.violations) && same(e.warnings, got.warnings) && same(e.shadow, got.shadow) && (e.data_class === undefined || e.data_class === got.data_class);
    if (ok) passed++;
    else failed.push({ name: c.name, expected: e, got });
  }
  const all = policy.ruleIds;
  return { passed, failed, coverage: { hit: all.filter((r) => hit.has(r)), missed: all.filter((r) => !hit.has(r)), total: all.length } };
}
