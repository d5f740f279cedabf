/**
 * The `zk` config section (anonymous Groth16 membership, issue 7) and the per-route `require_zk`
 * requirement: their JSON Schema parts (merged into gateway/config/schema.ts) and their
 * normalization into frozen values with ms and bytes. See docs/zk.md (gateway) and docs/config.md.
 */
import { CageError } from '../../core/errors.js';
import { parseDuration, parseSize } from '../../core/units.js';

const duration = { type: ['string', 'number'], format: 'duration' } as const;
const size = { type: ['string', 'number'], format: 'size' } as const;

export const ZK_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    // Off by default: on, the cage needs the circuit's verification key (npm run build:circuits).
    enabled: { type: 'boolean', default: false },
    // Worker threads that verify proofs (circuits/verify-pool.ts); 0 verifies on the event loop (tests only).
    workers: { type: 'integer', minimum: 0, maximum: 64, default: 2 },
    max_queue: { type: 'integer', minimum: 1, maximum: 100000, default: 128 },
    // A folder with verification_key.json; default circuits/build (or CAGE_ZK_ARTIFACTS).
    artifacts: { type: 'string', minLength: 1 },
    // Proofs against any of a group's last N roots are accepted.
    root_history: { type: 'integer', minimum: 1, maximum: 4096, default: 16 },
    epoch: { ...duration, default: '1h' },
    // Accepted |cage clock − proof timestamp| for per-request proofs.
    window: { ...duration, default: '60s' },
    // Default `limit` of session-mode routes (sessions per member per scope and epoch) …
    session_limit: { type: 'integer', minimum: 1, maximum: 1000000, default: 1 },
    // … and of request/any-mode routes (per-request proofs + sessions per member per scope and epoch).
    request_limit: { type: 'integer', minimum: 1, maximum: 1000000, default: 1000 },
    // A body a per-request proof binds is read (up to this) before forwarding.
    max_body_bytes: { ...size, default: '1MiB' },
  },
  default: {},
} as const;

/** Route keys this file owns (merged into the route schema). */
export const ROUTE_ZK_PROPERTIES = {
  require_zk: {
    type: 'object',
    additionalProperties: false,
    required: ['group'],
    properties: {
      group: { type: 'string', pattern: '^[A-Za-z0-9._-]{1,64}$' },
      // Default: the route's name.
      scope: { type: 'string', pattern: '^[A-Za-z0-9._:/@+-]{1,128}$' },
      mode: { enum: ['request', 'session', 'any'], default: 'any' },
      limit: { type: 'integer', minimum: 1, maximum: 1000000 },
    },
  },
} as const;

export interface ZkRouteRequirement {
  route: string;
  group: string;
  scope: string;
  mode: 'request' | 'session' | 'any';
  /** Proofs a member may show per scope and epoch on this route (sessions opened + per-request proofs). */
  limit: number;
}

export interface ZkConfig {
  enabled: boolean;
  workers: number;
  maxQueue: number;
  artifactsDir: string | undefined;
  rootHistory: number;
  epochSeconds: number;
  windowSeconds: number;
  sessionLimit: number;
  requestLimit: number;
  maxBodyBytes: number;
  /** route name → requirement, for routes that set require_zk. */
  routes: ReadonlyMap<string, ZkRouteRequirement>;
}

function invalid(message: string): CageError {
  return new CageError({ code: 'CONFIG_INVALID', message });
}

/* eslint-disable @typescript-eslint/no-explicit-any -- the raw objects were validated against the schema */
export function normalizeZk(raw: any, rawRoutes: readonly any[], routeNames: readonly string[], resolvePath: (p: string) => string, signaturesEnabled: boolean): ZkConfig {
  const z = raw ?? {};
  const epochMs = parseDuration(z.epoch)!;
  if (epochMs < 60_000 || epochMs % 1000 !== 0) throw invalid('zk.epoch: must be whole seconds, at least 1m');
  const windowMs = parseDuration(z.window)!;
  if (windowMs < 1000 || windowMs % 1000 !== 0 || windowMs > epochMs) throw invalid('zk.window: must be whole seconds, at least 1s and at most zk.epoch');
  const routes = new Map<string, ZkRouteRequirement>();
  rawRoutes.forEach((r, i) => {
    const q = r.require_zk;
    if (q === undefined) return;
    const name = routeNames[i]!;
    if (!z.enabled) throw invalid(`routes[${i}].require_zk: set, but zk.enabled is false`);
    if (q.mode !== 'request' && !signaturesEnabled) throw invalid(`routes[${i}].require_zk.mode: ${q.mode} needs session signatures (identity.signatures.enabled)`);
    const limit = q.limit ?? (q.mode === 'session' ? z.session_limit : z.request_limit);
    routes.set(name, Object.freeze({ route: name, group: q.group, scope: q.scope ?? name, mode: q.mode, limit }));
  });
  return Object.freeze({
    enabled: z.enabled,
    workers: z.workers,
    maxQueue: z.max_queue,
    artifactsDir: z.artifacts === undefined ? undefined : resolvePath(z.artifacts),
    rootHistory: z.root_history,
    epochSeconds: epochMs / 1000,
    windowSeconds: windowMs / 1000,
    sessionLimit: z.session_limit,
    requestLimit: z.request_limit,
    maxBodyBytes: parseSize(z.max_body_bytes)!,
    routes,
  });
}
/* eslint-enable @typescript-eslint/no-explicit-any */
