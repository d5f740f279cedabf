import assert from 'node:assert/strict';
import { parseCheckpoint, signCheckpoint } from '../../audit/checkpoint.js';
import { parseNote } from '../../audit/note.js';
import { isCageError } from '../../core/errors.js';
import { verifyAnchored } from '../../chain/anchor-verify.js';
import type { ChainClient } from '../../chain/client.js';
import { TestLog } from '../notary/helpers.js';

const ORIGIN = 'example.com/verified-log';

/** A stand-in for a node's RPC that anchors `note` at height 7 (or nothing). */
function fakeNode(note: string | null): ChainClient {
  return {
    call: async (method: string) => {
      if (method === 'chain_head') return { height: 9 };
      if (note === null) return null;
      return { checkpoint: note, height: 7, txHash: 'ab'.repeat(32) };
    },
  } as unknown as ChainClient;
}

describe('chain/anchor-verify', () => {
  const log = new TestLog(ORIGIN, 3);
  const fork = new TestLog(ORIGIN, 3, 'other ');
  const proven = (l: TestLog, size: number) => parseCheckpoint(parseNote(l.checkpoint(size)).text);

  it('accepts the same checkpoint, or a later one with a consistency proof', async () => {
    assert.equal((await verifyAnchored(fakeNode(log.checkpoint(10)), proven(log, 10), log.verifier)).height, 7);
    const later = await verifyAnchored(fakeNode(log.checkpoint(20)), proven(log, 10), log.verifier, async (o, n) => log.proof(o, n));
    assert.equal(later.anchored.size, 20);
  });

  it('refuses no anchor, a fork, an inconsistent later one, a missing proof source and a forged anchor with distinct codes', async () => {
    const codes: string[] = [];
    const attempt = async (p: Promise<unknown>): Promise<void> => {
      await p.then(
        () => codes.push('OK'),
        (e) => codes.push(isCageError(e) ? e.code : String(e)),
      );
    };
    await attempt(verifyAnchored(fakeNode(null), proven(log, 10), log.verifier));
    await attempt(verifyAnchored(fakeNode(fork.checkpoint(10)), proven(log, 10), log.verifier));
    await attempt(verifyAnchored(fakeNode(fork.checkpoint(20)), proven(log, 10), log.verifier, async (o, n) => fork.proof(o, n)));
    await attempt(verifyAnchored(fakeNode(log.checkpoint(20)), proven(log, 10), log.verifier));
    const impostor = new TestLog(ORIGIN, 99);
    await attempt(verifyAnchored(fakeNode(signCheckpoint(impostor.signer, { origin: ORIGIN, size: 10, rootHash: log.tree.root(10), extensions: [] })), proven(log, 10), log.verifier));
    assert.deepEqual(codes, ['ANCHOR_NOT_ANCHORED', 'ANCHOR_FORK', 'ANCHOR_BAD_PROOF', 'ANCHOR_NOT_ANCHORED', 'ANCHOR_BAD_SIGNATURE']);
  });
});
