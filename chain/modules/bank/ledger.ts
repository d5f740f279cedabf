/**
 * The bank's ledger: where every token unit sits. A unit is in exactly one place — a balance, a
 * bond, a pending release (unbonding GEN, withdrawn escrow), an escrow account or a hold (a court
 * deposit) — and `supply` changes only by AUR mint/burn and by slashing (the burnt part). The
 * court and gov modules move stake only through the functions here.
 *
 * Keys: `bank/bal/<token>/<did>`, `bank/bond/<role>/<did>`, `bank/escrow/<did>`,
 * `bank/pending/<height>/<id>` (JSON), `bank/hold/<id>` (JSON), `bank/supply/<token>`,
 * `bank/bonded` (all bonded GEN, for quorum), `bank/log/<origin>` (bonded logs' keys).
 */
import type { StateView } from '../../module.js';
import { fail, fraction, heightKey, readAmount, readJson, ROLES, writeAmount, writeJson, type Role, type Token } from './util.js';

export const balanceKey = (token: Token, did: string): string => `bank/bal/${token}/${did}`;
export const bondKey = (role: Role, did: string): string => `bank/bond/${role}/${did}`;
export const escrowKey = (did: string): string => `bank/escrow/${did}`;
export const supplyKey = (token: Token): string => `bank/supply/${token}`;
export const logKey = (origin: string): string => `bank/log/${encodeURIComponent(origin)}`;
const BONDED_KEY = 'bank/bonded';
const PENDING = 'bank/pending/';
const HOLD = 'bank/hold/';

export function balanceOf(state: StateView, token: Token, did: string): bigint {
  return readAmount(state, balanceKey(token, did));
}

export function credit(state: StateView, token: Token, did: string, amount: bigint): void {
  writeAmount(state, balanceKey(token, did), balanceOf(state, token, did) + amount);
}

export function debit(state: StateView, token: Token, did: string, amount: bigint): void {
  const have = balanceOf(state, token, did);
  if (have < amount) throw fail('BANK_INSUFFICIENT_FUNDS', `${did} holds ${have} ${token}, needs ${amount}`);
  writeAmount(state, balanceKey(token, did), have - amount);
}

export function supplyOf(state: StateView, token: Token): bigint {
  return readAmount(state, supplyKey(token));
}

export function changeSupply(state: StateView, token: Token, delta: bigint): void {
  writeAmount(state, supplyKey(token), supplyOf(state, token) + delta);
}

// --- bonds -------------------------------------------------------------------------------------

export function bondOf(state: StateView, role: Role, did: string): bigint {
  return readAmount(state, bondKey(role, did));
}

/** All GEN `did` has bonded, over its roles (what its votes weigh). */
export function bondedStake(state: StateView, did: string): bigint {
  let s = 0n;
  for (const r of ROLES) s += bondOf(state, r, did);
  return s;
}

export function totalBonded(state: StateView): bigint {
  return readAmount(state, BONDED_KEY);
}

export function addBond(state: StateView, role: Role, did: string, amount: bigint): void {
  writeAmount(state, bondKey(role, did), bondOf(state, role, did) + amount);
  writeAmount(state, BONDED_KEY, totalBonded(state) + amount);
}

export function removeBond(state: StateView, role: Role, did: string, amount: bigint): void {
  const have = bondOf(state, role, did);
  if (have < amount) throw fail('BANK_NO_BOND', `${did} has ${have} GEN bonded as ${role}, not ${amount}`);
  writeAmount(state, bondKey(role, did), have - amount);
  writeAmount(state, BONDED_KEY, totalBonded(state) - amount);
}

// --- pending releases (unbonding GEN, escrow withdrawals) --------------------------------------

export interface Pending {
  readonly kind: 'unbond' | 'escrow';
  readonly did: string;
  readonly role?: Role;
  readonly amount: string;
}

export function addPending(state: StateView, releaseHeight: number, id: string, p: Pending): void {
  writeJson(state, `${PENDING}${heightKey(releaseHeight)}/${id}`, p);
}

export function pendingEntries(state: StateView): Array<[string, Pending]> {
  return [...state.entries(PENDING)].map(([k]) => [k, readJson<Pending>(state, k)!]);
}

