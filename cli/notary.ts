/**
 * `cage notary …`: run an independent notary (a C2SP tlog-witness identified by a DID).
 *   init   make an Ed25519 key file (C2SP signer key, mode 0600) and print its DID and verifier key
 *   serve  witness the given logs over HTTP (POST /add-checkpoint, GET /.well-known/did.json, /healthz)
 * Exit codes: 0 done (serve: stopped by SIGTERM/SIGINT), 1 failure, 2 bad flags. See docs/notary.md.
 */
import { createPrivateKey, createPublicKey, randomBytes } from 'node:crypto';
import { open, readFile } from 'node:fs/promises';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { CageError, isCageError } from '../core/errors.js';
import { parseHostPort } from '../core/units.js';
import { createCosigner, formatSignerKey, parseSignerKey, parseVerifierKey, SIG_TYPE_ED25519, type NoteVerifier } from '../audit/note.js';
import { buildDidDocument, didKeyFromPublicKey, didWebUrl, notaryVerifier } from '../notary/did.js';
import { NotaryServer, type NotaryEvent } from '../notary/io/server.js';
import { NotaryStore } from '../notary/io/store.js';
import { KnownLogs } from '../notary/witness.js';
import { ChainClient } from '../chain/client.js';
import { readKeyFile, type ChainKey } from '../chain/keys.js';
import { signTransaction } from '../chain/tx.js';
import { courtEvidence } from './court.js';

export interface NotaryOutput {
  out(line: string): void;
  err(line: string): void;
}

export interface NotaryMainOptions {
  /** Stops `serve` like SIGTERM does (for tests running it in-process). */
  readonly stop?: AbortSignal;
  /** Called once `serve` listens. */
  readonly onListening?: (server: NotaryServer) => void;
}

export const NOTARY_HELP = `Usage: cage notary <command> [flags]

Run an independent notary: a C2SP tlog-witness identified by a DID, which cosigns a log's
checkpoints only if each extends the last one it saw.

Commands:
  init    --out KEYFILE [--did-web DID]   Make an Ed25519 key (mode 0600) and print its DID and
                                          its verifier key (what a cage registers)
  serve   --key KEYFILE --data-dir DIR --log VKEY [--log VKEY ...] [--listen ADDR]
          [--max-body-bytes N] [--chain URL --chain-key FILE]
                                          Witness the logs: POST /add-checkpoint,
                                          GET /.well-known/did.json, GET /healthz

Flags:
  --out KEYFILE       Where init writes the key (refuses to overwrite)
  --did-web DID       Name the key with this did:web instead of its did:key (host the DID
                      document that serve publishes at that did:web's URL)
  --key KEYFILE       The key file made by init
  --data-dir DIR      The notary's durable state and evidence (losing it means retiring the key)
  --log VKEY          A log's verifier key (name+id+key), inline or @FILE; repeatable
  --listen ADDR       HOST:PORT (default 127.0.0.1:7380; port 0 picks one)
  --max-body-bytes N  Largest add-checkpoint body (default about 1 MiB)
  --chain URL         Submit every fork/rollback/bad-proof evidence file to the chain's Court
                      (JSON-RPC URL) as a log-fork case, signed with --chain-key (a chain
                      account key file, \`cage chain init\` format); the reporter's share of the
                      slashed bond goes to that account
  --chain-key FILE    The account that submits evidence (with --chain)
  -h, --help          Show this help

See docs/notary.md.
`;

type Options = NonNullable<ParseArgsConfig['options']>;

function usage(message: string): CageError {
  return new CageError({ code: 'CLI_BAD_ARGS', message });
}

function parseFlags(args: string[], options: Options, what: string): Record<string, unknown> {
  try {
    return parseArgs({ args, options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false }).values;
  } catch (err) {
    throw usage(`notary ${what}: ${(err as Error).message.split('\n')[0]!.replace(/\. To specify a positional argument.*$/, '')}`);
  }
}

const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

function publicKeyOfSeed(seed: Buffer): Buffer {
  const spki = createPublicKey(createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: 'der', type: 'pkcs8' })).export({ format: 'der', type: 'spki' });
  return Buffer.from(spki.subarray(spki.length - 32));
}

