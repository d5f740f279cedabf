import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isCageError } from '../../core/errors.js';
import { canonicalJson, loadPolicy, parseBundle, rawPublicKey, signBundle, verifyBundle } from '../../policies/load.js';

const example = readFileSync(new URL('../../policies/examples/pci-payments.yaml', import.meta.url), 'utf8');

/** Asserts that fn throws code and that the message names `file:line` (when line is given). */
function refused(fn: () => unknown, code: string, line?: number, reason?: RegExp): void {
  try {
    fn();
  } catch (err) {
    assert.ok(isCageError(err), String(err));
    assert.equal(err.code, code, err.message);
    if (line !== undefined) assert.match(err.message, new RegExp(`^b\\.yaml:${line}: `), err.message);
    if (reason) assert.match(err.message, reason);
    return;
  }
  assert.fail('not refused');
}
const load = (text: string) => loadPolicy(text, { file: 'b.yaml' });

describe('policies/load', () => {
  it('loads an example, filling schema defaults, and freezes the bundle', () => {
    const { bundle } = parseBundle(example);
    assert.equal(bundle.rules[0]!.effect, 'deny');
    assert.equal(bundle.shadow, false);
    assert.equal(bundle.default_class, 'Internal');
    assert.ok(Object.isFrozen(bundle.rules[0]!.require));
  });

  it('names file:line and the reason for schema errors', () => {
    refused(() => load('name: x\nversion: "1"\nrules:\n  - id: a\n    require:\n      signd: true\n'), 'POLICY_INVALID', 6, /unknown key "signd"/);
    refused(() => load('name: x\nversion: "1"\nrules:\n  - id: a\n    require: { encrypted: maybe }\n'), 'POLICY_INVALID', 5, /must be one of tls, pq, any/);
    refused(() => load('name: x\nversion: "1"\nrules:\n  - id: a\n    effect: deny\n'), 'POLICY_INVALID', 4, /missing key "require"/);
    refused(() => load('name: x\nversion: "1"\nrules:\n  - id: a\n    require: {signed: true}\n  - id: a\n    require: {signed: true}\n'), 'POLICY_INVALID', 6, /duplicate id/);
    refused(() => load('name: x\nversion: "1"\nrules:\n  - id: a\n    when: { paths: ["/a/(b|c)+"] }\n    require: {signed: true}\n'), 'POLICY_INVALID', 5, /glob subset/);
    refused(() => load('name: x\nversion: "1"\nrules: [\n'), 'POLICY_INVALID', 4, /Flow sequence/);
    refused(() => load('name: x\nname: y\nversion: "1"\nrules: []\n'), 'POLICY_INVALID', 2);
    refused(() => load('- a\n- b\n'), 'POLICY_INVALID', 1);
  });

  describe('hostile bundles', () => {
    it('refuses a huge file before parsing it', () => {
      refused(() => load(`name: x\nversion: "1"\nrules: []\ndescription: "${'a'.repeat(1024 * 1024)}"\n`), 'POLICY_INVALID', undefined, /limit/);
    });
    it('refuses deep flow nesting before the parser recurses', () => {
      refused(() => load(`name: x\nversion: "1"\nrules: ${'['.repeat(200_000)}${']'.repeat(200_000)}\n`), 'POLICY_INVALID', undefined, /nesting/);
    });
    it('refuses deep block nesting (compact sequences and indentation) without crashing', () => {
      refused(() => load(`name: x\nversion: "1"\nrules:\n${'- '.repeat(100_000)}a\n`), 'POLICY_INVALID', undefined);
      let text = 'name: x\nversion: "1"\nrules: []\nregion_groups:\n';
      for (let i = 1; i < 40; i++) text += `${'  '.repeat(i)}k${i}:\n`;
      refused(() => load(text), 'POLICY_INVALID', undefined, /nesting|region_groups/);
    });
    it('refuses anchors and aliases outright (no billion laughs)', () => {
      let bomb = 'a0: &a0 [x, x, x, x, x, x, x, x, x]\n';
      for (let i = 1; i < 9; i++) bomb += `a${i}: &a${i} [*a${i - 1}, *a${i - 1}, *a${i - 1}, *a${i - 1}, *a${i - 1}, *a${i - 1}, *a${i - 1}, *a${i - 1}, *a${i - 1}]\n`;
      refused(() => load(`name: x\nversion: "1"\nrules: []\n${bomb}`), 'POLICY_INVALID', 4, /aliases/);
      refused(() => load('name: &n x\nversion: "1"\nrules: []\n'), 'POLICY_INVALID', 1, /aliases/);
    });
    it('refuses custom tags and non-string keys', () => {
      refused(() => load('name: !!js/function x\nversion: "1"\nrules: []\n'), 'POLICY_INVALID');
      refused(() => load('name: x\nversion: "1"\nrules: []\n? [a]\n: b\n'), 'POLICY_INVALID');
    });
    it('regex-shaped values are never compiled: a would-be ReDoS pattern is a literal path segment', () => {
      const evil = `/(a+)+$${'a'.repeat(400)}`;
      const p = load(`name: x\nversion: "1"\nrules:\n  - id: a\n    when: { paths: ["${evil}"] }\n    require: { signed: true }\n`);
      const base = { method: 'GET', host: 'h', routeName: 'r', identity: { kind: 'jwt' as const, roles: [] }, signed: false, encrypted: { tls: true, pq: false }, consent: [], bodyLength: 0 };
      const t = process.hrtime.bigint();
      assert.equal(p.decide({ ...base, path: `/${'a'.repeat(100_000)}!` }).verdict, 'green');
      assert.ok(Number(process.hrtime.bigint() - t) < 50e6);
      assert.equal(p.decide({ ...base, path: evil }).verdict, 'red', 'it matches itself, literally');
      refused(() => load(`name: x\nversion: "1"\nrules:\n  - id: a\n    when: { paths: ["/a/[bc]*"] }\n    require: { signed: true }\n`), 'POLICY_INVALID', 5, /glob subset/);
    });
  });

  describe('signatures', () => {
    const { privateKey } = generateKeyPairSync('ed25519');
    const other = generateKeyPairSync('ed25519').privateKey;
    const pub = rawPublicKey(privateKey);
    const signed = signBundle(example, privateKey);

    it('sign then verify; comments survive; the signer is reported', () => {
      assert.equal(verifyBundle(signed, [pub]), pub);
      assert.match(signed, /^# PCI DSS-style/);
      assert.equal(loadPolicy(signed, { trustedKeys: [pub] }).signedBy, pub);
    });
    it('a tampered bundle fails, even by one character or one re-ordered rule', () => {
      refused(() => verifyBundle(signed.replace('max_body_bytes: 65536', 'max_body_bytes: 65537'), [pub]), 'POLICY_BAD_SIGNATURE');
      refused(() => verifyBundle(signed.replace('effect: warn', 'effect: deny'), [pub]), 'POLICY_BAD_SIGNATURE');
      refused(() => verifyBundle(signed.replace(/sig: .*/, `sig: ${'A'.repeat(86)}==`), [pub]), 'POLICY_BAD_SIGNATURE');
    });
    it('formatting and key order do not matter: the canonical form is signed', () => {
      const reformatted = signed.replace('version: 2.0.1\n', '').replace('name: pci-payments\n', 'name: pci-payments\nversion: 2.0.1  # moved\n');
      assert.notEqual(reformatted, signed);
      assert.equal(verifyBundle(reformatted, [pub]), pub);
      assert.equal(canonicalJson({ b: [1, 'x'], a: { d: null, c: true } }), '{"a":{"c":true,"d":null},"b":[1,"x"]}');
    });
    it('untrusted signer, unsigned bundle where a signature is required, wrong key type', () => {
      refused(() => verifyBundle(signBundle(example, other), [pub]), 'POLICY_BAD_SIGNATURE', undefined, /not trusted/);
      refused(() => verifyBundle(example, [pub]), 'POLICY_BAD_SIGNATURE', undefined, /not signed/);
      refused(() => loadPolicy(example, { requireSignature: true }), 'POLICY_BAD_SIGNATURE');
      assert.ok(loadPolicy(example).decide);
      refused(() => signBundle(example, generateKeyPairSync('x25519').privateKey), 'POLICY_BAD_SIGNATURE');
    });
    it('re-signing replaces the old signature; an invalid bundle cannot be signed', () => {
      const again = signBundle(signed, other);
      assert.equal(verifyBundle(again, [rawPublicKey(other)]), rawPublicKey(other));
      assert.equal((again.match(/^signature:/gm) ?? []).length, 1);
      refused(() => signBundle('name: x\nversion: "1"\nrules: 3\n', privateKey, 'b.yaml'), 'POLICY_INVALID', 3);
    });
  });
});
