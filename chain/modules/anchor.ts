/**
 * Module `anchor`: transparency-log checkpoints (C2SP tlog-checkpoint, cosigned per tlog-cosignature)
 * become chain facts. A log is registered with its origin and a C2SP tlog-policy naming its key,
 * its notaries (witnesses) and their quorum; each submission is a cosigned checkpoint plus the
 * consistency proof (RFC 9162 §2.1.4) from the last anchored size. The chain verifies the log's
 * signature and the notary quorum (audit/policy.ts `verifyCheckpointPolicy`) and the proof
 * (audit/merkle.ts `verifyConsistency`), and accepts only an append-only extension.
 *
 * Methods (args are JSON, attacker-controlled):
 *   register  {origin, policy}        a new log; the sender becomes its owner
 *   setPolicy {origin, policy}        the owner replaces the policy (key rotation, new notaries)
 *   submit    {checkpoint, proof}     checkpoint = the signed note text; proof = base64 hashes
 * Queries:
 *   checkpoint {origin, height?}      the latest anchored checkpoint, or the latest at or below a height
 *   checkpoint {origin, atLeast}      the smallest anchored checkpoint of size >= atLeast (verifiers)
 *   log {origin} · logs {}
 *
 * Codes: ANCHOR_BAD_ARGS, ANCHOR_LOG_EXISTS, ANCHOR_NOT_OWNER, ANCHOR_UNKNOWN_LOG, ANCHOR_BAD_POLICY,
 * ANCHOR_BAD_SIGNATURE, ANCHOR_QUORUM_NOT_MET, ANCHOR_BAD_PROOF, ANCHOR_ROLLBACK, ANCHOR_FORK.
 * A resubmission of the anchored checkpoint (same size and root) succeeds and changes nothing.
 */
import { parseCheckpoint } from '../../audit/checkpoint.js';
import { verifyConsistency, MAX_PROOF_HASHES } from '../../audit/merkle.js';
import { decodeBase64, encodeBase64, parseNote, MAX_NOTE_BYTES } from '../../audit/note.js';
import { parsePolicy, verifyCheckpointPolicy, type Policy } from '../../audit/policy.js';
import { CageError, isCageError, type CageErrorCode } from '../../core/errors.js';
import type { ChainEvent, ChainModule, StateView, TxContext } from '../module.js';
import { readJson, writeJson } from '../state.js';

const LOG_PREFIX = 'anchor/log/';
const LATEST_PREFIX = 'anchor/latest/';
const HISTORY_PREFIX = 'anchor/history/';
const SIZE_PREFIX = 'anchor/size/';
const MAX_ORIGIN_LENGTH = 256;
const MAX_POLICY_BYTES = 32 * 1024;

/** A registered log. */
export interface AnchoredLog {
  readonly origin: string;
  readonly policy: string;
  readonly owner: string;
  readonly registeredAt: number;
}

/** An anchored checkpoint, as stored and as the `checkpoint` query answers. */
export interface AnchoredCheckpoint {
  readonly origin: string;
  readonly size: number;
  /** base64, as in the checkpoint. */
  readonly rootHash: string;
  /** The signed note text submitted (log signature and cosignatures). */
  readonly checkpoint: string;
  /** Height of the block that anchored it. */
  readonly height: number;
  readonly txHash: string;
  /** Notaries whose cosignatures counted. */
  readonly witnesses: readonly string[];
}

function fail(code: CageErrorCode, message: string): CageError {
  return new CageError({ code, message });
}

function obj(args: unknown, allowed: readonly string[]): Record<string, unknown> {
  if (typeof args !== 'object' || args === null || Array.isArray(args)) throw fail('ANCHOR_BAD_ARGS', 'args must be a JSON object');
  const a = args as Record<string, unknown>;
  for (const k of Object.keys(a)) if (!allowed.includes(k)) throw fail('ANCHOR_BAD_ARGS', `unknown field ${JSON.stringify(k)}`);
  return a;
}

// eslint-disable-next-line no-control-regex -- an origin is one line without control characters (tlog-checkpoint)
const CONTROL_RE = /[\0-\x1f]/;

function origin(v: unknown): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > MAX_ORIGIN_LENGTH || CONTROL_RE.test(v)) {
    throw fail('ANCHOR_BAD_ARGS', `origin must be one line of 1..${MAX_ORIGIN_LENGTH} characters`);
  }
  return v;
}

// Policies are parsed once per distinct text (pure: the result depends only on the text).
const policyCache = new Map<string, Policy>();

