/**
 * The cage side of the DID notaries: the registry (which notaries witness this log, the k-of-n
 * quorum; `<data_dir>/notaries.json`), its admin API, and the witnessing of every checkpoint.
 * Each new checkpoint goes to every notary in parallel with its consistency proof (C2SP
 * tlog-witness, notary/checkpointer.ts), off the request path; it is published (`checkpoint`,
 * proofs) only once the quorum has cosigned it. With no notary registered the log publishes its
 * own signature alone. Every registry change is itself an audit record.
 * Request bodies here come from an admin token holder, still parsed strictly.
 */
import type { Logger } from 'pino';
import { Gauge, type Registry } from 'prom-client';
import type { AuditLog } from '../audit/io/audit-log.js';
import { CageError, isCageError } from '../core/errors.js';
import { WitnessCoordinator, type WitnessResult } from '../notary/checkpointer.js';
import { NotaryRegistry, loadRegistry, registerNotary, saveRegistry } from '../notary/registry.js';
import { adminChangeExchange, type AdminHandler, type AdminRequest } from './admin.js';
import type { Exchange } from './exchange.js';

type Api = Record<string, Partial<Record<string, AdminHandler>>>;

function parseJson(body: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(body);
  } catch {
    throw new CageError({ code: 'NOTARY_BAD_REGISTRY', message: 'the request body must be a JSON object' });
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new CageError({ code: 'NOTARY_BAD_REGISTRY', message: 'the request body must be a JSON object' });
  return v as Record<string, unknown>;
}

function optionalInt(o: Record<string, unknown>, key: string): number | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw new CageError({ code: 'NOTARY_BAD_QUORUM', message: `${key} must be an integer` });
  return v;
}

function onlyKeys(o: Record<string, unknown>, allowed: readonly string[]): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) throw new CageError({ code: 'NOTARY_BAD_REGISTRY', message: `unknown field ${JSON.stringify(k)} (allowed: ${allowed.join(', ')})` });
  }
}

export class NotaryService {
  private registry: NotaryRegistry;
  private readonly coordinator: WitnessCoordinator;
  /** Registry changes run one at a time (each is a read-modify-write of the file). */
  private changing: Promise<unknown> = Promise.resolve();
  private recordChange: ((ex: Exchange, body: string) => void) | null = null;
  private lastQuorumMet: boolean | null = null;
  private closed = false;

  private constructor(
    private readonly file: string,
    private readonly log: AuditLog,
    private readonly logger: Logger,
    registry: NotaryRegistry,
  ) {
    this.registry = registry;
    this.coordinator = new WitnessCoordinator({
      logVerifier: log.verifierKey,
      consistency: (oldSize, newSize) => log.proveConsistency(oldSize, newSize),
      registry: () => this.registry,
    });
    log.setWitness((note, size) => this.witness(note, size));
  }

  static async open(file: string, log: AuditLog, logger: Logger): Promise<NotaryService> {
    return new NotaryService(file, log, logger, await loadRegistry(file));
  }

