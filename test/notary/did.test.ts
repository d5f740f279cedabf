import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { isCageError, type CageErrorCode } from '../../core/errors.js';
import { generateSigner, SIG_TYPE_COSIGNATURE_V1 } from '../../audit/note.js';
import {
  buildDidDocument,
  canonicalDid,
  decodeBase58btc,
  didKeyFromPublicKey,
  didWebUrl,
  ed25519KeyFromDocument,
  encodeBase58btc,
  encodeEd25519Multibase,
  publicKeyFromDidKey,
  resolveNotaryDid,
  type FetchLike,
} from '../../notary/did.js';

const dir = new URL('../vectors/did-key/', import.meta.url);
interface Vector {
  seed: string;
  verificationKeyPair: { publicKeyBase58: string };
  didDocument: { verificationMethod: { id: string; publicKeyBase58: string }[] };
}
const VECTORS = JSON.parse(readFileSync(new URL('ed25519-x25519.json', dir), 'utf8')) as Record<string, Vector>;
const OTHERS = JSON.parse(readFileSync(new URL('other-keys.json', dir), 'utf8')) as {
  notEd25519: string[];
  specExample: { did: string; verificationMethod: Record<string, string> };
};

async function expectCode(want: CageErrorCode, fn: () => unknown): Promise<void> {
  try {
    await fn();
  } catch (err) {
    assert.ok(isCageError(err), `not a CageError: ${String(err)}`);
    assert.equal(err.code, want, err.message);
    return;
  }
  assert.fail(`accepted; wanted ${want}`);
}

const publicKeyOfSeed = (seedHex: string) => generateSigner('x', Buffer.from(seedHex, 'hex')).signer.verifier.publicKey;

/** A fake fetch serving one JSON document per URL, recording what was asked. */
function fakeFetch(docs: Record<string, unknown>, asked: string[] = []): FetchLike {
  return async (url) => {
    asked.push(url);
    if (!(url in docs)) return new Response('not found', { status: 404 });
    const v = docs[url];
    return new Response(typeof v === 'string' ? v : JSON.stringify(v), { status: 200, headers: { 'content-type': 'application/did+json' } });
  };
}

