/**
 * The cage's chain side: it runs the embedded single-validator chain (or connects to an external
 * validator's JSON-RPC) and anchors the audit log. The anchorer registers the log on chain (its
 * origin and the tlog-policy of its notaries: `log`, the witnesses and the k-of-n quorum), keeps
 * that policy current (`setPolicy` when the notary registry changes), and whenever the published
 * checkpoint is newer than the anchored one, submits it with the consistency proof from the
 * anchored size (`anchor.submit`). It submits only the newest checkpoint, so a cage that fell
 * behind catches up in one transaction (batching), and it has at most one transaction in flight.
 * Everything here is off the request path.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { encodeBase64 } from '../audit/note.js';
import type { AuditLog } from '../audit/io/audit-log.js';
import { CageError, ERROR_CODES, isCageError, type CageErrorCode } from '../core/errors.js';
import { parseGenesis } from '../chain/chain.js';
import { ChainClient, type TxReceipt } from '../chain/client.js';
import { ChainNode } from '../chain/io/node.js';
import { RpcServer } from '../chain/io/rpc.js';
import { createChainKey, formatKeyFile, readKeyFile, type ChainKey } from '../chain/keys.js';
import type { AnchoredCheckpoint, AnchoredLog } from '../chain/modules/anchor.js';
import { signTransaction } from '../chain/tx.js';
import { loadRegistry } from '../notary/registry.js';
import type { ChainConfig } from './config/chain.js';
import { UsageMeter, type UsageLine } from './metering.js';
import { ChainRateClasses } from './rate-classes.js';

/** Posts one epoch's usage report as the cage's account (`bank.usageReport`); throws unless it is final and OK. */
export async function postUsageReport(chain: ChainAccess, key: ChainKey, epoch: number, lines: UsageLine[]): Promise<void> {
  if (lines.length === 0) return;
  const tx = signTransaction({ chainId: await chain.chainId(), nonce: await chain.nonce(key.did), module: 'bank', method: 'usageReport', args: { epoch, lines } }, key);
  const receipt = await chain.waitForTx(await chain.send(tx.bytes), 60_000);
  if (receipt.code !== 'OK') throw new CageError({ code: failCode(receipt.code), message: `usage report for epoch ${epoch} failed on chain: ${receipt.code}` });
}

/** What the anchorer needs of a chain: the in-process node or a JSON-RPC endpoint. */
export interface ChainAccess {
  chainId(): Promise<string>;
  nonce(did: string): Promise<number>;
  send(bytes: Uint8Array): Promise<string>;
  waitForTx(hash: string, timeoutMs: number): Promise<TxReceipt>;
  query<T>(module: string, method: string, params: unknown): Promise<T>;
}

export function rpcAccess(client: ChainClient): ChainAccess {
  return {
    chainId: async () => (await client.call<{ chainId: string }>('chain_status')).chainId,
    nonce: (did) => client.nonce(did),
    send: (bytes) => client.sendTransaction(bytes),
    waitForTx: (hash, timeoutMs) => client.waitForTx(hash, { timeoutMs }),
    query: (module, method, params) => client.call(`${module}_${method}`, [params]),
  };
}

