/**
 * Governance (`gov`): proposals voted by bonded GEN, executed by endBlock when the window closes.
 *
 * `gov.propose {title, actions}` (the proposer needs `minProposerStake` bonded GEN). Actions:
 *   - `{type: "param", module: "bank"|"court"|"gov", path, value}` — token rules
 *     (`tokens.AUR.transferable`, `settlementIssuer`), fees and deposits (`caseDeposit`), the
 *     slashing fraction (`slashBps`), windows, quorums: anything in the module's params;
 *   - `{type: "validator", action: "add"|"remove", did}` — changes `VALIDATORS_KEY` (an added
 *     validator must have bonded the bank's validator minimum; never below the court's
 *     `minValidators`);
 *   - `{type: "notaryQuorum", k}` — the k of the cage's notary policy (`gov/notary-quorum`);
 *   - `{type: "policyBundle", name, hash}` — the SHA-256 of an approved BISO policy bundle
 *     (`gov/policy/<name>`).
 * A proposal's actions are dry-run when proposed (a refused value is GOV_BAD_PROPOSAL at once)
 * and run again, all or nothing, at execution: if one fails then (the state moved meanwhile) the
 * proposal ends `failed` and nothing of it applies. After any change every voting window must
 * stay within the bank's unbonding delay (so a stake cannot vote twice: bank/voting.ts).
 * `gov.vote {id, choice: yes|no|abstain}`; passes with turnout ≥ `quorumBps` of all bonded GEN
 * and yes ≥ `thresholdBps` of yes + no.
 */
import { isCageError, type CageErrorCode } from '../../core/errors.js';
import { VALIDATORS_KEY, type BlockContext, type ChainEvent, type ChainModule, type StateView, type TxContext } from '../module.js';
import { Overlay } from '../state.js';
import { bondedStake, bondOf, totalBonded } from './bank/ledger.js';
import { bankParams, setBankParam } from './bank/params.js';
import { Args, fail, heightKey, isHex32, paramStore, readJson, writeJson } from './bank/util.js';
import { castVote, clearVotes, decide, type Tally } from './bank/voting.js';
import { courtParams, setCourtParam } from './court/params.js';

export interface GovParams {
  readonly votingBlocks: number;
  readonly quorumBps: number;
  readonly thresholdBps: number;
  /** Bonded GEN a proposer needs (decimal). */
  readonly minProposerStake: string;
  readonly maxActions: number;
}

export const DEFAULT_GOV_PARAMS: GovParams = Object.freeze({ votingBlocks: 50, quorumBps: 3334, thresholdBps: 5000, minProposerStake: '1', maxActions: 16 });

export function parseGovParams(value: unknown, code: CageErrorCode): GovParams {
  const a = Args.of(value ?? {}, Object.keys(DEFAULT_GOV_PARAMS), code, 'gov params');
  const d = DEFAULT_GOV_PARAMS;
  return {
    votingBlocks: a.has('votingBlocks') ? a.int('votingBlocks', 1, 10_000_000) : d.votingBlocks,
    quorumBps: a.has('quorumBps') ? a.int('quorumBps', 0, 10_000) : d.quorumBps,
    thresholdBps: a.has('thresholdBps') ? a.int('thresholdBps', 0, 10_000) : d.thresholdBps,
    minProposerStake: a.has('minProposerStake') ? a.amount('minProposerStake').toString() : d.minProposerStake,
    maxActions: a.has('maxActions') ? a.int('maxActions', 1, 256) : d.maxActions,
  };
}

const PARAMS_KEY = 'gov/params';
const NEXT_KEY = 'gov/next';
export const NOTARY_QUORUM_KEY = 'gov/notary-quorum';
export const policyKey = (name: string): string => `gov/policy/${name}`;
const proposalKey = (id: number): string => `gov/proposal/${heightKey(id)}`;
const openKey = (end: number, id: number): string => `gov/open/${heightKey(end)}/${heightKey(id)}`;
const votePrefix = (id: number): string => `gov/vote/${heightKey(id)}/`;
const VOTE_CODES = { closed: 'GOV_VOTING_CLOSED', again: 'GOV_ALREADY_VOTED', noStake: 'GOV_NO_STAKE' } as const;
const NAME_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;

const store = paramStore(PARAMS_KEY, DEFAULT_GOV_PARAMS, parseGovParams);
export const govParams: (state: StateView) => GovParams = store.get;

export interface Proposal {
  readonly id: number;
  readonly title: string;
  readonly proposer: string;
  readonly actions: readonly unknown[];
  readonly endHeight: number;
  tally: Tally;
  status: 'open' | 'passed' | 'rejected' | 'no-quorum' | 'failed';
  error?: string;
}

