import assert from 'node:assert/strict';
import { generateSigner } from '../../../audit/note.js';
import { settlementMessage, usageTree, verifyUsageLine, type UsageLine } from '../../../chain/modules/bank.js';
import { balance, harness, ISSUER, USERS, VALIDATORS } from './fixtures.js';

const [alice, bob, carol, dave] = USERS as [typeof USERS[0], typeof USERS[0], typeof USERS[0], typeof USERS[0]];

describe('chain/modules/bank', () => {
  it('transfers with decimal-string amounts and refuses overdrafts, numbers, negatives and unknown fields', () => {
    const h = harness();
    h.tx(alice.did, 'bank', 'transfer', { to: bob.did, token: 'NEX', amount: '250' });
    assert.equal(balance(h, alice.did).balances.NEX, '750');
    assert.equal(balance(h, bob.did).balances.NEX, '1250');
    assert.equal(h.code(alice.did, 'bank', 'transfer', { to: bob.did, token: 'NEX', amount: '751' }), 'BANK_INSUFFICIENT_FUNDS');
    assert.equal(h.code(alice.did, 'bank', 'transfer', { to: bob.did, token: 'NEX', amount: 5 }), 'BANK_BAD_ARGS');
    assert.equal(h.code(alice.did, 'bank', 'transfer', { to: bob.did, token: 'NEX', amount: '-5' }), 'BANK_BAD_ARGS');
    assert.equal(h.code(alice.did, 'bank', 'transfer', { to: bob.did, token: 'NEX', amount: '0' }), 'BANK_BAD_ARGS');
    assert.equal(h.code(alice.did, 'bank', 'transfer', { to: bob.did, token: 'XYZ', amount: '1' }), 'BANK_BAD_ARGS');
    assert.equal(h.code(alice.did, 'bank', 'transfer', { to: 'did:key:nope', token: 'NEX', amount: '1' }), 'BANK_BAD_ARGS');
    assert.equal(h.code(alice.did, 'bank', 'transfer', { to: bob.did, token: 'NEX', amount: '1', memo: 'x' }), 'BANK_BAD_ARGS');
    assert.equal(h.code(alice.did, 'bank', 'steal', {}), 'BANK_UNKNOWN_METHOD');
    assert.equal(balance(h, alice.did).balances.NEX, '750');
  });

  it('follows the token rules of genesis: a non-transferable token does not move', () => {
    const h = harness({ bank: { tokens: { FLX: { transferable: false } } } });
    assert.equal(h.code(alice.did, 'bank', 'transfer', { to: bob.did, token: 'FLX', amount: '1' }), 'BANK_TRANSFER_DISABLED');
    assert.equal(h.code(alice.did, 'bank', 'transfer', { to: bob.did, token: 'GEN', amount: '1' }), 'OK');
  });

  it('bonds GEN per role; unbonded stake waits out the delay and cannot move meanwhile', () => {
    const h = harness();
    h.tx(alice.did, 'bank', 'bond', { role: 'notary', amount: '600' });
    assert.equal(balance(h, alice.did).balances.GEN, '400');
    assert.equal(balance(h, alice.did).bonds.notary, '600');
    h.tx(alice.did, 'bank', 'unbond', { role: 'notary', amount: '600' });
    assert.equal(balance(h, alice.did).bonds.notary, '0');
    // The 600 GEN unbonding are neither bonded nor spendable: only the free 400 move.
    assert.equal(h.code(alice.did, 'bank', 'transfer', { to: bob.did, token: 'GEN', amount: '401' }), 'BANK_INSUFFICIENT_FUNDS');
    assert.equal(h.code(alice.did, 'bank', 'bond', { role: 'notary', amount: '401' }), 'BANK_INSUFFICIENT_FUNDS');
    assert.equal(h.code(alice.did, 'bank', 'unbond', { role: 'notary', amount: '1' }), 'BANK_NO_BOND');
    const release = h.height + 5;
    h.advanceTo(release);
    assert.equal(balance(h, alice.did).balances.GEN, '400', 'not released before its height ends');
    h.endBlock();
    assert.equal(balance(h, alice.did).balances.GEN, '1000');
    assert.deepEqual(balance(h, alice.did).pending, []);
  });

  it('keeps bonds at the role minimum and registers a bonded log key once', () => {
    const h = harness({ bank: { minBond: { notary: '50', log: '10', validator: '1' } } });
    assert.equal(h.code(alice.did, 'bank', 'bond', { role: 'notary', amount: '49' }), 'BANK_BOND_TOO_SMALL');
    h.tx(alice.did, 'bank', 'bond', { role: 'notary', amount: '60' });
    assert.equal(h.code(alice.did, 'bank', 'unbond', { role: 'notary', amount: '20' }), 'BANK_BOND_TOO_SMALL');
    assert.equal(h.code(alice.did, 'bank', 'unbond', { role: 'notary', amount: '60' }), 'OK');
    const log = generateSigner('example.com/log', Buffer.alloc(32, 7));
    assert.equal(h.code(bob.did, 'bank', 'bond', { role: 'log', amount: '10' }), 'BANK_BAD_ARGS');
    assert.equal(h.code(bob.did, 'bank', 'bond', { role: 'log', amount: '10', logKey: 'garbage' }), 'BANK_BAD_ARGS');
    h.tx(bob.did, 'bank', 'bond', { role: 'log', amount: '10', logKey: log.verifierKey });
    assert.deepEqual(h.query('bank', 'log', { origin: 'example.com/log' }), { did: bob.did, verifierKey: log.verifierKey });
    assert.equal(h.code(carol.did, 'bank', 'bond', { role: 'log', amount: '10', logKey: log.verifierKey }), 'BANK_LOG_KEY_TAKEN');
    assert.equal(h.code(bob.did, 'bank', 'bond', { role: 'log', amount: '5' }), 'OK', 'a top-up needs no key');
  });

  it('mints AUR only by the issuer and never above the attested reserve', () => {
    const h = harness();
    assert.equal(h.code(ISSUER.did, 'bank', 'mint', { to: alice.did, amount: '1' }), 'BANK_RESERVE_EXCEEDED');
    assert.equal(h.code(alice.did, 'bank', 'attestReserve', { reserve: '1000', ref: 'audit-2026-11' }), 'BANK_NOT_ISSUER');
    h.tx(ISSUER.did, 'bank', 'attestReserve', { reserve: '1000', ref: 'audit-2026-11' });
    assert.equal(h.code(alice.did, 'bank', 'mint', { to: alice.did, amount: '1' }), 'BANK_NOT_ISSUER');
    h.tx(ISSUER.did, 'bank', 'mint', { to: alice.did, amount: '600' });
    h.tx(ISSUER.did, 'bank', 'mint', { to: ISSUER.did, amount: '400' });
    assert.equal(h.code(ISSUER.did, 'bank', 'mint', { to: alice.did, amount: '1' }), 'BANK_RESERVE_EXCEEDED');
    h.tx(ISSUER.did, 'bank', 'burn', { amount: '100' });
    assert.equal(h.code(ISSUER.did, 'bank', 'burn', { amount: '301' }), 'BANK_INSUFFICIENT_FUNDS');
    h.tx(ISSUER.did, 'bank', 'mint', { to: bob.did, amount: '100' });
    const s = h.query('bank', 'supply', {}) as { supply: Record<string, string> };
    assert.equal(s.supply.AUR, '1000');
    h.tx(ISSUER.did, 'bank', 'attestReserve', { reserve: '500', ref: 'audit-2026-12' });
    assert.equal(h.code(ISSUER.did, 'bank', 'mint', { to: bob.did, amount: '1' }), 'BANK_RESERVE_EXCEEDED', 'a lower reserve blocks minting');
  });

  it('gives FLX holders their rate class', () => {
    const h = harness();
    assert.deepEqual(h.query('bank', 'rateClass', { did: alice.did }), { did: alice.did, class: 'priority' });
    h.tx(bob.did, 'bank', 'transfer', { to: alice.did, token: 'FLX', amount: '10' });
    h.tx(carol.did, 'bank', 'transfer', { to: alice.did, token: 'FLX', amount: '10' });
    assert.equal((h.query('bank', 'rateClass', { did: alice.did }) as { class: string }).class, 'priority');
    for (const k of [dave, ...VALIDATORS]) h.tx(k.did, 'bank', 'transfer', { to: alice.did, token: 'FLX', amount: '10' });
    assert.equal((h.query('bank', 'rateClass', { did: alice.did }) as { class: string }).class, 'gold');
    assert.equal((h.query('bank', 'rateClass', { did: bob.did }) as { class: string }).class, 'standard');
    assert.throws(() => h.query('bank', 'rateClass', { did: 'x' }), { code: 'BANK_BAD_ARGS' });
  });

  it('charges a usage report from escrow, records the shortfall, and proves a line against the root', () => {
    const h = harness();
    const operator = carol;
    h.tx(alice.did, 'bank', 'escrowDeposit', { amount: '100' });
    h.tx(dave.did, 'bank', 'escrowDeposit', { amount: '30', payer: bob.did }); // someone else funds bob's escrow
    const lines: UsageLine[] = [
      { payer: alice.did, subject: 'api-key:k1', count: 40, amount: '40' },
      { payer: bob.did, subject: 'nullifier:0x1f2e', count: 50, amount: '50' },
      { payer: alice.did, subject: alice.did, count: 10, amount: '10' },
    ];
    const [event] = h.tx(operator.did, 'bank', 'usageReport', { epoch: 7, lines });
    assert.equal(event!.data.charged, '80');
    assert.deepEqual(event!.data.unpaid, [{ index: 1, short: '20' }]);
    assert.equal(balance(h, operator.did).balances.NEX, String(1000 + 80));
    assert.equal(balance(h, alice.did).escrow, '50');
    assert.equal(balance(h, bob.did).escrow, '0');
    assert.equal(h.code(operator.did, 'bank', 'usageReport', { epoch: 7, lines }), 'BANK_DUPLICATE_REPORT');
    assert.equal(h.code(operator.did, 'bank', 'usageReport', { epoch: 6, lines }), 'BANK_DUPLICATE_REPORT');
    assert.equal(h.code(operator.did, 'bank', 'usageReport', { epoch: 8, lines: [{ ...lines[0], count: -1 }] }), 'BANK_BAD_ARGS');
    const tree = usageTree(lines);
    assert.equal((h.query('bank', 'usageReport', { operator: operator.did, epoch: 7 }) as { root: string }).root, tree.root().toString('hex'));
    verifyUsageLine(h.view, operator.did, 7, lines[1]!, 1, tree.inclusionProof(1));
    assert.throws(() => verifyUsageLine(h.view, operator.did, 7, { ...lines[1]!, count: 5 }, 1, tree.inclusionProof(1)), { code: 'BANK_BAD_USAGE_PROOF' });
    assert.throws(() => verifyUsageLine(h.view, operator.did, 9, lines[1]!, 1, tree.inclusionProof(1)), { code: 'BANK_UNKNOWN_REPORT' });
  });

  it('releases withdrawn escrow after its delay; operators can no longer charge it', () => {
    const h = harness();
    h.tx(alice.did, 'bank', 'escrowDeposit', { amount: '100' });
    h.tx(alice.did, 'bank', 'escrowWithdraw', { amount: '60' });
    assert.equal(h.code(alice.did, 'bank', 'escrowWithdraw', { amount: '41' }), 'BANK_INSUFFICIENT_FUNDS');
    assert.equal(balance(h, alice.did).balances.NEX, '900');
    h.advanceTo(h.height + 4);
    assert.equal(balance(h, alice.did).balances.NEX, '960');
    assert.equal(balance(h, alice.did).escrow, '40');
  });

  describe('mesh settlement', () => {
    function funded() {
      const h = harness();
      h.tx(ISSUER.did, 'bank', 'attestReserve', { reserve: '1000', ref: 'r' });
      for (const k of [alice, bob, carol]) h.tx(ISSUER.did, 'bank', 'mint', { to: k.did, amount: '100' });
      return h;
    }
    const sign = (batch: { epoch: number; transfers: { from: string; to: string; amount: string }[] }, keys: typeof USERS) =>
      keys.map((k) => ({ did: k.did, signature: k.sign(settlementMessage(batch)).toString('base64') }));

    it('applies a signed batch by net amounts, once', () => {
      const h = funded();
      // a owes b 80, b owes c 150, c owes a 20 → nets: a −60, b −70, c +130
      const batch = { epoch: 3, transfers: [
        { from: alice.did, to: bob.did, amount: '80' },
        { from: bob.did, to: carol.did, amount: '150' },
        { from: carol.did, to: alice.did, amount: '20' },
      ] };
      // bob holds only 100 AUR but owes a net 70: the batch works although 150 > 100
      h.tx(dave.did, 'bank', 'settle', { ...batch, signatures: sign(batch, [alice, bob, carol]) });
      assert.deepEqual([alice, bob, carol].map((k) => balance(h, k.did).balances.AUR), ['40', '30', '230']);
      assert.equal(h.code(dave.did, 'bank', 'settle', { ...batch, signatures: sign(batch, [alice, bob, carol]) }), 'BANK_BAD_SETTLEMENT');
    });

    it('refuses a whole batch when a debtor did not sign or cannot pay, changing nothing', () => {
      const h = funded();
      const before = h.snapshot();
      const batch = { epoch: 4, transfers: [
        { from: alice.did, to: bob.did, amount: '50' },
        { from: carol.did, to: bob.did, amount: '101' },
      ] };
      assert.equal(h.code(dave.did, 'bank', 'settle', { ...batch, signatures: sign(batch, [alice, carol]) }), 'BANK_BAD_SETTLEMENT');
      assert.equal(h.code(dave.did, 'bank', 'settle', { ...batch, signatures: sign(batch, [alice]) }), 'BANK_BAD_SETTLEMENT');
      const forged = sign({ ...batch, epoch: 5 }, [alice, carol]);
      assert.equal(h.code(dave.did, 'bank', 'settle', { ...batch, signatures: forged }), 'BANK_BAD_SETTLEMENT');
      assert.deepEqual(h.snapshot(), before);
    });
  });

  it('refuses a malformed genesis', () => {
    assert.throws(() => harness({ bank: { unbondingBlocks: 0 } }), { code: 'BANK_BAD_GENESIS' });
    assert.throws(() => harness({ bank: { rateClasses: [{ name: 'a', minFlx: '1' }, { name: 'b', minFlx: '5' }] } }), { code: 'BANK_BAD_GENESIS' });
    assert.throws(() => harness({ bank: { bogus: 1 } }), { code: 'BANK_BAD_GENESIS' });
  });
});
