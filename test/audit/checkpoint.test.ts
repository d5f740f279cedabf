import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import { EMPTY_ROOT } from '../../audit/hash.js';
import { formatCheckpoint, openCheckpoint, parseCheckpoint, signCheckpoint, type Checkpoint } from '../../audit/checkpoint.js';
import { createCosigner, generateSigner, parseNote, signNote } from '../../audit/note.js';
import { code } from './fixtures.js';


// eslint-disable-next-line no-control-regex -- generating text without control characters
const line = fc.string({ minLength: 1, maxLength: 30 }).filter((s) => !/[\0-\x1f]/.test(s));
const checkpoint: fc.Arbitrary<Checkpoint> = fc.record({
  origin: line,
  size: fc.oneof(fc.nat({ max: 1000 }), fc.constant(Number.MAX_SAFE_INTEGER), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER })),
  rootHash: fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b)),
  extensions: fc.array(line, { maxLength: 3 }),
});

describe('audit/checkpoint', () => {
  const log = generateSigner('example.com/log', Buffer.alloc(32, 1));
  const cp: Checkpoint = { origin: 'example.com/log', size: 5, rootHash: Buffer.alloc(32, 7), extensions: [] };

  it('parse(format(cp)) is cp for any checkpoint', () => {
    fc.assert(
      fc.property(checkpoint, (c) => {
        const body = formatCheckpoint(c);
        assert.deepEqual(parseCheckpoint(body), { ...c, extensions: [...c.extensions] });
        assert.equal(formatCheckpoint(parseCheckpoint(body)), body);
      }),
    );
  });

  it('parses the tlog-checkpoint example body', () => {
    const c = parseCheckpoint('example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n');
    assert.equal(c.origin, 'example.com/behind-the-sofa');
    assert.equal(c.size, 20852163);
    assert.equal(c.rootHash.toString('base64'), 'CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=');
  });

  it('signs and opens a checkpoint with the log key', () => {
    const note = signCheckpoint(log.signer, cp);
    const opened = openCheckpoint(note, log.verifierKey);
    assert.deepEqual(opened.checkpoint, cp);
    assert.equal(opened.body, formatCheckpoint(cp));
    assert.equal(opened.logSignature.name, 'example.com/log');
    assert.equal(opened.cosignatures.length, 0);
  });

  it('returns cosignatures: verified with known cosigners, the rest as other signature lines', () => {
    const w1 = createCosigner(generateSigner('w1.example', Buffer.alloc(32, 2)).signerKey, () => 1700000000);
    const w2 = createCosigner(generateSigner('w2.example', Buffer.alloc(32, 3)).signerKey, () => 1700000001);
    const note = signCheckpoint([log.signer, w1, w2], cp);
    const plain = openCheckpoint(note, log.signer.verifier);
    assert.deepEqual(plain.otherSignatures.map((s) => s.name), ['w1.example', 'w2.example']);
    const withW1 = openCheckpoint(note, log.signer.verifier, { cosigners: [w1.verifier] });
    assert.deepEqual(withW1.cosignatures.map((s) => [s.name, s.timestamp]), [['w1.example', 1700000000]]);
    assert.deepEqual(withW1.otherSignatures.map((s) => s.name), ['w2.example']);
  });

  it('requires the log signature, the expected origin, and a well-formed body', () => {
    const other = generateSigner('example.com/log', Buffer.alloc(32, 4));
    assert.equal(code(() => openCheckpoint(signCheckpoint(other.signer, cp), log.signer.verifier)), 'AUDIT_BAD_SIGNATURE');
    const w = createCosigner(generateSigner('w1.example', Buffer.alloc(32, 2)).signerKey, () => 1);
    // Only a cosignature verifies: still not signed by the log.
    assert.equal(code(() => openCheckpoint(signCheckpoint(w, cp), log.signer.verifier, { cosigners: [w.verifier] })), 'AUDIT_BAD_SIGNATURE');
    const foreign = signCheckpoint(log.signer, { ...cp, origin: 'example.com/other' });
    assert.equal(code(() => openCheckpoint(foreign, log.signer.verifier)), 'AUDIT_BAD_CHECKPOINT');
    assert.deepEqual(openCheckpoint(foreign, log.signer.verifier, { origin: 'example.com/other' }).checkpoint.origin, 'example.com/other');
    const twoLines = signNote('example.com/log\n5\n', [log.signer]);
    assert.equal(code(() => openCheckpoint(twoLines, log.signer.verifier)), 'AUDIT_BAD_CHECKPOINT');
  });

  it('a changed body byte breaks the log signature', () => {
    const note = signCheckpoint(log.signer, { ...cp, rootHash: EMPTY_ROOT, size: 0 });
    const n = parseNote(note);
    const tampered = note.replace('\n0\n', '\n1\n');
    assert.notEqual(tampered, note);
    assert.equal(n.signatures.length, 1);
    assert.equal(code(() => openCheckpoint(tampered, log.signer.verifier)), 'AUDIT_BAD_SIGNATURE');
  });
});
