/**
 * Gathers notary cosignatures for the log's checkpoints (C2SP tlog-witness, the log's side).
 * `witness(note)` sends the checkpoint to every registered notary in parallel, each with a
 * consistency proof from the size that notary last cosigned (0 when unknown: the notary then
 * answers 409 with its size, and the checkpoint is resent with a proof from there), retries
 * transient failures with bounded exponential backoff, verifies each cosignature with the key the
 * notary's DID names, and returns the note with the cosignatures and whether the k-of-n quorum is
 * met. It is never on the request path: the cage calls it after sealing a checkpoint.
 *
 * Requests to one notary are sequential; a newer checkpoint supersedes an older one still waiting
 * or retrying for that notary (a cosignature of the newer covers the older). Time is injected
 * (clock, sleep, random), so tests are deterministic. Per-notary latency, failures and the quorum's
 * lag are plain numbers (`metrics()`) for the cage's Prometheus gauges.
 *
 * Trust: notaries' answers are untrusted (see client.ts); only cosignature lines that verify with
 * the registered key count. The log's own note and proofs are trusted.
 */
import { CageError, type CageErrorCode } from '../core/errors.js';
import { openCheckpoint } from '../audit/checkpoint.js';
import { formatNote, parseNote, parseSignatureLine, parseVerifierKey, type NoteSignature, type NoteVerifier } from '../audit/note.js';
import { addCheckpoint as httpAddCheckpoint, type AddCheckpointInput, type AddCheckpointResult } from './client.js';
import type { NotaryEntry, NotaryRegistry } from './registry.js';

export type NotaryClient = (url: string, input: AddCheckpointInput, opts: { timeoutMs: number }) => Promise<AddCheckpointResult>;

export interface RetryOptions {
  /** Attempts per notary and checkpoint for transient failures (default 4). */
  readonly attempts?: number;
  /** First backoff (default 200 ms), doubled each retry up to maxDelayMs (default 5000 ms). */
  readonly baseDelayMs?: number;
  readonly maxDelayMs?: number;
  /** 409 answers followed per notary and checkpoint (default 3). */
  readonly maxConflicts?: number;
}

export interface WitnessCoordinatorOptions {
  /** The log's verifier key (type 0x01). */
  readonly logVerifier: NoteVerifier | string;
  /** Consistency proof hashes from oldSize to newSize in the log (0 < oldSize < newSize). */
  readonly consistency: (oldSize: number, newSize: number) => readonly Uint8Array[] | Promise<readonly Uint8Array[]>;
  /** The registry, or a getter for the current one (the admin API swaps it). */
  readonly registry: NotaryRegistry | (() => NotaryRegistry);
  /** Default: notary/client.ts addCheckpoint over HTTP. */
  readonly client?: NotaryClient;
  /** Per-request timeout (default 10 s). */
  readonly timeoutMs?: number;
  readonly retry?: RetryOptions;
  /** Milliseconds (default Date.now). */
  readonly clock?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
  /** In [0, 1]; backoff = d/2 + random()·d/2 (default Math.random). */
  readonly random?: () => number;
}

const OPTION_KEYS = new Set(['logVerifier', 'consistency', 'registry', 'client', 'timeoutMs', 'retry', 'clock', 'sleep', 'random']);
const RETRY_KEYS = new Set(['attempts', 'baseDelayMs', 'maxDelayMs', 'maxConflicts']);
/** Failures worth retrying: the notary may answer later. Everything else is a verdict. */
const TRANSIENT = new Set<CageErrorCode>(['NOTARY_UNREACHABLE', 'NOTARY_TIMEOUT', 'NOTARY_BAD_RESPONSE', 'NOTARY_STORE_IO', 'NOTARY_INTERNAL']);

export type NotaryOutcomeStatus = 'cosigned' | 'failed' | 'ahead' | 'superseded';

export interface NotaryOutcome {
  readonly did: string;
  readonly status: NotaryOutcomeStatus;
  /** For 'failed'. */
  readonly code?: CageErrorCode;
  readonly message?: string;
  /** HTTP requests sent for this checkpoint. */
  readonly requests: number;
}

