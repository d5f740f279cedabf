/**
 * Property tests over random transaction sequences: each token's supply equals everything held
 * (balances, bonds, unbonding, escrow, holds) and changes only by AUR mint/burn; no amount is ever
 * negative; GEN follows a reference model exactly, so unbonding stake cannot move before its
 * release height; a settlement batch applies entirely or leaves the state untouched; slashing
 * burns exactly what it does not pay the reporter.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { holdings, settlementMessage, supplyOf } from '../../../chain/modules/bank.js';
import { TOKENS } from '../../../chain/modules/bank/util.js';
import type { ChainKey } from '../../../chain/keys.js';
import { MessageType, signPayload } from '../../../chain/qbft/messages.js';
import { harness, ISSUER, USERS, VALIDATORS } from './fixtures.js';
import type { ModuleHarness } from '../../helpers/chain-state.js';

const ACCOUNTS = [...USERS, ISSUER];
const ROLES = ['validator', 'notary', 'log'] as const;
const UNBONDING = 5;

type Op =
  | { t: 'transfer'; from: number; to: number; token: (typeof TOKENS)[number]; amount: number }
  | { t: 'bond'; who: number; role: 0 | 1; amount: number }
  | { t: 'unbond'; who: number; role: 0 | 1; amount: number }
  | { t: 'escrow'; who: number; amount: number }
  | { t: 'withdraw'; who: number; amount: number }
  | { t: 'attest'; reserve: number }
  | { t: 'mint'; to: number; amount: number }
  | { t: 'burn'; amount: number }
  | { t: 'usage'; op: number; payer: number; amount: number }
  | { t: 'settle'; a: number; b: number; c: number; x: number; y: number; signers: number }
  | { t: 'slash'; v: number; reporter: number }
  | { t: 'end' };

const who = fc.integer({ min: 0, max: ACCOUNTS.length - 1 });
const amt = fc.integer({ min: 1, max: 700 });
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ t: fc.constant('transfer' as const), from: who, to: who, token: fc.constantFrom(...TOKENS), amount: amt }),
  fc.record({ t: fc.constant('bond' as const), who, role: fc.constantFrom(0 as const, 1 as const), amount: amt }),
  fc.record({ t: fc.constant('unbond' as const), who, role: fc.constantFrom(0 as const, 1 as const), amount: fc.integer({ min: 1, max: 150 }) }),
  fc.record({ t: fc.constant('escrow' as const), who, amount: amt }),
  fc.record({ t: fc.constant('withdraw' as const), who, amount: amt }),
  fc.record({ t: fc.constant('attest' as const), reserve: fc.integer({ min: 0, max: 3000 }) }),
  fc.record({ t: fc.constant('mint' as const), to: who, amount: amt }),
  fc.record({ t: fc.constant('burn' as const), amount: amt }),
  fc.record({ t: fc.constant('usage' as const), op: who, payer: who, amount: amt }),
  fc.record({ t: fc.constant('settle' as const), a: who, b: who, c: who, x: amt, y: amt, signers: fc.integer({ min: 0, max: 3 }) }),
  fc.record({ t: fc.constant('slash' as const), v: fc.integer({ min: 0, max: 3 }), reporter: who }),
  { arbitrary: fc.constant({ t: 'end' as const }), weight: 5 },
);

/** The reference model of GEN: free balance, bonds by role, unbonding entries. */
class GenModel {
  free = new Map<string, bigint>(ACCOUNTS.map((k) => [k.did, k === ISSUER ? 0n : 1000n]));
  bonded = new Map<string, bigint>();
  pending: Array<{ did: string; amount: bigint; release: number }> = [];
  /** GEN burnt by slashing (the part not paid to reporters). */
  burnt = 0n;

  bondKey(did: string, role: number): string {
    return `${did}/${role}`;
  }
}

