/**
 * Signing requests for the cage (RFC 9421 HTTP Message Signatures, Ed25519, the key named by its
 * did:key): what a caller's app imports to be identified by a DID. Covers `@method`,
 * `@target-uri` and, with a body, `content-digest` (RFC 9530, added here), with `created`, an
 * optional `expires` and a random `nonce` so the cage can refuse replays.
 *
 *   const { headers } = signRequest({ method: 'POST', url, headers: { 'content-type': 'application/json' }, body }, key);
 *   await fetch(url, { method: 'POST', headers, body });
 */
import { createPublicKey, hash, randomBytes, type KeyObject } from 'node:crypto';
import { contentDigest, signRequestEd25519 } from '../core/httpsig.js';
import { didKeyFromPublicKey } from '../core/did-key.js';

export interface RequestToSign {
  method: string;
  url: string | URL;
  headers?: Record<string, string>;
  body?: Uint8Array | string;
}

export interface SignRequestOptions {
  /** Seconds since the epoch; defaults to now. */
  created?: number;
  /** Seconds the signature stays valid (adds `expires`). */
  ttl?: number;
  /** Defaults to 16 random bytes, base64url; `false` for none. */
  nonce?: string | false;
  /** Extra header fields to cover (lower-case names present in `headers`). */
  cover?: string[];
  label?: string;
}

/** The did:key of an Ed25519 private or public key. */
export function didKeyOf(key: KeyObject): string {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  const raw = Buffer.from(pub.export({ format: 'jwk' }).x!, 'base64url');
  return didKeyFromPublicKey(raw);
}

/** Returns the request's headers plus Content-Digest (with a body), Signature-Input and Signature. */
export function signRequest(req: RequestToSign, privateKey: KeyObject, opts: SignRequestOptions = {}): { headers: Record<string, string>; did: string } {
  const url = new URL(req.url);
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers ?? {})) headers[k.toLowerCase()] = v;
  const components = ['@method', '@target-uri'];
  if (req.body !== undefined) {
    const body = typeof req.body === 'string' ? Buffer.from(req.body) : req.body;
    headers['content-digest'] = contentDigest(body, (alg, data) => hash(alg, data, 'buffer'));
    components.push('content-digest');
  }
  for (const c of opts.cover ?? []) if (!components.includes(c)) components.push(c);
  const did = didKeyOf(privateKey);
  const created = opts.created ?? Math.floor(Date.now() / 1000);
  const flat: string[] = [];
  for (const [k, v] of Object.entries(headers)) flat.push(k, v);
  const { signatureInput, signature } = signRequestEd25519(
    { method: req.method.toUpperCase(), scheme: url.protocol.slice(0, -1), authority: url.host, target: `${url.pathname}${url.search}`, headers: flat },
    privateKey,
    {
      label: opts.label,
      components,
      created,
      expires: opts.ttl === undefined ? undefined : created + opts.ttl,
      nonce: opts.nonce === false ? undefined : (opts.nonce ?? randomBytes(16).toString('base64url')),
      keyid: did,
      alg: true,
    },
  );
  headers['signature-input'] = signatureInput;
  headers['signature'] = signature;
  return { headers, did };
}
