/**
 * Bearer JWTs (RFC 7519) verified with `jose`: only the configured algorithms (so `none` and
 * algorithm confusion are impossible), keys from a PEM public key, a JWK or a local JWKS file,
 * or an HMAC secret; `exp`, `nbf`, `iss`, `aud` checked with the clock tolerance. A token that
 * verified is cached until its `exp` (bounded), so a client reusing its token pays one lookup.
 */
import { createPublicKey, createSecretKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createLocalJWKSet, errors as joseErrors, jwtVerify, type JWTVerifyGetKey, type JWK } from 'jose';
import { BoundedMap } from '../../core/bounded-map.js';
import { CageError } from '../../core/errors.js';
import type { JwtConfig } from '../config/security.js';

export interface JwtIdentity {
  sub: string;
  roles: readonly string[];
  rateClass: string;
  /** Seconds since the epoch; undefined: no exp claim (cached for at most CACHE_NO_EXP_S). */
  exp: number | undefined;
}

/** Tokens longer than this are refused before any parsing. */
export const MAX_TOKEN_LENGTH = 8192;
const CACHE_NO_EXP_S = 60;

type KeySource = KeyObject | Uint8Array | JWTVerifyGetKey;

function loadKeys(file: string): KeyObject | JWTVerifyGetKey {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new CageError({ code: 'IDENTITY_KEYS_INVALID', message: `identity.jwt.keys: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, cause: err });
  }
  try {
    if (text.trimStart().startsWith('{')) {
      const json = JSON.parse(text) as { keys?: JWK[] } & JWK;
      const jwks = Array.isArray(json.keys) ? { keys: json.keys } : { keys: [json] };
      for (const k of jwks.keys) if (typeof k !== 'object' || k === null || 'd' in k || k.kty === 'oct') throw new Error('a JWKS for verification holds public keys only (no "d", no "oct")');
      return createLocalJWKSet(jwks);
    }
    return createPublicKey(text);
  } catch (err) {
    throw new CageError({ code: 'IDENTITY_KEYS_INVALID', message: `identity.jwt.keys: ${file} is not a PEM public key, a JWK or a JWKS: ${(err as Error).message}`, cause: err });
  }
}

export class JwtVerifier {
  private readonly cache: BoundedMap<string, JwtIdentity>;
  private readonly asymmetric: KeyObject | JWTVerifyGetKey | undefined;
  private readonly secret: KeyObject | undefined;

  constructor(
    readonly config: JwtConfig,
    private readonly nowS: () => number = () => Math.floor(Date.now() / 1000),
  ) {
    this.asymmetric = config.keysFile === undefined ? undefined : loadKeys(config.keysFile);
    this.secret = config.secret === undefined ? undefined : createSecretKey(Buffer.from(config.secret, 'utf8'));
    this.cache = new BoundedMap(Math.max(1, config.cacheSize));
  }

  /** The cached identity of a token that verified before and has not expired, else undefined. */
  cached(token: string): JwtIdentity | undefined {
    const hit = this.cache.get(token);
    if (hit === undefined) return undefined;
    if (hit.exp !== undefined && hit.exp + this.config.clockToleranceS <= this.nowS()) {
      this.cache.delete(token);
      return undefined;
    }
    return hit;
  }

  async verify(token: string): Promise<JwtIdentity> {
    if (token.length > MAX_TOKEN_LENGTH) throw new CageError({ code: 'IDENTITY_BAD_TOKEN', message: `bearer token longer than ${MAX_TOKEN_LENGTH} characters` });
    const hit = this.cached(token);
    if (hit !== undefined) return hit;
    const c = this.config;
    const key: KeySource = (header, input) => {
      const alg = header.alg ?? '';
      if (alg.startsWith('HS')) {
        if (this.secret === undefined) throw new joseErrors.JOSEAlgNotAllowed(`"${alg}" is not allowed`);
        return this.secret;
      }
      if (this.asymmetric === undefined) throw new joseErrors.JOSEAlgNotAllowed(`"${alg}" is not allowed`);
      return typeof this.asymmetric === 'function' ? this.asymmetric(header, input) : this.asymmetric;
    };
    let payload;
    try {
      ({ payload } = await jwtVerify(token, key as JWTVerifyGetKey, {
        algorithms: [...c.algorithms],
        issuer: c.issuer,
        audience: c.audience,
        clockTolerance: c.clockToleranceS,
        maxTokenAge: c.maxAgeS,
        currentDate: new Date(this.nowS() * 1000),
      }));
    } catch (err) {
      const expired = err instanceof joseErrors.JWTExpired || (err instanceof joseErrors.JWTClaimValidationFailed && (err.claim === 'nbf' || err.claim === 'iat'));
      throw new CageError({ code: expired ? 'IDENTITY_TOKEN_EXPIRED' : 'IDENTITY_BAD_TOKEN', message: `bearer token refused: ${(err as Error).message}`, cause: err });
    }
    if (typeof payload.sub !== 'string' || payload.sub === '' || payload.sub.length > 256) throw new CageError({ code: 'IDENTITY_BAD_TOKEN', message: 'bearer token has no sub claim (or a longer one than 256 characters)' });
    const rolesClaim = payload[c.rolesClaim];
    const roles = Array.isArray(rolesClaim) ? rolesClaim.filter((r): r is string => typeof r === 'string').slice(0, 64) : typeof rolesClaim === 'string' ? rolesClaim.split(' ').filter((r) => r !== '').slice(0, 64) : [];
    const cls = c.classClaim === undefined ? undefined : payload[c.classClaim];
    const exp = typeof payload.exp === 'number' ? payload.exp : this.nowS() + CACHE_NO_EXP_S;
    const id: JwtIdentity = Object.freeze({ sub: payload.sub, roles: Object.freeze(roles), rateClass: typeof cls === 'string' ? cls.slice(0, 32) : '', exp });
    if (c.cacheSize > 0) this.cache.set(token, id);
    return id;
  }
}
