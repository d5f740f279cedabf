/**
 * The modules inside the real chain (chain/chain.ts): signed transactions with nonces, blocks built
 * by a rotating proposer among 4 validators, every block re-executed by the other 3 replicas
 * (`executeBlock` compares the state root, tx results and events), endBlock timers. A judged case,
 * an equivocation that votes a validator out, and a governance proposal run end to end; all four
 * replicas end on the same state root. (Consensus messages themselves are the QBFT tests' job.)
 */
import assert from 'node:assert/strict';
import { Chain, parseGenesis } from '../../../chain/chain.js';
import { isCageError } from '../../../core/errors.js';
import { Overlay } from '../../../chain/state.js';
import type { ChainKey } from '../../../chain/keys.js';
import { defaultModules } from '../../../chain/modules/index.js';
import { bankModule } from '../../../chain/modules/bank.js';
import { courtModule, courtParams } from '../../../chain/modules/court.js';
import { govModule } from '../../../chain/modules/gov.js';
import { MessageType, signPayload } from '../../../chain/qbft/messages.js';
import { signTransaction } from '../../../chain/tx.js';
import { genesis, USERS, VALIDATORS } from './fixtures.js';
import { TestLog } from '../../notary/helpers.js';

const CHAIN_ID = 'modules-e2e';

function modules() {
  const base = defaultModules().filter((m) => !['bank', 'court', 'gov'].includes(m.name));
  return [...base, bankModule, courtModule, govModule];
}

class Network {
  readonly replicas: Chain[];
  private readonly nonces = new Map<string, number>();
  time = 1_700_000_001_000;

  constructor() {
    const g = parseGenesis({ chainId: CHAIN_ID, timestamp: 1_700_000_000_000, validators: VALIDATORS.map((v) => v.did), modules: genesis() });
    this.replicas = VALIDATORS.map((v) => {
      const c = new Chain({ genesis: g, modules: modules(), now: () => this.time, self: v.did });
      c.commit(c.genesisExecution());
      return c;
    });
  }

  /** Signs and gossips a transaction to every replica's pool. */
  send(k: ChainKey, module: string, method: string, args: unknown): Uint8Array {
    const nonce = this.nonces.get(k.did) ?? 0;
    this.nonces.set(k.did, nonce + 1);
    const tx = signTransaction({ chainId: CHAIN_ID, nonce, module, method, args }, k);
    for (const r of this.replicas) r.submit(tx.bytes);
    return tx.bytes;
  }

  /** The next proposer (round robin over the current set) builds a block; the others re-execute it. */
  block(): { results: { code: string; events: readonly { type: string; data: Record<string, unknown> }[] }[]; events: readonly { type: string; data: Record<string, unknown> }[] } {
    this.time += 1000;
    const head = this.replicas[0]!.head.height;
    const set = this.replicas[0]!.validators;
    const proposerDid = set[(head + 1) % set.length]!;
    const proposer = this.replicas[VALIDATORS.findIndex((v) => v.did === proposerDid)]!;
    const block = proposer.createBlock(head + 1);
    let exec = proposer.executionFor(block.bytes);
    for (const r of this.replicas) {
      const e = r === proposer ? exec : r.executeBlock(block.bytes, true);
      r.commit(e);
      exec = e;
    }
    return { results: exec.results as never, events: exec.blockEvents as never };
  }

  until(height: number): Array<{ type: string; data: Record<string, unknown> }> {
    const events: Array<{ type: string; data: Record<string, unknown> }> = [];
    while (this.replicas[0]!.head.height < height) events.push(...this.block().events);
    return events;
  }

  query(module: string, method: string, params: unknown): unknown {
    const answers = this.replicas.map((r) => JSON.stringify(r.query(module, method, params)));
    for (const a of answers) assert.equal(a, answers[0], 'every replica answers the same');
    return JSON.parse(answers[0]!) as unknown;
  }

  roots(): string[] {
    return this.replicas.map((r) => r.head.stateRoot.toString('hex'));
  }
}

