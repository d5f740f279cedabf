/**
 * `cage pq fetch` and `cage pq keys` as a user runs them (a child process running cli/pq.ts'
 * `pqMain`) against a real cage whose routes refuse plaintext (`require_pq`), so an answer from
 * the app proves the request went through the envelope. Covers what the app receives (method,
 * path, query, headers, body from -d or a file), what is printed (body; with -i the status line
 * and headers), -o, the exit codes (0 for any HTTP answer, 1 with `cage: CODE: message` when the
 * exchange cannot be protected or the server not reached, 2 for bad flags), and `keys` output
 * for the cage's list and for hand-made lists (a KEM the client lacks, a non-PQ KEM, bad framing).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Cage } from '../../gateway/cage.js';
import { loadConfigFile } from '../../gateway/config/load.js';
import { AEAD_AES_128_GCM, KDF_HKDF_SHA256, KEM_DHKEM_X25519_HKDF_SHA256, kemById } from '../../pq/hpke.js';
import { encodeKeyConfigList } from '../../pq/ohttp.js';
import { REPO_ROOT } from '../helpers/cli.js';
import { startAdminCage, tempDir } from '../helpers/e2e.js';
import { closedPort, errorCode, Fixtures, request, startEchoUpstream, startHttpUpstream, type EchoReport, type HttpUpstream } from '../helpers/servers.js';

const SNIPPET = "import('./cli/pq.ts').then(async m => process.exit(await m.pqMain(process.argv.slice(1), {out: l => console.log(l), err: l => console.error(l)})))";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** `cage pq ARGS…` in a child process (cwd the repository). */
function pq(...args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', '-e', SNIPPET, '--', ...args],
      { cwd: REPO_ROOT, env: { ...process.env, NODE_OPTIONS: '' }, timeout: 60_000, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : (err as { code?: unknown }).code;
        if (typeof code !== 'number') return reject(new Error(`cage pq ${args.join(' ')}: ${String(err)} ${stderr}`));
        resolve({ code, stdout, stderr });
      },
    );
  });
}

function stderrLines(r: Run): string[] {
  return r.stderr.split('\n').filter((l) => l !== '');
}

function received(r: EchoReport, name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < r.rawHeaders.length; i += 2) if (r.rawHeaders[i]!.toLowerCase() === name) out.push(r.rawHeaders[i + 1]!);
  return out;
}