export interface WitnessResult {
  readonly size: number;
  /** The checkpoint note with every verified cosignature gathered. */
  readonly note: string;
  /** The verified cosignature lines (`— <DID> <base64>`, no newline). */
  readonly lines: readonly string[];
  /** DIDs of the notaries that cosigned. */
  readonly cosigners: readonly string[];
  readonly quorum: number;
  readonly quorumMet: boolean;
  readonly outcomes: readonly NotaryOutcome[];
}

export interface NotaryStats {
  readonly did: string;
  readonly name: string;
  readonly url: string;
  /** The size this notary is known to have cosigned (-1: unknown). */
  readonly lastSize: number;
  /** Milliseconds of the last answered request (-1: none yet). */
  readonly lastLatencyMs: number;
  readonly requests: number;
  /** Requests that failed (no answer, or a refusal other than 409). */
  readonly failures: number;
  readonly consecutiveFailures: number;
  readonly lastError?: CageErrorCode;
}

export interface CoordinatorMetrics {
  /** Largest checkpoint size submitted to witness(). */
  readonly latestSize: number;
  /** Largest checkpoint size whose cosignatures met the quorum (-1: none yet). */
  readonly quorumSize: number;
  /** latestSize − quorumSize (entries not yet covered by a quorum-cosigned checkpoint). */
  readonly quorumLagEntries: number;
  /** Seconds since the oldest checkpoint above quorumSize was submitted (0 when none). */
  readonly quorumLagSeconds: number;
  readonly notaries: readonly NotaryStats[];
}

interface MutableStats {
  knownSize: number;
  lastLatencyMs: number;
  requests: number;
  failures: number;
  consecutiveFailures: number;
  lastError: CageErrorCode | undefined;
  generation: number;
  chain: Promise<unknown>;
}

function positiveInt(v: number | undefined, dflt: number, what: string, min = 1): number {
  const x = v ?? dflt;
  if (!Number.isSafeInteger(x) || x < min) throw new TypeError(`WitnessCoordinator: ${what} must be an integer >= ${min}`);
  return x;
}

export class WitnessCoordinator {
  private readonly log: NoteVerifier;
  private readonly getRegistry: () => NotaryRegistry;
  private readonly client: NotaryClient;
  private readonly clock: () => number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly random: () => number;
  private readonly timeoutMs: number;
  private readonly attempts: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly maxConflicts: number;
  private readonly stats = new Map<string, MutableStats>();
  private latestSize = -1;
  private quorumSize = -1;
  /** Submitted checkpoints above quorumSize: [size, time submitted], ascending (capped). */
  private pending: [number, number][] = [];

  constructor(private readonly opts: WitnessCoordinatorOptions) {
    for (const k of Object.keys(opts)) if (!OPTION_KEYS.has(k)) throw new TypeError(`WitnessCoordinator: unknown option ${JSON.stringify(k)}`);
    for (const k of Object.keys(opts.retry ?? {})) if (!RETRY_KEYS.has(k)) throw new TypeError(`WitnessCoordinator: unknown retry option ${JSON.stringify(k)}`);
    this.log = typeof opts.logVerifier === 'string' ? parseVerifierKey(opts.logVerifier) : opts.logVerifier;
    if (typeof opts.consistency !== 'function') throw new TypeError('WitnessCoordinator: consistency must be a function');
    const reg = opts.registry;
    this.getRegistry = typeof reg === 'function' ? reg : () => reg;
    this.client = opts.client ?? ((url, input, o) => httpAddCheckpoint(url, input, o));
    this.clock = opts.clock ?? Date.now;
    this.sleep = opts.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.random = opts.random ?? Math.random;
    this.timeoutMs = positiveInt(opts.timeoutMs, 10_000, 'timeoutMs');
    this.attempts = positiveInt(opts.retry?.attempts, 4, 'retry.attempts');
    this.baseDelayMs = positiveInt(opts.retry?.baseDelayMs, 200, 'retry.baseDelayMs', 0);
    this.maxDelayMs = positiveInt(opts.retry?.maxDelayMs, 5_000, 'retry.maxDelayMs', 0);
    this.maxConflicts = positiveInt(opts.retry?.maxConflicts, 3, 'retry.maxConflicts', 0);
  }

