/**
 * The `cage` command. Every bad flag or config is one line on stderr (`cage: CODE: message`) and a
 * non-zero exit: 2 for usage errors, 1 for everything else.
 */
import { pathToFileURL } from 'node:url';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { CageError, isCageError } from '../core/errors.js';
import { parseHostPort } from '../core/units.js';
import { Cage } from '../gateway/cage.js';
import { buildConfig, loadConfigFile, type CageConfig } from '../gateway/config/load.js';
import { startEchoApp, type EchoApp } from '../gateway/echo.js';
import { AUDIT_HELP, auditMain, consoleOutput } from './audit.js';
import { PQ_HELP, pqMain } from './pq.js';
import { ZK_HELP, zkMain } from './zk.js';
import { KEY_HELP, keyMain, POLICY_HELP, policyMain } from './policy.js';
import { NOTARY_HELP, notaryMain } from './notary.js';
import { CHAIN_HELP, chainMain } from './chain.js';
import { BANK_HELP, bankMain } from './bank.js';
import { COURT_HELP, courtMain } from './court.js';
import { GOV_HELP, govMain } from './gov.js';

const VERSION = '0.1.0';

const HELP = `cage ${VERSION}: HTTP Cage, a verifiable security gateway in front of any HTTP app

Usage: cage <command> [flags]

Commands:
  reverse-proxy   Front an app with one command (like \`caddy reverse-proxy\`)
  run             Run the cage from a YAML config file
  validate        Check a config file and exit
  audit           Verify the audit log offline: verify, consistency, replay, show
  pq              Post-quantum envelopes from the command line: fetch (like curl), keys
  notary          Run a DID notary (witness) for audit logs: init, serve
  chain           The embedded QBFT chain: init (genesis, keys), run (a validator), status
  bank            Tokens on the chain: balance, transfer, bond, unbond, escrow
  court           Evidence and disputes: submit-evidence, case, vote, answer
  gov             Governance: propose, vote, show
  zk              Anonymous group membership: identity new, prove (Groth16 proof header)
  policy          BISO policy bundles: check, keygen, sign, test (cases, coverage), explain
  key             API keys: new (prints the key and its config entry), hash
  help [command]  Show help for a command
  version         Print the version

Run \`cage <command> --help\` for a command's flags.
`;

type Options = NonNullable<ParseArgsConfig['options']>;

interface Command {
  summary: string;
  usage: string;
  options: Options;
  run(values: Record<string, unknown>): Promise<number>;
}

