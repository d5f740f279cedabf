/**
 * The Bank Mesh (`bank`): four tokens over did:key accounts, with rules fixed in genesis and
 * changed only by governance (bank/params.ts).
 *
 * - GEN: governance and stake. Bonded per role (validator, notary, log operator); `unbond` starts
 *   the unbonding delay, during which the stake cannot move and stays slashable (bank/ledger.ts).
 * - NEX: utility. Prepaid into escrow accounts; usage reports charge it (bank/metering.ts).
 * - FLX: priority. Holders get a rate class (`rateClass`), which the cage reads and caches.
 * - AUR: settlement. Minted and burned only by the configured settlement issuer, after a reserve
 *   attestation: a mint never lifts supply above the attested reserve. Operators net their
 *   epoch's debts in AUR batches that apply atomically.
 *
 * Trust: `args` and `params` are attacker-controlled JSON, read with `Args` (unknown keys refused);
 * the sender is authenticated and nonce-checked by the chain before `deliverTx`.
 */
import { parseVerifierKey, SIG_TYPE_ED25519 } from '../../audit/note.js';
import { isCageError } from '../../core/errors.js';
import type { ChainEvent, ChainModule, StateView, TxContext } from '../module.js';
import {
  addBond,
  addPending,
  balanceOf,
  bondOf,
  changeSupply,
  credit,
  debit,
  escrowOf,
  logKey,
  pendingEntries,
  releaseDue,
  removeBond,
  setEscrow,
  supplyOf,
  totalBonded,
} from './bank/ledger.js';
import { applySettlement, parseSettlement, parseUsageLine, postUsageReport, usageReport } from './bank/metering.js';
import { BANK_PARAMS_KEY, bankParams, parseBankParams } from './bank/params.js';
import { Args, checkDid, fail, readJson, ROLES, TOKENS, writeJson, type Role, type Token } from './bank/util.js';

export { bankParams, setBankParam } from './bank/params.js';
export { bondedStake, bondOf, slash, totalBonded, hold, releaseHold, holdings, balanceOf, supplyOf, escrowOf } from './bank/ledger.js';
export { settlementMessage, usageLeaf, usageTree, verifyUsageLine, type UsageLine } from './bank/metering.js';

/** A bonded log's registered key: origin = the key's name. */
export interface LogRecord {
  readonly did: string;
  readonly verifierKey: string;
}

export interface ReserveAttestation {
  readonly reserve: string;
  readonly ref: string;
  readonly height: number;
}

const RESERVE_KEY = 'bank/reserve';
const REF_RE = /^[\x20-\x7e]{1,256}$/;

/** The registered key of the log with this origin (bonded through `bank.bond` as role `log`). */
export function logByOrigin(state: StateView, origin: string): LogRecord | undefined {
  return readJson<LogRecord>(state, logKey(origin));
}

/** The rate class of `did`: the first class whose FLX minimum it meets, else `standard`. */
export function rateClass(state: StateView, did: string): string {
  const flx = balanceOf(state, 'FLX', did);
  for (const c of bankParams(state).rateClasses) if (flx >= BigInt(c.minFlx)) return c.name;
  return 'standard';
}

function ev(type: string, data: Record<string, unknown>): ChainEvent {
  return { type: `bank.${type}`, data };
}

function registerLog(state: StateView, did: string, vkey: string): string {
  let origin: string;
  try {
    const v = parseVerifierKey(vkey);
    if (v.type !== SIG_TYPE_ED25519) throw fail('BANK_BAD_ARGS', 'a log key has signature type 0x01 (Ed25519)');
    origin = v.name;
  } catch (err) {
    if (isCageError(err, 'AUDIT_BAD_KEY')) throw fail('BANK_BAD_ARGS', `logKey: ${err.message}`);
    throw err;
  }
  const prev = logByOrigin(state, origin);
  if (prev !== undefined && prev.did !== did) throw fail('BANK_LOG_KEY_TAKEN', `log ${origin} is bonded by ${prev.did}`);
  writeJson(state, logKey(origin), { did, verifierKey: vkey } satisfies LogRecord);
  return origin;
}

function bond(state: StateView, did: string, role: Role, amount: bigint, vkey: string | undefined): ChainEvent {
  const min = BigInt(bankParams(state).minBond[role]);
  if (bondOf(state, role, did) + amount < min) throw fail('BANK_BOND_TOO_SMALL', `a ${role} bonds at least ${min} GEN`);
  let origin: string | undefined;
  if (role === 'log') {
    if (vkey !== undefined) origin = registerLog(state, did, vkey);
    else if (bondOf(state, 'log', did) === 0n) throw fail('BANK_BAD_ARGS', 'the first log bond names its logKey');
  } else if (vkey !== undefined) throw fail('BANK_BAD_ARGS', 'logKey is only for role log');
  debit(state, 'GEN', did, amount);
  addBond(state, role, did, amount);
  return ev('bond', { did, role, amount: amount.toString(), ...(origin === undefined ? {} : { origin }) });
}

