// Tests of the load-test runner (loadtest/runner.ts): k6 threshold parsing and evaluation (pure),
// and end-to-end runs of the smoke and websocket scenarios, shrunk with a small scale, against
// in-process servers. Asserts counts and error-rate thresholds only, never wall-clock latency.

import assert from 'node:assert/strict';
import { startEchoServer, type EchoServer } from '../../loadtest/echo-server.js';
import { targetAt } from '../../loadtest/lib/ramping.js';
import {
  Counter,
  MetricRegistry,
  Rate,
  Trend,
  evaluateThreshold,
  evaluateThresholds,
  loadScenarios,
  parseDuration,
  parseThreshold,
  runScenario,
  type ScenarioDef,
} from '../../loadtest/runner.js';

const quiet = (): void => {};

describe('loadtest runner: thresholds', () => {
  it('parses k6 threshold expressions', () => {
    assert.deepEqual(parseThreshold('rate<0.01'), { source: 'rate<0.01', aggregation: 'rate', operator: '<', value: 0.01 });
    assert.deepEqual(parseThreshold('p(95) < 200'), {
      source: 'p(95) < 200',
      aggregation: 'p',
      percentile: 95,
      operator: '<',
      value: 200,
    });
    assert.equal(parseThreshold('p(99.9)<=500').percentile, 99.9);
    assert.equal(parseThreshold('count>0').aggregation, 'count');
    assert.equal(parseThreshold({ threshold: 'avg<100', abortOnFail: true }).aggregation, 'avg');
    for (const op of ['<', '<=', '>', '>=', '==', '===', '!='] as const) {
      assert.equal(parseThreshold(`med${op}1`).operator, op);
    }
  });

  it('rejects malformed expressions', () => {
    for (const bad of ['', 'p95<200', 'rate<', 'median<3', 'p(101)<1', 'rate<<1', 'avg<1ms']) {
      assert.throws(() => parseThreshold(bad), /invalid threshold|percentile/, bad);
    }
  });

  it('evaluates trend aggregations like k6', () => {
    const trend = new Trend();
    for (let i = 1; i <= 100; i++) trend.add(i);
    const check = (expr: string) => evaluateThreshold('t', trend, parseThreshold(expr));
    assert.equal(check('p(95)<96').status, 'pass');
    assert.equal(check('p(95)<95').status, 'fail');
    assert.equal(check('p(95)<96').actual, 95.05);
    assert.equal(check('med==50.5').status, 'pass');
    assert.equal(check('avg==50.5').status, 'pass');
    assert.equal(check('min>=1').status, 'pass');
    assert.equal(check('max<100').status, 'fail');
  });

  it('evaluates rates and counters', () => {
    const rate = new Rate();
    for (let i = 0; i < 200; i++) rate.add(i < 3);
    assert.equal(evaluateThreshold('r', rate, parseThreshold('rate<0.01')).status, 'fail');
    assert.equal(evaluateThreshold('r', rate, parseThreshold('rate<0.02')).status, 'pass');
    const counter = new Counter();
    counter.add(50);
    assert.equal(evaluateThreshold('c', counter, parseThreshold('count>0')).status, 'pass');
    assert.equal(evaluateThreshold('c', counter, parseThreshold('rate>=10'), 5000).actual, 10);
  });

  it('fails thresholds on metrics without samples, and an empty counter counts 0', () => {
    assert.equal(evaluateThreshold('r', new Rate(), parseThreshold('rate<0.01')).status, 'fail');
    assert.equal(evaluateThreshold('t', new Trend(), parseThreshold('p(95)<1')).note, 'no samples');
    assert.equal(evaluateThreshold('c', new Counter(), parseThreshold('count>0')).status, 'fail');
    assert.equal(evaluateThreshold('c', new Counter(), parseThreshold('count==0')).status, 'pass');
  });

  it('rejects aggregations that do not fit the metric type', () => {
    assert.throws(() => evaluateThreshold('r', new Rate(), parseThreshold('p(95)<1')), /does not apply/);
    assert.throws(() => evaluateThreshold('t', new Trend(), parseThreshold('rate<1')), /does not apply/);
  });

  it('with onlyErrors evaluates rate metrics only; unknown metrics fail', () => {
    const registry = new MetricRegistry();
    registry.rate('http_req_failed').add(false);
    registry.trend('http_req_duration').add(10_000);
    const results = evaluateThresholds(
      { http_req_failed: ['rate<0.01'], http_req_duration: ['p(95)<200'], nope: ['count>0'] },
      registry,
      { onlyErrors: true },
    );
    assert.deepEqual(
      results.map((r) => [r.metric, r.status]),
      [
        ['http_req_failed', 'pass'],
        ['http_req_duration', 'skip'],
        ['nope', 'fail'],
      ],
    );
  });

  it('parses k6 durations and interpolates VU targets', () => {
    assert.equal(parseDuration('1m30s'), 90_000);
    assert.equal(parseDuration('250ms'), 250);
    assert.throws(() => parseDuration('10'), /invalid duration/);
    const stages = [
      { durationMs: 1000, target: 10 },
      { durationMs: 1000, target: 0 },
    ];
    assert.equal(targetAt(0, stages, 0), 0);
    assert.equal(targetAt(0, stages, 500), 5);
    assert.equal(targetAt(0, stages, 1000), 10);
    assert.equal(targetAt(0, stages, 1500), 5);
    assert.equal(targetAt(0, stages, 5000), 0);
  });

  it('loads the shared scenarios file with every required scenario', () => {
    const defs = loadScenarios();
    for (const name of ['smoke', 'average', 'spike', 'websocket']) assert.ok(defs.has(name), name);
    assert.equal(defs.get('websocket')!.kind, 'ws');
  });
});

