import assert from 'node:assert/strict';
import v8 from 'node:v8';
import { CageError } from '../../core/errors.js';
import { Exchange } from '../../gateway/exchange.js';
import { orderStages, runStages, type Stage } from '../../gateway/pipeline.js';

const stage = (slot: Stage['slot'], name: string, fn: Stage['handle']): Stage => ({ slot, name, handle: fn });

function run(stages: readonly Stage[], ex = new Exchange()): Promise<{ result: CageError | undefined; sync: boolean }> {
  return new Promise((resolve, reject) => {
    let sync = true;
    runStages(stages, ex, 0, (result) => resolve({ result, sync }), reject);
    sync = false;
  });
}

describe('gateway/pipeline', () => {
  it('orders stages identify → limit → decide → open whatever the registration order', () => {
    const names = orderStages([
      stage('open', 'o', () => undefined),
      stage('decide', 'd', () => undefined),
      stage('identify', 'i', () => undefined),
      stage('limit', 'l', () => undefined),
    ]).map((s) => s.name);
    assert.deepEqual(names, ['i', 'l', 'd', 'o']);
  });

  it('runs an all-synchronous pipeline synchronously (no promise on the allow path)', async () => {
    const seen: string[] = [];
    const { result, sync } = await run([stage('identify', 'a', () => void seen.push('a')), stage('decide', 'b', () => void seen.push('b'))]);
    assert.equal(result, undefined);
    assert.equal(sync, true);
    assert.deepEqual(seen, ['a', 'b']);
  });

  it('stops at the first stage that answers, sync or async, and continues after awaited stages', async () => {
    const seen: string[] = [];
    const deny = new CageError({ code: 'GW_DENIED', message: 'no' });
    const { result, sync } = await run([
      stage('identify', 'a', async (ex) => {
        ex.identity = 'did:key:z6Mk-test';
        seen.push('a');
        return undefined;
      }),
      stage('limit', 'b', (ex) => (ex.identity === '' ? undefined : deny)),
      stage('decide', 'c', () => void seen.push('c')),
    ]);
    assert.equal(result, deny);
    assert.equal(sync, false);
    assert.deepEqual(seen, ['a']);
  });

  it('reports a throwing or rejecting stage to the failure callback', async () => {
    await assert.rejects(run([stage('decide', 'boom', () => { throw new Error('boom'); })]), /boom/);
    await assert.rejects(run([stage('decide', 'boom', () => Promise.reject(new Error('async boom')))]), /async boom/);
  });

  it('keeps one hidden class for every Exchange (V8 map check)', () => {
    v8.setFlagsFromString('--allow-natives-syntax');
    const haveSameMap = new Function('a', 'b', 'return %HaveSameMap(a, b)') as (a: object, b: object) => boolean;
    const a = new Exchange();
    const b = new Exchange();
    b.id = 'x';
    b.headers.push('host', 'h');
    b.status = 200;
    b.route = 'r';
    b.addFlag('yellow');
    b.errorCode = 'GW_NO_ROUTE';
    assert.ok(haveSameMap(a, b));
  });
});
