/**
 * `cage pq …`: talk to a cage through its post-quantum envelope from the command line.
 *   fetch URL   like curl, but the request and the answer travel sealed (X-Wing HPKE, RFC 9458
 *               framing, Binary HTTP inside; client/pq.ts `pqFetch` does the work)
 *   keys URL    print the key configurations a gateway publishes (application/ohttp-keys)
 * Exit codes: 0 for any HTTP answer (a 404 or a 502 inside the envelope included), 1 when the
 * exchange could not be protected or the server not reached (`cage: CODE: message`), 2 for bad
 * flags (`cage: CLI_BAD_ARGS: …`).
 *
 * Trust: the key list is fetched over the URL's own scheme; over plain HTTP anyone on the path can
 * swap it and read the request (RFC 9458 §3). Use https://, or a keys URL you trust.
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { STATUS_CODES } from 'node:http';
import { DEFAULT_KEYS_PATH, pqFetch, type PqOptions } from '../client/pq.js';
import { CageError } from '../core/errors.js';
import { BadArgs, runSubcommands, type Subcommand, type SubcommandOutput } from './subcommands.js';
import { aeadById, kdfById, KEM_XWING, kemById } from '../pq/hpke.js';
import { decodeKeyConfig, decodeKeyConfigList, MEDIA_TYPE_OHTTP_KEYS, selectSuite, type KeyConfig } from '../pq/ohttp.js';

/** Where the command writes: stdout lines and stderr lines. */
export type PqOutput = SubcommandOutput;
type Sub = Subcommand;

const FETCH_USAGE = `Usage: cage pq fetch URL [-X METHOD] [-d BODY | --data-file FILE] [-H 'Name: value' ...] [-i]
                     [-o FILE] [--keys-url URL]

Sends one request to URL through the cage's post-quantum envelope and prints the answer's body,
like curl. The method, path, query, headers and body travel sealed to the cage's X-Wing
(ML-KEM-768 + X25519) key; only a POST of message/ohttp-req to URL is visible on the wire. The key
list comes from <origin of URL>${DEFAULT_KEYS_PATH} unless --keys-url names another.

Flags:
  -X, --request METHOD   The method (default GET, or POST with a body)
  -d, --data BODY        Send BODY (text/plain;charset=UTF-8 unless -H sets Content-Type)
      --data-file FILE   Send the bytes of FILE
  -H, --header 'N: V'    Add a request header (repeatable); it travels inside the envelope
  -i, --include          Print the status line and the headers of the answer first
  -o, --output FILE      Write the body to FILE instead of printing it
      --keys-url URL     Where the key configurations are published
  -h, --help             Show this help

The body is printed as UTF-8 text (use -o for binary answers). Exit 0 for any HTTP answer, 1 when
the exchange could not be protected or the server not reached, 2 for bad flags.
`;

const KEYS_USAGE = `Usage: cage pq keys URL

Fetches the key configurations a gateway publishes (application/ohttp-keys, RFC 9458 §3) and
prints, for each, its key id, KEM, the SHA-256 of its public key, and the KDF/AEAD pairs it takes.
URL is the keys URL itself, or just an origin (then <origin>${DEFAULT_KEYS_PATH} is read).

Flags:
  -h, --help   Show this help
`;

export const PQ_HELP = `Usage: cage pq <subcommand> [flags]

Subcommands:
  fetch URL     Send a request through the post-quantum envelope and print the answer (like curl)
  keys URL      Print the key configurations a gateway publishes

Run \`cage pq <subcommand> --help\` for its flags. Exit codes: 0 an HTTP answer came back, 1 the
exchange could not be protected or the server not reached, 2 bad flags.
`;

