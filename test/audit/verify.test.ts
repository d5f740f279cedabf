import { strict as assert } from 'node:assert';
import { signCheckpoint } from '../../audit/checkpoint.js';
import { EMPTY_ROOT, leafHash } from '../../audit/hash.js';
import { MemoryTree } from '../../audit/merkle.js';
import { createCosigner, generateSigner } from '../../audit/note.js';
import { parsePolicy } from '../../audit/policy.js';
import { formatProof, parseProof } from '../../audit/proof.js';
import { encodeRecord } from '../../audit/record.js';
import { parseProofHashes, verifyConsistencyBetween, verifyProof } from '../../audit/verify.js';
import { SAMPLE, code } from './fixtures.js';


describe('audit/verify', () => {
  const ORIGIN = 'cage.example/log';
  const log = generateSigner(ORIGIN, Buffer.alloc(32, 1));
  const witness = createCosigner(generateSigner('w.example', Buffer.alloc(32, 2)).signerKey, () => 1700000000);
  const records = Array.from({ length: 13 }, (_, i) => encodeRecord({ ...SAMPLE, requestId: `r${i}`, status: 200 + i }));
  const tree = new MemoryTree();
  tree.append(Buffer.from('not a record'));
  for (const r of records) tree.append(r);
  const size = tree.size;
  const note = signCheckpoint([log.signer, witness], { origin: ORIGIN, size, rootHash: tree.root(), extensions: [] });
  const proofFor = (index: number, extra?: Buffer) => formatProof({ ...(extra === undefined ? {} : { extra }), index, proof: tree.inclusionProof(index), checkpoint: note });

  it('verifies every record from its proof file alone (record carried as extra data)', () => {
    records.forEach((r, i) => {
      const res = verifyProof({ proof: proofFor(i + 1, r), logKey: log.verifierKey });
      assert.equal(res.ok, true);
      assert.equal(res.index, i + 1);
      assert.equal(res.checkpoint.size, size);
      assert.deepEqual(res.leafHash, leafHash(r));
      assert.equal(res.record!.requestId, `r${i}`);
      assert.deepEqual(res.recordBytes, r);
    });
  });

  it('verifies a record the user holds, or its leaf hash, against a proof without extra data', () => {
    assert.equal(verifyProof({ proof: proofFor(3), logKey: log.verifierKey, record: records[2]! }).record!.requestId, 'r2');
    const res = verifyProof({ proof: proofFor(3), logKey: log.signer.verifier, leafHash: leafHash(records[2]!) });
    assert.equal(res.record, undefined);
  });

  it('reports cosignatures of known witnesses, and checks a policy quorum', () => {
    const res = verifyProof({ proof: proofFor(1, records[0]), logKey: log.verifierKey, cosigners: [witness.verifier] });
    assert.deepEqual(res.cosignatures.map((s) => [s.name, s.timestamp]), [['w.example', 1700000000]]);
    const policy = parsePolicy(`log ${log.verifierKey}\nwitness W ${witness.verifier.verifierKey}\nquorum W\n`);
    assert.deepEqual(verifyProof({ proof: proofFor(1, records[0]), policy }).witnesses, ['W']);
    const strict = parsePolicy(`log ${log.verifierKey}\nwitness W ${witness.verifier.verifierKey}\nwitness V ${createCosigner(generateSigner('v.example', Buffer.alloc(32, 3)).signerKey, () => 1).verifier.verifierKey}\ngroup G all W V\nquorum G\n`);
    assert.equal(code(() => verifyProof({ proof: proofFor(1, records[0]), policy: strict })), 'AUDIT_QUORUM_NOT_MET');
  });

  it('names exactly what failed', () => {
    const key = log.verifierKey;
    // Record mismatch: the user's record is not the one the log holds at that index.
    assert.equal(code(() => verifyProof({ proof: proofFor(3, records[2]), logKey: key, record: records[3]! })), 'AUDIT_BAD_RECORD');
    // Without the carried record, the same mismatch is an inclusion failure.
    assert.equal(code(() => verifyProof({ proof: proofFor(3), logKey: key, record: records[3]! })), 'AUDIT_BAD_PROOF');
    // Extra data replaced in the file: its hash is not in the tree.
    assert.equal(code(() => verifyProof({ proof: proofFor(3, records[3]), logKey: key })), 'AUDIT_BAD_PROOF');
    assert.equal(code(() => verifyProof({ proof: proofFor(3), logKey: key })), 'AUDIT_BAD_RECORD');
    assert.equal(code(() => verifyProof({ proof: proofFor(3, records[2]), logKey: key, leafHash: leafHash(records[3]!) })), 'AUDIT_BAD_RECORD');
    // An entry that is in the log but is not a record.
    assert.equal(code(() => verifyProof({ proof: proofFor(0, Buffer.from('not a record')), logKey: key })), 'AUDIT_BAD_RECORD');
    // Signature: another key with the same name.
    assert.equal(code(() => verifyProof({ proof: proofFor(3, records[2]), logKey: generateSigner(ORIGIN, Buffer.alloc(32, 9)).verifierKey })), 'AUDIT_BAD_SIGNATURE');
    // Index beyond the checkpoint.
    const p = parseProof(proofFor(3, records[2]));
    assert.equal(code(() => verifyProof({ proof: formatProof({ ...p, index: size }), logKey: key })), 'AUDIT_BAD_PROOF');
    // A proof hash flipped.
    const flipped = p.proof.map((h, i) => (i === 1 ? Buffer.from(h.map((b, j) => (j === 0 ? b ^ 1 : b))) : h));
    assert.equal(code(() => verifyProof({ proof: formatProof({ ...p, proof: flipped }), logKey: key })), 'AUDIT_BAD_PROOF');
    assert.equal(code(() => verifyProof({ proof: proofFor(3, records[2]) })), 'AUDIT_BAD_KEY');
  });

  describe('verifyConsistencyBetween', () => {
    const at = (n: number) => signCheckpoint(log.signer, { origin: ORIGIN, size: n, rootHash: tree.root(n), extensions: [] });

    it('verifies every pair of checkpoints, with the proof as hashes or text', () => {
      for (let m = 0; m <= size; m++) {
        for (let n = m; n <= size; n++) {
          const proof = tree.consistencyProof(m, n);
          const r = verifyConsistencyBetween(at(m), at(n), proof, log.verifierKey);
          assert.equal(r.old.size, m);
          assert.equal(r.new.size, n);
          const text = proof.map((h) => h.toString('base64') + '\n').join('');
          assert.deepEqual(parseProofHashes(text), proof);
          verifyConsistencyBetween(at(m), at(n), text, log.signer.verifier);
        }
      }
    });

    it('refuses reversed, forked, foreign and malformed inputs', () => {
      assert.equal(code(() => verifyConsistencyBetween(at(9), at(4), tree.consistencyProof(4, 9), log.verifierKey)), 'AUDIT_BAD_PROOF');
      const fork = new MemoryTree();
      for (let i = 0; i < 9; i++) fork.append(Buffer.from(`fork ${i}`));
      const forked = signCheckpoint(log.signer, { origin: ORIGIN, size: 9, rootHash: fork.root(), extensions: [] });
      assert.equal(code(() => verifyConsistencyBetween(at(4), forked, tree.consistencyProof(4, 9), log.verifierKey)), 'AUDIT_BAD_PROOF');
      const other = generateSigner(ORIGIN, Buffer.alloc(32, 7));
      assert.equal(code(() => verifyConsistencyBetween(at(4), at(9), tree.consistencyProof(4, 9), other.verifierKey)), 'AUDIT_BAD_SIGNATURE');
      const bogusEmpty = signCheckpoint(log.signer, { origin: ORIGIN, size: 0, rootHash: Buffer.alloc(32, 1), extensions: [] });
      assert.equal(code(() => verifyConsistencyBetween(bogusEmpty, at(9), [], log.verifierKey)), 'AUDIT_BAD_CHECKPOINT');
      verifyConsistencyBetween(signCheckpoint(log.signer, { origin: ORIGIN, size: 0, rootHash: EMPTY_ROOT, extensions: [] }), at(9), [], log.verifierKey);
      assert.equal(code(() => verifyConsistencyBetween(at(4), at(9), 'not base64\n', log.verifierKey)), 'AUDIT_BAD_PROOF');
      assert.equal(code(() => verifyConsistencyBetween(at(4), at(9), tree.consistencyProof(4, 9)[0]!.toString('base64'), log.verifierKey)), 'AUDIT_BAD_PROOF');
    });
  });
});
