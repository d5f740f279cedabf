/**
 * The bank's rules: fixed in genesis, changed only by a governance proposal (`gov` calls
 * `setBankParam`, which re-validates the whole object). Stored as JSON at `bank/params`.
 */
import type { CageErrorCode } from '../../../core/errors.js';
import type { StateView } from '../../module.js';
import { Args, checkDid, fail, paramStore, parseAmount, ROLES, TOKENS, type Role, type Token } from './util.js';

export interface TokenRule {
  /** Whether `bank.transfer` may move the token between accounts. */
  readonly transferable: boolean;
}

export interface RateClass {
  readonly name: string;
  /** Least FLX balance (decimal) for the class. */
  readonly minFlx: string;
}

export interface BankParams {
  readonly tokens: Readonly<Record<Token, TokenRule>>;
  /** The did:key allowed to attest reserves and mint/burn AUR (none: AUR is frozen). */
  readonly settlementIssuer: string;
  /** Blocks between `unbond` and the GEN returning to the balance (slashable meanwhile). */
  readonly unbondingBlocks: number;
  /** Blocks between `escrowWithdraw` and the NEX returning (operators can still charge it meanwhile). */
  readonly escrowWithdrawBlocks: number;
  /** Least GEN bond per role (decimal). */
  readonly minBond: Readonly<Record<Role, string>>;
  /** Priority classes for FLX holders, highest `minFlx` first; below them all: `standard`. */
  readonly rateClasses: readonly RateClass[];
  /** Most lines in one usage report. */
  readonly usageMaxLines: number;
}

export const DEFAULT_BANK_PARAMS: BankParams = Object.freeze({
  tokens: { GEN: { transferable: true }, NEX: { transferable: true }, FLX: { transferable: true }, AUR: { transferable: true } },
  settlementIssuer: '',
  unbondingBlocks: 100,
  escrowWithdrawBlocks: 100,
  minBond: { validator: '1', notary: '1', log: '1' },
  rateClasses: [{ name: 'priority', minFlx: '1' }],
  usageMaxLines: 10_000,
});

const CLASS_RE = /^[a-z][a-z0-9-]{0,31}$/;

/** Validates a complete params object (defaults filled in from `DEFAULT_BANK_PARAMS`). */
export function parseBankParams(value: unknown, code: CageErrorCode): BankParams {
  const a = Args.of(value ?? {}, Object.keys(DEFAULT_BANK_PARAMS), code, 'bank params');
  const d = DEFAULT_BANK_PARAMS;
  const tokens = {} as Record<Token, TokenRule>;
  const t = a.has('tokens') ? a.obj('tokens', TOKENS) : undefined;
  for (const tok of TOKENS) {
    tokens[tok] = t?.has(tok) ? { transferable: t.obj(tok, ['transferable']).bool('transferable') } : d.tokens[tok];
  }
  const issuer = a.has('settlementIssuer') ? a.raw('settlementIssuer') : d.settlementIssuer;
  if (issuer !== '') checkDid(issuer, code, 'bank params.settlementIssuer');
  const minBond = {} as Record<Role, string>;
  const m = a.has('minBond') ? a.obj('minBond', ROLES) : undefined;
  for (const r of ROLES) minBond[r] = m?.has(r) ? parseAmount(m.raw(r), code, `bank params.minBond.${r}`).toString() : d.minBond[r];
  let rateClasses = d.rateClasses;
  if (a.has('rateClasses')) {
    const raw = a.raw('rateClasses');
    if (!Array.isArray(raw) || raw.length > 8) throw fail(code, 'bank params.rateClasses must be a list of at most 8 classes');
    rateClasses = raw.map((c, i) => {
      const ca = Args.of(c, ['name', 'minFlx'], code, `bank params.rateClasses[${i}]`);
      return { name: ca.str('name', CLASS_RE), minFlx: ca.amount('minFlx').toString() };
    });
    for (let i = 1; i < rateClasses.length; i++) {
      if (BigInt(rateClasses[i]!.minFlx) >= BigInt(rateClasses[i - 1]!.minFlx)) throw fail(code, 'bank params.rateClasses must be ordered by decreasing minFlx');
    }
  }
  return {
    tokens,
    settlementIssuer: issuer as string,
    unbondingBlocks: a.has('unbondingBlocks') ? a.int('unbondingBlocks', 1, 10_000_000) : d.unbondingBlocks,
    escrowWithdrawBlocks: a.has('escrowWithdrawBlocks') ? a.int('escrowWithdrawBlocks', 1, 10_000_000) : d.escrowWithdrawBlocks,
    minBond,
    rateClasses,
    usageMaxLines: a.has('usageMaxLines') ? a.int('usageMaxLines', 1, 100_000) : d.usageMaxLines,
  };
}

export const BANK_PARAMS_KEY = 'bank/params';

const store = paramStore(BANK_PARAMS_KEY, DEFAULT_BANK_PARAMS, parseBankParams);

export const bankParams: (state: StateView) => BankParams = store.get;

/** Governance: sets one bank parameter by dotted path (`tokens.AUR.transferable`, `minBond.notary`, …). */
export const setBankParam: (state: StateView, path: string, value: unknown, code: CageErrorCode) => BankParams = store.set;
