import assert from 'node:assert/strict';
import { Balancer } from '../../gateway/upstream/balancer.js';
import type { Upstream } from '../../gateway/upstream/upstream.js';

/** Balancer only reads `inflight` and `healthy()`: plain objects stand in for pooled upstreams. */
function fake(label: string, healthy = true, inflight = 0): Upstream {
  return { label, inflight, healthy: () => healthy } as unknown as Upstream;
}
const counts = (b: Balancer, n: number) => {
  const c = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const u = b.pick(0);
    const k = u === undefined ? 'none' : u.label;
    c.set(k, (c.get(k) ?? 0) + 1);
  }
  return Object.fromEntries(c);
};

describe('gateway/upstream/balancer', () => {
  it('round_robin cycles evenly and skips unhealthy upstreams', () => {
    assert.deepEqual(counts(new Balancer([fake('a'), fake('b'), fake('c')], 'round_robin'), 300), { a: 100, b: 100, c: 100 });
    assert.deepEqual(counts(new Balancer([fake('a'), fake('b', false), fake('c')], 'round_robin'), 300), { a: 150, c: 150 });
  });

  it('least_conn picks the fewest in flight', () => {
    const b = new Balancer([fake('a', true, 5), fake('b', true, 1), fake('c', true, 3)], 'least_conn');
    assert.deepEqual(counts(b, 10), { b: 10 });
    const tie = new Balancer([fake('a', true, 1), fake('b', true, 1)], 'least_conn');
    assert.deepEqual(counts(tie, 10), { a: 5, b: 5 });
  });

  it('first sticks to the first healthy upstream', () => {
    assert.deepEqual(counts(new Balancer([fake('a', false), fake('b'), fake('c')], 'first'), 10), { b: 10 });
  });

  it('random only picks healthy upstreams', () => {
    const c = counts(new Balancer([fake('a'), fake('b', false), fake('c')], 'random'), 600);
    assert.equal(c.b, undefined);
    assert.ok(c.a! > 0 && c.c! > 0);
  });

  it('returns undefined when none is healthy, and honours exclude', () => {
    for (const policy of ['round_robin', 'least_conn', 'random', 'first'] as const) {
      assert.equal(new Balancer([fake('a', false), fake('b', false)], policy).pick(0), undefined, policy);
      const a = fake('a');
      const b = fake('b');
      const bal = new Balancer([a, b], policy);
      for (let i = 0; i < 10; i++) assert.equal(bal.pick(0, a), b, policy);
      assert.equal(new Balancer([a], policy).pick(0, a), undefined, policy);
    }
  });
});
