/**
 * Prometheus metrics (prom-client, one registry per cage so tests can run several). The per-request
 * series (requests by route and status, the latency histogram, body bytes) are plain numbers in
 * one object per route, turned into Prometheus samples only when /metrics is scraped: prom-client
 * hashes the label set on every `inc`/`observe`, even through a cached child, which showed up as
 * 4% of the proxy's CPU per request.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics, type Metric } from 'prom-client';
import type { Exchange } from './exchange.js';
import type { Recorder } from './pipeline.js';
import type { Upstream } from './upstream/upstream.js';

/** Upper bounds (seconds) of the latency histogram's buckets; +Inf is implied. */
export const DURATION_BUCKETS: readonly number[] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const BUCKET_MS = DURATION_BUCKETS.map((b) => b * 1000);

/** Everything counted per route, as plain numbers. */
class RouteSeries {
  /** Requests by status code (index = status; statuses are 100-599, 499 for client aborts). */
  readonly byStatus = new Float64Array(600);
  /** Non-cumulative bucket counts; the last slot is +Inf. */
  readonly buckets = new Float64Array(DURATION_BUCKETS.length + 1);
  durationSum = 0;
  count = 0;
  bytesIn = 0;
  bytesOut = 0;
}

interface Sample {
  labels: Record<string, string | number>;
  value: number;
  metricName?: string;
}

/** A prom-client metric whose samples are computed at scrape time from the route series. */
function scrapeMetric(registry: Registry, name: string, help: string, type: 'counter' | 'histogram', values: () => Sample[]): void {
  const metric = {
    name,
    help,
    type,
    aggregator: 'sum',
    get: () => Promise.resolve({ name, help, type, aggregator: 'sum', values: values() }),
  };
  registry.registerMetric(metric as unknown as Metric);
}

export class GatewayMetrics implements Recorder {
  readonly registry = new Registry();
  private readonly retries = new Counter({ name: 'cage_upstream_retries_total', help: 'Requests retried on another upstream attempt.', registers: [this.registry] });
  readonly reloads = new Counter({ name: 'cage_config_reloads_total', help: 'Config reloads by result.', labelNames: ['result'] as const, registers: [this.registry] });
  /** Per-route series, by route name ('' for requests that matched no route). */
  private readonly routes = new Map<string, RouteSeries>();

  constructor(inflight: () => number, upstreams: () => Iterable<Upstream>, websockets: () => number) {
    const routes = this.routes;
    scrapeMetric(this.registry, 'cage_http_requests_total', 'Requests answered, by route and status.', 'counter', () => {
      const out: Sample[] = [];
      for (const [route, r] of routes) {
        for (let status = 0; status < r.byStatus.length; status++) {
          if (r.byStatus[status] !== 0) out.push({ labels: { route, status: String(status) }, value: r.byStatus[status]! });
        }
      }
      return out;
    });
    const durationName = 'cage_http_request_duration_seconds';
    scrapeMetric(this.registry, durationName, 'Time from request arrival to the end of the response, by route.', 'histogram', () => {
      const out: Sample[] = [];
      for (const [route, r] of routes) {
        let cumulative = 0;
        for (let i = 0; i < r.buckets.length; i++) {
          cumulative += r.buckets[i]!;
          const le = i < DURATION_BUCKETS.length ? DURATION_BUCKETS[i]! : '+Inf';
          out.push({ labels: { le, route }, value: cumulative, metricName: `${durationName}_bucket` });
        }
        out.push({ labels: { route }, value: r.durationSum / 1000, metricName: `${durationName}_sum` });
        out.push({ labels: { route }, value: r.count, metricName: `${durationName}_count` });
      }
      return out;
    });
    const bytes = (field: 'bytesIn' | 'bytesOut') => (): Sample[] => [...routes].map(([route, r]) => ({ labels: { route }, value: r[field] }));
    scrapeMetric(this.registry, 'cage_http_request_body_bytes_total', 'Request body bytes received, by route.', 'counter', bytes('bytesIn'));
    scrapeMetric(this.registry, 'cage_http_response_body_bytes_total', 'Response body bytes sent, by route.', 'counter', bytes('bytesOut'));
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

  record(ex: Exchange): void {
    let r = this.routes.get(ex.route);
    if (r === undefined) this.routes.set(ex.route, (r = new RouteSeries()));
    const status = ex.status;
    if (status >= 0 && status < 600) r.byStatus[status]!++;
    const ms = ex.endedAt - ex.startedAt;
    let i = 0;
    while (i < BUCKET_MS.length && ms > BUCKET_MS[i]!) i++;
    r.buckets[i]!++;
    r.durationSum += ms;
    r.count++;
    r.bytesIn += ex.bytesIn;
    r.bytesOut += ex.bytesOut;
    if (ex.retries > 0) this.retries.inc(ex.retries);
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}
