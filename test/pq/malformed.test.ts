/**
 * Hostile inputs to the envelope: every one must end in a CageError with the right code, never a
 * crash, a TypeError or a silent success. The relay, the network and the client are all untrusted.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { encodeRequest, encodeVarint } from '../../pq/bhttp.js';
import { AEAD_AES_128_GCM, AEAD_AES_256_GCM, AEAD_CHACHA20_POLY1305, KDF_HKDF_SHA256, KDF_HKDF_SHA384, KEM_DHKEM_X25519_HKDF_SHA256, KEM_XWING } from '../../pq/hpke.js';
import { decodeKeyConfig, decodeKeyConfigList, encapsulateRequest, encodeKeyConfigList, OhttpGateway, PqInnerError } from '../../pq/ohttp.js';
import { ReplayGuard } from '../../pq/replay.js';
import { expectCode, makeKey } from './helpers.js';

const NOW = Date.UTC(2026, 2, 1, 8, 0, 0);
const XW = makeKey(1, 11);
const DH = makeKey(2, 22, KEM_DHKEM_X25519_HKDF_SHA256, [{ kdfId: KDF_HKDF_SHA256, aeadId: AEAD_AES_128_GCM }]);
const gateway = new OhttpGateway({ keys: [XW, DH], maxRequestBytes: 64 * 1024 });

const inner = (headers: [string, string][] = [['date', new Date(NOW).toUTCString()]]): Buffer =>
  encodeRequest({ method: 'POST', scheme: 'https', authority: 'cage.test', path: '/t', headers, body: Buffer.from('payload') });

/** Every call: decapsulateRequest must throw `code`. */
const refuse = (bytes: Uint8Array, code: Parameters<typeof expectCode>[1], note: string): void => {
  expectCode(() => gateway.decapsulateRequest(bytes), code, note);
};

