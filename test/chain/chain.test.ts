import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isCageError, CageError } from '../../core/errors.js';
import { decodeBlock, encodeBlock } from '../../chain/block.js';
import { Chain, parseGenesis } from '../../chain/chain.js';
import { Mempool } from '../../chain/mempool.js';
import { VALIDATORS_KEY, type ChainModule } from '../../chain/module.js';
import { defaultModules } from '../../chain/modules/index.js';
import { MemoryState, nextStateRoot, Overlay, readNonce, ZERO_HASH } from '../../chain/state.js';
import { CHAIN_ID, genesisFor, key, newChain, produce, tx } from './helpers.js';

/** A test module: `put {k, v}` writes then optionally throws; `boom` always throws. */
const kvModule: ChainModule = {
  name: 'kv',
  initGenesis() {},
  deliverTx(state, _ctx, method, args) {
    const a = args as { k: string; v: string; fail?: boolean };
    if (method === 'put') {
      state.set(`kv/${a.k}`, Buffer.from(a.v));
      if (a.fail === true) throw new CageError({ code: 'CHAIN_BAD_ARGS', message: 'asked to fail' });
      return [{ type: 'kv.put', data: { k: a.k } }];
    }
    throw new TypeError('not a CageError');
  },
  query(state, _m, params) {
    const v = state.get(`kv/${(params as { k: string }).k}`);
    return v === undefined ? null : Buffer.from(v).toString();
  },
};

describe('chain/state', () => {
  it('overlays: writes visible inside, dropped on rollback, merged on commit; entries sorted', () => {
    const base = new MemoryState();
    base.apply(new Map([['a/2', Buffer.from('2')], ['a/1', Buffer.from('1')], ['b/1', Buffer.from('x')]]));
    const block = new Overlay(base);
    const t1 = new Overlay(block);
    t1.set('a/0', Buffer.from('0'));
    t1.delete('a/2');
    assert.deepEqual([...t1.entries('a/')].map(([k]) => k), ['a/0', 'a/1']);
    // t1 dropped: nothing reaches the block
    assert.equal(block.get('a/0'), undefined);
    const t2 = new Overlay(block);
    t2.set('a/3', Buffer.from('3'));
    t2.commitTo(block);
    assert.deepEqual([...block.entries('a/')].map(([k]) => k), ['a/1', 'a/2', 'a/3']);
    assert.equal(base.get('a/3'), undefined);
  });

  it('state root: same writes in any order give the same root; any difference changes it', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string({ maxLength: 8 }), fc.option(fc.string({ maxLength: 8 }))), (d) => {
        const entries = Object.entries(d).map(([k, v]) => [k, v === null ? null : Buffer.from(v)] as [string, Buffer | null]);
        const r1 = nextStateRoot(ZERO_HASH, new Map(entries));
        const r2 = nextStateRoot(ZERO_HASH, new Map([...entries].reverse()));
        assert.ok(r1.equals(r2));
        const changed = new Map(entries);
        changed.set('\u0000extra', Buffer.from('x'));
        assert.ok(!nextStateRoot(ZERO_HASH, changed).equals(r1));
      }),
      { numRuns: 200 },
    );
  });
});

describe('chain/block', () => {
  it('hostile block bytes decode or throw CHAIN_INVALID_BLOCK / CHAIN_BAD_TX only', () => {
    const alice = key(1);
    const b = encodeBlock(
      { height: 5, parentHash: Buffer.alloc(32, 1), timestamp: 9, proposer: alice.did, txRoot: Buffer.alloc(32), resultsRoot: Buffer.alloc(32), stateRoot: Buffer.alloc(32) },
      [tx(alice, 0, 'kv', 'put', { k: 'a', v: 'b' })],
    );
    assert.ok(decodeBlock(b.bytes).hash.equals(b.hash));
    fc.assert(
      fc.property(fc.nat({ max: b.bytes.length - 1 }), fc.integer({ min: 0, max: 255 }), fc.nat({ max: b.bytes.length }), (i, v, cut) => {
        const m = Buffer.from(b.bytes);
        m[i] = v;
        for (const input of [m, b.bytes.subarray(0, cut)]) {
          try {
            decodeBlock(input);
          } catch (e) {
            assert.ok(isCageError(e, 'CHAIN_INVALID_BLOCK') || isCageError(e, 'CHAIN_BAD_TX'), String(e));
          }
        }
      }),
      { numRuns: 1500 },
    );
  });
});

