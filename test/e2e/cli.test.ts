/**
 * The `cage` command as a user runs it (a child process): help output, usage errors (one
 * `cage: CLI_BAD_ARGS: …` line, exit 2), `validate`, `reverse-proxy` in front of the built-in echo
 * app or a given upstream, and a graceful SIGTERM with a request in flight.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { runCli, startCli } from '../helpers/cli.js';
import { ADMIN_TOKEN, startNamedUpstream, tempDir, waitFor, whoAnswers, type NamedUpstream } from '../helpers/e2e.js';
import { closedPort, Fixtures, request } from '../helpers/servers.js';
import { connectWs } from '../helpers/ws.js';

/** Resolves true when a TCP connection to the port is refused. */
function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

function stderrLines(stderr: string): string[] {
  return stderr.split('\n').filter((l) => l !== '');
}

describe('e2e: cage command line', function () {
  this.timeout(60_000);
  const fx = new Fixtures();
  let up: NamedUpstream;
  let dir: string;

  before(async () => {
    up = await startNamedUpstream('A', fx);
    dir = tempDir(fx);
  });

  after(() => fx.closeAll());

  it('--help lists the commands; `<command> --help` lists its flags; both exit 0', async () => {
    const [top, rp, run, validate, helpRun] = await Promise.all([
      runCli(['--help']),
      runCli(['reverse-proxy', '--help']),
      runCli(['run', '--help']),
      runCli(['validate', '-h']),
      runCli(['help', 'run']),
    ]);
    assert.equal(top.code, 0);
    for (const cmd of ['reverse-proxy', 'run', 'validate']) assert.match(top.stdout, new RegExp(`^  ${cmd} `, 'm'));
    assert.equal(rp.code, 0);
    for (const flag of ['--from', '--to', '--admin', '--no-admin', '--data-dir', '--lb', '--tls-cert', '--tls-key', '--trusted-proxy', '--no-access-log', '--log-level', '--help']) {
      assert.ok(rp.stdout.includes(flag), `reverse-proxy --help lacks ${flag}`);
    }
    assert.equal(run.code, 0);
    assert.match(run.stdout, /--config FILE/);
    assert.equal(validate.code, 0);
    assert.match(validate.stdout, /--config FILE/);
    assert.equal(helpRun.code, 0);
    assert.equal(helpRun.stdout, run.stdout);
    for (const r of [top, rp, run, validate]) assert.equal(r.stderr, '');
  });

  it('usage errors give one `cage: CLI_BAD_ARGS:` line on stderr and exit 2', async () => {
    const cases = [
      ['frobnicate'],
      ['reverse-proxy', '--bogus'],
      ['reverse-proxy', '--from', 'nonsense'],
      ['reverse-proxy', '--to', 'ftp://x'],
      ['reverse-proxy', '--to', 'http://127.0.0.1:1', '--lb', 'fastest'],
      ['run'],
      ['validate', 'stray-positional'],
      ['help', 'nope'],
    ];
    const results = await Promise.all(cases.map((args) => runCli(args)));
    results.forEach((r, i) => {
      const lines = stderrLines(r.stderr);
      assert.equal(lines.length, 1, `${cases[i]!.join(' ')}: stderr ${JSON.stringify(r.stderr)}`);
      assert.match(lines[0]!, /^cage: CLI_BAD_ARGS: /, cases[i]!.join(' '));
      assert.equal(r.code, 2, cases[i]!.join(' '));
      assert.equal(r.stdout, '');
    });
  });

  it('validate exits 0 on a good config and 1 naming the path on an unknown key', async () => {
    const good = join(dir, 'good.yaml');
    writeFileSync(good, `listen: 127.0.0.1:9999\nroutes:\n  - name: app\n    match: { host: app.example }\n    upstreams: [${up.url}]\n`);
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, `routes:\n  - match: { hots: app.example }\n    upstreams: [${up.url}]\n`);
    const broken = join(dir, 'broken.yaml');
    writeFileSync(broken, 'routes: [\n');
    const [g, b, y, missing] = await Promise.all([
      runCli(['validate', '--config', good]),
      runCli(['validate', '--config', bad]),
      runCli(['validate', '-c', broken]),
      runCli(['validate', '--config', join(dir, 'absent.yaml')]),
    ]);
    assert.equal(g.code, 0, g.stderr);
    assert.match(g.stdout, /^config OK: /);
    assert.equal(b.code, 1);
    const lines = stderrLines(b.stderr);
    assert.equal(lines.length, 1, b.stderr);
    assert.match(lines[0]!, /^cage: CONFIG_INVALID: /);
    assert.ok(lines[0]!.includes('routes[0].match.hots'), lines[0]);
    assert.equal(y.code, 1);
    assert.match(y.stderr, /^cage: CONFIG_PARSE_ERROR: /);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^cage: CONFIG_NOT_FOUND: /);
  });

  it('reverse-proxy with no --to fronts the built-in echo app', async () => {
    const { proc, port, adminPort } = await startCli(
      ['reverse-proxy', '--from', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--data-dir', join(dir, 'echo'), '--log-level', 'silent'],
      fx,
    );
    assert.ok(adminPort > 0);
    const r = await request(port, { method: 'POST', path: '/hello?x=1', body: 'abc' });
    assert.equal(r.status, 200);
    const echo = JSON.parse(r.body.toString()) as { app: string; method: string; url: string; headers: Record<string, string>; body: { bytes: number; sha256: string } };
    assert.equal(echo.app, 'http-cage echo');
    assert.equal(echo.method, 'POST');
    assert.equal(echo.url, '/hello?x=1');
    assert.equal(echo.headers['x-forwarded-for'], '127.0.0.1');
    assert.deepEqual(echo.body, { bytes: 3, sha256: 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad' });
    assert.equal((await request(adminPort, { path: '/healthz' })).status, 200);
    // The echo app echoes WebSocket messages too.
    const { ws, inbox } = await connectWs(port, '/ws', {}, fx);
    ws.send('ping through the cage');
    assert.equal((await inbox.next()).data.toString(), 'ping through the cage');
    ws.close();
    await inbox.waitClosed();
    proc.child.kill('SIGINT');
    assert.deepEqual(await proc.exited, { code: 0, signal: null });
  });

  it('reverse-proxy --from 127.0.0.1:PORT --to URL forwards to the upstream', async () => {
    const port = await closedPort();
    const { proc, port: bound, adminPort } = await startCli(
      ['reverse-proxy', '--from', `127.0.0.1:${port}`, '--to', up.url, '--no-admin', '--data-dir', join(dir, 'to'), '--no-access-log', '--log-level', 'warn'],
      fx,
    );
    assert.equal(bound, port);
    assert.equal(adminPort, 0);
    assert.equal(await whoAnswers(port, '/via-cli'), 'A');
    assert.ok(up.hits.includes('/via-cli'));
    proc.child.kill('SIGTERM');
    assert.deepEqual(await proc.exited, { code: 0, signal: null });
  });

  it('SIGTERM drains: the in-flight request completes, new connections are refused, exit 0', async () => {
    const { proc, port, adminPort } = await startCli(
      ['reverse-proxy', '--from', '127.0.0.1:0', '--to', up.url, '--admin', '127.0.0.1:0', '--data-dir', join(dir, 'drain'), '--log-level', 'silent'],
      fx,
    );
    assert.equal((await request(adminPort, { path: '/readyz' })).status, 200);
    const held = request(port, { path: '/hold/drain' });
    await waitFor(() => up.held.length === 1, 'the request to reach the upstream');
    proc.child.kill('SIGTERM');
    await waitFor(() => refused(port), 'the listener to close');
    // Still draining: the admin listener says not ready (load balancers stop sending).
    assert.equal((await request(adminPort, { path: '/readyz' })).status, 503);
    assert.equal(proc.exit, undefined, 'the cage must wait for the in-flight request');
    up.release();
    const r = await held;
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), 'released A');
    assert.deepEqual(await proc.exited, { code: 0, signal: null });
  });

  it('run --config serves the file and refuses to start on an invalid one (exit 1)', async () => {
    const file = join(dir, 'run.yaml');
    writeFileSync(
      file,
      `listen: 127.0.0.1:0\nadmin: { listen: 127.0.0.1:0, token: ${ADMIN_TOKEN} }\ndata_dir: ${join(dir, 'run')}\nlog: { level: silent }\nroutes:\n  - upstreams: [${up.url}]\n`,
    );
    const { proc, port, adminPort } = await startCli(['run', '--config', file], fx);
    assert.equal(await whoAnswers(port, '/run'), 'A');
    const cfg = await request(adminPort, { path: '/api/v1/config', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    assert.equal(cfg.status, 200);
    proc.child.kill('SIGTERM');
    assert.deepEqual(await proc.exited, { code: 0, signal: null });

    const bad = join(dir, 'run-bad.yaml');
    writeFileSync(bad, `routes:\n  - upstreams: [${up.url}]\n    retries: many\n`);
    const r = await runCli(['run', '--config', bad]);
    assert.equal(r.code, 1);
    assert.equal(stderrLines(r.stderr).length, 1, r.stderr);
    assert.match(r.stderr, /^cage: CONFIG_INVALID: routes\[0\]\.retries/);
  });

  it('exits 1 with GW_LISTEN_FAILED when the address is taken', async () => {
    const { proc, port } = await startCli(['reverse-proxy', '--from', '127.0.0.1:0', '--to', up.url, '--no-admin', '--data-dir', join(dir, 'taken'), '--log-level', 'silent'], fx);
    const r = await runCli(['reverse-proxy', '--from', `127.0.0.1:${port}`, '--to', up.url, '--no-admin', '--data-dir', join(dir, 'taken2'), '--log-level', 'silent']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^cage: GW_LISTEN_FAILED: /m);
    proc.child.kill('SIGTERM');
    assert.deepEqual(await proc.exited, { code: 0, signal: null });
  });
});
