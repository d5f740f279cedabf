/**
 * DIDs for notaries: did:key for Ed25519 (https://w3c-ccg.github.io/did-key-spec/, multibase
 * base58-btc `z` ‖ multicodec varint 0xed ‖ 32-byte key) and did:web
 * (https://w3c-ccg.github.io/did-method-web/, the document at https://<domain>[/path]/did.json,
 * /.well-known/did.json without a path, `%3A` for a port), resolved through `did-resolver`'s
 * `Resolver` with our own two method drivers. did:web fetching is injected (`fetch`), so tests run
 * offline.
 *
 * A notary's C2SP key name (signed-note, tlog-cosignature) is its DID itself: DID syntax has no
 * '+', spaces or newlines, so a DID is a valid key name, and the registry can derive the whole
 * verifier key `<DID>+<key ID>+<base64(0x04 ‖ key)>` from the DID alone. tlog-cosignature says
 * the name SHOULD be a schema-less URL; a DID is a URI with the scheme `did` (documented deviation).
 *
 * Trust: DIDs come from operators through the admin API, and did:web documents from the network:
 * both are parsed strictly (length limits, exact multicodec, exact key length, document `id` must
 * be the DID). A did:key is self-certifying; a did:web is as trustworthy as its host's TLS and DNS.
 * Ed25519 points are not checked to be on the curve (Node imports any 32 bytes); a bad point
 * simply never verifies a signature.
 */
import { Resolver, type DIDDocument, type DIDResolutionResult, type DIDResolver, type VerificationMethod } from 'did-resolver';
import { CageError, isCageError, type CageErrorCode } from '../core/errors.js';
import { ED25519_PUBLIC_KEY_SIZE, decodeBase58btc, encodeEd25519Multibase, decodeEd25519Multibase, didKeyFromPublicKey, publicKeyFromDidKey, parseDid } from '../core/did-key.js';
export { MULTICODEC_ED25519_PUB, MULTIBASE_BASE58BTC, ED25519_PUBLIC_KEY_SIZE, MAX_DID_LENGTH, encodeBase58btc, decodeBase58btc, encodeEd25519Multibase, decodeEd25519Multibase, didKeyFromPublicKey, publicKeyFromDidKey } from '../core/did-key.js';
import { createVerifier, decodeUtf8, isValidKeyName, SIG_TYPE_COSIGNATURE_V1, type NoteVerifier } from '../audit/note.js';

function fail(code: CageErrorCode, message: string): CageError {
  return new CageError({ code, message });
}

/** Largest did:web document read. */
export const MAX_DID_DOCUMENT_BYTES = 64 * 1024;
export const DID_CONTEXT = 'https://www.w3.org/ns/did/v1';
export const ED25519_2020_CONTEXT = 'https://w3id.org/security/suites/ed25519-2020/v1';

/** The canonical form of a did:key (without an explicit version). */
export function canonicalDid(did: string): string {
  const { method } = parseDid(did);
  if (method === 'key') return didKeyFromPublicKey(publicKeyFromDidKey(did));
  if (method === 'web') {
    didWebUrl(did);
    return did;
  }
  throw fail('NOTARY_BAD_DID', `DID method ${JSON.stringify(method)} is not supported (did:key and did:web are)`);
}

/**
 * A DID document for a notary key (did:key §Create, with publicKeyFormat Ed25519VerificationKey2020):
 * one verification method, usable for authentication and assertions (a cosignature is an assertion).
 */
export function buildDidDocument(did: string, publicKey: Uint8Array): DIDDocument {
  const multibase = encodeEd25519Multibase(publicKey);
  const vmId = `${did}#${multibase}`;
  return {
    '@context': [DID_CONTEXT, ED25519_2020_CONTEXT],
    id: did,
    verificationMethod: [{ id: vmId, type: 'Ed25519VerificationKey2020', controller: did, publicKeyMultibase: multibase }],
    authentication: [vmId],
    assertionMethod: [vmId],
    capabilityInvocation: [vmId],
    capabilityDelegation: [vmId],
  };
}

// ---------------------------------------------------------------------------------------------
// did:web.

const LABEL_RE = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i;
const PORT_RE = /^[1-9][0-9]{0,4}$/;
const SEGMENT_RE = /^(?:[A-Za-z0-9._~-]|%[0-9A-Fa-f]{2})+$/;
const IPV4_RE = /^[0-9.]+$/;

