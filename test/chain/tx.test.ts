import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isCageError } from '../../core/errors.js';
import { decodeTransaction, MAX_TX_BYTES, signTransaction, verifyTransaction } from '../../chain/tx.js';
import { CHAIN_ID, key } from './helpers.js';

describe('chain/tx', () => {
  const alice = key(1);

  it('round-trips: decode(encode(tx)) gives the same fields, bytes and hash', () => {
    fc.assert(
      fc.property(fc.nat({ max: 2 ** 40 }), fc.jsonValue(), fc.nat({ max: 1e9 }), (nonce, args, fee) => {
        const tx = signTransaction({ chainId: CHAIN_ID, nonce, module: 'bank', method: 'transfer', args, fee }, alice);
        const back = decodeTransaction(tx.bytes);
        assert.equal(back.sender, alice.did);
        assert.equal(back.nonce, nonce);
        assert.equal(back.fee, fee);
        assert.deepEqual(back.args, JSON.parse(JSON.stringify(args ?? null)));
        assert.ok(back.hash.equals(tx.hash));
        verifyTransaction(back, CHAIN_ID);
      }),
      { numRuns: 200 },
    );
  });

  it('refuses a tampered transaction (CHAIN_BAD_TX_SIGNATURE) and another chain id (CHAIN_WRONG_CHAIN)', () => {
    const tx = signTransaction({ chainId: CHAIN_ID, nonce: 0, module: 'anchor', method: 'submit', args: { a: 1 } }, alice);
    const bytes = Buffer.from(tx.bytes);
    bytes[bytes.length - 70] ^= 1; // inside the fee field
    assert.throws(() => verifyTransaction(decodeTransaction(bytes), CHAIN_ID), (e) => isCageError(e, 'CHAIN_BAD_TX_SIGNATURE'));
    assert.throws(() => verifyTransaction(tx, 'other'), (e) => isCageError(e, 'CHAIN_WRONG_CHAIN'));
  });

  it('refuses bad field values at signing', () => {
    for (const f of [
      { chainId: '', nonce: 0, module: 'bank', method: 'x', args: null },
      { chainId: CHAIN_ID, nonce: -1, module: 'bank', method: 'x', args: null },
      { chainId: CHAIN_ID, nonce: 0, module: 'Bank', method: 'x', args: null },
      { chainId: CHAIN_ID, nonce: 0, module: 'bank', method: 'a.b', args: null },
      { chainId: CHAIN_ID, nonce: 0, module: 'bank', method: 'x', args: 'y'.repeat(MAX_TX_BYTES) },
    ]) {
      assert.throws(() => signTransaction(f, alice), (e) => isCageError(e, 'CHAIN_BAD_TX'), JSON.stringify(f).slice(0, 80));
    }
  });

  it('decodes hostile bytes only to a transaction or CHAIN_BAD_TX, never another throw', () => {
    const good = signTransaction({ chainId: CHAIN_ID, nonce: 7, module: 'bank', method: 'transfer', args: { to: 'x' } }, alice).bytes;
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }), fc.tuple(fc.nat({ max: good.length - 1 }), fc.integer({ min: 0, max: 255 })).map(([i, v]) => {
        const b = Buffer.from(good);
        b[i] = v;
        return b;
      }), fc.nat({ max: good.length }).map((n) => good.subarray(0, n))), (bytes) => {
        try {
          decodeTransaction(bytes);
        } catch (e) {
          assert.ok(isCageError(e, 'CHAIN_BAD_TX'), String(e));
        }
      }),
      { numRuns: 2000 },
    );
    assert.throws(() => decodeTransaction(Buffer.concat([good, Buffer.from([0])])), (e) => isCageError(e, 'CHAIN_BAD_TX'));
    assert.throws(() => decodeTransaction(Buffer.alloc(MAX_TX_BYTES + 1)), (e) => isCageError(e, 'CHAIN_BAD_TX'));
  });
});
