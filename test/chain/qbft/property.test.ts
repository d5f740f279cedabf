import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import { runChaos } from './chaos.js';

/**
 * QBFT safety and liveness over random byzantine-free schedules: drops, duplicates, random delays
 * (reordering), partitions and crash-restarts during a chaos phase (with or without validator-set
 * changes at fixed heights), then a heal. Default 2000
 * schedules (about 15-20 s); QBFT_PROPERTY_RUNS=20000 for a longer run, QBFT_PROPERTY_SEED to
 * replay one fast-check seed.
 */
const RUNS = Number(process.env.QBFT_PROPERTY_RUNS ?? 2000);
const BYZANTINE_RUNS = Math.max(1, Math.round(RUNS / 7));
const SEED = process.env.QBFT_PROPERTY_SEED === undefined ? undefined : Number(process.env.QBFT_PROPERTY_SEED);

describe('chain/qbft property: random schedules', function () {
  this.timeout(600_000);

  it(`never finalizes two blocks at one height, and finalizes again after heal (${RUNS} schedules)`, () => {
    const params = fc.record({
      seed: fc.integer({ min: 1, max: 0x7fffffff }),
      n: fc.constantFrom(1, 2, 3, 4, 4, 4, 5, 7),
      chaosSteps: fc.integer({ min: 1, max: 30 }),
      dropRate: fc.constantFrom(0, 0.05, 0.2, 0.4, 0.6),
      dupRate: fc.constantFrom(0, 0.1, 0.3),
      maxDelayMs: fc.integer({ min: 1, max: 400 }),
      setChange: fc.boolean(),
    });
    let heights = 0;
    fc.assert(
      fc.property(params, (p) => {
        const r = runChaos(p);
        assert.equal(r.fork, undefined, `fork: ${r.fork}`);
        assert(r.live, `no progress after heal: ${JSON.stringify(r)}`);
        heights += r.finalHeight;
      }),
      { numRuns: RUNS, ...(SEED === undefined ? {} : { seed: SEED }) },
    );
    assert(heights > RUNS, 'the schedules did finalize blocks');
  });

  it(`with f lying validators (conflicting proposals, votes, seals, hidden certificates) stays safe and live (${BYZANTINE_RUNS} schedules)`, () => {
    const params = fc.record({
      seed: fc.integer({ min: 1, max: 0x7fffffff }),
      n: fc.constantFrom(4, 5, 7),
      chaosSteps: fc.integer({ min: 1, max: 20 }),
      dropRate: fc.constantFrom(0, 0.05, 0.2),
      dupRate: fc.constantFrom(0, 0.1),
      maxDelayMs: fc.integer({ min: 1, max: 300 }),
      setChange: fc.boolean(),
      byzantine: fc.constant(2),
    });
    fc.assert(
      fc.property(params, (p) => {
        const r = runChaos(p);
        assert.equal(r.fork, undefined, `fork: ${r.fork}`);
        assert(r.live, `no progress after heal: ${JSON.stringify(r)}`);
      }),
      { numRuns: BYZANTINE_RUNS, ...(SEED === undefined ? {} : { seed: SEED }) },
    );
  });
});
