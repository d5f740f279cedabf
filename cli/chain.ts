/**
 * `cage chain …`: make a chain, run a validator, ask a node for its status.
 *   init    genesis.json and one key file per validator (mode 0600)
 *   run     a validator node: p2p (WebSocket), JSON-RPC at /rpc, LevelDB store in --data-dir
 *   status  chain_status of a node over JSON-RPC
 * Exit codes: 0 done (run: stopped by SIGTERM/SIGINT), 1 failure, 2 bad flags. See docs/chain.md.
 */
import { mkdir, open, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { CageError } from '../core/errors.js';
import { parseGenesis } from '../chain/chain.js';
import { ChainClient } from '../chain/client.js';
import { ChainNode } from '../chain/io/node.js';
import { RpcServer } from '../chain/io/rpc.js';
import { createChainKey, formatKeyFile, readKeyFile } from '../chain/keys.js';
import { BadArgs, runSubcommands, type Subcommand } from './subcommands.js';

export interface ChainOutput {
  out(line: string): void;
  err(line: string): void;
}

export interface ChainMainOptions {
  /** Stops `run` like SIGTERM does (tests running it in-process). */
  readonly stop?: AbortSignal;
  readonly onListening?: (node: ChainNode, rpc: RpcServer | undefined) => void;
}

export const CHAIN_HELP = `Usage: cage chain <command> [flags]

Run the embedded QBFT chain that anchors audit-log checkpoints (and hosts the bank and court).

Commands:
  init    --validators N --out DIR [--chain-id ID] [--block-period-ms MS] [--round-timeout-ms MS]
          Write DIR/genesis.json and DIR/validator-<i>.key (Ed25519 did:key, mode 0600)
  run     --data-dir DIR --key KEYFILE [--genesis FILE] [--listen ADDR] [--rpc ADDR]
          [--peer ADDR ...] [--block-period-ms MS] [--round-timeout-ms MS] [--max-block-txs N]
          Run a validator: p2p on --listen (WebSocket), JSON-RPC on --rpc at /rpc
  status  --rpc URL   Print a node's chain id, head, validators and peers

Flags:
  --validators N        How many validators init makes (1..64)
  --out DIR             Where init writes (created; refuses to overwrite key files)
  --chain-id ID         The chain id transactions must name (default cage-local)
  --data-dir DIR        The validator's LevelDB store
  --key KEYFILE         The validator's key file (from init)
  --genesis FILE        The genesis file (default: genesis.json next to the key file)
  --listen ADDR         p2p HOST:PORT (port 0 picks one)
  --rpc ADDR|URL        run: JSON-RPC HOST:PORT; status: the node's URL (http://HOST:PORT/rpc)
  --peer ADDR           Another validator's p2p HOST:PORT; repeatable
  --block-period-ms MS  Wait between blocks (default from genesis, else 200)
  --round-timeout-ms MS QBFT round-0 timeout, doubling per round (default from genesis, else 2000)
  --max-block-txs N     Most transactions in a block this validator proposes (default 2000)
  -h, --help            Show this help

See docs/chain.md.
`;

function usage(message: string): BadArgs {
  return new BadArgs(message);
}

function intFlag(v: unknown, name: string, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < min || n > max) throw usage(`--${name} must be an integer in ${min}..${max}`);
  return n;
}

async function init(v: Record<string, unknown>, output: ChainOutput): Promise<number> {
  const n = intFlag(v.validators, 'validators', 1, 64);
  const out = v.out as string | undefined;
  if (n === undefined) throw usage('chain init: --validators N is required');
  if (out === undefined) throw usage('chain init: --out DIR is required');
  const blockPeriodMs = intFlag(v['block-period-ms'], 'block-period-ms', 1, 3_600_000);
  const roundTimeoutMs = intFlag(v['round-timeout-ms'], 'round-timeout-ms', 1, 3_600_000);
  await mkdir(out, { recursive: true });
  const keys = Array.from({ length: n }, () => createChainKey());
  for (const [i, key] of keys.entries()) {
    const path = join(out, `validator-${i}.key`);
    let fh;
    try {
      fh = await open(path, 'wx', 0o600);
    } catch (err) {
      throw usage(`${path}: ${(err as NodeJS.ErrnoException).code === 'EEXIST' ? 'exists; refusing to overwrite a key' : String(err)}`);
    }
    try {
      await fh.writeFile(formatKeyFile(key));
      await fh.sync();
    } finally {
      await fh.close();
    }
    output.out(`validator-${i}  ${key.did}`);
  }
  const consensus = { ...(blockPeriodMs === undefined ? {} : { blockPeriodMs }), ...(roundTimeoutMs === undefined ? {} : { roundTimeoutMs }) };
  const genesis = parseGenesis({
    chainId: (v['chain-id'] as string | undefined) ?? 'cage-local',
    timestamp: Date.now(),
    validators: keys.map((k) => k.did),
    ...(Object.keys(consensus).length > 0 ? { consensus } : {}),
  });
  const gpath = join(out, 'genesis.json');
  const fh = await open(gpath, 'wx', 0o644).catch((err: NodeJS.ErrnoException) => {
    throw usage(`${gpath}: ${err.code === 'EEXIST' ? 'exists; refusing to overwrite' : String(err)}`);
  });
  try {
    await fh.writeFile(JSON.stringify(genesis, null, 2) + '\n');
    await fh.sync();
  } finally {
    await fh.close();
  }
  output.out(`genesis      ${gpath}`);
  return 0;
}

