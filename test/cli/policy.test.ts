import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { keyMain, policyMain } from '../../cli/policy.js';
import { hashApiKey } from '../../gateway/identity/stage.js';

function output(): { out: string[]; err: string[]; o: { out(l: string): void; err(l: string): void } } {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, o: { out: (l) => out.push(l), err: (l) => err.push(l) } };
}

describe('cli: cage policy and cage key', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cage-policy-cli-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('test: runs every example bundle against its cases with full rule coverage', async () => {
    const { out, o } = output();
    assert.equal(await policyMain(['test', 'policies/examples'], o), 0);
    assert.equal(out.length, 3);
    for (const line of out) assert.match(line, /: \d+ passed, 0 failed; rules covered (\d+)\/\1$/);
  });

  it('test: a case with the wrong expectation fails with exit 1 and names it', async () => {
    const cases = join(dir, 'wrong.cases.yaml');
    writeFileSync(cases, 'cases:\n  - name: should be red\n    input: { route: payments, method: POST, path: /v1/charges, tls: false }\n    expect: { verdict: green }\n');
    const { out, o } = output();
    assert.equal(await policyMain(['test', 'policies/examples/pci-payments.yaml', '--cases', cases], o), 1);
    assert.match(out.join('\n'), /FAIL should be red/);
  });

  it('keygen, sign, check: a signed bundle verifies with its key, and a tampered one does not', async () => {
    const key = join(dir, 'k.pem');
    const bundle = join(dir, 'b.yaml');
    copyFileSync('policies/examples/gdpr-eu.yaml', bundle);
    const g = output();
    assert.equal(await policyMain(['keygen', '--out', key], g.o), 0);
    const pub = /public key \(for policies.trusted_keys\): (\S+)$/.exec(g.out[0]!)![1]!;
    assert.equal(await policyMain(['keygen', '--out', key], output().o), 2, 'never overwrites a key');
    assert.equal(await policyMain(['sign', bundle, '--key', key], output().o), 0);
    const c = output();
    assert.equal(await policyMain(['check', bundle, '--trusted-key', pub], c.o), 0);
    assert.match(c.out[0]!, new RegExp(`signed by ${pub.replace(/[+/]/g, '\\$&')}`));
    writeFileSync(bundle, readFileSync(bundle, 'utf8').replace(/^version: .*$/m, 'version: 6.6.6'));
    const t = output();
    assert.equal(await policyMain(['check', bundle, '--trusted-key', pub], t.o), 1);
    assert.match(t.err.join('\n'), /POLICY_BAD_SIGNATURE/);
  });

  it('explain: names the rules that fired and why', async () => {
    const { out, o } = output();
    assert.equal(await policyMain(['explain', 'policies/examples/pci-payments.yaml', '--route', 'payments', '--method', 'POST', '--path', '/v1/charges', '--identity', 'jwt:bob', '--role', 'viewer'], o), 0);
    const text = out.join('\n');
    assert.match(text, /deny {2}pci-service-identity ROLE_MISSING/);
    assert.match(text, /verdict: RED$/);
    const bad = output();
    assert.equal(await policyMain(['explain', 'policies/examples/pci-payments.yaml', '--case', '{"nope":1}'], bad.o), 1);
    assert.match(bad.err.join('\n'), /POLICY_INVALID/);
  });

  it('key new prints a key whose hash is the config entry; key hash agrees', async () => {
    const { out, o } = output();
    assert.equal(await keyMain(['new', '--name', 'ci', '--role', 'deploy', '--class', 'gold'], o), 0);
    const key = /^key: (ck_\S+)$/.exec(out[0]!)![1]!;
    assert.match(out[2]!, new RegExp(`name: ci, sha256: ${hashApiKey(key)}, roles: \\[deploy\\], class: gold`));
    const h = output();
    assert.equal(await keyMain(['hash', key], h.o), 0);
    assert.equal(h.out[0], hashApiKey(key));
    assert.equal(await keyMain(['new'], output().o), 2);
  });
});