describe('loadtest runner: end to end', function () {
  this.timeout(30_000);
  const defs = loadScenarios();
  const scenario = (name: string): ScenarioDef => defs.get(name)!;
  const servers: EchoServer[] = [];
  after(async () => {
    await Promise.all(servers.map((s) => s.close()));
  });
  const start = async (options: Parameters<typeof startEchoServer>[0]): Promise<EchoServer> => {
    const server = await startEchoServer(options);
    servers.push(server);
    return server;
  };

  it('smoke passes its error-rate thresholds against a healthy server', async () => {
    const server = await start({ requestId: true });
    const result = await runScenario(scenario('smoke'), { baseUrl: server.url, scale: 0.1, onlyErrors: true, log: quiet });
    assert.ok(result.summary.count > 0, 'requests were made');
    assert.equal(result.summary.failureRate, 0);
    const rated = result.thresholds.filter((t) => t.status !== 'skip');
    assert.ok(rated.some((t) => t.metric === 'http_req_failed'));
    assert.ok(rated.every((t) => t.status === 'pass'), JSON.stringify(rated));
    assert.ok(result.passed);
  });

  it('websocket gets every echo and passes its error-rate thresholds', async () => {
    const server = await start({});
    const result = await runScenario(scenario('websocket'), { baseUrl: server.url, scale: 0.1, onlyErrors: true, log: quiet });
    assert.ok(result.summary.count > 0, 'sessions were opened');
    assert.equal(result.summary.messages, result.summary.count * (scenario('websocket').messages ?? 10));
    assert.ok(result.metrics.trend('ws_msg_rtt').samples > 0);
    assert.ok(result.passed, JSON.stringify(result.thresholds));
  });

  it('fails http_req_failed when the server answers 500', async () => {
    const server = await start({ status: 500, requestId: true });
    const result = await runScenario(scenario('smoke'), { baseUrl: server.url, scale: 0.1, onlyErrors: true, log: quiet });
    assert.ok(result.summary.count > 0);
    const failed = result.thresholds.find((t) => t.metric === 'http_req_failed');
    assert.equal(failed?.status, 'fail');
    assert.equal(failed?.actual, 1);
    assert.equal(result.passed, false);
    assert.equal(result.errors['HTTP 500'], result.summary.count);
  });

  it('fails the checks threshold when x-request-id is missing', async () => {
    const server = await start({ requestId: false });
    const result = await runScenario(scenario('smoke'), { baseUrl: server.url, scale: 0.1, onlyErrors: true, log: quiet });
    assert.equal(result.thresholds.find((t) => t.metric === 'http_req_failed')?.status, 'pass');
    assert.equal(result.thresholds.find((t) => t.metric === 'checks')?.status, 'fail');
  });

  it('fails when nothing listens, and stops by itself', async () => {
    const server = await start({});
    const { url } = server;
    await server.close();
    servers.pop();
    const result = await runScenario(scenario('websocket'), { baseUrl: url, scale: 0.05, onlyErrors: true, log: quiet });
    assert.ok(result.summary.count > 0);
    assert.equal(result.thresholds.find((t) => t.metric === 'ws_session_failed')?.status, 'fail');
  });
});