let evidenceHeight = 0;
const prepare = (k: ChainKey, height: number, digest: number): string =>
  Buffer.from(signPayload({ type: MessageType.PREPARE, height, round: 0, digest: Buffer.alloc(32, digest) }, { id: k.did, sign: (d) => k.sign(d) }).bytes).toString('base64');

function run(h: ModuleHarness, o: Op, m: GenModel, epochs: Map<string, number>): void {
  const d = (i: number): string => ACCOUNTS[i]!.did;
  switch (o.t) {
    case 'transfer': {
      const code = h.code(d(o.from), 'bank', 'transfer', { to: d(o.to), token: o.token, amount: String(o.amount) });
      if (o.token === 'GEN') {
        const free = m.free.get(d(o.from))!;
        assert.equal(code, free >= BigInt(o.amount) ? 'OK' : 'BANK_INSUFFICIENT_FUNDS');
        if (code === 'OK') {
          m.free.set(d(o.from), free - BigInt(o.amount));
          m.free.set(d(o.to), m.free.get(d(o.to))! + BigInt(o.amount));
        }
      }
      return;
    }
    case 'bond': {
      const code = h.code(d(o.who), 'bank', 'bond', { role: ROLES[o.role], amount: String(o.amount) });
      const free = m.free.get(d(o.who))!;
      assert.equal(code, free >= BigInt(o.amount) ? 'OK' : 'BANK_INSUFFICIENT_FUNDS');
      if (code === 'OK') {
        m.free.set(d(o.who), free - BigInt(o.amount));
        const k = m.bondKey(d(o.who), o.role);
        m.bonded.set(k, (m.bonded.get(k) ?? 0n) + BigInt(o.amount));
      }
      return;
    }
    case 'unbond': {
      const code = h.code(d(o.who), 'bank', 'unbond', { role: ROLES[o.role], amount: String(o.amount) });
      const k = m.bondKey(d(o.who), o.role);
      const b = m.bonded.get(k) ?? 0n;
      assert.equal(code, b >= BigInt(o.amount) ? 'OK' : 'BANK_NO_BOND');
      if (code === 'OK') {
        m.bonded.set(k, b - BigInt(o.amount));
        m.pending.push({ did: d(o.who), amount: BigInt(o.amount), release: h.height + UNBONDING });
      }
      return;
    }
    case 'escrow':
      h.code(d(o.who), 'bank', 'escrowDeposit', { amount: String(o.amount) });
      return;
    case 'withdraw':
      h.code(d(o.who), 'bank', 'escrowWithdraw', { amount: String(o.amount) });
      return;
    case 'attest':
      assert.equal(h.code(ISSUER.did, 'bank', 'attestReserve', { reserve: String(o.reserve), ref: 'r' }), 'OK');
      return;
    case 'mint': {
      const before = supplyOf(h.view, 'AUR');
      const code = h.code(ISSUER.did, 'bank', 'mint', { to: d(o.to), amount: String(o.amount) });
      assert.ok(code === 'OK' || code === 'BANK_RESERVE_EXCEEDED', code);
      assert.equal(supplyOf(h.view, 'AUR'), before + (code === 'OK' ? BigInt(o.amount) : 0n));
      return;
    }
    case 'burn': {
      const before = supplyOf(h.view, 'AUR');
      const code = h.code(ISSUER.did, 'bank', 'burn', { amount: String(o.amount) });
      assert.equal(supplyOf(h.view, 'AUR'), before - (code === 'OK' ? BigInt(o.amount) : 0n));
      return;
    }
    case 'usage': {
      const epoch = (epochs.get(d(o.op)) ?? 0) + 1;
      epochs.set(d(o.op), epoch);
      const line = { payer: d(o.payer), subject: 'api-key:x', count: o.amount, amount: String(o.amount) };
      assert.equal(h.code(d(o.op), 'bank', 'usageReport', { epoch, lines: [line, line] }), 'OK');
      return;
    }
    case 'settle': {
      const batch = { epoch: h.height, transfers: [
        { from: d(o.a), to: d(o.b), amount: String(o.x) },
        { from: d(o.b), to: d(o.c), amount: String(o.y) },
      ] };
      const keys = [ACCOUNTS[o.a]!, ACCOUNTS[o.b]!].slice(0, o.signers);
      const signatures = keys.length === 0 ? [{ did: d(o.a), signature: Buffer.alloc(64).toString('base64') }] : keys.map((k) => ({ did: k.did, signature: k.sign(settlementMessage(batch)).toString('base64') }));
      const before = h.snapshot();
      const code = h.code(USERS[0]!.did, 'bank', 'settle', { ...batch, signatures });
      if (code !== 'OK') assert.deepEqual(h.snapshot(), before, 'a refused batch changes nothing');
      else assert.ok(o.a !== o.b && o.b !== o.c);
      return;
    }
    case 'slash': {
      // a validator equivocates: its stake is slashed, half to the reporter, the rest burnt
      const height = ++evidenceHeight;
      const v = VALIDATORS[o.v]!;
      const before = supplyOf(h.view, 'GEN');
      const events = h.tx(d(o.reporter), 'court', 'submit', { evidence: { type: 'validator-equivocation', a: prepare(v, height, 1), b: prepare(v, height, 2) } });
      const slashed = events.find((e) => e.type === 'court.slashed')!.data as { slashed: string; reporterPaid: string };
      m.free.set(d(o.reporter), m.free.get(d(o.reporter))! + BigInt(slashed.reporterPaid));
      m.burnt += BigInt(slashed.slashed) - BigInt(slashed.reporterPaid);
      assert.equal(supplyOf(h.view, 'GEN'), before - (BigInt(slashed.slashed) - BigInt(slashed.reporterPaid)));
      return;
    }
    case 'end': {
      h.endBlock();
      const due = m.pending.filter((p) => p.release < h.height);
      m.pending = m.pending.filter((p) => p.release >= h.height);
      for (const p of due) m.free.set(p.did, m.free.get(p.did)! + p.amount);
      return;
    }
  }
}

