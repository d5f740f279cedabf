// HTTP virtual users: each VU owns one undici keep-alive Client (one connection, like a k6 VU)
// and per iteration GETs the scenario path, reads the whole body, and records k6's metrics:
// http_reqs, http_req_duration (ms, until the body is read), http_req_failed (status >= 400 or a
// network error), iterations and the checks "status is 2xx" and "has x-request-id".

import { Client } from 'undici';
import { CHECK_REQUEST_ID, CHECK_STATUS_2XX, recordCheck, recordError } from './checks.js';
import type { MetricRegistry } from './metrics.js';
import type { VuContext } from './ramping.js';

export interface HttpVuOptions {
  baseUrl: string;
  path: string;
  timeoutMs: number;
  metrics: MetricRegistry;
  errors: Map<string, number>;
}

export interface VuDriver {
  iterate(vu: VuContext): Promise<void>;
  close(): Promise<void>;
}

/** Joins the base URL's path prefix (if any) with a scenario path. */
export function joinPath(baseUrl: URL, path: string): string {
  const prefix = baseUrl.pathname.replace(/\/+$/, '');
  return `${prefix}${path}${baseUrl.search}`;
}

/** Metric names an HTTP scenario produces (so thresholds on them resolve even with no data). */
export function registerHttpMetrics(metrics: MetricRegistry): void {
  metrics.counter('http_reqs');
  metrics.rate('http_req_failed');
  metrics.trend('http_req_duration');
  metrics.counter('data_received');
  metrics.counter('iterations');
  metrics.rate('checks');
}

export function createHttpVus(options: HttpVuOptions): VuDriver {
  const base = new URL(options.baseUrl);
  const path = joinPath(base, options.path);
  const clients = new Map<number, Client>();
  const { metrics } = options;
  registerHttpMetrics(metrics);

  const clientFor = (id: number): Client => {
    let client = clients.get(id);
    if (!client) {
      client = new Client(base.origin, {
        connectTimeout: options.timeoutMs,
        headersTimeout: options.timeoutMs,
        bodyTimeout: options.timeoutMs,
        pipelining: 1,
      });
      clients.set(id, client);
    }
    return client;
  };

  return {
    async iterate(vu) {
      const started = performance.now();
      let status: number;
      let requestId: string | undefined;
      try {
        const res = await clientFor(vu.id).request({
          method: 'GET',
          path,
          headers: { 'user-agent': 'http-cage-loadtest/1' },
          signal: vu.signal,
        });
        status = res.statusCode;
        const header = res.headers['x-request-id'];
        requestId = Array.isArray(header) ? header[0] : header;
        let bytes = 0;
        for await (const chunk of res.body) bytes += (chunk as Buffer).length;
        metrics.counter('data_received').add(bytes);
        metrics.trend('http_req_duration').add(performance.now() - started);
      } catch (err) {
        if (vu.signal.aborted) return; // cut by the end of the run: not a sample, as in k6
        recordError(options.errors, err);
        status = 0; // a network error or a broken body counts as a failed request, as in k6
      }
      metrics.counter('http_reqs').add(1);
      metrics.counter('iterations').add(1);
      metrics.rate('http_req_failed').add(status === 0 || status >= 400);
      recordCheck(metrics, CHECK_STATUS_2XX, status >= 200 && status < 300);
      recordCheck(metrics, CHECK_REQUEST_ID, Boolean(requestId));
      if (status >= 400) options.errors.set(`HTTP ${status}`, (options.errors.get(`HTTP ${status}`) ?? 0) + 1);
    },
    async close() {
      await Promise.allSettled([...clients.values()].map((c) => c.destroy()));
      clients.clear();
    },
  };
}
