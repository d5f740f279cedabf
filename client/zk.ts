/**
 * Anonymous access to a cage (issue 7), the caller's side: a member of a group proves it is one
 * without saying which, with a Groth16 proof in the `Cage-ZK-Proof` header (circuits/header.ts).
 *
 *   const identity = await createIdentity();            // keep identity.secret private; give the
 *                                                        // group admin identity.commitment
 *   const group = await loadGroup('https://cage.example/api/v1/zk/groups/staff');   // or a file
 *   // Mode 1, per request: one proof (~1 s) bound to method, target, body digest and time.
 *   const { header } = await proveAccess({ identity, group, scope: 'api', request: { method: 'GET', url } });
 *   fetch(url, { headers: { 'cage-zk-proof': header } });
 *   // Mode 2, session: one proof per epoch for a fresh Ed25519 key, then plain RFC 9421 signatures.
 *   const session = await openSession({ identity, group, scope: 'api' });
 *   fetch(url, { headers: { ...session.sign({ method: 'GET', url }) } });   // the cage must first accept session.header
 *
 * Session signatures use client/sign.ts (RFC 9421, Ed25519): keyid = the session key's did:key;
 * covered: @method, @target-uri, content-digest when there is a body; created, a random nonce,
 * and expires = the end of the epoch.
 *
 * Proving runs snarkjs on its shared multi-threaded curve. With no `prover` option, a default
 * Prover is used and its curve is terminated when no proof is running (so scripts exit); pass your
 * own Prover (and close it) to keep the curve warm across many proofs.
 */
import { generateKeyPairSync } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { contentDigestOf, DEFAULT_EPOCH_SECONDS, epochAt } from '../circuits/field.js';
import { Group, type GroupExport } from '../circuits/group.js';
import { ZK_PROOF_HEADER } from '../circuits/header.js';
import { createIdentity, exportIdentity, importIdentity, nullifierFor, Prover, type Identity } from '../circuits/prover.js';
import { CageError } from '../core/errors.js';
import { didKeyFromPublicKey } from '../core/did-key.js';
import { signRequest, type RequestToSign } from './sign.js';

export { createIdentity, exportIdentity, importIdentity, ZK_PROOF_HEADER, type Identity };

/** Largest group export fetched or read (a 2^20-member group is about 80 MB of decimal text). */
export const MAX_GROUP_BYTES = 128 * 1024 * 1024;

function badGroup(message: string, cause?: unknown): CageError {
  return new CageError({ code: 'ZK_BAD_GROUP', message, cause });
}

/** A group from its export: an object, an http(s) URL (the cage's admin/public group endpoint) or a file. */
export async function loadGroup(source: string | GroupExport, opts: { fetch?: typeof fetch; timeoutMs?: number } = {}): Promise<Group> {
  if (typeof source !== 'string') return Group.fromJSON(source);
  let text: string;
  if (/^https?:\/\//i.test(source)) {
    let res: Response;
    try {
      res = await (opts.fetch ?? fetch)(source, { signal: AbortSignal.timeout(opts.timeoutMs ?? 30_000), headers: { accept: 'application/json' } });
    } catch (err) {
      throw badGroup(`cannot fetch the group from ${source}: ${(err as Error).message}`, err);
    }
    if (!res.ok) throw badGroup(`the group URL answered ${res.status}`);
    if (Number(res.headers.get('content-length') ?? 0) > MAX_GROUP_BYTES) throw badGroup('the group export is too large');
    text = await res.text();
  } else {
    try {
      text = await readFile(source, 'utf8');
    } catch (err) {
      throw badGroup(`cannot read the group file ${source}: ${(err as Error).message}`, err);
    }
  }
  if (text.length > MAX_GROUP_BYTES) throw badGroup('the group export is too large');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw badGroup('the group export is not JSON', err);
  }
  return Group.fromJSON(json);
}

// ---- the default prover: loaded once, its curve freed when idle ------------------------------

let defaultProver: Promise<Prover> | undefined;
let running = 0;

