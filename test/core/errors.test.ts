import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { CageError, ERROR_CODES, errorBody, isCageError } from '../../core/errors.js';

describe('core/errors', () => {
  it('docs/errors.md lists exactly the codes in the registry, with the same status', () => {
    const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
    const rows = new Map<string, number>();
    for (const m of doc.matchAll(/^\| `([A-Z0-9_]+)` \| (\d{3}) \|/gm)) rows.set(m[1]!, Number(m[2]));
    const registry = new Map(Object.entries(ERROR_CODES).map(([code, v]) => [code, v.status as number]));
    assert.deepEqual([...rows.keys()].sort(), [...registry.keys()].sort());
    for (const [code, status] of registry) assert.equal(rows.get(code), status, `status of ${code}`);
  });

  it('every code is a room prefix plus words in upper snake case', () => {
    for (const code of Object.keys(ERROR_CODES)) assert.match(code, /^(GW|CONFIG|CLI|ADMIN|AUDIT|POLICY|IDENTITY|RATE|CHAIN|ANCHOR|BANK|COURT|GOV|ZK|PQ|NOTARY)_[A-Z0-9_]+$/);
  });

  it('CageError carries its code and HTTP status, and isCageError narrows by code', () => {
    const e = new CageError({ code: 'GW_UPSTREAM_TIMEOUT', message: 'slow' });
    assert.equal(e.status, 504);
    assert.ok(e instanceof Error);
    assert.ok(isCageError(e));
    assert.ok(isCageError(e, 'GW_UPSTREAM_TIMEOUT'));
    assert.ok(!isCageError(e, 'GW_BAD_REQUEST'));
    assert.ok(!isCageError(new Error('x')));
  });

  it('errorBody is the documented JSON shape', () => {
    assert.deepEqual(JSON.parse(errorBody('GW_NO_ROUTE', 'no route', 'rid-1')), {
      error: { code: 'GW_NO_ROUTE', message: 'no route', request_id: 'rid-1' },
    });
  });
});
