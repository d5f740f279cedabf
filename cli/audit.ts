/**
 * `cage audit …`: offline checks of the audit log, by anyone holding its published files.
 *   verify       a tlog-proof file (+ optionally the record) against the log's verifier key
 *   consistency  two checkpoints of one log: the newer extends the older (append-only)
 *   replay       rebuild every root from the entries and compare with every stored checkpoint
 *   show         print one record readably
 * Exit codes: 0 verified, 1 verification failed (saying what failed), 2 bad input.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { CageError, isCageError } from '../core/errors.js';
import { openCheckpoint } from '../audit/checkpoint.js';
import { leafHash, nodeHash } from '../audit/hash.js';
import { decodeCheckpointRecord } from '../audit/io/checkpoint-log.js';
import { TileReader, dirFetch, httpFetch } from '../audit/io/tile-reader.js';
import { consistencyProof, treeRoot, verifyConsistency } from '../audit/merkle.js';
import { parseSignerKey, parseVerifierKey, type NoteVerifier } from '../audit/note.js';
import { parsePolicy } from '../audit/policy.js';
import { parseProof } from '../audit/proof.js';
import { decodeRecord, recordToJson, type AuditRecord } from '../audit/record.js';
import { TILE_WIDTH } from '../audit/tiles.js';
import { verifyProof } from '../audit/verify.js';
import { verifyAnchored } from '../chain/anchor-verify.js';
import { ChainClient } from '../chain/client.js';

type Options = NonNullable<ParseArgsConfig['options']>;

interface Sub {
  usage: string;
  options: Options;
  run(v: Record<string, unknown>, out: Output): Promise<number>;
}

export interface Output {
  out(line: string): void;
  err(line: string): void;
  /** Progress on stderr: rewritten in place on a terminal, every 10% otherwise. */
  progress(done: number, total: number): void;
}

/** Bad input: unreadable or malformed files, keys or flags (exit 2). */
class BadInput extends Error {}

function bad(message: string): BadInput {
  return new BadInput(message);
}

