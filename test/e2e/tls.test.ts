/**
 * TLS at the edge: a cage with `tls: { cert, key }` (a self-signed P-256 cert made at test time)
 * serves HTTPS over TLS 1.3, tells the upstream the scheme was https, and refuses to start with
 * an unusable cert or key (GW_TLS_INVALID) instead of failing opaquely inside uWS.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { isCageError } from '../../core/errors.js';
import { rawErrorCode, rawRequest } from '../helpers/raw.js';
import { Fixtures, readAll, startCage, startEchoUpstream, type EchoReport, type HttpUpstream } from '../helpers/servers.js';
import { makeSelfSignedCert, type TestCert } from '../helpers/tls.js';

describe('e2e: TLS', function () {
  const fx = new Fixtures();
  let cert: TestCert;
  let port: number;
  let echo: HttpUpstream;

  before(async function () {
    cert = makeSelfSignedCert();
    fx.add(async () => cert.remove());
    echo = await startEchoUpstream(fx);
    ({ port } = await startCage([{ upstreams: [echo.url] }], { tls: { cert: cert.certFile, key: cert.keyFile } }, fx));
  });
  after(() => fx.closeAll());

  it('answers HTTPS for a client that trusts the cert, with X-Forwarded-Proto https upstream', async function () {
    const { status, body } = await new Promise<{ status: number; body: Buffer }>((resolve, reject) => {
      const req = httpsRequest({ host: '127.0.0.1', port, servername: 'localhost', path: '/secure?x=1', ca: cert.cert, agent: false, headers: { host: 'shop.example' } }, (res) => {
        readAll(res).then((b) => resolve({ status: res.statusCode!, body: b }), reject);
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(status, 200);
    const rep = JSON.parse(body.toString()) as EchoReport;
    assert.equal(rep.url, '/secure?x=1');
    assert.equal(rep.headers['x-forwarded-proto'], 'https');
    assert.equal(rep.headers.forwarded, 'for=127.0.0.1;host=shop.example;proto=https');
  });

  it('negotiates TLS 1.3 and presents the configured certificate', async function () {
    const info = await new Promise<{ protocol: string | null; authorized: boolean; fingerprint: string }>((resolve, reject) => {
      const s = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', ca: cert.cert }, () => {
        resolve({ protocol: s.getProtocol(), authorized: s.authorized, fingerprint: s.getPeerCertificate().fingerprint256 });
        s.destroy();
      });
      s.on('error', reject);
    });
    assert.equal(info.protocol, 'TLSv1.3');
    assert.equal(info.authorized, true);
    assert.equal(info.fingerprint, new X509Certificate(cert.cert).fingerprint256);
  });

  it('refuses a client that does not trust the cert (the handshake fails)', async function () {
    await assert.rejects(
      new Promise<void>((resolve, reject) => {
        const s = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost' }, () => {
          s.destroy();
          resolve();
        });
        s.on('error', reject);
      }),
      (err: NodeJS.ErrnoException) => err.code === 'DEPTH_ZERO_SELF_SIGNED_CERT',
    );
  });

  it('answers cage errors over TLS as JSON (400 GW_BAD_REQUEST for an empty Host)', async function () {
    const res = await rawRequest(port, 'GET / HTTP/1.1\r\nHost:\r\n\r\n', { tls: { servername: 'localhost', ca: cert.cert } });
    assert.equal(res.responses[0]?.status, 400);
    assert.equal(rawErrorCode(res.responses[0]!), 'GW_BAD_REQUEST');
  });

  it('plain HTTP on the TLS port gets no HTTP answer', async function () {
    const res = await rawRequest(port, 'GET / HTTP/1.1\r\nHost: a\r\n\r\n', { untilClose: true });
    assert.equal(res.responses.length, 0);
    assert.equal(res.closed, true);
  });
});

describe('e2e: TLS configuration errors', function () {
  const fx = new Fixtures();
  let cert: TestCert;

  before(function () {
    cert = makeSelfSignedCert();
    fx.add(async () => cert.remove());
  });
  after(() => fx.closeAll());

  const cases: Array<[string, () => { cert: string; key: string }]> = [
    ['a cert file that is not a certificate', () => {
      const bad = join(cert.dir, 'garbage.pem');
      writeFileSync(bad, '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n');
      return { cert: bad, key: cert.keyFile };
    }],
    ['a missing cert file', () => ({ cert: join(cert.dir, 'missing.pem'), key: cert.keyFile })],
    ['a key that does not match the cert', () => {
      const other = makeSelfSignedCert();
      fx.add(async () => other.remove());
      return { cert: cert.certFile, key: other.keyFile };
    }],
    ['the key given as the cert', () => ({ cert: cert.keyFile, key: cert.keyFile })],
  ];
  for (const [name, files] of cases) {
    it(`Cage.start rejects ${name} with GW_TLS_INVALID`, async function () {
      await assert.rejects(startCage([{ upstreams: ['http://127.0.0.1:9'] }], { tls: files() }), (err: unknown) => isCageError(err, 'GW_TLS_INVALID'));
    });
  }
});
