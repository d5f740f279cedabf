import assert from 'node:assert/strict';
import pino from 'pino';
import { Exchange } from '../../gateway/exchange.js';
import { MAX_REPORT_LINES, UsageMeter, type UsageLine } from '../../gateway/metering.js';

const OWNER = 'did:key:z6MkOwner';
const HOUR = 3_600_000;

function ex(kind: Exchange['identityKind'], identity: string, time: number, status = 200, errorCode = ''): Exchange {
  const e = new Exchange();
  e.identityKind = kind;
  e.identity = identity;
  e.time = time;
  e.status = status;
  e.errorCode = errorCode as Exchange['errorCode'];
  return e;
}

describe('gateway/metering: usage per identity per epoch', () => {
  const logger = pino({ level: 'silent' });

  it('counts answered exchanges per (payer, subject) and prices them; refusals and aborted exchanges are free', async () => {
    let now = 10 * HOUR + 5;
    const posted: Array<[number, UsageLine[]]> = [];
    const m = new UsageMeter({ epochMs: HOUR, price: 3n, payer: OWNER, payers: new Map([['api-key:ci', 'did:key:z6MkCi']]), didPaysSelf: true }, async (e, l) => void posted.push([e, l]), logger, () => now);
    const t = 10 * HOUR + 1;
    for (let i = 0; i < 4; i++) m.record(ex('api-key', 'ci', t));
    m.record(ex('did', 'did:key:z6MkAlice', t));
    m.record(ex('zk', 'zk:123', t));
    m.record(ex('zk', 'zk:456', t));
    m.record(ex('', '', t));
    m.record(ex('api-key', 'ci', t, 403, 'POLICY_DENIED'));
    m.record(ex('api-key', 'ci', t, 499));
    await m.flush();
    assert.equal(posted.length, 0, 'the running epoch is not posted');
    now = 11 * HOUR;
    await m.flush();
    assert.equal(posted.length, 1);
    assert.equal(posted[0]![0], 10);
    assert.deepEqual(posted[0]![1], [
      { payer: 'did:key:z6MkCi', subject: 'api-key:ci', count: 4, amount: '12' },
      { payer: 'did:key:z6MkAlice', subject: 'did:key:z6MkAlice', count: 1, amount: '3' },
      { payer: OWNER, subject: 'anonymous', count: 1, amount: '3' },
      { payer: OWNER, subject: 'zk:123', count: 1, amount: '3' },
      { payer: OWNER, subject: 'zk:456', count: 1, amount: '3' },
    ]);
    await m.flush();
    assert.equal(posted.length, 1, 'a posted epoch is not posted again');
  });

  it('keeps an epoch whose post failed and posts it at the next flush', async () => {
    let fail = true;
    const posted: number[] = [];
    const m = new UsageMeter({ epochMs: HOUR, price: 1n, payer: OWNER, payers: new Map(), didPaysSelf: false }, async (e) => {
      if (fail) throw new Error('chain unreachable');
      posted.push(e);
    }, logger, () => 5 * HOUR);
    m.record(ex('api-key', 'a', 3 * HOUR));
    m.record(ex('api-key', 'a', 4 * HOUR));
    await m.flush();
    assert.deepEqual(posted, []);
    fail = false;
    await m.flush();
    assert.deepEqual(posted, [3, 4]);
  });

  it('merges the smallest subjects of each payer so a report stays within one transaction', () => {
    const m = new UsageMeter({ epochMs: HOUR, price: 2n, payer: OWNER, payers: new Map(), didPaysSelf: false }, async () => undefined, logger, () => 0);
    for (let i = 0; i < MAX_REPORT_LINES + 100; i++) for (let j = 0; j <= i % 3; j++) m.record(ex('api-key', `k${i}`, 0));
    const lines = m.linesOf(0);
    assert.ok(lines.length <= MAX_REPORT_LINES);
    const total = lines.reduce((s, l) => s + l.count, 0);
    let expected = 0;
    for (let i = 0; i < MAX_REPORT_LINES + 100; i++) expected += (i % 3) + 1;
    assert.equal(total, expected, 'no request is lost in the merge');
    assert.match(lines.at(-1)!.subject, /^rest:\d+$/);
    assert.equal(lines.reduce((s, l) => s + BigInt(l.amount), 0n), BigInt(expected) * 2n);
  });
});
