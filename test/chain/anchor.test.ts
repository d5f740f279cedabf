import assert from 'node:assert/strict';
import { signCheckpoint } from '../../audit/checkpoint.js';
import { encodeBase64 } from '../../audit/note.js';
import { TestLog, testNotary } from '../notary/helpers.js';
import { newChain, key, produce, tx } from './helpers.js';
import type { Chain } from '../../chain/chain.js';

const ORIGIN = 'example.com/anchored-log';

describe('chain/modules/anchor', () => {
  const validator = key(10);
  const owner = key(1);
  const stranger = key(2);
  const log = new TestLog(ORIGIN, 5);
  const forkLog = new TestLog(ORIGIN, 5, 'forked ');
  const [n1, n2, n3] = [testNotary(31), testNotary(32), testNotary(33)];
  const policy = `log ${log.verifier.verifierKey}\nwitness n1 ${n1.verifier.verifierKey}\nwitness n2 ${n2.verifier.verifierKey}\nwitness n3 ${n3.verifier.verifierKey}\ngroup notaries 2 n1 n2 n3\nquorum notaries\n`;

  /** A checkpoint of `l` at `size`, signed by the log and cosigned by `notaries`. */
  function cosigned(l: TestLog, size: number, notaries = [n1, n2]): string {
    l.grow(size);
    return signCheckpoint([l.signer, ...notaries.map((n) => n.cosigner)], { origin: ORIGIN, size, rootHash: l.tree.root(size), extensions: [] });
  }

  function run(chain: Chain, method: string, args: unknown, sender = owner): string {
    const n = chain.pendingNonce(sender.did);
    chain.submit(tx(sender, n, 'anchor', method, args).bytes);
    return produce(chain).results[0]!.code;
  }

  function submit(chain: Chain, checkpoint: string, proof: Buffer[]): string {
    return run(chain, 'submit', { checkpoint, proof: proof.map(encodeBase64) });
  }

  it('registers a log, accepts append-only extensions and answers latest and at-height queries', () => {
    const chain = newChain([validator]);
    assert.equal(run(chain, 'register', { origin: ORIGIN, policy }), 'OK');
    assert.equal(run(chain, 'register', { origin: ORIGIN, policy }, stranger), 'ANCHOR_LOG_EXISTS');
    assert.equal(run(chain, 'setPolicy', { origin: ORIGIN, policy }, stranger), 'ANCHOR_NOT_OWNER');
    assert.equal(submit(chain, cosigned(log, 10), []), 'OK');
    const h10 = chain.head.height;
    assert.equal(submit(chain, cosigned(log, 25), log.proof(10, 25)), 'OK');
    assert.equal(submit(chain, cosigned(log, 25), []), 'OK'); // resubmission: unchanged
    const latest = chain.query('anchor', 'checkpoint', { origin: ORIGIN }) as { size: number; height: number };
    assert.equal(latest.size, 25);
    assert.equal((chain.query('anchor', 'checkpoint', { origin: ORIGIN, height: h10 }) as { size: number }).size, 10);
    assert.equal(chain.query('anchor', 'checkpoint', { origin: ORIGIN, height: 1 }), null);
  });

  it('refuses a fork, a rollback, a bad signature, a short quorum, a bad proof and an unknown log with distinct codes', () => {
    const chain = newChain([validator]);
    assert.equal(run(chain, 'register', { origin: ORIGIN, policy }), 'OK');
    assert.equal(submit(chain, cosigned(log, 10), []), 'OK');
    const codes = {
      fork: submit(chain, cosigned(forkLog, 10), []),
      forkedExtension: submit(chain, cosigned(forkLog, 20), forkLog.proof(10, 20)),
      rollback: submit(chain, cosigned(log, 5), []),
      badSignature: submit(chain, signCheckpoint([new TestLog(ORIGIN, 99).signer, n1.cosigner, n2.cosigner], { origin: ORIGIN, size: 12, rootHash: log.grow(12).tree.root(12), extensions: [] }), log.proof(10, 12)),
      shortQuorum: submit(chain, cosigned(log, 15, [n1]), log.proof(10, 15)),
      badProof: submit(chain, cosigned(log, 15), log.proof(9, 15)),
      missingProof: submit(chain, cosigned(log, 15), []),
      malformed: run(chain, 'submit', { checkpoint: 'not a note', proof: [] }),
      unknownLog: submit(chain, signCheckpoint(new TestLog('other.example/log', 7).signer, { origin: 'other.example/log', size: 1, rootHash: Buffer.alloc(32), extensions: [] }), []),
      badPolicy: run(chain, 'register', { origin: 'x.example/log', policy: 'nonsense\n' }),
    };
    assert.deepEqual(codes, {
      fork: 'ANCHOR_FORK',
      forkedExtension: 'ANCHOR_BAD_PROOF',
      rollback: 'ANCHOR_ROLLBACK',
      badSignature: 'ANCHOR_BAD_SIGNATURE',
      shortQuorum: 'ANCHOR_QUORUM_NOT_MET',
      badProof: 'ANCHOR_BAD_PROOF',
      missingProof: 'ANCHOR_BAD_PROOF',
      malformed: 'ANCHOR_BAD_ARGS',
      unknownLog: 'ANCHOR_UNKNOWN_LOG',
      badPolicy: 'ANCHOR_BAD_POLICY',
    });
    // nothing refused changed the anchored checkpoint
    assert.equal((chain.query('anchor', 'checkpoint', { origin: ORIGIN }) as { size: number }).size, 10);
    // and the honest extension still goes through
    assert.equal(submit(chain, cosigned(log, 15), log.proof(10, 15)), 'OK');
  });
});
