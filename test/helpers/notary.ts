/**
 * DID notaries as real processes for the e2e suites: `cage notary init` makes a key, `cage notary
 * serve` runs it (both through cli.ts, i.e. `node --import tsx cli/main.ts`). A notary keeps its
 * port across restarts (the first start picks one, later starts ask for it again), so a cage's
 * registry keeps pointing at it; it can be stopped cleanly (SIGTERM) or killed (SIGKILL) and
 * started again on the same data directory. Also: the admin API's notary and audit views.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ADMIN_TOKEN, StopWaiting, waitFor } from './e2e.js';

export { metricSample } from './e2e.js';
import { runCli, spawnCli, type CliProcess } from './cli.js';
import { request, type Fixtures, type Reply } from './servers.js';

export interface NotaryKey {
  file: string;
  did: string;
  /** The notary's cosignature verifier key, as `init` prints it. */
  vkey: string;
}

/** `cage notary init --out DIR/NAME.key`: the key file, its DID and verifier key. */
export async function initNotaryKey(dir: string, name: string): Promise<NotaryKey> {
  const file = join(dir, `${name}.key`);
  const r = await runCli(['notary', 'init', '--out', file]);
  assert.equal(r.code, 0, `notary init: ${r.stderr}`);
  const did = /^did {3}(did:key:z6Mk\S+)$/m.exec(r.stdout)?.[1];
  const vkey = /^vkey {2}(\S+)$/m.exec(r.stdout)?.[1];
  assert.ok(did !== undefined && vkey !== undefined, `notary init printed ${r.stdout}`);
  return { file, did, vkey };
}

const LISTENING_RE = /cage notary: listening on http:\/\/127\.0\.0\.1:(\d+) as (\S+)/;

/** One notary: its key, data directory and the log keys it witnesses; start/stop/kill as often as needed. */
export class NotaryProcess {
  port = 0;
  proc: CliProcess | undefined;
  /** stderr of every run so far (cosignature and refusal events are JSON lines there). */
  history = '';

  constructor(
    readonly key: NotaryKey,
    readonly dataDir: string,
    readonly logKeys: readonly string[],
    private readonly fx?: Fixtures,
  ) {}

  get did(): string {
    return this.key.did;
  }

  get url(): string {
    assert.ok(this.port !== 0, 'the notary has not started yet');
    return `http://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.proc !== undefined && this.proc.exit === undefined;
  }

  /** Starts `cage notary serve` (on the port of its first start) and waits for its listening line. */
  async start(): Promise<void> {
    assert.ok(!this.running, 'the notary is already running');
    const args = ['notary', 'serve', '--key', this.key.file, '--data-dir', this.dataDir, '--listen', `127.0.0.1:${this.port}`];
    for (const k of this.logKeys) args.push('--log', k);
    const proc = spawnCli(args);
    this.proc = proc;
    this.fx?.add(async () => {
      if (proc.exit === undefined) {
        proc.child.kill('SIGKILL');
        await proc.exited;
      }
    });
    const m = await waitFor(
      () => {
        if (proc.exit !== undefined) throw new StopWaiting(`notary exited (${proc.exit.code}) before listening: ${proc.stderr}`);
        return LISTENING_RE.exec(proc.stderr) ?? undefined;
      },
      'the notary listening line',
      30_000,
    );
    assert.equal(m[2], this.did, 'the notary serves under the DID init printed');
    this.port = Number(m[1]);
  }

  /** SIGTERM (clean stop, exit 0) or SIGKILL (a crash); resolves once the process is gone. */
  async stop(signal: 'SIGTERM' | 'SIGKILL'): Promise<void> {
    const proc = this.proc;
    assert.ok(proc !== undefined && proc.exit === undefined, 'the notary is not running');
    proc.child.kill(signal);
    const exit = await proc.exited;
    this.history += proc.stderr;
    if (signal === 'SIGTERM') assert.equal(exit.code, 0, `notary SIGTERM exit: ${proc.stderr}`);
  }

  /** Everything it wrote to stderr, this run included. */
  stderr(): string {
    return this.history + (this.running ? this.proc!.stderr : '');
  }
}

/** Admin API call with a JSON body (or none); token ADMIN_TOKEN unless `token` says otherwise (null: none). */
export function adminCall(adminPort: number, method: string, path: string, body?: unknown, token: string | null = ADMIN_TOKEN): Promise<Reply> {
  const headers: Record<string, string> = {};
  if (token !== null) headers.authorization = `Bearer ${token}`;
  const text = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
  if (text !== undefined) headers['content-type'] = 'application/json';
  return request(adminPort, { method, path, headers, body: text });
}

/** GET /api/v1/audit with its witnessing part. */
export interface WitnessedAuditInfo {
  origin: string;
  verifier_key: string;
  size: number;
  durable_size: number;
  checkpoint: { size: number; note: string } | null;
  signed_size: number;
  witnessing: {
    quorum: number;
    notaries: number;
    quorum_met: boolean | null;
    lag_records: number;
    lag_seconds: number;
    per_notary: { did: string; name: string; cosigned_size: number; last_latency_ms: number; failures: number; last_error: string | null }[];
  } | null;
}

export async function witnessedAuditInfo(adminPort: number): Promise<WitnessedAuditInfo> {
  const r = await adminCall(adminPort, 'GET', '/api/v1/audit');
  assert.equal(r.status, 200, `GET /api/v1/audit: ${r.status} ${r.body.toString().slice(0, 300)}`);
  return JSON.parse(r.body.toString('utf8')) as WitnessedAuditInfo;
}

/** Registers a notary (POST /api/v1/notaries); asserts 201. */
export async function registerNotaryAt(adminPort: number, input: { did: string; url: string; name?: string; quorum?: number }): Promise<void> {
  const r = await adminCall(adminPort, 'POST', '/api/v1/notaries', input);
  assert.equal(r.status, 201, `POST /api/v1/notaries: ${r.status} ${r.body.toString().slice(0, 300)}`);
}

/** Sets the quorum (PUT /api/v1/notaries/quorum); asserts 200. */
export async function setQuorumAt(adminPort: number, quorum: number): Promise<void> {
  const r = await adminCall(adminPort, 'PUT', '/api/v1/notaries/quorum', { quorum });
  assert.equal(r.status, 200, `PUT /api/v1/notaries/quorum: ${r.status} ${r.body.toString().slice(0, 300)}`);
}

/** GET /api/v1/notaries/policy (C2SP tlog-policy text); asserts 200. */
export async function policyText(adminPort: number): Promise<string> {
  const r = await adminCall(adminPort, 'GET', '/api/v1/notaries/policy');
  assert.equal(r.status, 200, `GET /api/v1/notaries/policy: ${r.status} ${r.body.toString().slice(0, 300)}`);
  return r.body.toString('utf8');
}

