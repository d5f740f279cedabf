/** Shared fixtures for the bank, court and gov tests: keys, a genesis, a harness. */
import { createChainKey, type ChainKey } from '../../../chain/keys.js';
import { bankModule } from '../../../chain/modules/bank.js';
import { courtModule } from '../../../chain/modules/court.js';
import { govModule } from '../../../chain/modules/gov.js';
import { ModuleHarness } from '../../helpers/chain-state.js';

export function key(n: number): ChainKey {
  return createChainKey(Buffer.alloc(32, n));
}

/** Four validators (1–4), four users (11–14), the AUR issuer (20). */
export const VALIDATORS = [1, 2, 3, 4].map(key);
export const USERS = [11, 12, 13, 14].map(key);
export const ISSUER = key(20);

export const BANK_PARAMS = {
  settlementIssuer: ISSUER.did,
  unbondingBlocks: 5,
  escrowWithdrawBlocks: 3,
  rateClasses: [
    { name: 'gold', minFlx: '50' },
    { name: 'priority', minFlx: '1' },
  ],
};

export function genesis(extra: { bank?: Record<string, unknown>; court?: Record<string, unknown>; gov?: Record<string, unknown>; bonds?: unknown[] } = {}): Record<string, unknown> {
  const accounts: Record<string, unknown> = {};
  for (const k of [...VALIDATORS, ...USERS]) accounts[k.did] = { GEN: '1000', NEX: '1000', FLX: '10' };
  return {
    bank: {
      params: { ...BANK_PARAMS, ...(extra.bank ?? {}) },
      accounts,
      bonds: extra.bonds ?? VALIDATORS.map((v) => ({ did: v.did, role: 'validator', amount: '100' })),
    },
    court: { params: { votingBlocks: 4, challengeBlocks: 4, caseDeposit: '10', minValidators: 3, ...(extra.court ?? {}) } },
    gov: { params: { votingBlocks: 4, ...(extra.gov ?? {}) } },
  };
}

export function harness(extra: Parameters<typeof genesis>[0] = {}): ModuleHarness {
  return new ModuleHarness([bankModule, courtModule, govModule], VALIDATORS.map((v) => v.did), genesis(extra));
}

export function balance(h: ModuleHarness, did: string): { balances: Record<string, string>; escrow: string; bonds: Record<string, string>; pending: unknown[]; rateClass: string } {
  return h.query('bank', 'balance', { did }) as ReturnType<typeof balance>;
}