async function withProver<T>(given: Prover | undefined, f: (p: Prover) => Promise<T>): Promise<T> {
  if (given) return f(given);
  defaultProver ??= Prover.create().catch((err: unknown) => {
    defaultProver = undefined;
    throw err;
  });
  running++;
  try {
    return await f(await defaultProver);
  } finally {
    if (--running === 0) await (await defaultProver).close();
  }
}

interface Common {
  identity: Identity;
  group: Group;
  /** The route's scope, as the cage's config names it. */
  scope: string;
  /** Default: the current epoch for `epochSeconds`. */
  epoch?: number;
  /** Epoch length the cage uses. Default DEFAULT_EPOCH_SECONDS (3600). */
  epochSeconds?: number;
  /** Clock, Unix ms. */
  now?: () => number;
  prover?: Prover;
}

export interface ZkRequest {
  method: string;
  url: string | URL;
  body?: Uint8Array | string;
}

export interface ProveAccessOptions extends Common {
  request: ZkRequest;
}

export interface AccessProof {
  /** The value of the `Cage-ZK-Proof` header. */
  header: string;
  headerName: typeof ZK_PROOF_HEADER;
  nullifier: bigint;
  epoch: number;
}

function originForm(url: string | URL): string {
  const u = typeof url === 'string' ? new URL(url) : url;
  return u.pathname + u.search;
}

/** A per-request proof: valid for this method, target and body only, within the cage's time window. */
export async function proveAccess(o: ProveAccessOptions): Promise<AccessProof> {
  const nowMs = (o.now ?? Date.now)();
  const epoch = o.epoch ?? epochAt(nowMs, o.epochSeconds ?? DEFAULT_EPOCH_SECONDS);
  const bound = { method: o.request.method.toUpperCase(), target: originForm(o.request.url), contentDigest: contentDigestOf(o.request.body), timestamp: Math.floor(nowMs / 1000) };
  const input = { identity: o.identity, group: o.group, scope: o.scope, epoch };
  const header = await withProver(o.prover, (p) => p.proveRequest(input, bound));
  return { header, headerName: ZK_PROOF_HEADER, nullifier: await nullifierFor(o.identity.secret, o.scope, epoch), epoch };
}

export interface ZkSession {
  /** The session-opening proof: the value of the `Cage-ZK-Proof` header (m=ses). */
  header: string;
  headerName: typeof ZK_PROOF_HEADER;
  scope: string;
  epoch: number;
  /** Unix seconds when the epoch (and the session) ends. */
  expiresAt: number;
  nullifier: bigint;
  /** Raw Ed25519 session public key, and its did:key (the signatures' keyid). */
  publicKey: Uint8Array;
  keyid: string;
  /** One request's headers, signed with the session key (client/sign.ts): its own headers plus content-digest (with a body), signature-input, signature. */
  sign(request: RequestToSign): Record<string, string>;
}

export type OpenSessionOptions = Common;

/** Opens an anonymous session: a fresh Ed25519 key, and one proof binding it for one epoch. */
export async function openSession(o: OpenSessionOptions): Promise<ZkSession> {
  const now = o.now ?? Date.now;
  const epochSeconds = o.epochSeconds ?? DEFAULT_EPOCH_SECONDS;
  const epoch = o.epoch ?? epochAt(now(), epochSeconds);
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const raw = new Uint8Array(publicKey.export({ format: 'der', type: 'spki' }).subarray(-32));
  const input = { identity: o.identity, group: o.group, scope: o.scope, epoch };
  const header = await withProver(o.prover, (p) => p.proveSession(input, raw));
  const keyid = didKeyFromPublicKey(raw);
  const expiresAt = (epoch + 1) * epochSeconds;
  return {
    header, headerName: ZK_PROOF_HEADER, scope: o.scope, epoch, expiresAt, publicKey: raw, keyid,
    nullifier: await nullifierFor(o.identity.secret, o.scope, epoch),
    sign: (request) => {
      const created = Math.floor(now() / 1000);
      return signRequest(request, privateKey, { created, ttl: Math.max(1, expiresAt - created) }).headers;
    },
  };
}