async function init(v: Record<string, unknown>, output: NotaryOutput): Promise<number> {
  const out = v.out as string | undefined;
  if (out === undefined) throw usage('notary init: --out KEYFILE is required');
  const seed = randomBytes(32);
  const publicKey = publicKeyOfSeed(seed);
  let did = didKeyFromPublicKey(publicKey);
  if (v['did-web'] !== undefined) {
    did = v['did-web'] as string;
    try {
      didWebUrl(did);
    } catch (err) {
      throw usage(`--did-web: ${(err as Error).message}`);
    }
  }
  const signerKey = formatSignerKey(did, seed);
  let fh;
  try {
    fh = await open(out, 'wx', 0o600);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new CageError({ code: 'CLI_BAD_ARGS', message: `--out ${out}: ${code === 'EEXIST' ? 'the file exists; refusing to overwrite a key' : (code ?? String(err))}` });
  }
  try {
    await fh.writeFile(signerKey + '\n');
    await fh.sync();
  } finally {
    await fh.close();
  }
  const verifier = notaryVerifier(did, publicKey);
  output.out(`did   ${did}`);
  output.out(`vkey  ${verifier.verifierKey}`);
  return 0;
}

async function readFlagFile(path: string, what: string): Promise<string> {
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch (err) {
    throw usage(`${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}

async function loadLogKey(value: string): Promise<NoteVerifier> {
  const text = value.startsWith('@') ? await readFlagFile(value.slice(1), '--log') : value;
  let v: NoteVerifier;
  try {
    v = parseVerifierKey(text);
  } catch (err) {
    throw usage(`--log: ${(err as Error).message}`);
  }
  if (v.type !== SIG_TYPE_ED25519) throw usage(`--log ${v.name}: a log key has signature type 0x01`);
  return v;
}

function jsonLine(e: NotaryEvent | { event: 'evidence-submitted' | 'evidence-submit-failed'; path: string; tx?: string; code?: string; message?: string }): string {
  return JSON.stringify({ time: new Date().toISOString(), ...e });
}

async function serve(v: Record<string, unknown>, output: NotaryOutput, opts: NotaryMainOptions): Promise<number> {
  const keyPath = v.key as string | undefined;
  const dataDir = v['data-dir'] as string | undefined;
  const logFlags = (v.log as string[] | undefined) ?? [];
  if (keyPath === undefined) throw usage('notary serve: --key KEYFILE is required');
  if (dataDir === undefined) throw usage('notary serve: --data-dir DIR is required');
  if (logFlags.length === 0) throw usage('notary serve: give at least one --log VKEY');
  const listen = parseHostPort((v.listen as string | undefined) ?? '127.0.0.1:7380');
  if (listen === undefined) throw usage(`--listen: expected HOST:PORT, got ${String(v.listen)}`);
  let maxBodyBytes: number | undefined;
  if (v['max-body-bytes'] !== undefined) {
    maxBodyBytes = Number(v['max-body-bytes']);
    if (!Number.isSafeInteger(maxBodyBytes) || maxBodyBytes < 64) throw usage('--max-body-bytes: expected an integer >= 64');
  }

  if ((v.chain === undefined) !== (v['chain-key'] === undefined)) throw usage('notary serve: --chain and --chain-key go together');
  const court = v.chain === undefined ? undefined : { client: new ChainClient(v.chain as string), key: readKeyFile(v['chain-key'] as string) };

  const signerKey = await readFlagFile(keyPath, '--key');
  let did: string;
  try {
    const signer = parseSignerKey(signerKey);
    did = signer.name;
    const publicKey = signer.verifier.publicKey;
    if (did.startsWith('did:key:')) {
      if (did !== didKeyFromPublicKey(publicKey)) throw usage(`--key: the key is named ${did}, which is not its own did:key`);
    } else if (did.startsWith('did:web:')) {
      didWebUrl(did);
    } else {
      throw usage(`--key: the key name ${did} is not a DID (make keys with \`cage notary init\`)`);
    }
  } catch (err) {
    if (isCageError(err, 'CLI_BAD_ARGS')) throw err;
    throw usage(`--key ${keyPath}: ${(err as Error).message}`);
  }
  const cosigner = createCosigner(signerKey, () => Math.floor(Date.now() / 1000));
  const logs = new KnownLogs(await Promise.all(logFlags.map(loadLogKey)));

  const store = await NotaryStore.open(dataDir);
  let server: NotaryServer;
  try {
    server = await NotaryServer.start({
      cosigner,
      did,
      didDocument: buildDidDocument(did, cosigner.verifier.publicKey),
      logs,
      store,
      host: listen.host,
      port: listen.port,
      ...(maxBodyBytes === undefined ? {} : { maxBodyBytes }),
      onEvent: (e) => {
        output.err(jsonLine(e));
        const path = e.path;
        if (court !== undefined && e.event === 'evidence' && typeof path === 'string') {
          submitEvidence(court.client, court.key, path).then(
            (hash) => output.err(jsonLine({ event: 'evidence-submitted', path, tx: hash })),
            (err: unknown) => output.err(jsonLine({ event: 'evidence-submit-failed', path, code: isCageError(err) ? err.code : undefined, message: (err as Error).message })),
          );
        }
      },
    });
  } catch (err) {
    await store.close();
    if (isCageError(err)) throw err;
    const e = err as NodeJS.ErrnoException;
    throw new CageError({ code: 'GW_LISTEN_FAILED', message: `cannot listen on ${listen.host}:${listen.port}: ${e.code ?? e.message}` });
  }
  output.err(`cage notary: listening on ${server.url} as ${did} (logs: ${logs.origins.join(', ')})`);
  opts.onListening?.(server);
  const signal = await waitForStop(opts.stop);
  output.err(`cage notary: ${signal}: stopping`);
  await server.close();
  await store.close();
  output.err('cage notary: stopped');
  return 0;
}

