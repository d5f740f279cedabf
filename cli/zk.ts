/**
 * `cage zk …`: anonymous membership from the command line (client side, client/zk.ts).
 *   identity new [--out FILE]    make a secret identity; print its commitment (what a group admin adds)
 *   prove --group URL|FILE --identity FILE --scope S --request 'METHOD URL' [--body FILE]
 *                                print a `cage-zk-proof: …` header line for that one request
 * Exit codes: 0 done, 1 failed (`cage: CODE: message`), 2 bad flags (`cage: CLI_BAD_ARGS: …`).
 * The identity file holds the member's secret: it is written with mode 0600 and never sent anywhere.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { Prover } from '../circuits/prover.js';
import { createIdentity, exportIdentity, importIdentity, loadGroup, proveAccess, ZK_PROOF_HEADER } from '../client/zk.js';
import { CageError } from '../core/errors.js';
import { BadArgs, runSubcommands, type Subcommand, type SubcommandOutput } from './subcommands.js';

export type ZkOutput = SubcommandOutput;

export const ZK_HELP = `Usage: cage zk <subcommand> [flags]

Subcommands:
  identity new [--out FILE]   Create a secret identity and print its commitment
  prove ...                   Prove group membership for one request; prints the header line

Run \`cage zk <subcommand> --help\` for its flags. Exit codes: 0 done, 1 failed, 2 bad flags.
`;

const IDENTITY_USAGE = `Usage: cage zk identity new [--out FILE]

Creates a random identity (a secret in the BN254 scalar field). With --out, writes it to FILE
(mode 0600, refuses to overwrite) and prints the commitment; without, prints the identity JSON.
Give the group admin the commitment only; keep the secret.

Flags:
  -o, --out FILE   Write the identity to FILE
  -h, --help       Show this help
`;

const PROVE_USAGE = `Usage: cage zk prove --group URL|FILE --identity FILE --scope SCOPE --request 'METHOD URL'
                    [--body FILE] [--epoch N | --epoch-seconds S] [--artifacts DIR]

Proves, without revealing which member, that the identity belongs to the group, for exactly this
request (method, path and query, SHA-256 of the body, and the current time; the cage accepts it
within its time window). Prints one line: \`cage-zk-proof: …\`, e.g. for curl -H "$(cage zk prove …)".

Flags:
  --group URL|FILE      The group export (JSON) to prove against
  --identity FILE       The identity file from \`cage zk identity new\`
  --scope SCOPE         The route's scope (from the cage's config)
  --request 'M URL'     The request's method and full URL
  --body FILE           The request body (default: none)
  --epoch N             The epoch (default: now / epoch-seconds)
  --epoch-seconds S     The cage's epoch length (default 3600)
  --artifacts DIR       The circuit artifacts (default circuits/build)
  -h, --help            Show this help
`;

function need(values: Record<string, unknown>, name: string): string {
  const v = values[name];
  if (typeof v !== 'string' || v === '') throw new BadArgs(`--${name} is required`);
  return v;
}

function integer(values: Record<string, unknown>, name: string, min: number): number | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !/^[0-9]{1,15}$/.test(v) || Number(v) < min) throw new BadArgs(`--${name} must be an integer ≥ ${min}`);
  return Number(v);
}

function readIdentityJson(file: string): unknown {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new CageError({ code: 'ZK_BAD_IDENTITY', message: `cannot read the identity file ${file}: ${(err as Error).message}`, cause: err });
  }
}

const SUBS: Record<string, Subcommand> = {
  identity: {
    usage: IDENTITY_USAGE,
    options: { out: { type: 'string', short: 'o' } },
    async run(values, positionals, o) {
      if (positionals.length !== 1 || positionals[0] !== 'new') throw new BadArgs('expected `identity new`');
      const identity = await createIdentity();
      const json = JSON.stringify(exportIdentity(identity), null, 1);
      if (typeof values.out === 'string') {
        try {
          writeFileSync(values.out, json + '\n', { mode: 0o600, flag: 'wx' });
        } catch (err) {
          throw new CageError({ code: 'ZK_BAD_IDENTITY', message: `cannot write ${values.out}: ${(err as Error).message}`, cause: err });
        }
        o.out(`commitment: ${identity.commitment}`);
      } else {
        o.out(json);
      }
      return 0;
    },
  },
  prove: {
    usage: PROVE_USAGE,
    options: {
      group: { type: 'string' }, identity: { type: 'string' }, scope: { type: 'string' }, request: { type: 'string' },
      body: { type: 'string' }, epoch: { type: 'string' }, 'epoch-seconds': { type: 'string' }, artifacts: { type: 'string' },
    },
    async run(values, positionals, o) {
      if (positionals.length > 0) throw new BadArgs(`unexpected argument ${positionals[0]}`);
      const m = /^([A-Za-z]+)\s+(\S+)$/.exec(need(values, 'request').trim());
      if (!m) throw new BadArgs("--request must be 'METHOD URL'");
      let url: URL;
      try {
        url = new URL(m[2]!);
      } catch {
        throw new BadArgs('--request: the URL must be absolute (http://host/path)');
      }
      const scope = need(values, 'scope');
      const epoch = integer(values, 'epoch', 0);
      const epochSeconds = integer(values, 'epoch-seconds', 1);
      if (epoch !== undefined && epochSeconds !== undefined) throw new BadArgs('give --epoch or --epoch-seconds, not both');
      const identity = await importIdentity(readIdentityJson(need(values, 'identity')));
      const group = await loadGroup(need(values, 'group'));
      let body: Uint8Array | undefined;
      if (typeof values.body === 'string') {
        try {
          body = readFileSync(values.body);
        } catch (err) {
          throw new BadArgs(`--body: ${(err as Error).message}`);
        }
      }
      const prover = await Prover.create({ artifactsDir: typeof values.artifacts === 'string' ? values.artifacts : undefined });
      try {
        const proof = await proveAccess({ identity, group, scope, epoch, epochSeconds, prover, request: { method: m[1]!, url, body } });
        o.out(`${ZK_PROOF_HEADER}: ${proof.header}`);
      } finally {
        await prover.close();
      }
      return 0;
    },
  },
};

export function zkMain(argv: string[], o: ZkOutput): Promise<number> {
  return runSubcommands('zk', ZK_HELP, SUBS, argv, o);
}
