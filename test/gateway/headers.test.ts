import assert from 'node:assert/strict';
import { applyOps, buildResponseHeaders, buildUpstreamHeaders, compileTrustedProxies, isTrusted } from '../../gateway/headers.js';
import { Exchange } from '../../gateway/exchange.js';

const NO_OPS = { set: [], remove: [] };

function exchange(headers: string[], remote = '203.0.113.7'): Exchange {
  const ex = new Exchange();
  ex.headers = headers;
  ex.remoteAddress = remote;
  ex.host = 'app.test';
  ex.id = 'rid-1';
  return ex;
}

function toMap(flat: string[]): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (let i = 0; i < flat.length; i += 2) m.set(flat[i]!, [...(m.get(flat[i]!) ?? []), flat[i + 1]!]);
  return m;
}

describe('gateway/headers', () => {
  it('drops hop-by-hop fields and those named in Connection', () => {
    const ex = exchange([
      'host', 'app.test', 'connection', 'keep-alive, X-Secret-Hop', 'keep-alive', 'timeout=5', 'te', 'trailers',
      'trailer', 'x', 'upgrade', 'h2c', 'proxy-authorization', 'Basic x', 'proxy-connection', 'keep-alive',
      'transfer-encoding', 'chunked', 'expect', '100-continue', 'x-secret-hop', 'v', 'accept', '*/*',
    ]);
    const m = toMap(buildUpstreamHeaders(ex, false, NO_OPS));
    for (const gone of ['connection', 'keep-alive', 'te', 'trailer', 'upgrade', 'proxy-authorization', 'proxy-connection', 'transfer-encoding', 'expect', 'x-secret-hop']) {
      assert.ok(!m.has(gone), gone);
    }
    assert.deepEqual(m.get('accept'), ['*/*']);
    assert.deepEqual(m.get('host'), ['app.test']);
  });

  it('replaces forwarding headers from untrusted peers', () => {
    const ex = exchange(['x-forwarded-for', '6.6.6.6', 'x-forwarded-proto', 'https', 'x-forwarded-host', 'evil.test', 'forwarded', 'for=6.6.6.6', 'x-request-id', 'spoof']);
    const m = toMap(buildUpstreamHeaders(ex, false, NO_OPS));
    assert.deepEqual(m.get('x-forwarded-for'), ['203.0.113.7']);
    assert.deepEqual(m.get('x-forwarded-proto'), ['http']);
    assert.deepEqual(m.get('x-forwarded-host'), ['app.test']);
    assert.deepEqual(m.get('forwarded'), ['for=203.0.113.7;host=app.test;proto=http']);
    assert.deepEqual(m.get('x-request-id'), ['rid-1']);
  });

  it('appends to forwarding headers from trusted peers', () => {
    const ex = exchange(['x-forwarded-for', '198.51.100.1', 'x-forwarded-for', '198.51.100.2', 'x-forwarded-proto', 'https', 'x-forwarded-host', 'public.test', 'forwarded', 'for=198.51.100.1'], '10.1.2.3');
    const m = toMap(buildUpstreamHeaders(ex, true, NO_OPS));
    assert.deepEqual(m.get('x-forwarded-for'), ['198.51.100.1, 198.51.100.2, 10.1.2.3']);
    assert.deepEqual(m.get('x-forwarded-proto'), ['https']);
    assert.deepEqual(m.get('x-forwarded-host'), ['public.test']);
    assert.deepEqual(m.get('forwarded'), ['for=198.51.100.1, for=10.1.2.3;host=app.test;proto=http']);
  });

  it('quotes IPv6 nodes and non-token hosts in Forwarded (RFC 7239 §6)', () => {
    const ex = exchange([], '2001:db8::1');
    ex.host = 'app.test:8080';
    const m = toMap(buildUpstreamHeaders(ex, false, NO_OPS));
    assert.deepEqual(m.get('forwarded'), ['for="[2001:db8::1]";host="app.test:8080";proto=http']);
  });

  it('applies route set/remove after the edge headers', () => {
    const ex = exchange(['x-debug', '1', 'x-env', 'dev', 'accept', 'a']);
    const m = toMap(buildUpstreamHeaders(ex, false, { set: [['x-env', 'prod']], remove: ['x-debug', 'x-forwarded-host'] }));
    assert.ok(!m.has('x-debug'));
    assert.ok(!m.has('x-forwarded-host'));
    assert.deepEqual(m.get('x-env'), ['prod']);
    assert.deepEqual(applyOps(['a', '1'], NO_OPS), ['a', '1']);
  });

  it('trusts peers by CIDR, IPv4 and IPv6', () => {
    const list = compileTrustedProxies(['10.0.0.0/8', '::1', '2001:db8::/32']);
    assert.ok(isTrusted(list, '10.200.0.1'));
    assert.ok(!isTrusted(list, '11.0.0.1'));
    assert.ok(isTrusted(list, '::1'));
    assert.ok(isTrusted(list, '2001:db8:1::5'));
    assert.ok(!isTrusted(list, '2001:db9::1'));
    assert.ok(!isTrusted(undefined, '10.0.0.1'));
    assert.ok(!isTrusted(list, ''));
  });

  it('builds response headers: drops framing, Date, hop-by-hop and an app-forged Cage-Receipt; reads Content-Length; sets the request id', () => {
    const raw = ['Content-Type', 'text/plain', 'Content-Length', '12', 'Date', 'x', 'Connection', 'close, X-Hop', 'X-Hop', '1', 'Keep-Alive', 't', 'Transfer-Encoding', 'chunked', 'X-Request-Id', 'upstream-id', 'Cage-Receipt', 'origin="forged", index=0', 'Set-Cookie', 'a=1', 'Set-Cookie', 'b=2', 'Server', 'app'].map((s) => Buffer.from(s));
    const head = buildResponseHeaders(raw, { set: [['x-frame-options', 'DENY']], remove: ['server'] }, 'rid-9');
    assert.equal(head.contentLength, 12);
    assert.deepEqual(head.headers, ['content-type', 'text/plain', 'set-cookie', 'a=1', 'set-cookie', 'b=2', 'x-request-id', 'rid-9', 'x-frame-options', 'DENY']);
    assert.equal(buildResponseHeaders([Buffer.from('content-length'), Buffer.from('12abc')], NO_OPS, 'r').contentLength, -1);
    assert.equal(buildResponseHeaders([], NO_OPS, 'r').contentLength, -1);
  });
});
