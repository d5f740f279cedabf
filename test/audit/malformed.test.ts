/**
 * Hostile inputs for every audit parser, each asserting the error code (never the message).
 */
import { strict as assert } from 'node:assert';
import { isCageError, type CageErrorCode } from '../../core/errors.js';
import { openCheckpoint, parseCheckpoint, signCheckpoint } from '../../audit/checkpoint.js';
import { MemoryTree, rootFromInclusionProof, verifyConsistency, verifyInclusion } from '../../audit/merkle.js';
import { generateSigner, openNote, parseNote, parseSignerKey, parseVerifierKey, signNote, MAX_NOTE_BYTES } from '../../audit/note.js';
import { parsePolicy } from '../../audit/policy.js';
import { formatProof, parseProof } from '../../audit/proof.js';
import { decodeRecord, encodeRecord } from '../../audit/record.js';
import { decodeEntryBundle, encodeEntryBundle, parseTilePath } from '../../audit/tiles.js';
import { verifyProof } from '../../audit/verify.js';
import { SAMPLE } from './fixtures.js';

function expectCode(want: CageErrorCode, fn: () => unknown, what: string): void {
  try {
    fn();
  } catch (err) {
    assert.ok(isCageError(err), `${what}: not a CageError: ${String(err)}`);
    assert.equal(err.code, want, `${what}: ${err.message}`);
    return;
  }
  assert.fail(`${what}: accepted`);
}

const log = generateSigner('example.com/log', Buffer.alloc(32, 1));
const ROOT = Buffer.alloc(32, 5).toString('base64');
const body = `example.com/log\n3\n${ROOT}\n`;
const note = signNote(body, [log.signer]);
const sigLine = note.split('\n')[4]!;
const sig64 = sigLine.split(' ')[2]!;

