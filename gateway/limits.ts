/**
 * The limit stage: `rate-limiter-flexible` fixed windows per client IP, per identity, per API key
 * class or per route, in memory or in a shared Redis (`ratelimit.redis`) so several cages enforce
 * one limit. A refused request gets 429 `RATE_LIMITED` with `Retry-After` and the IETF
 * draft-ietf-httpapi-ratelimit-headers fields (`RateLimit-Policy: "name";q=100;w=60`,
 * `RateLimit: "name";r=0;t=12`); allowed answers carry the same two fields for the tightest limit.
 *
 * When Redis is unreachable, `on_redis_error` decides: `local` (each cage limits on its own, in
 * memory, until Redis is back), `open` (no limit) or `closed` (503 `RATE_LIMIT_UNAVAILABLE`).
 * ioredis reconnects by itself; both transitions are logged once.
 */
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import { CageError } from '../core/errors.js';
import type { RateLimitConfig, RateLimitRule } from './config/security.js';
import type { Exchange } from './exchange.js';
import type { Stage, StageResult } from './pipeline.js';
import type { ClassSourceRef } from './rate-classes.js';

interface Limiter {
  rule: RateLimitRule;
  points: number;
  limiter: RateLimiterAbstract;
  /** `"name";q=…;w=…`, built once. */
  policy: string;
}

interface Outcome {
  l: Limiter;
  res: RateLimiterRes | null;
  refused: boolean;
  error: boolean;
}

export class RateLimits {
  readonly redis: Redis | undefined;
  private redisDown = false;
  private readonly limiters = new Map<string, Limiter>();

  constructor(
    readonly config: RateLimitConfig,
    private readonly logger: Logger,
  ) {
    if (config.redis !== undefined) {
      const redis = new Redis(config.redis, { enableOfflineQueue: false, maxRetriesPerRequest: 1, lazyConnect: false, connectTimeout: 2000, retryStrategy: (n) => Math.min(2000, 50 * 2 ** Math.min(n, 6)) });
      redis.on('error', (err: Error) => {
        if (this.redisDown) return;
        this.redisDown = true;
        this.logger.error({ err: err.message, on_redis_error: config.onRedisError }, 'ratelimit: Redis unreachable; applying on_redis_error until it is back');
      });
      redis.on('ready', () => {
        if (!this.redisDown) return;
        this.redisDown = false;
        this.logger.info('ratelimit: Redis is back; shared limits apply again');
      });
      this.redis = redis;
    }
  }

  /** The limiter for a rule and a class (classes may carry their own points). */
  limiterFor(rule: RateLimitRule, cls: string): Limiter | undefined {
    const points = rule.classes.get(cls) ?? rule.points;
    if (points === 0) return undefined; // the class is exempt
    const id = `${rule.name}\u0000${points}`;
    let l = this.limiters.get(id);
    if (l === undefined) {
      const duration = rule.perMs / 1000;
      const keyPrefix = `${this.config.keyPrefix}:${rule.name}:${points}`;
      let limiter: RateLimiterAbstract;
      if (this.redis !== undefined) {
        limiter = new RateLimiterRedis({
          storeClient: this.redis,
          points,
          duration,
          keyPrefix,
          rejectIfRedisNotReady: true,
          insuranceLimiter: this.config.onRedisError === 'local' ? new RateLimiterMemory({ points, duration, keyPrefix }) : undefined,
        });
      } else {
        limiter = new RateLimiterMemory({ points, duration, keyPrefix });
      }
      l = { rule, points, limiter, policy: `"${rule.name}";q=${points};w=${duration}` };
      this.limiters.set(id, l);
    }
    return l;
  }

  async close(): Promise<void> {
    if (this.redis !== undefined) this.redis.disconnect();
  }
}

function keyFor(rule: RateLimitRule, ex: Exchange): string {
  switch (rule.by) {
    case 'ip':
      return ex.remoteAddress;
    case 'identity':
      return ex.identity === '' ? `ip:${ex.remoteAddress}` : `${ex.identityKind}:${ex.identity}`;
    case 'route':
      return ex.route;
    case 'class':
      return ex.rateClass === '' ? 'default' : ex.rateClass;
  }
}

export class RateLimitStage implements Stage {
  readonly slot = 'limit' as const;
  readonly name = 'ratelimit';

  constructor(
    private readonly limits: RateLimits,
    private readonly rules: readonly RateLimitRule[],
    private readonly classes: ClassSourceRef = { source: undefined },
  ) {}

  handle(ex: Exchange): Promise<StageResult> | undefined {
    // A DID caller without a class from its credentials may have one on the chain (FLX holders).
    const source = this.classes.source;
    if (source !== undefined && ex.rateClass === '' && ex.identityKind === 'did') ex.rateClass = source.classOf(ex.identity);
    const pending: Array<Promise<Outcome>> = [];
    for (const rule of this.rules) {
      if (rule.routes !== undefined && !rule.routes.includes(ex.route)) continue;
      const l = this.limits.limiterFor(rule, ex.rateClass);
      if (l === undefined) continue;
      pending.push(
        l.limiter.consume(keyFor(rule, ex)).then(
          (res): Outcome => ({ l, res, refused: false, error: false }),
          (err: unknown): Outcome => (err instanceof RateLimiterRes ? { l, res: err, refused: true, error: false } : { l, res: null, refused: false, error: true }),
        ),
      );
    }
    if (pending.length === 0) return undefined;
    return Promise.all(pending).then((outcomes) => this.settle(ex, outcomes));
  }

  private settle(ex: Exchange, outcomes: Outcome[]): StageResult {
    let tightest: Outcome | undefined;
    let refused: Outcome | undefined;
    for (const o of outcomes) {
      if (o.error) {
        const mode = this.limits.config.onRedisError;
        if (mode === 'closed') return new CageError({ code: 'RATE_LIMIT_UNAVAILABLE', message: `rate limit ${o.l.rule.name}: the shared store (Redis) is unreachable` });
        ex.addFlag('ratelimit-unavailable');
        continue;
      }
      if (o.refused && (refused === undefined || o.res!.msBeforeNext > refused.res!.msBeforeNext)) refused = o;
      if (tightest === undefined || o.res!.remainingPoints < tightest.res!.remainingPoints) tightest = o;
    }
    const shown = refused ?? tightest;
    if (shown !== undefined) {
      const reset = Math.max(1, Math.ceil(shown.res!.msBeforeNext / 1000));
      ex.addHeader('ratelimit-policy', shown.l.policy);
      ex.addHeader('ratelimit', `"${shown.l.rule.name}";r=${Math.max(0, shown.res!.remainingPoints)};t=${reset}`);
      if (refused !== undefined) {
        ex.addHeader('retry-after', String(reset));
        return new CageError({ code: 'RATE_LIMITED', message: `rate limit ${refused.l.rule.name} reached (${refused.l.points} per ${refused.l.rule.perMs / 1000} s by ${refused.l.rule.by}); retry in ${reset} s` });
      }
    }
    return undefined;
  }
}