const COMMANDS: Record<string, Command> = {
  'reverse-proxy': {
    summary: 'Front an app with one command.',
    usage: `Usage: cage reverse-proxy [--from ADDR] [--to URL ...] [flags]

Starts the cage in front of one or more upstreams. With no --to it fronts a small built-in echo
app, so you can see it work at once.

Flags:
  --from ADDR         Listen address (default 127.0.0.1:8080)
  --to URL            Upstream URL, repeatable for load balancing (default: the built-in echo app)
  --admin ADDR        Admin listener: /healthz, /readyz, /metrics, /api/v1 (default 127.0.0.1:2019)
  --no-admin          Do not start the admin listener
  --data-dir DIR      Where the cage keeps its state (default ./.cage)
  --lb POLICY         round_robin | least_conn | random | first (default round_robin)
  --tls-cert FILE     Serve HTTPS (TLS 1.3) with this certificate chain (PEM) ...
  --tls-key FILE      ... and this private key (PEM)
  --trusted-proxy CIDR  Trust X-Forwarded-* / Forwarded from these peers (repeatable)
  --no-access-log     Do not write the JSON access log
  --audit MODE        async | sync | off: record every exchange in the audit log under
                      DATA_DIR/audit (default async; see docs/formats.md, \`cage audit --help\`)
  --log-level LEVEL   fatal | error | warn | info | debug | trace | silent (default info)
  -h, --help          Show this help
`,
    options: {
      audit: { type: 'string' },
      from: { type: 'string' },
      to: { type: 'string', multiple: true },
      admin: { type: 'string' },
      'no-admin': { type: 'boolean' },
      'data-dir': { type: 'string' },
      lb: { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'trusted-proxy': { type: 'string', multiple: true },
      'no-access-log': { type: 'boolean' },
      'log-level': { type: 'string' },
    },
    async run(v) {
      const from = (v.from as string | undefined) ?? '127.0.0.1:8080';
      if (parseHostPort(from) === undefined) throw usage(`--from: expected HOST:PORT, got ${from}`);
      const admin = v.admin as string | undefined;
      if (admin !== undefined && parseHostPort(admin) === undefined) throw usage(`--admin: expected HOST:PORT, got ${admin}`);
      if ((v['tls-cert'] === undefined) !== (v['tls-key'] === undefined)) throw usage('--tls-cert and --tls-key go together');
      const audit = (v.audit as string | undefined) ?? 'async';
      if (!['async', 'sync', 'off'].includes(audit)) throw usage(`--audit: expected async, sync or off, got ${audit}`);
      let echo: EchoApp | undefined;
      let to = v.to as string[] | undefined;
      if (to === undefined || to.length === 0) {
        echo = await startEchoApp();
        to = [echo.url];
      }
      const raw: Record<string, unknown> = {
        listen: from,
        admin: { listen: admin ?? '127.0.0.1:2019', enabled: v['no-admin'] !== true },
        data_dir: (v['data-dir'] as string | undefined) ?? '.cage',
        trusted_proxies: (v['trusted-proxy'] as string[] | undefined) ?? [],
        log: { access: v['no-access-log'] !== true, level: (v['log-level'] as string | undefined) ?? 'info' },
        audit: { enabled: audit !== 'off', default_mode: audit },
        routes: [{ name: 'default', upstreams: to, load_balancing: (v.lb as string | undefined) ?? 'round_robin' }],
      };
      if (v['tls-cert'] !== undefined) raw.tls = { cert: v['tls-cert'], key: v['tls-key'] };
      let config: CageConfig;
      try {
        config = buildConfig(raw);
      } catch (err) {
        await echo?.close();
        throw flagError(err);
      }
      if (echo !== undefined) process.stderr.write(`cage: no --to given; fronting the built-in echo app at ${echo.url}\n`);
      return serve({ config }, echo);
    },
  },
  run: {
    summary: 'Run the cage from a YAML config file.',
    usage: `Usage: cage run --config FILE

Runs the cage from a YAML config (see docs/config.md). SIGHUP or POST /api/v1/config/reload
re-reads the file: a valid config takes over without dropping in-flight requests or WebSockets;
an invalid one is refused and the old config keeps running. SIGTERM/SIGINT drain and stop.

Flags:
  -c, --config FILE   The config file (required)
  -h, --help          Show this help
`,
    options: { config: { type: 'string', short: 'c' } },
    async run(v) {
      const file = requireConfigFlag(v);
      const config = loadConfigFile(file);
      return serve({ config, configFile: file });
    },
  },
  validate: {
    summary: 'Check a config file and exit.',
    usage: `Usage: cage validate --config FILE

Checks the YAML config against the schema and prints a one-line summary; exits 1 with the
problem (its path in the file named) when it is invalid.

Flags:
  -c, --config FILE   The config file (required)
  -h, --help          Show this help
`,
    options: { config: { type: 'string', short: 'c' } },
    async run(v) {
      const file = requireConfigFlag(v);
      const config = loadConfigFile(file);
      process.stdout.write(`config OK: ${file}: listen ${config.listen.host}:${config.listen.port}, ${config.routes.length} route(s): ${config.routes.map((r) => r.name).join(', ')}\n`);
      return 0;
    },
  },
};

function usage(message: string): CageError {
  return new CageError({ code: 'CLI_BAD_ARGS', message });
}

/** Config errors from flags name the flag-level problem, not a YAML path. */
function flagError(err: unknown): unknown {
  if (!isCageError(err, 'CONFIG_INVALID')) return err;
  return usage(err.message.replace(/^routes\[0\]\.upstreams\[(\d+)\]/, '--to #$1').replace(/^listen/, '--from').replace(/^admin\.listen/, '--admin'));
}

function requireConfigFlag(v: Record<string, unknown>): string {
  const file = v.config as string | undefined;
  if (file === undefined) throw usage('--config FILE is required');
  return file;
}

/** Run until SIGTERM/SIGINT; SIGHUP reloads (when there is a config file). */
async function serve(opts: { config: CageConfig; configFile?: string }, echo?: EchoApp): Promise<number> {
  const cage = await Cage.start(opts);
  process.stderr.write(`cage: listening on ${opts.config.tls ? 'https' : 'http'}://${opts.config.listen.host}:${cage.port}` + (cage.admin ? `, admin on http://${opts.config.admin.listen.host}:${cage.adminPort}` : '') + '\n');
  process.on('SIGHUP', () => {
    cage.reload().catch(() => undefined); // refusal already logged with its reason
  });
  return new Promise((resolve) => {
    const stop = (signal: string) => {
      cage.logger.info({ signal }, 'signal received');
      void cage
        .shutdown()
        .then(() => echo?.close())
        .then(
          () => resolve(0),
          (err: unknown) => {
            // Never hang on a failed shutdown: say why and exit non-zero.
            process.stderr.write(`cage: shutdown failed: ${(err as Error).stack ?? String(err)}\n`);
            resolve(1);
          },
        );
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}

export async function main(argv: string[]): Promise<number> {
  try {
    const [name, ...rest] = argv;
    if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
      const which = name === 'help' ? rest[0] : undefined;
      const sub = which === 'audit' ? AUDIT_HELP : which === 'pq' ? PQ_HELP : which === 'notary' ? NOTARY_HELP : which === 'zk' ? ZK_HELP : which === 'chain' ? CHAIN_HELP : which === 'bank' ? BANK_HELP : which === 'court' ? COURT_HELP : which === 'gov' ? GOV_HELP : which === 'policy' ? POLICY_HELP : which === 'key' ? KEY_HELP : undefined;
      if (sub !== undefined) {
        process.stdout.write(sub);
        return 0;
      }
      const cmd = which === undefined ? undefined : COMMANDS[which];
      if (which !== undefined && cmd === undefined) throw usage(`unknown command "${which}"; run \`cage --help\``);
      process.stdout.write(cmd?.usage ?? HELP);
      return 0;
    }
    if (name === 'version' || name === '--version' || name === '-v') {
      process.stdout.write(`cage ${VERSION}\n`);
      return 0;
    }
    if (name === 'audit') return await auditMain(rest, consoleOutput());
    if (name === 'pq') return await pqMain(rest, consoleOutput());
    if (name === 'notary') return await notaryMain(rest, consoleOutput());
    if (name === 'chain') return await chainMain(rest, consoleOutput());
    if (name === 'bank') return await bankMain(rest, consoleOutput());
    if (name === 'court') return await courtMain(rest, consoleOutput());
    if (name === 'gov') return await govMain(rest, consoleOutput());
    if (name === 'zk') return await zkMain(rest, consoleOutput());
    if (name === 'policy') return await policyMain(rest, consoleOutput());
    if (name === 'key') return await keyMain(rest, consoleOutput());
    const cmd = COMMANDS[name];
    if (cmd === undefined) throw usage(`unknown command "${name}"; run \`cage --help\``);
    let values: Record<string, unknown>;
    try {
      ({ values } = parseArgs({ args: rest, options: { ...cmd.options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false }));
    } catch (err) {
      throw usage(`${name}: ${(err as Error).message.split('\n')[0]!.replace(/\. To specify a positional argument.*$/, '')}`);
    }
    if (values.help === true) {
      process.stdout.write(cmd.usage);
      return 0;
    }
    return await cmd.run(values);
  } catch (err) {
    if (isCageError(err)) {
      process.stderr.write(`cage: ${err.code}: ${err.message}\n`);
      return err.code === 'CLI_BAD_ARGS' ? 2 : 1;
    }
    process.stderr.write(`cage: ${(err as Error).stack ?? String(err)}\n`);
    return 1;
  }
}

// Run when executed directly (`node --import tsx cli/main.ts ...`); bin/cage.js calls main() itself.
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main(process.argv.slice(2)).then((code) => process.exit(code));
}
