/**
 * Config loading: YAML text → schema validation (defaults filled in) → a normalized, frozen
 * `CageConfig` with durations in ms and sizes in bytes. Validated once at load and on reload,
 * never per request. Every failure is one CageError whose message names the path
 * (`routes[0].match.hots: unknown key`).
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { CageError } from '../../core/errors.js';
import { parseDuration, parseHostPort, parseSize } from '../../core/units.js';
import { CONFIG_SCHEMA } from './schema.js';
import { normalizeSecurity, type SecurityConfig } from './security.js';
import { normalizeZk, type ZkConfig } from './zk.js';
import { normalizeChain, type ChainConfig } from './chain.js';

export interface HeaderOps {
  set: ReadonlyArray<readonly [name: string, value: string]>;
  remove: readonly string[];
}

export interface ActiveHealthCheck {
  path: string;
  intervalMs: number;
  timeoutMs: number;
  passes: number;
  fails: number;
  expectStatus: number | undefined;
}

export interface RouteConfig {
  name: string;
  hosts: readonly string[];
  pathPrefix: string;
  upstreams: readonly string[];
  loadBalancing: 'round_robin' | 'least_conn' | 'random' | 'first';
  requestHeaders: HeaderOps;
  responseHeaders: HeaderOps;
  connectTimeoutMs: number;
  responseHeadersTimeoutMs: number;
  idleTimeoutMs: number;
  maxBodyBytes: number;
  retries: number;
  keepaliveConnections: number;
  keepaliveIdleMs: number;
  activeHealth: ActiveHealthCheck | undefined;
  passiveMaxFails: number;
  passiveFailDurationMs: number;
  websocket: boolean;
  /** Audit mode: async (record after the answer), sync (answer after the record is fsynced), off. */
  audit: AuditMode;
  /** The app signs its answers (Cage-Origin-Signature) with this registered key. */
  originSignature: { key: string; required: boolean } | undefined;
  /** Plaintext requests are refused (PQ_REQUIRED): only X-Wing HPKE envelopes (OHTTP) reach this route. */
  requirePq: boolean;
  /** Where the route's upstream lives (a region code for BISO policies). */
  region: string | undefined;
}

export interface PqConfig {
  enabled: boolean;
  keysPath: string;
  rotateMs: number;
  graceMs: number;
  maxRequestBytes: number;
  maxResponseBytes: number;
  /** Freshness window of the inner Date (and the replay cache); 0 = off. */
  replayWindowMs: number;
  /** Worker threads that open envelopes (pq/pool.ts); 0 = on the event loop. */
  workers: number;
}

export type AuditMode = 'async' | 'sync' | 'off';

export interface AuditConfig {
  enabled: boolean;
  /** Mode of routes that name none (and of requests that match no route). */
  defaultMode: AuditMode;
  /** Checkpoint origin line; undefined: the one stored in the log, else `http-cage/<hostname>`. */
  origin: string | undefined;
  /** Signer key file (C2SP note format); undefined: `<data_dir>/audit/log.key`, made once. */
  keyFile: string | undefined;
  checkpointIntervalMs: number;
  checkpointRecords: number;
  maxPendingMs: number;
  syncMaxResponseBytes: number;
  publicRead: boolean;
  /** Registered app keys for Cage-Origin-Signature: name → raw 32-byte Ed25519 public key. */
  originKeys: ReadonlyMap<string, Buffer>;
}

export interface CageConfig {
  listen: { host: string; port: number };
  tls: { cert: string; key: string } | undefined;
  admin: { enabled: boolean; listen: { host: string; port: number }; token: string | undefined };
  dataDir: string;
  trustedProxies: readonly string[];
  maxHeaderBytes: number;
  log: { level: string; access: boolean; file: string | undefined };
  shutdownGraceMs: number;
  audit: AuditConfig;
  pq: PqConfig;
  /** Identity, regions, policies and rate limits (gateway/config/security.ts). */
  security: SecurityConfig;
  /** Anonymous membership (Groth16) and the routes that require it (gateway/config/zk.ts). */
  zk: ZkConfig;
  /** The embedded or external chain the audit log is anchored on (gateway/config/chain.ts). */
  chain: ChainConfig;
  routes: readonly RouteConfig[];
}

