/**
 * A running cage: the proxy listener, the admin listener, logs and metrics, wired together, with
 * reload (a valid config takes over; an invalid one is refused and the old one keeps running) and
 * graceful shutdown. Signals are the CLI's business, so tests can run several cages in a process.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { CageError, isCageError } from '../core/errors.js';
import { AuditLog } from '../audit/io/audit-log.js';
import { decodeRecord, recordToJson } from '../audit/record.js';
import { AdminServer, type AdminHandler } from './admin.js';
import { ExchangeAuditor } from './audit.js';
import { PqFront } from './ohttp.js';
import { NotaryService } from './notaries.js';
import { ChainService } from './anchor.js';
import { loadConfigFile, parseConfigText, type CageConfig } from './config/load.js';
import type { Exchange } from './exchange.js';
import { Gateway } from './gateway.js';
import { AccessLog, closeLogger, createLogger } from './log.js';
import { GatewayMetrics } from './metrics.js';
import type { Recorder, Stage } from './pipeline.js';
import { Security } from './security.js';
import type { ClassSourceRef } from './rate-classes.js';
import { ZkService } from './zk.js';

export interface CageOptions {
  config: CageConfig;
  /** The file the config came from; `reload()` without text re-reads it. */
  configFile?: string;
  logger?: Logger;
  stages?: readonly Stage[];
}

/** Where the audit log lives under data_dir. */
export function auditDir(config: CageConfig): string {
  return join(config.dataDir, 'audit');
}

export class Cage {
  readonly gateway: Gateway;
  readonly metrics: GatewayMetrics;
  readonly logger: Logger;
  admin: AdminServer | undefined;
  config: CageConfig;
  adminToken = '';
  private readonly accessLog: Recorder;
  private readonly recorders: Recorder[] = [];
  private stopping = false;
  private reloading: Promise<unknown> = Promise.resolve();

  /** The audit log (none when `audit.enabled` is false). */
  readonly audit: AuditLog | undefined;
  private readonly auditor: ExchangeAuditor;

  /** Identity, rate limits and policies: the decision stages of the current config. */
  security: Security;

  /** The post-quantum envelope front (none when `pq.enabled` is false). */
  readonly pq: PqFront | undefined;
  /** The DID notaries witnessing the audit log (none when the log is off). */
  readonly notaries: NotaryService | undefined;
  /** The chain the audit log is anchored on (embedded or external; none with chain.mode off). */
  chain: ChainService | undefined;
  /** Anonymous membership: groups, nullifiers, the proof verification pool (none when `zk.enabled` is false). */
  readonly zk: ZkService | undefined;

  private constructor(
    private readonly opts: CageOptions,
    logger: Logger,
    audit: AuditLog | undefined,
    pq: PqFront | undefined,
    notaries: NotaryService | undefined,
    security: Security,
    zk: ZkService | undefined,
  ) {
    this.zk = zk;
    this.config = opts.config;
    this.security = security;
    this.logger = logger;
    this.audit = audit;
    this.pq = pq;
    this.notaries = notaries;
    this.auditor = new ExchangeAuditor(audit ?? null, opts.config);
    this.accessLog = new AccessLog(this.logger);
    this.gateway = new Gateway(opts.config, { logger: this.logger, recorders: this.recorders, stages: [...security.stages, ...(opts.stages ?? [])], auditor: this.auditor, pq });
    this.metrics = new GatewayMetrics(
      () => this.gateway.inflight,
      () => this.gateway.registry.all(),
      () => this.gateway.ws.count,
    );
    this.setRecorders(opts.config);
  }

