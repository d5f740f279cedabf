/**
 * A validator made to equivocate in the simulated QBFT network (test/chain/qbft/sim.ts, real
 * Ed25519): the messages it actually sent are tapped off the wire, two conflicting PREPAREs are
 * picked out, and the court slashes it and votes it out — once.
 */
import assert from 'node:assert/strict';
import { bankModule } from '../../../chain/modules/bank.js';
import { courtModule } from '../../../chain/modules/court.js';
import { govModule } from '../../../chain/modules/gov.js';
import { conflicts, decodeMessage, encodeMessage, MessageType, signMessage, type SignedPayload } from '../../../chain/qbft/messages.js';
import { ModuleHarness } from '../../helpers/chain-state.js';
import { Sim } from '../qbft/sim.js';
import { USERS } from './fixtures.js';

describe('court: equivocation caught in the simulated network', function () {
  this.timeout(60_000);

  it('slashes the byzantine validator from its own wire messages', () => {
    const sim = new Sim({ seed: 7, n: 4, baseTimeoutMs: 1000, byzantine: [0], maxDelayMs: 50 });
    // Validator 0 sends node 3 PREPAREs for a block nobody proposed.
    sim.equivocator = (node, to, bytes) => {
      const m = decodeMessage(bytes);
      if (m.type !== MessageType.PREPARE || to !== 3) return undefined;
      return encodeMessage(signMessage(node.key.signer, { ...m.payload, digest: Buffer.alloc(32, 0xee) }));
    };
    const sent: SignedPayload[] = [];
    sim.onSend = (from, _to, bytes) => {
      if (from === 0) sent.push(decodeMessage(bytes).payload);
      return bytes;
    };
    sim.start();
    assert.ok(sim.runUntilHeight(3, 3_000_000, [1, 2, 3]), 'the honest nodes keep finalizing');

    let pair: [SignedPayload, SignedPayload] | undefined;
    for (let i = 0; i < sent.length && pair === undefined; i++) {
      for (let j = i + 1; j < sent.length; j++) {
        if (sent[i]!.type === MessageType.PREPARE && conflicts(sent[i]!, sent[j]!)) {
          pair = [sent[i]!, sent[j]!];
          break;
        }
      }
    }
    assert.ok(pair !== undefined, 'the wire holds two conflicting PREPAREs by validator 0');

    const ids = sim.nodes.map((n) => n.id);
    const h = new ModuleHarness([bankModule, courtModule, govModule], ids, {
      bank: { bonds: ids.map((did) => ({ did, role: 'validator', amount: '100' })) },
      court: { params: { minValidators: 3 } },
    });
    const evidence = { type: 'validator-equivocation', a: Buffer.from(pair[0].bytes).toString('base64'), b: Buffer.from(pair[1].bytes).toString('base64') };
    const events = h.tx(USERS[0]!.did, 'court', 'submit', { evidence });
    assert.ok(events.some((e) => e.type === 'court.validatorRemoved' && e.data.did === ids[0]));
    assert.deepEqual(h.validators, ids.slice(1));
    assert.equal((h.query('bank', 'balance', { did: ids[0]! }) as { bonds: { validator: string } }).bonds.validator, '90');
    assert.equal((h.query('bank', 'balance', { did: USERS[0]!.did }) as { balances: { GEN: string } }).balances.GEN, '5');
    assert.equal(h.code(USERS[1]!.did, 'court', 'submit', { evidence }), 'COURT_DUPLICATE_EVIDENCE');
  });
});