describe('pq: malformed envelopes and messages', () => {
  describe('header fields', () => {
    const good = encapsulateRequest(XW.config, inner(), { aeadId: AEAD_AES_256_GCM }).bytes;

    it('unknown key id → PQ_UNKNOWN_KEY', () => {
      const b = Buffer.from(good);
      b[0] = 77;
      refuse(b, 'PQ_UNKNOWN_KEY', 'key 77');
    });

    it('wrong KEM id for the key → PQ_UNSUPPORTED_SUITE', () => {
      const b = Buffer.from(good);
      b.writeUInt16BE(KEM_DHKEM_X25519_HKDF_SHA256, 1);
      refuse(b, 'PQ_UNSUPPORTED_SUITE', 'DHKEM id on an X-Wing key');
      b.writeUInt16BE(0x0012, 1);
      refuse(b, 'PQ_UNSUPPORTED_SUITE', 'unknown KEM');
    });

    it('KDF or AEAD the key does not accept, or that does not exist → PQ_UNSUPPORTED_SUITE', () => {
      for (const [kdf, aead] of [[KDF_HKDF_SHA384, AEAD_AES_256_GCM], [0x0009, AEAD_AES_256_GCM], [KDF_HKDF_SHA256, 0xffff], [KDF_HKDF_SHA256, 0x0004]] as const) {
        const b = Buffer.from(good);
        b.writeUInt16BE(kdf, 3);
        b.writeUInt16BE(aead, 5);
        refuse(b, 'PQ_UNSUPPORTED_SUITE', `kdf ${kdf} aead ${aead}`);
      }
      const dh = Buffer.from(encapsulateRequest(DH.config, inner()).bytes);
      dh.writeUInt16BE(AEAD_CHACHA20_POLY1305, 5);
      refuse(dh, 'PQ_UNSUPPORTED_SUITE', 'ChaCha not listed for the DHKEM key');
    });

    it('switching to another pair the key accepts breaks the HPKE info binding → PQ_BAD_ENVELOPE', () => {
      const b = Buffer.from(good);
      b.writeUInt16BE(AEAD_CHACHA20_POLY1305, 5);
      refuse(b, 'PQ_BAD_ENVELOPE', 'AES-256-GCM request relabelled ChaCha20-Poly1305');
    });
  });

  describe('truncation at every length', () => {
    it('DHKEM envelope: every prefix → PQ_BAD_ENVELOPE', () => {
      const full = encapsulateRequest(DH.config, inner()).bytes;
      for (let len = 0; len < full.length; len++) refuse(full.subarray(0, len), 'PQ_BAD_ENVELOPE', `length ${len}`);
      assert.ok(gateway.decapsulateRequest(full));
    });

    it('X-Wing envelope: every prefix → PQ_BAD_ENVELOPE', () => {
      const full = encapsulateRequest(XW.config, Buffer.alloc(0)).bytes;
      assert.equal(full.length, 7 + 1120 + 16);
      for (let len = 0; len < full.length; len++) refuse(full.subarray(0, len), 'PQ_BAD_ENVELOPE', `length ${len}`);
      assert.equal(gateway.decapsulateRequest(full).request.length, 0);
    });

    it('bytes appended after the tag → PQ_BAD_ENVELOPE', () => {
      refuse(Buffer.concat([encapsulateRequest(XW.config, inner()).bytes, Buffer.of(0)]), 'PQ_BAD_ENVELOPE', 'one extra byte');
    });

    it('larger than maxRequestBytes → PQ_BAD_ENVELOPE before any crypto', () => {
      refuse(Buffer.alloc(64 * 1024 + 1, 1), 'PQ_BAD_ENVELOPE', 'oversized');
    });
  });

  describe('flipped bits', () => {
    it('X-Wing: a bit flipped in any byte of enc, ciphertext or tag → PQ_BAD_ENVELOPE', function () {
      this.timeout(120_000);
      const full = encapsulateRequest(XW.config, Buffer.from('short inner message')).bytes;
      for (let i = 7; i < full.length; i++) {
        const b = Buffer.from(full);
        b[i]! ^= 1 << (i % 8);
        refuse(b, 'PQ_BAD_ENVELOPE', `byte ${i}`);
      }
    });

    it('DHKEM: every bit of enc, ciphertext and tag → PQ_BAD_ENVELOPE', () => {
      const full = encapsulateRequest(DH.config, Buffer.from('x')).bytes;
      for (let i = 7 * 8; i < full.length * 8; i++) {
        const b = Buffer.from(full);
        b[i >> 3]! ^= 1 << (i & 7);
        refuse(b, 'PQ_BAD_ENVELOPE', `bit ${i}`);
      }
    });

    it('low-order X25519 shares (all-zero, one) → PQ_BAD_ENVELOPE', () => {
      const xw = Buffer.from(encapsulateRequest(XW.config, inner()).bytes);
      xw.fill(0, 7 + 1088, 7 + 1120);
      refuse(xw, 'PQ_BAD_ENVELOPE', 'X-Wing ct_X = 0');
      const dh = Buffer.from(encapsulateRequest(DH.config, inner()).bytes);
      dh.fill(0, 7, 39);
      dh[7] = 1;
      refuse(dh, 'PQ_BAD_ENVELOPE', 'DHKEM enc = 1');
    });
  });

  describe('the encapsulated response, on the client', () => {
    it('every truncation and every flipped byte → PQ_BAD_ENVELOPE', () => {
      const sealed = encapsulateRequest(XW.config, inner());
      const encResponse = gateway.decapsulateRequest(sealed.bytes).responseContext.encapsulate(Buffer.from('0140c8', 'hex'));
      for (let len = 0; len < encResponse.length; len++) expectCode(() => sealed.decapsulateResponse(encResponse.subarray(0, len)), 'PQ_BAD_ENVELOPE', `length ${len}`);
      for (let i = 0; i < encResponse.length; i++) {
        const b = Buffer.from(encResponse);
        b[i]! ^= 0x80;
        expectCode(() => sealed.decapsulateResponse(b), 'PQ_BAD_ENVELOPE', `byte ${i}`);
      }
      assert.equal(sealed.decapsulateResponse(encResponse).toString('hex'), '0140c8');
    });

    it('a response sealed for another request does not open', () => {
      const a = encapsulateRequest(XW.config, inner());
      const b = encapsulateRequest(XW.config, inner());
      const forB = gateway.decapsulateRequest(b.bytes).responseContext.encapsulate(Buffer.from('0140c8', 'hex'));
      expectCode(() => a.decapsulateResponse(forB), 'PQ_BAD_ENVELOPE');
    });
  });

  describe('key configurations, on the client', () => {
    it('every truncation of a list → PQ_BAD_ENVELOPE; a bad symmetric length → PQ_BAD_ENVELOPE', () => {
      const list = encodeKeyConfigList([XW.config, DH.config]);
      for (let len = 0; len < list.length; len++) {
        if (len === 2 + 1 + 2 + 1216 + 2 + 12) continue; // exactly the first configuration: a valid list
        expectCode(() => decodeKeyConfigList(list.subarray(0, len)), 'PQ_BAD_ENVELOPE', `length ${len}`);
      }
      const one = Buffer.from(encodeKeyConfigList([DH.config]).subarray(2));
      one.writeUInt16BE(6, 3 + 32);
      expectCode(() => decodeKeyConfig(one), 'PQ_BAD_ENVELOPE');
      expectCode(() => decodeKeyConfig(Buffer.of(1, 0, 0x11)), 'PQ_UNSUPPORTED_SUITE');
    });
  });

  describe('inner Binary HTTP (after decryption: PqInnerError, answer sealed)', () => {
    const openInner = (bhttp: Uint8Array): Error => {
      const sealed = encapsulateRequest(XW.config, bhttp);
      const err = expectCode(() => gateway.openRequest(sealed.bytes, 'message/ohttp-req'), 'PQ_BAD_BHTTP');
      assert.ok(err instanceof PqInnerError, 'sealable');
      assert.ok(sealed.decapsulateResponse(err.sealJson('r')).length > 0);
      return err;
    };
    const ctl = Buffer.concat([Buffer.of(0, 4), Buffer.from('POST'), Buffer.of(5), Buffer.from('https'), Buffer.of(0, 2), Buffer.from('/t')]);

    it('framing indicator of a response, or unknown → PQ_BAD_BHTTP', () => {
      openInner(Buffer.of(1, 0x40, 200));
      openInner(Buffer.of(4));
      openInner(Buffer.alloc(0));
    });

    it('truncated control data, field lines and content → PQ_BAD_BHTTP', () => {
      openInner(ctl.subarray(0, 9));
      openInner(Buffer.concat([ctl, Buffer.of(5, 1, 0x61)]));
      openInner(Buffer.concat([ctl, Buffer.of(0, 10, 0x61)]));
    });

    it('oversized lengths (up to 2^62-1) → PQ_BAD_BHTTP without allocating', () => {
      openInner(Buffer.concat([ctl, Buffer.of(0), encodeVarint(2 ** 53 - 1)]));
      openInner(Buffer.concat([ctl, Buffer.of(0), Buffer.from('ffffffffffffffff', 'hex')]));
      openInner(Buffer.concat([ctl, Buffer.from('bfffffff', 'hex')]));
      openInner(Buffer.concat([Buffer.of(0), Buffer.from('bfffffff', 'hex'), Buffer.from('GET')]));
    });

    it('bad field names and values, pseudo-fields, non-zero padding → PQ_BAD_BHTTP', () => {
      const section = (...lines: Buffer[]): Buffer => Buffer.concat([ctl, encodeVarint(Buffer.concat(lines).length), ...lines]);
      const line = (n: string, v: string): Buffer => Buffer.concat([encodeVarint(n.length), Buffer.from(n, 'latin1'), encodeVarint(v.length), Buffer.from(v, 'latin1')]);
      openInner(section(line('Host', 'a')));
      openInner(section(line(':path', '/x')));
      openInner(section(line('x', 'a\nb')));
      openInner(section(line('x', 'a\u0000b')));
      openInner(section(line('x', ' lead')));
      openInner(section(line('bad name', 'v')));
      openInner(section(Buffer.of(0, 1, 0x61)));
      openInner(Buffer.concat([ctl, Buffer.of(0, 0, 0, 0, 7)]));
      openInner(Buffer.concat([Buffer.of(0, 3), Buffer.from('GET'), Buffer.of(5), Buffer.from('https'), Buffer.of(0, 1), Buffer.from('x')]));
    });

    it('Expect: 100-continue → PQ_BAD_BHTTP (RFC 9458 §5.1)', () => {
      openInner(inner([['expect', '100-continue']]));
    });
  });

  describe('replays and stale dates (with a ReplayGuard)', () => {
    const guarded = new OhttpGateway({ keys: [XW], replay: new ReplayGuard({ windowMs: 60_000, now: () => NOW }) });

    it('the same encapsulated request twice within the window → PQ_REPLAY (sealed)', () => {
      const sealed = encapsulateRequest(XW.config, inner());
      assert.equal(guarded.openRequest(sealed.bytes, 'message/ohttp-req').request.path, '/t');
      const err = expectCode(() => guarded.openRequest(sealed.bytes, 'message/ohttp-req'), 'PQ_REPLAY');
      assert.ok(err instanceof PqInnerError);
      assert.ok(sealed.decapsulateResponse(err.sealJson('r')));
    });

    it('a Date outside the window, or none → PQ_STALE', () => {
      expectCode(() => guarded.openRequest(encapsulateRequest(XW.config, inner([['date', new Date(NOW - 61_000).toUTCString()]])).bytes, 'message/ohttp-req'), 'PQ_STALE');
      expectCode(() => guarded.openRequest(encapsulateRequest(XW.config, inner([])).bytes, 'message/ohttp-req'), 'PQ_STALE');
    });
  });

  it('wrong outer content type → PQ_BAD_ENVELOPE', () => {
    expectCode(() => gateway.openRequest(encapsulateRequest(XW.config, inner()).bytes, 'application/octet-stream'), 'PQ_BAD_ENVELOPE');
    expectCode(() => gateway.openRequest(encapsulateRequest(XW.config, inner()).bytes, undefined), 'PQ_BAD_ENVELOPE');
  });

  it('random bytes never crash the gateway: always a PQ_* CageError', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 1300 }), fc.constantFrom(1, 2, 77), (bytes, keyId) => {
      const b = Buffer.from(bytes);
      if (b.length > 0) b[0] = keyId;
      try {
        gateway.openRequest(b, 'message/ohttp-req');
        assert.fail('random bytes were accepted');
      } catch (err) {
        assert.match((err as { code?: string }).code ?? String(err), /^PQ_(BAD_ENVELOPE|UNKNOWN_KEY|UNSUPPORTED_SUITE)$/);
      }
    }), { numRuns: 300 });
    assert.equal(KEM_XWING, XW.config.kemId);
  });
});