describe('audit: malformed inputs', () => {
  describe('signed notes → AUDIT_BAD_NOTE', () => {
    it('every truncation of a signed note', () => {
      for (let i = 0; i < note.length; i++) expectCode('AUDIT_BAD_NOTE', () => openNote(note.slice(0, i), [log.signer.verifier]), `prefix ${i}`);
    });

    const cases: [string, string][] = [
      ['no blank line', body + sigLine + '\n'],
      ['no final newline', note.slice(0, -1)],
      ['line after the signatures', note + 'trailing\n'],
      ['blank line after the signatures', note + '\n'],
      ['ASCII dashes instead of an em dash', note.replace('\u2014 ', '-- ')],
      ['en dash', note.replace('\u2014', '\u2013')],
      ['no space after the dash', note.replace('\u2014 ', '\u2014')],
      ['name with a space', note.replace('example.com/log ', 'example com/log ')],
      ['name with a plus', note.replace('\u2014 example.com/log', '\u2014 example.com+log')],
      ['name with a no-break space', note.replace('\u2014 example.com/log', '\u2014 example.com\u00a0log')],
      ['empty name', note.replace('\u2014 example.com/log ', '\u2014  ')],
      ['no signature after the name', note.replace(' ' + sig64, '')],
      ['signature not base64', note.replace(sig64, '!!!!' + sig64.slice(4))],
      ['signature with whitespace', note.replace(sig64, sig64.slice(0, 8) + ' ' + sig64.slice(8))],
      ['signature without padding', note.replace(sig64, sig64.replace(/=+$/, ''))],
      ['signature with non-canonical trailing bits', note.replace(sig64, sig64.slice(0, -2) + 'N=')],
      ['signature too short for a key ID', note.replace(sig64, 'AAAA')],
      ['carriage return', note.replace(/\n/g, '\r\n')],
      ['tab in the text', note.replace('example.com/log\n3', 'example.com/log\t\n3')],
      ['NUL in the text', '\0' + note],
      ['lone surrogate', note.replace('3\n', '3\ud800\n')],
      ['101 signature lines', body + '\n' + (sigLine + '\n').repeat(101)],
      ['larger than the note limit', 'a'.repeat(MAX_NOTE_BYTES) + '\n\n' + sigLine + '\n'],
    ];
    for (const [what, text] of cases) it(what, () => expectCode('AUDIT_BAD_NOTE', () => openNote(text, [log.signer.verifier]), what));

    it('invalid UTF-8 bytes', () => {
      const b = Buffer.from(note, 'utf8');
      b[0] = 0xc3; // a lead byte followed by ASCII
      expectCode('AUDIT_BAD_NOTE', () => parseNote(b), 'bytes');
      expectCode('AUDIT_BAD_NOTE', () => parseNote(Buffer.from([0xed, 0xa0, 0x80, 0x0a, 0x0a])), 'encoded surrogate');
    });
  });

  describe('signatures → AUDIT_BAD_SIGNATURE', () => {
    it('a wrong key ID makes the only signature unknown', () => {
      const raw = Buffer.from(sig64, 'base64');
      raw[0] ^= 1;
      expectCode('AUDIT_BAD_SIGNATURE', () => openNote(note.replace(sig64, raw.toString('base64')), [log.signer.verifier]), 'key ID');
    });
    it('a truncated or extended signature from the known key', () => {
      const raw = Buffer.from(sig64, 'base64');
      expectCode('AUDIT_BAD_SIGNATURE', () => openNote(note.replace(sig64, raw.subarray(0, 67).toString('base64')), [log.signer.verifier]), 'short');
      expectCode('AUDIT_BAD_SIGNATURE', () => openNote(note.replace(sig64, Buffer.concat([raw, Buffer.alloc(1)]).toString('base64')), [log.signer.verifier]), 'long');
    });
    it('every flipped bit of the signature', () => {
      const raw = Buffer.from(sig64, 'base64');
      for (let i = 4 * 8; i < raw.length * 8; i += 7) {
        const c = Buffer.from(raw);
        c[Math.floor(i / 8)] ^= 1 << i % 8;
        expectCode('AUDIT_BAD_SIGNATURE', () => openNote(note.replace(sig64, c.toString('base64')), [log.signer.verifier]), `bit ${i}`);
      }
    });
  });

  describe('keys → AUDIT_BAD_KEY', () => {
    const vk = log.verifierKey;
    const [name, id, data] = [vk.split('+')[0]!, vk.split('+')[1]!, vk.split('+').slice(2).join('+')];
    const raw = Buffer.from(data, 'base64');
    const cases: [string, string][] = [
      ['empty', ''],
      ['two parts', `${name}+${id}`],
      ['extra part', `${vk}+AAAA`],
      ['key ID of 7 digits', `${name}+${id.slice(1)}+${data}`],
      ['key ID not hex', `${name}+${id.slice(0, 7)}g+${data}`],
      ['key ID of another key', `${name}+${(parseInt(id, 16) ^ 1).toString(16).padStart(8, '0')}+${data}`],
      ['other name', `example.com/other+${id}+${data}`],
      ['name with a space', `example com+${id}+${data}`],
      ['bad base64', `${name}+${id}+${data.slice(1)}`],
      ['type 0x02 (ECDSA)', `${name}+${id}+${Buffer.concat([Buffer.from([2]), raw.subarray(1)]).toString('base64')}`],
      ['31-byte key', `${name}+${id}+${raw.subarray(0, 32).toString('base64')}`],
      ['signer key given as a verifier key', log.signerKey],
    ];
    for (const [what, k] of cases) it(what, () => expectCode('AUDIT_BAD_KEY', () => parseVerifierKey(k), what));
    it('verifier key given as a signer key, and other bad signer keys', () => {
      expectCode('AUDIT_BAD_KEY', () => parseSignerKey(vk), 'vkey');
      expectCode('AUDIT_BAD_KEY', () => parseSignerKey(log.signerKey.replace('PRIVATE+KEY', 'PUBLIC+KEY')), 'prefix');
      expectCode('AUDIT_BAD_KEY', () => parseSignerKey(log.signerKey.replace('example.com/log', 'example.com/other')), 'name');
    });
  });

  describe('checkpoints → AUDIT_BAD_CHECKPOINT', () => {
    const cases: [string, string][] = [
      ['size with a leading zero', `o\n03\n${ROOT}\n`],
      ['size with a plus', `o\n+3\n${ROOT}\n`],
      ['negative size', `o\n-1\n${ROOT}\n`],
      ['size in hex', `o\n0x3\n${ROOT}\n`],
      ['size in exponent form', `o\n1e3\n${ROOT}\n`],
      ['size 2^53', `o\n9007199254740992\n${ROOT}\n`],
      ['size 2^64', `o\n18446744073709551616\n${ROOT}\n`],
      ['empty size', `o\n\n${ROOT}\n`],
      ['31-byte root', `o\n3\n${Buffer.alloc(31).toString('base64')}\n`],
      ['33-byte root', `o\n3\n${Buffer.alloc(33).toString('base64')}\n`],
      ['root without padding', `o\n3\n${ROOT.replace('=', '')}\n`],
      ['root in hex', `o\n3\n${Buffer.alloc(32, 5).toString('hex')}\n`],
      ['empty origin', `\n3\n${ROOT}\n`],
      ['empty extension line', `o\n3\n${ROOT}\n\next\n`],
      ['two lines', `o\n3\n`],
      ['no final newline', `o\n3\n${ROOT}`],
      ['tab in the origin', `o\t\n3\n${ROOT}\n`],
    ];
    for (const [what, b] of cases) it(what, () => expectCode('AUDIT_BAD_CHECKPOINT', () => parseCheckpoint(b), what));
    it('a signed checkpoint with a malformed body', () => {
      expectCode('AUDIT_BAD_CHECKPOINT', () => openCheckpoint(signNote(`example.com/log\n03\n${ROOT}\n`, [log.signer]), log.verifierKey), 'signed');
    });
  });

  describe('Merkle proofs → AUDIT_BAD_PROOF', () => {
    const t = new MemoryTree();
    for (let i = 0; i < 10; i++) t.append(Buffer.from([i]));
    const leaf = t.read(0, 3);
    const proof = t.inclusionProof(3);
    const root = t.root();
    const nums: [string, number][] = [
      ['negative index', -1],
      ['fractional index', 1.5],
      ['NaN index', Number.NaN],
      ['infinite index', Number.POSITIVE_INFINITY],
      ['index 2^53', 2 ** 53],
      ['index = size', 10],
      ['huge index', Number.MAX_SAFE_INTEGER],
    ];
    for (const [what, i] of nums) it(what, () => expectCode('AUDIT_BAD_PROOF', () => verifyInclusion(leaf, i, 10, proof, root), what));
    it('bad sizes, hashes and proof lists', () => {
      expectCode('AUDIT_BAD_PROOF', () => verifyInclusion(leaf, 3, 0, proof, root), 'size 0');
      expectCode('AUDIT_BAD_PROOF', () => verifyInclusion(leaf, 3, 2 ** 53, proof, root), 'size 2^53');
      expectCode('AUDIT_BAD_PROOF', () => verifyInclusion(leaf.subarray(1), 3, 10, proof, root), 'short leaf');
      expectCode('AUDIT_BAD_PROOF', () => verifyInclusion(leaf, 3, 10, proof, root.subarray(1)), 'short root');
      expectCode('AUDIT_BAD_PROOF', () => verifyInclusion(leaf, 3, 10, 'x' as unknown as Buffer[], root), 'not a list');
      expectCode('AUDIT_BAD_PROOF', () => verifyInclusion(leaf, 3, 10, [...proof.slice(0, -1), Buffer.alloc(33)], root), 'long hash');
      expectCode('AUDIT_BAD_PROOF', () => rootFromInclusionProof(leaf, 3, 10, Array.from({ length: 65 }, () => leaf)), 'oversized');
      expectCode('AUDIT_BAD_PROOF', () => verifyConsistency(-1, 10, [], root, root), 'negative old size');
      expectCode('AUDIT_BAD_PROOF', () => verifyConsistency(3, 2 ** 53, [], root, root), 'new size 2^53');
      expectCode('AUDIT_BAD_PROOF', () => verifyConsistency(3, 10, Array.from({ length: 65 }, () => leaf), root, root), 'oversized');
    });
  });

  describe('proof files → AUDIT_BAD_PROOF', () => {
    const t = new MemoryTree();
    for (let i = 0; i < 10; i++) t.append(Buffer.from([i]));
    const cp = signCheckpoint(log.signer, { origin: 'example.com/log', size: 10, rootHash: t.root(), extensions: [] });
    const good = formatProof({ extra: Buffer.from([3]), index: 3, proof: t.inclusionProof(3), checkpoint: cp });
    const h = t.inclusionProof(3).map((x) => x.toString('base64'));
    const cases: [string, string][] = [
      ['empty', ''],
      ['wrong header', good.replace('c2sp.org/tlog-proof@v1', 'c2sp.org/tlog-proof@v2')],
      ['header with trailing space', good.replace('@v1\n', '@v1 \n')],
      ['index -1', good.replace('index 3', 'index -1')],
      ['index with a leading zero', good.replace('index 3', 'index 03')],
      ['index 2^53', good.replace('index 3', 'index 9007199254740992')],
      ['index 2^64', good.replace('index 3', 'index 18446744073709551616')],
      ['index 1e3', good.replace('index 3', 'index 1e3')],
      ['index with two spaces', good.replace('index 3', 'index  3')],
      ['no index line', good.replace('index 3\n', '')],
      ['index before extra', good.replace(/extra (\S+)\nindex 3/, 'index 3\nextra $1')],
      ['empty extra', good.replace(/extra \S+/, 'extra ')],
      ['extra without a space', good.replace(/extra \S+/, 'extraAw==')],
      ['extra not base64', good.replace(/extra \S+/, 'extra @@@@')],
      ['hash not base64', good.replace(h[0]!, '*' + h[0]!.slice(1))],
      ['31-byte hash', good.replace(h[0]!, Buffer.alloc(31).toString('base64'))],
      ['hash in hex', good.replace(h[0]!, Buffer.alloc(32).toString('hex'))],
      ['65 hashes', good.replace(h[0]! + '\n', (h[0]! + '\n').repeat(65))],
      ['no blank line, no checkpoint', good.slice(0, good.indexOf('\n\n') + 1)],
      ['blank line but no checkpoint', good.slice(0, good.indexOf('\n\n') + 2)],
      ['CRLF line endings', good.replace(/\n/g, '\r\n')],
      ['no final newline', good.slice(0, -1)],
      ['lone surrogate', good.replace('index 3', 'index 3\ud800')],
    ];
    for (const [what, text] of cases) it(what, () => expectCode('AUDIT_BAD_PROOF', () => parseProof(text), what));
    it('invalid UTF-8 and oversized files', () => {
      expectCode('AUDIT_BAD_PROOF', () => parseProof(Buffer.concat([Buffer.from(good), Buffer.from([0xff])])), 'utf-8');
      expectCode('AUDIT_BAD_PROOF', () => parseProof(good + 'a'.repeat(2 * 1024 * 1024)), 'oversized');
    });
    it('a well-formed file proves its entry, and the checkpoint part keeps its own codes', () => {
      // The entry is proven, but it is not an audit record.
      expectCode('AUDIT_BAD_RECORD', () => verifyProof({ proof: good, logKey: log.verifierKey }), 'not a record');
      expectCode('AUDIT_BAD_NOTE', () => verifyProof({ proof: good.replace('\u2014 ', '-- '), logKey: log.verifierKey, record: Buffer.from([3]) }), 'note');
    });
  });

  describe('records → AUDIT_BAD_RECORD', () => {
    // The SAMPLE record, field by field (see docs/formats.md).
    const parts: Record<string, string> = {
      head: 'ca0100',
      requestId: '027231',
      time: '80d095ffbc31',
      route: '03617069',
      method: '03474554',
      host: '086170702e74657374',
      path: '062f783f793d31',
      clientAddress: '0b3230332e302e3131332e37',
      requestDigests: '01'.repeat(32) + '02'.repeat(32),
      requestBodyLength: '00',
      status: 'c801',
      responseDigests: '03'.repeat(32) + '04'.repeat(32),
      responseBodyLength: 'ac02',
      durationMicros: 'd209',
    };
    const build = (o: Record<string, string> = {}) => Buffer.from(Object.keys(parts).map((k) => o[k] ?? parts[k]).join(''), 'hex');

    it('the hand-built bytes are the SAMPLE encoding', () => {
      assert.deepEqual(build(), encodeRecord(SAMPLE));
      assert.deepEqual(decodeRecord(build()), SAMPLE);
    });

    it('every truncation, and a trailing byte', () => {
      const b = encodeRecord({ ...SAMPLE, identity: 'id', originSignature: { signature: Buffer.alloc(64), keyId: 'k', verified: true }, decision: { verdict: 'red', reasons: ['x'] } });
      for (let i = 0; i < b.length; i++) expectCode('AUDIT_BAD_RECORD', () => decodeRecord(b.subarray(0, i)), `prefix ${i}`);
      expectCode('AUDIT_BAD_RECORD', () => decodeRecord(Buffer.concat([b, Buffer.from([0])])), 'trailing byte');
    });

    const cases: [string, Record<string, string>][] = [
      ['bad magic', { head: 'cb0100' }],
      ['version 0', { head: 'ca0000' }],
      ['version 2', { head: 'ca0200' }],
      ['unknown flag bit', { head: 'ca0180' }],
      ['flag without its field', { head: 'ca0104' }],
      ['non-minimal uvarint zero', { requestBodyLength: '8000' }],
      ['non-minimal uvarint 300', { responseBodyLength: 'ac8200' }],
      ['non-minimal string length', { route: '8300617069' }],
      ['uvarint of 9 bytes', { time: '808080808080808001' }],
      ['uvarint of 2^53', { time: '8080808080808010' }],
      ['uvarint of 2^56 - 1', { time: 'ffffffffffffff7f' }],
      ['status 1000', { status: 'e807' }],
      ['requestId over its limit', { requestId: '8102' + 'aa'.repeat(257) }],
      ['requestId of invalid UTF-8', { requestId: '02ffff' }],
      ['string with an encoded surrogate', { route: '03eda080' }],
      ['string longer than the record', { host: '7f6170702e74657374' }],
    ];
    for (const [what, o] of cases) it(what, () => expectCode('AUDIT_BAD_RECORD', () => decodeRecord(build(o)), what));

    it('a verified byte other than 0 or 1, and oversized input', () => {
      const b = encodeRecord({ ...SAMPLE, originSignature: { signature: Buffer.alloc(64), keyId: 'k', verified: true } });
      b[b.length - 1] = 2;
      expectCode('AUDIT_BAD_RECORD', () => decodeRecord(b), 'verified 2');
      expectCode('AUDIT_BAD_RECORD', () => decodeRecord(Buffer.alloc(0x10000)), 'oversized');
      const d = encodeRecord({ ...SAMPLE, decision: { verdict: 'red', reasons: [] } });
      d[d.length - 1] = 33;
      expectCode('AUDIT_BAD_RECORD', () => decodeRecord(Buffer.concat([d, Buffer.alloc(33)])), '33 reasons');
    });
  });

  describe('tiles and bundles → AUDIT_BAD_TILE', () => {
    it('truncated and overfull entry bundles', () => {
      const b = encodeEntryBundle([Buffer.from('abc'), Buffer.from('de')]);
      for (let i = 1; i < b.length; i++) if (i !== 5) expectCode('AUDIT_BAD_TILE', () => decodeEntryBundle(b.subarray(0, i)), `prefix ${i}`);
      expectCode('AUDIT_BAD_TILE', () => decodeEntryBundle(b, 3), 'width');
      expectCode('AUDIT_BAD_TILE', () => decodeEntryBundle(Buffer.alloc(2 * 257)), '257 entries');
      expectCode('AUDIT_BAD_TILE', () => encodeEntryBundle([Buffer.alloc(0x10000)]), 'entry too big');
      expectCode('AUDIT_BAD_TILE', () => parseTilePath('tile/0/-01'), 'negative');
      expectCode('AUDIT_BAD_TILE', () => parseTilePath('tile/0/x9007199254740992/000'), 'huge');
    });
  });

  describe('policies → AUDIT_BAD_POLICY', () => {
    it('control characters and unknown keywords', () => {
      expectCode('AUDIT_BAD_POLICY', () => parsePolicy('quorum none\x7f\n'), 'DEL');
      expectCode('AUDIT_BAD_POLICY', () => parsePolicy(Buffer.from([0x71, 0xff, 0x0a])), 'utf-8');
      expectCode('AUDIT_BAD_POLICY', () => parsePolicy('threshold 2\nquorum none\n'), 'keyword');
    });
  });
});
