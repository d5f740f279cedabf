// Policy decision benchmark (node --import tsx loadtest/bench-policy.ts [--rounds 21] [--iters 20000]):
// the median time of one `decide` for a generated 100-rule bundle (10 routes, path globs, class
// and type selectors, regions, roles, consent, purposes), on the allow path (Green) and on a
// request that trips three rules (Red), then with a 4 KiB JSON body inspected for every detector.
// Baseline in the same run: a 1-rule bundle, the floor cost of a call. Goal: median < 5 µs
// without body inspection (docs/policies.md). Exit code 1 when the goal is missed.

import { parseArgs } from 'node:util';
import { compilePolicy, type CompiledPolicy, type DecisionInput } from '../policies/compile.js';
import { parseBundle } from '../policies/load.js';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '21' }, iters: { type: 'string', default: '20000' } } });
const ROUNDS = Number(values.rounds);
const ITERS = Number(values.iters);

function generatedBundle(rules: number): string {
  const lines = ['name: bench', "version: '1'", 'region_groups: { EU: [DE, FR, NL, IE, ES, IT] }', 'classify:'];
  for (let r = 0; r < 10; r++) lines.push(`  - { id: c${r}, routes: [route${r}], paths: ['/api/v1/r${r}/**'], class: ${r % 2 ? 'Confidential' : 'Restricted'}, types: [${r % 3 ? 'PII' : 'PCI'}] }`);
  lines.push('rules:');
  const reqs = [
    '{ authenticated: true }', '{ roles: [user, admin] }', '{ encrypted: any }', '{ client_regions: { allow: [EU, US, GB] } }',
    '{ upstream_regions: { allow: [EU] } }', '{ consent: { regions: [EU, GB, BR] } }', '{ purposes: [support, billing, account] }',
    '{ max_body_bytes: 1048576 }', '{ identity: [jwt, did, api-key] }', '{ client_regions: { block: [KP, IR] } }',
  ];
  for (let i = 0; i < rules; i++) {
    const sel = [`routes: [route${i % 10}]`, `paths: ['/api/v1/r${i % 10}/items/*']`, `classes: [Confidential, Restricted]`, `types: [PII]`, `methods: [GET, POST]`][i % 5];
    lines.push(`  - { id: r${i}, when: { ${sel} }, require: ${reqs[i % reqs.length]} }`);
  }
  return lines.join('\n') + '\n';
}

const inspectRule = "  - { id: inspect, when: { routes: [route3] }, require: { inspect: { detect: [email, phone, iban, card, ssn, nino], max_bytes: 8192 } } }\n";

function body4k(): Buffer {
  const items = [];
  for (let i = 0; items.join(',').length < 4000; i++) items.push(JSON.stringify({ id: i, sku: `SKU-${1000 + i}`, qty: i % 7, note: 'deliver to the back door', price: 1999 + i }));
  return Buffer.from(`{"items":[${items.join(',')}]}`.padEnd(4096, ' ').slice(0, 4096));
}

function measure(p: CompiledPolicy, input: DecisionInput): number {
  let sink = 0;
  const t = process.hrtime.bigint();
  for (let i = 0; i < ITERS; i++) sink += p.decide(input).violations.length;
  const ns = Number(process.hrtime.bigint() - t) / ITERS;
  if (sink < 0) console.log(sink);
  return ns;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

const base: DecisionInput = {
  method: 'GET', host: 'api.example.com', path: '/api/v1/r3/items/42', routeName: 'route3',
  identity: { kind: 'jwt', id: 'u1', roles: ['user'] }, signed: true, encrypted: { tls: true, pq: false },
  clientRegion: 'DE', upstreamRegion: 'IE', consent: ['support'], purpose: 'support', bodyLength: 0,
};
const big = compilePolicy(parseBundle(generatedBundle(100)).bundle);
const bigInspect = compilePolicy(parseBundle(generatedBundle(100) + inspectRule).bundle);
const floor = compilePolicy(parseBundle("name: one\nversion: '1'\nrules:\n  - { id: r, require: { encrypted: any } }\n").bundle);
const body = body4k();
const scenarios: [string, CompiledPolicy, DecisionInput][] = [
  ['1 rule (baseline)', floor, base],
  ['100 rules, green', big, base],
  ['100 rules, red (3 rules hit)', big, { ...base, identity: { kind: 'anonymous', roles: [] }, clientRegion: 'KP' }],
  ['100 rules + inspect 4 KiB JSON, green', bigInspect, { ...base, method: 'POST', bodyLength: body.length, body }],
];
if (big.decide(base).verdict !== 'green' || bigInspect.decide(scenarios[3]![2]).verdict !== 'green' || big.decide(scenarios[2]![2]).verdict !== 'red') throw new Error('benchmark inputs do not get the intended verdicts');
if (bigInspect.needsBody(scenarios[3]![2]) !== 8192) throw new Error('the inspect rule does not apply');

const results = new Map<string, number[]>(scenarios.map(([n]) => [n, []]));
for (let r = 0; r < ROUNDS; r++) for (const [name, p, input] of scenarios) results.get(name)!.push(measure(p, input));
const floorNs = median(results.get('1 rule (baseline)')!);
console.log(`policy decide: median of ${ROUNDS} rounds x ${ITERS} decisions (Node ${process.version})`);
for (const [name, xs] of results) {
  const m = median(xs);
  console.log(`  ${name.padEnd(40)} ${(m / 1000).toFixed(3).padStart(8)} µs   ${(m / floorNs).toFixed(1).padStart(6)}x baseline`);
}
const green = median(results.get('100 rules, green')!);
console.log(`goal: 100-rule decision without body inspection < 5 µs: ${green < 5000 ? 'met' : 'MISSED'}`);
process.exitCode = green < 5000 ? 0 : 1;
