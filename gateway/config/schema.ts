/**
 * The config file's JSON Schema: the single place where keys, types and defaults live
 * (docs/config.md documents it; test/gateway/config.test.ts checks both agree).
 * `additionalProperties: false` everywhere: a typo must never silently turn off a protection.
 * Durations ("5s") and sizes ("10MiB") are checked by the `duration` / `size` formats.
 */
import { availableParallelism } from 'node:os';
import { IDENTITY_SCHEMA, POLICIES_SCHEMA, RATELIMIT_SCHEMA, REGIONS_SCHEMA, ROUTE_SECURITY_PROPERTIES } from './security.js';
import { ROUTE_ZK_PROPERTIES, ZK_SCHEMA } from './zk.js';
import { CHAIN_SCHEMA } from './chain.js';

const duration = { type: ['string', 'number'], format: 'duration' } as const;
const size = { type: ['string', 'number'], format: 'size' } as const;
const hostPort = { type: 'string', format: 'host-port' } as const;
const headerName = { type: 'string', pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$" } as const;

const headerOps = {
  type: 'object',
  additionalProperties: false,
  properties: {
    set: { type: 'object', propertyNames: headerName, additionalProperties: { type: 'string', pattern: '^[^\\r\\n\\0]*$' }, default: {} },
    remove: { type: 'array', items: headerName, default: [] },
  },
  default: {},
} as const;

const route = {
  type: 'object',
  additionalProperties: false,
  required: ['upstreams'],
  properties: {
    name: { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,64}$' },
    match: {
      type: 'object',
      additionalProperties: false,
      properties: {
        host: {
          anyOf: [
            { type: 'string', format: 'host-pattern' },
            { type: 'array', items: { type: 'string', format: 'host-pattern' }, minItems: 1 },
          ],
        },
        path: { type: 'string', pattern: '^/[^\\s?#]*$', default: '/' },
      },
      default: {},
    },
    upstreams: { type: 'array', items: { type: 'string', format: 'upstream-url' }, minItems: 1 },
    load_balancing: { enum: ['round_robin', 'least_conn', 'random', 'first'], default: 'round_robin' },
    headers: {
      type: 'object',
      additionalProperties: false,
      properties: { request: headerOps, response: headerOps },
      default: {},
    },
    timeouts: {
      type: 'object',
      additionalProperties: false,
      properties: {
        connect: { ...duration, default: '5s' },
        response_headers: { ...duration, default: '30s' },
        idle: { ...duration, default: '60s' },
      },
      default: {},
    },
    max_body_bytes: { ...size, default: '10MiB' },
    retries: { type: 'integer', minimum: 0, maximum: 10, default: 1 },
    keepalive: {
      type: 'object',
      additionalProperties: false,
      properties: {
        connections: { type: 'integer', minimum: 1, maximum: 100000, default: 512 },
        idle_timeout: { ...duration, default: '4s' },
      },
      default: {},
    },
    health_checks: {
      type: 'object',
      additionalProperties: false,
      properties: {
        active: {
          type: 'object',
          additionalProperties: false,
          required: ['path'],
          properties: {
            path: { type: 'string', pattern: '^/' },
            interval: { ...duration, default: '10s' },
            timeout: { ...duration, default: '2s' },
            passes: { type: 'integer', minimum: 1, default: 1 },
            fails: { type: 'integer', minimum: 1, default: 2 },
            expect_status: { type: 'integer', minimum: 100, maximum: 599 },
          },
        },
        passive: {
          type: 'object',
          additionalProperties: false,
          properties: {
            max_fails: { type: 'integer', minimum: 1, default: 3 },
            fail_duration: { ...duration, default: '30s' },
          },
          default: {},
        },
      },
      default: {},
    },
    websocket: { type: 'boolean', default: true },
    audit: { enum: ['async', 'sync', 'off'] },
    require_pq: { type: 'boolean', default: false },
    ...ROUTE_SECURITY_PROPERTIES,
    ...ROUTE_ZK_PROPERTIES,
    origin_signature: {
      type: 'object',
      additionalProperties: false,
      required: ['key'],
      properties: {
        key: { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,64}$' },
        required: { type: 'boolean', default: false },
      },
    },
  },
} as const;

const audit = {
  type: 'object',
  additionalProperties: false,
  properties: {
    enabled: { type: 'boolean', default: true },
    origin: { type: 'string', pattern: '^[\\x21-\\x7e]{1,255}$' },
    key: { type: 'string', minLength: 1 },
    default_mode: { enum: ['async', 'sync', 'off'], default: 'async' },
    checkpoint_interval: { ...duration, default: '1s' },
    checkpoint_records: { type: 'integer', minimum: 1, maximum: 10000000, default: 10000 },
    max_pending: { ...duration, default: '30s' },
    sync_max_response_bytes: { ...size, default: '8MiB' },
    public_read: { type: 'boolean', default: false },
    origin_keys: {
      type: 'object',
      propertyNames: { pattern: '^[A-Za-z0-9_.-]{1,64}$' },
      additionalProperties: { type: 'string', minLength: 1 },
      default: {},
    },
  },
  default: {},
} as const;

const pq = {
  type: 'object',
  additionalProperties: false,
  properties: {
    enabled: { type: 'boolean', default: true },
    keys_path: { type: 'string', pattern: '^/[^\\s?#]*$', default: '/.well-known/ohttp-keys' },
    rotate_every: { ...duration, default: '24h' },
    grace: { ...duration, default: '24h' },
    max_request_bytes: { ...size, default: '16MiB' },
    max_response_bytes: { ...size, default: '16MiB' },
    replay_window: { ...duration, default: 0 },
    // Worker threads that open envelopes (pq/pool.ts); 0 opens them on the event loop.
    workers: { type: 'integer', minimum: 0, maximum: 64, default: availableParallelism() },
  },
  default: {},
} as const;

export const CONFIG_SCHEMA = {
  $id: 'https://http-cage.dev/schema/config.json',
  type: 'object',
  additionalProperties: false,
  required: ['routes'],
  properties: {
    listen: { ...hostPort, default: '127.0.0.1:8080' },
    tls: {
      type: 'object',
      additionalProperties: false,
      required: ['cert', 'key'],
      properties: { cert: { type: 'string', minLength: 1 }, key: { type: 'string', minLength: 1 } },
    },
    admin: {
      type: 'object',
      additionalProperties: false,
      properties: {
        listen: { ...hostPort, default: '127.0.0.1:2019' },
        token: { type: 'string', minLength: 1 },
        enabled: { type: 'boolean', default: true },
      },
      default: {},
    },
    data_dir: { type: 'string', minLength: 1, default: '.cage' },
    trusted_proxies: { type: 'array', items: { type: 'string', format: 'cidr' }, default: [] },
    limits: {
      type: 'object',
      additionalProperties: false,
      properties: {
        max_header_bytes: { ...size, default: '16KiB' },
      },
      default: {},
    },
    log: {
      type: 'object',
      additionalProperties: false,
      properties: {
        level: { enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], default: 'info' },
        access: { type: 'boolean', default: true },
        file: { type: 'string', minLength: 1 },
      },
      default: {},
    },
    shutdown_grace: { ...duration, default: '30s' },
    audit,
    pq,
    identity: IDENTITY_SCHEMA,
    regions: REGIONS_SCHEMA,
    policies: POLICIES_SCHEMA,
    ratelimit: RATELIMIT_SCHEMA,
    zk: ZK_SCHEMA,
    chain: CHAIN_SCHEMA,
    routes: { type: 'array', items: route, minItems: 1 },
  },
} as const;
