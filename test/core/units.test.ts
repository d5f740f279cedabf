import assert from 'node:assert/strict';
import { parseDuration, parseHostPort, parseSize } from '../../core/units.js';

describe('core/units', () => {
  it('parses durations into milliseconds', () => {
    assert.equal(parseDuration('250ms'), 250);
    assert.equal(parseDuration('5s'), 5000);
    assert.equal(parseDuration('1.5s'), 1500);
    assert.equal(parseDuration('2m'), 120_000);
    assert.equal(parseDuration('1h'), 3_600_000);
    assert.equal(parseDuration(42), 42);
    for (const bad of ['5', 's', '-1s', '5 parsecs', '', null, {}, -3, Number.NaN]) assert.equal(parseDuration(bad), undefined, String(bad));
  });

  it('parses sizes into bytes (SI and IEC units)', () => {
    assert.equal(parseSize('512'), 512);
    assert.equal(parseSize('16KiB'), 16384);
    assert.equal(parseSize('10MB'), 10_000_000);
    assert.equal(parseSize('1GiB'), 1024 ** 3);
    assert.equal(parseSize(1024), 1024);
    for (const bad of ['10 furlongs', '-1', 'KiB', 1.5, -1, '1e3']) assert.equal(parseSize(bad), undefined, String(bad));
  });

  it('parses listen addresses', () => {
    assert.deepEqual(parseHostPort('127.0.0.1:8080'), { host: '127.0.0.1', port: 8080 });
    assert.deepEqual(parseHostPort(':80'), { host: '0.0.0.0', port: 80 });
    assert.deepEqual(parseHostPort('[::1]:443'), { host: '::1', port: 443 });
    assert.deepEqual(parseHostPort('localhost:0'), { host: 'localhost', port: 0 });
    for (const bad of ['8080', '1.2.3.4:99999', 'host:', 'a b:1', '::1:80']) assert.equal(parseHostPort(bad), undefined, bad);
  });
});