/**
 * did:web §Read steps 1–5: `did:web:example.com%3A8443:user:alice` →
 * `https://example.com:8443/user/alice/did.json`; no path → `/.well-known/did.json`.
 * The domain must be a host name (no IP address, per the spec). Throws NOTARY_BAD_DID.
 */
export function didWebUrl(did: string): string {
  const { method, id } = parseDid(did);
  if (method !== 'web') throw fail('NOTARY_BAD_DID', `${JSON.stringify(did)} is not a did:web`);
  const [hostPart, ...path] = id.split(':') as [string, ...string[]];
  const portAt = hostPart.toLowerCase().indexOf('%3a');
  const host = portAt < 0 ? hostPart : hostPart.slice(0, portAt);
  const port = portAt < 0 ? undefined : hostPart.slice(portAt + 3);
  const labels = host.split('.');
  if (host.length > 253 || labels.some((l) => !LABEL_RE.test(l))) throw fail('NOTARY_BAD_DID', `did:web domain ${JSON.stringify(host)} is not a host name`);
  if (IPV4_RE.test(host)) throw fail('NOTARY_BAD_DID', 'a did:web must not name an IP address');
  if (port !== undefined && (!PORT_RE.test(port) || Number(port) > 65535)) throw fail('NOTARY_BAD_DID', `did:web port ${JSON.stringify(port)} is not a port number`);
  for (const seg of path) {
    if (!SEGMENT_RE.test(seg) || seg === '.' || seg === '..') throw fail('NOTARY_BAD_DID', `did:web path segment ${JSON.stringify(seg)} is not allowed`);
  }
  const authority = port === undefined ? host.toLowerCase() : `${host.toLowerCase()}:${port}`;
  return path.length === 0 ? `https://${authority}/.well-known/did.json` : `https://${authority}/${path.join('/')}/did.json`;
}

// ---------------------------------------------------------------------------------------------
// Picking the Ed25519 key out of a DID document.

function base64urlKey(x: unknown): Buffer | undefined {
  if (typeof x !== 'string' || !/^[A-Za-z0-9_-]{43}$/.test(x)) return undefined;
  const b = Buffer.from(x, 'base64url');
  return b.length === ED25519_PUBLIC_KEY_SIZE && b.toString('base64url') === x ? b : undefined;
}

