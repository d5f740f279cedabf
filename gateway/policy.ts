/**
 * The decide stage: the BISO bundles named in `policies.files`, compiled once per (re)load
 * (policies/compile.ts), give every request a verdict. Red answers 403 `POLICY_DENIED` naming the
 * violated rules; Yellow forwards with the warnings (the app sees `Cage-Verdict`); shadow rules
 * (or a bundle in shadow) only record what they would have done. The verdict and its reasons go
 * into the exchange's audit record. The body is read only when a selected rule inspects it, and
 * only its first `inspect.max_bytes`.
 *
 * Regions: the caller's comes from `regions.header` when the peer is a trusted proxy, else from
 * the `regions.cidrs` table (longest prefix wins); the upstream's from the route's `region`.
 */
import { BlockList, isIP } from 'node:net';
import { CageError, isCageError } from '../core/errors.js';
import type { CompiledPolicy, DecisionInput } from '../policies/compile.js';
import { loadPolicyFile } from '../policies/load.js';
import type { PoliciesConfig, RegionsConfig } from './config/security.js';
import type { CageConfig } from './config/load.js';
import type { Exchange } from './exchange.js';
import { isTrusted } from './headers.js';
import type { Stage, StageResult } from './pipeline.js';

const REGION_RE = /^[A-Z][A-Z0-9-]{1,15}$/;
const NO_CONSENT: readonly string[] = Object.freeze([]);

/** Loads and compiles every bundle; a bad one throws POLICY_INVALID / POLICY_BAD_SIGNATURE naming its file. */
export function loadPolicies(config: PoliciesConfig): CompiledPolicy[] {
  return config.files.map((file) => loadPolicyFile(file, config.trustedKeys.length > 0 ? { trustedKeys: config.trustedKeys } : {}));
}

export class RegionTable {
  private readonly entries: Array<{ list: BlockList; region: string }>;

  constructor(
    private readonly config: RegionsConfig,
    private readonly trusted: BlockList | undefined,
  ) {
    this.entries = [...config.cidrs]
      .map(([cidr, region]) => ({ cidr, region, prefix: Number(cidr.split('/')[1]) }))
      .sort((a, b) => b.prefix - a.prefix)
      .map(({ cidr, region, prefix }) => {
        const list = new BlockList();
        const addr = cidr.split('/')[0]!;
        list.addSubnet(addr, prefix, isIP(addr) === 6 ? 'ipv6' : 'ipv4');
        return { list, region };
      });
  }

  /** The caller's region, or undefined when unknown. */
  lookup(ex: Exchange): string | undefined {
    if (this.config.header !== undefined && isTrusted(this.trusted, ex.remoteAddress)) {
      const h = ex.header(this.config.header)?.trim().toUpperCase();
      if (h !== undefined && REGION_RE.test(h)) return h;
    }
    const addr = ex.remoteAddress;
    const family = isIP(addr) === 6 ? 'ipv6' : 'ipv4';
    for (const e of this.entries) if (e.list.check(addr, family)) return e.region;
    return undefined;
  }
}

function parseConsent(v: string | undefined): readonly string[] {
  if (v === undefined || v === '') return NO_CONSENT;
  return v.split(',').map((t) => t.trim()).filter((t) => t !== '').slice(0, 32);
}

export class DecideStage implements Stage {
  readonly slot = 'decide' as const;
  readonly name = 'policy';
  private readonly upstreamRegion = new Map<string, string | undefined>();

  constructor(
    readonly policies: readonly CompiledPolicy[],
    private readonly regions: RegionTable,
    config: CageConfig,
    private readonly shadowAll: boolean,
  ) {
    for (const r of config.routes) this.upstreamRegion.set(r.name, r.region);
  }

  /** The decision input for an exchange (also what `cage policy explain` shows). */
  input(ex: Exchange): DecisionInput {
    const cl = ex.header('content-length');
    return {
      method: ex.method,
      host: ex.host,
      path: ex.path,
      routeName: ex.route,
      identity: { kind: ex.identityKind === '' ? 'anonymous' : ex.identityKind, id: ex.identity === '' ? undefined : ex.identity, roles: ex.roles },
      signed: ex.signed,
      encrypted: { tls: ex.scheme === 'https', pq: ex.pq },
      clientRegion: this.regions.lookup(ex),
      upstreamRegion: this.upstreamRegion.get(ex.route),
      consent: parseConsent(ex.header('cage-consent')),
      purpose: ex.header('cage-purpose'),
      bodyLength: cl !== undefined ? Number(cl) : ex.body !== null ? -1 : 0,
    };
  }

  handle(ex: Exchange): StageResult | Promise<StageResult> {
    const input = this.input(ex);
    let want = 0;
    for (const p of this.policies) want = Math.max(want, p.needsBody(input));
    if (want === 0 || ex.body === null) return this.apply(ex, input);
    return ex.body.peek(want).then(
      ({ bytes }) => {
        input.body = bytes;
        return this.apply(ex, input);
      },
      (err: unknown) => {
        if (isCageError(err)) return err;
        throw err;
      },
    );
  }

  /** Every bundle decides; the worst verdict wins (the Green path allocates nothing). */
  private apply(ex: Exchange, input: DecisionInput): StageResult {
    let worst: 'green' | 'yellow' | 'red' = 'green';
    let reasons: string[] | undefined;
    for (const p of this.policies) {
      const v = p.decide(input);
      const name = p.name;
      if (v.verdict === 'green' && v.shadow.length === 0) continue;
      reasons ??= [];
      let verdict = v.verdict;
      if (this.shadowAll && verdict !== 'green') {
        for (const f of v.violations) reasons.push(`${name}/${f.rule}:${f.code}:shadow-deny`);
        for (const f of v.warnings) reasons.push(`${name}/${f.rule}:${f.code}:shadow-warn`);
        verdict = 'green';
      } else {
        for (const f of v.violations) reasons.push(`${name}/${f.rule}:${f.code}`);
        for (const f of v.warnings) reasons.push(`${name}/${f.rule}:${f.code}:warn`);
      }
      for (const f of v.shadow) reasons.push(`${name}/${f.rule}:${f.code}:shadow-${f.effect}`);
      if (verdict === 'red') worst = 'red';
      else if (verdict === 'yellow' && worst === 'green') worst = 'yellow';
    }
    ex.verdict = worst;
    if (reasons === undefined) return undefined;
    ex.verdictReasons = reasons;
    if (worst === 'red') {
      const denied = reasons.filter((r) => !r.endsWith(':warn') && !r.includes(':shadow-'));
      return new CageError({ code: 'POLICY_DENIED', message: `denied by policy: ${denied.join(', ')}` });
    }
    if (worst === 'yellow') ex.addFlag('policy-yellow');
    return undefined;
  }
}

/** A policy in a reload that fails to load refuses the reload, naming the file and line. */
export function policyLoadError(err: unknown): CageError {
  return isCageError(err) ? err : new CageError({ code: 'POLICY_INVALID', message: String(err) });
}
