/**
 * The identify stage: who is calling. Every credential the request presents must be valid
 * (a bad one is a 401 with its code, never silently anonymous); the identity is the first of
 * API key, JWT, DID signature. A verified RFC 9421 signature also marks the request `signed`.
 * Anonymous Groth16 members are identified by their own stage (circuits/, the `zk` kind).
 *
 * Trust: every header here is attacker-controlled. API keys are compared by SHA-256 (the config
 * holds only hashes); JWTs and signatures are verified before anything in them is believed.
 */
import { hash } from 'node:crypto';
import type { BlockList } from 'node:net';
import { CageError, isCageError } from '../../core/errors.js';
import type { SignedRequest } from '../../core/httpsig.js';
import type { ApiKeyEntry, IdentityConfig } from '../config/security.js';
import type { Exchange } from '../exchange.js';
import { isTrusted } from '../headers.js';
import type { Stage, StageResult } from '../pipeline.js';
import type { JwtIdentity, JwtVerifier } from './jwt.js';
import { SignatureVerifier } from './signatures.js';

/** Hex SHA-256 of an API key: what the config stores (`cage key new` prints both). */
export function hashApiKey(key: string): string {
  return hash('sha256', key, 'hex');
}

export class IdentifyStage implements Stage {
  readonly slot = 'identify' as const;
  readonly name = 'identity';
  private readonly keys = new Map<string, ApiKeyEntry>();
  private readonly apiKeyHeader: string;

  constructor(
    private readonly config: IdentityConfig,
    private readonly jwt: JwtVerifier | undefined,
    private readonly signatures: SignatureVerifier,
    private readonly trusted: BlockList | undefined,
  ) {
    for (const k of config.apiKeys) this.keys.set(k.sha256, k);
    this.apiKeyHeader = config.apiKeyHeader;
  }

  handle(ex: Exchange): StageResult | Promise<StageResult> {
    let pending: Promise<StageResult> | undefined;
    // RFC 9421 signature
    const sigInput = ex.header('signature-input');
    const sig = ex.header('signature');
    if (this.config.signatures.enabled && (sigInput !== undefined || sig !== undefined)) {
      if (sigInput === undefined || sig === undefined) return new CageError({ code: 'IDENTITY_SIGNATURE_MALFORMED', message: 'Signature and Signature-Input come together' });
      try {
        const v = this.signatures.verify(this.signedRequest(ex), sigInput, sig, ex.body !== null);
        ex.signed = true;
        ex.identity = v.did;
        ex.identityKind = 'did';
      } catch (err) {
        if (isCageError(err)) return err;
        throw err;
      }
      if (ex.body !== null) pending = this.checkBody(ex);
    }
    // API key (the header is the app's business when the cage knows no keys)
    const key = this.keys.size > 0 ? ex.header(this.apiKeyHeader) : undefined;
    if (key !== undefined) {
      const entry = key.length <= 512 ? this.keys.get(hashApiKey(key)) : undefined;
      if (entry === undefined) return new CageError({ code: 'IDENTITY_BAD_API_KEY', message: `the ${this.apiKeyHeader} header holds no known API key` });
      ex.identity = entry.name;
      ex.identityKind = 'api-key';
      ex.roles = entry.roles;
      ex.rateClass = entry.class;
    }
    // JWT bearer token
    if (this.jwt !== undefined) {
      const auth = ex.header('authorization');
      if (auth !== undefined && auth.length > 7 && auth.charCodeAt(6) === 32 && auth.slice(0, 6).toLowerCase() === 'bearer') {
        const token = auth.slice(7).trim();
        const hit = this.jwt.cached(token);
        if (hit !== undefined) {
          if (key === undefined) this.setJwt(ex, hit);
        } else {
          const verifying = this.jwt.verify(token).then(
            (id): StageResult => {
              if (key === undefined) this.setJwt(ex, id);
              return undefined;
            },
            (err: unknown): StageResult => {
              if (isCageError(err)) return err;
              throw err;
            },
          );
          pending = pending === undefined ? verifying : Promise.all([pending, verifying]).then(([a, b]) => a ?? b);
        }
      }
    }
    return pending;
  }

  private setJwt(ex: Exchange, id: JwtIdentity): void {
    ex.identity = id.sub;
    ex.identityKind = 'jwt';
    ex.roles = id.roles;
    ex.rateClass = id.rateClass;
  }

  /** The request as the client signed it: the scheme it used (from a trusted proxy's X-Forwarded-Proto). */
  private signedRequest(ex: Exchange): SignedRequest {
    let scheme: string = ex.scheme;
    if (isTrusted(this.trusted, ex.remoteAddress)) {
      const p = ex.header('x-forwarded-proto');
      if (p === 'https' || p === 'http') scheme = p;
    }
    return { method: ex.method, scheme, authority: ex.host, target: ex.target, headers: ex.headers };
  }

  private async checkBody(ex: Exchange): Promise<StageResult> {
    const max = this.config.signatures.maxBodyBytes;
    try {
      const { bytes, complete } = await ex.body!.peek(max + 1);
      if (!complete) return new CageError({ code: 'GW_BODY_TOO_LARGE', message: `a signed request body is checked against its Content-Digest and may be at most ${max} bytes (identity.signatures.max_body_bytes)` });
      SignatureVerifier.checkDigest(ex.header('content-digest'), bytes);
      return undefined;
    } catch (err) {
      if (isCageError(err)) return err;
      throw err;
    }
  }
}
