/**
 * The config sections of the decision stages: `identity` (API keys, JWT, RFC 9421 signatures),
 * `regions` (where callers are), `policies` (BISO bundles) and `ratelimit`. Their JSON Schema
 * parts (merged into gateway/config/schema.ts) and their normalization into frozen values with
 * ms and bytes. Files named here (JWT keys, bundles) are read at load and on every reload, so a
 * reload picks up a changed bundle, and a bad one refuses the reload with the file named.
 */
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { CageError } from '../../core/errors.js';
import { parseDuration, parseSize } from '../../core/units.js';

const duration = { type: ['string', 'number'], format: 'duration' } as const;
const size = { type: ['string', 'number'], format: 'size' } as const;
const headerName = { type: 'string', pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$" } as const;
const word = { type: 'string', minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9._:/-]+$' } as const;
const region = { type: 'string', pattern: '^[A-Z][A-Z0-9-]{1,15}$' } as const;
const stringOrList = { anyOf: [{ type: 'string', minLength: 1 }, { type: 'array', items: { type: 'string', minLength: 1 }, minItems: 1 }] } as const;

export const JWT_ALGORITHMS = ['HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'PS256', 'ES256', 'ES384', 'EdDSA'] as const;
export type JwtAlgorithm = (typeof JWT_ALGORITHMS)[number];

export const IDENTITY_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    api_keys: {
      type: 'object',
      additionalProperties: false,
      properties: {
        header: { ...headerName, default: 'x-api-key' },
        keys: {
          type: 'array',
          maxItems: 100000,
          default: [],
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['name', 'sha256'],
            properties: {
              name: { type: 'string', pattern: '^[A-Za-z0-9_.@-]{1,64}$' },
              sha256: { type: 'string', pattern: '^[0-9a-f]{64}$' },
              roles: { type: 'array', items: word, default: [] },
              class: { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,32}$' },
            },
          },
        },
      },
    },
    jwt: {
      type: 'object',
      additionalProperties: false,
      required: ['algorithms'],
      properties: {
        algorithms: { type: 'array', items: { enum: [...JWT_ALGORITHMS] }, minItems: 1, uniqueItems: true },
        keys: { type: 'string', minLength: 1 },
        secret: { type: 'string', minLength: 1 },
        issuer: stringOrList,
        audience: stringOrList,
        clock_tolerance: { ...duration, default: '30s' },
        max_age: duration,
        roles_claim: { type: 'string', minLength: 1, default: 'roles' },
        class_claim: { type: 'string', minLength: 1 },
        cache_size: { type: 'integer', minimum: 0, maximum: 10000000, default: 10000 },
      },
    },
    signatures: {
      type: 'object',
      additionalProperties: false,
      properties: {
        enabled: { type: 'boolean', default: true },
        max_age: { ...duration, default: '5m' },
        clock_skew: { ...duration, default: '30s' },
        require_nonce: { type: 'boolean', default: false },
        nonce_cache: { type: 'integer', minimum: 1, maximum: 10000000, default: 100000 },
        max_body_bytes: { ...size, default: '1MiB' },
      },
      default: {},
    },
  },
  default: {},
} as const;

export const REGIONS_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    cidrs: { type: 'object', propertyNames: { type: 'string', format: 'cidr' }, additionalProperties: region, default: {} },
    header: headerName,
  },
  default: {},
} as const;

export const POLICIES_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    files: { type: 'array', items: { type: 'string', minLength: 1 }, maxItems: 64, default: [] },
    trusted_keys: { type: 'array', items: { type: 'string', pattern: '^[A-Za-z0-9+/]{43}=$' }, default: [] },
    shadow: { type: 'boolean', default: false },
  },
  default: {},
} as const;

