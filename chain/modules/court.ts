/**
 * The Court (`court`): evidence in, penalties out, decided the same way by every validator.
 *
 * `court.submit {evidence}` takes one of (court/evidence.ts verifies each):
 *   - `log-fork` {a, b}: two checkpoints signed by a bonded log. Same size, different roots:
 *     decided at once (slash). Different sizes: a consistency challenge — the reporter deposits
 *     `caseDeposit` GEN; anyone answers with `court.answer {caseId, proof}` (the RFC 9162
 *     consistency proof, base64 hashes) within `challengeBlocks`, which dismisses it and pays the
 *     deposit to the log's operator; unanswered, endBlock slashes the log.
 *   - `notary-fork` {notary, a, b}: decided at once: slash the notary's bond, drop the notary
 *     (`court/dropped/<did>`, read by the cage's registry through `isNotaryDropped`).
 *   - `validator-equivocation` {a, b} (base64 QBFT signed payloads): slash, and vote the
 *     validator out of `VALIDATORS_KEY` unless that would leave fewer than `minValidators`.
 *   - `split-origin` {proof, receipt} and `usage` {operator, epoch, index, line, proof,
 *     claimedCount}: open a judged case (claimant deposits `caseDeposit` GEN). Bonded GEN votes
 *     `court.vote {caseId, side: claimant|respondent}` for `votingBlocks`; endBlock decides.
 * Automatic slashing takes `slashBps` of the offender's GEN bonded in the offending role (bond and
 * unbonding stake), pays `reporterShareBps` of it to the reporter and burns the rest. The same
 * misbehaviour (however re-packaged) is judged once: COURT_DUPLICATE_EVIDENCE.
 */
import { verifyConsistency } from '../../audit/merkle.js';
import { parsePolicy } from '../../audit/policy.js';
import { canonicalDidKey } from '../../core/did-key.js';
import { VALIDATORS_KEY, type BlockContext, type ChainEvent, type ChainModule, type StateView, type TxContext } from '../module.js';
import { bondOf, bondedStake, hold, releaseHold, slash, totalBonded, debit, balanceOf, escrowOf, setEscrow } from './bank/ledger.js';
import { logByOrigin } from './bank.js';
import { parseUsageLine, verifyUsageLine, type UsageLine } from './bank/metering.js';
import { Args, fail, heightKey, readJson, ROLES, writeJson, type Role } from './bank/util.js';
import { castVote, clearVotes, decide, type Tally } from './bank/voting.js';
import { asEvidence, claimedOrigin, verifyLogPair, verifyNotaryPair, verifySplitOrigin, verifyValidatorPair, type Receipt } from './court/evidence.js';
import { COURT_PARAMS_KEY, courtParams, parseCourtParams } from './court/params.js';

export { courtParams, setCourtParam, type CourtParams } from './court/params.js';

export type CaseKind = 'log-fork' | 'log-consistency' | 'notary-fork' | 'validator-equivocation' | 'split-origin' | 'usage';

export interface Case {
  readonly id: number;
  readonly kind: CaseKind;
  status: 'open' | 'decided';
  /** decided: slashed | claimant | respondent | no-quorum | answered. */
  outcome?: string;
  readonly reporter: string;
  readonly offender: string;
  readonly role: Role | null;
  readonly openedAt: number;
  readonly endHeight?: number;
  tally?: Tally;
  readonly deposit: string;
  readonly detail: Record<string, unknown>;
  slashed?: string;
  paid?: string;
}

const caseKey = (id: number): string => `court/case/${heightKey(id)}`;
const openKey = (end: number, id: number): string => `court/open/${heightKey(end)}/${heightKey(id)}`;
const votePrefix = (id: number): string => `court/vote/${heightKey(id)}/`;
const seenKey = (id: string): string => `court/seen/${id}`;
const droppedKey = (did: string): string => `court/dropped/${did}`;
const holdId = (id: number): string => `court-${id}`;
const NEXT_KEY = 'court/next';
const VOTE_CODES = { closed: 'COURT_CASE_CLOSED', again: 'COURT_ALREADY_VOTED', noStake: 'COURT_NO_STAKE' } as const;

/** Whether the court dropped this notary (a proven fork). */
export function isNotaryDropped(state: StateView, did: string): boolean {
  return state.get(droppedKey(did)) !== undefined;
}

export function getCase(state: StateView, id: number): Case | undefined {
  return readJson<Case>(state, caseKey(id));
}

