import { strict as assert } from 'node:assert';
import { signCheckpoint, type Checkpoint } from '../../audit/checkpoint.js';
import { createCosigner, generateSigner, type NoteSigner } from '../../audit/note.js';
import { formatPolicy, parsePolicy, quorumSatisfied, verifyCheckpointPolicy } from '../../audit/policy.js';
import { code } from './fixtures.js';


describe('audit/policy', () => {
  const log = generateSigner('example.com/log', Buffer.alloc(32, 1));
  const w: Record<string, NoteSigner> = {};
  ['X1', 'X2', 'X3', 'Y1', 'Y2', 'Y3'].forEach((n, i) => {
    w[n] = createCosigner(generateSigner(`${n.toLowerCase()}.witness.example`, Buffer.alloc(32, 10 + i)).signerKey, () => 1700000000 + i);
  });
  // The example of c2sp.org/tlog-policy, with real keys, a comment and blank lines.
  const text = `# example policy
log ${log.verifierKey} https://example.com/log/

witness X1 ${w.X1!.verifier.verifierKey}
witness X2 ${w.X2!.verifier.verifierKey}
\twitness X3 ${w.X3!.verifier.verifierKey}  
group X-witnesses 2 X1 X2 X3

witness Y1 ${w.Y1!.verifier.verifierKey}
witness Y2 ${w.Y2!.verifier.verifierKey}
witness Y3 ${w.Y3!.verifier.verifierKey}
group Y-witnesses any Y1 Y2 Y3

group X-and-Y all X-witnesses Y-witnesses
quorum X-and-Y
`;
  const policy = parsePolicy(text);
  const cp: Checkpoint = { origin: 'example.com/log', size: 3, rootHash: Buffer.alloc(32, 3), extensions: [] };

  it('parses the spec example', () => {
    assert.equal(policy.logs.length, 1);
    assert.equal(policy.logs[0]!.url, 'https://example.com/log/');
    assert.deepEqual(policy.witnesses.map((x) => x.name), ['X1', 'X2', 'X3', 'Y1', 'Y2', 'Y3']);
    assert.deepEqual(policy.groups.map((g) => [g.name, g.threshold]), [['X-witnesses', 2], ['Y-witnesses', 1], ['X-and-Y', 2]]);
    assert.equal(policy.quorum, 'X-and-Y');
    assert.equal(formatPolicy(parsePolicy(formatPolicy(policy))), formatPolicy(policy));
    assert.ok(formatPolicy(policy).includes(`witness X3 ${w.X3!.verifier.verifierKey}\n`));
  });

  it('evaluates quorums with thresholds, any and all', () => {
    const q = (...names: string[]) => quorumSatisfied(policy, new Set(names));
    assert.ok(q('X1', 'X2', 'Y3'));
    assert.ok(q('X1', 'X3', 'Y1', 'Y2'));
    assert.ok(!q('X1', 'Y1', 'Y2', 'Y3'));
    assert.ok(!q('X1', 'X2', 'X3'));
    assert.ok(!q());
    assert.ok(quorumSatisfied(parsePolicy(`log ${log.verifierKey}\nquorum none\n`), new Set()));
  });

  it('verifies a cosigned checkpoint against the policy', () => {
    const ok = signCheckpoint([log.signer, w.X1!, w.X3!, w.Y2!], cp);
    const v = verifyCheckpointPolicy(policy, ok);
    assert.deepEqual([...v.witnesses].sort(), ['X1', 'X3', 'Y2']);
    assert.equal(v.timestamps.get('Y2'), 1700000004);
    assert.equal(v.checkpoint.size, 3);
    const short = signCheckpoint([log.signer, w.X1!, w.Y2!], cp);
    assert.equal(code(() => verifyCheckpointPolicy(policy, short)), 'AUDIT_QUORUM_NOT_MET');
    const noLog = signCheckpoint([generateSigner('example.com/log', Buffer.alloc(32, 2)).signer, w.X1!, w.X2!, w.Y1!], cp);
    assert.equal(code(() => verifyCheckpointPolicy(policy, noLog)), 'AUDIT_BAD_SIGNATURE');
    const otherOrigin = signCheckpoint([log.signer, w.X1!, w.X2!, w.Y1!], { ...cp, origin: 'example.com/other' });
    assert.equal(code(() => verifyCheckpointPolicy(policy, otherOrigin)), 'AUDIT_BAD_SIGNATURE');
    // A witness cosignature over a different body (copied from another checkpoint) rejects the note.
    const other = signCheckpoint([log.signer, w.Y1!], { ...cp, size: 4 }).split('\n');
    const spliced = ok.replace(/\n$/, '\n' + other[other.length - 2] + '\n');
    assert.equal(code(() => verifyCheckpointPolicy(policy, spliced)), 'AUDIT_BAD_SIGNATURE');
  });

  it('refuses malformed policies with AUDIT_BAD_POLICY', () => {
    const vk = log.verifierKey;
    const wk = w.X1!.verifier.verifierKey;
    const wk2 = w.X2!.verifier.verifierKey;
    for (const bad of [
      '', // no quorum
      `log ${vk}\n`,
      `quorum none\nquorum none\n`,
      `quorum X1\n`, // undefined
      `quorum X1\nwitness X1 ${wk}\n`, // forward reference
      `witness X1 ${wk}\ngroup G 1 X1 X1\nquorum G\n`, // member twice
      `witness X1 ${wk}\ngroup G 2 X1\nquorum G\n`, // k > n
      `witness X1 ${wk}\ngroup G 0 X1\nquorum G\n`, // k < 1
      `witness X1 ${wk}\ngroup G 01 X1\nquorum G\n`,
      `witness X1 ${wk}\ngroup G none\nquorum G\n`,
      `witness X1 ${wk}\ngroup G any none\nquorum G\n`,
      `witness X1 ${wk}\nwitness X1 ${wk2}\nquorum X1\n`, // duplicate name
      `witness X1 ${wk}\nwitness X2 ${wk}\nquorum X1\n`, // duplicate key
      `log ${vk}\nlog ${vk}\nquorum none\n`,
      `witness none ${wk}\nquorum none\n`,
      `witness X1 ${vk}\nquorum X1\n`, // a log key (type 0x01) as a witness
      `log ${wk}\nquorum none\n`, // a cosigner key as a log
      `log not-a-key\nquorum none\n`,
      `logs ${vk}\nquorum none\n`,
      `log ${vk}\nquorum none`, // no final newline
      `log ${vk}\r\nquorum none\n`,
      `log ${vk} url extra\nquorum none\n`,
    ]) {
      assert.equal(code(() => parsePolicy(bad)), 'AUDIT_BAD_POLICY', JSON.stringify(bad));
    }
  });
});
