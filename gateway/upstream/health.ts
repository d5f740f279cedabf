/**
 * Active health checks: per route with `health_checks.active`, each upstream is probed with
 * `GET <path>` every `interval`; `fails` consecutive failures (transport error, timeout, or a
 * status other than `expect_status` / outside 2xx–3xx) mark it unhealthy, `passes` consecutive
 * successes bring it back. Probes use the upstream's own pool; one timer per route.
 */
import type { Logger } from 'pino';
import type { ActiveHealthCheck } from '../config/load.js';
import type { Upstream } from './upstream.js';

interface Probed {
  upstream: Upstream;
  passes: number;
  fails: number;
  busy: boolean;
}

export interface HealthRoute {
  readonly name: string;
  readonly upstreams: readonly Upstream[];
  readonly config: { readonly activeHealth: ActiveHealthCheck | undefined };
}

export class HealthChecker {
  private timers: NodeJS.Timeout[] = [];
  private firstTicks: NodeJS.Immediate[] = [];

  constructor(private readonly logger: Logger) {}

  /**
   * Restart checks for a new set of routes. Upstream health state is kept for upstreams that are
   * still actively checked; one no route checks any more is healthy again as far as active checks
   * go (nothing would ever bring it back otherwise).
   */
  update(routes: readonly HealthRoute[]): void {
    this.stop();
    const checked = new Set<Upstream>();
    for (const route of routes) if (route.config.activeHealth !== undefined) for (const u of route.upstreams) checked.add(u);
    for (const route of routes) for (const u of route.upstreams) if (!checked.has(u)) u.activeHealthy = true;
    for (const route of routes) {
      const check = route.config.activeHealth;
      if (check === undefined) continue;
      const probed: Probed[] = route.upstreams.map((upstream) => ({ upstream, passes: 0, fails: 0, busy: false }));
      const tick = () => {
        for (const p of probed) if (!p.busy) void this.probe(route.name, p, check);
      };
      const timer = setInterval(tick, check.intervalMs);
      timer.unref();
      this.timers.push(timer);
      this.firstTicks.push(setImmediate(tick));
    }
  }

  stop(): void {
    for (const t of this.timers) clearInterval(t);
    for (const t of this.firstTicks) clearImmediate(t);
    this.timers = [];
    this.firstTicks = [];
  }

  private async probe(route: string, p: Probed, check: ActiveHealthCheck): Promise<void> {
    p.busy = true;
    let ok = false;
    let reason = '';
    try {
      const res = await p.upstream.pool.request({
        path: check.path,
        method: 'GET',
        headers: { 'user-agent': 'http-cage-health/1' },
        headersTimeout: check.timeoutMs,
        bodyTimeout: check.timeoutMs,
        signal: AbortSignal.timeout(check.timeoutMs),
      });
      await res.body.dump();
      ok = check.expectStatus !== undefined ? res.statusCode === check.expectStatus : res.statusCode >= 200 && res.statusCode < 400;
      if (!ok) reason = `status ${res.statusCode}`;
    } catch (err) {
      reason = (err as NodeJS.ErrnoException).code ?? (err as Error).name;
    } finally {
      p.busy = false;
    }
    const up = p.upstream;
    if (ok) {
      p.fails = 0;
      if (++p.passes >= check.passes && !up.activeHealthy) {
        up.activeHealthy = true;
        up.recordSuccess();
        this.logger.info({ route, upstream: up.label }, 'upstream healthy again');
      }
    } else {
      p.passes = 0;
      if (++p.fails >= check.fails && up.activeHealthy) {
        up.activeHealthy = false;
        this.logger.warn({ route, upstream: up.label, reason }, 'upstream unhealthy');
      }
    }
  }
}
