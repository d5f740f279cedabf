/**
 * Load balancing over a route's upstreams: round_robin, least_conn (fewest in flight, ties broken
 * round-robin), random, first (first healthy: active/standby). Unhealthy upstreams are skipped;
 * `exclude` skips the one that just failed when retrying. Returns undefined when none is healthy.
 */
import type { Upstream } from './upstream.js';

export type BalancePolicy = 'round_robin' | 'least_conn' | 'random' | 'first';

export class Balancer {
  private next = 0;

  constructor(
    readonly upstreams: readonly Upstream[],
    readonly policy: BalancePolicy,
  ) {}

  pick(now: number, exclude?: Upstream): Upstream | undefined {
    const ups = this.upstreams;
    const n = ups.length;
    if (n === 1) {
      const u = ups[0]!;
      return u !== exclude && u.healthy(now) ? u : undefined;
    }
    switch (this.policy) {
      case 'first':
        for (const u of ups) if (u !== exclude && u.healthy(now)) return u;
        return undefined;
      case 'random': {
        const start = Math.floor(Math.random() * n);
        return this.scan(start, now, exclude);
      }
      case 'least_conn': {
        const start = this.next++ % n;
        let best: Upstream | undefined;
        for (let i = 0; i < n; i++) {
          const u = ups[(start + i) % n]!;
          if (u === exclude || !u.healthy(now)) continue;
          if (best === undefined || u.inflight < best.inflight) best = u;
        }
        return best;
      }
      default: {
        // Continue after the last pick, so unhealthy upstreams' share spreads evenly.
        const start = this.next % n;
        for (let i = 0; i < n; i++) {
          const idx = (start + i) % n;
          const u = ups[idx]!;
          if (u !== exclude && u.healthy(now)) {
            this.next = idx + 1;
            return u;
          }
        }
        return undefined;
      }
    }
  }

  private scan(start: number, now: number, exclude: Upstream | undefined): Upstream | undefined {
    const ups = this.upstreams;
    for (let i = 0; i < ups.length; i++) {
      const u = ups[(start + i) % ups.length]!;
      if (u !== exclude && u.healthy(now)) return u;
    }
    return undefined;
  }
}
