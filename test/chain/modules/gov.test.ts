import assert from 'node:assert/strict';
import { courtParams } from '../../../chain/modules/court.js';
import { balance, harness, key, USERS, VALIDATORS } from './fixtures.js';
import type { ModuleHarness } from '../../helpers/chain-state.js';

const [alice, bob] = USERS as [typeof USERS[0], typeof USERS[0]];

/** Proposes `actions` as validator 0, has `yes` validators vote yes, and runs past the window. */
function pass(h: ModuleHarness, actions: unknown[], yes = 3): { id: number; status: string; error?: string } {
  const [e] = h.tx(VALIDATORS[0]!.did, 'gov', 'propose', { title: 'change', actions });
  const id = e!.data.id as number;
  for (const v of VALIDATORS.slice(0, yes)) h.tx(v.did, 'gov', 'vote', { id, choice: 'yes' });
  h.advanceTo((e!.data.endHeight as number) + 1);
  return h.query('gov', 'proposal', { id }) as { id: number; status: string; error?: string };
}

describe('chain/modules/gov', () => {
  it('changes the slashing fraction by a bonded vote, executed in endBlock when the window closes', () => {
    const h = harness();
    const [e] = h.tx(VALIDATORS[0]!.did, 'gov', 'propose', { title: 'slash harder', actions: [{ type: 'param', module: 'court', path: 'slashBps', value: 2500 }] });
    const id = e!.data.id as number;
    for (const v of VALIDATORS.slice(0, 3)) h.tx(v.did, 'gov', 'vote', { id, choice: 'yes' });
    h.tx(VALIDATORS[3]!.did, 'gov', 'vote', { id, choice: 'no' });
    h.advanceTo(e!.data.endHeight as number);
    assert.equal(courtParams(h.view).slashBps, 1000, 'nothing before the window closes');
    const events = h.endBlock();
    assert.ok(events.some((x) => x.type === 'gov.executed'));
    assert.equal(courtParams(h.view).slashBps, 2500);
    assert.equal((h.query('gov', 'proposal', { id }) as { status: string }).status, 'passed');
  });

  it('applies token rules, fees, validator changes, the notary quorum and policy bundle hashes', () => {
    const h = harness();
    const hash = 'ab'.repeat(32);
    const newValidator = key(50);
    const add = [{ type: 'validator', action: 'add', did: newValidator.did }];
    assert.equal(h.code(VALIDATORS[0]!.did, 'gov', 'propose', { title: 'unbonded', actions: add }), 'GOV_BAD_PROPOSAL');
    h.tx(alice.did, 'bank', 'transfer', { to: newValidator.did, token: 'GEN', amount: '100' });
    h.tx(newValidator.did, 'bank', 'bond', { role: 'validator', amount: '100' });
    const p = pass(h, [
      { type: 'param', module: 'bank', path: 'tokens.NEX.transferable', value: false },
      { type: 'param', module: 'court', path: 'caseDeposit', value: '25' },
      { type: 'validator', action: 'add', did: newValidator.did },
      { type: 'validator', action: 'remove', did: VALIDATORS[3]!.did },
      { type: 'notaryQuorum', k: 2 },
      { type: 'policyBundle', name: 'default', hash },
    ]);
    assert.equal(p.status, 'passed');
    assert.equal(h.code(alice.did, 'bank', 'transfer', { to: bob.did, token: 'NEX', amount: '1' }), 'BANK_TRANSFER_DISABLED');
    assert.equal(courtParams(h.view).caseDeposit, '25');
    assert.deepEqual(h.validators, [...VALIDATORS.slice(0, 3).map((v) => v.did), newValidator.did]);
    assert.deepEqual(h.query('gov', 'policy', { name: 'default' }), { name: 'default', hash });
    assert.equal((h.query('gov', 'params', {}) as { notaryQuorum: number }).notaryQuorum, 2);
  });

  it('refuses bad proposals at once: unknown parameter, refused value, windows beyond unbonding, too small a set', () => {
    const h = harness();
    const propose = (actions: unknown[]) => h.code(VALIDATORS[0]!.did, 'gov', 'propose', { title: 't', actions });
    assert.equal(propose([{ type: 'param', module: 'court', path: 'slashBsp', value: 1 }]), 'GOV_BAD_PROPOSAL');
    assert.equal(propose([{ type: 'param', module: 'court', path: 'slashBps', value: 20_000 }]), 'GOV_BAD_PROPOSAL');
    assert.equal(propose([{ type: 'param', module: 'bank', path: 'settlementIssuer', value: 'me' }]), 'GOV_BAD_PROPOSAL');
    assert.equal(propose([{ type: 'param', module: 'gov', path: 'votingBlocks', value: 6 }]), 'GOV_BAD_PROPOSAL', 'unbonding is 5 blocks');
    assert.equal(propose([{ type: 'validator', action: 'remove', did: VALIDATORS[0]!.did }, { type: 'validator', action: 'remove', did: VALIDATORS[1]!.did }]), 'GOV_BAD_PROPOSAL');
    assert.equal(propose([{ type: 'policyBundle', name: 'x', hash: 'AB' }]), 'GOV_BAD_PROPOSAL');
    assert.equal(propose([{ type: 'launch' }]), 'GOV_BAD_PROPOSAL');
    assert.equal(propose([]), 'GOV_BAD_ARGS');
    assert.equal(h.code(alice.did, 'gov', 'propose', { title: 't', actions: [{ type: 'notaryQuorum', k: 1 }] }), 'GOV_NO_STAKE');
    assert.throws(() => harness({ gov: { votingBlocks: 6 } }), { code: 'GOV_BAD_ARGS' }, 'genesis keeps windows within unbonding too');
  });

  it('counts votes by bonded GEN with quorum and threshold; closed, repeated and stakeless votes are refused', () => {
    const h = harness();
    h.tx(alice.did, 'bank', 'bond', { role: 'notary', amount: '500' }); // 500 of 900 bonded
    const [e] = h.tx(VALIDATORS[0]!.did, 'gov', 'propose', { title: 'q', actions: [{ type: 'notaryQuorum', k: 3 }] });
    const id = e!.data.id as number;
    for (const v of VALIDATORS) h.tx(v.did, 'gov', 'vote', { id, choice: 'yes' }); // 400 yes
    h.tx(alice.did, 'gov', 'vote', { id, choice: 'no' }); // 500 no
    assert.equal(h.code(alice.did, 'gov', 'vote', { id, choice: 'yes' }), 'GOV_ALREADY_VOTED');
    assert.equal(h.code(bob.did, 'gov', 'vote', { id, choice: 'yes' }), 'GOV_NO_STAKE');
    assert.equal(h.code(bob.did, 'gov', 'vote', { id: 99, choice: 'yes' }), 'GOV_UNKNOWN_PROPOSAL');
    h.advanceTo((e!.data.endHeight as number) + 1);
    assert.equal((h.query('gov', 'proposal', { id }) as { status: string }).status, 'rejected');
    assert.equal((h.query('gov', 'params', {}) as { notaryQuorum: number | null }).notaryQuorum, null);
    assert.equal(h.code(VALIDATORS[0]!.did, 'gov', 'vote', { id, choice: 'yes' }), 'GOV_VOTING_CLOSED');
    const quiet = pass(h, [{ type: 'notaryQuorum', k: 3 }], 1); // 100 of 900: no quorum
    assert.equal(quiet.status, 'no-quorum');
  });

  it('ends a proposal `failed`, applying none of it, when the state moved so that an action is refused', () => {
    const h = harness();
    const remove = (i: number) => ({ type: 'validator', action: 'remove', did: VALIDATORS[i]!.did });
    const [a] = h.tx(VALIDATORS[0]!.did, 'gov', 'propose', { title: 'a', actions: [remove(3)] });
    const [b] = h.tx(VALIDATORS[0]!.did, 'gov', 'propose', { title: 'b', actions: [{ type: 'notaryQuorum', k: 5 }, remove(2)] });
    for (const id of [a!.data.id, b!.data.id]) for (const v of VALIDATORS.slice(0, 3)) h.tx(v.did, 'gov', 'vote', { id, choice: 'yes' });
    h.advanceTo((b!.data.endHeight as number) + 1);
    assert.equal((h.query('gov', 'proposal', { id: a!.data.id }) as { status: string }).status, 'passed');
    const pb = h.query('gov', 'proposal', { id: b!.data.id }) as { status: string; error: string };
    assert.equal(pb.status, 'failed');
    assert.match(pb.error, /^GOV_BAD_PROPOSAL/);
    assert.equal(h.validators.length, 3);
    assert.equal((h.query('gov', 'params', {}) as { notaryQuorum: number | null }).notaryQuorum, null, 'the first action was rolled back');
    assert.equal(balance(h, VALIDATORS[3]!.did).bonds.validator, '100', 'leaving the set does not touch the bond');
  });
});
