import assert from 'node:assert/strict';
import { decodeRequest, decodeResponse, encodeRequest } from '../../pq/bhttp.js';
import { AEAD_AES_128_GCM, AEAD_AES_256_GCM, AEAD_CHACHA20_POLY1305, KDF_HKDF_SHA256, KEM_DHKEM_X25519_HKDF_SHA256, KEM_XWING, kemById, setupBaseR, suiteFor } from '../../pq/hpke.js';
import {
  decodeKeyConfig, decodeKeyConfigList, encapsulateRequest, encodeKeyConfig, encodeKeyConfigList, isEncapsulatedRequest,
  OhttpGateway, PqInnerError, requireEncapsulated, selectSuite, type KeyConfig,
} from '../../pq/ohttp.js';
import { expectCode, hex, makeKey, readVector } from './helpers.js';

interface AppendixA {
  server_secret_key: string; key_config: string; request: string; client_ephemeral_secret_key: string; client_ephemeral_public_key: string;
  info: string; encapsulated_request: string; response: string; exported_secret: string; response_nonce: string; salt: string; prk: string;
  aead_key: string; aead_nonce: string; encapsulated_response: string;
}
const A = readVector<AppendixA>('ohttp/rfc9458-appendix-a.json');

const innerGet = (path = '/', headers: [string, string][] = []): Buffer => encodeRequest({ method: 'GET', scheme: 'https', authority: 'cage.test', path, headers });