function ev(type: string, data: Record<string, unknown>): ChainEvent {
  return { type: `court.${type}`, data };
}

function newCase(state: StateView, c: Omit<Case, 'id'>, evidenceId: string): Case {
  if (state.get(seenKey(evidenceId)) !== undefined) throw fail('COURT_DUPLICATE_EVIDENCE', `this misbehaviour was already judged (case ${readJson<number>(state, seenKey(evidenceId))})`);
  const id = readJson<number>(state, NEXT_KEY) ?? 1;
  writeJson(state, NEXT_KEY, id + 1);
  const full: Case = { id, ...c };
  writeJson(state, seenKey(evidenceId), id);
  if (full.status === 'open') writeJson(state, openKey(full.endHeight!, id), id);
  if (BigInt(full.deposit) > 0n) hold(state, holdId(id), full.reporter, BigInt(full.deposit));
  writeJson(state, caseKey(id), full);
  return full;
}

/** Applies an automatic penalty and records it on the case. */
function punish(state: StateView, c: Case): ChainEvent[] {
  const p = courtParams(state);
  const r = c.role === null ? { slashed: 0n, paid: 0n } : slash(state, c.role, c.offender, p.slashBps, c.reporter, p.reporterShareBps);
  c.status = 'decided';
  c.outcome = 'slashed';
  c.slashed = r.slashed.toString();
  c.paid = r.paid.toString();
  const events = [ev('slashed', { caseId: c.id, kind: c.kind, offender: c.offender, role: c.role, slashed: c.slashed, reporterPaid: c.paid })];
  if (c.kind === 'notary-fork') {
    writeJson(state, droppedKey(c.offender), { caseId: c.id });
    events.push(ev('notaryDropped', { did: c.offender, caseId: c.id }));
  }
  if (c.kind === 'validator-equivocation') {
    const set = readJson<string[]>(state, VALIDATORS_KEY) ?? [];
    if (set.includes(c.offender)) {
      if (set.length - 1 >= p.minValidators) {
        writeJson(state, VALIDATORS_KEY, set.filter((v) => v !== c.offender));
        events.push(ev('validatorRemoved', { did: c.offender, caseId: c.id }));
      } else {
        events.push(ev('validatorKept', { did: c.offender, caseId: c.id, reason: `the set would fall below ${p.minValidators}` }));
      }
    }
  }
  writeJson(state, caseKey(c.id), c);
  return events;
}

/**
 * The key and operator of the log with this origin: the bank's bonded-log registry first, else
 * the anchor module's registration (its tlog-policy names the log key; its owner answers, with
 * whatever GEN it bonded as a log).
 */
export function registeredLog(state: StateView, origin: string): { did: string; verifierKey: string } {
  const bonded = logByOrigin(state, origin);
  if (bonded !== undefined) return bonded;
  const anchored = readJson<{ policy: string; owner: string }>(state, `anchor/log/${origin}`);
  const key = anchored === undefined ? undefined : asEvidence('anchored policy', () => parsePolicy(anchored.policy)).logs.find((l) => l.verifier.name === origin);
  if (anchored === undefined || key === undefined) throw fail('COURT_UNKNOWN_KEY', `no bonded or anchored log has origin ${JSON.stringify(origin)}`);
  return { did: anchored.owner, verifierKey: key.verifier.verifierKey };
}

function registeredLogKey(state: StateView, origin: string): string {
  return registeredLog(state, origin).verifierKey;
}

const B64_RE = /^[A-Za-z0-9+/]+={0,2}$/;
const NOTE_MAX = 60_000;

