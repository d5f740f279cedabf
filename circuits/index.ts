/**
 * Anonymous group membership with Groth16 (issue 7): what the gateway and the client import.
 *
 * Gateway side (the cage):
 *   const zk = await ZkVerifier.create({ pool: { size: 2 } });          // key parsed once, worker pool
 *   const ok = await zk.verifyRequestProof(req.headers['cage-zk-proof'],
 *       { method, target, contentDigest, now: Date.now() },
 *       { scope: route.zk.scope, epoch: epochAt(Date.now(), route.zk.epochSeconds), groups: (id) => groups.get(id) });
 *   // → { mode, group, root, rootStatus, nullifier, scope, epoch }; the gateway then enforces the
 *   //   nullifier limit per (scope, epoch) and audits { group, root, nullifier } only.
 *   const s = await zk.verifySessionProof(header, { scope, epoch, groups });   // + s.sessionKey (Ed25519, raw)
 *   await zk.close();
 *   Every failure is a CageError: ZK_BAD_HEADER, ZK_WRONG_MODE, ZK_WRONG_SCOPE, ZK_WRONG_EPOCH,
 *   ZK_EXPIRED, ZK_UNKNOWN_GROUP, ZK_UNKNOWN_ROOT, ZK_STALE_ROOT, ZK_WRONG_SIGNAL, ZK_BAD_PROOF, ZK_BUSY.
 *   Groups: `Group` (add / remove / rootStatus / recentRoots / toJSON / fromJSON) is the root history.
 *
 * Client side: client/zk.ts (createIdentity, proveAccess, openSession) on top of Prover.
 */
export { artifactPaths, defaultArtifactsDir, requireArtifacts, type ArtifactPaths } from './artifacts.js';
export { contentDigestOf, DEFAULT_EPOCH_SECONDS, epochAt, requestSignal, scopeToField, sessionSignal, SNARK_SCALAR_FIELD, type BoundRequest } from './field.js';
export { Groth16Verifier, readVerificationKey, type VerificationKeyJson } from './groth16.js';
export { DEFAULT_ROOT_HISTORY, Group, GROUP_FORMAT, MAX_MEMBERS, TREE_DEPTH, type GroupExport, type GroupOptions, type MerkleProof, type RootStatus } from './group.js';
export { decodeZkHeader, encodeZkHeader, MAX_HEADER_LENGTH, ZK_PROOF_HEADER, type ZkProofHeader } from './header.js';
export { createIdentity, exportIdentity, importIdentity, nullifierFor, Prover, type Identity, type IdentityFile } from './prover.js';
export { VerifyPool, type VerifyPoolOptions } from './verify-pool.js';
export {
  DEFAULT_WINDOW_SECONDS, ZkVerifier, type GroupLookup, type RootHistory, type ZkContext, type ZkRequestContext, type ZkRequestFacts, type ZkSessionVerified, type ZkVerified, type ZkVerifierOptions,
} from './verifier.js';
