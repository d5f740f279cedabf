import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { loadPolicyFile } from '../../policies/load.js';
import { parseCases, runCases } from '../../policies/test-cases.js';

const dir = new URL('../../policies/examples/', import.meta.url);
const EXAMPLES = ['gdpr-eu', 'pci-payments', 'hipaa-phi'];

describe('policies/examples', () => {
  for (const name of EXAMPLES) {
    it(`${name}: every case gets its expected verdict, and the cases fire every rule`, () => {
      const policy = loadPolicyFile(new URL(`${name}.yaml`, dir).pathname);
      const cases = parseCases(readFileSync(new URL(`${name}.cases.yaml`, dir), 'utf8'), `${name}.cases.yaml`);
      const report = runCases(policy, cases);
      assert.deepEqual(report.failed, []);
      assert.equal(report.passed, cases.cases.length);
      assert.deepEqual(report.coverage.missed, [], 'a rule no case exercises');
      assert.equal(report.coverage.total, policy.ruleIds.length);
    });
  }

  it('runCases reports a wrong expectation as a failure, and coverage counts only fired rules', () => {
    const policy = loadPolicyFile(new URL('pci-payments.yaml', dir).pathname);
    const report = runCases(policy, {
      cases: [
        { name: 'claims green but is plaintext', input: { route: 'payments', identity: { kind: 'api-key', roles: ['payments-writer'] } }, expect: { verdict: 'green' } },
        { name: 'right', input: { route: 'payments', tls: true, identity: { kind: 'api-key', roles: ['payments-writer'] } }, expect: { verdict: 'green' } },
      ],
    });
    assert.equal(report.passed, 1);
    assert.equal(report.failed.length, 1);
    assert.deepEqual(report.failed[0]!.got.violations, ['pci-encrypted-transport']);
    assert.deepEqual(report.coverage.hit, ['pci-encrypted-transport']);
    assert.equal(report.coverage.total, 5);
  });

  it('parseCases refuses unknown keys', () => {
    assert.throws(() => parseCases('cases:\n  - name: x\n    input: { rout: a }\n    expect: { verdict: green }\n'), { code: 'POLICY_INVALID' });
  });
});
