/**
 * Anonymous membership in the cage (issue 7, gateway side): the verifier's worker pool, the
 * groups and the nullifier store under `<data_dir>/zk/`, the ZK identify stage for `require_zk`
 * routes (gateway/zk/stage.ts), and the group admin API:
 *
 *   GET    /api/v1/zk/groups                          list: id, members, size, root
 *   POST   /api/v1/zk/groups                          {"id", "members"?: ["<decimal commitment>", …]} → 201
 *   GET    /api/v1/zk/groups/{id}                     the group export a client proves from (circuits/group.ts)
 *   DELETE /api/v1/zk/groups/{id}
 *   POST   /api/v1/zk/groups/{id}/members             {"commitments": [...]} → new root, leaf indices
 *   DELETE /api/v1/zk/groups/{id}/members/{commitment}
 *   GET    /api/v1/zk/groups/{id}/roots               accepted roots, newest first
 *
 * Every group change (and so every root change) is an audit record (route `(admin)`), like
 * notary registry changes. Request bodies come from an admin token holder, still parsed strictly.
 */
import { join } from 'node:path';
import type { Logger } from 'pino';
import { epochAt } from '../circuits/field.js';
import type { Group } from '../circuits/group.js';
import { ZkVerifier } from '../circuits/verifier.js';
import { CageError } from '../core/errors.js';
import { adminChangeExchange, type AdminHandler, type AdminRequest } from './admin.js';
import type { ZkConfig } from './config/zk.js';
import type { Exchange } from './exchange.js';
import { GroupStore } from './zk/groups.js';
import { NullifierStore } from './zk/nullifiers.js';
import { fieldHex, ZkStage, type ZkParts } from './zk/stage.js';

type Api = Record<string, Partial<Record<string, AdminHandler>>>;
type Answer = { status: number; body: unknown };

const MAX_COMMITMENTS_PER_CALL = 10_000;

function badRequest(message: string): CageError {
  return new CageError({ code: 'ZK_BAD_GROUP', message });
}

function parseBody(body: string, allowed: readonly string[]): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(body);
  } catch {
    throw badRequest('the request body must be a JSON object');
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw badRequest('the request body must be a JSON object');
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!allowed.includes(k)) throw badRequest(`unknown field ${JSON.stringify(k.slice(0, 32))} (allowed: ${allowed.join(', ')})`);
  return o;
}

function commitment(v: unknown): bigint {
  if (typeof v !== 'string' || !/^[1-9][0-9]{0,77}$/.test(v)) throw badRequest('a commitment is a decimal string (what `cage zk identity new` prints)');
  return BigInt(v);
}

function commitments(v: unknown, name: string): bigint[] {
  if (v === undefined) return [];
  if (!Array.isArray(v) || v.length > MAX_COMMITMENTS_PER_CALL) throw badRequest(`${name} must be an array of at most ${MAX_COMMITMENTS_PER_CALL} commitments`);
  return v.map(commitment);
}

function summary(g: Group): unknown {
  return { id: g.id, members: g.memberCount, size: g.size, root: g.root.toString(), root_hex: fieldHex(g.root) };
}

export interface ZkServiceOptions {
  /** Clock, Unix ms (tests move it across epochs). */
  now?: () => number;
  /** Verification key (tests); default read from config.artifactsDir / circuits/build. */
  verifier?: ZkVerifier;
}

export class ZkService {
  private recordChange: ((ex: Exchange, body: string) => void) | null = null;
  private config: ZkConfig;

  private constructor(
    private readonly parts: ZkParts,
    config: ZkConfig,
  ) {
    this.config = config;
  }

  static async open(dataDir: string, config: ZkConfig, logger: Logger, opts: ZkServiceOptions = {}): Promise<ZkService> {
    const now = opts.now ?? Date.now;
    const dir = join(dataDir, 'zk');
    const groups = await GroupStore.open(join(dir, 'groups'), config.rootHistory);
    const nullifiers = await NullifierStore.open(join(dir, 'nullifiers'), config.epochSeconds, epochAt(now(), config.epochSeconds));
    let verifier = opts.verifier;
    try {
      verifier ??= await ZkVerifier.create({ artifactsDir: config.artifactsDir, pool: { size: config.workers, maxQueue: config.maxQueue, onError: (err) => logger.error({ err }, 'zk: verification worker failure') } });
    } catch (err) {
      await nullifiers.close();
      throw err;
    }
    logger.info({ groups: groups.all().length, sessions: nullifiers.sessionCount, workers: config.workers }, 'zk: anonymous membership on');
    return new ZkService({ verifier, groups, nullifiers, now }, config);
  }

