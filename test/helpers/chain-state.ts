/**
 * Runs chain modules over chain/state.ts's MemoryState without consensus: each call gets its own
 * Overlay (a throw discards its writes, as the chain does), `endBlock` closes the current height.
 * Fast enough for property tests over thousands of transactions; the end-to-end tests use the
 * real `Chain` instead.
 */
import { createHash } from 'node:crypto';
import { VALIDATORS_KEY, type ChainEvent, type ChainModule } from '../../chain/module.js';
import { MemoryState, Overlay } from '../../chain/state.js';

export class ModuleHarness {
  readonly state = new MemoryState();
  height = 1;
  time = 1_700_000_000_000;
  private seq = 0;
  readonly modules: ReadonlyMap<string, ChainModule>;

  constructor(modules: readonly ChainModule[], validators: readonly string[], genesis: Record<string, unknown>) {
    this.modules = new Map(modules.map((m) => [m.name, m]));
    const o = new Overlay(this.state);
    o.set(VALIDATORS_KEY, Buffer.from(JSON.stringify(validators)));
    for (const m of modules) m.initGenesis(o, genesis[m.name]);
    this.state.apply(o.writes);
  }

  /** A StateView over the committed state for read-only module functions (its writes are dropped). */
  get view(): Overlay {
    return new Overlay(this.state);
  }

  get validators(): string[] {
    return JSON.parse(Buffer.from(this.state.get(VALIDATORS_KEY)!).toString()) as string[];
  }

  /** Runs `module.method(args)` as `sender`; throws the module's CageError with the state unchanged. */
  tx(sender: string, module: string, method: string, args: unknown): ChainEvent[] {
    const m = this.modules.get(module)!;
    const o = new Overlay(this.state);
    const txHash = createHash('sha256').update(`tx-${this.seq++}`).digest();
    const events = m.deliverTx(o, { height: this.height, time: this.time, sender, txHash, validators: this.validators }, method, args);
    this.state.apply(o.writes);
    return events;
  }

  /** Like `tx`, but returns the error code (or 'OK'). */
  code(sender: string, module: string, method: string, args: unknown): string {
    try {
      this.tx(sender, module, method, args);
      return 'OK';
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (typeof code !== 'string') throw err;
      return code;
    }
  }

  query(module: string, method: string, params: unknown): unknown {
    return this.modules.get(module)!.query(this.view, method, params);
  }

  /** Ends the current block (every module's endBlock) and moves to the next height. */
  endBlock(): ChainEvent[] {
    const events: ChainEvent[] = [];
    for (const m of this.modules.values()) {
      if (m.endBlock === undefined) continue;
      const o = new Overlay(this.state);
      events.push(...m.endBlock(o, { height: this.height, time: this.time, validators: this.validators, proposer: this.validators[0]! }));
      this.state.apply(o.writes);
    }
    this.height++;
    this.time += 1000;
    return events;
  }

  /** Ends blocks until `height` is the current height. */
  advanceTo(height: number): ChainEvent[] {
    const events: ChainEvent[] = [];
    while (this.height < height) events.push(...this.endBlock());
    return events;
  }

  /** A copy of every key/value (to compare states). */
  snapshot(): Map<string, string> {
    return new Map([...this.state.entries('')].map(([k, v]) => [k, Buffer.from(v).toString('hex')]));
  }
}
