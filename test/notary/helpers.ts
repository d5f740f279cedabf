/** Shared fixtures for the notary tests: a log (MemoryTree + signed checkpoints) and notary keys. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { signCheckpoint } from '../../audit/checkpoint.js';
import { MemoryTree } from '../../audit/merkle.js';
import { createCosigner, generateSigner, type NoteSigner, type NoteVerifier } from '../../audit/note.js';
import { didKeyFromPublicKey, notaryVerifier } from '../../notary/did.js';
import { formatAddCheckpointBody } from '../../notary/witness.js';

export const ORIGIN = 'example.com/log';

/** A log: its key, a tree of `n` entries, and signed checkpoints of any prefix. */
export class TestLog {
  readonly signer: NoteSigner;
  readonly verifier: NoteVerifier;
  readonly tree = new MemoryTree();

  constructor(
    readonly origin = ORIGIN,
    seedByte = 1,
    /** Entries are `${prefix}${i}`: two logs with other prefixes fork. */
    readonly prefix = 'entry ',
  ) {
    this.signer = generateSigner(origin, Buffer.alloc(32, seedByte)).signer;
    this.verifier = this.signer.verifier;
  }

  grow(size: number): this {
    while (this.tree.size < size) this.tree.append(Buffer.from(`${this.prefix}${this.tree.size}`));
    return this;
  }

  checkpoint(size: number, signer: NoteSigner = this.signer): string {
    this.grow(size);
    return signCheckpoint(signer, { origin: this.origin, size, rootHash: this.tree.root(size), extensions: [] });
  }

  proof(oldSize: number, newSize: number): Buffer[] {
    this.grow(newSize);
    return oldSize === 0 ? [] : this.tree.consistencyProof(oldSize, newSize);
  }

  /** The add-checkpoint body from oldSize to size (proof from this log's own tree). */
  body(oldSize: number, size: number): string {
    return formatAddCheckpointBody(oldSize, this.proof(oldSize, size), this.checkpoint(size));
  }
}

export interface TestNotary {
  readonly did: string;
  readonly signerKey: string;
  readonly cosigner: NoteSigner;
  readonly verifier: NoteVerifier;
  readonly publicKey: Buffer;
}

/** A notary key named by its did:key; cosignature timestamps come from `clock` (UNIX seconds). */
export function testNotary(seedByte: number, clock: () => number = () => 1_700_000_000): TestNotary {
  const seed = Buffer.alloc(32, seedByte);
  const publicKey = generateSigner('tmp', seed).signer.verifier.publicKey;
  const did = didKeyFromPublicKey(publicKey);
  const { signerKey } = generateSigner(did, seed);
  const cosigner = createCosigner(signerKey, clock);
  return { did, signerKey, cosigner, verifier: notaryVerifier(did, publicKey), publicKey };
}

export async function tempDir(prefix = 'cage-notary-'): Promise<{ path: string; remove: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}
