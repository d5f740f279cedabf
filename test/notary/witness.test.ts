import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import { openCheckpoint, signCheckpoint } from '../../audit/checkpoint.js';
import { EMPTY_ROOT } from '../../audit/hash.js';
import { encodeBase64, generateSigner } from '../../audit/note.js';
import {
  decideAddCheckpoint,
  formatAddCheckpointBody,
  KnownLogs,
  MemoryWitness,
  parseAddCheckpointBody,
  TLOG_SIZE_CONTENT_TYPE,
  type WitnessResponse,
} from '../../notary/witness.js';
import { ORIGIN, TestLog, testNotary } from './helpers.js';

const log = new TestLog();
const notary = testNotary(9);

function witness(): MemoryWitness {
  return new MemoryWitness(new KnownLogs([log.verifier]), notary.cosigner);
}

function codeOf(r: WitnessResponse): string | undefined {
  return r.contentType === 'application/json' ? (JSON.parse(r.body) as { error: { code: string } }).error.code : undefined;
}

function expectRefusal(r: WitnessResponse, status: number, code: string): void {
  assert.equal(r.status, status, r.body);
  assert.equal(codeOf(r), code);
}

/** Asserts a 200 whose single line is a valid v1 cosignature by the notary over the checkpoint. */
function expectCosigned(r: WitnessResponse, checkpointNote: string): number {
  assert.equal(r.status, 200, r.body);
  const lines = r.body.split('\n');
  assert.equal(lines.length, 2);
  assert.equal(lines[1], '');
  assert.ok(lines[0]!.startsWith(`\u2014 ${notary.did} `));
  const opened = openCheckpoint(checkpointNote + r.body, log.verifier, { cosigners: [notary.verifier] });
  assert.equal(opened.cosignatures.length, 1);
  return opened.cosignatures[0]!.timestamp!;
}