function submit(state: StateView, ctx: TxContext, raw: unknown): ChainEvent[] {
  const outer = Args.of(raw, ['evidence'], 'COURT_BAD_ARGS');
  const kindArg = Args.of(outer.raw('evidence'), ['type', 'a', 'b', 'notary', 'proof', 'receipt', 'operator', 'epoch', 'index', 'line', 'claimedCount'], 'COURT_BAD_ARGS', 'evidence');
  const kind = kindArg.oneOf('type', ['log-fork', 'notary-fork', 'validator-equivocation', 'split-origin', 'usage'] as const);
  const p = courtParams(state);
  const base = { reporter: ctx.sender, openedAt: ctx.height, deposit: '0' };
  switch (kind) {
    case 'log-fork': {
      const e = Args.of(outer.raw('evidence'), ['type', 'a', 'b'], 'COURT_BAD_ARGS', 'evidence');
      const a = e.str('a', undefined, NOTE_MAX);
      const b = e.str('b', undefined, NOTE_MAX);
      const origin = claimedOrigin(a, 'checkpoint a');
      const log = registeredLog(state, origin);
      const f = verifyLogPair(a, b, log.verifierKey);
      const detail = { origin: f.origin, sizes: [f.a.size, f.b.size], roots: [f.a.rootHash.toString('hex'), f.b.rootHash.toString('hex')] };
      if (f.conclusive) {
        const c = newCase(state, { ...base, kind, status: 'decided', offender: log.did, role: 'log', detail }, f.id);
        return punish(state, c);
      }
      const endHeight = ctx.height + p.challengeBlocks;
      const c = newCase(state, { ...base, kind: 'log-consistency', status: 'open', offender: log.did, role: 'log', endHeight, deposit: p.caseDeposit, detail }, f.id);
      return [ev('challenge', { caseId: c.id, origin: f.origin, sizes: detail.sizes, endHeight })];
    }
    case 'notary-fork': {
      const e = Args.of(outer.raw('evidence'), ['type', 'notary', 'a', 'b'], 'COURT_BAD_ARGS', 'evidence');
      const did = asEvidence('notary', () => canonicalDidKey(e.str('notary', undefined, 256)));
      const f = verifyNotaryPair(did, e.str('a', undefined, NOTE_MAX), e.str('b', undefined, NOTE_MAX));
      if (bondOf(state, 'notary', did) === 0n && !isNotaryDropped(state, did)) throw fail('COURT_UNKNOWN_KEY', `${did} has no notary bond`);
      if (f.time * 1000 < ctx.time - p.evidenceMaxAgeMs) throw fail('COURT_STALE_EVIDENCE', 'the cosignatures are older than the evidence window');
      const c = newCase(state, { ...base, kind, status: 'decided', offender: did, role: 'notary', detail: { origin: f.origin, size: f.size } }, f.id);
      return punish(state, c);
    }
    case 'validator-equivocation': {
      const e = Args.of(outer.raw('evidence'), ['type', 'a', 'b'], 'COURT_BAD_ARGS', 'evidence');
      const f = verifyValidatorPair(e.str('a', B64_RE, NOTE_MAX), e.str('b', B64_RE, NOTE_MAX));
      const set = readJson<string[]>(state, VALIDATORS_KEY) ?? [];
      if (!set.includes(f.validator) && bondOf(state, 'validator', f.validator) === 0n) throw fail('COURT_UNKNOWN_KEY', `${f.validator} is not a validator`);
      if (f.height + p.evidenceMaxAgeBlocks < ctx.height) throw fail('COURT_STALE_EVIDENCE', `evidence for height ${f.height} is older than ${p.evidenceMaxAgeBlocks} blocks`);
      const c = newCase(state, { ...base, kind, status: 'decided', offender: f.validator, role: 'validator', detail: { height: f.height, round: f.round, type: f.type } }, f.id);
      return punish(state, c);
    }
    case 'split-origin': {
      const e = Args.of(outer.raw('evidence'), ['type', 'proof', 'receipt'], 'COURT_BAD_ARGS', 'evidence');
      const r = e.obj('receipt', ['app', 'requestId', 'status', 'responseBodyDigest', 'signature']);
      const receipt: Receipt = {
        app: r.did('app'),
        requestId: r.str('requestId', undefined, 1024),
        status: r.int('status', 0, 999),
        responseBodyDigest: r.str('responseBodyDigest', /^[0-9a-f]{64}$/),
        signature: r.str('signature', B64_RE, 128),
      };
      const f = verifySplitOrigin(e.str('proof', undefined, NOTE_MAX), receipt, (o) => registeredLogKey(state, o));
      const log = registeredLog(state, f.origin);
      const detail = { origin: f.origin, index: f.index, requestId: receipt.requestId, app: receipt.app, receiptStatus: receipt.status, recordStatus: f.record.status };
      return openJudged(state, ctx, { ...base, kind, offender: log.did, role: 'log', detail }, f.id);
    }
    case 'usage': {
      const e = Args.of(outer.raw('evidence'), ['type', 'operator', 'epoch', 'index', 'line', 'proof', 'claimedCount'], 'COURT_BAD_ARGS', 'evidence');
      const operator = e.did('operator');
      const epoch = e.int('epoch');
      const index = e.int('index');
      const line = parseUsageLine(e.raw('line'), 'COURT_BAD_ARGS', 'evidence.line');
      const proof = e.list('proof', 64, 0).map((h) => {
        if (typeof h !== 'string' || !/^[0-9a-f]{64}$/.test(h)) throw fail('COURT_BAD_ARGS', 'evidence.proof holds 64-hex hashes');
        return Buffer.from(h, 'hex');
      });
      const claimedCount = e.int('claimedCount');
      if (line.payer !== ctx.sender) throw fail('COURT_NOT_PARTY', 'only the payer of a usage line disputes it');
      verifyUsageLine(state, operator, epoch, line, index, proof);
      if (claimedCount >= line.count) throw fail('COURT_NOT_CONFLICTING', 'the claimed count is not below the charged count');
      const role = ROLES.find((r) => bondOf(state, r, operator) > 0n) ?? null;
      const detail = { operator, epoch, index, line, claimedCount };
      return openJudged(state, ctx, { ...base, kind, offender: operator, role, detail }, `usage-${operator}-${epoch}-${index}`);
    }
  }
}

