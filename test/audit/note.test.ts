import { strict as assert } from 'node:assert';
import { createPublicKey, verify } from 'node:crypto';
import fc from 'fast-check';
import {
  computeKeyId,
  cosignatureMessage,
  createCosigner,
  createVerifier,
  formatNote,
  generateSigner,
  openNote,
  parseNote,
  parseVerifierKey,
  SIG_TYPE_COSIGNATURE_V1,
  signNote,
} from '../../audit/note.js';
import { code } from './fixtures.js';

const seed = (n: number) => Buffer.alloc(32, n);

// Note text: lines of printable Unicode (no control characters), ending in a newline.
// eslint-disable-next-line no-control-regex -- generating text without control characters
const CONTROLS = /[\0-\x1f\x7f-\x9f]/g;
const noteText = fc
  .array(fc.string({ unit: 'grapheme', maxLength: 40 }).map((s) => s.replace(CONTROLS, '')), { minLength: 1, maxLength: 6 })
  .map((lines) => lines.join('\n') + '\n');

describe('audit/note', () => {
  const log = generateSigner('example.com/log', seed(1));
  const other = generateSigner('example.com/other', seed(2));

  it('generateSigner gives a signer, a signer key and a verifier key that agree', () => {
    const v = parseVerifierKey(log.verifierKey);
    assert.equal(v.name, 'example.com/log');
    assert.equal(v.keyId, log.signer.keyId);
    assert.equal(v.keyId, computeKeyId('example.com/log', 1, v.publicKey));
    assert.deepEqual(v.publicKey, log.signer.verifier.publicKey);
    assert.match(log.signerKey, /^PRIVATE\+KEY\+example\.com\/log\+[0-9a-f]{8}\+/);
    assert.notEqual(generateSigner('x').verifierKey, generateSigner('x').verifierKey);
    // Parsed once: the same key string gives the same verifier (and its imported KeyObject).
    assert.equal(parseVerifierKey(log.verifierKey), v);
  });

  it('signs and opens any valid note text; parse and format round-trip', () => {
    fc.assert(
      fc.property(noteText, (text) => {
        const signed = signNote(text, [log.signer, other.signer]);
        const parsed = parseNote(signed);
        assert.equal(parsed.text, text);
        assert.equal(formatNote(parsed), signed);
        const opened = openNote(signed, [log.signer.verifier]);
        assert.deepEqual(opened.verified.map((s) => s.name), ['example.com/log']);
        assert.deepEqual(opened.unverified.map((s) => s.name), ['example.com/other']);
        assert.equal(openNote(Buffer.from(signed, 'utf8'), [other.signer.verifier]).verified.length, 1);
      }),
      { numRuns: 200 },
    );
  });

  it('ignores signatures whose name or key ID (but not both) match a known key', () => {
    const text = 'hello\n';
    const signed = signNote(text, [log.signer]);
    const sameNameOtherKey = generateSigner('example.com/log', seed(3));
    const sameIdOtherName = createVerifier('example.com/elsewhere', log.signer.verifier.publicKey);
    // Only the other key is known: the log's line does not match it (different key ID) and is ignored.
    assert.equal(code(() => openNote(signed, [sameNameOtherKey.signer.verifier])), 'AUDIT_BAD_SIGNATURE');
    assert.equal(code(() => openNote(signed, [sameIdOtherName])), 'AUDIT_BAD_SIGNATURE');
    // A line with the log's name and key ID but a signature by another key: known, fails, rejects.
    const forged = signNote(text, [{ ...sameNameOtherKey.signer, keyId: log.signer.keyId }]);
    assert.equal(code(() => openNote(forged, [log.signer.verifier])), 'AUDIT_BAD_SIGNATURE');
  });

  it('a failing known signature rejects the note even when another verifies (and even a duplicate)', () => {
    const text = 'hello\n';
    const good = signNote(text, [log.signer, other.signer]);
    const lines = good.split('\n');
    const bad = signNote('bye\n', [other.signer]).split('\n')[2]!;
    const mixed = [lines[0], '', lines[2], bad, ''].join('\n');
    assert.equal(openNote(mixed, [log.signer.verifier]).verified.length, 1);
    assert.equal(code(() => openNote(mixed, [log.signer.verifier, other.signer.verifier])), 'AUDIT_BAD_SIGNATURE');
    const dup = [lines[0], '', lines[3], bad, ''].join('\n');
    assert.equal(code(() => openNote(dup, [other.signer.verifier])), 'AUDIT_BAD_SIGNATURE');
  });

  it('refuses two different verifiers sharing a name and key ID', () => {
    const v = log.signer.verifier;
    const clash = { ...createVerifier('example.com/log', other.signer.verifier.publicKey), keyId: v.keyId };
    assert.equal(code(() => openNote(signNote('a\n', [log.signer]), [v, clash])), 'AUDIT_BAD_KEY');
    assert.equal(openNote(signNote('a\n', [log.signer]), [v, v]).verified.length, 1);
  });

  describe('cosignatures (tlog-cosignature v1, type 0x04)', () => {
    const body = 'example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n';
    const witness = generateSigner('witness.example.com/w1', seed(9));
    const cosigner = createCosigner(witness.signerKey, () => 1679315147);

    it('uses the 0x04 key ID and vkey, and signs 8-byte timestamp ‖ Ed25519 over the v1 message', () => {
      assert.equal(cosigner.type, SIG_TYPE_COSIGNATURE_V1);
      assert.equal(cosigner.keyId, computeKeyId('witness.example.com/w1', 0x04, witness.signer.verifier.publicKey));
      assert.notEqual(cosigner.keyId, witness.signer.keyId);
      const vkey = parseVerifierKey(cosigner.verifier.verifierKey);
      assert.equal(vkey.type, 0x04);
      const sig = cosigner.sign(Buffer.from(body));
      assert.equal(sig.length, 72);
      assert.equal(sig.readBigUInt64BE(0), 1679315147n);
      const msg = cosignatureMessage(Buffer.from(body), 1679315147);
      assert.equal(msg.toString(), 'cosignature/v1\ntime 1679315147\n' + body);
      const pub = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: vkey.publicKey.toString('base64url') }, format: 'jwk' });
      assert.ok(verify(null, msg, pub, sig.subarray(8)));
    });

    it('verifies in a note and reports the timestamp; a changed timestamp fails', () => {
      const note = signNote(body, [log.signer, cosigner]);
      const opened = openNote(note, [log.signer.verifier, cosigner.verifier]);
      assert.equal(opened.verified[1]!.timestamp, 1679315147);
      const parsed = parseNote(note);
      const cs = parsed.signatures[1]!;
      const raw = Buffer.from(cs.base64, 'base64');
      raw.writeBigUInt64BE(1679315148n, 4);
      const tampered = formatNote({ text: parsed.text, signatures: [parsed.signatures[0]!, { ...cs, base64: raw.toString('base64') }] });
      assert.equal(code(() => openNote(tampered, [log.signer.verifier, cosigner.verifier])), 'AUDIT_BAD_SIGNATURE');
      // The Ed25519 key as a plain note signer does not verify as a cosigner, and vice versa.
      assert.equal(code(() => openNote(signNote(body, [witness.signer]), [cosigner.verifier])), 'AUDIT_BAD_SIGNATURE');
    });

    it('refuses a clock that is not a UNIX time in seconds', () => {
      assert.equal(code(() => createCosigner(witness.signerKey, () => 1.5).sign(Buffer.from(body))), 'AUDIT_BAD_SIGNATURE');
      assert.equal(code(() => createCosigner(witness.signerKey, () => -1).sign(Buffer.from(body))), 'AUDIT_BAD_SIGNATURE');
    });
  });
});
