/**
 * Checks that a checkpoint a verifier holds (from a tlog-proof) is anchored on the chain in a final
 * block: the chain's anchored checkpoint of exactly that size has the same root, or a later
 * anchored checkpoint is consistent with it (RFC 9162 consistency proof, supplied by the caller
 * from the log's published tiles). The anchored note's log signature is verified with the key the
 * verifier trusts, not the chain's word. QBFT has immediate finality: every block a node serves is
 * final, so "in a block at or below the head" is "final".
 *
 * Trust: the RPC endpoint is not trusted for the checkpoint (its signature is checked); it is
 * trusted to say what the chain holds (ask a validator you trust, or several).
 */
import { openCheckpoint, type Checkpoint } from '../audit/checkpoint.js';
import { verifyConsistency } from '../audit/merkle.js';
import type { NoteVerifier } from '../audit/note.js';
import { CageError, isCageError } from '../core/errors.js';
import type { ChainClient } from './client.js';
import type { AnchoredCheckpoint } from './modules/anchor.js';

export interface AnchorVerdict {
  /** The anchored checkpoint that covers the proven one (same size, or a later consistent one). */
  readonly anchored: Checkpoint;
  readonly height: number;
  readonly txHash: string;
  readonly head: number;
}

export async function verifyAnchored(
  client: ChainClient,
  proven: Checkpoint,
  logVerifier: NoteVerifier,
  consistency?: (oldSize: number, newSize: number) => Promise<Uint8Array[]>,
): Promise<AnchorVerdict> {
  const notAnchored = (message: string): CageError => new CageError({ code: 'ANCHOR_NOT_ANCHORED', message });
  const a = await client.call<AnchoredCheckpoint | null>('anchor_checkpoint', [{ origin: proven.origin, atLeast: proven.size }]);
  if (a === null) throw notAnchored(`no checkpoint of ${proven.origin} with size >= ${proven.size} is anchored`);
  const head = (await client.call<{ height: number }>('chain_head')).height;
  if (!(a.height <= head)) throw notAnchored(`the anchor is at height ${a.height}, above the head ${head}`);
  let anchored: Checkpoint;
  try {
    anchored = openCheckpoint(a.checkpoint, logVerifier, { origin: proven.origin }).checkpoint;
  } catch (err) {
    throw new CageError({ code: 'ANCHOR_BAD_SIGNATURE', message: `the anchored checkpoint does not verify with the log key: ${(err as Error).message}`, cause: err });
  }
  if (anchored.size < proven.size) throw notAnchored('the node answered a smaller checkpoint than asked');
  if (anchored.size === proven.size) {
    if (!anchored.rootHash.equals(proven.rootHash)) throw new CageError({ code: 'ANCHOR_FORK', message: `the chain anchors size ${proven.size} with another root hash: the log forked` });
  } else {
    if (consistency === undefined) throw notAnchored(`size ${proven.size} is covered by the anchored size ${anchored.size}; give the log (--log) to prove consistency`);
    try {
      verifyConsistency(proven.size, anchored.size, await consistency(proven.size, anchored.size), proven.rootHash, anchored.rootHash);
    } catch (err) {
      if (isCageError(err, 'AUDIT_BAD_PROOF')) throw new CageError({ code: 'ANCHOR_BAD_PROOF', message: `the anchored size ${anchored.size} is not consistent with the proven checkpoint: ${err.message}` });
      throw err;
    }
  }
  return { anchored, height: a.height, txHash: a.txHash, head };
}
