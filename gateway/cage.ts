/**
 * A running cage: the proxy listener, the admin listener, logs and metrics, wired together, with
 * reload (a valid config takes over; an invalid one is refused and the old one keeps running) and
 * graceful shutdown. Signals are the CLI's business, so tests can run several cages in a process.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { CageError, isCageError } from '../core/errors.js';
import { AdminServer } from './admin.js';
import { loadConfigFile, parseConfigText, type CageConfig } from './config/load.js';
import { Gateway } from './gateway.js';
import { AccessLog, createLogger, flushLogger } from './log.js';
import { GatewayMetrics } from './metrics.js';
import type { Recorder, Stage } from './pipeline.js';

export interface CageOptions {
  config: CageConfig;
  /** The file the config came from; `reload()` without text re-reads it. */
  configFile?: string;
  logger?: Logger;
  stages?: readonly Stage[];
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

  private constructor(private readonly opts: CageOptions) {
    this.config = opts.config;
    this.logger = opts.logger ?? createLogger(opts.config.log);
    this.accessLog = new AccessLog(this.logger);
    this.gateway = new Gateway(opts.config, { logger: this.logger, recorders: this.recorders, stages: opts.stages ?? [] });
    this.metrics = new GatewayMetrics(
      () => this.gateway.inflight,
      () => this.gateway.registry.all(),
      () => this.gateway.ws.count,
    );
    this.setRecorders(opts.config);
  }

  static async start(opts: CageOptions): Promise<Cage> {
    mkdirSync(opts.config.dataDir, { recursive: true });
    const cage = new Cage(opts);
    await cage.gateway.listen();
    try {
      await cage.startAdmin(opts.config);
    } catch (err) {
      await cage.gateway.close();
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
  }

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
    const admin = new AdminServer({
      token: this.adminToken,
      metrics: () => this.metrics.text(),
      ready: () => this.readiness(),
      api: {
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
    this.admin = admin;
  }

  private readiness(): { ready: boolean; detail: unknown } {
    const now = Date.now();
    const routes = this.gateway.state.routes.map((r) => ({ route: r.name, healthy_upstreams: r.upstreams.filter((u) => u.healthy(now)).length }));
    const ready = !this.stopping && this.gateway.port !== 0 && routes.every((r) => r.healthy_upstreams > 0);
    return { ready, detail: { draining: this.stopping, routes } };
  }

  /**
   * Load a new config (from `text`, else from the config file) and switch to it. On any error the
   * old config keeps running and ADMIN_RELOAD_FAILED says why.
   */
  async reload(text?: string): Promise<CageConfig> {
    let next: CageConfig;
    try {
      if (text !== undefined) next = parseConfigText(text, this.opts.configFile ? join(this.opts.configFile, '..') : process.cwd());
      else if (this.opts.configFile !== undefined) next = loadConfigFile(this.opts.configFile);
      else throw new CageError({ code: 'CONFIG_NOT_FOUND', message: 'this cage was started without a config file; POST the new config as the request body' });
      mkdirSync(next.dataDir, { recursive: true });
      await this.gateway.reload(next);
      if (this.admin !== undefined && (next.admin.listen.host !== this.config.admin.listen.host || next.admin.listen.port !== this.config.admin.listen.port || next.admin.token !== this.config.admin.token || !next.admin.enabled)) {
        const old = this.admin;
        this.admin = undefined;
        await old.close();
        await this.startAdmin(next);
      }
    } catch (err) {
      const inner = isCageError(err) ? `${err.code}: ${err.message}` : String(err);
      this.metrics.reloads.inc({ result: 'refused' });
      this.logger.error({ reason: inner }, 'config reload refused; the old config keeps running');
      throw new CageError({ code: 'ADMIN_RELOAD_FAILED', message: `reload refused, old config kept: ${inner}`, cause: err });
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
    this.logger.info({ in_flight: this.gateway.inflight, grace_ms: graceMs }, 'shutting down');
    const clean = await this.gateway.drain(graceMs);
    if (!clean) this.logger.warn({ in_flight: this.gateway.inflight }, 'grace period over; closing with requests in flight');
    await this.admin?.close();
    await this.gateway.close();
    this.logger.info('cage stopped');
    flushLogger(this.logger);
  }
}

function redact(c: CageConfig): unknown {
  return { ...c, admin: { ...c.admin, token: c.admin.token === undefined ? undefined : '[redacted]' } };
}