function deliver(state: StateView, ctx: TxContext, method: string, raw: unknown): ChainEvent[] {
  const me = ctx.sender;
  const id = Buffer.from(ctx.txHash).toString('hex');
  switch (method) {
    case 'transfer': {
      const a = Args.of(raw, ['to', 'token', 'amount'], 'BANK_BAD_ARGS');
      const token = a.oneOf('token', TOKENS);
      const to = a.did('to');
      const amount = a.amount('amount');
      if (!bankParams(state).tokens[token].transferable) throw fail('BANK_TRANSFER_DISABLED', `${token} is not transferable`);
      debit(state, token, me, amount);
      credit(state, token, to, amount);
      return [ev('transfer', { from: me, to, token, amount: amount.toString() })];
    }
    case 'bond': {
      const a = Args.of(raw, ['role', 'amount', 'logKey'], 'BANK_BAD_ARGS');
      return [bond(state, me, a.oneOf('role', ROLES), a.amount('amount'), a.optStr('logKey', undefined, 1024))];
    }
    case 'unbond': {
      const a = Args.of(raw, ['role', 'amount'], 'BANK_BAD_ARGS');
      const role = a.oneOf('role', ROLES);
      const amount = a.amount('amount');
      const left = bondOf(state, role, me) - amount;
      const min = BigInt(bankParams(state).minBond[role]);
      if (left > 0n && left < min) throw fail('BANK_BOND_TOO_SMALL', `the ${role} bond left would be below ${min} GEN (unbond all or less)`);
      removeBond(state, role, me, amount);
      const release = ctx.height + bankParams(state).unbondingBlocks;
      addPending(state, release, id, { kind: 'unbond', did: me, role, amount: amount.toString() });
      return [ev('unbond', { did: me, role, amount: amount.toString(), releaseHeight: release })];
    }
    case 'escrowDeposit': {
      const a = Args.of(raw, ['amount', 'payer'], 'BANK_BAD_ARGS');
      const amount = a.amount('amount');
      const payer = a.has('payer') ? a.did('payer') : me;
      debit(state, 'NEX', me, amount);
      setEscrow(state, payer, escrowOf(state, payer) + amount);
      return [ev('escrow', { from: me, payer, amount: amount.toString() })];
    }
    case 'escrowWithdraw': {
      const a = Args.of(raw, ['amount'], 'BANK_BAD_ARGS');
      const amount = a.amount('amount');
      const have = escrowOf(state, me);
      if (have < amount) throw fail('BANK_INSUFFICIENT_FUNDS', `escrow of ${me} holds ${have} NEX`);
      setEscrow(state, me, have - amount);
      const release = ctx.height + bankParams(state).escrowWithdrawBlocks;
      addPending(state, release, id, { kind: 'escrow', did: me, amount: amount.toString() });
      return [ev('escrowWithdraw', { payer: me, amount: amount.toString(), releaseHeight: release })];
    }
    case 'attestReserve': {
      const a = Args.of(raw, ['reserve', 'ref'], 'BANK_BAD_ARGS');
      requireIssuer(state, me);
      const att: ReserveAttestation = { reserve: a.amount('reserve', true).toString(), ref: a.str('ref', REF_RE, 256), height: ctx.height };
      writeJson(state, RESERVE_KEY, att);
      return [ev('reserve', { ...att })];
    }
    case 'mint': {
      const a = Args.of(raw, ['to', 'amount'], 'BANK_BAD_ARGS');
      const to = a.did('to');
      const amount = a.amount('amount');
      requireIssuer(state, me);
      const att = readJson<ReserveAttestation>(state, RESERVE_KEY);
      const supply = supplyOf(state, 'AUR');
      if (att === undefined || supply + amount > BigInt(att.reserve)) {
        throw fail('BANK_RESERVE_EXCEEDED', `minting ${amount} AUR would exceed the attested reserve (${att?.reserve ?? 'none'}, supply ${supply})`);
      }
      changeSupply(state, 'AUR', amount);
      credit(state, 'AUR', to, amount);
      return [ev('mint', { to, amount: amount.toString() })];
    }
    case 'burn': {
      const a = Args.of(raw, ['amount'], 'BANK_BAD_ARGS');
      const amount = a.amount('amount');
      requireIssuer(state, me);
      debit(state, 'AUR', me, amount);
      changeSupply(state, 'AUR', -amount);
      return [ev('burn', { amount: amount.toString() })];
    }
    case 'usageReport': {
      const a = Args.of(raw, ['epoch', 'lines'], 'BANK_BAD_ARGS');
      const epoch = a.int('epoch');
      const lines = a.list('lines', bankParams(state).usageMaxLines).map((l, i) => parseUsageLine(l, 'BANK_BAD_ARGS', `lines[${i}]`));
      const r = postUsageReport(state, me, epoch, lines, ctx.height);
      return [ev('usageReport', { operator: me, epoch, ...r })];
    }
    case 'settle': {
      const { batch, signatures } = parseSettlement(Args.of(raw, ['epoch', 'transfers', 'signatures'], 'BANK_BAD_SETTLEMENT'));
      const r = applySettlement(state, batch, signatures);
      return [ev('settle', { epoch: batch.epoch, ...r })];
    }
    default:
      throw fail('BANK_UNKNOWN_METHOD', `bank has no method ${JSON.stringify(method)}`);
  }
}

