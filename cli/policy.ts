/**
 * `cage policy …`: BISO bundles from the command line.
 *   check FILE…            validate (schema, semantics, signature when --trusted-key is given)
 *   keygen --out KEY       an Ed25519 signing key (PKCS#8 PEM, mode 0600); prints the public key for `policies.trusted_keys`
 *   sign FILE --key KEY    sign a bundle over its canonical form (comments kept)
 *   test PATH [--cases F]  run expected-verdict cases; a folder pairs X.yaml with X.cases.yaml; rule coverage
 *   explain FILE… --case JSON|--route R --method M --path P …   why a request gets its verdict
 * Exit codes: 0 ok, 1 a failed check/case (named), 2 bad arguments.
 */
import { createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { CageError } from '../core/errors.js';
import type { CompiledPolicy } from '../policies/compile.js';
import { loadPolicyFile, rawPublicKey, signBundle } from '../policies/load.js';
import { caseToInput, parseCases, runCases, type CaseInput } from '../policies/test-cases.js';
import { hashApiKey } from '../gateway/identity/stage.js';
import { BadArgs, runSubcommands, type Subcommand, type SubcommandOutput } from './subcommands.js';

export const POLICY_HELP = `Usage: cage policy <check|keygen|sign|test|explain> [flags]

  check FILE... [--trusted-key B64]...   Validate bundles (and their signatures against trusted keys)
  keygen --out KEY                       Make an Ed25519 bundle-signing key; prints its public key
  sign FILE --key KEY [--out FILE]       Sign a bundle (writes FILE in place unless --out)
  test PATH [--cases FILE]               Run expected-verdict cases; PATH is a bundle or a folder of
                                         X.yaml + X.cases.yaml pairs; reports rule coverage
  explain FILE... (--case JSON | --route R [--method M] [--path P] [--identity KIND[:ID]]
          [--role R]... [--signed] [--tls] [--pq] [--client-region XX] [--upstream-region XX]
          [--consent T]... [--purpose P] [--body TEXT])
                                         Show the verdict and which rules fired, and why
`;

function readKeysFlag(v: unknown): string[] {
  return Array.isArray(v) ? (v as string[]) : [];
}

function load(file: string, trusted: string[]): CompiledPolicy & { signedBy?: string } {
  return loadPolicyFile(file, trusted.length > 0 ? { trustedKeys: trusted } : {});
}

/** Bundle/cases pairs under PATH. */
function pairs(path: string, cases: string | undefined): Array<[string, string]> {
  if (statSync(path, { throwIfNoEntry: false })?.isDirectory()) {
    if (cases !== undefined) throw new BadArgs('--cases goes with a single bundle, not a folder');
    const out: Array<[string, string]> = [];
    for (const f of readdirSync(path).sort()) {
      if (!/\.ya?ml$/.test(f) || /\.cases\.ya?ml$/.test(f)) continue;
      const c = join(path, f.replace(/\.ya?ml$/, '.cases.yaml'));
      if (existsSync(c)) out.push([join(path, f), c]);
    }
    if (out.length === 0) throw new CageError({ code: 'POLICY_INVALID', message: `${path}: no bundle with a matching .cases.yaml` });
    return out;
  }
  const c = cases ?? path.replace(/\.ya?ml$/, '.cases.yaml');
  if (!existsSync(c)) throw new BadArgs(`no cases file ${c} (use --cases FILE)`);
  return [[path, c]];
}

const SUBS: Record<string, Subcommand> = {
  check: {
    usage: 'Usage: cage policy check FILE... [--trusted-key B64]...',
    options: { 'trusted-key': { type: 'string', multiple: true } },
    async run(v, files, o) {
      if (files.length === 0) throw new BadArgs('name at least one bundle file');
      for (const f of files) {
        const p = load(f, readKeysFlag(v['trusted-key']));
        o.out(`${f}: ok: ${p.name} ${p.version}, ${p.ruleIds.length} rules${p.signedBy ? `, signed by ${p.signedBy}` : ', unsigned'}`);
      }
      return 0;
    },
  },
  keygen: {
    usage: 'Usage: cage policy keygen --out KEY',
    options: { out: { type: 'string' } },
    async run(v, _p, o) {
      if (typeof v.out !== 'string') throw new BadArgs('--out KEY is required');
      if (existsSync(v.out)) throw new BadArgs(`${v.out} exists; refusing to overwrite a key`);
      const { privateKey } = generateKeyPairSync('ed25519');
      writeFileSync(v.out, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
      o.out(`wrote ${v.out}; its public key (for policies.trusted_keys): ${rawPublicKey(createPublicKey(privateKey))}`);
      return 0;
    },
  },
  sign: {
    usage: 'Usage: cage policy sign FILE --key KEY [--out FILE]',
    options: { key: { type: 'string' }, out: { type: 'string' } },
    async run(v, files, o) {
      if (files.length !== 1 || typeof v.key !== 'string') throw new BadArgs('one bundle FILE and --key KEY are required');
      const file = files[0]!;
      const signed = signBundle(readFileSync(file, 'utf8'), readFileSync(v.key, 'utf8'), file);
      const out = typeof v.out === 'string' ? v.out : file;
      writeFileSync(out, signed);
      o.out(`signed ${file} → ${out}`);
      return 0;
    },
  },
  test: {
    usage: 'Usage: cage policy test PATH [--cases FILE] [--trusted-key B64]...',
    options: { cases: { type: 'string' }, 'trusted-key': { type: 'string', multiple: true } },
    async run(v, paths, o) {
      if (paths.length !== 1) throw new BadArgs('name one bundle or folder');
      let failed = 0;
      for (const [bundle, casesFile] of pairs(paths[0]!, typeof v.cases === 'string' ? v.cases : undefined)) {
        const policy = load(bundle, readKeysFlag(v['trusted-key']));
        const report = runCases(policy, parseCases(readFileSync(casesFile, 'utf8'), casesFile));
        const cov = report.coverage;
        o.out(`${basename(bundle)}: ${report.passed} passed, ${report.failed.length} failed; rules covered ${cov.hit.length}/${cov.total}${cov.missed.length > 0 ? ` (never fired: ${cov.missed.join(', ')})` : ''}`);
        for (const f of report.failed) {
          o.out(`  FAIL ${f.name}: expected ${JSON.stringify(f.expected)}, got ${JSON.stringify(f.got)}`);
        }
        failed += report.failed.length;
      }
      return failed === 0 ? 0 : 1;
    },
  },
  explain: {
    usage: 'Usage: cage policy explain FILE... (--case JSON | --route R [flags])',
    options: {
      case: { type: 'string' },
      route: { type: 'string' },
      method: { type: 'string' },
      path: { type: 'string' },
      host: { type: 'string' },
      identity: { type: 'string' },
      role: { type: 'string', multiple: true },
      signed: { type: 'boolean' },
      tls: { type: 'boolean' },
      pq: { type: 'boolean' },
      'client-region': { type: 'string' },
      'upstream-region': { type: 'string' },
      consent: { type: 'string', multiple: true },
      purpose: { type: 'string' },
      body: { type: 'string' },
      'trusted-key': { type: 'string', multiple: true },
    },
    async run(v, files, o) {
      if (files.length === 0) throw new BadArgs('name at least one bundle file');
      let input: CaseInput;
      if (typeof v.case === 'string') {
        try {
          input = JSON.parse(v.case) as CaseInput;
        } catch {
          throw new BadArgs('--case must be JSON (the `input` of a cases file)');
        }
        // The cases schema checks it (unknown keys, types).
        parseCases(JSON.stringify({ cases: [{ name: 'explain', input, expect: { verdict: 'green' } }] }), '--case');
      } else {
        if (typeof v.route !== 'string') throw new BadArgs('--route (or --case JSON) is required');
        const [kind, ...id] = typeof v.identity === 'string' ? v.identity.split(':') : ['anonymous'];
        input = {
          route: v.route,
          method: (v.method as string | undefined) ?? 'GET',
          path: (v.path as string | undefined) ?? '/',
          host: v.host as string | undefined,
          identity: { kind: kind as NonNullable<CaseInput['identity']>['kind'], id: id.length > 0 ? id.join(':') : undefined, roles: readKeysFlag(v.role) },
          signed: v.signed === true,
          tls: v.tls === true,
          pq: v.pq === true,
          client_region: v['client-region'] as string | undefined,
          upstream_region: v['upstream-region'] as string | undefined,
          consent: readKeysFlag(v.consent),
          purpose: v.purpose as string | undefined,
          body: v.body as string | undefined,
        };
        parseCases(JSON.stringify({ cases: [{ name: 'explain', input: JSON.parse(JSON.stringify(input)) as CaseInput, expect: { verdict: 'green' } }] }), 'flags');
      }
      let worst = 'green';
      for (const f of files) {
        const p = load(f, readKeysFlag(v['trusted-key']));
        const di = caseToInput(input);
        const want = p.needsBody(di);
        if (want > 0 && input.body !== undefined) di.body = Buffer.from(input.body).subarray(0, want);
        const verdict = p.decide(di);
        o.out(`${p.name} ${p.version}: ${verdict.verdict.toUpperCase()} (data class ${verdict.dataClass}; types ${verdict.dataTypes.join(', ')})${want > 0 ? `; body inspected (first ${want} bytes)` : ''}`);
        for (const x of verdict.violations) o.out(`  deny  ${x.rule} ${x.code}: ${x.message}`);
        for (const x of verdict.warnings) o.out(`  warn  ${x.rule} ${x.code}: ${x.message}`);
        for (const x of verdict.shadow) o.out(`  shadow(${x.effect}) ${x.rule} ${x.code}: ${x.message}`);
        if (verdict.verdict === 'red' || (verdict.verdict === 'yellow' && worst === 'green')) worst = verdict.verdict;
      }
      o.out(`verdict: ${worst.toUpperCase()}`);
      return 0;
    },
  },
};

export function policyMain(argv: string[], o: SubcommandOutput): Promise<number> {
  return runSubcommands('policy', POLICY_HELP, SUBS, argv, o);
}

export const KEY_HELP = `Usage: cage key <new|hash> [flags]

  new --name NAME [--role R]... [--class C]   Make an API key; prints the key (give it to the caller,
                                              once) and the identity.api_keys entry (only its SHA-256)
  hash KEY                                    The SHA-256 the config stores for an existing key
`;

const KEY_SUBS: Record<string, Subcommand> = {
  new: {
    usage: 'Usage: cage key new --name NAME [--role R]... [--class C]',
    options: { name: { type: 'string' }, role: { type: 'string', multiple: true }, class: { type: 'string' } },
    async run(v, _p, o) {
      if (typeof v.name !== 'string' || !/^[A-Za-z0-9_.@-]{1,64}$/.test(v.name)) throw new BadArgs('--name NAME is required (letters, digits, _ . @ -)');
      const key = `ck_${randomBytes(24).toString('base64url')}`;
      const roles = readKeysFlag(v.role);
      o.out(`key: ${key}`);
      o.out('config (identity.api_keys.keys):');
      o.out(`  - { name: ${v.name}, sha256: ${hashApiKey(key)}${roles.length > 0 ? `, roles: [${roles.join(', ')}]` : ''}${typeof v.class === 'string' ? `, class: ${v.class}` : ''} }`);
      return 0;
    },
  },
  hash: {
    usage: 'Usage: cage key hash KEY',
    options: {},
    async run(_v, args, o) {
      if (args.length !== 1) throw new BadArgs('name one key');
      o.out(hashApiKey(args[0]!));
      return 0;
    },
  },
};

export function keyMain(argv: string[], o: SubcommandOutput): Promise<number> {
  return runSubcommands('key', KEY_HELP, KEY_SUBS, argv, o);
}