  static async start(opts: CageOptions): Promise<Cage> {
    mkdirSync(opts.config.dataDir, { recursive: true });
    const logger = opts.logger ?? createLogger(opts.config.log);
    let audit: AuditLog | undefined;
    let pq: PqFront | undefined;
    let notaries: NotaryService | undefined;
    let security: Security | undefined;
    let zk: ZkService | undefined;
    let cage: Cage;
    const classRef: ClassSourceRef = { source: undefined };
    try {
      if (opts.config.zk.enabled) zk = await ZkService.open(opts.config.dataDir, opts.config.zk, logger);
      security = Security.build(opts.config, logger, undefined, zk, classRef);
      audit = await openAudit(opts.config, logger);
      if (audit !== undefined) notaries = await NotaryService.open(join(opts.config.dataDir, 'notaries.json'), audit, logger);
      if (opts.config.pq.enabled) {
        pq = await PqFront.open(join(opts.config.dataDir, 'pq'), opts.config.pq, (err) => logger.error({ err }, 'pq: key rotation or decapsulation worker failure'));
      }
      cage = new Cage(opts, logger, audit, pq, notaries, security, zk);
      cage.classRef = classRef;
      notaries?.attach(cage.metrics.registry, (ex, body) => cage.auditAdmin(ex, body));
      zk?.attach((ex, body) => cage.auditAdmin(ex, body));
      cage.chain = await ChainService.start(opts.config.chain, opts.config.dataDir, audit, logger, notaries);
      classRef.source = cage.chain?.classes;
      cage.setRecorders(opts.config);
    } catch (err) {
      await security?.retire(undefined);
      await zk?.close();
      await pq?.close();
      await audit?.close();
      if (opts.logger === undefined) closeLogger(logger);
      throw err;
    }
    try {
      await cage.gateway.listen();
      await cage.startAdmin(opts.config);
    } catch (err) {
      // Nothing may outlive a failed start (health-check timers, upstream pools, the log file).
      await cage.gateway.close();
      await cage.security.retire(undefined);
      await cage.chain?.close();
      await zk?.close();
      await pq?.close();
      await audit?.close();
      if (opts.logger === undefined) closeLogger(cage.logger);
      throw err;
    }
    cage.logger.info(
      { listen: `${opts.config.tls ? 'https' : 'http'}://${opts.config.listen.host}:${cage.port}`, admin: cage.admin ? `http://${opts.config.admin.listen.host}:${cage.admin.port}` : undefined, routes: opts.config.routes.length },
      'cage started',
    );
    return cage;
  }

  get port(): number {
    return this.gateway.port;
  }

  get adminPort(): number {
    return this.admin?.port ?? 0;
  }

  private setRecorders(config: CageConfig): void {
    this.recorders.length = 0;
    this.recorders.push(this.metrics);
    if (config.log.access) this.recorders.push(this.accessLog);
    if (this.chain?.meter !== undefined) this.recorders.push(this.chain.meter);
  }

  /** Where the limit stage finds DID callers' classes on the chain (set once the chain runs). */
  classRef: ClassSourceRef = { source: undefined };

  /** Admin token: configured, else kept in `<data_dir>/admin.token` (made once, mode 0600). */
  private resolveAdminToken(config: CageConfig): string {
    if (config.admin.token !== undefined) return config.admin.token;
    const file = join(config.dataDir, 'admin.token');
    try {
      const t = readFileSync(file, 'utf8').trim();
      if (t.length >= 16) return t;
    } catch {
      // first start: make one below
    }
    const token = randomBytes(32).toString('base64url');
    writeFileSync(file, `${token}\n`, { mode: 0o600 });
    this.logger.info({ file }, 'admin token generated');
    return token;
  }

  private async startAdmin(config: CageConfig): Promise<void> {
    if (!config.admin.enabled) return;
    this.adminToken = this.resolveAdminToken(config);
    this.admin = await this.bindAdmin(config, this.adminToken);
  }

  private async bindAdmin(config: CageConfig, token: string): Promise<AdminServer> {
    const admin = new AdminServer({
      token,
      metrics: () => this.metrics.text(),
      ready: () => this.readiness(),
      statics: [{ prefix: '/log/', dir: () => this.audit?.dir, public: () => this.config.audit.publicRead }],
      api: {
        ...this.auditApi(),
        ...(this.notaries?.api() ?? {}),
        ...(this.zk?.api() ?? {}),
        '/config': { GET: async () => ({ status: 200, body: redact(this.config) }) },
        '/config/reload': {
          POST: async (req) => {
            await this.reload(req.body.trim() === '' ? undefined : req.body);
            return { status: 200, body: { reloaded: true, routes: this.config.routes.map((r) => r.name) } };
          },
        },
        '/upstreams': {
          GET: async () => {
            const now = Date.now();
            return {
              status: 200,
              body: this.gateway.state.routes.map((r) => ({
                route: r.name,
                upstreams: r.upstreams.map((u) => ({ url: u.url, healthy: u.healthy(now), in_flight: u.inflight, consecutive_fails: u.consecutiveFails })),
              })),
            };
          },
        },
      },
    });
    await admin.listen(config.admin.listen.host, config.admin.listen.port);
    return admin;
  }

