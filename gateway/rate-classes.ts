/**
 * Rate classes from the chain: a DID caller holding FLX gets the Bank Mesh's priority class
 * (`bank_rateClass`), which the limit stage uses like an API key's class. The request path never
 * waits for the chain: a DID not in the cache gets the default class at once while its class is
 * fetched in the background, and entries are refreshed after `ttlMs`. Bounded; a chain that does
 * not answer leaves callers in the default class.
 */
import type { Logger } from 'pino';
import { BoundedMap } from '../core/bounded-map.js';
import type { ChainAccess } from './anchor.js';

const MAX_ENTRIES = 100_000;

export interface ClassSource {
  /** The caller's class, '' for the default. */
  classOf(did: string): string;
}

/** Filled in once the chain runs; the limit stage reads it per request (it outlives reloads). */
export interface ClassSourceRef {
  source: ClassSource | undefined;
}

export class ChainRateClasses implements ClassSource {
  private readonly cache = new BoundedMap<string, { cls: string; until: number }>(MAX_ENTRIES);
  private readonly inflight = new Set<string>();
  private warned = false;

  constructor(
    private readonly chain: Pick<ChainAccess, 'query'>,
    private readonly ttlMs: number,
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  classOf(did: string): string {
    const hit = this.cache.get(did);
    if (hit === undefined || hit.until <= this.now()) this.refresh(did);
    return hit?.cls ?? '';
  }

  /** Fetches one DID's class (also what `classOf` starts in the background). */
  refresh(did: string): Promise<void> {
    if (this.inflight.has(did)) return Promise.resolve();
    this.inflight.add(did);
    return this.chain
      .query<{ class: string }>('bank', 'rateClass', { did })
      .then(
        (r) => {
          this.cache.set(did, { cls: r.class === 'standard' ? '' : r.class, until: this.now() + this.ttlMs });
          this.warned = false;
        },
        (err: unknown) => {
          if (!this.warned) this.logger.warn({ err: (err as Error).message }, 'rate classes: the chain did not answer; DID callers get the default class');
          this.warned = true;
        },
      )
      .finally(() => this.inflight.delete(did));
  }
}
