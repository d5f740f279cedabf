/**
 * The `chain` config section (issue 6): where the cage anchors its audit log's checkpoints. By
 * default (`mode: embedded`) the cage runs a single-validator QBFT chain in-process, stored under
 * `<data_dir>/chain`; `mode: external` joins an existing validator set through its JSON-RPC URL
 * with the cage's own account key; `mode: off` anchors nothing. See docs/chain.md, docs/config.md.
 */
import { CageError } from '../../core/errors.js';
import { parseDuration, parseHostPort } from '../../core/units.js';

const duration = { type: ['string', 'number'], format: 'duration' } as const;

export const CHAIN_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    mode: { enum: ['embedded', 'external', 'off'], default: 'embedded' },
    // external: the JSON-RPC URL of a validator (http(s)://host:port/rpc).
    rpc: { type: 'string', minLength: 1 },
    // The cage's account key file (chain/keys.ts format); default <data_dir>/chain/account.key, made once.
    key: { type: 'string', minLength: 1 },
    // Submit an anchor transaction for each newly published checkpoint (batched: the newest one).
    anchor: { type: 'boolean', default: true },
    // How often the anchorer looks for a newer published checkpoint.
    anchor_interval: { ...duration, default: '2s' },
    // embedded: the wait between blocks (empty blocks are made at this pace when idle).
    block_period: { ...duration, default: '1s' },
    // embedded: serve the chain's JSON-RPC (/rpc) on this address too (off by default).
    rpc_listen: { type: 'string', minLength: 1 },
    // Bank Mesh metering: usage per identity per epoch, posted as signed usage reports (gateway/metering.ts).
    metering: {
      type: 'object',
      additionalProperties: false,
      required: ['payer'],
      properties: {
        enabled: { type: 'boolean', default: true },
        epoch: { ...duration, default: '1h' },
        price: { type: 'string', pattern: '^(0|[1-9][0-9]{0,30})$', default: '1' },
        payer: { type: 'string', pattern: '^did:key:z[1-9A-HJ-NP-Za-km-z]{40,60}$' },
        payers: { type: 'object', propertyNames: { minLength: 1, maxLength: 256 }, additionalProperties: { type: 'string', pattern: '^did:key:z[1-9A-HJ-NP-Za-km-z]{40,60}$' }, default: {} },
        callers_pay: { type: 'boolean', default: true },
      },
    },
    // Read each DID caller's rate class from the chain (FLX holders get a priority class), cached this long.
    rate_classes: { type: 'boolean', default: true },
    rate_class_ttl: { ...duration, default: '60s' },
  },
  default: {},
} as const;

export interface ChainConfig {
  readonly mode: 'embedded' | 'external' | 'off';
  readonly rpc: string | undefined;
  /** Absolute path, or undefined for the default under data_dir. */
  readonly keyFile: string | undefined;
  readonly anchor: boolean;
  readonly anchorIntervalMs: number;
  readonly blockPeriodMs: number;
  readonly rpcListen: string | undefined;
  readonly metering: { readonly epochMs: number; readonly price: bigint; readonly payer: string; readonly payers: ReadonlyMap<string, string>; readonly callersPay: boolean } | undefined;
  readonly rateClasses: boolean;
  readonly rateClassTtlMs: number;
}

function invalid(message: string): CageError {
  return new CageError({ code: 'CONFIG_INVALID', message });
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- validated by CHAIN_SCHEMA before this runs
export function normalizeChain(c: any, resolvePath: (p: string) => string): ChainConfig {
  if (c.mode === 'external' && c.rpc === undefined) throw invalid('chain.rpc: required when chain.mode is external');
  if (c.mode !== 'external' && c.rpc !== undefined) throw invalid('chain.rpc: only for chain.mode external');
  if (c.rpc !== undefined && !/^https?:\/\/[^\s]+$/.test(c.rpc)) throw invalid('chain.rpc: must be an http(s) URL');
  if (c.rpc_listen !== undefined && (c.mode !== 'embedded' || parseHostPort(c.rpc_listen) === undefined)) throw invalid('chain.rpc_listen: a host:port, only for chain.mode embedded');
  const blockPeriodMs = parseDuration(c.block_period)!;
  if (blockPeriodMs < 1) throw invalid('chain.block_period: must be at least 1ms');
  return Object.freeze({
    mode: c.mode,
    rpc: c.rpc,
    keyFile: c.key === undefined ? undefined : resolvePath(c.key),
    anchor: c.anchor,
    anchorIntervalMs: Math.max(10, parseDuration(c.anchor_interval)!),
    blockPeriodMs,
    rpcListen: c.rpc_listen,
    metering:
      c.metering === undefined || !c.metering.enabled
        ? undefined
        : Object.freeze({ epochMs: meteringEpoch(c.metering.epoch), price: BigInt(c.metering.price), payer: c.metering.payer, payers: new Map(Object.entries(c.metering.payers as Record<string, string>)), callersPay: c.metering.callers_pay }),
    rateClasses: c.rate_classes,
    rateClassTtlMs: parseDuration(c.rate_class_ttl)!,
  });
}

function meteringEpoch(v: unknown): number {
  const ms = parseDuration(v)!;
  if (ms < 1000) throw invalid('chain.metering.epoch: must be at least 1s');
  return ms;
}
