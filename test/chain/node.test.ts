import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { WebSocket } from 'ws';
import { isCageError } from '../../core/errors.js';
import { ChainClient } from '../../chain/client.js';
import { ChainNode } from '../../chain/io/node.js';
import { RpcServer } from '../../chain/io/rpc.js';
import { REPO_ROOT } from '../helpers/cli.js';
import { waitUntil } from '../helpers/wait.js';
import { genesisFor, key, tempDir, tx, CHAIN_ID } from './helpers.js';

const OPEN_STORE = `import { ChainStore } from './chain/io/store.ts';
try { await (await ChainStore.open(process.argv[1])).close(); console.log('OPENED'); } catch (e) { console.log(e.code); }`;

describe('chain/io: a single-validator node with its store and JSON-RPC', function () {
  this.timeout(60_000);
  const v = key(40);
  const alice = key(1);
  let dir: { path: string; remove: () => Promise<void> };
  let node: ChainNode;
  let rpc: RpcServer;
  let client: ChainClient;
  let url: string;

  before(async () => {
    dir = await tempDir();
    node = await ChainNode.start({ dataDir: dir.path, genesis: genesisFor([v]), key: v, blockPeriodMs: 10 });
    rpc = new RpcServer(node, 64 * 1024);
    await rpc.listen('127.0.0.1:0');
    url = `http://127.0.0.1:${rpc.port}/rpc`;
    client = new ChainClient(url);
  });

  after(async () => {
    await rpc?.close();
    await node?.close();
    await dir?.remove();
  });

  async function raw(body: string): Promise<{ status: number; json: unknown }> {
    const res = await fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
    const text = await res.text();
    return { status: res.status, json: text === '' ? undefined : JSON.parse(text) };
  }

  it('takes transactions over RPC and reports them final with their receipts', async () => {
    const hashes: string[] = [];
    for (let n = 0; n < 5; n++) {
      assert.equal(await client.nonce(alice.did), n);
      hashes.push(await client.sendTransaction(tx(alice, n, 'validators', 'vote', { action: 'add', validator: alice.did })));
    }
    const receipts = await Promise.all(hashes.map((h) => client.waitForTx(h)));
    // the sender is not a validator: every vote fails, deterministically, with its code
    assert.deepEqual(receipts.map((r) => r.code), Array(5).fill('CHAIN_VOTE_REFUSED'));
    const r = receipts[0]!;
    const byHeight = await client.call<{ hash: string; txs: string[]; seals: unknown[] }>('chain_getBlockByHeight', [r.height]);
    assert.equal(byHeight.hash, r.blockHash);
    assert.ok(byHeight.txs.includes(r.hash));
    assert.equal(byHeight.seals.length, 1);
    const byHash = await client.call<{ height: number }>('chain_getBlockByHash', [r.blockHash]);
    assert.equal(byHash.height, r.height);
    await assert.rejects(client.sendTransaction(tx(alice, 0, 'validators', 'vote', {})), (e) => isCageError(e, 'CHAIN_BAD_NONCE'));
    await assert.rejects(client.waitForTx('00'.repeat(32), { timeoutMs: 50 }), (e) => isCageError(e, 'CHAIN_TX_TIMEOUT'));
    assert.deepEqual(await client.call('chain_validators'), [v.did]);
    assert.deepEqual(await client.call('validators_set'), [v.did]);
    assert.equal(await client.call('anchor_getCheckpoint', ['no.such/log']), null);
  });

  it('answers hostile requests with JSON-RPC errors carrying CageError codes, and keeps serving', async () => {
    const err = (j: unknown): [number, string] => {
      const e = (j as { error: { code: number; data: { code: string } } }).error;
      return [e.code, e.data.code];
    };
    assert.deepEqual(err((await raw('{not json')).json), [-32700, 'CHAIN_RPC_PARSE_ERROR']);
    assert.deepEqual(err((await raw('42')).json), [-32600, 'CHAIN_RPC_BAD_REQUEST']);
    assert.deepEqual(err((await raw('[]')).json), [-32600, 'CHAIN_RPC_BAD_REQUEST']);
    assert.deepEqual(err((await raw('{"jsonrpc":"1.0","id":1,"method":"chain_head"}')).json), [-32600, 'CHAIN_RPC_BAD_REQUEST']);
    assert.deepEqual(err((await raw('{"jsonrpc":"2.0","id":1,"method":"nope"}')).json), [-32601, 'CHAIN_RPC_UNKNOWN_METHOD']);
    assert.deepEqual(err((await raw('{"jsonrpc":"2.0","id":1,"method":"chain_getBlockByHeight","params":["x"]}')).json), [-32602, 'CHAIN_RPC_BAD_PARAMS']);
    assert.deepEqual(err((await raw('{"jsonrpc":"2.0","id":1,"method":"chain_getTransaction","params":[{"a":1}]}')).json), [-32602, 'CHAIN_RPC_BAD_PARAMS']);
    assert.deepEqual(err((await raw('{"jsonrpc":"2.0","id":1,"method":"chain_sendTransaction","params":["!!"]}')).json), [-32602, 'CHAIN_RPC_BAD_PARAMS']);
    assert.deepEqual(err((await raw('{"jsonrpc":"2.0","id":1,"method":"chain_sendTransaction","params":["AAAA"]}')).json), [-32000, 'CHAIN_BAD_TX']);
    assert.deepEqual(err((await raw('{"jsonrpc":"2.0","id":1,"method":"anchor_checkpoint","params":[{"origin":5}]}')).json), [-32602, 'ANCHOR_BAD_ARGS']);
    assert.deepEqual(err((await raw('{"jsonrpc":"2.0","id":1,"method":"chain_subscribe","params":["newHeads"]}')).json), [-32601, 'CHAIN_RPC_UNKNOWN_METHOD']);
    const big = await raw(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'chain_head', params: ['x'.repeat(70 * 1024)] }));
    assert.equal(big.status, 413);
    assert.deepEqual(err(big.json), [-32000, 'CHAIN_RPC_BODY_TOO_LARGE']);
    // notifications get no answer; a batch answers its requests in order
    assert.equal((await raw('{"jsonrpc":"2.0","method":"chain_head"}')).status, 204);
    const batch = (await raw('[{"jsonrpc":"2.0","id":1,"method":"chain_head"},{"jsonrpc":"2.0","method":"chain_head"},5,{"jsonrpc":"2.0","id":"b","method":"x_y"}]')).json as { id: unknown }[];
    assert.deepEqual(batch.map((b) => b.id), [1, null, 'b']);
    assert.equal((await raw(JSON.stringify(Array(101).fill({ jsonrpc: '2.0', id: 1, method: 'chain_head' })))).json !== undefined, true);
    const head = await client.call<{ height: number }>('chain_head');
    assert.ok(head.height > 0);
  });

  it('pushes new heads to WebSocket subscribers', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${rpc.port}/rpc`);
    const heights: number[] = [];
    let subId: string | undefined;
    ws.on('message', (d) => {
      const m = JSON.parse(d.toString()) as { id?: number; result?: string; params?: { subscription: string; result: { height: number } } };
      if (m.id === 1) subId = m.result;
      else if (m.params !== undefined && m.params.subscription === subId) heights.push(m.params.result.height);
    });
    await new Promise((r) => ws.once('open', r));
    ws.send(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'chain_subscribe', params: ['newHeads'] }));
    await waitUntil(() => heights.length >= 3, 'three new heads');
    for (let i = 1; i < heights.length; i++) assert.equal(heights[i], heights[i - 1]! + 1);
    ws.close();
  });

  it('reopens its store at the same head and state after close; a second opener is refused', async () => {
    // another process opening the directory is refused
    const other = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', OPEN_STORE, dir.path], { cwd: REPO_ROOT, encoding: 'utf8' });
    assert.equal(other.stdout.trim(), 'CHAIN_STORE_LOCKED', other.stderr);
    await rpc.close();
    const before = node.chain.head;
    const nonce = node.chain.pendingNonce(alice.did);
    await node.close();
    node = await ChainNode.start({ dataDir: dir.path, genesis: genesisFor([v]), key: v, blockPeriodMs: 10 });
    assert.ok(node.chain.head.height >= before.height);
    assert.equal(node.chain.pendingNonce(alice.did), nonce);
    rpc = new RpcServer(node);
    await rpc.listen('127.0.0.1:0');
    url = `http://127.0.0.1:${rpc.port}/rpc`;
    client = new ChainClient(url);
    const old = await client.call<{ hash: string }>('chain_getBlockByHeight', [before.height]);
    assert.equal(old.hash, before.hash.toString('hex'));
    await waitUntil(() => node.chain.head.height > before.height + 2, 'blocks after the restart');
    await node.close();
    await assert.rejects(ChainNode.start({ dataDir: dir.path, genesis: { ...genesisFor([v]), chainId: `${CHAIN_ID}-2` }, key: v }), (e) => isCageError(e, 'CHAIN_BAD_GENESIS'));
    node = await ChainNode.start({ dataDir: dir.path, genesis: genesisFor([v]), key: v, blockPeriodMs: 10 });
  });
});