const TOKEN_RE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** Methods fetch refuses to send (the Fetch standard's forbidden methods). */
const FORBIDDEN_METHODS = new Set(['CONNECT', 'TRACE', 'TRACK']);

function parseUrl(text: string | undefined, what: string): URL {
  if (text === undefined) throw new BadArgs(`${what} is required`);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new BadArgs(`${what}: not a URL: ${text}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new BadArgs(`${what}: expected an http:// or https:// URL, got ${text}`);
  return url;
}

function onePositional(positionals: string[], what: string): string {
  if (positionals.length === 0) throw new BadArgs(`${what} is required`);
  if (positionals.length > 1) throw new BadArgs(`one ${what} expected, got ${positionals.length}: ${positionals.join(' ')}`);
  return positionals[0]!;
}

function parseHeader(line: string): [string, string] {
  const colon = line.indexOf(':');
  const name = colon < 0 ? '' : line.slice(0, colon).trim();
  if (!TOKEN_RE.test(name)) throw new BadArgs(`-H: expected 'Name: value', got ${JSON.stringify(line)}`);
  const value = line.slice(colon + 1).trim();
  if (/[\r\n\0]/.test(value)) throw new BadArgs(`-H ${name}: the value holds CR, LF or NUL`);
  return [name, value];
}

/** fetch's network failure (a TypeError whose cause names the socket error) as a CageError. */
function networkError(err: unknown, url: URL): CageError | undefined {
  if (!(err instanceof TypeError)) return undefined;
  const cause = (err as { cause?: { code?: unknown; message?: unknown } }).cause;
  const detail = typeof cause?.code === 'string' ? cause.code : typeof cause?.message === 'string' ? cause.message : err.message;
  return new CageError({ code: 'GW_UPSTREAM_UNREACHABLE', message: `cannot reach ${url.origin}: ${detail}`, cause: err });
}

const FETCH: Sub = {
  usage: FETCH_USAGE,
  options: {
    request: { type: 'string', short: 'X' },
    data: { type: 'string', short: 'd' },
    'data-file': { type: 'string' },
    header: { type: 'string', short: 'H', multiple: true },
    include: { type: 'boolean', short: 'i' },
    output: { type: 'string', short: 'o' },
    'keys-url': { type: 'string' },
  },
  async run(v, positionals, o) {
    const url = parseUrl(onePositional(positionals, 'URL'), 'URL');
    if (v.data !== undefined && v['data-file'] !== undefined) throw new BadArgs('-d and --data-file exclude each other');
    let body: string | Buffer | undefined = v.data as string | undefined;
    if (v['data-file'] !== undefined) {
      try {
        body = readFileSync(v['data-file'] as string);
      } catch (err) {
        throw new BadArgs(`--data-file: cannot read ${String(v['data-file'])}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
    }
    const method = (v.request as string | undefined) ?? (body === undefined ? 'GET' : 'POST');
    if (!TOKEN_RE.test(method)) throw new BadArgs(`-X: not a method: ${JSON.stringify(method)}`);
    if (FORBIDDEN_METHODS.has(method.toUpperCase())) throw new BadArgs(`-X ${method}: cannot be sent through the envelope`);
    if (body !== undefined && (method.toUpperCase() === 'GET' || method.toUpperCase() === 'HEAD')) throw new BadArgs(`-X ${method} cannot carry a body (-d / --data-file)`);
    const headers = new Headers();
    for (const line of (v.header as string[] | undefined) ?? []) headers.append(...parseHeader(line));
    const pq: PqOptions = {};
    if (v['keys-url'] !== undefined) pq.keysUrl = parseUrl(v['keys-url'] as string, '--keys-url');

    let res: Response;
    let answer: Buffer;
    try {
      res = await pqFetch(url, { method, headers, body, pq });
      answer = Buffer.from(await res.arrayBuffer());
    } catch (err) {
      throw networkError(err, url) ?? err;
    }
    if (v.include === true) {
      o.out(`HTTP ${res.status} ${STATUS_CODES[res.status] ?? ''}`.trimEnd());
      for (const [name, value] of res.headers) if (name !== 'set-cookie') o.out(`${name}: ${value}`);
      for (const cookie of res.headers.getSetCookie()) o.out(`set-cookie: ${cookie}`);
      o.out('');
    }
    if (v.output !== undefined) {
      try {
        writeFileSync(v.output as string, answer);
      } catch (err) {
        throw new BadArgs(`-o: cannot write ${String(v.output)}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
    } else if (answer.length > 0) {
      // Lines go out with a newline: one the body already ends with is not doubled.
      const text = answer.toString('utf8');
      o.out(text.endsWith('\n') ? text.slice(0, -1) : text);
    }
    return 0;
  },
};

/** Names for the ids this side implements; the id alone otherwise. */
function idName(id: number, name: string | undefined): string {
  return `0x${id.toString(16).padStart(4, '0')}${name === undefined ? '' : ` ${name}`}`;
}

function describeConfig(c: KeyConfig, used: boolean): string[] {
  const fingerprint = createHash('sha256').update(c.publicKey).digest('hex');
  const lines = [`key ${c.keyId}: KEM ${idName(c.kemId, kemById(c.kemId)?.name)}${c.kemId === KEM_XWING ? ' (post-quantum)' : ' (NOT post-quantum)'}, public key ${c.publicKey.length} bytes, sha256 ${fingerprint}${used ? ' [pq fetch uses this one]' : ''}`];
  for (const s of c.symmetric) lines.push(`  KDF ${idName(s.kdfId, kdfById(s.kdfId)?.name)}, AEAD ${idName(s.aeadId, aeadById(s.aeadId)?.name)}`);
  return lines;
}

const KEYS: Sub = {
  usage: KEYS_USAGE,
  options: {},
  async run(_v, positionals, o) {
    const given = parseUrl(onePositional(positionals, 'URL'), 'URL');
    const keysUrl = given.pathname === '/' && given.search === '' ? new URL(DEFAULT_KEYS_PATH, given.origin) : given;
    let res: Response;
    let body: Buffer;
    try {
      res = await fetch(keysUrl, { headers: { accept: MEDIA_TYPE_OHTTP_KEYS }, redirect: 'error' });
      body = Buffer.from(await res.arrayBuffer());
    } catch (err) {
      throw networkError(err, keysUrl) ?? err;
    }
    const type = (res.headers.get('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
    if (res.status !== 200 || type !== MEDIA_TYPE_OHTTP_KEYS) {
      throw new CageError({ code: 'PQ_UNSUPPORTED_SUITE', message: `${keysUrl.href} answered ${res.status} ${res.headers.get('content-type') ?? ''}, not ${MEDIA_TYPE_OHTTP_KEYS}`.trim() });
    }
    decodeKeyConfigList(body); // the whole list is well framed, or nothing is printed (RFC 9458 §3.2)
    let usedShown = false;
    let count = 0;
    for (let off = 0; off < body.length; count++) {
      const length = body.readUInt16BE(off);
      const one = body.subarray(off + 2, off + 2 + length);
      off += 2 + length;
      const kemId = one.readUInt16BE(1);
      if (kemById(kemId) === undefined) {
        o.out(`key ${one[0]!}: KEM ${idName(kemId, undefined)} (not implemented by this client; skipped)`);
        continue;
      }
      const config = decodeKeyConfig(one);
      let usable = false;
      if (!usedShown && config.kemId === KEM_XWING) {
        try {
          selectSuite(config);
          usable = true;
        } catch {
          // no pair this side implements
        }
      }
      usedShown ||= usable;
      for (const line of describeConfig(config, usable)) o.out(line);
    }
    o.out(`${count} key configuration${count === 1 ? '' : 's'} at ${keysUrl.href}${usedShown ? '' : '; none that pq fetch can use (X-Wing with a KDF/AEAD pair it implements)'}`);
    return 0;
  },
};

const SUBS: Record<string, Sub> = { fetch: FETCH, keys: KEYS };

/** `cage pq …`; returns the exit code. */
export function pqMain(argv: string[], o: PqOutput): Promise<number> {
  return runSubcommands('pq', PQ_HELP, SUBS, argv, o);
}
