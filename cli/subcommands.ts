/**
 * The dispatcher shared by `cage <room> <subcommand> …` commands: help, flag parsing (strict,
 * with positionals), and the error → exit code mapping every room uses:
 *   0 done, 1 `cage: CODE: message` for a CageError (or a stack for a bug), 2 `cage: CLI_BAD_ARGS: …`.
 * cli/zk.ts uses it; the other rooms' copies (cli/pq.ts, cli/audit.ts, …) can switch to it.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { isCageError } from '../core/errors.js';

export interface SubcommandOutput {
  out(line: string): void;
  err(line: string): void;
}

export interface Subcommand<O extends SubcommandOutput = SubcommandOutput> {
  usage: string;
  options: NonNullable<ParseArgsConfig['options']>;
  run(values: Record<string, unknown>, positionals: string[], o: O): Promise<number>;
}

/** A flag or argument error: exit 2 with `cage: CLI_BAD_ARGS: <room> <sub>: message`. */
export class BadArgs extends Error {}

export async function runSubcommands<O extends SubcommandOutput>(room: string, help: string, subs: Record<string, Subcommand<O>>, argv: string[], o: O): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    o.out(help.trimEnd());
    return name === undefined ? 2 : 0;
  }
  const sub = Object.hasOwn(subs, name) ? subs[name] : undefined;
  if (sub === undefined) {
    o.err(`cage: CLI_BAD_ARGS: unknown ${room} subcommand "${name}"; run \`cage ${room} --help\``);
    return 2;
  }
  try {
    let values: Record<string, unknown>;
    let positionals: string[];
    try {
      ({ values, positionals } = parseArgs({ args: rest, options: { ...sub.options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: true }));
    } catch (err) {
      throw new BadArgs((err as Error).message.split('\n')[0]!.replace(/\. To specify a positional argument.*$/, ''));
    }
    if (values.help === true) {
      o.out(sub.usage.trimEnd());
      return 0;
    }
    return await sub.run(values, positionals, o);
  } catch (err) {
    if (err instanceof BadArgs) {
      o.err(`cage: CLI_BAD_ARGS: ${room} ${name}: ${err.message}`);
      return 2;
    }
    if (isCageError(err)) {
      o.err(`cage: ${err.code}: ${err.message}`);
      return 1;
    }
    o.err(`cage: ${(err as Error).stack ?? String(err)}`);
    return 1;
  }
}