export async function readGenesisFile(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new CageError({ code: 'CHAIN_BAD_GENESIS', message: `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}` });
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new CageError({ code: 'CHAIN_BAD_GENESIS', message: `${path} is not JSON` });
  }
}

async function run(v: Record<string, unknown>, output: ChainOutput, opts: ChainMainOptions): Promise<number> {
  const dataDir = v['data-dir'] as string | undefined;
  const keyPath = v.key as string | undefined;
  if (dataDir === undefined) throw usage('chain run: --data-dir DIR is required');
  if (keyPath === undefined) throw usage('chain run: --key KEYFILE is required');
  const key = readKeyFile(keyPath);
  const genesis = await readGenesisFile((v.genesis as string | undefined) ?? join(dirname(keyPath), 'genesis.json'));
  const log = (event: string, data: Record<string, unknown>): void => {
    if (event !== 'reject') output.err(JSON.stringify({ time: new Date().toISOString(), event, ...data }));
  };
  const node = await ChainNode.start({
    dataDir,
    genesis,
    key,
    listen: v.listen as string | undefined,
    peers: (v.peer as string[] | undefined) ?? [],
    blockPeriodMs: intFlag(v['block-period-ms'], 'block-period-ms', 1, 3_600_000),
    roundTimeoutMs: intFlag(v['round-timeout-ms'], 'round-timeout-ms', 1, 3_600_000),
    maxBlockTxs: intFlag(v['max-block-txs'], 'max-block-txs', 1, 20_000),
    log,
  });
  let rpc: RpcServer | undefined;
  try {
    if (v.rpc !== undefined) {
      rpc = new RpcServer(node);
      await rpc.listen(v.rpc as string);
    }
  } catch (err) {
    await node.close();
    throw err;
  }
  output.out(JSON.stringify({ event: 'listening', did: key.did, height: node.chain.head.height, p2p: node.p2p?.port ?? null, rpc: rpc?.port ?? null }));
  opts.onListening?.(node, rpc);
  await new Promise<void>((resolve) => {
    const stop = (): void => resolve();
    if (opts.stop !== undefined) opts.stop.addEventListener('abort', stop, { once: true });
    else {
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    }
  });
  await rpc?.close();
  await node.close();
  return 0;
}

async function status(v: Record<string, unknown>, output: ChainOutput): Promise<number> {
  const url = v.rpc as string | undefined;
  if (url === undefined) throw usage('chain status: --rpc URL is required');
  const s = await new ChainClient(url).call('chain_status');
  output.out(JSON.stringify(s, null, 2));
  return 0;
}

const INIT_OPTIONS = { validators: { type: 'string' }, out: { type: 'string' }, 'chain-id': { type: 'string' }, 'block-period-ms': { type: 'string' }, 'round-timeout-ms': { type: 'string' } } as const;
const RUN_OPTIONS = {
  'data-dir': { type: 'string' },
  key: { type: 'string' },
  genesis: { type: 'string' },
  listen: { type: 'string' },
  rpc: { type: 'string' },
  peer: { type: 'string', multiple: true },
  'block-period-ms': { type: 'string' },
  'round-timeout-ms': { type: 'string' },
  'max-block-txs': { type: 'string' },
} as const;

function noPositionals(positionals: string[]): void {
  if (positionals.length > 0) throw usage(`unexpected argument ${JSON.stringify(positionals[0])}`);
}

/** Runs `cage chain <args>`; returns the exit code (0 done, 1 a CageError, 2 bad flags). */
export function chainMain(args: string[], output: ChainOutput, opts: ChainMainOptions = {}): Promise<number> {
  const subs: Record<string, Subcommand<ChainOutput>> = {
    init: { usage: CHAIN_HELP, options: INIT_OPTIONS, run: (v, p, o) => (noPositionals(p), init(v, o)) },
    run: { usage: CHAIN_HELP, options: RUN_OPTIONS, run: (v, p, o) => (noPositionals(p), run(v, o, opts)) },
    status: { usage: CHAIN_HELP, options: { rpc: { type: 'string' } }, run: (v, p, o) => (noPositionals(p), status(v, o)) },
  };
  return runSubcommands('chain', CHAIN_HELP, subs, args, output);
}