export function nodeAccess(node: ChainNode): ChainAccess {
  return {
    chainId: async () => node.chain.chainId,
    nonce: async (did) => node.chain.pendingNonce(did),
    send: async (bytes) => node.submitTransaction(bytes).hash.toString('hex'),
    async waitForTx(hash, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const loc = await node.store.txLocation(hash);
        if (loc !== undefined) {
          const r = (await node.store.results(loc.height))?.results[loc.index];
          return { hash, height: loc.height, index: loc.index, blockHash: '', code: r?.code ?? 'OK', events: r?.events ?? [], tx: {} };
        }
        if (Date.now() > deadline) throw new CageError({ code: 'CHAIN_TX_TIMEOUT', message: `transaction ${hash} is not final yet` });
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
    query: async (module, method, params) => node.chain.query(module, method, params) as never,
  };
}

export interface AnchorerOptions {
  readonly log: AuditLog;
  readonly chain: ChainAccess;
  readonly key: ChainKey;
  /** The log's current tlog-policy text (notaries and quorum). */
  readonly policy: () => Promise<string>;
  readonly intervalMs: number;
  readonly logger: Logger;
  readonly txTimeoutMs?: number;
}

function failCode(code: string): CageErrorCode {
  return Object.hasOwn(ERROR_CODES, code) ? (code as CageErrorCode) : 'CHAIN_TX_FAILED';
}

/** Anchors the audit log's published checkpoints (see the file comment). */
export class Anchorer {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  /** The size of the latest checkpoint known to be anchored. */
  anchoredSize = 0;
  submitted = 0;
  failures = 0;

  constructor(private readonly opts: AnchorerOptions) {}

  start(): void {
    this.timer = setInterval(() => void this.tick(), this.opts.intervalMs);
    this.timer.unref();
    void this.tick();
  }

  /** One pass: register or update the policy if needed, then anchor the newest published checkpoint. */
  tick(): Promise<void> {
    if (this.running !== undefined || this.stopped) return this.running ?? Promise.resolve();
    this.running = this.pass()
      .catch((err: unknown) => {
        this.failures++;
        this.opts.logger.warn({ code: isCageError(err) ? err.code : undefined, err: isCageError(err) ? undefined : err, message: (err as Error).message }, 'chain anchor: pass failed; retrying');
      })
      .finally(() => {
        this.running = undefined;
      });
    return this.running;
  }

  private async run(method: string, args: unknown): Promise<TxReceipt> {
    const { chain, key } = this.opts;
    const tx = signTransaction({ chainId: await chain.chainId(), nonce: await chain.nonce(key.did), module: 'anchor', method, args }, key);
    const receipt = await chain.waitForTx(await chain.send(tx.bytes), this.opts.txTimeoutMs ?? 60_000);
    this.submitted++;
    return receipt;
  }

  private async pass(): Promise<void> {
    const { log, chain } = this.opts;
    const cp = log.latestCheckpoint();
    if (cp === null || cp.size === 0) return;
    const policy = await this.opts.policy();
    const registered = await chain.query<AnchoredLog | null>('anchor', 'log', { origin: log.origin });
    if (registered === null || registered.policy !== policy) {
      if (registered !== null && registered.owner !== this.opts.key.did) {
        throw new CageError({ code: 'ANCHOR_NOT_OWNER', message: `log ${log.origin} is registered on chain by ${registered.owner}, not this cage's account` });
      }
      const r = await this.run(registered === null ? 'register' : 'setPolicy', { origin: log.origin, policy });
      if (r.code !== 'OK') throw new CageError({ code: failCode(r.code), message: `anchor ${registered === null ? 'register' : 'setPolicy'} failed with ${r.code}` });
      this.opts.logger.info({ origin: log.origin, height: r.height }, registered === null ? 'chain anchor: log registered' : 'chain anchor: policy updated');
    }
    const anchored = await chain.query<AnchoredCheckpoint | null>('anchor', 'checkpoint', { origin: log.origin });
    const from = anchored?.size ?? 0;
    this.anchoredSize = from;
    if (from >= cp.size) return;
    const proof = from === 0 ? [] : log.consistency(from, cp.size).map(encodeBase64);
    const r = await this.run('submit', { checkpoint: cp.note, proof });
    if (r.code !== 'OK') throw new CageError({ code: failCode(r.code), message: `anchoring size ${cp.size} failed with ${r.code}` });
    this.anchoredSize = cp.size;
    this.opts.logger.debug({ origin: log.origin, size: cp.size, from, height: r.height }, 'chain anchor: checkpoint anchored');
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    await this.running;
  }
}

/** The policy the cage registers: its notary registry's, or the log alone (`quorum none`) with no notaries. */
export function logPolicy(log: AuditLog, dataDir: string): () => Promise<string> {
  return async () => {
    const registry = await loadRegistry(join(dataDir, 'notaries.json'));
    return registry.notaries.length > 0 ? registry.toPolicy(log.verifierKey) : `log ${log.verifierKey}\nquorum none\n`;
  };
}

/** What the court watcher needs of the cage's notary registry (gateway/notaries.ts). */
export interface DroppableNotaries {
  dids(): string[];
  dropByCourt(did: string, caseRef: string): Promise<boolean>;
}

/**
 * Follows the Court's verdicts on notaries: a notary the chain dropped (slashed for cosigning both
 * sides of a fork) leaves the cage's registry, so its cosignatures stop counting toward the quorum.
 */
export class CourtWatcher {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  dropped = 0;

  constructor(
    private readonly chain: Pick<ChainAccess, 'query'>,
    private readonly notaries: DroppableNotaries,
    private readonly intervalMs: number,
    private readonly logger: Logger,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.tick(), this.intervalMs);
    this.timer.unref();
  }

  tick(): Promise<void> {
    this.running ??= this.pass()
      .catch((err: unknown) => this.logger.warn({ message: (err as Error).message }, 'court watcher: pass failed; retrying'))
      .finally(() => (this.running = undefined));
    return this.running;
  }

  private async pass(): Promise<void> {
    for (const did of this.notaries.dids()) {
      const r = await this.chain.query<{ dropped: boolean | { caseId?: number } }>('court', 'notary', { did });
      if (r.dropped === false) continue;
      const caseRef = typeof r.dropped === 'object' && r.dropped.caseId !== undefined ? String(r.dropped.caseId) : 'court';
      if (await this.notaries.dropByCourt(did, caseRef)) {
        this.dropped++;
        this.logger.warn({ did, case: caseRef }, 'court watcher: the Court dropped this notary; removed from the registry');
      }
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }
}

/** The chain the cage runs or joins, and its anchorer. */
export class ChainService {
  private constructor(
    readonly node: ChainNode | undefined,
    readonly rpc: RpcServer | undefined,
    readonly anchorer: Anchorer | undefined,
    /** The chain as the cage reaches it, and the cage's account. */
    readonly access: ChainAccess,
    readonly key: ChainKey,
    /** Usage reports for the Bank Mesh (chain.metering). */
    readonly meter: UsageMeter | undefined,
    /** DID callers' rate classes from their FLX holdings (chain.rate_classes). */
    readonly classes: ChainRateClasses | undefined,
    /** Drops notaries the Court dropped. */
    readonly court: CourtWatcher | undefined,
  ) {}

  /** Starts the embedded chain or connects to the external one, and the anchorer (when the log is on). */
  static async start(config: ChainConfig, dataDir: string, log: AuditLog | undefined, logger: Logger, notaries?: DroppableNotaries): Promise<ChainService | undefined> {
    if (config.mode === 'off') return undefined;
    const dir = join(dataDir, 'chain');
    mkdirSync(dir, { recursive: true });
    const key = loadOrCreateKey(config.keyFile ?? join(dir, 'account.key'));
    let node: ChainNode | undefined;
    let rpc: RpcServer | undefined;
    let access: ChainAccess;
    if (config.mode === 'embedded') {
      const genesisFile = join(dir, 'genesis.json');
      if (!existsSync(genesisFile)) {
        writeFileSync(genesisFile, JSON.stringify(parseGenesis({ chainId: 'cage-embedded', timestamp: Date.now(), validators: [key.did] }), null, 2) + '\n');
      }
      const genesis = JSON.parse(readFileSync(genesisFile, 'utf8')) as unknown;
      node = await ChainNode.start({ dataDir: join(dir, 'db'), genesis, key, blockPeriodMs: config.blockPeriodMs, log: (event, data) => (event === 'reject' ? undefined : logger.warn({ ...data }, `chain: ${event}`)) });
      if (config.rpcListen !== undefined) {
        rpc = new RpcServer(node);
        try {
          await rpc.listen(config.rpcListen);
        } catch (err) {
          await node.close();
          throw new CageError({ code: 'GW_LISTEN_FAILED', message: `chain.rpc_listen ${config.rpcListen}: ${(err as Error).message}`, cause: err });
        }
      }
      access = nodeAccess(node);
    } else {
      access = rpcAccess(new ChainClient(config.rpc!));
    }
    let anchorer: Anchorer | undefined;
    if (log !== undefined && config.anchor) {
      anchorer = new Anchorer({ log, chain: access, key, policy: logPolicy(log, dataDir), intervalMs: config.anchorIntervalMs, logger });
      anchorer.start();
    }
    let meter: UsageMeter | undefined;
    const m = config.metering;
    if (m !== undefined) {
      meter = new UsageMeter({ epochMs: m.epochMs, price: m.price, payer: m.payer, payers: m.payers, didPaysSelf: m.callersPay }, (epoch, lines) => postUsageReport(access, key, epoch, lines), logger);
      meter.start();
    }
    const classes = config.rateClasses ? new ChainRateClasses(access, config.rateClassTtlMs, logger) : undefined;
    logger.info({ mode: config.mode, account: key.did, height: node?.chain.head.height, rpc: rpc === undefined ? undefined : `http://127.0.0.1:${rpc.port}/rpc`, metering: meter !== undefined }, 'chain started');
    let court: CourtWatcher | undefined;
    if (notaries !== undefined) {
      court = new CourtWatcher(access, notaries, Math.max(config.anchorIntervalMs, 5000), logger);
      court.start();
    }
    return new ChainService(node, rpc, anchorer, access, key, meter, classes, court);
  }

  async close(): Promise<void> {
    await this.meter?.stop();
    await this.court?.stop();
    await this.anchorer?.stop();
    await this.rpc?.close();
    await this.node?.close();
  }
}

function loadOrCreateKey(file: string): ChainKey {
  if (existsSync(file)) return readKeyFile(file);
  const key = createChainKey();
  writeFileSync(file, formatKeyFile(key), { mode: 0o600, flag: 'wx' });
  return key;
}
