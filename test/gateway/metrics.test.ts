import { strict as assert } from 'node:assert';
import { Exchange } from '../../gateway/exchange.js';
import { DURATION_BUCKETS, GatewayMetrics } from '../../gateway/metrics.js';
import { metricSample as sample } from '../helpers/e2e.js';

function exchange(route: string, status: number, ms: number, bytesIn = 0, bytesOut = 0): Exchange {
  const ex = new Exchange();
  ex.route = route;
  ex.status = status;
  ex.startedAt = 1000;
  ex.endedAt = 1000 + ms;
  ex.bytesIn = bytesIn;
  ex.bytesOut = bytesOut;
  return ex;
}

describe('gateway/metrics', () => {
  it('counts requests by route and status, and bytes by route, in the Prometheus text', async () => {
    const m = new GatewayMetrics(() => 0, () => [], () => 0);
    m.record(exchange('a', 200, 1, 10, 100));
    m.record(exchange('a', 200, 1, 5, 50));
    m.record(exchange('a', 502, 1));
    m.record(exchange('', 404, 1));
    const text = await m.text();
    assert.equal(sample(text, 'cage_http_requests_total', { route: 'a', status: '200' }), 2);
    assert.equal(sample(text, 'cage_http_requests_total', { route: 'a', status: '502' }), 1);
    assert.equal(sample(text, 'cage_http_requests_total', { route: '', status: '404' }), 1);
    assert.equal(sample(text, 'cage_http_requests_total', { route: 'a', status: '404' }), undefined);
    assert.equal(sample(text, 'cage_http_request_body_bytes_total', { route: 'a' }), 15);
    assert.equal(sample(text, 'cage_http_response_body_bytes_total', { route: 'a' }), 150);
    assert.match(text, /# TYPE cage_http_requests_total counter/);
    assert.match(text, /# TYPE cage_http_request_duration_seconds histogram/);
  });

  it('puts a duration equal to a bound into that bucket (le is inclusive) and keeps buckets cumulative', async () => {
    const m = new GatewayMetrics(() => 0, () => [], () => 0);
    m.record(exchange('r', 200, 1)); // exactly le=0.001
    m.record(exchange('r', 200, 1.0001)); // just above: le=0.0025
    m.record(exchange('r', 200, 0.2)); // le=0.0005
    m.record(exchange('r', 200, 60_000)); // above every bound: +Inf only
    const text = await m.text();
    const bucket = (le: string): number | undefined => sample(text, 'cage_http_request_duration_seconds_bucket', { route: 'r', le });
    assert.equal(bucket('0.0005'), 1);
    assert.equal(bucket('0.001'), 2);
    assert.equal(bucket('0.0025'), 3);
    assert.equal(bucket('30'), 3);
    assert.equal(bucket('+Inf'), 4);
    assert.equal(sample(text, 'cage_http_request_duration_seconds_count', { route: 'r' }), 4);
    const sum = sample(text, 'cage_http_request_duration_seconds_sum', { route: 'r' })!;
    assert.ok(Math.abs(sum - (1 + 1.0001 + 0.2 + 60_000) / 1000) < 1e-9, `sum ${sum}`);
    let previous = 0;
    for (const b of [...DURATION_BUCKETS.map(String), '+Inf']) {
      const v = bucket(b)!;
      assert.ok(v >= previous, `bucket ${b} is cumulative`);
      previous = v;
    }
  });
});
