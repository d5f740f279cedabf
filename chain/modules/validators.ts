/**
 * Module `validators`: the validator set changes by a majority vote of the current validators.
 * `vote {action: "add"|"remove", validator: did:key}` records the sender's vote (the sender must be
 * a current validator); when more than half of the current set has voted for the same change, it
 * is applied to `VALIDATORS_KEY` — so it takes effect from the next block — and that proposal's
 * votes are cleared. Votes from accounts that have since left the set do not count. The set never
 * becomes empty. Queries: `set` (current set), `votes` (pending proposals and their voters).
 */
import { CageError } from '../../core/errors.js';
import { canonicalDidKey } from '../../core/did-key.js';
import { VALIDATORS_KEY, type ChainEvent, type ChainModule, type StateView, type TxContext } from '../module.js';
import { readJson, writeJson } from '../state.js';

const VOTES_PREFIX = 'validators/votes/';
/** Most validators the set may hold. */
export const MAX_VALIDATORS = 256;

function refuse(message: string): CageError {
  return new CageError({ code: 'CHAIN_VOTE_REFUSED', message });
}

function badArgs(message: string): CageError {
  return new CageError({ code: 'CHAIN_BAD_ARGS', message });
}

export function currentValidators(state: StateView): string[] {
  return readJson<string[]>(state, VALIDATORS_KEY) ?? [];
}

function parseVote(args: unknown): { action: 'add' | 'remove'; validator: string } {
  if (typeof args !== 'object' || args === null || Array.isArray(args)) throw badArgs('vote args must be an object');
  const a = args as Record<string, unknown>;
  for (const k of Object.keys(a)) if (k !== 'action' && k !== 'validator') throw badArgs(`unknown vote field ${JSON.stringify(k)}`);
  if (a.action !== 'add' && a.action !== 'remove') throw badArgs('action must be "add" or "remove"');
  if (typeof a.validator !== 'string' || !a.validator.startsWith('did:key:')) throw badArgs('validator must be a did:key');
  let validator: string;
  try {
    validator = canonicalDidKey(a.validator);
  } catch {
    throw badArgs('validator is not an Ed25519 did:key');
  }
  return { action: a.action, validator };
}

function vote(state: StateView, ctx: TxContext, args: unknown): ChainEvent[] {
  const { action, validator } = parseVote(args);
  const set = currentValidators(state);
  if (!set.includes(ctx.sender)) throw refuse(`${ctx.sender} is not a validator`);
  if (action === 'add' && set.includes(validator)) throw refuse(`${validator} is already a validator`);
  if (action === 'add' && set.length >= MAX_VALIDATORS) throw refuse(`the set holds ${MAX_VALIDATORS} validators`);
  if (action === 'remove' && !set.includes(validator)) throw refuse(`${validator} is not a validator`);
  if (action === 'remove' && set.length === 1) throw refuse('the last validator cannot be removed');
  const key = `${VOTES_PREFIX}${action}/${validator}`;
  const voters = (readJson<string[]>(state, key) ?? []).filter((v) => set.includes(v));
  if (!voters.includes(ctx.sender)) voters.push(ctx.sender);
  const events: ChainEvent[] = [{ type: 'validators.vote', data: { action, validator, voter: ctx.sender, votes: voters.length, of: set.length } }];
  if (voters.length * 2 > set.length) {
    const next = action === 'add' ? [...set, validator] : set.filter((v) => v !== validator);
    writeJson(state, VALIDATORS_KEY, next);
    state.delete(key);
    events.push({ type: `validators.${action === 'add' ? 'added' : 'removed'}`, data: { validator, fromHeight: ctx.height + 1, validators: next } });
  } else {
    writeJson(state, key, voters);
  }
  return events;
}

export const validatorsModule: ChainModule = {
  name: 'validators',
  initGenesis() {
    // The set itself comes from genesis.validators (written by the chain).
  },
  deliverTx(state, ctx, method, args) {
    if (method === 'vote') return vote(state, ctx, args);
    throw new CageError({ code: 'CHAIN_UNKNOWN_METHOD', message: `validators has no method ${JSON.stringify(method)}` });
  },
  query(state, method) {
    if (method === 'set') return currentValidators(state);
    if (method === 'votes') {
      const out: { action: string; validator: string; voters: string[] }[] = [];
      for (const [k, v] of state.entries(VOTES_PREFIX)) {
        const [action, ...rest] = k.slice(VOTES_PREFIX.length).split('/');
        out.push({ action: action!, validator: rest.join('/'), voters: JSON.parse(Buffer.from(v).toString('utf8')) as string[] });
      }
      return out;
    }
    throw new CageError({ code: 'CHAIN_UNKNOWN_METHOD', message: `validators has no query ${JSON.stringify(method)}` });
  },
};
