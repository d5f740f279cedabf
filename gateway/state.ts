/**
 * A config compiled for the hot path: router, balancers over shared upstreams, trusted-proxy
 * list and the ordered pipeline stages. Built once per (re)load and swapped atomically; in-flight
 * exchanges keep the state they started with.
 */
import type { BlockList } from 'node:net';
import type { CageConfig, RouteConfig } from './config/load.js';
import { compileTrustedProxies } from './headers.js';
import { orderStages, type Stage } from './pipeline.js';
import { Router } from './router.js';
import { Balancer } from './upstream/balancer.js';
import type { Upstream, UpstreamRegistry } from './upstream/upstream.js';

export class CompiledRoute {
  readonly name: string;
  readonly hosts: readonly string[];
  readonly pathPrefix: string;
  readonly balancer: Balancer;
  /** Exchange.audit value: 0 off, 1 async, 2 sync. */
  readonly auditMode: number;
  readonly syncMaxResponseBytes: number;

  constructor(
    readonly config: RouteConfig,
    readonly upstreams: readonly Upstream[],
    syncMaxResponseBytes = 8 * 1024 * 1024,
  ) {
    this.auditMode = config.audit === 'sync' ? 2 : config.audit === 'async' ? 1 : 0;
    this.syncMaxResponseBytes = syncMaxResponseBytes;
    this.name = config.name;
    this.hosts = config.hosts;
    this.pathPrefix = config.pathPrefix;
    this.balancer = new Balancer(upstreams, config.loadBalancing);
  }
}

export class GatewayState {
  readonly router: Router<CompiledRoute>;
  readonly routes: readonly CompiledRoute[];
  readonly trusted: BlockList | undefined;
  readonly stages: readonly Stage[];
  /** Exchange.audit of requests that match no route: audit.default_mode. */
  readonly auditDefault: number;

  constructor(
    readonly config: CageConfig,
    registry: UpstreamRegistry,
    stages: readonly Stage[],
  ) {
    this.routes = config.routes.map((r) => new CompiledRoute(r, r.upstreams.map((u) => registry.acquire(u, r)), config.audit.syncMaxResponseBytes));
    this.router = new Router(this.routes);
    this.trusted = compileTrustedProxies(config.trustedProxies);
    this.stages = orderStages(stages);
    const mode = config.audit.enabled ? config.audit.defaultMode : 'off';
    this.auditDefault = mode === 'sync' ? 2 : mode === 'async' ? 1 : 0;
  }

  /** Every upstream reference this state holds (for UpstreamRegistry.release). */
  upstreamRefs(): Upstream[] {
    return this.routes.flatMap((r) => r.upstreams);
  }
}
