/** `cage bank|court|gov` against a real single-validator node over JSON-RPC. */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseGenesis } from '../../../chain/chain.js';
import { ChainNode } from '../../../chain/io/node.js';
import { RpcServer } from '../../../chain/io/rpc.js';
import { formatKeyFile, type ChainKey } from '../../../chain/keys.js';
import { MessageType, signPayload } from '../../../chain/qbft/messages.js';
import { isCageError } from '../../../core/errors.js';
import { bankMain } from '../../../cli/bank.js';
import { courtMain } from '../../../cli/court.js';
import { govMain } from '../../../cli/gov.js';
import { tempDir } from '../helpers.js';
import { genesis, USERS, VALIDATORS } from './fixtures.js';

describe('cage bank / court / gov over JSON-RPC', function () {
  this.timeout(60_000);
  const [v0, v1] = VALIDATORS as [ChainKey, ChainKey];
  const [alice, bob] = USERS as [ChainKey, ChainKey];
  let dir: { path: string; remove: () => Promise<void> };
  let node: ChainNode;
  let rpc: RpcServer;
  let url: string;
  const keyFile = (k: ChainKey): string => join(dir.path, `${k.did.slice(-8)}.key`);

  before(async () => {
    dir = await tempDir('cage-modules-cli-');
    const g = parseGenesis({ chainId: 'cli-chain', timestamp: Date.now(), validators: [v0.did], modules: genesis({ court: { minValidators: 1 }, gov: { votingBlocks: 100_000 }, bank: { unbondingBlocks: 100_000 } }) });
    node = await ChainNode.start({ dataDir: join(dir.path, 'data'), genesis: g, key: v0, blockPeriodMs: 10 });
    rpc = new RpcServer(node);
    await rpc.listen('127.0.0.1:0');
    url = `http://127.0.0.1:${rpc.port}/rpc`;
    for (const k of [v0, v1, alice, bob]) await writeFile(keyFile(k), formatKeyFile(k), { mode: 0o600 });
  });

  after(async () => {
    await rpc?.close();
    await node?.close();
    await dir?.remove();
  });

  async function run(main: (a: string[], o: { out(l: string): void; err(l: string): void }) => Promise<number>, args: string[]): Promise<{ code: number; out: string; err: string }> {
    let out = '';
    let err = '';
    const code = await main(args, { out: (l) => (out += l + '\n'), err: (l) => (err += l + '\n') });
    return { code, out, err };
  }

  it('shows balances, transfers, and fails a bad transfer with the module code', async () => {
    const t = await run(bankMain, ['transfer', '--rpc', url, '--key', keyFile(alice), '--to', bob.did, '--token', 'NEX', '--amount', '25']);
    assert.equal(t.code, 0, t.err);
    assert.equal((JSON.parse(t.out) as { code: string }).code, 'OK');
    const b = await run(bankMain, ['balance', bob.did, '--rpc', url]);
    assert.equal((JSON.parse(b.out) as { balances: { NEX: string } }).balances.NEX, '1025');
    const over = await run(bankMain, ['transfer', '--rpc', url, '--key', keyFile(alice), '--to', bob.did, '--token', 'NEX', '--amount', '999999']);
    assert.equal(over.code, 1);
    assert.match(over.err, /BANK_INSUFFICIENT_FUNDS/);
    await assert.rejects(run(bankMain, ['transfer', '--rpc', url, '--key', keyFile(alice), '--token', 'NEX', '--amount', '1']), (e) => isCageError(e, 'CLI_BAD_ARGS'));
    await assert.rejects(run(bankMain, ['balance', 'did:key:bad', '--rpc', url]), (e) => isCageError(e, 'BANK_BAD_ARGS'));
    await assert.rejects(run(bankMain, ['mint']), (e) => isCageError(e, 'CLI_BAD_ARGS'));
    const e = await run(bankMain, ['escrow', 'deposit', '--rpc', url, '--key', keyFile(alice), '--amount', '10']);
    assert.equal(e.code, 0, e.err);
  });

  it('submits evidence from a file and shows the case; votes with clear errors', async () => {
    const signer = { id: v1.did, sign: (d: Uint8Array) => v1.sign(d) };
    const prep = (n: number) => Buffer.from(signPayload({ type: MessageType.PREPARE, height: 3, round: 0, digest: Buffer.alloc(32, n) }, signer).bytes).toString('base64');
    const file = join(dir.path, 'evidence.json');
    await writeFile(file, JSON.stringify({ type: 'validator-equivocation', a: prep(1), b: prep(2) }));
    const s = await run(courtMain, ['submit-evidence', file, '--rpc', url, '--key', keyFile(bob)]);
    assert.equal(s.code, 0, s.err);
    const again = await run(courtMain, ['submit-evidence', file, '--rpc', url, '--key', keyFile(bob)]);
    assert.equal(again.code, 1);
    assert.match(again.err, /COURT_DUPLICATE_EVIDENCE/);
    const c = await run(courtMain, ['case', '1', '--rpc', url]);
    assert.equal((JSON.parse(c.out) as { outcome: string }).outcome, 'slashed');
    await assert.rejects(run(courtMain, ['vote', '1', 'maybe', '--rpc', url, '--key', keyFile(v0)]), (e) => isCageError(e, 'CLI_BAD_ARGS'));
    await assert.rejects(run(courtMain, ['case', '99', '--rpc', url]), (e) => isCageError(e, 'COURT_UNKNOWN_CASE'));
  });

  it('proposes from a file, votes, and shows the proposal', async () => {
    const file = join(dir.path, 'proposal.json');
    await writeFile(file, JSON.stringify({ title: 'quorum 2', actions: [{ type: 'notaryQuorum', k: 2 }] }));
    const p = await run(govMain, ['propose', file, '--rpc', url, '--key', keyFile(v0)]);
    assert.equal(p.code, 0, p.err);
    const id = String((JSON.parse(p.out) as { events: { data: { id: number } }[] }).events[0]!.data.id);
    assert.equal((await run(govMain, ['vote', id, 'yes', '--rpc', url, '--key', keyFile(v0)])).code, 0);
    const twice = await run(govMain, ['vote', id, 'no', '--rpc', url, '--key', keyFile(v0)]);
    assert.equal(twice.code, 1);
    assert.match(twice.err, /GOV_ALREADY_VOTED/);
    const show = await run(govMain, ['show', id, '--rpc', url]);
    assert.equal((JSON.parse(show.out) as { title: string }).title, 'quorum 2');
    await assert.rejects(run(govMain, ['vote', id, 'perhaps', '--rpc', url, '--key', keyFile(v0)]), (e) => isCageError(e, 'CLI_BAD_ARGS'));
    await assert.rejects(run(govMain, ['propose', join(dir.path, 'missing.json'), '--rpc', url, '--key', keyFile(v0)]), (e) => isCageError(e, 'CLI_BAD_ARGS'));
  });
});