describe('chain/mempool', () => {
  it('orders per sender by nonce, refuses duplicates, a taken nonce and overflow', () => {
    const [a, b] = [key(1), key(2)];
    const pool = new Mempool({ maxTxs: 4, maxPerSender: 3 });
    pool.add(tx(a, 1, 'kv', 'put', {}));
    pool.add(tx(a, 0, 'kv', 'put', {}));
    pool.add(tx(b, 0, 'kv', 'put', {}));
    assert.throws(() => pool.add(tx(a, 0, 'kv', 'put', {})), (e) => isCageError(e, 'CHAIN_DUPLICATE_TX'));
    assert.throws(() => pool.add(tx(a, 0, 'kv', 'put', { other: 1 })), (e) => isCageError(e, 'CHAIN_BAD_NONCE'));
    pool.add(tx(a, 3, 'kv', 'put', {}));
    assert.throws(() => pool.add(tx(b, 1, 'kv', 'put', {})), (e) => isCageError(e, 'CHAIN_POOL_FULL'));
    const picked = pool.select(10, () => 0);
    // a: 0, 1 (3 waits for 2); b: 0
    assert.deepEqual(picked.map((t) => `${t.sender === a.did ? 'a' : 'b'}${t.nonce}`), ['a0', 'a1', 'b0']);
    pool.prune(picked, (s) => (s === a.did ? 2 : 1));
    assert.equal(pool.size, 1);
  });
});

