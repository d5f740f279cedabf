/**
 * Metering and mesh settlement.
 *
 * A usage report is one operator's bill for one epoch: lines (payer, subject, count, amount) where
 * the subject is an API key id, a DID or — for anonymous ZK callers — a nullifier, never linked to
 * anything else. The lines are the leaves of an RFC 6962 Merkle tree (audit/merkle.ts); the leaf
 * is the UTF-8 of the JSON array `[payer, subject, count, amount]`. The chain keeps the root and
 * size, charges each line's NEX from the payer's escrow to the operator (at most what the escrow
 * holds: the shortfall is recorded, never a negative balance), and a payer can later prove one
 * line against the root (`verifyUsageLine`) to dispute it in the court.
 *
 * A settlement batch nets what operators owe each other for an epoch in AUR: every debtor signs
 * `settlementMessage(batch)` with its did:key; the batch applies entirely or not at all (all
 * checks run before the first write) and a batch hash applies once.
 */
import { createHash } from 'node:crypto';
import { leafHash } from '../../../audit/hash.js';
import { MemoryTree, verifyInclusion } from '../../../audit/merkle.js';
import { isCageError } from '../../../core/errors.js';
import { verifyEd25519 } from '../../keys.js';
import type { StateView } from '../../module.js';
import { credit, debit, escrowOf, setEscrow, balanceOf } from './ledger.js';
import { Args, fail, heightKey, readJson, writeJson, parseAmount } from './util.js';

export interface UsageLine {
  readonly payer: string;
  readonly subject: string;
  readonly count: number;
  readonly amount: string;
}

export interface UsageReport {
  readonly root: string;
  readonly size: number;
  readonly total: string;
  readonly charged: string;
  readonly height: number;
}

const SUBJECT_RE = /^[\x21-\x7e]{1,256}$/;

export function parseUsageLine(v: unknown, code: 'BANK_BAD_ARGS' | 'COURT_BAD_ARGS', what: string): UsageLine {
  const a = Args.of(v, ['payer', 'subject', 'count', 'amount'], code, what);
  return { payer: a.did('payer'), subject: a.str('subject', SUBJECT_RE, 256), count: a.int('count'), amount: a.amount('amount', true).toString() };
}

/** The Merkle leaf (entry) of a usage line. */
export function usageLeaf(line: UsageLine): Buffer {
  return Buffer.from(JSON.stringify([line.payer, line.subject, line.count, line.amount]), 'utf8');
}

export function usageTree(lines: readonly UsageLine[]): MemoryTree {
  const tree = new MemoryTree();
  for (const l of lines) tree.append(usageLeaf(l));
  return tree;
}

export const usageReportKey = (operator: string, epoch: number): string => `bank/usage/${operator}/${heightKey(epoch)}`;
const lastEpochKey = (operator: string): string => `bank/usage-last/${operator}`;

/** Posts `operator`'s report for `epoch` and charges it. Epochs of one operator strictly increase. */
export function postUsageReport(state: StateView, operator: string, epoch: number, lines: readonly UsageLine[], height: number): UsageReport & { unpaid: Array<{ index: number; short: string }> } {
  const last = readJson<number>(state, lastEpochKey(operator));
  if (last !== undefined && epoch <= last) throw fail('BANK_DUPLICATE_REPORT', `${operator} already reported epoch ${last}`);
  const tree = usageTree(lines);
  let total = 0n;
  let charged = 0n;
  const unpaid: Array<{ index: number; short: string }> = [];
  lines.forEach((l, index) => {
    const want = BigInt(l.amount);
    total += want;
    const have = escrowOf(state, l.payer);
    const take = want < have ? want : have;
    if (take > 0n) {
      setEscrow(state, l.payer, have - take);
      credit(state, 'NEX', operator, take);
      charged += take;
    }
    if (take < want) unpaid.push({ index, short: (want - take).toString() });
  });
  const report: UsageReport = { root: tree.root().toString('hex'), size: lines.length, total: total.toString(), charged: charged.toString(), height };
  writeJson(state, usageReportKey(operator, epoch), report);
  writeJson(state, lastEpochKey(operator), epoch);
  return { ...report, unpaid };
}

export function usageReport(state: StateView, operator: string, epoch: number): UsageReport | undefined {
  return readJson<UsageReport>(state, usageReportKey(operator, epoch));
}