/** Sends a kept evidence file to the Court (`court.submit`, a log-fork case); resolves with the tx hash once final and OK. */
async function submitEvidence(client: ChainClient, key: ChainKey, path: string): Promise<string> {
  const evidence = courtEvidence(JSON.parse(await readFile(path, 'utf8')) as unknown);
  const status = await client.call<{ chainId: string }>('chain_status');
  const tx = signTransaction({ chainId: status.chainId, nonce: await client.nonce(key.did), module: 'court', method: 'submit', args: { evidence } }, key);
  const hash = await client.sendTransaction(tx);
  await client.waitForTx(hash, { requireOk: true });
  return hash;
}

/** Resolves with what stopped the notary: SIGTERM, SIGINT or the `stop` signal. */
function waitForStop(stop: AbortSignal | undefined): Promise<string> {
  return new Promise((resolve) => {
    const done = (why: string) => {
      process.off('SIGTERM', onTerm);
      process.off('SIGINT', onInt);
      stop?.removeEventListener('abort', onAbort);
      resolve(why);
    };
    const onTerm = () => done('SIGTERM');
    const onInt = () => done('SIGINT');
    const onAbort = () => done('stop');
    process.once('SIGTERM', onTerm);
    process.once('SIGINT', onInt);
    if (stop?.aborted === true) onAbort();
    else stop?.addEventListener('abort', onAbort, { once: true });
  });
}

/** `cage notary <init|serve> …`; returns the exit code. */
export async function notaryMain(argv: string[], output: NotaryOutput, opts: NotaryMainOptions = {}): Promise<number> {
  try {
    const [cmd, ...rest] = argv;
    if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') {
      output.out(NOTARY_HELP.trimEnd());
      return cmd === undefined ? 2 : 0;
    }
    if (cmd === 'init') {
      const v = parseFlags(rest, { out: { type: 'string' }, 'did-web': { type: 'string' } }, 'init');
      if (v.help === true) return (output.out(NOTARY_HELP.trimEnd()), 0);
      return await init(v, output);
    }
    if (cmd === 'serve') {
      const v = parseFlags(
        rest,
        { key: { type: 'string' }, 'data-dir': { type: 'string' }, log: { type: 'string', multiple: true }, listen: { type: 'string' }, 'max-body-bytes': { type: 'string' }, chain: { type: 'string' }, 'chain-key': { type: 'string' } },
        'serve',
      );
      if (v.help === true) return (output.out(NOTARY_HELP.trimEnd()), 0);
      return await serve(v, output, opts);
    }
    throw usage(`unknown notary command "${cmd}"; run \`cage notary --help\``);
  } catch (err) {
    if (isCageError(err)) {
      output.err(`cage: ${err.code}: ${err.message}`);
      return err.code === 'CLI_BAD_ARGS' ? 2 : 1;
    }
    output.err(`cage: ${(err as Error).stack ?? String(err)}`);
    return 1;
  }
}
