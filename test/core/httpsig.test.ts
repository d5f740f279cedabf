import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { MAX_SIGNATURE_FIELD, parseDictionary, parseSignatures, signRequestEd25519, signatureBase, type SignedRequest } from '../../core/httpsig.js';

const REQ: SignedRequest = { method: 'GET', scheme: 'https', authority: 'Example.COM:443', target: '/a/b?x=1&y=2', headers: ['host', 'example.com', 'x-multi', ' one ', 'x-multi', 'two'] };

describe('core/httpsig: RFC 8941 dictionaries and the signature base', () => {
  it('derives the request components of RFC 9421 §2.2 (authority normalized, default port dropped)', () => {
    const base = signatureBase(REQ, { components: ['@method', '@target-uri', '@authority', '@scheme', '@path', '@query', '@request-target', 'x-multi'], serialized: '()' });
    assert.equal(
      base,
      ['"@method": GET', '"@target-uri": https://example.com/a/b?x=1&y=2', '"@authority": example.com', '"@scheme": https', '"@path": /a/b', '"@query": ?x=1&y=2', '"@request-target": /a/b?x=1&y=2', '"x-multi": one, two', '"@signature-params": ()'].join('\n'),
    );
  });

  it('signs and re-parses its own fields with every parameter', () => {
    const { privateKey } = generateKeyPairSync('ed25519');
    const out = signRequestEd25519(REQ, privateKey, { label: 'a', components: ['@method', '@target-uri'], created: 100, expires: 200, nonce: 'n"\\x', keyid: 'did:key:z6Mk', alg: true, tag: 't' });
    const [s] = parseSignatures(out.signatureInput, out.signature);
    assert.deepEqual([s!.params.created, s!.params.expires, s!.params.nonce, s!.params.alg, s!.params.keyid, s!.params.tag], [100, 200, 'n"\\x', 'ed25519', 'did:key:z6Mk', 't']);
    assert.equal(`a=${s!.params.serialized}`, out.signatureInput);
  });

  const hostile: Array<[string, string, string]> = [
    ['unterminated string', 'sig=("@method);created=1', ':AA==:'],
    ['bad escape', 'sig=("@me\\thod");created=1', ':AA==:'],
    ['upper-case key', 'Sig=("@method");created=1', ':AA==:'],
    ['decimal', 'sig=("@method");created=1.5', ':AA==:'],
    ['non-string component', 'sig=(1 2);created=1', ':AA==:'],
    ['component parameters', 'sig=("content-type";sf);created=1', ':AA==:'],
    ['unknown parameter', 'sig=("@method");created=1;foo=2', ':AA==:'],
    ['created not an integer', 'sig=("@method");created="1"', ':AA==:'],
    ['not base64', 'sig=("@method");created=1', ':A*A=:'],
    ['no matching label', 'sig=("@method");created=1', ':AA==:'],
    ['trailing comma', 'sig=("@method");created=1,', ':AA==:'],
    ['control character', 'sig=("@me\u0001thod");created=1', ':AA==:'],
  ];
  for (const [what, input, sig] of hostile) {
    it(`refuses a malformed field: ${what}`, () => {
      const signature = what === 'no matching label' ? `other=${sig}` : `sig=${sig}`;
      assert.throws(() => parseSignatures(input, signature), { code: 'IDENTITY_SIGNATURE_MALFORMED' });
    });
  }

  it('bounds the field length, the number of signatures and of components', () => {
    assert.throws(() => parseDictionary('a=1,'.repeat(MAX_SIGNATURE_FIELD)), { code: 'IDENTITY_SIGNATURE_MALFORMED' });
    assert.throws(() => parseDictionary(Array.from({ length: 20 }, (_, i) => `k${i}=1`).join(', ')), { code: 'IDENTITY_SIGNATURE_MALFORMED' });
    assert.throws(() => parseDictionary(`s=(${Array.from({ length: 40 }, (_, i) => `"h${i}"`).join(' ')})`), { code: 'IDENTITY_SIGNATURE_MALFORMED' });
  });

  it('refuses a covered field the request lacks, a duplicate component and an unsupported derived one', () => {
    assert.throws(() => signatureBase(REQ, { components: ['x-absent'], serialized: '()' }), { code: 'IDENTITY_BAD_SIGNATURE' });
    assert.throws(() => signatureBase(REQ, { components: ['@method', '@method'], serialized: '()' }), { code: 'IDENTITY_SIGNATURE_MALFORMED' });
    assert.throws(() => signatureBase(REQ, { components: ['@status'], serialized: '()' }), { code: 'IDENTITY_SIGNATURE_MALFORMED' });
  });
});