  private statsOf(did: string): MutableStats {
    let s = this.stats.get(did);
    if (s === undefined) {
      s = { knownSize: -1, lastLatencyMs: -1, requests: 0, failures: 0, consecutiveFailures: 0, lastError: undefined, generation: 0, chain: Promise.resolve() };
      this.stats.set(did, s);
    }
    return s;
  }

  /** The backoff before retry number `retry` (0-based): min(max, base·2^retry), half of it jittered. */
  backoffMs(retry: number): number {
    const d = Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** retry);
    return Math.round(d / 2 + (Math.min(1, Math.max(0, this.random())) * d) / 2);
  }

  /**
   * Witnesses one log-signed checkpoint note. Resolves when every notary has cosigned, failed for
   * good, or been superseded; `onQuorum` fires as soon as the quorum is met (once), so the cage
   * can publish without waiting for slow notaries. Rejects only if `note` is not a checkpoint
   * signed by the log key.
   */
  async witness(note: string, opts: { size?: number; onQuorum?: (r: WitnessResult) => void } = {}): Promise<WitnessResult> {
    const opened = openCheckpoint(note, this.log);
    const size = opened.checkpoint.size;
    if (opts.size !== undefined && opts.size !== size) throw new CageError({ code: 'AUDIT_BAD_CHECKPOINT', message: `checkpoint size ${size} is not ${opts.size}` });
    const text = Buffer.from(opened.body, 'utf8');
    const reg = this.getRegistry();
    const now = this.clock();
    if (size > this.latestSize) {
      this.latestSize = size;
      if (size > this.quorumSize) {
        this.pending.push([size, now]);
        if (this.pending.length > 1024) this.pending.splice(1, 1); // keep the oldest: it sets the lag
      }
    }
    const base = parseNote(note);
    const gathered = new Map<string, NoteSignature[]>(); // by DID
    let quorumFired = false;
    const result = (outcomes: readonly NotaryOutcome[]): WitnessResult => {
      const sigs = reg.notaries.flatMap((e) => gathered.get(e.did) ?? []);
      const seen = new Set(sigs.map((s) => `${s.name}+${s.keyId}`));
      const merged = formatNote({ text: base.text, signatures: [...base.signatures.filter((s) => !seen.has(`${s.name}+${s.keyId}`)), ...sigs] });
      const check = reg.checkQuorum(merged, this.log);
      return Object.freeze({
        size,
        note: merged,
        lines: sigs.map((s) => `\u2014 ${s.name} ${s.base64}`),
        cosigners: check.cosigners,
        quorum: check.quorum,
        quorumMet: check.met,
        outcomes,
      });
    };
    const tasks = reg.notaries.map((entry) => {
      const st = this.statsOf(entry.did);
      const gen = ++st.generation;
      const verifier = parseVerifierKey(entry.verifierKey);
      const run = st.chain.then(() => this.runNotary(entry, verifier, st, gen, note, text, size));
      st.chain = run.catch(() => undefined);
      return run.then((o) => {
        if (o.outcome.status === 'cosigned') {
          gathered.set(entry.did, o.sigs);
          if (!quorumFired && opts.onQuorum !== undefined) {
            const r = result([]);
            if (r.quorumMet) {
              quorumFired = true;
              this.quorumMetAt(size);
              opts.onQuorum(r);
            }
          }
        }
        return o.outcome;
      });
    });
    const outcomes = await Promise.all(tasks);
    const r = result(outcomes);
    if (r.quorumMet) this.quorumMetAt(size);
    if (r.quorumMet && !quorumFired && opts.onQuorum !== undefined) opts.onQuorum(r);
    return r;
  }

  private quorumMetAt(size: number): void {
    if (size <= this.quorumSize) return;
    this.quorumSize = size;
    this.pending = this.pending.filter(([s]) => s > size);
  }

  private async runNotary(
    entry: NotaryEntry,
    verifier: NoteVerifier,
    st: MutableStats,
    gen: number,
    note: string,
    text: Buffer,
    size: number,
  ): Promise<{ outcome: NotaryOutcome; sigs: NoteSignature[] }> {
    let requests = 0;
    const done = (status: NotaryOutcomeStatus, code?: CageErrorCode, message?: string) => ({
      outcome: Object.freeze({ did: entry.did, status, requests, ...(code === undefined ? {} : { code }), ...(message === undefined ? {} : { message }) }),
      sigs: [] as NoteSignature[],
    });
    let old = Math.max(0, st.knownSize);
    let retries = 0;
    let conflicts = 0;
    let probed = false;
    for (;;) {
      if (st.generation !== gen) return done('superseded');
      if (old > size) {
        // The notary is (or claimed to be) past this checkpoint: ask once more from 0, so a size
        // remembered from a stale or false answer cannot keep a notary out of every later round.
        if (probed) return done('ahead');
        probed = true;
        old = 0;
      }
      let proof: readonly Uint8Array[];
      try {
        proof = old === 0 || old === size ? [] : await this.opts.consistency(old, size);
      } catch (err) {
        return done('failed', 'AUDIT_BAD_PROOF', `no consistency proof from ${old} to ${size}: ${(err as Error).message}`);
      }
      const t0 = this.clock();
      st.requests++;
      requests++;
      const r = await this.client(entry.url, { oldSize: old, proof, note }, { timeoutMs: this.timeoutMs });
      if (r.status !== 'error' || r.httpStatus !== 0) st.lastLatencyMs = Math.max(0, this.clock() - t0);
      if (r.status === 'cosigned') {
        const sigs = verifiedLines(r.lines, verifier, text);
        if (sigs === undefined) {
          this.fail(st, 'NOTARY_BAD_COSIGNATURE');
          return done('failed', 'NOTARY_BAD_COSIGNATURE', `${entry.did} sent no valid cosignature with its key`);
        }
        st.knownSize = Math.max(st.knownSize, size);
        st.consecutiveFailures = 0;
        return { outcome: done('cosigned').outcome, sigs };
      }
      if (r.status === 'conflict') {
        st.knownSize = r.size;
        old = r.size;
        probed = true; // a size heard in this round is fresh: no need to probe it again
        if (++conflicts > this.maxConflicts) return done('failed', 'NOTARY_SIZE_CONFLICT', `${entry.did} kept answering 409`);
        continue;
      }
      this.fail(st, r.code);
      if (!TRANSIENT.has(r.code) || retries + 1 >= this.attempts) return done('failed', r.code, r.message);
      await this.sleep(this.backoffMs(retries));
      retries++;
    }
  }

  private fail(st: MutableStats, code: CageErrorCode): void {
    st.failures++;
    st.consecutiveFailures++;
    st.lastError = code;
  }

  /** Plain numbers for metrics: per registered notary, and the quorum's lag. */
  metrics(): CoordinatorMetrics {
    const reg = this.getRegistry();
    const latest = Math.max(0, this.latestSize);
    const covered = Math.max(0, this.quorumSize);
    const oldest = this.pending[0];
    return {
      latestSize: this.latestSize,
      quorumSize: this.quorumSize,
      quorumLagEntries: Math.max(0, latest - covered),
      quorumLagSeconds: oldest === undefined ? 0 : Math.max(0, (this.clock() - oldest[1]) / 1000),
      notaries: reg.notaries.map((e) => {
        const s = this.statsOf(e.did);
        return {
          did: e.did,
          name: e.name,
          url: e.url,
          lastSize: s.knownSize,
          lastLatencyMs: s.lastLatencyMs,
          requests: s.requests,
          failures: s.failures,
          consecutiveFailures: s.consecutiveFailures,
          ...(s.lastError === undefined ? {} : { lastError: s.lastError }),
        };
      }),
    };
  }
}

/**
 * The lines signed by `verifier` over `text`, as note signatures; lines of other keys are ignored
 * (tlog-witness: clients MUST ignore unknown cosignatures). Undefined when none verifies or one
 * with the notary's key fails.
 */
function verifiedLines(lines: readonly string[], verifier: NoteVerifier, text: Buffer): NoteSignature[] | undefined {
  const out: NoteSignature[] = [];
  for (const line of lines) {
    let s: NoteSignature;
    try {
      s = parseSignatureLine(line);
    } catch {
      return undefined;
    }
    if (s.name !== verifier.name || s.keyId !== verifier.keyId) continue;
    if (!verifier.verify(text, s.signature)) return undefined;
    if (!out.some((x) => x.base64 === s.base64)) out.push(s);
  }
  return out.length === 0 ? undefined : out.slice(0, 1);
}