describe('notary/witness (tlog-witness state machine)', () => {
  it('cosigns the first checkpoint (old 0, empty proof) and records it', () => {
    const w = witness();
    const r = w.addCheckpoint(log.body(0, 5));
    assert.equal(expectCosigned(r, log.checkpoint(5)), 1_700_000_000);
    assert.equal(w.states.get(ORIGIN)!.size, 5);
    assert.deepEqual(w.states.get(ORIGIN)!.rootHash, log.tree.root(5));
  });

  it('cosigns a checkpoint that extends the recorded one with a valid consistency proof', () => {
    const w = witness();
    w.addCheckpoint(log.body(0, 5));
    expectCosigned(w.addCheckpoint(log.body(5, 13)), log.checkpoint(13));
    expectCosigned(w.addCheckpoint(log.body(13, 64)), log.checkpoint(64));
    assert.equal(w.states.get(ORIGIN)!.size, 64);
    assert.deepEqual(w.evidence, []);
  });

  it('cosigns the recorded checkpoint again (old = size, same root) without changing state', () => {
    const w = witness();
    w.addCheckpoint(log.body(0, 7));
    const before = w.states.get(ORIGIN);
    expectCosigned(w.addCheckpoint(log.body(7, 7)), log.checkpoint(7));
    assert.equal(w.states.get(ORIGIN), before);
  });

  it('404 NOTARY_UNKNOWN_LOG for an origin it does not witness', () => {
    const other = new TestLog('other.example/log', 2);
    expectRefusal(witness().addCheckpoint(other.body(0, 3)), 404, 'NOTARY_UNKNOWN_LOG');
  });

  it('403 NOTARY_BAD_LOG_SIGNATURE when no trusted key signed, or a trusted key\'s signature fails', () => {
    const w = witness();
    const impostor = generateSigner(ORIGIN, Buffer.alloc(32, 66)).signer; // same origin, other key
    const forged = log.checkpoint(5, impostor);
    expectRefusal(w.addCheckpoint(formatAddCheckpointBody(0, [], forged)), 403, 'NOTARY_BAD_LOG_SIGNATURE');
    // The right key's signature line, over another body.
    const good = log.checkpoint(5);
    const tampered = good.replace(`\n5\n`, `\n6\n`);
    expectRefusal(w.addCheckpoint(formatAddCheckpointBody(0, [], tampered)), 403, 'NOTARY_BAD_LOG_SIGNATURE');
    assert.equal(w.states.size, 0);
  });

  it('400 NOTARY_OLD_SIZE_TOO_LARGE when old size > checkpoint size', () => {
    expectRefusal(witness().addCheckpoint(formatAddCheckpointBody(9, [], log.checkpoint(5))), 400, 'NOTARY_OLD_SIZE_TOO_LARGE');
  });

  it('409 with the recorded size in text/x.tlog.size when old size differs (0 before any cosignature)', () => {
    const w = witness();
    let r = w.addCheckpoint(log.body(3, 8));
    assert.equal(r.status, 409);
    assert.equal(r.contentType, TLOG_SIZE_CONTENT_TYPE);
    assert.equal(r.body, '0\n');
    w.addCheckpoint(log.body(0, 8));
    r = w.addCheckpoint(log.body(0, 20));
    assert.equal(r.status, 409);
    assert.equal(r.contentType, TLOG_SIZE_CONTENT_TYPE);
    assert.equal(r.body, '8\n');
    r = w.addCheckpoint(log.body(5, 20));
    assert.equal(r.body, '8\n');
    assert.equal(w.states.get(ORIGIN)!.size, 8);
  });

  it('422 NOTARY_BAD_PROOF for a proof that does not verify, keeping both checkpoints as evidence', () => {
    const w = witness();
    w.addCheckpoint(log.body(0, 6));
    const proof = log.proof(6, 11);
    proof[0] = Buffer.from(proof[0]!).fill(7);
    const note = log.checkpoint(11);
    expectRefusal(w.addCheckpoint(formatAddCheckpointBody(6, proof, note)), 422, 'NOTARY_BAD_PROOF');
    assert.equal(w.states.get(ORIGIN)!.size, 6);
    assert.equal(w.evidence.length, 1);
    const ev = w.evidence[0]!;
    assert.equal(ev.kind, 'bad-proof');
    assert.equal(ev.recorded.note, log.checkpoint(6));
    assert.equal(ev.submitted.note, note);
    // Too few and too many hashes fail too.
    expectRefusal(w.addCheckpoint(formatAddCheckpointBody(6, log.proof(6, 11).slice(1), note)), 422, 'NOTARY_BAD_PROOF');
    expectRefusal(w.addCheckpoint(formatAddCheckpointBody(6, [...log.proof(6, 11), EMPTY_ROOT], note)), 422, 'NOTARY_BAD_PROOF');
  });

  it('422 for a non-empty proof from size 0, a proof between equal sizes, and a size-0 checkpoint without the empty root', () => {
    const w = witness();
    expectRefusal(w.addCheckpoint(formatAddCheckpointBody(0, [EMPTY_ROOT], log.checkpoint(4))), 422, 'NOTARY_BAD_PROOF');
    const zero = signCheckpoint(log.signer, { origin: ORIGIN, size: 0, rootHash: Buffer.alloc(32, 1), extensions: [] });
    expectRefusal(w.addCheckpoint(formatAddCheckpointBody(0, [], zero)), 422, 'NOTARY_BAD_PROOF');
    const empty = signCheckpoint(log.signer, { origin: ORIGIN, size: 0, rootHash: EMPTY_ROOT, extensions: [] });
    expectCosigned(w.addCheckpoint(formatAddCheckpointBody(0, [], empty)), empty);
    w.addCheckpoint(log.body(0, 4));
    expectRefusal(w.addCheckpoint(formatAddCheckpointBody(4, [EMPTY_ROOT], log.checkpoint(4))), 422, 'NOTARY_BAD_PROOF');
  });

  it('refuses a fork (same size, other root) with 409 NOTARY_FORK and keeps both signed checkpoints', () => {
    const w = witness();
    expectCosigned(w.addCheckpoint(log.body(0, 10)), log.checkpoint(10));
    const forked = new TestLog(ORIGIN, 1, 'rewritten ');
    const forkNote = forked.checkpoint(10);
    const r = w.addCheckpoint(formatAddCheckpointBody(10, [], forkNote));
    expectRefusal(r, 409, 'NOTARY_FORK');
    assert.notEqual(r.contentType, TLOG_SIZE_CONTENT_TYPE);
    assert.equal(w.evidence.length, 1);
    assert.equal(w.evidence[0]!.kind, 'fork');
    assert.equal(w.evidence[0]!.recorded.note, log.checkpoint(10));
    assert.equal(w.evidence[0]!.submitted.note, forkNote);
    // The fork's later checkpoints cannot be proven consistent with what was cosigned either.
    expectRefusal(w.addCheckpoint(formatAddCheckpointBody(10, forked.proof(10, 16), forked.checkpoint(16))), 422, 'NOTARY_BAD_PROOF');
    assert.deepEqual(w.states.get(ORIGIN)!.rootHash, log.tree.root(10));
  });

  it('never cosigns a rollback (a smaller checkpoint after a larger one), and keeps it as evidence', () => {
    const w = witness();
    w.addCheckpoint(log.body(0, 12));
    const small = log.checkpoint(6);
    const tries = [formatAddCheckpointBody(0, [], small), formatAddCheckpointBody(12, [], small), formatAddCheckpointBody(6, [], small), log.body(3, 6)];
    for (const body of tries) {
      const r = w.addCheckpoint(body);
      assert.notEqual(r.status, 200, body);
      assert.ok(r.status === 409 || r.status === 400);
    }
    assert.ok(w.evidence.length >= 1);
    assert.ok(w.evidence.every((e) => e.kind === 'rollback' && e.recorded.size === 12));
    assert.equal(w.states.get(ORIGIN)!.size, 12);
  });

  it('trusts several keys for one origin (rotation) and ignores signatures from unknown keys', () => {
    const rotated = generateSigner(ORIGIN, Buffer.alloc(32, 3)).signer;
    const w = new MemoryWitness(new KnownLogs([log.verifier, rotated.verifier]), notary.cosigner);
    const stranger = generateSigner('stranger', Buffer.alloc(32, 4)).signer;
    const note = log.checkpoint(5, rotated);
    const withStranger = signCheckpoint([rotated, stranger], { origin: ORIGIN, size: 5, rootHash: log.tree.root(5), extensions: [] });
    assert.equal(w.addCheckpoint(formatAddCheckpointBody(0, [], note)).status, 200);
    assert.equal(w.addCheckpoint(formatAddCheckpointBody(5, [], withStranger)).status, 200);
  });

  describe('malformed bodies → 400 NOTARY_BAD_REQUEST', () => {
    const note = log.checkpoint(5);
    const h = encodeBase64(Buffer.alloc(32, 1));
    const cases: [string, string | Uint8Array][] = [
      ['empty', ''],
      ['no newline', 'old 0'],
      ['no old size', 'old \n\n' + note],
      ['leading zero', 'old 01\n\n' + note],
      ['negative', 'old -1\n\n' + note],
      ['trailing space', 'old 1 \n\n' + note],
      ['CRLF', 'old 0\r\n\r\n' + note],
      ['2^53', `old 9007199254740992\n\n${note}`],
      ['other keyword', 'new 0\n\n' + note],
      ['no blank line', `old 0\n${h}\n`],
      ['proof line not base64', `old 2\nnot-base64!\n\n${note}`],
      ['proof line not canonical base64', `old 2\n${h.slice(0, -2)}==\n\n${note}`],
      ['proof hash of 31 bytes', `old 2\n${encodeBase64(Buffer.alloc(31))}\n\n${note}`],
      ['64 proof lines', `old 2\n${`${h}\n`.repeat(64)}\n${note}`],
      ['no checkpoint', 'old 0\n\n'],
      ['checkpoint without signatures', `old 0\n\n${note.slice(0, note.indexOf('\n\n') + 1)}`],
      ['checkpoint with a bad size line', 'old 0\n\n' + note.replace('\n5\n', '\nfive\n')],
      ['checkpoint with a bad signature line', 'old 0\n\n' + note.replace('\u2014 ', '- ')],
      ['invalid UTF-8', Buffer.concat([Buffer.from('old 0\n\n'), Buffer.from([0xff, 0xfe]), Buffer.from(note)])],
      ['NUL byte', `old 0\n\n${note.replace(ORIGIN, ORIGIN + '\0')}`],
    ];
    for (const [what, body] of cases) {
      it(what, () => {
        expectRefusal(witness().addCheckpoint(body), 400, 'NOTARY_BAD_REQUEST');
        assert.throws(() => parseAddCheckpointBody(body), (e: { code?: string }) => e.code === 'NOTARY_BAD_REQUEST');
      });
    }

    it('accepts exactly 63 proof lines syntactically (then judges the proof: 422)', () => {
      const w = witness();
      w.addCheckpoint(log.body(0, 2));
      expectRefusal(w.addCheckpoint(`old 2\n${`${h}\n`.repeat(63)}\n${log.checkpoint(5)}`), 422, 'NOTARY_BAD_PROOF');
    });

    it('random bytes never crash the witness and are always 400', () => {
      const w = witness();
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
          const r = w.addCheckpoint(bytes);
          assert.equal(r.status, 400);
          assert.equal(codeOf(r), 'NOTARY_BAD_REQUEST');
        }),
        { numRuns: 500 },
      );
      assert.equal(w.states.size, 0);
    });

    it('structured garbage (old line, proof-ish lines, note-ish text) never crashes and never cosigns', () => {
      const w = witness();
      w.addCheckpoint(log.body(0, 5));
      const line = fc.oneof(fc.constant(h), fc.string({ maxLength: 50 }), fc.constant(''), fc.constant('\u2014 x AAAA'));
      fc.assert(
        fc.property(fc.oneof(fc.nat(), fc.string({ maxLength: 12 })), fc.array(line, { maxLength: 6 }), fc.array(line, { maxLength: 8 }), (old, proof, noteLines) => {
          const body = `old ${String(old)}\n${proof.map((l) => l + '\n').join('')}\n${noteLines.join('\n')}\n`;
          const r = w.addCheckpoint(body);
          assert.ok([400, 403, 404, 409, 422].includes(r.status), `${r.status} for ${JSON.stringify(body)}`);
        }),
        { numRuns: 500 },
      );
      assert.equal(w.states.get(ORIGIN)!.size, 5);
    });

    it('mutations of a valid body (flips, cuts, splices) never crash and only cosign what is valid', () => {
      const w = witness();
      w.addCheckpoint(log.body(0, 5));
      const valid = Buffer.from(log.body(5, 9));
      fc.assert(
        fc.property(fc.nat({ max: valid.length - 1 }), fc.integer({ min: 0, max: 255 }), fc.nat({ max: valid.length }), (at, byte, cut) => {
          const m = Buffer.from(valid);
          m[at] = byte;
          const r = w.addCheckpoint(m.subarray(0, Math.max(cut, 1)));
          assert.ok([200, 400, 403, 404, 409, 422].includes(r.status));
          // Whatever was cosigned, the recorded state is a checkpoint of the real log.
          const st = w.states.get(ORIGIN)!;
          assert.deepEqual(st.rootHash, log.tree.root(st.size));
          if (r.status === 200) assert.ok(st.size === 9 || st.size === 5);
        }),
        { numRuns: 500 },
      );
    });
  });

  it('decideAddCheckpoint is pure: the same inputs give the same decision, and state is not mutated', () => {
    const logs = new KnownLogs([log.verifier]);
    const w = witness();
    w.addCheckpoint(log.body(0, 5));
    const recorded = w.states.get(ORIGIN)!;
    const req = parseAddCheckpointBody(log.body(5, 9));
    const a = decideAddCheckpoint(logs, req, recorded);
    const b = decideAddCheckpoint(logs, req, recorded);
    assert.deepEqual(a, b);
    assert.equal(recorded.size, 5);
    assert.ok(a.accept && a.state.size === 9 && a.changed);
  });
});
