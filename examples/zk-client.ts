// Anonymous access through a cage (issue 7), from the member's side, in both modes:
//   1. make an identity and join a group (the group admin adds the commitment, admin API);
//   2. fetch the group export and call a `require_zk` route with a per-request proof;
//   3. open a session (one proof for the epoch) and call the route with Ed25519 signatures.
// The app behind the cage sees `Cage-Identity: zk:<nullifier>` and nothing else about the member.
//
//   node --import tsx examples/zk-client.ts
//       starts a cage in this process (zk on, a require_zk route `staff-api` in front of the
//       built-in echo app, data in a temp folder) and runs against it; needs circuits/build
//       (`npm run build:circuits`).
//   node --import tsx examples/zk-client.ts --cage http://127.0.0.1:8080/api --admin http://127.0.0.1:2019 \
//       --token "$(cat .cage/admin.token)" [--group staff] [--scope staff-api] [--epoch-seconds 3600]
//       runs against a running cage whose route at --cage has `require_zk: { group: staff, scope: staff-api }`.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createIdentity, loadGroup, openSession, proveAccess } from '../client/zk.js';
import { Cage } from '../gateway/cage.js';
import { buildConfig } from '../gateway/config/load.js';
import { startEchoApp } from '../gateway/echo.js';

const { values: args } = parseArgs({
  options: {
    cage: { type: 'string' },
    admin: { type: 'string' },
    token: { type: 'string' },
    group: { type: 'string', default: 'staff' },
    scope: { type: 'string', default: 'staff-api' },
    'epoch-seconds': { type: 'string', default: '3600' },
  },
});

/** A cage in this process, when no --cage is given. */
async function localCage(): Promise<{ url: string; admin: string; token: string; close: () => Promise<void> }> {
  const app = await startEchoApp();
  const dir = mkdtempSync(join(tmpdir(), 'cage-zk-example-'));
  const token = 'example-admin-token-0123456789';
  const cage = await Cage.start({
    config: buildConfig({
      listen: '127.0.0.1:0',
      admin: { listen: '127.0.0.1:0', token },
      data_dir: dir,
      log: { level: 'warn', access: false },
      zk: { enabled: true, epoch: `${args['epoch-seconds']}s` },
      routes: [{ name: 'staff-api', upstreams: [app.url], require_zk: { group: args.group, scope: args.scope, limit: 5 } }],
    }),
  });
  return {
    url: `http://127.0.0.1:${cage.port}/api`,
    admin: `http://127.0.0.1:${cage.adminPort}`,
    token,
    close: async () => {
      await cage.shutdown(1000);
      await app.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function adminCall(base: string, token: string, method: string, path: string, body?: unknown): Promise<Response> {
  return fetch(`${base}/api/v1${path}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
}

async function main(): Promise<void> {
  const local = args.cage === undefined ? await localCage() : undefined;
  const target = local?.url ?? args.cage!;
  const adminUrl = local?.admin ?? args.admin;
  const token = local?.token ?? args.token;
  if (adminUrl === undefined || token === undefined) throw new Error('--cage needs --admin and --token');
  const epochSeconds = Number(args['epoch-seconds']);
  try {
    // 1. The member makes an identity and gives the group admin its commitment only.
    const identity = await createIdentity();
    console.log(`identity commitment: ${identity.commitment}`);
    let r = await adminCall(adminUrl, token, 'POST', `/zk/groups/${args.group}/members`, { commitments: [identity.commitment.toString()] });
    if (r.status === 404) r = await adminCall(adminUrl, token, 'POST', '/zk/groups', { id: args.group, members: [identity.commitment.toString()] });
    if (!r.ok) throw new Error(`joining the group failed: ${r.status} ${await r.text()}`);
    console.log(`joined group ${args.group}: ${await r.text()}`);

    // 2. Per-request proof: bound to this method, target and body, for this epoch.
    const group = await loadGroup(`${adminUrl}/api/v1/zk/groups/${args.group}`, { fetch: (u, init) => fetch(u, { ...init, headers: { ...init?.headers, authorization: `Bearer ${token}` } }) });
    const body = JSON.stringify({ hello: 'anonymously' });
    let t0 = performance.now();
    const proof = await proveAccess({ identity, group, scope: args.scope, epochSeconds, request: { method: 'POST', url: target, body } });
    console.log(`per-request proof made in ${(performance.now() - t0).toFixed(0)} ms`);
    r = await fetch(target, { method: 'POST', body, headers: { 'content-type': 'application/json', [proof.headerName]: proof.header } });
    console.log(`per-request mode: ${r.status} ${await r.text()}`);

    // 3. Session: one proof binds a fresh Ed25519 key for the epoch; then plain signatures.
    t0 = performance.now();
    const session = await openSession({ identity, group, scope: args.scope, epochSeconds });
    console.log(`session proof made in ${(performance.now() - t0).toFixed(0)} ms; key ${session.keyid}`);
    r = await fetch(target, { headers: { [session.headerName]: session.header } });
    console.log(`session opened: ${r.status}`);
    await r.arrayBuffer();
    for (let i = 0; i < 3; i++) {
      r = await fetch(`${target}/${i}`, { headers: session.sign({ method: 'GET', url: `${target}/${i}` }) });
      const seen = (await r.json()) as { headers?: Record<string, string> };
      console.log(`session request ${i}: ${r.status}, the app saw cage-identity ${seen.headers?.['cage-identity'] ?? '(see body)'}`);
    }
  } finally {
    await local?.close();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