function readInput(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw bad(`cannot read ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** A verifier key given inline (`name+hash+base64`) or as `@FILE` / a file path. */
function loadVerifier(value: string): NoteVerifier {
  const text = value.startsWith('@') ? readInput(value.slice(1), 'log key file').toString('utf8').trim() : value.includes('+') ? value : readInput(value, 'log key file').toString('utf8').trim();
  try {
    return parseVerifierKey(text);
  } catch (err) {
    throw bad(`--log-key: ${isCageError(err) ? err.message : String(err)}`);
  }
}

/** As parsing, but input errors of the pure library become BadInput. */
function parsing<T>(what: string, f: () => T): T {
  try {
    return f();
  } catch (err) {
    if (isCageError(err)) throw bad(`${what}: ${err.code}: ${err.message}`);
    throw err;
  }
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

export function describeRecord(index: number, r: AuditRecord): string[] {
  const lines = [
    `record ${index}`,
    `  request id      ${r.requestId}`,
    `  time            ${new Date(r.time).toISOString()}`,
    `  route           ${r.route}`,
    `  request         ${r.method} ${typeof r.path === 'string' ? r.path : `(path hashed: ${hex(r.path)})`}`,
    `  host            ${r.host}`,
    `  client          ${r.clientAddress}${r.identity !== undefined ? ` as ${r.identity}` : ''}`,
    `  request headers sha256:${hex(r.requestHeadersDigest)}`,
    `  request body    ${r.requestBodyLength} bytes, sha256:${hex(r.requestBodyDigest)}`,
  ];
  if (r.clientSignature !== undefined) lines.push(`  client signed   ${r.clientSignature.signatureInput}`);
  lines.push(
    `  status          ${r.status}${r.cageError !== undefined ? ` (answered by the cage: ${r.cageError})` : ''}`,
    `  response heads  sha256:${hex(r.responseHeadersDigest)}`,
    `  response body   ${r.responseBodyLength} bytes, sha256:${hex(r.responseBodyDigest)}`,
    `  duration        ${(r.durationMicros / 1000).toFixed(3)} ms`,
  );
  if (r.originSignature !== undefined) {
    lines.push(`  app signature   key ${r.originSignature.keyId || '(malformed header)'}: ${r.originSignature.verified ? 'verified' : 'DISCREPANCY (did not verify)'}`);
  }
  if (r.decision !== undefined) lines.push(`  decision        ${r.decision.verdict}${r.decision.reasons.length > 0 ? ` (${r.decision.reasons.join(', ')})` : ''}`);
  if (r.incomplete === true) lines.push('  incomplete      sealed while the response was still streaming');
  return lines;
}

/** Where the log's published files are: a folder (the data dir, its audit/ folder) or a URL. */
function logSource(value: string, token: string | undefined): TileReader {
  if (/^https?:\/\//.test(value)) return new TileReader(httpFetch(value, token));
  return new TileReader(dirFetch(auditFolder(value)));
}

/** A data dir (with audit/) or the audit folder itself. */
function auditFolder(dir: string): string {
  try {
    readFileSync(join(dir, 'audit', 'state', 'origin'));
    return join(dir, 'audit');
  } catch {
    return dir;
  }
}

/** The verifier of the log kept in a folder: from its signer key (`log.key`). */
function folderVerifier(dir: string): NoteVerifier {
  const folder = auditFolder(dir);
  const text = readInput(join(folder, 'state', 'log.key'), 'log key').toString('utf8').trim();
  return parsing('log key', () => parseSignerKey(text)).verifier;
}

async function readEntry(reader: TileReader, index: number, size: number): Promise<Buffer> {
  const entries = await reader.bundle(Math.floor(index / TILE_WIDTH), size);
  return entries[index % TILE_WIDTH]!;
}

const SUBS: Record<string, Sub> = {
  verify: {
    usage: `Usage: cage audit verify --proof FILE --log-key VKEY [--record FILE] [--policy FILE] [--anchor RPC_URL [--log URL|DIR]]

Checks offline that the proof's checkpoint is signed by the log's key, that the inclusion proof
holds, and that the record (the one carried in the proof, or --record FILE) hashes to the leaf.
  --proof FILE     a c2sp.org/tlog-proof@v1 file (GET /api/v1/audit/proof/<index>)
  --log-key VKEY   the log's verifier key (name+hex+base64), or @FILE
  --record FILE    the record bytes you hold (else the proof's own copy)
  --policy FILE    a tlog-policy: also require its witness quorum
  --anchor URL     a chain node's JSON-RPC (http://HOST:PORT/rpc): also require the checkpoint, or
                   a later consistent one, to be anchored in a final block (docs/chain.md)
  --log URL|DIR    with --anchor: where to read the consistency proof to a later anchored checkpoint
  --token T        admin token for --log URL when it needs one
Exit 0 verified, 1 verification failed, 2 bad input.
`,
    options: { proof: { type: 'string' }, 'log-key': { type: 'string' }, record: { type: 'string' }, policy: { type: 'string' }, anchor: { type: 'string' }, log: { type: 'string' }, token: { type: 'string' } },
    async run(v, o) {
      if (v.proof === undefined) throw bad('--proof FILE is required');
      if (v['log-key'] === undefined && v.policy === undefined) throw bad('--log-key VKEY (or --policy FILE) is required');
      const proofText = readInput(v.proof as string, 'proof file');
      parsing('proof file', () => parseProof(proofText));
      const logKey = v['log-key'] === undefined ? undefined : loadVerifier(v['log-key'] as string);
      const policy = v.policy === undefined ? undefined : parsing('policy file', () => parsePolicy(readInput(v.policy as string, 'policy file')));
      const record = v.record === undefined ? undefined : readInput(v.record as string, 'record file');
      const r = verifyProof({ proof: proofText, logKey, record, policy });
      o.out(`verified: record ${r.index} is in ${r.checkpoint.origin} at tree size ${r.checkpoint.size}`);
      o.out(`  root    ${r.checkpoint.rootHash.toString('base64')}`);
      o.out(`  leaf    ${r.leafHash.toString('hex')}`);
      if (r.witnesses !== undefined) o.out(`  witnesses (quorum met): ${r.witnesses.join(', ')}`);
      if (r.record !== undefined) for (const line of describeRecord(r.index, r.record)) o.out(line);
      if (v.anchor !== undefined) {
        const verifier = logKey ?? policy!.logs.find((l) => l.verifier.name === r.checkpoint.origin)!.verifier;
        const reader = v.log === undefined ? undefined : logSource(v.log as string, v.token as string | undefined);
        const consistency = reader === undefined ? undefined : (oldSize: number, newSize: number) => reader.withHashes(newSize, (read) => consistencyProof(oldSize, newSize, read));
        const a = await verifyAnchored(new ChainClient(v.anchor as string), r.checkpoint, verifier, consistency);
        o.out(`anchored: size ${a.anchored.size}${a.anchored.size === r.checkpoint.size ? '' : ' (consistent with the proven size)'} in final block ${a.height} (head ${a.head}), tx ${a.txHash}`);
      }
      return 0;
    },
  },
  consistency: {
    usage: `Usage: cage audit consistency --old CHECKPOINT --new CHECKPOINT --log URL|DIR [--log-key VKEY] [--token T]

Checks that the newer checkpoint's tree extends the older one (RFC 9162 consistency), with the
hashes read from the log's published tiles: a data dir / audit folder, or a URL serving them
(the admin listener's /log/ prefix; --token when it needs the admin token).
  --log-key VKEY   verify both checkpoints' signatures (default for a DIR: the log's own key)
Exit 0 consistent, 1 not consistent (or a bad signature), 2 bad input.
`,
    options: { old: { type: 'string' }, new: { type: 'string' }, log: { type: 'string' }, 'log-key': { type: 'string' }, token: { type: 'string' } },
    async run(v, o) {
      for (const f of ['old', 'new', 'log']) if (v[f] === undefined) throw bad(`--${f} is required`);
      const source = v.log as string;
      const isUrl = /^https?:\/\//.test(source);
      const verifier = v['log-key'] !== undefined ? loadVerifier(v['log-key'] as string) : isUrl ? undefined : folderVerifier(source);
      if (verifier === undefined) o.err('warning: no --log-key: checkpoint signatures are NOT verified, only the Merkle consistency');
      const oldNote = readInput(v.old as string, 'old checkpoint').toString('utf8');
      const newNote = readInput(v.new as string, 'new checkpoint').toString('utf8');
      const open = (note: string, what: string) =>
        verifier !== undefined ? openCheckpoint(note, verifier).checkpoint : parsing(what, () => openCheckpointUnverified(note));
      const older = open(oldNote, 'old checkpoint');
      const newer = open(newNote, 'new checkpoint');
      if (older.origin !== newer.origin) throw new CageError({ code: 'AUDIT_BAD_CHECKPOINT', message: `the checkpoints name different logs: ${older.origin} and ${newer.origin}` });
      if (older.size > newer.size) throw bad(`--old has size ${older.size}, larger than --new's ${newer.size}`);
      const reader = logSource(source, v.token as string | undefined);
      const proof = await reader.withHashes(newer.size, (read) => consistencyProof(older.size, newer.size, read));
      verifyConsistency(older.size, newer.size, proof, older.rootHash, newer.rootHash);
      o.out(`consistent: ${newer.origin} size ${older.size} -> ${newer.size} is append-only (${proof.length} proof hashes)`);
      return 0;
    },
  },
  replay: {
    usage: `Usage: cage audit replay --data-dir DIR [--log-key VKEY]

Rebuilds every leaf hash and root from the log's entries and compares them with the stored hash
tiles and with every checkpoint in the history (each signature checked too). Reports the first
divergence exactly: the entry whose tile hash differs, or the checkpoint whose root differs.
Exit 0 all match, 1 a divergence, 2 bad input.
`,
    options: { 'data-dir': { type: 'string' }, 'log-key': { type: 'string' } },
    async run(v, o) {
      if (v['data-dir'] === undefined) throw bad('--data-dir DIR is required');
      const folder = auditFolder(v['data-dir'] as string);
      const verifier = v['log-key'] !== undefined ? loadVerifier(v['log-key'] as string) : folderVerifier(folder);
      const history = readInput(join(folder, 'state', 'checkpoints.log'), 'checkpoint history');
      const checkpoints: Array<{ size: number; note: string }> = [];
      for (let at = 0; at < history.length; ) {
        const got = decodeCheckpointRecord(history, at);
        if (got === undefined) {
          o.err(`warning: checkpoint history ends in ${history.length - at} unreadable bytes (a torn tail); ignored`);
          break;
        }
        checkpoints.push(got.record);
        at = got.next;
      }
      if (checkpoints.length === 0) throw bad(`no checkpoints in ${join(folder, 'state', 'checkpoints.log')}`);
      const reader = new TileReader(dirFetch(folder));
      const top = checkpoints[checkpoints.length - 1]!.size;
      // Compact range of the leaves so far: one subtree root per set bit of the count.
      const stack: Buffer[] = [];
      const rootOf = (): Buffer => {
        let r = stack[stack.length - 1]!;
        for (let i = stack.length - 2; i >= 0; i--) r = nodeHash(stack[i]!, r);
        return r;
      };
      let next = 0;
      let done = 0;
      for (const cp of checkpoints) {
        let body;
        try {
          body = openCheckpoint(cp.note, verifier).checkpoint;
        } catch (err) {
          throw new CageError({ code: 'AUDIT_BAD_SIGNATURE', message: `checkpoint #${done + 1} (size ${cp.size}): ${isCageError(err) ? err.message : String(err)}` });
        }
        if (body.size !== cp.size) throw new CageError({ code: 'AUDIT_STORE_CORRUPT', message: `checkpoint #${done + 1}: history says size ${cp.size}, its note says ${body.size}` });
        for (; next < cp.size; next += TILE_WIDTH - (next % TILE_WIDTH)) {
          const n = Math.floor(next / TILE_WIDTH);
          const entries = await reader.bundle(n, top);
          const tile = await reader.leafTile(n, top);
          const end = Math.min((n + 1) * TILE_WIDTH, cp.size);
          for (let i = next; i < end; i++) {
            const leaf = leafHash(entries[i % TILE_WIDTH]!);
            const stored = tile.subarray((i % TILE_WIDTH) * 32, (i % TILE_WIDTH) * 32 + 32);
            if (!leaf.equals(stored)) {
              throw new CageError({ code: 'AUDIT_STORE_CORRUPT', message: `entry ${i}: its leaf hash ${leaf.toString('hex')} differs from the stored tile hash ${hex(stored)} (entry bundle or tile altered)` });
            }
            // Push the leaf and merge equal-sized subtrees (the binary counter of RFC 9162's tree).
            stack.push(leaf);
            for (let c = i + 1; c % 2 === 0; c /= 2) {
              const right = stack.pop()!;
              stack.push(nodeHash(stack.pop()!, right));
            }
          }
          o.progress(end, top);
          if (end < (n + 1) * TILE_WIDTH) {
            next = end;
            break;
          }
        }
        const root = cp.size === 0 ? treeRoot(0, () => Buffer.alloc(0)) : rootOf();
        if (!root.equals(body.rootHash)) {
          throw new CageError({ code: 'AUDIT_BAD_PROOF', message: `checkpoint #${done + 1} (size ${cp.size}): stored root ${body.rootHash.toString('base64')}, rebuilt ${root.toString('base64')}` });
        }
        done++;
      }
      o.out(`replayed: ${top} entries, ${done} checkpoints of ${checkpoints[0] !== undefined ? openCheckpoint(checkpoints[0].note, verifier).checkpoint.origin : ''}: every leaf hash and root matches`);
      return 0;
    },
  },
  show: {
    usage: `Usage: cage audit show --data-dir DIR (--index N | --request-id ID) [--json]

Prints one record of the log readably (or as JSON), read from the published entry bundles.
`,
    options: { 'data-dir': { type: 'string' }, index: { type: 'string' }, 'request-id': { type: 'string' }, json: { type: 'boolean' } },
    async run(v, o) {
      if (v['data-dir'] === undefined) throw bad('--data-dir DIR is required');
      if ((v.index === undefined) === (v['request-id'] === undefined)) throw bad('give exactly one of --index N and --request-id ID');
      const folder = auditFolder(v['data-dir'] as string);
      const reader = new TileReader(dirFetch(folder));
      const size = parsing('checkpoint', () => openCheckpointUnverified(readInput(join(folder, 'checkpoint'), 'checkpoint').toString('utf8'))).size;
      let index: number;
      let bytes: Buffer | undefined;
      if (v.index !== undefined) {
        if (!/^(0|[1-9][0-9]{0,15})$/.test(v.index as string)) throw bad('--index must be a decimal integer');
        index = Number(v.index);
        if (index >= size) throw new CageError({ code: 'AUDIT_INDEX_OUT_OF_RANGE', message: `index ${index} is beyond the published log (size ${size})` });
        bytes = await readEntry(reader, index, size);
      } else {
        index = -1;
        for (let n = 0; n * TILE_WIDTH < size && bytes === undefined; n++) {
          const entries = await reader.bundle(n, size);
          for (let i = 0; i < entries.length; i++) {
            if (decodeRecord(entries[i]!).requestId === v['request-id']) {
              index = n * TILE_WIDTH + i;
              bytes = entries[i];
              break;
            }
          }
        }
        if (bytes === undefined) throw new CageError({ code: 'AUDIT_INDEX_OUT_OF_RANGE', message: `no record with request id ${String(v['request-id'])} in the first ${size} records` });
      }
      const record = decodeRecord(bytes!);
      if (v.json === true) o.out(JSON.stringify({ index, record: recordToJson(record) }, null, 2));
      else for (const line of describeRecord(index, record)) o.out(line);
      return 0;
    },
  },
};