/** Releases every pending entry due at or before `height`; returns what was released. */
export function releaseDue(state: StateView, height: number): Pending[] {
  const due: Array<[string, Pending]> = [];
  const limit = `${PENDING}${heightKey(height)}/\uffff`;
  for (const [k] of state.entries(PENDING)) {
    if (k > limit) break;
    due.push([k, readJson<Pending>(state, k)!]);
  }
  for (const [k, p] of due) {
    state.delete(k);
    if (p.kind === 'unbond') credit(state, 'GEN', p.did, BigInt(p.amount));
    else credit(state, 'NEX', p.did, BigInt(p.amount));
  }
  return due.map(([, p]) => p);
}

// --- escrow ------------------------------------------------------------------------------------

export function escrowOf(state: StateView, did: string): bigint {
  return readAmount(state, escrowKey(did));
}

export function setEscrow(state: StateView, did: string, amount: bigint): void {
  writeAmount(state, escrowKey(did), amount);
}

// --- holds (court deposits) --------------------------------------------------------------------

export interface Hold {
  readonly owner: string;
  readonly amount: string;
}

/** Moves `amount` GEN from `owner`'s balance into hold `id`. */
export function hold(state: StateView, id: string, owner: string, amount: bigint): void {
  if (amount === 0n) return;
  debit(state, 'GEN', owner, amount);
  writeJson(state, `${HOLD}${id}`, { owner, amount: amount.toString() } satisfies Hold);
}

/** Pays hold `id` out to `to` (its owner when omitted). */
export function releaseHold(state: StateView, id: string, to?: string): void {
  const h = readJson<Hold>(state, `${HOLD}${id}`);
  if (h === undefined) return;
  state.delete(`${HOLD}${id}`);
  credit(state, 'GEN', to ?? h.owner, BigInt(h.amount));
}

// --- slashing ----------------------------------------------------------------------------------

export interface SlashResult {
  /** GEN taken from the offender (bond and unbonding stake of the role). */
  readonly slashed: bigint;
  /** The part paid to the beneficiary; the rest is burnt. */
  readonly paid: bigint;
}

/**
 * Takes `bps` of `did`'s GEN bonded in `role` — both the bond and any stake of that role still
 * unbonding — pays `shareBps` of it to `beneficiary`'s balance and burns the rest.
 */
export function slash(state: StateView, role: Role, did: string, bps: number, beneficiary: string | undefined, shareBps: number): SlashResult {
  let slashed = 0n;
  const bonded = bondOf(state, role, did);
  const cut = fraction(bonded, bps);
  if (cut > 0n) removeBond(state, role, did, cut);
  slashed += cut;
  for (const [k, p] of pendingEntries(state)) {
    if (p.kind !== 'unbond' || p.did !== did || p.role !== role) continue;
    const amount = BigInt(p.amount);
    const c = fraction(amount, bps);
    if (c === 0n) continue;
    slashed += c;
    if (amount === c) state.delete(k);
    else writeJson(state, k, { ...p, amount: (amount - c).toString() });
  }
  const paid = beneficiary === undefined ? 0n : fraction(slashed, shareBps);
  if (paid > 0n) credit(state, 'GEN', beneficiary!, paid);
  if (slashed - paid > 0n) changeSupply(state, 'GEN', -(slashed - paid));
  return { slashed, paid };
}

/** Sums every place a token can sit (for invariant checks and the `supply` query's audit). */
export function holdings(state: StateView, token: Token): bigint {
  let s = 0n;
  for (const [, v] of state.entries(`bank/bal/${token}/`)) s += BigInt(Buffer.from(v).toString());
  if (token === 'GEN') {
    for (const r of ROLES) for (const [, v] of state.entries(`bank/bond/${r}/`)) s += BigInt(Buffer.from(v).toString());
    for (const [, h] of state.entries(HOLD)) s += BigInt((JSON.parse(Buffer.from(h).toString()) as Hold).amount);
  }
  if (token === 'NEX') for (const [, v] of state.entries('bank/escrow/')) s += BigInt(Buffer.from(v).toString());
  for (const [k] of state.entries(PENDING)) {
    const p = readJson<Pending>(state, k)!;
    if ((p.kind === 'unbond' && token === 'GEN') || (p.kind === 'escrow' && token === 'NEX')) s += BigInt(p.amount);
  }
  return s;
}