function policyFor(text: unknown, forOrigin: string): Policy {
  if (typeof text !== 'string' || text.length > MAX_POLICY_BYTES) throw fail('ANCHOR_BAD_POLICY', `policy must be a tlog-policy text of at most ${MAX_POLICY_BYTES} bytes`);
  let p = policyCache.get(text);
  if (p === undefined) {
    try {
      p = parsePolicy(text);
    } catch (err) {
      throw fail('ANCHOR_BAD_POLICY', (err as Error).message);
    }
    if (policyCache.size > 1024) policyCache.clear();
    policyCache.set(text, p);
  }
  if (!p.logs.some((l) => l.verifier.name === forOrigin)) throw fail('ANCHOR_BAD_POLICY', `policy names no log key for origin ${JSON.stringify(forOrigin)}`);
  return p;
}

function readLog(state: StateView, o: string): AnchoredLog | undefined {
  return readJson<AnchoredLog>(state, LOG_PREFIX + o);
}

function register(state: StateView, ctx: TxContext, args: unknown, update: boolean): ChainEvent[] {
  const a = obj(args, ['origin', 'policy']);
  const o = origin(a.origin);
  policyFor(a.policy, o);
  const existing = readLog(state, o);
  if (!update && existing !== undefined) throw fail('ANCHOR_LOG_EXISTS', `log ${JSON.stringify(o)} is registered`);
  if (update && existing === undefined) throw fail('ANCHOR_UNKNOWN_LOG', `log ${JSON.stringify(o)} is not registered`);
  if (update && existing!.owner !== ctx.sender) throw fail('ANCHOR_NOT_OWNER', `log ${JSON.stringify(o)} belongs to ${existing!.owner}`);
  const log: AnchoredLog = { origin: o, policy: a.policy as string, owner: ctx.sender, registeredAt: existing?.registeredAt ?? ctx.height };
  writeJson(state, LOG_PREFIX + o, log);
  return [{ type: update ? 'anchor.policy' : 'anchor.registered', data: { origin: o, owner: ctx.sender } }];
}

const AUDIT_TO_ANCHOR: Partial<Record<CageErrorCode, CageErrorCode>> = {
  AUDIT_BAD_SIGNATURE: 'ANCHOR_BAD_SIGNATURE',
  AUDIT_QUORUM_NOT_MET: 'ANCHOR_QUORUM_NOT_MET',
  AUDIT_BAD_PROOF: 'ANCHOR_BAD_PROOF',
};

function translate(err: unknown): never {
  if (isCageError(err)) throw fail(AUDIT_TO_ANCHOR[err.code] ?? 'ANCHOR_BAD_ARGS', err.message);
  throw err;
}

function heightKey(height: number): string {
  return height.toString(16).padStart(13, '0');
}

function submit(state: StateView, ctx: TxContext, args: unknown): ChainEvent[] {
  const a = obj(args, ['checkpoint', 'proof']);
  if (typeof a.checkpoint !== 'string' || a.checkpoint.length > MAX_NOTE_BYTES) throw fail('ANCHOR_BAD_ARGS', 'checkpoint must be the signed note text');
  const rawProof = a.proof ?? [];
  if (!Array.isArray(rawProof) || rawProof.length > MAX_PROOF_HASHES) throw fail('ANCHOR_BAD_ARGS', `proof must be an array of at most ${MAX_PROOF_HASHES} base64 hashes`);
  const proof = rawProof.map((h, i) => {
    const b = typeof h === 'string' ? decodeBase64(h) : undefined;
    if (b === undefined || b.length !== 32) throw fail('ANCHOR_BAD_ARGS', `proof[${i}] is not a base64 SHA-256 hash`);
    return b;
  });
  let claimed: string;
  try {
    claimed = parseCheckpoint(parseNote(a.checkpoint).text).origin;
  } catch (err) {
    translate(err);
  }
  const log = readLog(state, claimed);
  if (log === undefined) throw fail('ANCHOR_UNKNOWN_LOG', `no registered log with origin ${JSON.stringify(claimed)}`);
  let verdict;
  try {
    verdict = verifyCheckpointPolicy(policyFor(log.policy, claimed), a.checkpoint, claimed);
  } catch (err) {
    translate(err);
  }
  const cp = verdict.checkpoint;
  const latest = readJson<AnchoredCheckpoint>(state, LATEST_PREFIX + claimed);
  if (latest !== undefined) {
    const oldRoot = decodeBase64(latest.rootHash)!;
    if (cp.size < latest.size) throw fail('ANCHOR_ROLLBACK', `size ${cp.size} is below the anchored size ${latest.size}`);
    if (cp.size === latest.size) {
      if (!cp.rootHash.equals(oldRoot)) throw fail('ANCHOR_FORK', `size ${cp.size} is anchored with another root hash`);
      return [{ type: 'anchor.unchanged', data: { origin: claimed, size: cp.size } }];
    }
    try {
      verifyConsistency(latest.size, cp.size, proof, oldRoot, cp.rootHash);
    } catch (err) {
      translate(err);
    }
  }
  const anchored: AnchoredCheckpoint = {
    origin: claimed,
    size: cp.size,
    rootHash: encodeBase64(cp.rootHash),
    checkpoint: a.checkpoint,
    height: ctx.height,
    txHash: Buffer.from(ctx.txHash).toString('hex'),
    witnesses: verdict.witnesses,
  };
  writeJson(state, LATEST_PREFIX + claimed, anchored);
  writeJson(state, `${HISTORY_PREFIX}${claimed}/${heightKey(ctx.height)}`, anchored);
  writeJson(state, `${SIZE_PREFIX}${claimed}/${heightKey(cp.size)}`, anchored);
  return [{ type: 'anchor.anchored', data: { origin: claimed, size: cp.size, rootHash: anchored.rootHash, previousSize: latest?.size ?? 0 } }];
}

