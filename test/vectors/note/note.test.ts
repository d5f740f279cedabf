import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { isCageError } from '../../../core/errors.js';
import { leafHash } from '../../../audit/hash.js';
import { formatCheckpoint, parseCheckpoint } from '../../../audit/checkpoint.js';
import { computeKeyId, formatKeyId, openNote, parseNote, parseSignatureLine, parseSignerKey, parseVerifierKey, signNote, SIG_TYPE_ED25519 } from '../../../audit/note.js';

interface NoteVectors {
  peterVerifierKey: string;
  peterSignerKey: string;
  peterKeyId: string;
  enochVerifierKey: string;
  enochKeyId: string;
  text: string;
  peterSig: string;
  enochSig: string;
  signedByPeter: string;
  badVerifierKeys: string[];
  treeNote: string;
  treeNoteLeaf: string;
  treeNoteSize: number;
  badTrees: string[];
  specExampleSignatureLine: string;
}

const v = JSON.parse(readFileSync(new URL('./vectors.json', import.meta.url), 'utf8')) as NoteVectors;

function code(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    assert.ok(isCageError(err), `not a CageError: ${String(err)}`);
    return err.code;
  }
}

describe('vectors: signed notes (golang.org/x/mod/sumdb/note)', () => {
  const peter = parseVerifierKey(v.peterVerifierKey);
  const enoch = parseVerifierKey(v.enochVerifierKey);

  it('parses the verifier keys and recomputes their key IDs', () => {
    assert.equal(peter.name, 'PeterNeumann');
    assert.equal(formatKeyId(peter.keyId), v.peterKeyId);
    assert.equal(formatKeyId(computeKeyId('PeterNeumann', SIG_TYPE_ED25519, peter.publicKey)), v.peterKeyId);
    assert.equal(formatKeyId(enoch.keyId), v.enochKeyId);
    assert.equal(peter.verifierKey, v.peterVerifierKey);
  });

  it('refuses every truncation and every one-byte mangling of the verifier key, and the adjusted bad keys', () => {
    const k = v.peterVerifierKey;
    for (let i = 0; i <= k.length; i++) {
      for (let j = i + 1; j <= k.length; j++) {
        if (i === 0 && j === k.length) continue;
        assert.equal(code(() => parseVerifierKey(k.slice(i, j))), 'AUDIT_BAD_KEY', k.slice(i, j));
      }
    }
    for (let i = 0; i < k.length; i++) {
      const m = k.slice(0, i) + String.fromCharCode(k.charCodeAt(i) + 1) + k.slice(i + 1);
      assert.equal(code(() => parseVerifierKey(m)), 'AUDIT_BAD_KEY', m);
    }
    for (const bad of v.badVerifierKeys) assert.equal(code(() => parseVerifierKey(bad)), 'AUDIT_BAD_KEY', bad);
  });

  it('refuses every truncation and every one-byte mangling of the signer key', () => {
    const k = v.peterSignerKey;
    assert.equal(parseSignerKey(k).verifier.verifierKey, v.peterVerifierKey);
    for (let i = 0; i <= k.length; i++) {
      for (let j = i + 1; j <= k.length; j++) {
        if (i === 0 && j === k.length) continue;
        assert.equal(code(() => parseSignerKey(k.slice(i, j))), 'AUDIT_BAD_KEY', k.slice(i, j));
      }
    }
    for (let i = 0; i < k.length; i++) {
      const m = k.slice(0, i) + String.fromCharCode(k.charCodeAt(i) + 1) + k.slice(i + 1);
      assert.equal(code(() => parseSignerKey(m)), 'AUDIT_BAD_KEY', m);
    }
  });

  it('signs the text exactly as Go does (Ed25519 is deterministic)', () => {
    const signer = parseSignerKey(v.peterSignerKey);
    assert.equal(signNote(v.text, [signer]), v.signedByPeter);
    // An existing signature by the same key is replaced.
    const stale = parseSignatureLine(v.peterSig.slice(0, -1));
    assert.equal(signNote(v.text, [signer], [{ ...stale, base64: stale.base64 }]), v.signedByPeter);
  });

  it('opens notes as TestOpen does: known keys verified, unknown ones kept aside', () => {
    const both = v.text + '\n' + v.peterSig + v.enochSig;
    const one = openNote(both, [peter]);
    assert.equal(one.text, v.text);
    assert.deepEqual(one.verified.map((s) => s.name), ['PeterNeumann']);
    assert.deepEqual(one.unverified.map((s) => s.name), ['EnochRoot']);
    const two = openNote(both, [peter, enoch]);
    assert.deepEqual(two.verified.map((s) => s.name), ['PeterNeumann', 'EnochRoot']);
    assert.equal(two.unverified.length, 0);
    assert.equal(code(() => openNote(both, [])), 'AUDIT_BAD_SIGNATURE');
  });

  it('lists duplicate lines once', () => {
    const n = openNote(v.text + '\n' + v.peterSig + v.peterSig + v.enochSig + v.enochSig, [peter]);
    assert.equal(n.verified.length, 1);
    assert.equal(n.unverified.length, 1);
  });

  it('refuses more than 100 signatures, and a corrupted known signature', () => {
    assert.equal(code(() => openNote(v.text + '\n' + v.peterSig.repeat(101), [peter])), 'AUDIT_BAD_NOTE');
    assert.equal(code(() => openNote(v.text + '\n' + v.peterSig.repeat(101), [])), 'AUDIT_BAD_NOTE');
    const corrupt = v.peterSig.slice(0, 60) + 'ABCD' + v.peterSig.slice(60);
    assert.equal(code(() => openNote(v.text + '\n' + corrupt, [peter])), 'AUDIT_BAD_SIGNATURE');
  });

  it('refuses the malformed messages of TestOpen', () => {
    const bad = [
      v.text,
      v.text + '\n',
      v.text + '\n' + v.peterSig.slice(0, -1),
      '\x01' + v.text + '\n' + v.peterSig,
      v.text + '\n' + '\u2014 Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=',
      v.text + '\n' + v.peterSig + 'Unexpected line.\n',
    ];
    for (const msg of bad) assert.equal(code(() => openNote(msg, [peter])), 'AUDIT_BAD_NOTE', JSON.stringify(msg));
    // Invalid UTF-8 ("\xff" in Go) arrives as bytes.
    const bytes = Buffer.concat([Buffer.from([0xff]), Buffer.from(v.text + '\n' + v.peterSig, 'utf8')]);
    assert.equal(code(() => openNote(bytes, [peter])), 'AUDIT_BAD_NOTE');
  });

  it('parses the signature line of the signed-note spec example', () => {
    const s = parseSignatureLine(v.specExampleSignatureLine);
    assert.equal(s.name, 'quasimodo.example/salvatore');
    assert.equal(s.signature.length, 64);
  });

  it('parses the Go tree note as a checkpoint body', () => {
    const cp = parseCheckpoint(v.treeNote);
    assert.equal(cp.origin, 'go.sum database tree');
    assert.equal(cp.size, v.treeNoteSize);
    assert.deepEqual(cp.rootHash, leafHash(Buffer.from(v.treeNoteLeaf)));
    assert.equal(formatCheckpoint(cp), v.treeNote);
    for (const bad of v.badTrees) assert.equal(code(() => parseCheckpoint(bad)), 'AUDIT_BAD_CHECKPOINT', bad);
  });

  it('parseNote keeps the text up to the last blank line', () => {
    const n = parseNote('a\n\nb\n\n' + v.peterSig);
    assert.equal(n.text, 'a\n\nb\n');
  });
});
