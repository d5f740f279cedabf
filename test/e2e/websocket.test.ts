/**
 * WebSocket pass-through end to end: a real `ws` client → the cage (uWS) → a real `ws` server.
 * Frames must arrive byte-exact with their text/binary flag, control frames and close codes must
 * cross in both directions, and every handshake failure must come back as the cage's JSON error.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import type { Cage } from '../../gateway/cage.js';
import { ADMIN_TOKEN, baseConfig, startAdminCage, tempDir, waitFor } from '../helpers/e2e.js';
import { closedPort, errorCode, Fixtures, request, startRawUpstream } from '../helpers/servers.js';
import { connectWs, refusedHandshake, startWsUpstream, type WsUpstream } from '../helpers/ws.js';

describe('e2e: WebSocket pass-through', function () {
  const fx = new Fixtures();
  let up: WsUpstream;
  let refusing: WsUpstream;
  let cage: Cage;
  let routes: unknown[];

  before(async () => {
    // The upstream picks the *last* offered subprotocol, so a cage that made its own choice
    // (the first) would be caught.
    // 'none' makes it pick nothing; 'rogue' makes it pick one that was never offered.
    up = await startWsUpstream({ handleProtocols: (p) => (p.has('none') ? false : p.has('rogue') ? 'unoffered' : p.size > 0 ? [...p].at(-1)! : false) }, fx);
    refusing = await startWsUpstream({ refuseWith: 401 }, fx);
    routes = [
      { name: 'ws', match: { path: '/ws' }, upstreams: [up.url] },
      { name: 'nows', match: { path: '/nows' }, upstreams: [up.url], websocket: false },
      { name: 'refusing', match: { path: '/refusing' }, upstreams: [refusing.url] },
      { name: 'down', match: { path: '/down' }, upstreams: [`http://127.0.0.1:${await closedPort()}`] },
    ];
    cage = await startAdminCage(routes, {}, fx);
  });

  after(() => fx.closeAll());

  it('passes text messages both ways byte-exact, flagged as text', async () => {
    const { ws, inbox } = await connectWs(cage.port, '/ws/text', {}, fx);
    const conn = await up.nextConnection('/ws/text');
    assert.equal(conn.path, '/ws/text');
    const out = 'héllo, wörld ✓ 🙂';
    ws.send(out);
    const atUp = await conn.inbox.next();
    assert.equal(atUp.isBinary, false);
    assert.equal(atUp.data.toString('utf8'), out);
    conn.ws.send('answer ✓');
    const atClient = await inbox.next();
    assert.equal(atClient.isBinary, false);
    assert.equal(atClient.data.toString('utf8'), 'answer ✓');
    ws.close();
  });

  it('passes binary messages both ways byte-exact, including 1 MiB ones', async () => {
    const { ws, inbox } = await connectWs(cage.port, '/ws/binary', {}, fx);
    const conn = await up.nextConnection('/ws/binary');
    const small = Buffer.from([0, 1, 2, 0xff, 0, 0x80]);
    const big = randomBytes(1024 * 1024);
    ws.send(small, { binary: true });
    ws.send(big, { binary: true });
    const m1 = await conn.inbox.next();
    const m2 = await conn.inbox.next();
    assert.equal(m1.isBinary, true);
    assert.ok(m1.data.equals(small));
    assert.equal(m2.isBinary, true);
    assert.equal(m2.data.length, big.length);
    assert.ok(m2.data.equals(big), '1 MiB client → upstream message differs');

    const back = randomBytes(1024 * 1024);
    conn.ws.send(back, { binary: true });
    conn.ws.send(small, { binary: true });
    const r1 = await inbox.next();
    const r2 = await inbox.next();
    assert.equal(r1.isBinary, true);
    assert.ok(r1.data.equals(back), '1 MiB upstream → client message differs');
    assert.ok(r2.data.equals(small));
    ws.close();
  });

  it("gives the client the upstream's subprotocol choice", async () => {
    const { ws } = await connectWs(cage.port, '/ws/proto', { protocols: ['chat.v1', 'chat.v2'] }, fx);
    const conn = await up.nextConnection('/ws/proto');
    assert.equal(conn.headers['sec-websocket-protocol']?.split(/\s*,\s*/).join(','), 'chat.v1,chat.v2');
    assert.equal(ws.protocol, 'chat.v2');
    ws.close();
  });

  it('lets an upstream that picks no subprotocol accept the connection (no protocol reaches the client)', async () => {
    // Offered by header: the `ws` client itself, given `protocols`, would refuse such an answer.
    // It still fails the handshake if the cage sends a subprotocol nobody offered to it.
    const { ws, inbox } = await connectWs(cage.port, '/ws/noproto', { headers: { 'sec-websocket-protocol': 'none' } }, fx);
    const conn = await up.nextConnection('/ws/noproto');
    assert.equal(conn.headers['sec-websocket-protocol'], 'none');
    assert.equal(ws.protocol, '');
    conn.ws.send('still works');
    assert.equal((await inbox.next()).data.toString(), 'still works');
    ws.close();
  });

  it('answers 502 GW_WS_UPSTREAM_FAILED when the upstream picks a subprotocol the client did not offer', async () => {
    const r = await refusedHandshake(cage.port, '/ws/rogue', { headers: { 'sec-websocket-protocol': 'rogue' } });
    assert.equal(r.status, 502);
    assert.equal(errorCode(r.body), 'GW_WS_UPSTREAM_FAILED');
  });

  it("refuses a malformed subprotocol list with 400 GW_BAD_REQUEST and keeps serving", async () => {
    const r = await refusedHandshake(cage.port, '/ws/badproto', { headers: { 'sec-websocket-protocol': 'a, a' } });
    assert.equal(r.status, 400);
    assert.equal(errorCode(r.body), 'GW_BAD_REQUEST');
    const r2 = await refusedHandshake(cage.port, '/ws/badproto', { headers: { 'sec-websocket-protocol': 'a b' } });
    assert.equal(r2.status, 400);
    assert.equal(errorCode(r2.body), 'GW_BAD_REQUEST');
    const { ws } = await connectWs(cage.port, '/ws/after-bad', {}, fx);
    await up.nextConnection('/ws/after-bad');
    ws.close();
  });

  it("forwards the upstream's ping to the client and the client's pong back", async () => {
    const { inbox, ws } = await connectWs(cage.port, '/ws/ping', {}, fx);
    const conn = await up.nextConnection('/ws/ping');
    conn.ws.ping(Buffer.from('from-upstream'));
    await waitFor(() => inbox.pings.length > 0, 'the ping at the client');
    assert.equal(inbox.pings[0]!.toString(), 'from-upstream');
    // The client (ws, autoPong) answers; the pong must reach the upstream with the same payload.
    await waitFor(() => conn.inbox.pongs.length > 0, 'the pong at the upstream');
    assert.equal(conn.inbox.pongs[0]!.toString(), 'from-upstream');
    ws.close();
  });

  it("answers the client's ping with a pong", async () => {
    const { inbox, ws } = await connectWs(cage.port, '/ws/clientping', {}, fx);
    await up.nextConnection('/ws/clientping');
    ws.ping(Buffer.from('from-client'));
    await waitFor(() => inbox.pongs.length > 0, 'the pong at the client');
    assert.equal(inbox.pongs[0]!.toString(), 'from-client');
    ws.close();
  });

  it("passes the client's close code and reason to the upstream", async () => {
    const { ws, inbox } = await connectWs(cage.port, '/ws/close1', {}, fx);
    const conn = await up.nextConnection('/ws/close1');
    ws.close(4001, 'bye');
    assert.deepEqual(await conn.inbox.waitClosed(), { code: 4001, reason: 'bye' });
    await inbox.waitClosed();
  });

  it("passes the upstream's close code and reason to the client", async () => {
    const { inbox } = await connectWs(cage.port, '/ws/close2', {}, fx);
    const conn = await up.nextConnection('/ws/close2');
    conn.ws.close(4002, 'go away');
    assert.deepEqual(await inbox.waitClosed(), { code: 4002, reason: 'go away' });
  });

  it('closes the client when the upstream drops the connection without a close frame', async () => {
    const { inbox } = await connectWs(cage.port, '/ws/drop', {}, fx);
    const conn = await up.nextConnection('/ws/drop');
    conn.ws.terminate();
    const closed = await inbox.waitClosed();
    assert.equal(closed.code, 1006);
  });

  it('sends the request target upstream byte for byte (no normalization, query untouched)', async () => {
    const { ws } = await connectWs(cage.port, '/ws/a%2Fb/%7E?q=%2e%2e&x=/../', {}, fx);
    const conn = await up.nextConnection('/ws/a%2Fb/%7E?q=%2e%2e&x=/../');
    assert.equal(conn.path, '/ws/a%2Fb/%7E?q=%2e%2e&x=/../');
    ws.close();
  });

  it('refuses dot-segments in the handshake path with 400 GW_BAD_REQUEST, like plain requests', async () => {
    const before = up.connections.length;
    for (const path of ['/ws/../admin', '/ws/%2e%2e/admin', '/ws/./x']) {
      const r = await refusedHandshake(cage.port, path);
      assert.equal(r.status, 400, path);
      assert.equal(errorCode(r.body), 'GW_BAD_REQUEST', path);
    }
    assert.equal(up.connections.length, before);
  });

  it('answers 502 GW_WS_UPSTREAM_FAILED when the upstream refuses the handshake', async () => {
    const r = await refusedHandshake(cage.port, '/refusing');
    assert.equal(r.status, 502);
    assert.equal(errorCode(r.body), 'GW_WS_UPSTREAM_FAILED');
  });

  it('answers 502 GW_WS_UPSTREAM_FAILED when the upstream is down', async () => {
    const r = await refusedHandshake(cage.port, '/down');
    assert.equal(r.status, 502);
    assert.equal(errorCode(r.body), 'GW_WS_UPSTREAM_FAILED');
  });

  it('refuses WebSockets on a route with websocket: false (403 GW_DENIED)', async () => {
    const before = up.connections.length;
    const r = await refusedHandshake(cage.port, '/nows');
    assert.equal(r.status, 403);
    assert.equal(errorCode(r.body), 'GW_DENIED');
    assert.equal(up.connections.length, before, 'the upstream must not see the handshake');
  });

  it('answers 404 GW_NO_ROUTE for a WebSocket to no route', async () => {
    const c = await startAdminCage([{ match: { host: 'only.example' }, upstreams: [up.url] }], {}, fx);
    const r = await refusedHandshake(c.port, '/x');
    assert.equal(r.status, 404);
    assert.equal(errorCode(r.body), 'GW_NO_ROUTE');
  });

  it("sends X-Forwarded-For (the client's address, not a spoofed one) and the request id on the handshake", async () => {
    const { ws } = await connectWs(cage.port, '/ws/xff', { headers: { 'x-forwarded-for': '6.6.6.6', 'x-request-id': 'ws-req-1' } }, fx);
    const conn = await up.nextConnection('/ws/xff');
    assert.equal(conn.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(conn.headers['x-forwarded-proto'], 'http');
    assert.equal(conn.headers['x-request-id'], 'ws-req-1');
    assert.equal(conn.headers.host, `127.0.0.1:${cage.port}`);
    ws.close();
  });

  it('replaces a malformed client request id on the handshake', async () => {
    const { ws } = await connectWs(cage.port, '/ws/rid', { headers: { 'x-request-id': 'bad id with spaces' } }, fx);
    const conn = await up.nextConnection('/ws/rid');
    assert.notEqual(conn.headers['x-request-id'], 'bad id with spaces');
    assert.match(conn.headers['x-request-id'] as string, /^[0-9a-f-]{36}$/);
    ws.close();
  });

  it('keeps an open WebSocket working across a reload that moves the route; new ones go to the new upstream', async () => {
    const up2 = await startWsUpstream({}, fx);
    const dir = tempDir(fx);
    const c = await startAdminCage([{ name: 'ws', upstreams: [up.url] }], {}, fx);
    const { ws, inbox } = await connectWs(c.port, '/live', {}, fx);
    const conn = await up.nextConnection('/live');

    await c.reload(JSON.stringify(baseConfig(dir, [{ name: 'moved', upstreams: [up2.url] }], { admin: { listen: '127.0.0.1:0', token: ADMIN_TOKEN } })));
    assert.deepEqual(c.config.routes.map((r) => r.name), ['moved']);

    ws.send('after reload');
    assert.equal((await conn.inbox.next()).data.toString(), 'after reload');
    conn.ws.send('still here');
    assert.equal((await inbox.next()).data.toString(), 'still here');
    assert.equal(inbox.closed, undefined);

    const { ws: ws2 } = await connectWs(c.port, '/new', {}, fx);
    const conn2 = await up2.nextConnection('/new');
    assert.equal(conn2.path, '/new');
    ws2.close();
    ws.close(1000, 'done');
    assert.deepEqual(await conn.inbox.waitClosed(), { code: 1000, reason: 'done' });
  });

  it('a client leaving mid-handshake closes the pending upstream connection', async () => {
    let upstreamClosed = false;
    // Accepts and reads the handshake, never answers it.
    const silent = await startRawUpstream((socket) => {
      socket.resume();
      socket.on('close', () => (upstreamClosed = true));
    }, fx);
    const c = await startAdminCage([{ upstreams: [silent.url] }], {}, fx);
    const client = connect(c.port, '127.0.0.1');
    client.on('error', () => undefined);
    client.write('GET /pending HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n');
    await waitFor(() => silent.connections === 1, 'the upstream connection');
    client.destroy();
    await waitFor(() => upstreamClosed, 'the upstream connection to be closed');
  });

  it('answers 502 GW_WS_UPSTREAM_FAILED when the upstream never answers the handshake (connect timeout)', async () => {
    const silent = await startRawUpstream((socket) => socket.resume(), fx);
    const c = await startAdminCage([{ upstreams: [silent.url], timeouts: { connect: '200ms' } }], {}, fx);
    const r = await refusedHandshake(c.port, '/slow');
    assert.equal(r.status, 502);
    assert.equal(errorCode(r.body), 'GW_WS_UPSTREAM_FAILED');
  });

  it('counts open WebSockets in cage_websocket_connections', async () => {
    const gauge = async () => {
      const r = await request(cage.adminPort, { path: '/metrics' });
      return Number(/^cage_websocket_connections (\d+)$/m.exec(r.body.toString())?.[1]);
    };
    await waitFor(async () => (await gauge()) === 0, 'no open WebSockets');
    const { ws, inbox } = await connectWs(cage.port, '/ws/gauge', {}, fx);
    await up.nextConnection('/ws/gauge');
    assert.equal(await gauge(), 1);
    ws.close();
    await inbox.waitClosed();
    await waitFor(async () => (await gauge()) === 0, 'the gauge back to 0');
  });

  it('closes open WebSockets with 1001 on shutdown', async () => {
    const c = await startAdminCage([{ upstreams: [up.url] }], {}, fx);
    const { inbox } = await connectWs(c.port, '/bye', {}, fx);
    const conn = await up.nextConnection('/bye');
    await c.shutdown(1000);
    assert.equal((await inbox.waitClosed()).code, 1001);
    assert.equal((await conn.inbox.waitClosed()).code, 1001);
  });
});