/** The smallest anchored checkpoint of a log whose size is at least `size`. */
export function anchoredAtLeast(state: StateView, o: string, size: number): AnchoredCheckpoint | null {
  const from = heightKey(size);
  const prefix = `${SIZE_PREFIX}${o}/`;
  for (const [k, v] of state.entries(prefix)) {
    if (k.slice(prefix.length) >= from) return JSON.parse(Buffer.from(v).toString('utf8')) as AnchoredCheckpoint;
  }
  return null;
}

/** The latest anchored checkpoint of a log, or the latest anchored at or below `height`. */
export function anchoredCheckpoint(state: StateView, o: string, height?: number): AnchoredCheckpoint | null {
  if (height === undefined) return readJson<AnchoredCheckpoint>(state, LATEST_PREFIX + o) ?? null;
  let best: AnchoredCheckpoint | null = null;
  const limit = heightKey(height);
  const prefix = `${HISTORY_PREFIX}${o}/`;
  for (const [k, v] of state.entries(prefix)) {
    if (k.slice(prefix.length) > limit) break;
    best = JSON.parse(Buffer.from(v).toString('utf8')) as AnchoredCheckpoint;
  }
  return best;
}

function queryParams(params: unknown): Record<string, unknown> {
  if (Array.isArray(params)) params = params[0];
  if (params === undefined || params === null) return {};
  if (typeof params !== 'object') throw fail('ANCHOR_BAD_ARGS', 'query params must be an object');
  return params as Record<string, unknown>;
}

export const anchorModule: ChainModule = {
  name: 'anchor',
  initGenesis(state, genesis) {
    // Optional genesis section: {"logs": [{"origin", "policy", "owner"}]}.
    if (genesis === undefined || genesis === null) return;
    const g = obj(genesis, ['logs']);
    if (!Array.isArray(g.logs)) throw fail('ANCHOR_BAD_ARGS', 'anchor genesis: logs must be an array');
    for (const entry of g.logs) {
      const e = obj(entry, ['origin', 'policy', 'owner']);
      const o = origin(e.origin);
      policyFor(e.policy, o);
      if (typeof e.owner !== 'string') throw fail('ANCHOR_BAD_ARGS', 'anchor genesis: owner must be a did:key');
      writeJson(state, LOG_PREFIX + o, { origin: o, policy: e.policy as string, owner: e.owner, registeredAt: 0 } satisfies AnchoredLog);
    }
  },
  deliverTx(state, ctx, method, args) {
    if (method === 'submit') return submit(state, ctx, args);
    if (method === 'register') return register(state, ctx, args, false);
    if (method === 'setPolicy') return register(state, ctx, args, true);
    throw new CageError({ code: 'CHAIN_UNKNOWN_METHOD', message: `anchor has no method ${JSON.stringify(method)}` });
  },
  query(state, method, params) {
    const p = queryParams(params);
    if (method === 'checkpoint') {
      for (const k of Object.keys(p)) if (k !== 'origin' && k !== 'height' && k !== 'atLeast') throw fail('ANCHOR_BAD_ARGS', `unknown field ${JSON.stringify(k)}`);
      for (const k of ['height', 'atLeast'] as const) {
        if (p[k] !== undefined && (!Number.isSafeInteger(p[k]) || (p[k] as number) < 0)) throw fail('ANCHOR_BAD_ARGS', `${k} must be a non-negative integer`);
      }
      if (p.atLeast !== undefined) return anchoredAtLeast(state, origin(p.origin), p.atLeast as number);
      return anchoredCheckpoint(state, origin(p.origin), p.height as number | undefined);
    }
    if (method === 'log') return readLog(state, origin(p.origin)) ?? null;
    if (method === 'logs') return [...state.entries(LOG_PREFIX)].map(([, v]) => JSON.parse(Buffer.from(v).toString('utf8')) as AnchoredLog);
    throw new CageError({ code: 'CHAIN_UNKNOWN_METHOD', message: `anchor has no query ${JSON.stringify(method)}` });
  },
};
