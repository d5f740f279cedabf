/**
 * `cage bank …`: balances, transfers, bonds and escrow on a chain node over JSON-RPC (chain/client.ts).
 * Transactions are signed with a key file (`cage chain init` writes the format) and the command
 * waits for the block that includes them: exit 0 when the transaction succeeded, 1 with the
 * module's error code when it failed, 2 for bad flags. Queries print JSON.
 * Also the shared plumbing of `cage court` and `cage gov` (`runTx`, `runQuery`, `flags`).
 */
import { readFile } from 'node:fs/promises';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ChainClient } from '../chain/client.js';
import { readKeyFile } from '../chain/keys.js';
import { signTransaction } from '../chain/tx.js';
import { CageError } from '../core/errors.js';

export interface ModuleOutput {
  out(line: string): void;
  err(line: string): void;
}

type Options = NonNullable<ParseArgsConfig['options']>;

export function usage(message: string): CageError {
  return new CageError({ code: 'CLI_BAD_ARGS', message });
}

const COMMON: Options = { rpc: { type: 'string' }, key: { type: 'string' }, 'timeout-ms': { type: 'string' }, help: { type: 'boolean', short: 'h' } };

/** Parses flags (COMMON plus `options`) and positionals; unknown flags are CLI_BAD_ARGS. */
export function flags(args: string[], options: Options, what: string, positionals: number | readonly [number, number]): { v: Record<string, unknown>; p: string[] } {
  const [min, max] = typeof positionals === 'number' ? [positionals, positionals] : positionals;
  let parsed: { values: Record<string, unknown>; positionals: string[] };
  try {
    parsed = parseArgs({ args, options: { ...COMMON, ...options }, strict: true, allowPositionals: true });
  } catch (err) {
    throw usage(`${what}: ${(err as Error).message.split('\n')[0]}`);
  }
  const n = parsed.positionals.length;
  if (parsed.values.help !== true && (n < min || n > max)) {
    throw usage(`${what}: expected ${min === max ? min : `${min} to ${max}`} argument${max === 1 ? '' : 's'}, got ${n}`);
  }
  return { v: parsed.values, p: parsed.positionals };
}

function client(v: Record<string, unknown>, what: string): ChainClient {
  const url = (v.rpc as string | undefined) ?? process.env.CAGE_RPC;
  if (url === undefined) throw usage(`${what}: --rpc URL (or CAGE_RPC) is required`);
  return new ChainClient(url);
}

/** Signs `module.method(args)` with --key, sends it, waits for its block; prints the receipt. */
export async function runTx(v: Record<string, unknown>, module: string, method: string, args: unknown, output: ModuleOutput, what: string): Promise<number> {
  const keyPath = v.key as string | undefined;
  if (keyPath === undefined) throw usage(`${what}: --key KEYFILE is required`);
  const key = readKeyFile(keyPath);
  const c = client(v, what);
  const { chainId } = await c.call<{ chainId: string }>('chain_status');
  const nonce = await c.nonce(key.did);
  const hash = await c.sendTransaction(signTransaction({ chainId, nonce, module, method, args }, key));
  const timeoutMs = v['timeout-ms'] === undefined ? 30_000 : Number(v['timeout-ms']);
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs <= 0) throw usage(`${what}: --timeout-ms must be a positive integer`);
  const receipt = await c.waitForTx(hash, { timeoutMs });
  output.out(JSON.stringify({ hash, height: receipt.height, code: receipt.code, events: receipt.events }, null, 2));
  if (receipt.code !== 'OK') {
    output.err(`cage: ${receipt.code}: ${module}.${method} failed in block ${receipt.height}`);
    return 1;
  }
  return 0;
}

/** Runs the module query `module_method(params)` and prints the JSON answer. */
export async function runQuery(v: Record<string, unknown>, module: string, method: string, params: unknown, output: ModuleOutput, what: string): Promise<number> {
  const r = await client(v, what).call(`${module}_${method}`, params as Record<string, unknown>);
  output.out(JSON.stringify(r, null, 2));
  return 0;
}

/** Reads a JSON file argument (evidence, proposal). */
export async function readJsonFile(path: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw usage(`${what}: cannot read ${path}: ${(err as Error).message}`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw usage(`${what}: ${path} is not JSON`);
  }
}

/** A case or proposal id from the command line. */
export function positiveId(s: string, what: string, noun: string): number {
  if (!/^[1-9][0-9]{0,14}$/.test(s)) throw usage(`${what}: ${JSON.stringify(s)} is not a ${noun} id`);
  return Number(s);
}

