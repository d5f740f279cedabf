/**
 * Prometheus metrics (prom-client, one registry per cage so tests can run several). The hot path
 * touches only cached children: label lookups happen once per (route, status), not per request.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Exchange } from './exchange.js';
import type { Recorder } from './pipeline.js';
import type { Upstream } from './upstream/upstream.js';

interface RouteChildren {
  byStatus: Map<number, Counter.Internal>;
  duration: Histogram.Internal<"route">;
  bytesIn: Counter.Internal;
  bytesOut: Counter.Internal;
}

export class GatewayMetrics implements Recorder {
  readonly registry = new Registry();
  private readonly requests = new Counter({ name: 'cage_http_requests_total', help: 'Requests answered, by route and status.', labelNames: ['route', 'status'] as const, registers: [this.registry] });
  private readonly duration = new Histogram({
    name: 'cage_http_request_duration_seconds',
    help: 'Time from request arrival to the end of the response, by route.',
    labelNames: ['route'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  private readonly bytesIn = new Counter({ name: 'cage_http_request_body_bytes_total', help: 'Request body bytes received, by route.', labelNames: ['route'] as const, registers: [this.registry] });
  private readonly bytesOut = new Counter({ name: 'cage_http_response_body_bytes_total', help: 'Response body bytes sent, by route.', labelNames: ['route'] as const, registers: [this.registry] });
  private readonly retries = new Counter({ name: 'cage_upstream_retries_total', help: 'Requests retried on another upstream attempt.', registers: [this.registry] });
  readonly reloads = new Counter({ name: 'cage_config_reloads_total', help: 'Config reloads by result.', labelNames: ['result'] as const, registers: [this.registry] });
  private readonly children = new Map<string, RouteChildren>();

  constructor(inflight: () => number, upstreams: () => Iterable<Upstream>, websockets: () => number) {
    new Gauge({
      name: 'cage_websocket_connections',
      help: 'Open WebSocket connections passed through.',
      registers: [this.registry],
      collect() {
        this.set(websockets());
      },
    });
    new Gauge({
      name: 'cage_http_requests_in_flight',
      help: 'Requests being handled now.',
      registers: [this.registry],
      collect() {
        this.set(inflight());
      },
    });
    new Gauge({
      name: 'cage_upstream_healthy',
      help: '1 when the upstream is healthy (active and passive checks), else 0.',
      labelNames: ['upstream'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        const now = Date.now();
        for (const u of upstreams()) this.set({ upstream: u.label }, u.healthy(now) ? 1 : 0);
      },
    });
    new Gauge({
      name: 'cage_upstream_in_flight',
      help: 'Requests in flight per upstream.',
      labelNames: ['upstream'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const u of upstreams()) this.set({ upstream: u.label }, u.inflight);
      },
    });
    collectDefaultMetrics({ register: this.registry, prefix: 'cage_' });
  }

  private routeChildren(route: string): RouteChildren {
    let c = this.children.get(route);
    if (c === undefined) {
      c = {
        byStatus: new Map(),
        duration: this.duration.labels(route),
        bytesIn: this.bytesIn.labels(route),
        bytesOut: this.bytesOut.labels(route),
      };
      this.children.set(route, c);
    }
    return c;
  }

  record(ex: Exchange): void {
    const c = this.routeChildren(ex.route);
    let s = c.byStatus.get(ex.status);
    if (s === undefined) c.byStatus.set(ex.status, (s = this.requests.labels(ex.route, String(ex.status))));
    s.inc();
    c.duration.observe((ex.endedAt - ex.startedAt) / 1000);
    if (ex.bytesIn > 0) c.bytesIn.inc(ex.bytesIn);
    if (ex.bytesOut > 0) c.bytesOut.inc(ex.bytesOut);
    if (ex.retries > 0) this.retries.inc(ex.retries);
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}