describe('pq/ohttp: RFC 9458 encapsulation', () => {
  describe('RFC 9458 Appendix A, byte for byte', () => {
    const kem = kemById(KEM_DHKEM_X25519_HKDF_SHA256)!;
    const privateKey = kem.importPrivateKey(hex(A.server_secret_key));

    it('key configuration: decodes, matches the secret key, re-encodes identically', () => {
      const config = decodeKeyConfig(hex(A.key_config));
      assert.deepEqual({ ...config, publicKey: Buffer.from(config.publicKey) }, {
        keyId: 1, kemId: KEM_DHKEM_X25519_HKDF_SHA256, publicKey: Buffer.from(privateKey.publicKey),
        symmetric: [{ kdfId: KDF_HKDF_SHA256, aeadId: AEAD_AES_128_GCM }, { kdfId: KDF_HKDF_SHA256, aeadId: AEAD_CHACHA20_POLY1305 }],
      });
      assert.equal(encodeKeyConfig(config).toString('hex'), A.key_config);
    });

    it('the client builds exactly the Encapsulated Request from the given ephemeral key', () => {
      const config = decodeKeyConfig(hex(A.key_config));
      const sealed = encapsulateRequest(config, hex(A.request), { randomness: hex(A.client_ephemeral_secret_key), kdfId: KDF_HKDF_SHA256, aeadId: AEAD_AES_128_GCM });
      assert.equal(Buffer.from(sealed.enc).toString('hex'), A.client_ephemeral_public_key);
      assert.equal(sealed.bytes.toString('hex'), A.encapsulated_request);
      // The default choice is the first listed pair: the same AES-128-GCM here.
      assert.equal(encapsulateRequest(config, hex(A.request), { randomness: hex(A.client_ephemeral_secret_key) }).bytes.toString('hex'), A.encapsulated_request);
    });

    it('the gateway opens it, and the §4.4 intermediate values match (secret, salt, prk, key, nonce)', () => {
      const gateway = new OhttpGateway({ keys: [{ config: decodeKeyConfig(hex(A.key_config)), privateKey }] });
      const d = gateway.decapsulateRequest(hex(A.encapsulated_request));
      assert.equal(d.request.toString('hex'), A.request);
      assert.equal(Buffer.from(d.enc).toString('hex'), A.client_ephemeral_public_key);
      const suite = suiteFor(KEM_DHKEM_X25519_HKDF_SHA256, KDF_HKDF_SHA256, AEAD_AES_128_GCM);
      const ctx = setupBaseR(suite, d.enc, privateKey, hex(A.info));
      const secret = ctx.export(Buffer.from('message/bhttp response'), 16);
      assert.equal(secret.toString('hex'), A.exported_secret);
      const salt = Buffer.concat([d.enc, hex(A.response_nonce)]);
      assert.equal(salt.toString('hex'), A.salt);
      const prk = suite.kdf.extract(salt, secret);
      assert.equal(prk.toString('hex'), A.prk);
      assert.equal(suite.kdf.expand(prk, Buffer.from('key'), 16).toString('hex'), A.aead_key);
      assert.equal(suite.kdf.expand(prk, Buffer.from('nonce'), 12).toString('hex'), A.aead_nonce);
    });

    it('the gateway seals exactly the Encapsulated Response, and the client opens it', () => {
      const config = decodeKeyConfig(hex(A.key_config));
      const gateway = new OhttpGateway({ keys: [{ config, privateKey }] });
      const d = gateway.decapsulateRequest(hex(A.encapsulated_request));
      const encResponse = d.responseContext.encapsulate(hex(A.response), hex(A.response_nonce));
      assert.equal(encResponse.toString('hex'), A.encapsulated_response);
      const sealed = encapsulateRequest(config, hex(A.request), { randomness: hex(A.client_ephemeral_secret_key) });
      assert.equal(sealed.decapsulateResponse(hex(A.encapsulated_response)).toString('hex'), A.response);
      assert.equal(decodeResponse(sealed.decapsulateResponse(encResponse)).status, 200);
      assert.equal(decodeRequest(d.request).authority, 'example.com');
    });
  });

  describe('key configuration lists (application/ohttp-keys)', () => {
    it('round-trips a list of X-Wing and DHKEM configurations, newest first as given', () => {
      const configs = [makeKey(2, 1).config, makeKey(1, 2, KEM_DHKEM_X25519_HKDF_SHA256).config];
      const encoded = encodeKeyConfigList(configs);
      assert.equal(encoded.readUInt16BE(0), 1 + 2 + 1216 + 2 + 12);
      const back = decodeKeyConfigList(encoded);
      assert.deepEqual(back.map((c) => ({ ...c, publicKey: Buffer.from(c.publicKey) })), configs.map((c) => ({ ...c, publicKey: Buffer.from(c.publicKey) })));
    });

    it('skips configurations for KEMs it does not implement, and refuses bad framing as a whole', () => {
      const unknown = Buffer.concat([Buffer.of(0, 9), Buffer.of(9, 0x00, 0x10), Buffer.alloc(6)]); // length 9, key 9, KEM 0x0010
      const list = Buffer.concat([unknown, encodeKeyConfigList([makeKey(5, 1).config])]);
      assert.deepEqual(decodeKeyConfigList(list).map((c) => c.keyId), [5]);
      expectCode(() => decodeKeyConfigList(Buffer.alloc(0)), 'PQ_BAD_ENVELOPE');
      expectCode(() => decodeKeyConfigList(list.subarray(0, list.length - 1)), 'PQ_BAD_ENVELOPE');
    });

    it('picks the requested or the first implemented symmetric pair', () => {
      const config: KeyConfig = { ...makeKey(1, 1).config, symmetric: [{ kdfId: 9, aeadId: 9 }, { kdfId: 1, aeadId: AEAD_CHACHA20_POLY1305 }] };
      assert.equal(selectSuite(config).aead.id, AEAD_CHACHA20_POLY1305);
      expectCode(() => selectSuite(config, 1, AEAD_AES_256_GCM), 'PQ_UNSUPPORTED_SUITE');
      expectCode(() => selectSuite({ ...config, symmetric: [{ kdfId: 9, aeadId: 9 }] }), 'PQ_UNSUPPORTED_SUITE');
    });
  });

  describe('X-Wing gateway round trips', () => {
    for (const aeadId of [AEAD_AES_256_GCM, AEAD_CHACHA20_POLY1305, AEAD_AES_128_GCM]) {
      it(`request and response through X-Wing with AEAD ${aeadId}`, () => {
        const key = makeKey(9, 4);
        const gateway = new OhttpGateway({ keys: [key] });
        const sealed = encapsulateRequest(key.config, innerGet('/hello?x=1', [['accept', 'text/plain']]), { aeadId });
        assert.equal(sealed.bytes.length, 7 + 1120 + innerGet('/hello?x=1', [['accept', 'text/plain']]).length + 16);
        const opened = gateway.openRequest(sealed.bytes, 'message/ohttp-req; charset=whatever');
        assert.deepEqual(opened.request, { method: 'GET', scheme: 'https', authority: 'cage.test', path: '/hello?x=1', headers: [['accept', 'text/plain']], body: Buffer.alloc(0), trailers: [] });
        assert.equal(opened.keyId, 9);
        const encResponse = opened.seal({ status: 201, headers: [['Content-Type', 'text/plain'], ['Connection', 'close'], ['Transfer-Encoding', 'chunked']], body: 'made' });
        assert.equal(encResponse.length >= 32 + 16, true);
        const res = decodeResponse(sealed.decapsulateResponse(encResponse));
        assert.equal(res.status, 201);
        assert.deepEqual(res.headers, [['content-type', 'text/plain']], 'names lowercased, connection fields dropped');
        assert.equal(Buffer.from(res.body).toString(), 'made');
        expectCode(() => opened.seal({ status: 200, headers: [] }), 'GW_INTERNAL', 'a second answer');
      });
    }

    it('each response gets a fresh nonce: sealing the same answer twice differs', () => {
      const key = makeKey(1, 1);
      const gateway = new OhttpGateway({ keys: [key] });
      const d = gateway.decapsulateRequest(encapsulateRequest(key.config, innerGet()).bytes);
      assert.notDeepEqual(d.responseContext.encapsulate(Buffer.from('x')), d.responseContext.encapsulate(Buffer.from('x')));
    });

    it('errors after decryption are PqInnerError, whose sealed JSON answer the client can open', () => {
      const key = makeKey(3, 3);
      const gateway = new OhttpGateway({ keys: [key] });
      const sealed = encapsulateRequest(key.config, Buffer.from('not bhttp'));
      const err = expectCode(() => gateway.openRequest(sealed.bytes, 'message/ohttp-req'), 'PQ_BAD_BHTTP');
      assert.ok(err instanceof PqInnerError);
      const res = decodeResponse(sealed.decapsulateResponse(err.sealJson('rid-7')));
      assert.equal(res.status, 400);
      assert.deepEqual(JSON.parse(Buffer.from(res.body).toString()).error.code, 'PQ_BAD_BHTTP');
      assert.equal(JSON.parse(Buffer.from(res.body).toString()).error.request_id, 'rid-7');
    });
  });

  it('media types: isEncapsulatedRequest and requireEncapsulated (PQ_REQUIRED)', () => {
    assert.equal(isEncapsulatedRequest('message/ohttp-req'), true);
    assert.equal(isEncapsulatedRequest(' Message/OHTTP-Req ; x=1'), true);
    assert.equal(isEncapsulatedRequest('message/ohttp-res'), false);
    assert.equal(isEncapsulatedRequest(undefined), false);
    expectCode(() => requireEncapsulated('application/json'), 'PQ_REQUIRED');
    requireEncapsulated('message/ohttp-req');
  });

  it('gateway options are checked once: unknown keys, duplicate key ids', () => {
    expectCode(() => new OhttpGateway({ keys: [makeKey(1, 1)], maxRequestByte: 5 } as never), 'CONFIG_INVALID');
    expectCode(() => new OhttpGateway({ keys: [makeKey(1, 1), makeKey(1, 2)] }), 'CONFIG_INVALID');
    expectCode(() => new OhttpGateway({ keys: [{ config: makeKey(1, 1).config, privateKey: makeKey(1, 1, KEM_DHKEM_X25519_HKDF_SHA256).privateKey }] }), 'CONFIG_INVALID');
    assert.equal(KEM_XWING, 0x647a);
  });
});