const ajv = new Ajv({ useDefaults: true, allErrors: false, strict: true, allowUnionTypes: true });
ajv.addFormat('duration', { type: 'string', validate: (s: string) => parseDuration(s) !== undefined });
ajv.addFormat('size', { type: 'string', validate: (s: string) => parseSize(s) !== undefined });
ajv.addFormat('host-port', { type: 'string', validate: (s: string) => parseHostPort(s) !== undefined });
ajv.addFormat('cidr', { type: 'string', validate: (s: string) => parseCidr(s) !== undefined });
ajv.addFormat('host-pattern', /^(\*\.)?[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:\d{1,5})?$|^\[[0-9a-fA-F:.]+\](:\d{1,5})?$/);
ajv.addFormat('upstream-url', {
  type: 'string',
  validate: (s: string) => {
    try {
      const u = new URL(s);
      // An origin only: the request path is forwarded as received, so a base path would be dropped.
      return (u.protocol === 'http:' || u.protocol === 'https:') && u.username === '' && u.password === '' && u.pathname === '/' && u.search === '' && u.hash === '' && !/^[a-z]+:\/\/[^/]*\/./i.test(s);
    } catch {
      return false;
    }
  },
});
const validateSchema = ajv.compile(CONFIG_SCHEMA);

/** "10.0.0.0/8" or a bare address → [address, prefix, family]; undefined when malformed. */
export function parseCidr(s: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } | undefined {
  const [addr, bits, extra] = s.split('/');
  if (addr === undefined || extra !== undefined) return undefined;
  const v = isIP(addr);
  if (v === 0) return undefined;
  const max = v === 4 ? 32 : 128;
  const prefix = bits === undefined ? max : /^\d{1,3}$/.test(bits) ? Number(bits) : NaN;
  if (!(prefix >= 0 && prefix <= max)) return undefined;
  return { address: addr, prefix, family: v === 4 ? 'ipv4' : 'ipv6' };
}

/** JSON-pointer-ish ajv path "/routes/0/match" → "routes[0].match". */
function formatPath(instancePath: string, extra?: string): string {
  const parts = instancePath.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (extra !== undefined) parts.push(extra);
  let out = '';
  for (const p of parts) out += /^\d+$/.test(p) ? `[${p}]` : out === '' ? p : `.${p}`;
  return out === '' ? '(top level)' : out;
}

function describeError(e: ErrorObject): string {
  switch (e.keyword) {
    case 'additionalProperties':
      return `${formatPath(e.instancePath, String(e.params.additionalProperty))}: unknown key`;
    case 'required':
      return `${formatPath(e.instancePath, String(e.params.missingProperty))}: required`;
    case 'enum':
      return `${formatPath(e.instancePath)}: must be one of ${(e.params.allowedValues as unknown[]).join(', ')}`;
    case 'format':
      return `${formatPath(e.instancePath)}: not a valid ${String(e.params.format)}`;
    case 'anyOf':
      return `${formatPath(e.instancePath)}: must be a host name or a list of host names`;
    default:
      return `${formatPath(e.instancePath)}: ${e.message ?? 'invalid'}`;
  }
}

function resolveEnv(value: string | undefined, path: string, env: NodeJS.ProcessEnv): string | undefined {
  if (value === undefined || !value.startsWith('env:')) return value;
  const name = value.slice(4);
  const v = env[name];
  if (v === undefined || v === '') {
    throw new CageError({ code: 'CONFIG_ENV_MISSING', message: `${path}: environment variable ${name} is not set` });
  }
  return v;
}

/** Fields that frame the message or belong to the connection: the cage owns them. */
const RESERVED_HEADERS = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'te', 'trailer', 'host']);

function headerOps(raw: { set: Record<string, string>; remove: string[] }, path: string): HeaderOps {
  for (const [i, name] of [...Object.keys(raw.set), ...raw.remove].entries()) {
    if (RESERVED_HEADERS.has(name.toLowerCase())) {
      const where = i < Object.keys(raw.set).length ? `${path}.set.${name}` : `${path}.remove[${i - Object.keys(raw.set).length}]`;
      throw new CageError({ code: 'CONFIG_INVALID', message: `${where}: ${name.toLowerCase()} is managed by the cage and cannot be set or removed` });
    }
  }
  return Object.freeze({
    set: Object.freeze(Object.entries(raw.set).map(([k, v]) => Object.freeze([k.toLowerCase(), v] as const))),
    remove: Object.freeze(raw.remove.map((h) => h.toLowerCase())),
  });
}