export const RATELIMIT_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    redis: { type: 'string', pattern: '^(rediss?://|env:)' },
    on_redis_error: { enum: ['open', 'closed', 'local'], default: 'local' },
    key_prefix: { type: 'string', pattern: '^[A-Za-z0-9_.:-]{1,64}$', default: 'cage' },
    limits: {
      type: 'array',
      maxItems: 64,
      default: [],
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'by', 'points', 'per'],
        properties: {
          name: { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,64}$' },
          by: { enum: ['ip', 'identity', 'route', 'class'] },
          points: { type: 'integer', minimum: 1, maximum: 1e9 },
          per: duration,
          routes: { type: 'array', items: { type: 'string', minLength: 1 }, minItems: 1 },
          classes: { type: 'object', propertyNames: { pattern: '^[A-Za-z0-9_.-]{1,32}$' }, additionalProperties: { type: 'integer', minimum: 0, maximum: 1e9 }, default: {} },
        },
      },
    },
  },
  default: {},
} as const;

/** Route keys this file owns (merged into the route schema). */
export const ROUTE_SECURITY_PROPERTIES = {
  region: region,
} as const;

export interface ApiKeyEntry {
  name: string;
  /** Hex SHA-256 of the key. */
  sha256: string;
  roles: readonly string[];
  class: string;
}

export interface JwtConfig {
  algorithms: readonly JwtAlgorithm[];
  keysFile: string | undefined;
  secret: string | undefined;
  issuer: string | string[] | undefined;
  audience: string | string[] | undefined;
  clockToleranceS: number;
  maxAgeS: number | undefined;
  rolesClaim: string;
  classClaim: string | undefined;
  cacheSize: number;
}

export interface SignatureConfig {
  enabled: boolean;
  maxAgeS: number;
  clockSkewS: number;
  requireNonce: boolean;
  nonceCache: number;
  maxBodyBytes: number;
}

export interface IdentityConfig {
  apiKeyHeader: string;
  apiKeys: readonly ApiKeyEntry[];
  jwt: JwtConfig | undefined;
  signatures: SignatureConfig;
}

export interface RegionsConfig {
  cidrs: ReadonlyArray<readonly [cidr: string, region: string]>;
  /** Header carrying the client's region; believed only from trusted_proxies. */
  header: string | undefined;
}

export interface PoliciesConfig {
  files: readonly string[];
  trustedKeys: readonly string[];
  shadow: boolean;
}

export interface RateLimitRule {
  name: string;
  by: 'ip' | 'identity' | 'route' | 'class';
  points: number;
  perMs: number;
  routes: readonly string[] | undefined;
  classes: ReadonlyMap<string, number>;
}

export interface RateLimitConfig {
  redis: string | undefined;
  onRedisError: 'open' | 'closed' | 'local';
  keyPrefix: string;
  limits: readonly RateLimitRule[];
}

export interface SecurityConfig {
  identity: IdentityConfig;
  regions: RegionsConfig;
  policies: PoliciesConfig;
  ratelimit: RateLimitConfig;
}

function invalid(message: string): CageError {
  return new CageError({ code: 'CONFIG_INVALID', message });
}

