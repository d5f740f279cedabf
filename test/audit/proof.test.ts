import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import { formatProof, parseProof, TLOG_PROOF_HEADER, type TlogProof } from '../../audit/proof.js';

// The shape of the example in c2sp.org/tlog-proof (its signatures are elided there, so the
// checkpoint here is a syntactically complete stand-in).
const EXAMPLE = `c2sp.org/tlog-proof@v1
extra YWdlLXYxLjIuMS1kYXJ3aW4tYXJtNjQudGFyLmd6
index 73894
gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=
B95lDa8R83lS8n0eG+o0buTxRKQTYFi//1U8anccXmA=
EKNzoDWG8LGC0Yp9o+sv3qllpMP9uHQ9B20KNL+Q1zs=
RoopEkOdqkYqMB4MJXrbt/hMjOxsVn0IrWjpz1ZMMes=
AHCioX9nLjsrse6YhjRRmk1WUEirVOLLRoOQ6vfO5vk=

example.com/fancylog
109482
sFodV/vSp5O8n9a8QpW6PRY97tfOSW5bsc2Xl/EQi08=

\u2014 example.com/fancylog hI2DJwAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
`;

describe('audit/proof', () => {
  it('parses the tlog-proof example shape', () => {
    const p = parseProof(EXAMPLE);
    assert.equal(p.extra!.toString(), 'age-v1.2.1-darwin-arm64.tar.gz');
    assert.equal(p.index, 73894);
    assert.equal(p.proof.length, 5);
    assert.equal(p.proof[0]!.toString('base64'), 'gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=');
    assert.ok(p.checkpoint.startsWith('example.com/fancylog\n109482\n'));
    assert.equal(formatProof(p), EXAMPLE);
  });

  it('parse(format(p)) is p, with and without extra data and hashes', () => {
    const proof: fc.Arbitrary<TlogProof> = fc.record(
      {
        extra: fc.uint8Array({ minLength: 1, maxLength: 200 }).map((b) => Buffer.from(b)),
        index: fc.oneof(fc.nat({ max: 1000 }), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER })),
        proof: fc.array(fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b)), { maxLength: 63 }),
        checkpoint: fc.constant('log.example\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n\u2014 log.example AAAAAAA=\n'),
      },
      { requiredKeys: ['index', 'proof', 'checkpoint'] },
    );
    fc.assert(
      fc.property(proof, (p) => {
        const text = formatProof(p);
        assert.ok(text.startsWith(TLOG_PROOF_HEADER + '\n'));
        const back = parseProof(text);
        assert.deepEqual({ ...back, proof: [...back.proof] }, { ...p });
        assert.equal(formatProof(back), text);
      }),
    );
  });
});
