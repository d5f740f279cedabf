/**
 * One upstream (an origin such as http://10.0.0.5:3000) with its keep-alive undici Pool, its
 * in-flight count (for least_conn) and its health: passive (consecutive transport failures mark
 * it down for `fail_duration`) and active (a checker flips `activeHealthy`). Upstreams outlive a
 * config reload when their URL and pool options are unchanged, so health and warm connections
 * survive it; see UpstreamRegistry.
 */
import { Pool } from 'undici';
import type { RouteConfig } from '../config/load.js';

export interface PoolOptions {
  connections: number;
  connectTimeoutMs: number;
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
  keepAliveTimeoutMs: number;
}

export function poolOptionsOf(route: RouteConfig): PoolOptions {
  return {
    connections: route.keepaliveConnections,
    connectTimeoutMs: route.connectTimeoutMs,
    headersTimeoutMs: route.responseHeadersTimeoutMs,
    bodyTimeoutMs: route.idleTimeoutMs,
    keepAliveTimeoutMs: route.keepaliveIdleMs,
  };
}

export class Upstream {
  readonly url: string;
  /** "http://host:port", what undici calls the origin. */
  readonly origin: string;
  /** "host:port", for metrics labels. */
  readonly label: string;
  readonly pool: Pool;
  inflight = 0;
  /** Set by the active checker; true until a check says otherwise. */
  activeHealthy = true;
  /** Consecutive transport failures (passive health). */
  consecutiveFails = 0;
  /** Passive: unhealthy until this time (ms since epoch); 0 when healthy. */
  downUntil = 0;
  maxFails: number;
  failDurationMs: number;
  refs = 0;

  constructor(url: string, opts: PoolOptions, maxFails: number, failDurationMs: number) {
    const u = new URL(url);
    this.url = url;
    this.origin = u.origin;
    this.label = u.host;
    this.maxFails = maxFails;
    this.failDurationMs = failDurationMs;
    this.pool = new Pool(u.origin, {
      connections: opts.connections,
      pipelining: 1,
      connect: { timeout: opts.connectTimeoutMs },
      headersTimeout: opts.headersTimeoutMs,
      bodyTimeout: opts.bodyTimeoutMs,
      // Expire idle sockets before a typical upstream does (Node's default keepAliveTimeout is 5 s),
      // and honour the upstream's own `Keep-Alive: timeout=N` minus a margin.
      keepAliveTimeout: opts.keepAliveTimeoutMs,
      keepAliveMaxTimeout: Math.max(opts.keepAliveTimeoutMs, 600_000),
      keepAliveTimeoutThreshold: 1000,
      strictContentLength: true,
    });
  }

  healthy(now: number): boolean {
    return this.activeHealthy && (this.downUntil === 0 || now >= this.downUntil);
  }

  recordSuccess(): void {
    this.consecutiveFails = 0;
    this.downUntil = 0;
  }

  recordFailure(now: number): void {
    if (++this.consecutiveFails >= this.maxFails) this.downUntil = now + this.failDurationMs;
  }
}

/**
 * Keeps one Upstream per (url, pool options, passive settings) across reloads: `acquire` during
 * a config build, `release` of the old config's set afterwards closes pools nobody uses any more
 * (`pool.close()` lets in-flight requests finish).
 */
export class UpstreamRegistry {
  private readonly byKey = new Map<string, Upstream>();

  acquire(url: string, route: RouteConfig): Upstream {
    const opts = poolOptionsOf(route);
    const key = `${url}|${JSON.stringify(opts)}|${route.passiveMaxFails}|${route.passiveFailDurationMs}`;
    let up = this.byKey.get(key);
    if (up === undefined) {
      up = new Upstream(url, opts, route.passiveMaxFails, route.passiveFailDurationMs);
      this.byKey.set(key, up);
    }
    up.refs++;
    return up;
  }

  release(ups: Iterable<Upstream>): Promise<void>[] {
    const closing: Promise<void>[] = [];
    for (const up of ups) {
      if (--up.refs > 0) continue;
      for (const [k, v] of this.byKey) if (v === up) this.byKey.delete(k);
      closing.push(up.pool.close().catch(() => undefined));
    }
    return closing;
  }

  all(): Upstream[] {
    return [...this.byKey.values()];
  }

  async destroyAll(): Promise<void> {
    const ups = this.all();
    this.byKey.clear();
    await Promise.all(ups.map((u) => u.pool.destroy().catch(() => undefined)));
  }
}
