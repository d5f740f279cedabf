/**
 * Metering for the Bank Mesh: the cage counts what each caller used per epoch and, when an epoch
 * is over, posts one signed usage report (`bank.usageReport`) whose lines are
 * (payer, subject, count, amount). The chain charges NEX from each payer's escrow to the cage's
 * operator account, and a caller can later prove a line against the report's Merkle root.
 *
 * Subjects: `api-key:<name>`, `jwt:<sub>`, the caller's did:key, `zk:<nullifier>` for anonymous
 * members (one nullifier per scope and epoch, so reports never link a member's epochs), and
 * `anonymous`. Only exchanges the app answered are counted (not the cage's own refusals). The
 * payer is the caller's DID when it has an escrow of its own (`metering.payers` maps other
 * identities), else the route owner (`metering.payer`).
 *
 * Counts live in memory until posted: a crash loses the running epoch's counts (the cage under-
 * bills, never over-bills; the audit log still holds every exchange to recount from).
 */
import type { Logger } from 'pino';
import type { Exchange } from './exchange.js';
import type { Recorder } from './pipeline.js';

export interface UsageLine {
  payer: string;
  subject: string;
  count: number;
  amount: string;
}

export interface MeteringConfig {
  epochMs: number;
  /** NEX base units per request. */
  price: bigint;
  /** Who pays for callers without their own mapping. */
  payer: string;
  /** identity subject → payer did. */
  payers: ReadonlyMap<string, string>;
  /** DID callers pay for themselves. */
  didPaysSelf: boolean;
}

/** A report must fit in one transaction (64 KiB): beyond this many lines, a payer's smallest subjects are merged. */
export const MAX_REPORT_LINES = 250;

export function subjectOf(ex: Exchange): string {
  return ex.identityKind === '' ? 'anonymous' : ex.qualifiedIdentity();
}

export class UsageMeter implements Recorder {
  /** epoch → `payer\0subject` → count */
  private readonly epochs = new Map<number, Map<string, number>>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;

  constructor(
    public config: MeteringConfig,
    private readonly submit: (epoch: number, lines: UsageLine[]) => Promise<void>,
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  record(ex: Exchange): void {
    if (ex.errorCode !== '' || ex.status === 0 || ex.status === 499) return;
    const subject = subjectOf(ex);
    const payer = this.config.payers.get(subject) ?? (this.config.didPaysSelf && ex.identityKind === 'did' ? ex.identity : this.config.payer);
    const epoch = Math.floor(ex.time / this.config.epochMs);
    let m = this.epochs.get(epoch);
    if (m === undefined) this.epochs.set(epoch, (m = new Map()));
    const k = `${payer}\u0000${subject}`;
    m.set(k, (m.get(k) ?? 0) + 1);
  }

  /** The lines of an epoch: sorted, at most MAX_REPORT_LINES (the smallest subjects of a payer merged). */
  linesOf(epoch: number): UsageLine[] {
    const m = this.epochs.get(epoch);
    if (m === undefined) return [];
    const all = [...m].map(([k, count]) => {
      const [payer, subject] = k.split('\u0000') as [string, string];
      return { payer, subject, count };
    });
    all.sort((a, b) => b.count - a.count || (a.payer < b.payer ? -1 : a.payer > b.payer ? 1 : a.subject < b.subject ? -1 : 1));
    // Room for one merged line per payer: the kept lines plus the merged ones stay within the cap.
    const kept = all.length <= MAX_REPORT_LINES ? all : all.slice(0, MAX_REPORT_LINES - Math.min(MAX_REPORT_LINES / 2, new Set(all.map((l) => l.payer)).size));
    const rest = new Map<string, { count: number; n: number }>();
    for (const l of all.slice(kept.length)) {
      const r = rest.get(l.payer) ?? { count: 0, n: 0 };
      r.count += l.count;
      r.n++;
      rest.set(l.payer, r);
    }
    const lines = kept.map((l) => ({ ...l, amount: (BigInt(l.count) * this.config.price).toString() }));
    for (const [payer, r] of rest) lines.push({ payer, subject: `rest:${r.n}`, count: r.count, amount: (BigInt(r.count) * this.config.price).toString() });
    return lines;
  }

  /** Posts every finished epoch (oldest first); a failed post is kept and retried on the next flush. */
  flush(): Promise<void> {
    this.flushing ??= this.flushNow().finally(() => (this.flushing = undefined));
    return this.flushing;
  }

  private async flushNow(): Promise<void> {
    const current = Math.floor(this.now() / this.config.epochMs);
    for (const epoch of [...this.epochs.keys()].sort((a, b) => a - b)) {
      if (epoch >= current) break;
      const lines = this.linesOf(epoch);
      try {
        await this.submit(epoch, lines);
        this.epochs.delete(epoch);
        this.logger.info({ epoch, lines: lines.length, requests: lines.reduce((s, l) => s + l.count, 0) }, 'metering: usage report posted');
      } catch (err) {
        this.logger.error({ err, epoch }, 'metering: usage report failed; retrying at the next flush');
        return;
      }
    }
  }

  start(intervalMs = Math.min(60_000, this.config.epochMs)): void {
    this.timer = setInterval(() => void this.flush(), intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.flushing;
  }
}
