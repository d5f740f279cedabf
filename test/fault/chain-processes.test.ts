/**
 * Four validators as separate `cage chain run` processes on loopback (WebSocket p2p, LevelDB
 * stores). One is killed with SIGKILL: the other three keep finalizing. A second is killed: with
 * two of four left there is no quorum (Q = 3) and the chain stalls. Both are restarted on their
 * data directories: they catch up, the chain finalizes again, and every node holds the same block
 * hash at every height (no fork).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ChainClient } from '../../chain/client.js';
import { readKeyFile } from '../../chain/keys.js';
import { signTransaction } from '../../chain/tx.js';
import { runCli, spawnCli, type CliProcess } from '../helpers/cli.js';
import { StopWaiting, waitFor } from '../helpers/e2e.js';
import { sleep } from '../helpers/servers.js';
import { tempDir } from '../chain/helpers.js';

const N = 4;
const LISTENING_RE = /"event":"listening".*"p2p":(\d+),"rpc":(\d+)/;

interface Validator {
  proc?: CliProcess;
  p2p: number;
  rpc: number;
}

describe('fault: four chain validators as processes, kill -9', function () {
  this.timeout(240_000);
  let dir: { path: string; remove: () => Promise<void> };
  const vals: Validator[] = Array.from({ length: N }, () => ({ p2p: 0, rpc: 0 }));

  async function start(i: number): Promise<void> {
    const v = vals[i]!;
    const peers = vals.flatMap((p, j) => (j !== i && p.p2p !== 0 ? ['--peer', `127.0.0.1:${p.p2p}`] : []));
    const proc = spawnCli(['chain', 'run', '--data-dir', join(dir.path, `data-${i}`), '--key', join(dir.path, `validator-${i}.key`), '--listen', `127.0.0.1:${v.p2p}`, '--rpc', `127.0.0.1:${v.rpc}`, ...peers]);
    v.proc = proc;
    const m = await waitFor(() => {
      if (proc.exit !== undefined) throw new StopWaiting(`validator ${i} exited: ${proc.stderr}`);
      return LISTENING_RE.exec(proc.stdout) ?? undefined;
    }, `validator ${i} listening`, 30_000);
    v.p2p = Number(m[1]);
    v.rpc = Number(m[2]);
  }

  async function kill(i: number): Promise<void> {
    const p = vals[i]!.proc!;
    p.child.kill('SIGKILL');
    await p.exited;
  }

  const client = (i: number): ChainClient => new ChainClient(`http://127.0.0.1:${vals[i]!.rpc}/rpc`, { timeoutMs: 5000 });
  const height = async (i: number): Promise<number> => (await client(i).call<{ height: number }>('chain_head')).height;

  after(async () => {
    for (const v of vals) if (v.proc !== undefined && v.proc.exit === undefined) {
      v.proc.child.kill('SIGKILL');
      await v.proc.exited;
    }
    await dir?.remove();
  });

  it('continues with f = 1 down, stalls with 2 down, recovers without a fork when both return', async () => {
    dir = await tempDir('cage-chain-fault-');
    const init = await runCli(['chain', 'init', '--validators', String(N), '--out', dir.path, '--block-period-ms', '20', '--round-timeout-ms', '400']);
    assert.equal(init.code, 0, init.stderr);
    for (let i = 0; i < N; i++) await start(i);
    await waitFor(async () => (await height(0)) >= 10 || undefined, 'ten blocks', 60_000);
    const status = await runCli(['chain', 'status', '--rpc', `http://127.0.0.1:${vals[0]!.rpc}/rpc`]);
    assert.equal(status.code, 0, status.stderr);
    assert.equal((JSON.parse(status.stdout) as { validators: string[] }).validators.length, N);
    const badFlags = await runCli(['chain', 'init', '--validators', '0', '--out', join(dir.path, 'x')]);
    assert.equal(badFlags.code, 2);
    assert.match(badFlags.stderr, /CLI_BAD_ARGS/);

    // A user transaction before the crash is final on every node.
    const user = readKeyFile(join(dir.path, 'validator-0.key'));
    const genesis = (await client(0).call<{ chainId: string }>('chain_status')).chainId;
    const send = async (via: number): Promise<string> => {
      const nonce = await client(via).nonce(user.did);
      return client(via).sendTransaction(signTransaction({ chainId: genesis, nonce, module: 'anchor', method: 'register', args: { origin: `log-${nonce}`, policy: 'bad' } }, user));
    };
    const first = await client(1).waitForTx(await send(1), { timeoutMs: 60_000 });
    assert.equal(first.code, 'ANCHOR_BAD_POLICY');

    await kill(3);
    const afterOne = await height(0);
    await waitFor(async () => (await height(0)) >= afterOne + 10 || undefined, 'ten more blocks with one validator down', 90_000);
    const second = await client(2).waitForTx(await send(2), { timeoutMs: 60_000 });
    assert.ok(second.height > first.height);

    await kill(2);
    // Let anything in flight settle, then watch: two of four cannot reach a quorum of three.
    await sleep(1500);
    const stalled = Math.max(await height(0), await height(1));
    await sleep(3000);
    assert.ok(Math.max(await height(0), await height(1)) <= stalled, 'the chain must not finalize without a quorum');

    await start(2);
    await start(3);
    await waitFor(async () => {
      const hs = await Promise.all([0, 1, 2, 3].map(height));
      return Math.min(...hs) >= stalled + 10 || undefined;
    }, 'all four finalizing again', 120_000);
    const third = await client(3).waitForTx(await send(3), { timeoutMs: 60_000 });
    assert.ok(third.height > stalled);

    const top = Math.min(...(await Promise.all([0, 1, 2, 3].map(height))));
    for (let h = 1; h <= top; h++) {
      const hashes = await Promise.all([0, 1, 2, 3].map(async (i) => (await client(i).call<{ hash: string }>('chain_getBlockByHeight', [h])).hash));
      assert.equal(new Set(hashes).size, 1, `fork at height ${h}: ${hashes.join(' ')}`);
    }
  });
});