function requireIssuer(state: StateView, did: string): void {
  const issuer = bankParams(state).settlementIssuer;
  if (issuer === '' || issuer !== did) throw fail('BANK_NOT_ISSUER', `${did} is not the settlement issuer`);
}

/** The balances, escrow, bonds and pending releases of one account. */
export function account(state: StateView, did: string): Record<string, unknown> {
  const balances: Record<string, string> = {};
  for (const t of TOKENS) balances[t] = balanceOf(state, t, did).toString();
  const bonds: Record<string, string> = {};
  for (const r of ROLES) bonds[r] = bondOf(state, r, did).toString();
  const pending = pendingEntries(state)
    .filter(([, p]) => p.did === did)
    .map(([k, p]) => ({ ...p, releaseHeight: Number(k.split('/')[2]) }));
  return { did, balances, escrow: escrowOf(state, did).toString(), bonds, pending, rateClass: rateClass(state, did) };
}

function initGenesis(state: StateView, genesis: unknown): void {
  const code = 'BANK_BAD_GENESIS' as const;
  const g = Args.of(genesis ?? {}, ['params', 'accounts', 'bonds'], code, 'bank genesis');
  const params = parseBankParams(g.raw('params'), code);
  writeJson(state, BANK_PARAMS_KEY, params);
  const rawAccounts = g.raw('accounts') ?? {};
  if (typeof rawAccounts !== 'object' || rawAccounts === null || Array.isArray(rawAccounts)) throw fail(code, 'bank genesis.accounts must be an object');
  const accounts = Args.of(rawAccounts, Object.keys(rawAccounts), code, 'accounts');
  for (const did of Object.keys(rawAccounts)) {
    checkDid(did, code, `accounts key ${JSON.stringify(did)}`);
    const acct = accounts.obj(did, ['GEN', 'NEX', 'FLX']);
    for (const t of ['GEN', 'NEX', 'FLX'] as Token[]) {
      if (!acct.has(t)) continue;
      const n = acct.amount(t);
      credit(state, t, did, n);
      changeSupply(state, t, n);
    }
  }
  if (g.has('bonds')) {
    g.list('bonds', 10_000, 0).forEach((b, i) => {
      const a = Args.of(b, ['did', 'role', 'amount', 'logKey'], code, `bonds[${i}]`);
      const did = a.did('did');
      const amount = a.amount('amount');
      credit(state, 'GEN', did, amount);
      changeSupply(state, 'GEN', amount);
      try {
        bond(state, did, a.oneOf('role', ROLES), amount, a.optStr('logKey', undefined, 1024));
      } catch (err) {
        if (isCageError(err)) throw fail(code, `bonds[${i}]: ${err.message}`);
        throw err;
      }
    });
  }
}

export const bankModule: ChainModule = {
  name: 'bank',
  initGenesis,
  deliverTx: (state, ctx, method, args) => deliver(state, ctx, method, args),
  endBlock(state, ctx) {
    return releaseDue(state, ctx.height).map((p) => ev(p.kind === 'unbond' ? 'unbonded' : 'escrowReleased', { ...p }));
  },
  query(state, method, params) {
    switch (method) {
      case 'balance':
        return account(state, Args.of(params, ['did'], 'BANK_BAD_ARGS').did('did'));
      case 'rateClass':
        return { did: Args.of(params, ['did'], 'BANK_BAD_ARGS').did('did'), class: rateClass(state, (params as { did: string }).did) };
      case 'supply': {
        Args.of(params ?? {}, [], 'BANK_BAD_ARGS');
        const out: Record<string, string> = {};
        for (const t of TOKENS) out[t] = supplyOf(state, t).toString();
        return { supply: out, bonded: totalBonded(state).toString() };
      }
      case 'params':
        Args.of(params ?? {}, [], 'BANK_BAD_ARGS');
        return bankParams(state);
      case 'reserve':
        Args.of(params ?? {}, [], 'BANK_BAD_ARGS');
        return readJson<ReserveAttestation>(state, RESERVE_KEY) ?? null;
      case 'usageReport': {
        const a = Args.of(params, ['operator', 'epoch'], 'BANK_BAD_ARGS');
        return usageReport(state, a.did('operator'), a.int('epoch')) ?? null;
      }
      case 'log': {
        const a = Args.of(params, ['origin'], 'BANK_BAD_ARGS');
        return logByOrigin(state, a.str('origin', undefined, 512)) ?? null;
      }
      default:
        throw fail('BANK_UNKNOWN_METHOD', `bank has no query ${JSON.stringify(method)}`);
    }
  },
};