function openJudged(state: StateView, ctx: TxContext, c: Omit<Case, 'id' | 'status' | 'endHeight' | 'deposit' | 'tally'>, evidenceId: string): ChainEvent[] {
  const p = courtParams(state);
  const endHeight = ctx.height + p.votingBlocks;
  const opened = newCase(state, { ...c, status: 'open', endHeight, deposit: p.caseDeposit, tally: {} }, evidenceId);
  return [ev('caseOpened', { caseId: opened.id, kind: opened.kind, claimant: opened.reporter, respondent: opened.offender, endHeight })];
}

function openCase(state: StateView, id: number, height: number): Case {
  const c = getCase(state, id);
  if (c === undefined) throw fail('COURT_UNKNOWN_CASE', `no case ${id}`);
  if (c.status !== 'open' || height > c.endHeight!) throw fail('COURT_CASE_CLOSED', `case ${id} is closed`);
  return c;
}

function closeCase(state: StateView, c: Case, outcome: string): void {
  c.status = 'decided';
  c.outcome = outcome;
  state.delete(openKey(c.endHeight!, c.id));
  clearVotes(state, votePrefix(c.id));
  writeJson(state, caseKey(c.id), c);
}

/** The refund a usage case won by its claimant owes: the overcharged share of the line's amount. */
function usageRefund(line: UsageLine, claimed: number): bigint {
  return line.count === 0 ? 0n : (BigInt(line.amount) * BigInt(line.count - claimed)) / BigInt(line.count);
}

/** endBlock: decides judged cases and challenges whose window closed at or before this height. */
function decideDue(state: StateView, ctx: BlockContext): ChainEvent[] {
  const events: ChainEvent[] = [];
  const limit = `court/open/${heightKey(ctx.height)}/\uffff`;
  const due: number[] = [];
  for (const [k, v] of state.entries('court/open/')) {
    if (k > limit) break;
    due.push(JSON.parse(Buffer.from(v).toString()) as number);
  }
  const p = courtParams(state);
  for (const id of due) {
    const c = getCase(state, id)!;
    if (c.kind === 'log-consistency') {
      releaseHold(state, holdId(id));
      closeCase(state, c, 'slashed');
      events.push(...punish(state, c));
      continue;
    }
    const verdict = decide(c.tally ?? {}, 'claimant', 'respondent', totalBonded(state), p.quorumBps, p.thresholdBps);
    if (verdict === 'passed') {
      releaseHold(state, holdId(id));
      const moved = c.role === null ? { slashed: 0n, paid: 0n } : slash(state, c.role, c.offender, p.judgedSlashBps, c.reporter, 10_000);
      c.slashed = moved.slashed.toString();
      c.paid = moved.paid.toString();
      if (c.kind === 'usage') {
        const d = c.detail as { line: UsageLine; claimedCount: number };
        const owed = usageRefund(d.line, d.claimedCount);
        const refund = owed < balanceOf(state, 'NEX', c.offender) ? owed : balanceOf(state, 'NEX', c.offender);
        if (refund > 0n) {
          debit(state, 'NEX', c.offender, refund);
          setEscrow(state, c.reporter, escrowOf(state, c.reporter) + refund);
        }
        c.detail.refund = refund.toString();
      }
      closeCase(state, c, 'claimant');
    } else if (verdict === 'rejected') {
      releaseHold(state, holdId(id), c.offender);
      closeCase(state, c, 'respondent');
    } else {
      releaseHold(state, holdId(id));
      closeCase(state, c, 'no-quorum');
    }
    events.push(ev('decided', { caseId: id, kind: c.kind, outcome: c.outcome, tally: c.tally, slashed: c.slashed ?? '0' }));
  }
  return events;
}