/** The checkpoint body of a note, signatures unchecked (only where the user gave no key). */
function openCheckpointUnverified(note: string) {
  const sep = note.indexOf('\n\n');
  if (sep < 0) throw new CageError({ code: 'AUDIT_BAD_NOTE', message: 'not a signed note (no blank line before the signatures)' });
  const body = note.slice(0, sep + 1);
  const origin = body.split('\n')[0]!;
  // openCheckpoint with a throwaway verifier of that name would reject the note; parse the body.
  return parseBody(body, origin);
}

function parseBody(body: string, origin: string) {
  const [, sizeText, rootText] = body.split('\n');
  const size = Number(sizeText);
  const rootHash = Buffer.from(rootText ?? '', 'base64');
  if (!/^(0|[1-9][0-9]*)$/.test(sizeText ?? '') || !Number.isSafeInteger(size) || rootHash.length !== 32) {
    throw new CageError({ code: 'AUDIT_BAD_CHECKPOINT', message: 'malformed checkpoint body' });
  }
  return { origin, size, rootHash, extensions: [] as string[] };
}

export const AUDIT_HELP = `Usage: cage audit <verify|consistency|replay|show> [flags]

  verify        check a tlog-proof file offline (checkpoint signature, inclusion, record)
  consistency   check that a newer checkpoint extends an older one
  replay        rebuild every root from the entries and compare with every checkpoint
  show          print a record readably

Run \`cage audit <subcommand> --help\` for its flags. Exit codes: 0 verified, 1 verification
failed (with what failed), 2 bad input.
`;