describe('chain/chain: execution', () => {
  const [v1, alice] = [key(10), key(1)];
  const modules = [...defaultModules(), kvModule];

  it('checks transactions before the pool with distinct codes', () => {
    const chain = newChain([v1], { modules });
    chain.submit(tx(alice, 0, 'kv', 'put', { k: 'a', v: '1' }).bytes);
    const cases: [Uint8Array, string][] = [
      [Buffer.from('junk'), 'CHAIN_BAD_TX'],
      [tx(alice, 1, 'kv', 'put', {}, 'other-chain').bytes, 'CHAIN_WRONG_CHAIN'],
      [tx(alice, 1, 'nosuch', 'put', {}).bytes, 'CHAIN_UNKNOWN_MODULE'],
      [tx(alice, 0, 'kv', 'put', { k: 'a', v: '1' }).bytes, 'CHAIN_DUPLICATE_TX'],
      [tx(alice, 0, 'kv', 'put', { k: 'b', v: '1' }).bytes, 'CHAIN_BAD_NONCE'],
      [tx(alice, 1_000_000, 'kv', 'put', {}).bytes, 'CHAIN_BAD_NONCE'],
    ];
    const forged = Buffer.from(tx(alice, 1, 'kv', 'put', {}).bytes);
    forged[forged.length - 1] ^= 1;
    cases.push([forged, 'CHAIN_BAD_TX_SIGNATURE']);
    for (const [bytes, code] of cases) assert.throws(() => chain.submit(bytes), (e) => isCageError(e) && e.code === code, code);
  });

  it('a failing transaction is recorded with its code, its writes rolled back, its nonce consumed', () => {
    const chain = newChain([v1], { modules });
    chain.submit(tx(alice, 0, 'kv', 'put', { k: 'a', v: '1' }).bytes);
    chain.submit(tx(alice, 1, 'kv', 'put', { k: 'b', v: '2', fail: true }).bytes);
    chain.submit(tx(alice, 2, 'kv', 'boom', {}).bytes);
    const exec = produce(chain);
    assert.deepEqual(exec.results.map((r) => r.code), ['OK', 'CHAIN_BAD_ARGS', 'CHAIN_BAD_ARGS']);
    assert.equal(chain.query('kv', 'get', { k: 'a' }), '1');
    assert.equal(chain.query('kv', 'get', { k: 'b' }), null);
    assert.equal(readNonce(chain.state, alice.did), 3);
    assert.equal(chain.mempool.size, 0);
  });

  it('validators re-execute: the same block is valid on a second chain, a tampered one is not', () => {
    const proposer = newChain([v1], { modules });
    const validator = newChain([v1], { modules });
    proposer.submit(tx(alice, 0, 'kv', 'put', { k: 'a', v: '1' }).bytes);
    const block = proposer.createBlock(1);
    assert.equal(validator.validateBlock(block.bytes, 1), null);
    assert.equal(validator.validateBlock(block.bytes, 2)?.code, 'CHAIN_INVALID_BLOCK');
    const h = block.header;
    const variants = [
      { ...h, stateRoot: Buffer.alloc(32, 7) },
      { ...h, resultsRoot: Buffer.alloc(32, 7) },
      { ...h, txRoot: Buffer.alloc(32, 7) },
      { ...h, parentHash: Buffer.alloc(32, 7) },
      { ...h, timestamp: h.timestamp + 3_600_000 },
    ];
    for (const v of variants) {
      const bad = encodeBlock(v, block.txs);
      assert.equal(validator.validateBlock(bad.bytes, 1)?.code, 'CHAIN_INVALID_BLOCK');
    }
    // a tx with a skipped nonce makes the whole block invalid
    const gap = encodeBlock(h, [tx(alice, 5, 'kv', 'put', { k: 'a', v: '1' })]);
    assert.equal(validator.validateBlock(gap.bytes, 1)?.code, 'CHAIN_INVALID_BLOCK');
    // committing the valid block gives both chains the same head
    proposer.commit(proposer.executionFor(block.bytes));
    validator.commit(validator.executionFor(block.bytes));
    assert.ok(proposer.head.stateRoot.equals(validator.head.stateRoot));
    assert.ok(proposer.head.hash.equals(validator.head.hash));
  });

  it('validator votes: a majority of the current set changes the set from the next block', () => {
    const [a, b, c] = [key(21), key(22), key(23)];
    const d = key(24);
    const chain = newChain([a, b, c], { self: a });
    chain.submit(tx(a, 0, 'validators', 'vote', { action: 'add', validator: d.did }).bytes);
    chain.submit(tx(alice, 0, 'validators', 'vote', { action: 'add', validator: alice.did }).bytes);
    let exec = produce(chain);
    assert.deepEqual(exec.results.map((r) => r.code), ['OK', 'CHAIN_VOTE_REFUSED']);
    assert.equal(chain.validators.length, 3);
    chain.submit(tx(b, 0, 'validators', 'vote', { action: 'add', validator: d.did }).bytes);
    exec = produce(chain);
    assert.deepEqual(chain.validators, [a.did, b.did, c.did, d.did]);
    assert.deepEqual(JSON.parse(Buffer.from(chain.state.get(VALIDATORS_KEY)!).toString()), chain.validators);
    // removal needs 3 of 4
    chain.submit(tx(a, 1, 'validators', 'vote', { action: 'remove', validator: c.did }).bytes);
    chain.submit(tx(b, 1, 'validators', 'vote', { action: 'remove', validator: c.did }).bytes);
    produce(chain);
    assert.equal(chain.validators.length, 4);
    chain.submit(tx(d, 0, 'validators', 'vote', { action: 'remove', validator: c.did }).bytes);
    produce(chain);
    assert.deepEqual(chain.validators, [a.did, b.did, d.did]);
    assert.equal(exec.results[0]!.code, 'OK');
  });

  it('genesis: unknown keys, bad validators and duplicates are CHAIN_BAD_GENESIS', () => {
    const ok = { chainId: CHAIN_ID, timestamp: 0, validators: [v1.did] };
    for (const g of [null, { ...ok, extra: 1 }, { ...ok, validators: [] }, { ...ok, validators: ['did:web:x'] }, { ...ok, validators: [v1.did, v1.did] }, { ...ok, consensus: { blockPeriodMs: 0 } }]) {
      assert.throws(() => parseGenesis(g), (e) => isCageError(e, 'CHAIN_BAD_GENESIS'), JSON.stringify(g));
    }
    assert.ok(new Chain({ genesis: genesisFor([v1]), modules: defaultModules(), now: Date.now }).genesisExecution().block.hash.length === 32);
  });
});
