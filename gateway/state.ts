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

  constructor(
    readonly config: RouteConfig,
    readonly upstreams: readonly Upstream[],
  ) {
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

  constructor(
    readonly config: CageConfig,
    registry: UpstreamRegistry,
    stages: readonly Stage[],
  ) {
    this.routes = config.routes.map((r) => new CompiledRoute(r, r.upstreams.map((u) => registry.acquire(u, r))));
    this.router = new Router(this.routes);
    this.trusted = compileTrustedProxies(config.trustedProxies);
    this.stages = orderStages(stages);
  }

  /** Every upstream reference this state holds (for UpstreamRegistry.release). */
  upstreamRefs(): Upstream[] {
    return this.routes.flatMap((r) => r.upstreams);
  }
}