function deliver(state: StateView, ctx: TxContext, method: string, raw: unknown): ChainEvent[] {
  switch (method) {
    case 'submit':
      return submit(state, ctx, raw);
    case 'vote': {
      const a = Args.of(raw, ['caseId', 'side'], 'COURT_BAD_ARGS');
      const c = openCase(state, a.int('caseId', 1), ctx.height);
      const side = a.oneOf('side', ['claimant', 'respondent'] as const);
      if (c.kind === 'log-consistency') throw fail('COURT_CASE_CLOSED', 'a consistency challenge is answered with a proof, not votes');
      if (ctx.sender === c.reporter || ctx.sender === c.offender) throw fail('COURT_NO_STAKE', 'parties do not vote on their own case');
      c.tally = castVote(state, votePrefix(c.id), ctx.sender, side, bondedStake(state, ctx.sender), c.tally ?? {}, ctx.height, c.endHeight!, VOTE_CODES);
      writeJson(state, caseKey(c.id), c);
      return [ev('vote', { caseId: c.id, voter: ctx.sender, side, tally: c.tally })];
    }
    case 'answer': {
      const a = Args.of(raw, ['caseId', 'proof'], 'COURT_BAD_ARGS');
      const c = openCase(state, a.int('caseId', 1), ctx.height);
      if (c.kind !== 'log-consistency') throw fail('COURT_BAD_ARGS', `case ${c.id} is not a consistency challenge`);
      const proof = (a.has('proof') ? (a.raw('proof') as unknown[]) : []).map((h) => {
        if (typeof h !== 'string' || !B64_RE.test(h)) throw fail('COURT_BAD_ARGS', 'proof holds base64 hashes');
        return Buffer.from(h, 'base64');
      });
      const d = c.detail as { sizes: [number, number]; roots: [string, string] };
      asEvidence('consistency proof', () => verifyConsistency(d.sizes[0], d.sizes[1], proof, Buffer.from(d.roots[0], 'hex'), Buffer.from(d.roots[1], 'hex')));
      releaseHold(state, holdId(c.id), c.offender);
      closeCase(state, c, 'answered');
      return [ev('decided', { caseId: c.id, kind: c.kind, outcome: 'answered' })];
    }
    default:
      throw fail('COURT_UNKNOWN_METHOD', `court has no method ${JSON.stringify(method)}`);
  }
}

export const courtModule: ChainModule = {
  name: 'court',
  initGenesis(state, genesis) {
    const g = Args.of(genesis ?? {}, ['params'], 'COURT_BAD_ARGS', 'court genesis');
    writeJson(state, COURT_PARAMS_KEY, parseCourtParams(g.raw('params'), 'COURT_BAD_ARGS'));
  },
  deliverTx: deliver,
  endBlock: decideDue,
  query(state, method, params) {
    switch (method) {
      case 'case': {
        const id = Args.of(params, ['id'], 'COURT_BAD_ARGS').int('id', 1);
        const c = getCase(state, id);
        if (c === undefined) throw fail('COURT_UNKNOWN_CASE', `no case ${id}`);
        return c;
      }
      case 'cases': {
        const a = Args.of(params ?? {}, ['open'], 'COURT_BAD_ARGS');
        const onlyOpen = a.has('open') && a.bool('open');
        const out: Case[] = [];
        for (const [k] of state.entries('court/case/')) {
          const c = readJson<Case>(state, k)!;
          if (!onlyOpen || c.status === 'open') out.push(c);
        }
        return out.slice(-100);
      }
      case 'notary': {
        const did = Args.of(params, ['did'], 'COURT_BAD_ARGS').did('did');
        return { did, dropped: isNotaryDropped(state, did) };
      }
      case 'params':
        return courtParams(state);
      default:
        throw fail('COURT_UNKNOWN_METHOD', `court has no query ${JSON.stringify(method)}`);
    }
  },
};