/** `cage audit …`; returns the exit code. */
export async function auditMain(argv: string[], o: Output): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h') {
    o.out(AUDIT_HELP.trimEnd());
    return name === undefined ? 2 : 0;
  }
  const sub = SUBS[name];
  if (sub === undefined) {
    o.err(`cage: CLI_BAD_ARGS: unknown audit subcommand "${name}"; run \`cage audit --help\``);
    return 2;
  }
  let values: Record<string, unknown>;
  try {
    ({ values } = parseArgs({ args: rest, options: { ...sub.options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false }));
  } catch (err) {
    o.err(`cage: CLI_BAD_ARGS: audit ${name}: ${(err as Error).message.split('\n')[0]!.replace(/\. To specify a positional argument.*$/, '')}`);
    return 2;
  }
  if (values.help === true) {
    o.out(sub.usage.trimEnd());
    return 0;
  }
  try {
    return await sub.run(values, o);
  } catch (err) {
    if (err instanceof BadInput) {
      o.err(`cage: CLI_BAD_ARGS: audit ${name}: ${err.message}`);
      return 2;
    }
    if (isCageError(err)) {
      o.err(`FAILED: ${err.code}: ${err.message}`);
      return 1;
    }
    throw err;
  }
}

export function consoleOutput(): Output {
  let lastPct = -1;
  return {
    out: (line) => process.stdout.write(`${line}\n`),
    err: (line) => process.stderr.write(`${line}\n`),
    progress(done, total) {
      const pct = total === 0 ? 100 : Math.floor((done * 100) / total);
      if (process.stderr.isTTY) {
        const width = 30;
        const filled = Math.round((pct * width) / 100);
        process.stderr.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${pct}% ${done}/${total}${done >= total ? '\n' : ''}`);
      } else if (Math.floor(pct / 10) !== Math.floor(lastPct / 10) || done >= total) {
        process.stderr.write(`replay: ${pct}% (${done}/${total} entries)\n`);
      }
      lastPct = pct;
    },
  };
}