  get groups(): GroupStore {
    return this.parts.groups;
  }

  get nullifiers(): NullifierStore {
    return this.parts.nullifiers;
  }

  /** The stage for this config's require_zk routes (undefined: none). Settings that need a restart are reported by `restartNeeded`. */
  stage(config: ZkConfig): ZkStage | undefined {
    return config.routes.size === 0 ? undefined : new ZkStage(this.parts, config);
  }

  /** What in `next` only takes effect on restart (the pool, the epoch length, the root history), or undefined. */
  restartNeeded(next: ZkConfig): string | undefined {
    const c = this.config;
    if (next.workers !== c.workers || next.maxQueue !== c.maxQueue || next.artifactsDir !== c.artifactsDir || next.epochSeconds !== c.epochSeconds || next.rootHistory !== c.rootHistory) {
      return 'zk.workers, zk.max_queue, zk.artifacts, zk.epoch and zk.root_history changes take effect on restart';
    }
    return undefined;
  }

  /** The reloaded config is in force (the stage already runs with it). */
  configure(next: ZkConfig): void {
    this.config = next;
  }

  /** Where group changes are recorded (the audit log, as admin exchanges). */
  attach(recordChange: (ex: Exchange, body: string) => void): void {
    this.recordChange = recordChange;
  }

  async close(): Promise<void> {
    await this.parts.nullifiers.close();
    await this.parts.verifier.close();
  }

  /** Runs a change, then records it (refused ones too) as an audit record. */
  private async change(req: AdminRequest, status: number, f: () => Promise<unknown>): Promise<Answer> {
    let answer: Answer;
    try {
      answer = { status, body: await f() };
    } catch (err) {
      const e = err instanceof CageError ? err : new CageError({ code: 'ZK_STORE_IO', message: 'the group change failed', cause: err });
      this.record(req, e.status, JSON.stringify({ error: { code: e.code } }), e.code);
      throw e;
    }
    this.record(req, answer.status, JSON.stringify(answer.body), '');
    return answer;
  }

  private record(req: AdminRequest, status: number, body: string, code: string): void {
    this.recordChange?.(adminChangeExchange(req, status, body, code), body);
  }

  api(): Api {
    const groups = this.parts.groups;
    return {
      '/zk/groups': {
        GET: async () => ({ status: 200, body: { groups: groups.all().map(summary) } }),
        POST: async (req) =>
          this.change(req, 201, async () => {
            const o = parseBody(req.body, ['id', 'members']);
            if (typeof o.id !== 'string') throw badRequest('id is a required string');
            return summary(await groups.create(o.id, commitments(o.members, 'members')));
          }),
      },
      '/zk/groups/*': {
        GET: async (req) => {
          const [id, sub, extra] = req.rest.split('/');
          const g = groups.require(id!);
          if (sub === undefined) return { status: 200, body: g.toJSON() };
          if (sub === 'roots' && extra === undefined) return { status: 200, body: { id: g.id, roots: g.recentRoots().map((r) => ({ root: r.toString(), root_hex: fieldHex(r) })) } };
          throw new CageError({ code: 'ADMIN_NOT_FOUND', message: `no admin endpoint ${req.path}` });
        },
        POST: async (req) => {
          const [id, sub, extra] = req.rest.split('/');
          if (sub !== 'members' || extra !== undefined) throw new CageError({ code: 'ADMIN_NOT_FOUND', message: `no admin endpoint ${req.path}` });
          return this.change(req, 200, async () => {
            const o = parseBody(req.body, ['commitments']);
            const indices = await groups.add(id!, commitments(o.commitments, 'commitments'));
            return { ...(summary(groups.require(id!)) as object), indices };
          });
        },
        DELETE: async (req) => {
          const [id, sub, c, extra] = req.rest.split('/');
          const gid = id!;
          if (sub === undefined) return this.change(req, 200, async () => (await groups.delete(gid), { deleted: gid }));
          if (sub !== 'members' || c === undefined || extra !== undefined) throw new CageError({ code: 'ADMIN_NOT_FOUND', message: `no admin endpoint ${req.path}` });
          return this.change(req, 200, async () => {
            const index = await groups.remove(gid, commitment(c));
            return { ...(summary(groups.require(gid)) as object), removed: index };
          });
        },
      },
    };
  }
}