/** The raw Ed25519 key of one verification method; throws NOTARY_KEY_NOT_ED25519 (or NOTARY_BAD_DID for a broken multibase). */
function ed25519KeyOf(vm: VerificationMethod): Buffer {
  switch (vm.type) {
    case 'Ed25519VerificationKey2020':
    case 'Multikey':
      return decodeEd25519Multibase(vm.publicKeyMultibase as string, `${vm.id} publicKeyMultibase`);
    case 'Ed25519VerificationKey2018': {
      const raw = decodeBase58btc(vm.publicKeyBase58 as string);
      if (raw === undefined || raw.length !== ED25519_PUBLIC_KEY_SIZE) throw fail('NOTARY_KEY_NOT_ED25519', `${vm.id} publicKeyBase58 is not a 32-byte key`);
      return raw;
    }
    case 'JsonWebKey2020':
    case 'JsonWebKey': {
      const jwk = vm.publicKeyJwk;
      if (jwk === undefined || typeof jwk !== 'object' || jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519') {
        throw fail('NOTARY_KEY_NOT_ED25519', `${vm.id} is a ${String(jwk?.kty)}/${String(jwk?.crv)} JWK, not OKP/Ed25519`);
      }
      if ('d' in jwk) throw fail('NOTARY_BAD_DID', `${vm.id} publishes a private key (d)`);
      const raw = base64urlKey(jwk.x);
      if (raw === undefined) throw fail('NOTARY_KEY_NOT_ED25519', `${vm.id} JWK x is not a base64url 32-byte key`);
      return raw;
    }
    default:
      throw fail('NOTARY_KEY_NOT_ED25519', `${vm.id} has type ${JSON.stringify(vm.type)}, not an Ed25519 verification method`);
  }
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function asMethod(x: unknown): VerificationMethod | undefined {
  return isObject(x) && typeof x.id === 'string' && typeof x.type === 'string' ? (x as unknown as VerificationMethod) : undefined;
}

export interface DocumentKey {
  /** The verification method's id (a DID URL). */
  readonly verificationMethod: string;
  readonly publicKey: Buffer;
}

/**
 * The notary key in a DID document: the first Ed25519 method listed in `assertionMethod` (a
 * cosignature is an assertion), or, when the document has no assertionMethod, the first Ed25519
 * method in `verificationMethod`. The document's `id` must be `did`, and relative method ids
 * (`#key-1`) are taken relative to it. Throws NOTARY_BAD_DID or NOTARY_KEY_NOT_ED25519.
 */
export function ed25519KeyFromDocument(doc: unknown, did: string): DocumentKey {
  if (!isObject(doc)) throw fail('NOTARY_BAD_DID', 'the DID document is not a JSON object');
  if (doc.id !== did) throw fail('NOTARY_BAD_DID', `the DID document's id ${JSON.stringify(doc.id)} is not ${did}`);
  const absolute = (id: string) => (id.startsWith('#') ? did + id : id);
  const methods = new Map<string, VerificationMethod>();
  const listed = Array.isArray(doc.verificationMethod) ? doc.verificationMethod : Array.isArray(doc.publicKey) ? doc.publicKey : [];
  for (const x of listed) {
    const vm = asMethod(x);
    if (vm !== undefined && !methods.has(absolute(vm.id))) methods.set(absolute(vm.id), vm);
  }
  let candidates: VerificationMethod[];
  if (Array.isArray(doc.assertionMethod) && doc.assertionMethod.length > 0) {
    candidates = doc.assertionMethod.map((ref) => (typeof ref === 'string' ? methods.get(absolute(ref)) : asMethod(ref))).filter((vm): vm is VerificationMethod => vm !== undefined);
  } else {
    candidates = [...methods.values()];
  }
  if (candidates.length === 0) throw fail('NOTARY_KEY_NOT_ED25519', `the DID document of ${did} lists no verification method for assertions`);
  let firstError: CageError | undefined;
  for (const vm of candidates) {
    if (typeof vm.controller === 'string' && vm.controller !== did) continue;
    try {
      return { verificationMethod: absolute(vm.id), publicKey: ed25519KeyOf(vm) };
    } catch (err) {
      if (!isCageError(err)) throw err;
      firstError ??= err;
    }
  }
  throw firstError ?? fail('NOTARY_KEY_NOT_ED25519', `no verification method of ${did} is controlled by it`);
}

// ---------------------------------------------------------------------------------------------
// Resolution through did-resolver.

/** What did:web resolution needs from `fetch` (the global fetch fits). */
export type FetchLike = (url: string, init: { signal: AbortSignal; headers: Record<string, string>; redirect: 'error' | 'follow' }) => Promise<Response>;

export interface ResolveOptions {
  /** HTTP client for did:web (default: the global fetch). */
  readonly fetch?: FetchLike;
  /** Whole-fetch timeout for did:web, in ms (default 5000). */
  readonly timeoutMs?: number;
}

const RESOLVE_OPTION_KEYS = new Set(['fetch', 'timeoutMs']);

function resolutionError(code: CageErrorCode, message: string): DIDResolutionResult {
  const error = code === 'NOTARY_DID_UNRESOLVABLE' ? 'notFound' : code === 'NOTARY_BAD_DID' ? 'invalidDid' : 'invalidPublicKeyType';
  return { didResolutionMetadata: { error, message, cageCode: code }, didDocument: null, didDocumentMetadata: {} };
}

const keyDriver: DIDResolver = async (did) => {
  try {
    return { didResolutionMetadata: { contentType: 'application/did+json' }, didDocument: buildDidDocument(did, publicKeyFromDidKey(did)), didDocumentMetadata: {} };
  } catch (err) {
    if (isCageError(err)) return resolutionError(err.code, err.message);
    throw err;
  }
};

async function readLimited(res: Response, limit: number): Promise<Buffer> {
  const declared = Number(res.headers.get('content-length') ?? 'NaN');
  if (Number.isFinite(declared) && declared > limit) throw fail('NOTARY_DID_UNRESOLVABLE', `the DID document is ${declared} bytes, more than ${limit}`);
  if (res.body === null) return Buffer.alloc(0);
  const chunks: Buffer[] = [];
  let total = 0;
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel().catch(() => undefined);
      throw fail('NOTARY_DID_UNRESOLVABLE', `the DID document is more than ${limit} bytes`);
    }
    chunks.push(Buffer.from(value));
  }
  return Buffer.concat(chunks);
}

