/**
 * Builds the decision stages (identify → limit → decide) from a config, once per (re)load. What
 * must survive a reload is carried over from the previous build: rate-limit counters and the Redis
 * connection (when the limits and the URL are unchanged), the signature nonce cache and the JWT
 * cache (when the JWT settings are unchanged). Anything that fails to load (a JWT key file, a
 * policy bundle) throws, so the reload is refused and the old stages keep running.
 */
import type { Logger } from 'pino';
import { CageError } from '../core/errors.js';
import type { CageConfig } from './config/load.js';
import { compileTrustedProxies } from './headers.js';
import { JwtVerifier } from './identity/jwt.js';
import { SignatureVerifier } from './identity/signatures.js';
import { IdentifyStage } from './identity/stage.js';
import { RateLimitStage, RateLimits } from './limits.js';
import type { Stage } from './pipeline.js';
import type { ClassSourceRef } from './rate-classes.js';
import { DecideStage, loadPolicies, RegionTable } from './policy.js';
import type { ZkService } from './zk.js';

export class Security {
  private constructor(
    readonly stages: readonly Stage[],
    readonly limits: RateLimits | undefined,
    readonly signatures: SignatureVerifier,
    readonly jwt: JwtVerifier | undefined,
    readonly decide: DecideStage | undefined,
  ) {}

  /** `zk`: the cage's anonymous-membership service (its state outlives reloads), when zk.enabled. */
  static build(config: CageConfig, logger: Logger, prev?: Security, zk?: ZkService, classes?: ClassSourceRef): Security {
    const sec = config.security;
    const trusted = compileTrustedProxies(config.trustedProxies);
    const policies = loadPolicies(sec.policies);
    const sameJwt = prev?.jwt !== undefined && sec.identity.jwt !== undefined && JSON.stringify(prev.jwt.config) === JSON.stringify(sec.identity.jwt);
    const jwt = sec.identity.jwt === undefined ? undefined : sameJwt ? prev!.jwt! : new JwtVerifier(sec.identity.jwt);
    let signatures: SignatureVerifier;
    if (prev !== undefined && prev.signatures.config.nonceCache === sec.identity.signatures.nonceCache) {
      signatures = prev.signatures;
      signatures.config = sec.identity.signatures;
    } else {
      signatures = new SignatureVerifier(sec.identity.signatures);
    }
    let limits: RateLimits | undefined;
    if (sec.ratelimit.limits.length > 0) {
      const p = prev?.limits;
      limits = p !== undefined && JSON.stringify(limitsKey(p.config)) === JSON.stringify(limitsKey(sec.ratelimit)) ? p : new RateLimits(sec.ratelimit, logger);
    }
    const stages: Stage[] = [];
    const identity = sec.identity;
    if (identity.apiKeys.length > 0 || jwt !== undefined || identity.signatures.enabled) stages.push(new IdentifyStage(identity, jwt, signatures, trusted));
    if (config.zk.routes.size > 0) {
      if (zk === undefined) throw new CageError({ code: 'CONFIG_INVALID', message: 'require_zk routes need zk.enabled at start (turning zk on takes a restart)' });
      stages.push(zk.stage(config.zk)!);
    }
    if (limits !== undefined) stages.push(new RateLimitStage(limits, sec.ratelimit.limits, classes));
    const decide = policies.length > 0 ? new DecideStage(policies, new RegionTable(sec.regions, trusted), config, sec.policies.shadow) : undefined;
    if (decide !== undefined) stages.push(decide);
    return new Security(stages, limits, signatures, jwt, decide);
  }

  /** Release what the previous build held and this one does not reuse. */
  async retire(next: Security | undefined): Promise<void> {
    if (this.limits !== undefined && this.limits !== next?.limits) await this.limits.close();
  }
}

function limitsKey(c: CageConfig['security']['ratelimit']): unknown {
  return { redis: c.redis, mode: c.onRedisError, prefix: c.keyPrefix, limits: c.limits.map((l) => ({ ...l, classes: [...l.classes] })) };
}
