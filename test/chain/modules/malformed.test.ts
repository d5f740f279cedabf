/**
 * Hostile input: random JSON as any method's args, and real evidence with one character changed,
 * always ends in a CageError of the module's own family (never a TypeError, never a state change).
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isCageError } from '../../../core/errors.js';
import { TestLog } from '../../notary/helpers.js';
import { harness, USERS } from './fixtures.js';

const METHODS: Record<string, string[]> = {
  bank: ['transfer', 'bond', 'unbond', 'escrowDeposit', 'escrowWithdraw', 'attestReserve', 'mint', 'burn', 'usageReport', 'settle', 'nope'],
  court: ['submit', 'vote', 'answer', 'nope'],
  gov: ['propose', 'vote', 'nope'],
};
const PREFIX: Record<string, RegExp> = { bank: /^BANK_/, court: /^(COURT|BANK)_/, gov: /^GOV_/ };

function codeOf(f: () => unknown): string {
  try {
    f();
    return 'OK';
  } catch (err) {
    assert.ok(isCageError(err), `not a CageError: ${String(err)}`);
    return err.code;
  }
}

describe('chain/modules malformed input', () => {
  it('refuses random JSON args to every method with the module’s codes, changing nothing', () => {
    const h = harness();
    const before = h.snapshot();
    fc.assert(
      fc.property(fc.constantFrom(...Object.keys(METHODS)), fc.nat(20), fc.jsonValue(), (module, i, args) => {
        const methods = METHODS[module]!;
        const code = codeOf(() => h.tx(USERS[0]!.did, module, methods[i % methods.length]!, args));
        assert.match(code, PREFIX[module]!);
      }),
      { numRuns: 400 },
    );
    // the same arbitrary args as queries
    fc.assert(
      fc.property(fc.constantFrom('balance', 'rateClass', 'usageReport', 'log', 'case', 'notary', 'proposal'), fc.jsonValue(), (method, params) => {
        const module = ['case', 'notary'].includes(method) ? 'court' : method === 'proposal' ? 'gov' : 'bank';
        const code = codeOf(() => h.query(module, method, params));
        assert.ok(code === 'OK' || PREFIX[module]!.test(code), code);
      }),
      { numRuns: 200 },
    );
    assert.deepEqual(h.snapshot(), before);
  });

  it('refuses log-fork evidence with any one character changed', () => {
    const h = harness();
    const log = new TestLog('example.com/log', 5);
    const fork = new TestLog('example.com/log', 5, 'forged ');
    h.tx(USERS[0]!.did, 'bank', 'bond', { role: 'log', amount: '200', logKey: log.verifier.verifierKey });
    const a = log.checkpoint(4);
    const b = fork.checkpoint(4);
    fc.assert(
      fc.property(fc.nat(a.length - 1), fc.integer({ min: 32, max: 126 }), (pos, ch) => {
        const mutated = a.slice(0, pos) + String.fromCharCode(ch) + a.slice(pos + 1);
        const code = codeOf(() => h.tx(USERS[1]!.did, 'court', 'submit', { evidence: { type: 'log-fork', a: mutated, b } }));
        if (mutated === a) return;
        assert.ok(['COURT_BAD_EVIDENCE', 'COURT_UNKNOWN_KEY'].includes(code), code);
      }),
      { numRuns: 300 },
    );
  });
});