function webDriver(fetchImpl: FetchLike, timeoutMs: number): DIDResolver {
  return async (did) => {
    let url: string;
    try {
      url = didWebUrl(did);
    } catch (err) {
      if (isCageError(err)) return resolutionError(err.code, err.message);
      throw err;
    }
    const signal = AbortSignal.timeout(timeoutMs);
    let body: Buffer;
    try {
      const res = await fetchImpl(url, { signal, headers: { accept: 'application/did+json, application/json' }, redirect: 'error' });
      if (res.status !== 200) {
        await res.body?.cancel().catch(() => undefined);
        return resolutionError('NOTARY_DID_UNRESOLVABLE', `GET ${url} answered ${res.status}`);
      }
      body = await readLimited(res, MAX_DID_DOCUMENT_BYTES);
    } catch (err) {
      if (isCageError(err)) return resolutionError(err.code, err.message);
      const why = signal.aborted ? `timed out after ${timeoutMs} ms` : err instanceof Error ? err.message : String(err);
      return resolutionError('NOTARY_DID_UNRESOLVABLE', `GET ${url}: ${why}`);
    }
    const text = decodeUtf8(body);
    let json: unknown;
    try {
      json = text === undefined ? undefined : JSON.parse(text);
    } catch {
      json = undefined;
    }
    if (!isObject(json)) return resolutionError('NOTARY_DID_UNRESOLVABLE', `GET ${url} did not return a JSON object`);
    // Some hosts publish a DID Resolution Document ({didDocument, didDocumentMetadata}).
    const doc = isObject(json.didDocument) ? json.didDocument : json;
    return { didResolutionMetadata: { contentType: 'application/did+json' }, didDocument: doc as DIDDocument, didDocumentMetadata: {} };
  };
}

/** A did-resolver `Resolver` for did:key and did:web (no cache: registering is rare, and a did:web may rotate). */
export function createDidResolver(opts: ResolveOptions = {}): Resolver {
  for (const k of Object.keys(opts)) if (!RESOLVE_OPTION_KEYS.has(k)) throw new TypeError(`resolve options: unknown option ${JSON.stringify(k)}`);
  const fetchImpl = opts.fetch ?? (globalThis.fetch as FetchLike);
  const timeoutMs = opts.timeoutMs ?? 5000;
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) throw new TypeError('resolve options: timeoutMs must be a positive integer');
  return new Resolver({ key: keyDriver, web: webDriver(fetchImpl, timeoutMs) }, { cache: false });
}

export interface ResolvedNotary {
  /** The DID (a did:key in its canonical form, without an explicit version). */
  readonly did: string;
  readonly verificationMethod: string;
  readonly publicKey: Buffer;
  /** The cosignature verifier (type 0x04) named by the DID. */
  readonly verifier: NoteVerifier;
  /** Its C2SP verifier key string `<DID>+<key ID>+<base64(0x04 ‖ key)>`. */
  readonly verifierKey: string;
}

/** The cosignature verifier of a notary: key name = DID, type 0x04 (tlog-cosignature, Ed25519). */
export function notaryVerifier(did: string, publicKey: Uint8Array): NoteVerifier {
  if (!isValidKeyName(did)) throw fail('NOTARY_BAD_DID', `${JSON.stringify(did)} cannot be a signed-note key name`);
  return createVerifier(did, publicKey, SIG_TYPE_COSIGNATURE_V1);
}

/**
 * Resolves a notary's DID to its Ed25519 cosigning key. Throws NOTARY_BAD_DID (syntax, method,
 * document id), NOTARY_DID_UNRESOLVABLE (did:web fetch failed) or NOTARY_KEY_NOT_ED25519.
 */
export async function resolveNotaryDid(did: string, opts: ResolveOptions | Resolver = {}): Promise<ResolvedNotary> {
  const { method } = parseDid(did);
  if (method !== 'key' && method !== 'web') throw fail('NOTARY_BAD_DID', `DID method ${JSON.stringify(method)} is not supported (did:key and did:web are)`);
  const canonical = canonicalDid(did);
  const resolver = opts instanceof Resolver ? opts : createDidResolver(opts);
  const result = await resolver.resolve(canonical);
  const meta = result.didResolutionMetadata;
  if (meta.error !== undefined || result.didDocument === null) {
    const code: CageErrorCode = typeof meta.cageCode === 'string' && meta.cageCode.startsWith('NOTARY_') ? (meta.cageCode as CageErrorCode) : 'NOTARY_DID_UNRESOLVABLE';
    throw fail(code, `cannot resolve ${canonical}: ${String(meta.message ?? meta.error)}`);
  }
  const { verificationMethod, publicKey } = ed25519KeyFromDocument(result.didDocument, canonical);
  const verifier = notaryVerifier(canonical, publicKey);
  return Object.freeze({ did: canonical, verificationMethod, publicKey, verifier, verifierKey: verifier.verifierKey });
}