function checkInvariants(h: ModuleHarness, m: GenModel, initial: Map<string, bigint>): void {
  for (const t of TOKENS) {
    assert.equal(holdings(h.view, t), supplyOf(h.view, t), `${t}: supply equals holdings`);
    const burnt = t === 'GEN' ? m.burnt : 0n;
    if (t !== 'AUR') assert.equal(supplyOf(h.view, t), initial.get(t)! - burnt, `${t}: supply conserved but for slashing`);
  }
  for (const [k, v] of h.state.entries('bank/')) {
    const s = Buffer.from(v).toString();
    assert.ok(!s.startsWith('-') && !s.includes('"amount":"-'), `${k} is not negative`);
  }
  for (const k of ACCOUNTS) {
    const bal = h.query('bank', 'balance', { did: k.did }) as { balances: Record<string, string>; bonds: Record<string, string> };
    assert.equal(bal.balances.GEN, String(m.free.get(k.did)), 'free GEN matches the model');
    for (const r of [0, 1]) assert.equal(bal.bonds[ROLES[r]!], String(m.bonded.get(m.bondKey(k.did, r)) ?? 0n));
  }
}

describe('chain/modules/bank properties', () => {
  it('conserves supply, never goes negative, holds unbonding stake, settles atomically', () => {
    fc.assert(
      fc.property(fc.array(op, { minLength: 10, maxLength: 80, size: 'max' }), (ops) => {
        const h = harness();
        const initial = new Map(TOKENS.map((t) => [t, supplyOf(h.view, t)]));
        const m = new GenModel();
        for (const k of ACCOUNTS) if (k !== ISSUER) m.free.set(k.did, 1000n);
        // validators hold genesis GEN too but are not in the model's accounts: they never act here.
        const epochs = new Map<string, number>();
        for (const o of ops) {
          run(h, o, m, epochs);
          checkInvariants(h, m, initial);
        }
      }),
      { numRuns: 150 },
    );
  });
});