/* eslint-disable @typescript-eslint/no-explicit-any -- the raw objects were validated against the schema */
export function normalizeSecurity(raw: any, baseDir: string, routeNames: ReadonlySet<string>, resolveSecret: (v: string, path: string) => string): SecurityConfig {
  const id = raw.identity;
  const seen = new Set<string>();
  const hashes = new Set<string>();
  const apiKeys = ((id.api_keys?.keys ?? []) as any[]).map((k, i): ApiKeyEntry => {
    if (seen.has(k.name)) throw invalid(`identity.api_keys.keys[${i}].name: duplicate key name ${k.name}`);
    if (hashes.has(k.sha256)) throw invalid(`identity.api_keys.keys[${i}].sha256: the same key is listed twice`);
    seen.add(k.name);
    hashes.add(k.sha256);
    return Object.freeze({ name: k.name, sha256: k.sha256, roles: Object.freeze([...k.roles]), class: k.class ?? '' });
  });
  let jwt: JwtConfig | undefined;
  if (id.jwt !== undefined) {
    const j = id.jwt;
    const hmac = (j.algorithms as string[]).some((a) => a.startsWith('HS'));
    const asym = (j.algorithms as string[]).some((a) => !a.startsWith('HS'));
    if (hmac && j.secret === undefined) throw invalid('identity.jwt.secret: required for HS* algorithms (use env:VAR)');
    if (asym && j.keys === undefined) throw invalid('identity.jwt.keys: required for RS*/PS*/ES*/EdDSA (a PEM public key, a JWK or a JWKS file)');
    if (!hmac && j.secret !== undefined) throw invalid('identity.jwt.secret: set, but no HS* algorithm is allowed');
    const secret = j.secret === undefined ? undefined : resolveSecret(j.secret, 'identity.jwt.secret');
    if (secret !== undefined && Buffer.byteLength(secret) < 32) throw invalid('identity.jwt.secret: must be at least 32 bytes');
    jwt = Object.freeze({
      algorithms: Object.freeze([...j.algorithms]),
      keysFile: j.keys === undefined ? undefined : resolve(baseDir, j.keys),
      secret,
      issuer: j.issuer,
      audience: j.audience,
      clockToleranceS: Math.round(parseDuration(j.clock_tolerance)! / 1000),
      maxAgeS: j.max_age === undefined ? undefined : Math.round(parseDuration(j.max_age)! / 1000),
      rolesClaim: j.roles_claim,
      classClaim: j.class_claim,
      cacheSize: j.cache_size,
    });
  }
  const s = id.signatures;
  const signatures: SignatureConfig = Object.freeze({
    enabled: s.enabled,
    maxAgeS: Math.max(1, Math.round(parseDuration(s.max_age)! / 1000)),
    clockSkewS: Math.round(parseDuration(s.clock_skew)! / 1000),
    requireNonce: s.require_nonce,
    nonceCache: s.nonce_cache,
    maxBodyBytes: parseSize(s.max_body_bytes)!,
  });

  const cidrs = Object.entries(raw.regions.cidrs as Record<string, string>).map(([c, r]) => Object.freeze([c.includes('/') ? c : `${c}/${isIP(c) === 6 ? 128 : 32}`, r] as const));

  const limitNames = new Set<string>();
  const limits = ((raw.ratelimit.limits ?? []) as any[]).map((l, i): RateLimitRule => {
    if (limitNames.has(l.name)) throw invalid(`ratelimit.limits[${i}].name: duplicate limit name ${l.name}`);
    limitNames.add(l.name);
    const perMs = parseDuration(l.per)!;
    if (perMs < 1000 || perMs % 1000 !== 0) throw invalid(`ratelimit.limits[${i}].per: must be whole seconds, at least 1s`);
    for (const r of l.routes ?? []) if (!routeNames.has(r)) throw invalid(`ratelimit.limits[${i}].routes: no route named ${r}`);
    if (l.by !== 'class' && l.by !== 'identity' && Object.keys(l.classes).length > 0) throw invalid(`ratelimit.limits[${i}].classes: only for by: identity or by: class`);
    return Object.freeze({ name: l.name, by: l.by, points: l.points, perMs, routes: l.routes === undefined ? undefined : Object.freeze([...l.routes]), classes: new Map(Object.entries(l.classes as Record<string, number>)) });
  });
  return Object.freeze({
    identity: Object.freeze({ apiKeyHeader: (id.api_keys?.header ?? 'x-api-key').toLowerCase(), apiKeys: Object.freeze(apiKeys), jwt, signatures }),
    regions: Object.freeze({ cidrs: Object.freeze(cidrs), header: raw.regions.header?.toLowerCase() }),
    policies: Object.freeze({ files: Object.freeze((raw.policies.files as string[]).map((f) => resolve(baseDir, f))), trustedKeys: Object.freeze([...raw.policies.trusted_keys]), shadow: raw.policies.shadow }),
    ratelimit: Object.freeze({ redis: raw.ratelimit.redis === undefined ? undefined : resolveSecret(raw.ratelimit.redis, 'ratelimit.redis'), onRedisError: raw.ratelimit.on_redis_error, keyPrefix: raw.ratelimit.key_prefix, limits: Object.freeze(limits) }),
  });
}
/* eslint-enable @typescript-eslint/no-explicit-any */
