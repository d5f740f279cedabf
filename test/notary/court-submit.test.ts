/**
 * `cage notary serve --chain URL --chain-key FILE`: a notary that refuses a forked checkpoint keeps
 * the evidence and submits it to the Court of a real chain node over JSON-RPC; the log's bonded
 * stake is slashed and the notary's account gets the reporter's share.
 */
import { strict as assert } from 'node:assert';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ChainClient } from '../../chain/client.js';
import { ChainNode } from '../../chain/io/node.js';
import { RpcServer } from '../../chain/io/rpc.js';
import { formatKeyFile } from '../../chain/keys.js';
import { notaryMain } from '../../cli/notary.js';
import type { NotaryServer } from '../../notary/io/server.js';
import { genesisFor, key, tempDir as chainTempDir } from '../chain/helpers.js';
import { waitFor } from '../helpers/e2e.js';
import { tempDir, TestLog } from './helpers.js';

describe('cage notary serve --chain: fork evidence goes to the Court', function () {
  this.timeout(60_000);
  const validator = key(1);
  const operator = key(2); // bonds the log
  const reporter = key(3); // the notary's chain account
  const log = new TestLog('example.com/log', 7, 'entry ');
  const fork = new TestLog('example.com/log', 7, 'forged ');
  let node: ChainNode;
  let rpc: RpcServer;
  let client: ChainClient;
  const stop = new AbortController();
  let served: Promise<number>;
  const lines: string[] = [];

  after(async () => {
    stop.abort();
    await served;
    await rpc?.close();
    await node?.close();
  });

  it('slashes the log once the notary has refused its fork', async () => {
    const chainDir = await chainTempDir();
    const dir = await tempDir();
    const genesis = genesisFor([validator], { modules: { bank: { bonds: [{ did: operator.did, role: 'log', amount: '200', logKey: log.verifier.verifierKey }] } } });
    node = await ChainNode.start({ dataDir: chainDir.path, genesis, key: validator, blockPeriodMs: 10 });
    rpc = new RpcServer(node, 64 * 1024);
    await rpc.listen('127.0.0.1:0');
    client = new ChainClient(`http://127.0.0.1:${rpc.port}/rpc`);
    const notaryKey = join(dir.path, 'notary.key');
    const chainKey = join(dir.path, 'chain.key');
    await writeFile(chainKey, formatKeyFile(reporter));
    assert.equal(await notaryMain(['init', '--out', notaryKey], { out: () => undefined, err: () => undefined }), 0);
    let server!: NotaryServer;
    const listening = new Promise<void>((resolve) => {
      served = notaryMain(
        ['serve', '--key', notaryKey, '--data-dir', join(dir.path, 'data'), '--log', log.verifier.verifierKey, '--listen', '127.0.0.1:0', '--chain', `http://127.0.0.1:${rpc.port}/rpc`, '--chain-key', chainKey],
        { out: (l) => lines.push(l), err: (l) => lines.push(l) },
        { stop: stop.signal, onListening: (s) => { server = s; resolve(); } },
      );
    });
    await listening;
    assert.equal((await fetch(`${server.url}/add-checkpoint`, { method: 'POST', body: log.body(0, 5) })).status, 200);
    const refused = await fetch(`${server.url}/add-checkpoint`, { method: 'POST', body: fork.body(5, 5) });
    assert.equal(refused.status, 409);

    const bonds = async (did: string): Promise<{ bonds: Record<string, string>; balances: Record<string, string> }> => client.call('bank_balance', [{ did }]);
    await waitFor(async () => (await bonds(operator.did)).bonds.log === '180', 'the log to be slashed', 30_000);
    await waitFor(() => lines.some((l) => l.includes('"event":"evidence-submitted"')), 'the notary to report the submission');
    assert.equal((await bonds(reporter.did)).balances.GEN, '10', "the reporter's half of the 10 % slashed");
    await chainDir.remove();
  });
});
