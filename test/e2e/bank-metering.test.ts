/**
 * The cage and the Bank Mesh on its embedded chain: a DID caller holding FLX gets the priority
 * rate class, and the cage meters answered requests per identity and epoch, posting signed usage
 * reports that charge the payers' NEX escrow to the cage's operator account.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { signRequest } from '../../client/sign.js';
import { createChainKey, formatKeyFile, type ChainKey } from '../../chain/keys.js';
import { signTransaction } from '../../chain/tx.js';
import type { Cage } from '../../gateway/cage.js';
import { startAdminCage, tempDir, waitFor } from '../helpers/e2e.js';
import { errorCode, Fixtures, request, startEchoUpstream } from '../helpers/servers.js';

/** An Ed25519 key usable both for HTTP signatures (KeyObject) and on the chain (same did:key). */
function account(): { http: KeyObject; chain: ChainKey } {
  const { privateKey } = generateKeyPairSync('ed25519');
  const seed = privateKey.export({ format: 'der', type: 'pkcs8' }).subarray(16);
  return { http: privateKey, chain: createChainKey(seed) };
}

describe('e2e: FLX rate classes and metered usage on the embedded chain', function () {
  this.timeout(90_000);
  const fx = new Fixtures();
  const operator = createChainKey();
  const alice = account(); // holds FLX: the priority class; pays for herself
  const bob = account(); // no FLX; pays for himself
  let cage: Cage;
  let port: number;

  before(async () => {
    const echo = await startEchoUpstream(fx);
    const dir = tempDir(fx);
    const data = join(dir, 'data');
    mkdirSync(join(data, 'chain'), { recursive: true });
    writeFileSync(join(data, 'chain', 'account.key'), formatKeyFile(operator));
    writeFileSync(
      join(data, 'chain', 'genesis.json'),
      JSON.stringify({ chainId: 'cage-embedded', timestamp: Date.now(), validators: [operator.did], modules: { bank: { accounts: { [alice.chain.did]: { NEX: '1000', FLX: '5' }, [bob.chain.did]: { NEX: '1000' } } } } }),
    );
    cage = await startAdminCage([{ name: 'app', upstreams: [`http://127.0.0.1:${echo.port}`] }], {
      data_dir: data,
      ratelimit: { limits: [{ name: 'per-caller', by: 'identity', points: 2, per: '60s', classes: { priority: 5 } }] },
      chain: { block_period: '50ms', metering: { epoch: '2s', price: '3', payer: operator.did, callers_pay: true } },
    }, fx);
    port = cage.port;
    const chain = cage.chain!.access;
    for (const who of [alice.chain, bob.chain]) {
      const tx = signTransaction({ chainId: await chain.chainId(), nonce: await chain.nonce(who.did), module: 'bank', method: 'escrowDeposit', args: { amount: '100' } }, who);
      const r = await chain.waitForTx(await chain.send(tx.bytes), 30_000);
      assert.equal(r.code, 'OK');
    }
  });
  after(() => fx.closeAll());

  const signedGet = (who: KeyObject, path: string): Promise<Awaited<ReturnType<typeof request>>> =>
    request(port, { path, headers: signRequest({ method: 'GET', url: `http://127.0.0.1:${port}${path}` }, who).headers });

  it('gives an FLX holder the priority class from the chain; others keep the default quota', async () => {
    await cage.chain!.classes!.refresh(alice.chain.did);
    assert.equal(cage.chain!.classes!.classOf(alice.chain.did), 'priority');
    for (let i = 0; i < 5; i++) assert.equal((await signedGet(alice.http, `/a${i}`)).status, 200);
    const over = await signedGet(alice.http, '/a5');
    assert.equal(over.status, 429);
    assert.equal(over.headers['ratelimit-policy'], '"per-caller";q=5;w=60');
    for (let i = 0; i < 2; i++) assert.equal((await signedGet(bob.http, `/b${i}`)).status, 200);
    const r = await signedGet(bob.http, '/b2');
    assert.equal(errorCode(r), 'RATE_LIMITED');
    assert.equal(r.headers['ratelimit-policy'], '"per-caller";q=2;w=60');
  });

  it("posts usage reports that charge each caller's escrow for the requests the app answered (not the refused ones)", async () => {
    const chain = cage.chain!.access;
    const escrow = async (did: string): Promise<string> => (await chain.query<{ escrow: string }>('bank', 'balance', { did })).escrow;
    // alice: 5 answered × 3 NEX; bob: 2 answered × 3 NEX; the 429s are free.
    await waitFor(async () => (await escrow(alice.chain.did)) === String(100 - 15) && (await escrow(bob.chain.did)) === String(100 - 6), 'the usage reports to be final', 30_000);
    const op = await chain.query<{ balances: Record<string, string> }>('bank', 'balance', { did: operator.did });
    assert.equal(op.balances.NEX, '21');
  });
});