  /** `/api/v1/audit/*`: the log's state, proofs and records. */
  private auditApi(): Record<string, Partial<Record<string, AdminHandler>>> {
    const log = (): AuditLog => {
      if (this.audit === undefined) throw new CageError({ code: 'ADMIN_NOT_FOUND', message: 'the audit log is disabled (audit.enabled: false)' });
      return this.audit;
    };
    const index = (text: string, what: string): number => {
      if (!/^(0|[1-9][0-9]{0,15})$/.test(text)) throw new CageError({ code: 'AUDIT_INDEX_OUT_OF_RANGE', message: `${what} must be a decimal integer, got ${JSON.stringify(text.slice(0, 40))}` });
      return Number(text);
    };
    return {
      '/audit': {
        GET: async () => {
          const l = log();
          const cp = l.latestCheckpoint();
          const signed = l.latestSigned();
          return {
            status: 200,
            body: {
              origin: l.origin,
              verifier_key: l.verifierKey,
              size: l.size,
              durable_size: l.durableSize,
              checkpoint: cp,
              signed_size: signed?.size ?? 0,
              witnessing: this.notaries?.status() ?? null,
            },
          };
        },
      },
      '/audit/checkpoint': {
        GET: async () => {
          const cp = log().latestCheckpoint();
          if (cp === null) throw new CageError({ code: 'AUDIT_INDEX_OUT_OF_RANGE', message: 'no checkpoint yet' });
          return { status: 200, body: cp.note, contentType: 'text/plain; charset=utf-8' };
        },
      },
      '/audit/proof/*': {
        GET: async (req) => ({ status: 200, body: log().proof(index(req.rest, 'the record index')), contentType: 'text/plain; charset=utf-8' }),
      },
      '/audit/record/*': {
        GET: async (req) => {
          const i = index(req.rest, 'the record index');
          const bytes = log().record(i);
          return { status: 200, body: { index: i, record: recordToJson(decodeRecord(bytes)), bytes: bytes.toString('base64') } };
        },
      },
      '/audit/consistency': {
        GET: async (req) => {
          const oldSize = index(req.query.get('old') ?? '', 'old');
          const newSize = index(req.query.get('new') ?? '', 'new');
          const proof = log().consistency(oldSize, newSize);
          return { status: 200, body: { old: oldSize, new: newSize, proof: proof.map((h) => h.toString('base64')) } };
        },
      },
    };
  }

  /**
   * Records an admin change as an audit record (route `(admin)`): who (the admin token's holder,
   * from this address), what (method, path, body digest) and the answer's status.
   */
  auditAdmin(ex: Exchange, responseBody: string): void {
    ex.audit = this.audit === undefined ? 0 : 1;
    this.auditor.complete(ex, createHash('sha256').update(responseBody).digest());
  }

  private readiness(): { ready: boolean; detail: unknown } {
    const now = Date.now();
    const routes = this.gateway.state.routes.map((r) => ({ route: r.name, healthy_upstreams: r.upstreams.filter((u) => u.healthy(now)).length }));
    const ready = !this.stopping && this.gateway.port !== 0 && routes.every((r) => r.healthy_upstreams > 0);
    return { ready, detail: { draining: this.stopping, routes } };
  }

  /**
   * Load a new config (from `text`, else from the config file) and switch to it. On any error the
   * old config keeps running and ADMIN_RELOAD_FAILED says why. Reloads run one at a time (SIGHUP
   * and the admin API may race).
   */
  reload(text?: string): Promise<CageConfig> {
    const run = this.reloading.then(() => this.reloadNow(text));
    this.reloading = run.catch(() => undefined);
    return run;
  }