/* eslint-disable @typescript-eslint/no-explicit-any -- the raw object was just validated against the schema */
function normalize(raw: any, baseDir: string, env: NodeJS.ProcessEnv): CageConfig {
  const names = new Set<string>();
  const auditConfig = normalizeAudit(raw.audit, baseDir);
  const routes = (raw.routes as any[]).map((r, i): RouteConfig => {
    const name: string = r.name ?? `route${i}`;
    if (names.has(name)) throw new CageError({ code: 'CONFIG_INVALID', message: `routes[${i}].name: duplicate route name ${name}` });
    names.add(name);
    const hosts: string[] = r.match.host === undefined ? [] : Array.isArray(r.match.host) ? r.match.host : [r.match.host];
    const active = r.health_checks.active;
    return Object.freeze({
      name,
      hosts: Object.freeze(hosts.map((h) => h.toLowerCase())),
      pathPrefix: r.match.path,
      upstreams: Object.freeze([...r.upstreams]),
      loadBalancing: r.load_balancing,
      requestHeaders: headerOps(r.headers.request ?? { set: {}, remove: [] }, `routes[${i}].headers.request`),
      responseHeaders: headerOps(r.headers.response ?? { set: {}, remove: [] }, `routes[${i}].headers.response`),
      connectTimeoutMs: parseDuration(r.timeouts.connect)!,
      responseHeadersTimeoutMs: parseDuration(r.timeouts.response_headers)!,
      idleTimeoutMs: parseDuration(r.timeouts.idle)!,
      maxBodyBytes: parseSize(r.max_body_bytes)!,
      retries: r.retries,
      keepaliveConnections: r.keepalive.connections,
      keepaliveIdleMs: parseDuration(r.keepalive.idle_timeout)!,
      activeHealth: active === undefined ? undefined : Object.freeze({
        path: active.path,
        intervalMs: parseDuration(active.interval)!,
        timeoutMs: parseDuration(active.timeout)!,
        passes: active.passes,
        fails: active.fails,
        expectStatus: active.expect_status,
      }),
      passiveMaxFails: r.health_checks.passive.max_fails,
      passiveFailDurationMs: parseDuration(r.health_checks.passive.fail_duration)!,
      websocket: r.websocket,
      audit: auditConfig.enabled ? (r.audit ?? raw.audit.default_mode) : 'off',
      originSignature: originSignature(r.origin_signature, i, auditConfig),
      requirePq: r.require_pq,
      region: r.region,
    });
  });
  const token = resolveEnv(raw.admin.token, 'admin.token', env);
  if (token !== undefined && token.length < 16) {
    throw new CageError({ code: 'CONFIG_INVALID', message: 'admin.token: must be at least 16 characters' });
  }
  return Object.freeze({
    listen: parseHostPort(raw.listen)!,
    tls: raw.tls === undefined ? undefined : Object.freeze({ cert: resolve(baseDir, raw.tls.cert), key: resolve(baseDir, raw.tls.key) }),
    admin: Object.freeze({ enabled: raw.admin.enabled, listen: parseHostPort(raw.admin.listen)!, token }),
    dataDir: resolve(baseDir, raw.data_dir),
    trustedProxies: Object.freeze([...raw.trusted_proxies]),
    maxHeaderBytes: parseSize(raw.limits.max_header_bytes)!,
    log: Object.freeze({ level: raw.log.level, access: raw.log.access, file: raw.log.file === undefined ? undefined : resolve(baseDir, raw.log.file) }),
    shutdownGraceMs: parseDuration(raw.shutdown_grace)!,
    audit: auditConfig,
    pq: normalizePq(raw.pq, routes),
    security: normalizeSecurity(raw, baseDir, names, (v, path) => resolveEnv(v, path, env)!),
    zk: normalizeZk(raw.zk, raw.routes, routes.map((r) => r.name), (p) => resolve(baseDir, p), raw.identity.signatures.enabled),
    chain: normalizeChain(raw.chain, (p) => resolve(baseDir, p)),
    routes: Object.freeze(routes),
  });
}