describe('notary/did', () => {
  describe('did:key (W3C CCG test vectors)', () => {
    for (const [did, v] of Object.entries(VECTORS)) {
      it(`seed ${v.seed.slice(-2)} → ${did.slice(0, 20)}…`, async () => {
        const pk = publicKeyOfSeed(v.seed);
        assert.equal(encodeBase58btc(pk), v.verificationKeyPair.publicKeyBase58);
        assert.equal(didKeyFromPublicKey(pk), did);
        assert.deepEqual(publicKeyFromDidKey(did), pk);
        const doc = buildDidDocument(did, pk);
        assert.equal(doc.verificationMethod![0]!.id, v.didDocument.verificationMethod[0]!.id);
        // The vector's own document (Ed25519VerificationKey2018, publicKeyBase58) yields the same key.
        assert.deepEqual(ed25519KeyFromDocument({ ...v.didDocument, id: did }, did).publicKey, pk);
        const r = await resolveNotaryDid(did);
        assert.equal(r.did, did);
        assert.deepEqual(r.publicKey, pk);
        assert.equal(r.verifier.type, SIG_TYPE_COSIGNATURE_V1);
        assert.equal(r.verifier.name, did);
        assert.ok(r.verifierKey.startsWith(`${did}+`));
      });
    }

    it('builds the verification method of the did:key spec example', () => {
      const { did, verificationMethod } = OTHERS.specExample;
      const doc = buildDidDocument(did, publicKeyFromDidKey(did));
      assert.deepEqual(doc.verificationMethod![0], verificationMethod);
      assert.deepEqual(doc.assertionMethod, [verificationMethod.id]);
    });

    it('accepts the explicit version 1 and canonicalizes it', async () => {
      const did = Object.keys(VECTORS)[0]!;
      const v1 = did.replace('did:key:', 'did:key:1:');
      assert.equal(canonicalDid(v1), did);
      assert.equal((await resolveNotaryDid(v1)).did, did);
    });

    for (const did of OTHERS.notEd25519) {
      it(`refuses ${did.slice(0, 18)}… (not Ed25519) with NOTARY_KEY_NOT_ED25519`, async () => {
        await expectCode('NOTARY_KEY_NOT_ED25519', () => publicKeyFromDidKey(did));
        await expectCode('NOTARY_KEY_NOT_ED25519', () => resolveNotaryDid(did));
      });
    }

    const pk = publicKeyOfSeed('00'.repeat(32));
    const short = 'did:key:z' + encodeBase58btc(Buffer.concat([Buffer.from([0xed, 0x01]), pk.subarray(0, 31)]));
    const long = 'did:key:z' + encodeBase58btc(Buffer.concat([Buffer.from([0xed, 0x01]), pk, Buffer.from([0])]));
    const cases: [string, string, CageErrorCode][] = [
      ['a 31-byte key', short, 'NOTARY_KEY_NOT_ED25519'],
      ['a 33-byte key', long, 'NOTARY_KEY_NOT_ED25519'],
      ['not base58-btc multibase', 'did:key:f' + Buffer.concat([Buffer.from([0xed, 0x01]), pk]).toString('hex'), 'NOTARY_BAD_DID'],
      ['a character outside base58 (0)', 'did:key:z6Mk0TBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp', 'NOTARY_BAD_DID'],
      ['a non-minimal varint', 'did:key:z' + encodeBase58btc(Buffer.concat([Buffer.from([0xed, 0x81, 0x00]), pk])), 'NOTARY_BAD_DID'],
      ['version 2', Object.keys(VECTORS)[0]!.replace('did:key:', 'did:key:2:'), 'NOTARY_BAD_DID'],
      ['a DID URL with a fragment', Object.keys(VECTORS)[0]! + '#key', 'NOTARY_BAD_DID'],
      ['another method', 'did:example:123', 'NOTARY_BAD_DID'],
      ['not a DID', 'z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp', 'NOTARY_BAD_DID'],
      ['an empty multibase value', 'did:key:z', 'NOTARY_BAD_DID'],
      ['an overlong DID', 'did:key:z' + '1'.repeat(600), 'NOTARY_BAD_DID'],
    ];
    for (const [what, did, code] of cases) {
      it(`refuses ${what} with ${code}`, async () => {
        await expectCode(code, () => publicKeyFromDidKey(did));
        await expectCode(code, () => resolveNotaryDid(did));
      });
    }

    it('base58-btc: decode(encode(x)) = x, leading zero bytes included', () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 80 }), fc.nat({ max: 5 }), (bytes, zeros) => {
          const x = Buffer.concat([Buffer.alloc(zeros), bytes]);
          assert.deepEqual(decodeBase58btc(encodeBase58btc(x)), x);
        }),
      );
      assert.equal(encodeBase58btc(Buffer.from('Hello World!')), '2NEpo7TZRRrLZSi2U');
      assert.equal(decodeBase58btc('0OIl'), undefined);
    });

    it('did:key: decode(encode(key)) = key for any 32 bytes', () => {
      fc.assert(fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (k) => assert.deepEqual(publicKeyFromDidKey(didKeyFromPublicKey(k)), Buffer.from(k))));
    });
  });

  describe('did:web', () => {
    it('maps DIDs to document URLs as the spec examples do', () => {
      assert.equal(didWebUrl('did:web:w3c-ccg.github.io'), 'https://w3c-ccg.github.io/.well-known/did.json');
      assert.equal(didWebUrl('did:web:w3c-ccg.github.io:user:alice'), 'https://w3c-ccg.github.io/user/alice/did.json');
      assert.equal(didWebUrl('did:web:example.com%3A3000:user:alice'), 'https://example.com:3000/user/alice/did.json');
      assert.equal(didWebUrl('did:web:example.com%3A8443'), 'https://example.com:8443/.well-known/did.json');
    });

    for (const did of ['did:web:1.2.3.4', 'did:web:example.com%3A0', 'did:web:example.com%3A70000', 'did:web:exa_mple.com', 'did:web:example.com:..', 'did:web:-bad.com', 'did:web:example.com%3Ax']) {
      it(`refuses ${did}`, async () => {
        await expectCode('NOTARY_BAD_DID', () => didWebUrl(did));
        await expectCode('NOTARY_BAD_DID', () => resolveNotaryDid(did, { fetch: fakeFetch({}) }));
      });
    }

    const pk = publicKeyOfSeed('07'.repeat(32));
    const did = 'did:web:notary.example%3A8443:w1';
    const url = 'https://notary.example:8443/w1/did.json';

    it('resolves an Ed25519VerificationKey2020 document through the injected fetch', async () => {
      const asked: string[] = [];
      const r = await resolveNotaryDid(did, { fetch: fakeFetch({ [url]: buildDidDocument(did, pk) }, asked) });
      assert.deepEqual(asked, [url]);
      assert.equal(r.did, did);
      assert.deepEqual(r.publicKey, pk);
      assert.equal(r.verifier.name, did);
      assert.equal(r.verificationMethod, `${did}#${encodeEd25519Multibase(pk)}`);
    });

    it('picks the Ed25519 JWK among the keys of a JsonWebKey2020 document (the did:web spec example)', async () => {
      const d = 'did:web:example.com';
      const doc = {
        '@context': ['https://www.w3.org/ns/did/v1', 'https://w3id.org/security/suites/jws-2020/v1'],
        id: d,
        verificationMethod: [
          { id: `${d}#key-2`, type: 'JsonWebKey2020', controller: d, publicKeyJwk: { kty: 'EC', crv: 'P-256', x: '38M1FDts7Oea7urmseiugGW7tWc3mLpJh6rKe7xINZ8', y: 'nDQW6XZ7b_u2Sy9slofYLlG03sOEoug3I0aAPQ0exs4' } },
          { id: `${d}#key-1`, type: 'JsonWebKey2020', controller: d, publicKeyJwk: { kty: 'OKP', crv: 'X25519', x: '9GXjPGGvmRq9F6Ng5dQQ_s31mfhxrcNZxRGONrmH30k' } },
          { id: '#key-0', type: 'JsonWebKey2020', controller: d, publicKeyJwk: { kty: 'OKP', crv: 'Ed25519', x: '0-e2i2_Ua1S5HbTYnVB0lj2Z2ytXu2-tYmDFf8f5NjU' } },
        ],
        assertionMethod: [`${d}#key-2`, `${d}#key-0`],
      };
      // Served wrapped as a DID Resolution Document, as some hosts do.
      const r = await resolveNotaryDid(d, { fetch: fakeFetch({ 'https://example.com/.well-known/did.json': { didDocument: doc, didDocumentMetadata: {} } }) });
      assert.equal(r.verificationMethod, `${d}#key-0`);
      assert.deepEqual(r.publicKey, Buffer.from('0-e2i2_Ua1S5HbTYnVB0lj2Z2ytXu2-tYmDFf8f5NjU', 'base64url'));
    });

    it('refuses documents that name no Ed25519 key with NOTARY_KEY_NOT_ED25519', async () => {
      const p256 = { id: `${did}#k`, type: 'JsonWebKey2020', controller: did, publicKeyJwk: { kty: 'EC', crv: 'P-256', x: 'AA', y: 'AA' } };
      await expectCode('NOTARY_KEY_NOT_ED25519', () => resolveNotaryDid(did, { fetch: fakeFetch({ [url]: { id: did, verificationMethod: [p256] } }) }));
      const x25519 = { id: `${did}#k`, type: 'Multikey', controller: did, publicKeyMultibase: 'z6LShs9GGnqk85isEBzzshkuVWrVKsRp24GnDuHk8QWkARMW' };
      await expectCode('NOTARY_KEY_NOT_ED25519', () => resolveNotaryDid(did, { fetch: fakeFetch({ [url]: { id: did, verificationMethod: [x25519] } }) }));
      const secp = { id: `${did}#k`, type: 'EcdsaSecp256k1VerificationKey2019', controller: did, publicKeyHex: '02' + '11'.repeat(32) };
      await expectCode('NOTARY_KEY_NOT_ED25519', () => resolveNotaryDid(did, { fetch: fakeFetch({ [url]: { id: did, verificationMethod: [secp] } }) }));
      await expectCode('NOTARY_KEY_NOT_ED25519', () => resolveNotaryDid(did, { fetch: fakeFetch({ [url]: { id: did } }) }));
    });

    it('refuses a document for another DID, or publishing a private key, with NOTARY_BAD_DID', async () => {
      await expectCode('NOTARY_BAD_DID', () => resolveNotaryDid(did, { fetch: fakeFetch({ [url]: buildDidDocument('did:web:evil.example', pk) }) }));
      const jwk = { id: `${did}#k`, type: 'JsonWebKey2020', controller: did, publicKeyJwk: { kty: 'OKP', crv: 'Ed25519', x: pk.toString('base64url'), d: 'secret' } };
      await expectCode('NOTARY_BAD_DID', () => resolveNotaryDid(did, { fetch: fakeFetch({ [url]: { id: did, verificationMethod: [jwk] } }) }));
    });

    it('reports unreachable, missing, oversized and non-JSON documents with NOTARY_DID_UNRESOLVABLE', async () => {
      await expectCode('NOTARY_DID_UNRESOLVABLE', () => resolveNotaryDid(did, { fetch: fakeFetch({}) }));
      await expectCode('NOTARY_DID_UNRESOLVABLE', () => resolveNotaryDid(did, { fetch: fakeFetch({ [url]: 'not json' }) }));
      await expectCode('NOTARY_DID_UNRESOLVABLE', () => resolveNotaryDid(did, { fetch: fakeFetch({ [url]: { id: did, pad: 'x'.repeat(70_000) } }) }));
      await expectCode('NOTARY_DID_UNRESOLVABLE', () =>
        resolveNotaryDid(did, {
          fetch: async () => {
            throw new TypeError('fetch failed');
          },
        }),
      );
      // A host that never answers: the resolver's own timeout aborts the fetch.
      const hang: FetchLike = (_u, init) => new Promise((_resolve, reject) => init.signal.addEventListener('abort', () => reject(init.signal.reason)));
      await expectCode('NOTARY_DID_UNRESOLVABLE', () => resolveNotaryDid(did, { fetch: hang, timeoutMs: 20 }));
    });

    it('rejects unknown resolve options', async () => {
      await assert.rejects(() => resolveNotaryDid(did, { fecth: fakeFetch({}) } as never), TypeError);
    });
  });
});