/** Prints `help` when the command asks for it (none, `help`, `-h`, `--help`, or a --help flag). */
export function wantsHelp(sub: string | undefined, flagHelp: unknown, help: string, output: ModuleOutput): boolean {
  if (sub !== undefined && sub !== '--help' && sub !== '-h' && sub !== 'help' && flagHelp !== true) return false;
  output.out(help.trimEnd());
  return true;
}

export function need(v: Record<string, unknown>, name: string, what: string): string {
  const x = v[name];
  if (typeof x !== 'string' || x.length === 0) throw usage(`${what}: --${name} is required`);
  return x;
}

/** The flags and exit-code part of the bank, court and gov help texts. */
export function commonHelp(keyFor: string): string {
  return `Flags:
  --rpc URL        The node's JSON-RPC URL (default: $CAGE_RPC)
  --key KEYFILE    The signing key (${keyFor})
  --timeout-ms N   How long to wait for the transaction's block (default 30000)

Exit codes: 0 done, 1 the transaction failed (its code is printed), 2 bad flags. See docs/bank-court.md.
`;
}

export const BANK_HELP = `Usage: cage bank <command> [flags]

The Bank Mesh on the chain: GEN (stake), NEX (usage), FLX (priority), AUR (settlement).
Amounts are whole units, as decimal strings.

Commands:
  balance DID                               Balances, escrow, bonds, pending releases, rate class
  supply                                    Supply of each token and all bonded GEN
  transfer --to DID --token T --amount N    Send tokens
  bond --role R --amount N [--log-key VKEY] Bond GEN as validator|notary|log (log: name its key)
  unbond --role R --amount N                Start unbonding (released after the unbonding delay)
  escrow deposit --amount N [--payer DID]   Prepay NEX usage (for yourself or another payer)
  escrow withdraw --amount N                Withdraw escrowed NEX (after the escrow delay)

${commonHelp('transfer, bond, unbond, escrow')}`;

const TX_FLAGS: Options = { to: { type: 'string' }, token: { type: 'string' }, amount: { type: 'string' }, role: { type: 'string' }, 'log-key': { type: 'string' }, payer: { type: 'string' } };

/** Runs `cage bank <args>`; returns the exit code. CageErrors propagate to cli/main.ts. */
export async function bankMain(args: string[], output: ModuleOutput): Promise<number> {
  const [sub, ...rest] = args;
  if (wantsHelp(sub, false, BANK_HELP, output)) return 0;
  const what = `bank ${sub}`;
  switch (sub) {
    case 'balance': {
      const { v, p } = flags(rest, {}, what, 1);
      return v.help === true ? help(output) : runQuery(v, 'bank', 'balance', { did: p[0] }, output, what);
    }
    case 'supply': {
      const { v } = flags(rest, {}, what, 0);
      return v.help === true ? help(output) : runQuery(v, 'bank', 'supply', {}, output, what);
    }
    case 'transfer': {
      const { v } = flags(rest, TX_FLAGS, what, 0);
      if (v.help === true) return help(output);
      return runTx(v, 'bank', 'transfer', { to: need(v, 'to', what), token: need(v, 'token', what), amount: need(v, 'amount', what) }, output, what);
    }
    case 'bond':
    case 'unbond': {
      const { v } = flags(rest, TX_FLAGS, what, 0);
      if (v.help === true) return help(output);
      const args: Record<string, unknown> = { role: need(v, 'role', what), amount: need(v, 'amount', what) };
      if (v['log-key'] !== undefined) {
        if (sub === 'unbond') throw usage(`${what}: --log-key is only for bond`);
        args.logKey = v['log-key'];
      }
      return runTx(v, 'bank', sub, args, output, what);
    }
    case 'escrow': {
      const [action, ...more] = rest;
      if (action !== 'deposit' && action !== 'withdraw') throw usage('bank escrow: say deposit or withdraw');
      const { v } = flags(more, TX_FLAGS, `${what} ${action}`, 0);
      if (v.help === true) return help(output);
      const args: Record<string, unknown> = { amount: need(v, 'amount', what) };
      if (v.payer !== undefined) {
        if (action === 'withdraw') throw usage(`${what} withdraw: --payer is only for deposit`);
        args.payer = v.payer;
      }
      return runTx(v, 'bank', action === 'deposit' ? 'escrowDeposit' : 'escrowWithdraw', args, output, `${what} ${action}`);
    }
    default:
      throw usage(`bank: unknown command "${sub}"; run \`cage bank --help\``);
  }
}

function help(output: ModuleOutput): number {
  wantsHelp(undefined, true, BANK_HELP, output);
  return 0;
}