describe('e2e: cage pq (command line)', function () {
  this.timeout(120_000);
  const fx = new Fixtures();
  let echo: HttpUpstream & { last: EchoReport | undefined };
  let cage: Cage;
  let base: string;
  let dir: string;

  before(async function () {
    echo = await startEchoUpstream(fx);
    const down = await closedPort();
    cage = await startAdminCage(
      [
        { name: 'secret', match: { path: '/secret' }, upstreams: [echo.url], require_pq: true },
        { name: 'down', match: { path: '/down' }, upstreams: [`http://127.0.0.1:${down}`], require_pq: true, retries: 0 },
      ],
      {},
      fx,
    );
    base = `http://127.0.0.1:${cage.port}`;
    dir = tempDir(fx);
    // The route refuses plaintext: whatever the app answers below came through the envelope.
    const plain = await request(cage.port, { path: '/secret/x' });
    assert.equal(plain.status, 403);
    assert.equal(errorCode(plain), 'PQ_REQUIRED');
  });
  after(() => fx.closeAll());

  describe('fetch', function () {
    it('GET: prints the body; the app got the method, path, query and headers', async function () {
      const before = echo.count;
      const r = await pq('fetch', `${base}/secret/items?x=1&y=%2F`, '-H', 'X-Custom: inner value', '-H', 'Accept: application/json');
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stderr, '');
      assert.equal(echo.count, before + 1);
      const printed = JSON.parse(r.stdout) as EchoReport;
      assert.deepEqual(printed, JSON.parse(JSON.stringify(echo.last)), 'stdout is the app body');
      assert.equal(printed.method, 'GET');
      assert.equal(printed.url, '/secret/items?x=1&y=%2F');
      assert.deepEqual(received(printed, 'x-custom'), ['inner value']);
      assert.deepEqual(received(printed, 'accept'), ['application/json']);
      assert.equal(printed.body, '');
    });

    it('-X and -d: the app got the method and body (POST by default with -d); -H sets the content type', async function () {
      const put = await pq('fetch', `${base}/secret/orders`, '-X', 'PUT', '-d', '{"n":1}', '-H', 'Content-Type: application/json');
      assert.equal(put.code, 0, put.stderr);
      const a = JSON.parse(put.stdout) as EchoReport;
      assert.equal(a.method, 'PUT');
      assert.equal(a.body, '{"n":1}');
      assert.deepEqual(received(a, 'content-type'), ['application/json']);
      const post = await pq('fetch', `${base}/secret/notes`, '-d', 'plain words');
      assert.equal(post.code, 0, post.stderr);
      const b = JSON.parse(post.stdout) as EchoReport;
      assert.equal(b.method, 'POST');
      assert.equal(b.body, 'plain words');
      assert.deepEqual(received(b, 'content-type'), ['text/plain;charset=UTF-8']);
    });

    it('--data-file sends the bytes of the file', async function () {
      const bytes = Buffer.concat([randomBytes(4096), Buffer.from([0, 0xff, 0x0d, 0x0a])]);
      const file = join(dir, 'body.bin');
      writeFileSync(file, bytes);
      const r = await pq('fetch', `${base}/secret/upload`, '--data-file', file, '-H', 'Content-Type: application/octet-stream');
      assert.equal(r.code, 0, r.stderr);
      const rep = JSON.parse(r.stdout) as EchoReport;
      assert.equal(rep.method, 'POST');
      assert.ok(Buffer.from(rep.body, 'latin1').equals(bytes), 'the app got the file byte for byte');
      assert.deepEqual(received(rep, 'content-length'), [String(bytes.length)]);
    });

    it('-i prints the status line and headers, a blank line, then the body; -o writes the body to a file', async function () {
      const r = await pq('fetch', `${base}/secret/head`, '-i');
      assert.equal(r.code, 0, r.stderr);
      const lines = r.stdout.split('\n');
      assert.equal(lines[0], 'HTTP 200 OK');
      const blank = lines.indexOf('');
      assert.ok(blank > 1, r.stdout);
      const head = lines.slice(1, blank);
      assert.ok(head.includes('content-type: application/json'), head.join('\n'));
      assert.ok(head.some((l) => /^x-request-id: [0-9a-f-]{36}$/.test(l)), head.join('\n'));
      assert.ok(head.some((l) => /^cage-receipt: origin=".+", index=\d+$/.test(l)), head.join('\n'));
      assert.equal((JSON.parse(lines.slice(blank + 1).join('\n')) as EchoReport).url, '/secret/head');

      const out = join(dir, 'answer.json');
      const o = await pq('fetch', `${base}/secret/saved`, '-o', out);
      assert.equal(o.code, 0, o.stderr);
      assert.equal(o.stdout, '');
      assert.equal((JSON.parse(readFileSync(out, 'utf8')) as EchoReport).url, '/secret/saved');
    });

    it('exits 0 for an error answer from inside the envelope, and prints it', async function () {
      const r = await pq('fetch', `${base}/down/x`, '-i');
      assert.equal(r.code, 0, r.stderr);
      const lines = r.stdout.split('\n');
      assert.equal(lines[0], 'HTTP 502 Bad Gateway');
      assert.equal(errorCode(lines.slice(lines.indexOf('') + 1).join('\n')), 'GW_UPSTREAM_UNREACHABLE');
    });

    it('exits 1 with `cage: CODE: message` when the exchange cannot be protected; nothing reaches the app', async function () {
      const before = echo.count;
      // A "key list" that is not one.
      const notKeys = await pq('fetch', `${base}/secret/x`, '--keys-url', `${base}/secret/not-keys`);
      assert.equal(notKeys.code, 1);
      assert.equal(notKeys.stdout, '');
      assert.match(stderrLines(notKeys).join('\n'), /^cage: PQ_UNSUPPORTED_SUITE: /);
      // Another cage's keys: the envelope is sealed to a key this cage does not hold.
      const other = await startAdminCage([{ upstreams: [echo.url] }], {}, fx);
      const foreign = await pq('fetch', `${base}/secret/x`, '--keys-url', `http://127.0.0.1:${other.port}/.well-known/ohttp-keys`);
      assert.equal(foreign.code, 1);
      assert.match(stderrLines(foreign).join('\n'), /^cage: PQ_(UNKNOWN_KEY|BAD_ENVELOPE): /);
      // An outer URL with no route: refused in the clear, so not an answer from inside.
      const noRoute = await pq('fetch', `${base}/nowhere`);
      assert.equal(noRoute.code, 1);
      assert.match(stderrLines(noRoute).join('\n'), /^cage: PQ_BAD_ENVELOPE: the gateway answered 404 /);
      assert.equal(echo.count, before);
    });

    it('exits 1 with a code when the server cannot be reached', async function () {
      const port = await closedPort();
      const r = await pq('fetch', `http://127.0.0.1:${port}/x`);
      assert.equal(r.code, 1);
      assert.deepEqual(stderrLines(r), [`cage: GW_UPSTREAM_UNREACHABLE: cannot reach http://127.0.0.1:${port}: ECONNREFUSED`]);
    });

    it('exits 2 with CLI_BAD_ARGS for bad flags, before sending anything', async function () {
      const before = echo.count;
      const url = `${base}/secret/x`;
      const cases: string[][] = [
        ['fetch'],
        ['fetch', url, url],
        ['fetch', 'ftp://example.com/x'],
        ['fetch', 'not a url'],
        ['fetch', url, '-d', 'a', '--data-file', join(dir, 'body.bin')],
        ['fetch', url, '--data-file', join(dir, 'missing.bin')],
        ['fetch', url, '--nope'],
        ['fetch', url, '-H', 'no colon here'],
        ['fetch', url, '-H', ': empty name'],
        ['fetch', url, '-X', 'BAD METHOD'],
        ['fetch', url, '-X', 'CONNECT'],
        ['fetch', url, '-X', 'GET', '-d', 'body'],
        ['fetch', url, '--keys-url', 'file:///etc/passwd'],
        ['fetch', url, '-X'],
        ['keys'],
        ['keys', 'mailto:a@b'],
        ['frobnicate'],
      ];
      const runs = await Promise.all(cases.map((args) => pq(...args)));
      runs.forEach((r, i) => {
        const what = cases[i]!.join(' ');
        assert.equal(r.code, 2, `${what}: exit ${r.code} ${r.stderr}`);
        assert.equal(r.stdout, '', what);
        const lines = stderrLines(r);
        assert.equal(lines.length, 1, `${what}: ${r.stderr}`);
        assert.match(lines[0]!, /^cage: CLI_BAD_ARGS: /, what);
      });
      assert.equal(echo.count, before);
    });

    it('--help prints the flags (exit 0); no subcommand prints the list (exit 2)', async function () {
      const [help, top, none] = await Promise.all([pq('fetch', '--help'), pq('--help'), pq()]);
      assert.equal(help.code, 0);
      for (const flag of ['-X, --request', '-d, --data', '--data-file', '-H, --header', '-i, --include', '-o, --output', '--keys-url']) assert.ok(help.stdout.includes(flag), `fetch --help lacks ${flag}`);
      assert.equal(top.code, 0);
      assert.match(top.stdout, /^ {2}fetch URL/m);
      assert.match(top.stdout, /^ {2}keys URL/m);
      assert.equal(none.code, 2);
      assert.equal(none.stdout, top.stdout);
    });
  });

  describe('keys', function () {
    it("prints the cage's key: id, KEM, fingerprint, KDF/AEAD pairs; from the origin or the keys URL", async function () {
      const current = cage.pq!.keys.current.config;
      const fingerprint = createHash('sha256').update(current.publicKey).digest('hex');
      const expected = [
        `key ${current.keyId}: KEM 0x647a X-Wing (post-quantum), public key 1216 bytes, sha256 ${fingerprint} [pq fetch uses this one]`,
        '  KDF 0x0001 HKDF-SHA256, AEAD 0x0002 AES-256-GCM',
        '  KDF 0x0001 HKDF-SHA256, AEAD 0x0003 CHACHA20-POLY1305',
        '  KDF 0x0001 HKDF-SHA256, AEAD 0x0001 AES-128-GCM',
        `1 key configuration at ${base}/.well-known/ohttp-keys`,
        '',
      ].join('\n');
      const [fromOrigin, fromUrl] = await Promise.all([pq('keys', base), pq('keys', `${base}/.well-known/ohttp-keys`)]);
      assert.equal(fromOrigin.code, 0, fromOrigin.stderr);
      assert.equal(fromOrigin.stdout, expected);
      assert.equal(fromUrl.code, 0, fromUrl.stderr);
      assert.equal(fromUrl.stdout, expected);
    });

    it('names keys it cannot use, and says when none is usable; refuses a badly framed list or a non-list', async function () {
      const x25519 = kemById(KEM_DHKEM_X25519_HKDF_SHA256)!.importPrivateKey(Buffer.alloc(32, 9));
      const dh = { keyId: 3, kemId: KEM_DHKEM_X25519_HKDF_SHA256, publicKey: x25519.publicKey, symmetric: [{ kdfId: KDF_HKDF_SHA256, aeadId: AEAD_AES_128_GCM }] };
      const unknownKem = Buffer.from([0x00, 0x05, 0x07, 0x99, 0x99, 0xaa, 0xbb]);
      const list = Buffer.concat([unknownKem, encodeKeyConfigList([dh])]);
      const lists: Record<string, Buffer> = { '/list': list, '/truncated': list.subarray(0, list.length - 1) };
      const server = await startHttpUpstream((req, res) => {
        const body = lists[req.url ?? ''];
        res.writeHead(body === undefined ? 404 : 200, { 'content-type': body === undefined ? 'text/plain' : 'application/ohttp-keys' });
        res.end(body ?? 'not here');
      }, fx);
      const [good, truncated, missing] = await Promise.all([pq('keys', `${server.url}/list`), pq('keys', `${server.url}/truncated`), pq('keys', `${server.url}/missing`)]);
      assert.equal(good.code, 0, good.stderr);
      assert.deepEqual(good.stdout.split('\n'), [
        'key 7: KEM 0x9999 (not implemented by this client; skipped)',
        `key 3: KEM 0x0020 DHKEM(X25519, HKDF-SHA256) (NOT post-quantum), public key 32 bytes, sha256 ${createHash('sha256').update(x25519.publicKey).digest('hex')}`,
        '  KDF 0x0001 HKDF-SHA256, AEAD 0x0001 AES-128-GCM',
        `2 key configurations at ${server.url}/list; none that pq fetch can use (X-Wing with a KDF/AEAD pair it implements)`,
        '',
      ]);
      assert.equal(truncated.code, 1);
      assert.equal(truncated.stdout, '', 'nothing of a badly framed list is printed');
      assert.match(stderrLines(truncated).join('\n'), /^cage: PQ_BAD_ENVELOPE: /);
      assert.equal(missing.code, 1);
      assert.match(stderrLines(missing).join('\n'), /^cage: PQ_UNSUPPORTED_SUITE: .* answered 404 text\/plain/);
    });
  });

  describe('examples/pq-client.ts', function () {
    it('calls a require_pq route through the cage and sees plaintext refused; its cage config is valid', async function () {
      const before = echo.count;
      const run = await new Promise<Run>((resolve) => {
        execFile(process.execPath, ['--import', 'tsx', 'examples/pq-client.ts', `${base}/secret/orders`], { cwd: REPO_ROOT, env: { ...process.env, NODE_OPTIONS: '' }, timeout: 60_000 }, (err, stdout, stderr) =>
          resolve({ code: err === null ? 0 : Number((err as { code?: unknown }).code), stdout, stderr }),
        );
      });
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, new RegExp(`^sealed POST ${base}/secret/orders -> 200 `, 'm'));
      assert.match(run.stdout, /"url":"\/secret\/orders\?source=example"/);
      assert.match(run.stdout, /^plaintext POST -> 403 PQ_REQUIRED/m);
      assert.equal(echo.count, before + 1, 'only the sealed request reached the app');
      const config = loadConfigFile(join(REPO_ROOT, 'examples', 'pq-cage.yaml'));
      assert.deepEqual(config.routes.map((r) => [r.name, r.requirePq]), [['orders', true]]);
      assert.equal(config.pq.enabled, true);
    });
  });
});
