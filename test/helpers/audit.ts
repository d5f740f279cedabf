/**
 * Audit-log fixtures shared by the e2e, CLI and fault suites: the `Cage-Receipt` header parsed,
 * the admin API's audit endpoints (by admin port, so they work for an in-process cage and a
 * spawned one alike), polling until a checkpoint covers an index, and an app key pair for
 * `Cage-Origin-Signature`. Everything read from the cage is checked, never assumed.
 */
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { originSignatureMessage } from '../../audit/record.js';
import { ADMIN_TOKEN, waitFor } from './e2e.js';
import { request, type Reply } from './servers.js';

/** GET /api/v1/audit. */
export interface AuditInfo {
  origin: string;
  verifier_key: string;
  size: number;
  durable_size: number;
  checkpoint: { size: number; note: string } | null;
}

/** A record as GET /api/v1/audit/record/<i> shows it (digests and signatures in hex). */
export interface RecordJson {
  requestId: string;
  time: number;
  route: string;
  method: string;
  host: string;
  path: string;
  clientAddress: string;
  requestHeadersDigest: string;
  requestBodyDigest: string;
  requestBodyLength: number;
  status: number;
  responseHeadersDigest: string;
  responseBodyDigest: string;
  responseBodyLength: number;
  durationMicros: number;
  cageError?: string;
  originSignature?: { signature: string; keyId: string; verified: boolean };
  incomplete?: boolean;
}

export interface RecordView {
  index: number;
  record: RecordJson;
  /** The record's bytes, base64. */
  bytes: string;
}

export function sha256hex(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

export const EMPTY_SHA256_HEX = sha256hex('');

const RECEIPT_RE = /^origin="((?:[^"\\]|\\.)*)", index=(0|[1-9][0-9]*)$/;

/** The receipt of a response (origin and index); fails the test when it is missing or malformed. */
export function receiptOf(reply: Pick<Reply, 'headers'>, what = 'the response'): { origin: string; index: number } {
  const value = reply.headers['cage-receipt'];
  assert.equal(typeof value, 'string', `${what} carries no Cage-Receipt`);
  const m = RECEIPT_RE.exec(value as string);
  assert.ok(m !== null, `${what}: malformed Cage-Receipt ${JSON.stringify(value)}`);
  return { origin: m[1]!.replace(/\\(.)/g, '$1'), index: Number(m[2]) };
}

/** GET an admin path with the token; asserts 200 and returns the reply. */
export async function adminGet(adminPort: number, path: string, token: string | null = ADMIN_TOKEN): Promise<Reply> {
  const r = await request(adminPort, { path, headers: token === null ? {} : { authorization: `Bearer ${token}` } });
  assert.equal(r.status, 200, `GET ${path}: ${r.status} ${r.body.toString().slice(0, 300)}`);
  return r;
}

export async function adminJson<T>(adminPort: number, path: string): Promise<T> {
  return JSON.parse((await adminGet(adminPort, path)).body.toString('utf8')) as T;
}

export function auditInfo(adminPort: number): Promise<AuditInfo> {
  return adminJson<AuditInfo>(adminPort, '/api/v1/audit');
}

export function recordAt(adminPort: number, index: number): Promise<RecordView> {
  return adminJson<RecordView>(adminPort, `/api/v1/audit/record/${index}`);
}

/** Polls until the latest checkpoint covers `size` records (index size-1); returns it. */
export function waitCheckpoint(adminPort: number, size: number, timeoutMs = 15_000): Promise<{ size: number; note: string }> {
  return waitFor(async () => {
    const cp = (await auditInfo(adminPort)).checkpoint;
    return cp !== null && cp.size >= size ? cp : undefined;
  }, `a checkpoint covering ${size} records`, timeoutMs);
}

/** GET /api/v1/audit/consistency as hash buffers. */
export async function consistencyHashes(adminPort: number, oldSize: number, newSize: number): Promise<Buffer[]> {
  const body = await adminJson<{ old: number; new: number; proof: string[] }>(adminPort, `/api/v1/audit/consistency?old=${oldSize}&new=${newSize}`);
  assert.equal(body.old, oldSize);
  assert.equal(body.new, newSize);
  return body.proof.map((h) => Buffer.from(h, 'base64'));
}

/** An app's Ed25519 key pair: the public key as `audit.origin_keys` takes it (raw 32 bytes, base64). */
export interface AppKey {
  privateKey: KeyObject;
  publicRaw: string;
}

export function makeAppKey(): AppKey {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const der = publicKey.export({ format: 'der', type: 'spki' });
  return { privateKey, publicRaw: der.subarray(der.length - 32).toString('base64') };
}

/** The `Cage-Origin-Signature` value an app sends for (request id, status, body). */
export function originSignatureHeader(key: AppKey, keyId: string, requestId: string, status: number, body: Buffer): string {
  const digest = createHash('sha256').update(body).digest();
  const sig = sign(null, originSignatureMessage(requestId, status, digest), key.privateKey);
  return `keyid="${keyId}", sig=:${sig.toString('base64')}:`;
}