  private async reloadNow(text: string | undefined): Promise<CageConfig> {
    let next: CageConfig;
    let newAdmin: AdminServer | undefined;
    let newToken = this.adminToken;
    let nextSecurity: Security | undefined;
    try {
      if (this.stopping) throw new CageError({ code: 'ADMIN_RELOAD_FAILED', message: 'the cage is shutting down' });
      if (text !== undefined) next = parseConfigText(text, this.opts.configFile ? join(this.opts.configFile, '..') : process.cwd());
      else if (this.opts.configFile !== undefined) next = loadConfigFile(this.opts.configFile);
      else throw new CageError({ code: 'CONFIG_NOT_FOUND', message: 'this cage was started without a config file; POST the new config as the request body' });
      mkdirSync(next.dataDir, { recursive: true });
      // Everything that can fail happens before anything changes: the new admin listener (when it
      // moves) binds before the proxy switches, and is closed again if the proxy cannot.
      const prev = this.config.admin;
      const samePort = next.admin.listen.port === prev.listen.port || next.admin.listen.port === this.admin?.port;
      const moved = next.admin.enabled && (this.admin === undefined || next.admin.listen.host !== prev.listen.host || !samePort);
      if (next.admin.enabled) newToken = this.resolveAdminToken(next);
      if (moved) newAdmin = await this.bindAdmin(next, newToken);
      nextSecurity = Security.build(next, this.logger, this.security, this.zk, this.classRef);
      await this.gateway.reload(next, [...nextSecurity.stages, ...(this.opts.stages ?? [])]);
    } catch (err) {
      void newAdmin?.close();
      void nextSecurity?.retire(this.security);
      const inner = isCageError(err) ? `${err.code}: ${err.message}` : String(err);
      this.metrics.reloads.inc({ result: 'refused' });
      this.logger.error({ reason: inner }, 'config reload refused; the old config keeps running');
      throw new CageError({ code: 'ADMIN_RELOAD_FAILED', message: `reload refused, old config kept: ${inner}`, cause: err });
    }
    // Commit. The old admin listener may be serving this very reload request: it stops accepting
    // now and closes each connection once its answer is out (not awaited, or the request waits
    // for itself).
    const old = this.admin;
    if (newAdmin !== undefined || !next.admin.enabled) {
      this.admin = newAdmin;
      void old?.close();
    } else if (old !== undefined && newToken !== this.adminToken) {
      old.setToken(newToken);
    }
    this.adminToken = next.admin.enabled ? newToken : '';
    if (next.log.file !== this.config.log.file) {
      this.logger.warn({ file: this.config.log.file ?? 'stdout', wanted: next.log.file ?? 'stdout' }, 'log.file changes take effect on restart; still logging to the old destination');
    }
    const a = this.config.audit;
    if (next.audit.enabled !== a.enabled || next.audit.origin !== a.origin || next.audit.keyFile !== a.keyFile || next.dataDir !== this.config.dataDir) {
      this.logger.warn('audit.enabled, audit.origin, audit.key and data_dir changes take effect on restart; the running log continues');
    }
    this.auditor.configure(next);
    const oldSecurity = this.security;
    this.security = nextSecurity!;
    void oldSecurity.retire(nextSecurity);
    if (this.pq !== undefined) this.pq.configure(next.pq);
    const zkRestart = next.zk.enabled !== this.config.zk.enabled ? 'zk.enabled changes take effect on restart' : this.zk?.restartNeeded(next.zk);
    if (zkRestart !== undefined) this.logger.warn(zkRestart);
    this.zk?.configure(next.zk);
    if (next.pq.enabled !== this.config.pq.enabled || next.pq.rotateMs !== this.config.pq.rotateMs || next.pq.graceMs !== this.config.pq.graceMs || next.pq.keysPath !== this.config.pq.keysPath) {
      this.logger.warn('pq.enabled, pq.rotate_every, pq.grace and pq.keys_path changes take effect on restart');
    }
    this.config = next;
    this.logger.level = next.log.level;
    this.setRecorders(next);
    this.metrics.reloads.inc({ result: 'applied' });
    this.logger.info({ routes: next.routes.length }, 'config reloaded');
    return next;
  }

  /** Stop accepting, finish in-flight exchanges (up to `graceMs`), close everything. */
  async shutdown(graceMs: number = this.config.shutdownGraceMs): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    // A reload in progress may be binding a listener: let it finish (later ones are refused).
    await this.reloading;
    this.logger.info({ in_flight: this.gateway.inflight, grace_ms: graceMs }, 'shutting down');
    const clean = await this.gateway.drain(graceMs);
    if (!clean) this.logger.warn({ in_flight: this.gateway.inflight }, 'grace period over; closing with requests in flight');
    await this.admin?.close();
    await this.gateway.close();
    await this.security.retire(undefined);
    await this.zk?.close();
    await this.pq?.close();
    this.notaries?.close();
    await this.chain?.close();
    try {
      await this.audit?.close();
    } catch (err) {
      this.logger.error({ err }, 'audit log: final checkpoint failed');
    }
    this.logger.info('cage stopped');
    // Only a logger the cage made is closed; one passed in belongs to the caller.
    if (this.opts.logger === undefined) closeLogger(this.logger);
    else this.logger.flush();
  }
}

async function openAudit(config: CageConfig, logger: Logger): Promise<AuditLog | undefined> {
  if (!config.audit.enabled) return undefined;
  const log = await AuditLog.open({
    dir: auditDir(config),
    origin: config.audit.origin,
    keyFile: config.audit.keyFile,
    checkpointIntervalMs: config.audit.checkpointIntervalMs,
    checkpointRecords: config.audit.checkpointRecords,
    maxPendingMs: config.audit.maxPendingMs,
    onError: (err) => logger.error({ err }, 'audit log failure'),
  });
  logger.info({ origin: log.origin, verifier_key: log.verifierKey, size: log.size }, 'audit log open');
  return log;
}


function redact(c: CageConfig): unknown {
  return { ...c, admin: { ...c.admin, token: c.admin.token === undefined ? undefined : '[redacted]' } };
}
