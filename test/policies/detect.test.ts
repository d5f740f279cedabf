import assert from 'node:assert/strict';
import { ALL_DETECTORS, DETECTOR_BIT, detect, detectorNames } from '../../policies/detect.js';

const found = (s: string, want = ALL_DETECTORS): string[] => detectorNames(detect(Buffer.from(s, 'latin1'), want));

describe('policies/detect', () => {
  it('finds each kind in context', () => {
    assert.deepEqual(found('{"to":"anna.k+news@mail.example.de"}'), ['email']);
    assert.deepEqual(found('call +44 20 7946 0958 today'), ['phone']);
    assert.deepEqual(found('iban=DE89370400440532013000;'), ['iban']);
    assert.deepEqual(found('IBAN GB82 WEST 1234 5698 7654 32.'), ['iban']);
    assert.deepEqual(found('pan: 4111-1111-1111-1111'), ['card']);
    assert.deepEqual(found('"378282246310005"'), ['card']); // Amex test number, 15 digits
    assert.deepEqual(found('ssn 219-09-9999'), ['ssn']);
    assert.deepEqual(found('NI: JG 10 37 59 A'), ['nino']);
    assert.deepEqual(found('ab123456c'), ['nino']);
  });

  it('rejects near misses: bad Luhn, bad mod-97, excluded SSN areas and NINO prefixes, plain words', () => {
    assert.deepEqual(found('4111111111111112'), []);
    assert.deepEqual(found('DE89370400440532013001'), []);
    assert.deepEqual(found('000-12-3456 666-12-3456 912-12-3456 123-00-4567 123-45-0000'), []);
    assert.deepEqual(found('GB123456A BG123456A DA123456A QQ123456A JG103759E'), []);
    assert.deepEqual(found('user@localhost @example.com a@b.c x@.com'), []);
    assert.deepEqual(found('+0123456789 +1234567'), []);
    assert.deepEqual(found('order 12345'), []);
  });

  it('needs token boundaries: a card inside a longer digit run or a word is not a card', () => {
    assert.deepEqual(found('41111111111111110'), []);
    assert.deepEqual(found('x4111111111111111'), []);
    assert.deepEqual(found('4111111111111111x'), []);
  });

  it('scans only what is asked, and only up to the limit', () => {
    const s = Buffer.from('a@example.com 4111111111111111');
    assert.equal(detect(s, DETECTOR_BIT.card), DETECTOR_BIT.card);
    assert.equal(detect(s, DETECTOR_BIT.email), DETECTOR_BIT.email);
    assert.equal(detect(s, DETECTOR_BIT.card, 20), 0);
    assert.equal(detect(s, ALL_DETECTORS, 13), DETECTOR_BIT.email);
  });

  describe('adversarial inputs stay linear', () => {
    const timed = (buf: Buffer): number => {
      const t = process.hrtime.bigint();
      detect(buf);
      return Number(process.hrtime.bigint() - t) / 1e6;
    };
    const MiB = 1024 * 1024;
    // Each case is a worst case for one detector; a quadratic scan of 1 MiB would take minutes.
    const cases: [string, Buffer][] = [
      ['1 MiB of @', Buffer.alloc(MiB, '@')],
      ['1 MiB of digits', Buffer.alloc(MiB, '4')],
      ['digit groups', Buffer.alloc(MiB, '4111 ')],
      ['local parts before @', Buffer.alloc(MiB, 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@')],
      ['domains after @', Buffer.alloc(MiB, 'a@b.')],
      ['IBAN-shaped words', Buffer.alloc(MiB, 'GB82 ')],
      ['+ and digits', Buffer.alloc(MiB, '+1 2 ')],
      ['SSN-shaped', Buffer.alloc(MiB, '123-45-')],
    ];
    for (const [name, buf] of cases) {
      it(`${name}: 1 MiB scans in well under a second`, () => {
        const ms = timed(buf);
        assert.ok(ms < 1000, `${name} took ${ms.toFixed(0)} ms`);
      });
    }

    it('time grows linearly: 4x the bytes costs at most ~8x the time', () => {
      const small = Buffer.alloc(256 * 1024, '4111 a@');
      const big = Buffer.alloc(1024 * 1024, '4111 a@');
      timed(small);
      const a = Math.min(timed(small), timed(small), timed(small));
      const b = Math.min(timed(big), timed(big), timed(big));
      assert.ok(b < a * 8 + 5, `256 KiB ${a.toFixed(2)} ms, 1 MiB ${b.toFixed(2)} ms`);
    });
  });
});