  /** Metrics on the cage's registry, and where registry changes are recorded. */
  attach(metrics: Registry, recordChange: (ex: Exchange, body: string) => void): void {
    this.recordChange = recordChange;
    const m = () => this.coordinator.metrics();
    const perNotary = (name: string, help: string, value: (n: ReturnType<typeof m>['notaries'][number]) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ['notary'] as const,
        registers: [metrics],
        collect() {
          this.reset();
          for (const n of m().notaries) this.set({ notary: n.did }, value(n));
        },
      });
    perNotary('cage_notary_last_latency_seconds', 'Latency of the last add-checkpoint answer, per notary.', (n) => (n.lastLatencyMs < 0 ? 0 : n.lastLatencyMs / 1000));
    perNotary('cage_notary_requests_total', 'add-checkpoint requests sent, per notary.', (n) => n.requests);
    perNotary('cage_notary_failures_total', 'add-checkpoint requests that failed, per notary.', (n) => n.failures);
    perNotary('cage_notary_cosigned_size', 'Largest tree size the notary is known to have cosigned.', (n) => n.lastSize);
    const reg = (): NotaryRegistry => this.registry;
    const lag = (): number => this.lagRecords();
    const lagSeconds = (): number => this.lagSeconds();
    new Gauge({
      name: 'cage_notary_quorum',
      help: 'Cosignatures a checkpoint needs before it is published (k of n; 0: no notaries).',
      registers: [metrics],
      collect() {
        this.set(reg().quorum);
      },
    });
    new Gauge({
      name: 'cage_notary_quorum_lag_records',
      help: 'Records signed by the log but not yet covered by a quorum-cosigned checkpoint.',
      registers: [metrics],
      collect() {
        this.set(reg().quorum === 0 ? 0 : lag());
      },
    });
    new Gauge({
      name: 'cage_notary_quorum_lag_seconds',
      help: 'Age of the oldest log-signed checkpoint still waiting for its quorum.',
      registers: [metrics],
      collect() {
        this.set(reg().quorum === 0 ? 0 : lagSeconds());
      },
    });
  }

  /**
   * Stops witnessing. The log keeps this hook: a checkpoint signed from now on (the final one at
   * shutdown) is not published while notaries are registered, rather than published with the
   * log's signature alone; the next start witnesses it.
   */
  close(): void {
    this.closed = true;
  }

  private lagRecords(): number {
    const signed = this.log.latestSigned()?.size ?? 0;
    return Math.max(0, signed - (this.log.latestCheckpoint()?.size ?? 0));
  }

  private lagSeconds(): number {
    return this.coordinator.metrics().quorumLagSeconds;
  }

  /**
   * The witness hook of the audit log: undefined = no notaries, null = quorum not met. It settles
   * as soon as the quorum has cosigned (a slow or dead notary keeps being retried in the
   * background, and a newer checkpoint supersedes it), so publication never waits for the slowest.
   */
  private witness(note: string, size: number): Promise<string | null | undefined> {
    if (this.registry.notaries.length === 0) return Promise.resolve(undefined);
    if (this.closed) return Promise.resolve(null);
    return new Promise((resolve) => {
      let settled = false;
      const settle = (r: WitnessResult | null): void => {
        if (settled) return;
        settled = true;
        const met = r !== null && r.quorumMet;
        if (met !== this.lastQuorumMet) {
          this.lastQuorumMet = met;
          if (met) this.logger.info({ size, cosigners: r!.cosigners }, 'notary quorum met: cosigned checkpoints are published');
          else {
            this.logger.warn(
              { size, quorum: this.registry.quorum, cosigners: r?.cosigners ?? [], failed: r?.outcomes.filter((o) => o.status === 'failed').map((o) => o.did) ?? [] },
              'notary quorum not met: checkpoints stay unpublished until enough notaries cosign',
            );
          }
        }
        resolve(met ? r!.note : null);
      };
      this.coordinator.witness(note, { size, onQuorum: settle }).then(settle, (err: unknown) => {
        this.logger.error({ err, size }, 'witnessing failed');
        settle(null);
      });
    });
  }

  /** For GET /api/v1/audit: the quorum, its lag and each notary's state. */
  status(): unknown {
    const m = this.coordinator.metrics();
    return {
      quorum: this.registry.quorum,
      notaries: this.registry.notaries.length,
      quorum_met: this.registry.quorum === 0 ? null : this.lastQuorumMet,
      lag_records: this.registry.quorum === 0 ? 0 : this.lagRecords(),
      lag_seconds: this.registry.quorum === 0 ? 0 : this.lagSeconds(),
      per_notary: m.notaries.map((n) => ({ did: n.did, name: n.name, cosigned_size: n.lastSize, last_latency_ms: n.lastLatencyMs, failures: n.failures, last_error: n.lastError ?? null })),
    };
  }

  private view(): unknown {
    return { quorum: this.registry.quorum, notaries: this.registry.notaries.map((n) => ({ did: n.did, name: n.name, url: n.url, verifier_key: n.verifierKey })) };
  }

  /** The DIDs of the registered notaries. */
  dids(): string[] {
    return this.registry.notaries.map((n) => n.did);
  }

  /**
   * The chain's Court dropped this notary (it cosigned both sides of a fork): remove it from the
   * registry, lowering the quorum if it must, recorded in the audit log like an admin change but
   * by `court`. False when it is not (or no longer) registered.
   */
  async dropByCourt(did: string, caseRef: string): Promise<boolean> {
    if (this.registry.get(did) === undefined) return false;
    const req: AdminRequest = { method: 'DELETE', path: `/api/v1/notaries/${encodeURIComponent(did)}`, body: JSON.stringify({ dropped_by: 'court', case: caseRef }), query: new URLSearchParams(), rest: did };
    await this.change(req, 200, async (reg) => reg.remove(did, { quorum: Math.min(reg.quorum, reg.notaries.length - 1) }), 'court');
    return true;
  }

  /** Runs one registry change: compute the next registry, save it durably, swap, record it. */
  private change(req: AdminRequest, status: number, next: (reg: NotaryRegistry) => Promise<NotaryRegistry>, who = 'admin-token'): Promise<{ status: number; body: unknown }> {
    const run = this.changing.then(async () => {
      let answer: { status: number; body: unknown };
      try {
        const reg = await next(this.registry);
        await saveRegistry(this.file, reg);
        this.registry = reg;
        answer = { status, body: this.view() };
      } catch (err) {
        const e = isCageError(err) ? err : new CageError({ code: 'NOTARY_INTERNAL', message: 'the registry change failed', cause: err });
        this.record(req, e.status, JSON.stringify({ error: { code: e.code } }), e.code, who);
        throw e;
      }
      this.record(req, answer.status, JSON.stringify(answer.body), '', who);
      return answer;
    });
    this.changing = run.catch(() => undefined);
    return run;
  }

  private record(req: AdminRequest, status: number, body: string, code: string, who: string): void {
    this.recordChange?.(adminChangeExchange(req, status, body, code, who), body);
  }

  api(): Api {
    const did = (req: AdminRequest): string => decodeURIComponent(req.rest);
    return {
      '/notaries': {
        GET: async () => ({ status: 200, body: this.view() }),
        POST: async (req) =>
          this.change(req, 201, (reg) => {
            const o = parseJson(req.body);
            onlyKeys(o, ['did', 'url', 'name', 'quorum']);
            if (typeof o.did !== 'string' || typeof o.url !== 'string') throw new CageError({ code: 'NOTARY_BAD_REGISTRY', message: 'did and url are required strings' });
            if (o.name !== undefined && typeof o.name !== 'string') throw new CageError({ code: 'NOTARY_BAD_REGISTRY', message: 'name must be a string' });
            return registerNotary(reg, { did: o.did, url: o.url, name: o.name as string | undefined }, { quorum: optionalInt(o, 'quorum') });
          }),
      },
      '/notaries/quorum': {
        PUT: async (req) =>
          this.change(req, 200, async (reg) => {
            const o = parseJson(req.body);
            onlyKeys(o, ['quorum']);
            const k = optionalInt(o, 'quorum');
            if (k === undefined) throw new CageError({ code: 'NOTARY_BAD_QUORUM', message: 'quorum is required' });
            return reg.withQuorum(k);
          }),
      },
      '/notaries/policy': {
        GET: async () => {
          if (this.registry.notaries.length === 0) throw new CageError({ code: 'NOTARY_BAD_QUORUM', message: 'no notaries are registered: there is no witness policy to export' });
          return { status: 200, body: this.registry.toPolicy(this.log.verifierKey), contentType: 'text/plain; charset=utf-8' };
        },
      },
      '/notaries/*': {
        GET: async (req) => {
          const entry = this.registry.get(did(req));
          if (entry === undefined) throw new CageError({ code: 'NOTARY_UNKNOWN_NOTARY', message: `no notary ${did(req)}` });
          const stats = this.coordinator.metrics().notaries.find((n) => n.did === entry.did);
          return { status: 200, body: { did: entry.did, name: entry.name, url: entry.url, verifier_key: entry.verifierKey, stats: stats ?? null } };
        },
        DELETE: async (req) =>
          this.change(req, 200, async (reg) => {
            const q = req.query.get('quorum');
            return reg.remove(did(req), { quorum: q === null ? undefined : Number(q) });
          }),
      },
    };
  }
}