describe('chain/modules end to end (4 replicas, real blocks)', () => {
  it('runs a judged case, a validator equivocation and a governance proposal to the same state everywhere', () => {
    const net = new Network();
    const [operator, reporter] = USERS as [ChainKey, ChainKey];
    const log = new TestLog('example.com/log', 5);
    const fork = new TestLog('example.com/log', 5, 'forged ');
    net.send(operator, 'bank', 'bond', { role: 'log', amount: '200', logKey: log.verifier.verifierKey });
    const transfer = net.send(reporter, 'bank', 'transfer', { to: operator.did, token: 'NEX', amount: '5' });
    let b = net.block();
    assert.deepEqual(b.results.map((r) => r.code), ['OK', 'OK']);
    for (const r of net.replicas) assert.throws(() => r.submit(transfer), (e) => isCageError(e) && e.code.startsWith('CHAIN_'), 'a replayed transfer is refused by its nonce');

    // A log fork (automatic), then a consistency challenge nobody answers (judged by the timer).
    net.send(reporter, 'court', 'submit', { evidence: { type: 'log-fork', a: log.checkpoint(4), b: fork.checkpoint(4) } });
    net.send(reporter, 'court', 'submit', { evidence: { type: 'log-fork', a: log.checkpoint(4), b: fork.checkpoint(4) } });
    b = net.block();
    assert.deepEqual(b.results.map((r) => r.code), ['OK', 'COURT_DUPLICATE_EVIDENCE']);

    // Validator 2 double-signs a PREPARE: slashed and voted out; later blocks are finalized by 3.
    const v2 = VALIDATORS[2]!;
    const signer = { id: v2.did, sign: (d: Uint8Array) => v2.sign(d) };
    const prep = (digest: number) => Buffer.from(signPayload({ type: MessageType.PREPARE, height: 2, round: 0, digest: Buffer.alloc(32, digest) }, signer).bytes).toString('base64');
    net.send(reporter, 'court', 'submit', { evidence: { type: 'validator-equivocation', a: prep(1), b: prep(2) } });
    b = net.block();
    assert.deepEqual(b.results.map((r) => r.code), ['OK']);
    for (const r of net.replicas) assert.deepEqual(r.validators, VALIDATORS.filter((v) => v !== v2).map((v) => v.did));

    // A judged case: the payer disputes its usage line; bonded validators vote while a
    // governance proposal raises the slashing fraction; endBlock decides both.
    const payer = USERS[2]!;
    net.send(payer, 'bank', 'escrowDeposit', { amount: '100' });
    const lines = [{ payer: payer.did, subject: 'api-key:p', count: 10, amount: '100' }];
    net.send(operator, 'bank', 'usageReport', { epoch: 1, lines });
    net.send(VALIDATORS[0]!, 'gov', 'propose', { title: 'slash 20 %', actions: [{ type: 'param', module: 'court', path: 'slashBps', value: 2000 }] });
    b = net.block();
    assert.deepEqual(b.results.map((r) => r.code), ['OK', 'OK', 'OK']);
    const proposal = b.results[2]!.events[0]!.data as { id: number; endHeight: number };
    net.send(payer, 'court', 'submit', { evidence: { type: 'usage', operator: operator.did, epoch: 1, index: 0, line: lines[0], proof: [], claimedCount: 4 } });
    b = net.block();
    const opened = b.results[0]!.events[0]!.data as { caseId: number; endHeight: number };
    for (const v of [VALIDATORS[0]!, VALIDATORS[1]!, VALIDATORS[3]!]) {
      net.send(v, 'gov', 'vote', { id: proposal.id, choice: 'yes' });
      net.send(v, 'court', 'vote', { caseId: opened.caseId, side: 'claimant' });
    }
    b = net.block();
    assert.ok(b.results.every((r) => r.code === 'OK'));
    const events = net.until(Math.max(proposal.endHeight, opened.endHeight));
    assert.ok(events.some((e) => e.type === 'gov.executed'));
    assert.ok(events.some((e) => e.type === 'court.decided' && e.data.outcome === 'claimant'));
    for (const r of net.replicas) assert.equal(courtParams(new Overlay(r.state)).slashBps, 2000);
    assert.equal((net.query('bank', 'balance', { did: payer.did }) as { escrow: string }).escrow, '60', '6 of 10 calls refunded');

    const c1 = net.query('court', 'case', { id: 1 }) as { outcome: string; slashed: string };
    assert.equal(c1.outcome, 'slashed');
    assert.equal(c1.slashed, '20');
    assert.equal((net.query('bank', 'balance', { did: v2.did }) as { bonds: { validator: string } }).bonds.validator, '90');
    const roots = net.roots();
    assert.ok(roots.every((r) => r === roots[0]));
  });
});