describe('chain/io: four validators over p2p in one process', function () {
  this.timeout(90_000);
  const keys = [key(51), key(52), key(53), key(54)];
  const nodes: ChainNode[] = [];
  const dirs: { remove: () => Promise<void> }[] = [];

  after(async () => {
    for (const n of nodes) await n.close();
    for (const d of dirs) await d.remove();
  });

  it('finalizes the same blocks on every node, and a late validator catches up by sync', async () => {
    const genesis = genesisFor(keys);
    const start = async (i: number, peers: string[]): Promise<ChainNode> => {
      const d = await tempDir();
      dirs.push(d);
      const n = await ChainNode.start({ dataDir: d.path, genesis, key: keys[i]!, listen: '127.0.0.1:0', peers, blockPeriodMs: 20, roundTimeoutMs: 500 });
      nodes.push(n);
      return n;
    };
    const first = await start(0, []);
    const addr0 = `127.0.0.1:${first.p2p!.port}`;
    const second = await start(1, [addr0]);
    const third = await start(2, [addr0, `127.0.0.1:${second.p2p!.port}`]);
    await waitUntil(() => Math.min(first.chain.head.height, second.chain.head.height, third.chain.head.height) >= 15, '3 of 4 validators finalizing', 60_000);
    const late = await start(3, [addr0, `127.0.0.1:${second.p2p!.port}`, `127.0.0.1:${third.p2p!.port}`]);
    const target = first.chain.head.height + 5;
    await waitUntil(() => late.chain.head.height >= target, 'the late validator to catch up', 60_000);
    // p2p refuses strangers: garbage before the handshake, and a signed hello from a non-validator
    const closed = async (frames: Buffer[]): Promise<void> => {
      const ws = new WebSocket(`ws://${addr0}`);
      await new Promise((r) => ws.once('open', r));
      for (const f of frames) ws.send(f);
      await new Promise((r) => ws.once('close', r));
    };
    await closed([Buffer.from([0x01, 1, 2, 3])]);
    const stranger = key(99);
    const genesisHash = (await first.store.genesisHash())!;
    await closed([Buffer.concat([Buffer.from([0x10]), Buffer.from(JSON.stringify({ v: 1, chainId: CHAIN_ID, genesis: genesisHash, did: stranger.did, nonce: Buffer.alloc(32).toString('base64') }))])]);
    assert.ok(!first.p2p!.connected().includes(stranger.did));
    const top = Math.min(...nodes.map((n) => n.chain.head.height));
    for (let h = 1; h <= top; h++) {
      const hashes = await Promise.all(nodes.map(async (n) => (await n.store.block(h))!.bytes.toString('hex')));
      assert.equal(new Set(hashes).size, 1, `height ${h} differs between nodes`);
    }
  });
});
