import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { parseRequestTime, ReplayGuard } from '../../pq/replay.js';
import type { Field } from '../../pq/bhttp.js';
import { expectCode } from './helpers.js';

const T0 = Date.UTC(2026, 0, 15, 12, 0, 0);
const date = (ms: number): Field[] => [['date', new Date(ms).toUTCString()]];

describe('pq/replay: freshness window and replay cache', () => {
  it('parses IMF-fixdate and Unix seconds, refuses the rest', () => {
    assert.equal(parseRequestTime('Thu, 15 Jan 2026 12:00:00 GMT'), T0);
    assert.equal(parseRequestTime(String(T0 / 1000)), T0);
    for (const bad of ['Thursday, 15-Jan-26 12:00:00 GMT', 'Thu Jan 15 12:00:00 2026', 'Thu, 31 Feb 2026 12:00:00 GMT', 'Thu, 15 Jan 2026 25:00:00 GMT', '', '12.5', 'Thu, 15 Jan 2026 12:00:00 UTC']) {
      assert.equal(parseRequestTime(bad), undefined, bad);
    }
  });

  it('accepts a Date within ±window and refuses one outside (PQ_STALE)', () => {
    let now = T0;
    const guard = new ReplayGuard({ windowMs: 30_000, now: () => now });
    guard.check(randomBytes(32), date(T0 - 30_000));
    guard.check(randomBytes(32), date(T0 + 30_000));
    expectCode(() => guard.check(randomBytes(32), date(T0 - 31_000)), 'PQ_STALE');
    expectCode(() => guard.check(randomBytes(32), date(T0 + 31_000)), 'PQ_STALE');
    now += 60_000;
    expectCode(() => guard.check(randomBytes(32), date(T0)), 'PQ_STALE');
  });

  it('refuses the same enc again within the window (PQ_REPLAY), and forgets it once its Date is out of the window', () => {
    let now = T0;
    const guard = new ReplayGuard({ windowMs: 30_000, now: () => now });
    const enc = randomBytes(1120);
    guard.check(enc, date(T0));
    expectCode(() => guard.check(enc, date(T0)), 'PQ_REPLAY');
    expectCode(() => guard.check(Buffer.from(enc), date(T0 + 1000)), 'PQ_REPLAY', 'same enc, another Date');
    guard.check(randomBytes(1120), date(T0));
    now = T0 + 30_000;
    expectCode(() => guard.check(enc, date(T0)), 'PQ_REPLAY', 'last moment of the window');
    now = T0 + 30_001;
    // Now the replay fails the window check instead, and the cache can drop the entry.
    expectCode(() => guard.check(enc, date(T0)), 'PQ_STALE');
    // Sweeps are coarse (at most every window/4): by T0 + 40 s both old entries are gone.
    now = T0 + 40_000;
    guard.check(randomBytes(32), date(now));
    assert.equal(guard.size, 1, 'entries whose window passed were swept');
  });

  it('needs the date field unless requireDate is false; one field only; a custom header works', () => {
    const guard = new ReplayGuard({ windowMs: 1000, now: () => T0 });
    expectCode(() => guard.check(randomBytes(32), []), 'PQ_STALE');
    expectCode(() => guard.check(randomBytes(32), [...date(T0), ...date(T0)]), 'PQ_STALE');
    expectCode(() => guard.check(randomBytes(32), [['date', 'yesterday']]), 'PQ_STALE');
    const lax = new ReplayGuard({ windowMs: 1000, now: () => T0, requireDate: false });
    lax.check(randomBytes(32), []);
    assert.equal(lax.size, 0);
    const custom = new ReplayGuard({ windowMs: 1000, now: () => T0, header: 'cage-sent-at' });
    custom.check(randomBytes(32), [['cage-sent-at', String(T0 / 1000)]]);
    expectCode(() => custom.check(randomBytes(32), date(T0)), 'PQ_STALE');
  });

  it('is bounded: when full of live entries it refuses new requests rather than forget (fail closed)', () => {
    let now = T0;
    const guard = new ReplayGuard({ windowMs: 10_000, maxEntries: 3, now: () => now });
    for (let i = 0; i < 3; i++) guard.check(randomBytes(32), date(T0));
    expectCode(() => guard.check(randomBytes(32), date(T0)), 'PQ_REPLAY');
    now += 10_001;
    guard.check(randomBytes(32), date(now));
    assert.equal(guard.size, 1);
  });

  it('checks its options', () => {
    expectCode(() => new ReplayGuard({ windowMs: 0 }), 'CONFIG_INVALID');
    expectCode(() => new ReplayGuard({ windowMs: 5, window: 3 } as never), 'CONFIG_INVALID');
    expectCode(() => new ReplayGuard({ windowMs: 5, header: 'Date' }), 'CONFIG_INVALID');
  });
});