function normalizeAudit(a: any, baseDir: string): AuditConfig {
  const keys = new Map<string, Buffer>();
  for (const [name, value] of Object.entries(a.origin_keys as Record<string, string>)) {
    const raw = Buffer.from(value, 'base64');
    if (raw.length !== 32 || raw.toString('base64') !== value) {
      throw new CageError({ code: 'CONFIG_INVALID', message: `audit.origin_keys.${name}: must be a raw 32-byte Ed25519 public key in base64` });
    }
    keys.set(name, raw);
  }
  return Object.freeze({
    enabled: a.enabled,
    defaultMode: a.default_mode,
    origin: a.origin,
    keyFile: a.key === undefined ? undefined : resolve(baseDir, a.key),
    checkpointIntervalMs: parseDuration(a.checkpoint_interval)!,
    checkpointRecords: a.checkpoint_records,
    maxPendingMs: parseDuration(a.max_pending)!,
    syncMaxResponseBytes: parseSize(a.sync_max_response_bytes)!,
    publicRead: a.public_read,
    originKeys: keys,
  });
}

function normalizePq(p: any, routes: readonly RouteConfig[]): PqConfig {
  const rotateMs = parseDuration(p.rotate_every)!;
  if (rotateMs < 60_000) throw new CageError({ code: 'CONFIG_INVALID', message: 'pq.rotate_every: must be at least 1m' });
  const required = routes.find((r) => r.requirePq);
  if (!p.enabled && required !== undefined) {
    throw new CageError({ code: 'CONFIG_INVALID', message: `routes: ${required.name} sets require_pq but pq.enabled is false` });
  }
  return Object.freeze({
    enabled: p.enabled,
    keysPath: p.keys_path,
    rotateMs,
    graceMs: parseDuration(p.grace)!,
    maxRequestBytes: parseSize(p.max_request_bytes)!,
    maxResponseBytes: parseSize(p.max_response_bytes)!,
    replayWindowMs: parseDuration(p.replay_window)!,
    workers: p.workers,
  });
}

function originSignature(o: any, i: number, audit: AuditConfig): RouteConfig['originSignature'] {
  if (o === undefined) return undefined;
  if (!audit.originKeys.has(o.key)) {
    throw new CageError({ code: 'CONFIG_INVALID', message: `routes[${i}].origin_signature.key: ${o.key} is not in audit.origin_keys` });
  }
  return Object.freeze({ key: o.key as string, required: o.required as boolean });
}
/* eslint-enable @typescript-eslint/no-explicit-any */

/** Validate a plain object (already parsed) and normalize it. `baseDir` resolves relative paths. */
export function buildConfig(raw: unknown, baseDir: string = process.cwd(), env: NodeJS.ProcessEnv = process.env): CageConfig {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new CageError({ code: 'CONFIG_INVALID', message: '(top level): must be a mapping with at least `routes`' });
  }
  const copy = structuredClone(raw);
  if (!validateSchema(copy)) {
    throw new CageError({ code: 'CONFIG_INVALID', message: describeError(validateSchema.errors![0]!) });
  }
  return normalize(copy, baseDir, env);
}

/** Parse YAML text into a config. */
export function parseConfigText(text: string, baseDir: string = process.cwd(), env: NodeJS.ProcessEnv = process.env): CageConfig {
  let raw: unknown;
  try {
    raw = parseYaml(text, { prettyErrors: true, uniqueKeys: true, maxAliasCount: 100 });
  } catch (err) {
    const msg = err instanceof YAMLParseError ? err.message.split('\n')[0] : String(err);
    throw new CageError({ code: 'CONFIG_PARSE_ERROR', message: `invalid YAML: ${msg}`, cause: err });
  }
  return buildConfig(raw ?? {}, baseDir, env);
}

/** Read and parse a config file; relative paths inside it resolve against its folder. */
export function loadConfigFile(file: string, env: NodeJS.ProcessEnv = process.env): CageConfig {
  let text: string;
  const abs = resolve(file);
  try {
    text = readFileSync(abs, 'utf8');
  } catch (err) {
    throw new CageError({ code: 'CONFIG_NOT_FOUND', message: `cannot read config ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, cause: err });
  }
  return parseConfigText(text, resolve(abs, '..'), env);
}