/** Checks a usage line at `index` against `operator`'s report for `epoch`. Throws BANK_UNKNOWN_REPORT or BANK_BAD_USAGE_PROOF. */
export function verifyUsageLine(state: StateView, operator: string, epoch: number, line: UsageLine, index: number, proof: readonly Uint8Array[]): UsageReport {
  const report = usageReport(state, operator, epoch);
  if (report === undefined) throw fail('BANK_UNKNOWN_REPORT', `no usage report from ${operator} for epoch ${epoch}`);
  try {
    verifyInclusion(leafHash(usageLeaf(line)), index, report.size, proof, Buffer.from(report.root, 'hex'));
  } catch (err) {
    if (isCageError(err)) throw fail('BANK_BAD_USAGE_PROOF', `usage line ${index} does not verify: ${err.message}`);
    throw err;
  }
  return report;
}

// --- settlement --------------------------------------------------------------------------------

export interface SettlementTransfer {
  readonly from: string;
  readonly to: string;
  readonly amount: string;
}

export interface SettlementBatch {
  readonly epoch: number;
  readonly transfers: readonly SettlementTransfer[];
}

export const SETTLEMENT_DOMAIN = 'cage-bank-settlement/v1\n';
const MAX_TRANSFERS = 256;

/** The bytes every debtor signs: the domain line then the batch as JSON `{epoch, transfers}`. */
export function settlementMessage(batch: SettlementBatch): Buffer {
  const canonical = { epoch: batch.epoch, transfers: batch.transfers.map((t) => ({ from: t.from, to: t.to, amount: t.amount })) };
  return Buffer.from(SETTLEMENT_DOMAIN + JSON.stringify(canonical), 'utf8');
}

export function parseSettlement(args: Args): { batch: SettlementBatch; signatures: Map<string, Buffer> } {
  const code = 'BANK_BAD_SETTLEMENT' as const;
  const epoch = args.int('epoch');
  const transfers = args.list('transfers', MAX_TRANSFERS).map((t, i) => {
    const a = Args.of(t, ['from', 'to', 'amount'], code, `transfers[${i}]`);
    const tr = { from: a.did('from'), to: a.did('to'), amount: a.amount('amount').toString() };
    if (tr.from === tr.to) throw fail(code, `transfers[${i}] pays itself`);
    return tr;
  });
  const signatures = new Map<string, Buffer>();
  args.list('signatures', MAX_TRANSFERS * 2).forEach((s, i) => {
    const a = Args.of(s, ['did', 'signature'], code, `signatures[${i}]`);
    signatures.set(a.did('did'), Buffer.from(a.str('signature', /^[A-Za-z0-9+/]{86}==$/), 'base64'));
  });
  return { batch: { epoch, transfers }, signatures };
}

/** Applies a batch atomically: every debtor's signature, no replay, every net debit covered. */
export function applySettlement(state: StateView, batch: SettlementBatch, signatures: ReadonlyMap<string, Uint8Array>): { id: string; net: Record<string, string> } {
  const code = 'BANK_BAD_SETTLEMENT' as const;
  const msg = settlementMessage(batch);
  const id = createHash('sha256').update(msg).digest('hex');
  const doneKey = `bank/settled/${id}`;
  if (state.get(doneKey) !== undefined) throw fail(code, `settlement ${id} was already applied`);
  const net = new Map<string, bigint>();
  for (const t of batch.transfers) {
    const amount = parseAmount(t.amount, code, 'amount');
    net.set(t.from, (net.get(t.from) ?? 0n) - amount);
    net.set(t.to, (net.get(t.to) ?? 0n) + amount);
  }
  for (const debtor of new Set(batch.transfers.map((t) => t.from))) {
    const sig = signatures.get(debtor);
    if (sig === undefined || !verifyEd25519(debtor, msg, sig)) throw fail(code, `settlement lacks a valid signature by ${debtor}`);
  }
  for (const [did, n] of net) {
    if (n < 0n && balanceOf(state, 'AUR', did) < -n) throw fail(code, `${did} cannot pay its net ${-n} AUR`);
  }
  for (const [did, n] of net) if (n < 0n) debit(state, 'AUR', did, -n);
  for (const [did, n] of net) if (n > 0n) credit(state, 'AUR', did, n);
  state.set(doneKey, new Uint8Array([1]));
  return { id, net: Object.fromEntries([...net].map(([k, v]) => [k, v.toString()])) };
}
