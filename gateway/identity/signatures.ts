/**
 * The cage's side of RFC 9421 request signatures: which signatures count (Ed25519, keyid a
 * did:key), what they must cover, their time window and nonce replay cache, and the body's
 * Content-Digest. The parsing and the signature base are core/httpsig.ts; this file is policy.
 * Public keys from did:keys are imported once and cached (bounded).
 */
import { hash } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { BoundedMap } from '../../core/bounded-map.js';
import { CageError, isCageError } from '../../core/errors.js';
import { checkContentDigest, ed25519PublicKey, parseSignatures, signatureBase, verifyEd25519Base, type SignedRequest } from '../../core/httpsig.js';
import { publicKeyFromDidKey } from '../../notary/did.js';
import type { SignatureConfig } from '../config/security.js';

export interface VerifiedSignature {
  did: string;
  label: string;
  components: readonly string[];
  created: number;
  nonce: string | undefined;
}

const MAX_KEY_CACHE = 10_000;

export class SignatureVerifier {
  private readonly keys = new BoundedMap<string, KeyObject>(MAX_KEY_CACHE);
  /** `did nonce` → expiry (seconds). */
  private readonly nonces: BoundedMap<string, number>;

  constructor(
    public config: SignatureConfig,
    private readonly now: () => number = () => Math.floor(Date.now() / 1000),
  ) {
    this.nonces = new BoundedMap(config.nonceCache);
  }

  private key(did: string): KeyObject {
    let k = this.keys.get(did);
    if (k === undefined) {
      let raw: Buffer;
      try {
        raw = publicKeyFromDidKey(did);
      } catch (err) {
        throw new CageError({ code: 'IDENTITY_BAD_SIGNATURE', message: `keyid is not an Ed25519 did:key: ${(err as Error).message}`, cause: err });
      }
      k = ed25519PublicKey(raw);
      this.keys.set(did, k);
    }
    return k;
  }

  /**
   * Verifies the request's signature(s); the first Ed25519 did:key signature that covers what the
   * cage requires is the one that counts. `hasBody`: the request carries a body, so content-digest
   * must be covered (the caller then checks the digest against the body with `checkDigest`).
   */
  verify(req: SignedRequest, signatureInput: string, signature: string, hasBody: boolean): VerifiedSignature {
    const sigs = parseSignatures(signatureInput, signature);
    let lastError: CageError | undefined;
    for (const { params, signature: sig } of sigs) {
      try {
        if (params.keyid === undefined || !params.keyid.startsWith('did:key:')) throw new CageError({ code: 'IDENTITY_BAD_SIGNATURE', message: `signature ${params.label}: keyid must be a did:key` });
        if (params.alg !== undefined && params.alg !== 'ed25519') throw new CageError({ code: 'IDENTITY_BAD_SIGNATURE', message: `signature ${params.label}: alg ${params.alg} is not ed25519` });
        this.checkCovered(params.components, req, hasBody, params.label);
        this.checkTime(params.created, params.expires, params.label);
        if (this.config.requireNonce && params.nonce === undefined) throw new CageError({ code: 'IDENTITY_SIGNATURE_REPLAY', message: `signature ${params.label}: a nonce is required` });
        const base = signatureBase(req, params);
        if (!verifyEd25519Base(base, sig, this.key(params.keyid))) throw new CageError({ code: 'IDENTITY_BAD_SIGNATURE', message: `signature ${params.label} does not verify with ${params.keyid}` });
        if (params.nonce !== undefined) this.useNonce(params.keyid, params.nonce, params.created!, params.expires);
        return { did: params.keyid, label: params.label, components: params.components, created: params.created!, nonce: params.nonce };
      } catch (err) {
        if (!isCageError(err)) throw err;
        lastError = err;
      }
    }
    throw lastError!;
  }

  private checkCovered(components: readonly string[], req: SignedRequest, hasBody: boolean, label: string): void {
    const has = (c: string): boolean => components.includes(c);
    const missing: string[] = [];
    if (!has('@method')) missing.push('@method');
    if (!has('@target-uri')) {
      if (!has('@authority')) missing.push('@authority (or @target-uri)');
      if (!has('@path') && !has('@request-target')) missing.push('@path (or @target-uri)');
      if (req.target.includes('?') && !has('@query') && !has('@request-target')) missing.push('@query (or @target-uri)');
    }
    if (hasBody && !has('content-digest')) missing.push('content-digest');
    if (missing.length > 0) throw new CageError({ code: 'IDENTITY_SIGNATURE_COMPONENTS', message: `signature ${label} does not cover ${missing.join(', ')}` });
  }

  private checkTime(created: number | undefined, expires: number | undefined, label: string): void {
    const now = this.now();
    const skew = this.config.clockSkewS;
    if (created === undefined) throw new CageError({ code: 'IDENTITY_SIGNATURE_EXPIRED', message: `signature ${label} has no created time` });
    if (created > now + skew) throw new CageError({ code: 'IDENTITY_SIGNATURE_EXPIRED', message: `signature ${label} was created in the future (${created - now} s ahead)` });
    if (now - created > this.config.maxAgeS + skew) throw new CageError({ code: 'IDENTITY_SIGNATURE_EXPIRED', message: `signature ${label} is ${now - created} s old (max_age ${this.config.maxAgeS} s)` });
    if (expires !== undefined && now > expires + skew) throw new CageError({ code: 'IDENTITY_SIGNATURE_EXPIRED', message: `signature ${label} expired ${now - expires} s ago` });
  }

  private useNonce(did: string, nonce: string, created: number, expires: number | undefined): void {
    const now = this.now();
    const k = `${did} ${nonce}`;
    const seen = this.nonces.get(k);
    if (seen !== undefined && seen >= now) throw new CageError({ code: 'IDENTITY_SIGNATURE_REPLAY', message: 'this signature nonce was already used' });
    // Keep it as long as a signature with this created/expires could still be accepted.
    const until = Math.min(created + this.config.maxAgeS, expires ?? Infinity) + this.config.clockSkewS;
    if (seen !== undefined) this.nonces.delete(k);
    this.nonces.set(k, until);
  }

  /** Checks the body against the request's Content-Digest (IDENTITY_BAD_DIGEST). */
  static checkDigest(field: string | undefined, body: Uint8Array): void {
    if (field === undefined) throw new CageError({ code: 'IDENTITY_BAD_DIGEST', message: 'a signed request with a body must carry Content-Digest' });
    checkContentDigest(field, body, (alg, data) => hash(alg, data, 'buffer'));
  }
}