/** Runs one action on `state`; throws GOV_BAD_PROPOSAL (or a module's code) when refused. */
function applyAction(state: StateView, raw: unknown, i: number): void {
  const code = 'GOV_BAD_PROPOSAL' as const;
  const head = Args.of(raw, ['type', 'module', 'path', 'value', 'action', 'did', 'k', 'name', 'hash'], code, `actions[${i}]`);
  const type = head.oneOf('type', ['param', 'validator', 'notaryQuorum', 'policyBundle'] as const);
  switch (type) {
    case 'param': {
      const a = Args.of(raw, ['type', 'module', 'path', 'value'], code, `actions[${i}]`);
      const module = a.oneOf('module', ['bank', 'court', 'gov'] as const);
      const path = a.str('path', /^[A-Za-z0-9.]{1,64}$/);
      const value = a.raw('value');
      if (module === 'bank') setBankParam(state, path, value, code);
      else if (module === 'court') setCourtParam(state, path, value, code);
      else store.set(state, path, value, code);
      return;
    }
    case 'validator': {
      const a = Args.of(raw, ['type', 'action', 'did'], code, `actions[${i}]`);
      const action = a.oneOf('action', ['add', 'remove'] as const);
      const did = a.did('did');
      const set = readJson<string[]>(state, VALIDATORS_KEY) ?? [];
      if (action === 'add') {
        if (set.includes(did)) throw fail(code, `${did} is already a validator`);
        if (set.length >= 256) throw fail(code, 'the validator set is full');
        const min = BigInt(bankParams(state).minBond.validator);
        if (bondOf(state, 'validator', did) < min) throw fail(code, `${did} has not bonded the validator minimum of ${min} GEN`);
        writeJson(state, VALIDATORS_KEY, [...set, did]);
      } else {
        if (!set.includes(did)) throw fail(code, `${did} is not a validator`);
        if (set.length - 1 < courtParams(state).minValidators) throw fail(code, `the set would fall below ${courtParams(state).minValidators} validators`);
        writeJson(state, VALIDATORS_KEY, set.filter((v) => v !== did));
      }
      return;
    }
    case 'notaryQuorum': {
      const a = Args.of(raw, ['type', 'k'], code, `actions[${i}]`);
      writeJson(state, NOTARY_QUORUM_KEY, a.int('k', 1, 1000));
      return;
    }
    case 'policyBundle': {
      const a = Args.of(raw, ['type', 'name', 'hash'], code, `actions[${i}]`);
      const name = a.str('name', NAME_RE);
      const hash = a.str('hash');
      if (!isHex32(hash)) throw fail(code, `actions[${i}].hash must be a lowercase hex SHA-256`);
      writeJson(state, policyKey(name), hash);
      return;
    }
  }
}

/** Runs all actions in an overlay; returns its writes, or throws (nothing applied). */
function runActions(state: StateView, actions: readonly unknown[]): Overlay {
  const o = new Overlay(state);
  actions.forEach((a, i) => applyAction(o, a, i));
  const unbonding = bankParams(o).unbondingBlocks;
  if (govParams(o).votingBlocks > unbonding || courtParams(o).votingBlocks > unbonding) {
    throw fail('GOV_BAD_PROPOSAL', `voting windows must not exceed the unbonding delay (${unbonding} blocks)`);
  }
  return o;
}

function commit(o: Overlay, state: StateView): void {
  for (const [k, v] of o.writes) {
    if (v === null) state.delete(k);
    else state.set(k, v);
  }
}

function ev(type: string, data: Record<string, unknown>): ChainEvent {
  return { type: `gov.${type}`, data };
}

function deliver(state: StateView, ctx: TxContext, method: string, raw: unknown): ChainEvent[] {
  const p = govParams(state);
  switch (method) {
    case 'propose': {
      const a = Args.of(raw, ['title', 'actions'], 'GOV_BAD_ARGS');
      const title = a.str('title', /^[\x20-\x7e]+$/, 200);
      const actions = a.list('actions', p.maxActions);
      if (bondedStake(state, ctx.sender) < BigInt(p.minProposerStake)) throw fail('GOV_NO_STAKE', `a proposer bonds at least ${p.minProposerStake} GEN`);
      runActions(state, actions); // dry run: refuse now what would fail later
      const id = readJson<number>(state, NEXT_KEY) ?? 1;
      writeJson(state, NEXT_KEY, id + 1);
      const prop: Proposal = { id, title, proposer: ctx.sender, actions, endHeight: ctx.height + p.votingBlocks, tally: {}, status: 'open' };
      writeJson(state, proposalKey(id), prop);
      writeJson(state, openKey(prop.endHeight, id), id);
      return [ev('proposed', { id, title, proposer: ctx.sender, endHeight: prop.endHeight })];
    }
    case 'vote': {
      const a = Args.of(raw, ['id', 'choice'], 'GOV_BAD_ARGS');
      const id = a.int('id', 1);
      const choice = a.oneOf('choice', ['yes', 'no', 'abstain'] as const);
      const prop = readJson<Proposal>(state, proposalKey(id));
      if (prop === undefined) throw fail('GOV_UNKNOWN_PROPOSAL', `no proposal ${id}`);
      if (prop.status !== 'open') throw fail('GOV_VOTING_CLOSED', `proposal ${id} is ${prop.status}`);
      prop.tally = castVote(state, votePrefix(id), ctx.sender, choice, bondedStake(state, ctx.sender), prop.tally, ctx.height, prop.endHeight, VOTE_CODES);
      writeJson(state, proposalKey(id), prop);
      return [ev('vote', { id, voter: ctx.sender, choice, tally: prop.tally })];
    }
    default:
      throw fail('GOV_UNKNOWN_METHOD', `gov has no method ${JSON.stringify(method)}`);
  }
}

function endBlock(state: StateView, ctx: BlockContext): ChainEvent[] {
  const limit = `gov/open/${heightKey(ctx.height)}/\uffff`;
  const due: Array<[string, number]> = [];
  for (const [k, v] of state.entries('gov/open/')) {
    if (k > limit) break;
    due.push([k, JSON.parse(Buffer.from(v).toString()) as number]);
  }
  const events: ChainEvent[] = [];
  for (const [k, id] of due) {
    state.delete(k);
    const prop = readJson<Proposal>(state, proposalKey(id))!;
    const p = govParams(state);
    const verdict = decide(prop.tally, 'yes', 'no', totalBonded(state), p.quorumBps, p.thresholdBps);
    prop.status = verdict;
    if (verdict === 'passed') {
      try {
        commit(runActions(state, prop.actions), state);
      } catch (err) {
        if (!isCageError(err)) throw err;
        prop.status = 'failed';
        prop.error = `${err.code}: ${err.message}`;
      }
    }
    clearVotes(state, votePrefix(id));
    writeJson(state, proposalKey(id), prop);
    events.push(ev(prop.status === 'passed' ? 'executed' : 'closed', { id, status: prop.status, tally: prop.tally, ...(prop.error === undefined ? {} : { error: prop.error }) }));
  }
  return events;
}

export const govModule: ChainModule = {
  name: 'gov',
  initGenesis(state, genesis) {
    const g = Args.of(genesis ?? {}, ['params', 'notaryQuorum', 'policies'], 'GOV_BAD_ARGS', 'gov genesis');
    const params = parseGovParams(g.raw('params'), 'GOV_BAD_ARGS');
    writeJson(state, PARAMS_KEY, params);
    const unbonding = bankParams(state).unbondingBlocks;
    if (params.votingBlocks > unbonding || courtParams(state).votingBlocks > unbonding) {
      throw fail('GOV_BAD_ARGS', `voting windows must not exceed the unbonding delay (${unbonding} blocks); gov runs after bank and court in genesis`);
    }
    if (g.has('notaryQuorum')) writeJson(state, NOTARY_QUORUM_KEY, g.int('notaryQuorum', 1, 1000));
    if (g.has('policies')) {
      const pol = g.raw('policies');
      if (typeof pol !== 'object' || pol === null || Array.isArray(pol)) throw fail('GOV_BAD_ARGS', 'gov genesis.policies must be an object');
      for (const [name, hash] of Object.entries(pol)) {
        if (!NAME_RE.test(name) || !isHex32(hash)) throw fail('GOV_BAD_ARGS', `gov genesis.policies.${name} must map a bundle name to a hex SHA-256`);
        writeJson(state, policyKey(name), hash);
      }
    }
  },
  deliverTx: deliver,
  endBlock,
  query(state, method, params) {
    switch (method) {
      case 'proposal': {
        const id = Args.of(params, ['id'], 'GOV_BAD_ARGS').int('id', 1);
        const prop = readJson<Proposal>(state, proposalKey(id));
        if (prop === undefined) throw fail('GOV_UNKNOWN_PROPOSAL', `no proposal ${id}`);
        return prop;
      }
      case 'proposals': {
        Args.of(params ?? {}, [], 'GOV_BAD_ARGS');
        return [...state.entries('gov/proposal/')].map(([k]) => readJson<Proposal>(state, k)!).slice(-100);
      }
      case 'params':
        return { gov: govParams(state), notaryQuorum: readJson<number>(state, NOTARY_QUORUM_KEY) ?? null };
      case 'policy': {
        const name = Args.of(params, ['name'], 'GOV_BAD_ARGS').str('name', NAME_RE);
        return { name, hash: readJson<string>(state, policyKey(name)) ?? null };
      }
      default:
        throw fail('GOV_UNKNOWN_METHOD', `gov has no query ${JSON.stringify(method)}`);
    }
  },
};
