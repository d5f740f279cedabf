/**
 * C2SP transparency log policies (https://c2sp.org/tlog-policy): parse and format the line-based
 * file (`log`, `witness`, `group`, `quorum`), and check that a cosigned checkpoint satisfies one.
 *
 * Trust: a policy file is operator configuration, parsed strictly (unknown keywords, forward
 * references, duplicate keys or names and a missing or second quorum line are errors,
 * AUDIT_BAD_POLICY). Checkpoints checked against it are attacker-controlled. Deviation: the file
 * must be UTF-8 (the spec allows any high-bit octets, and recommends UTF-8).
 */
import { CageError } from '../core/errors.js';
import { openCheckpoint, parseCheckpoint, type Checkpoint } from './checkpoint.js';
import { decodeUtf8, parseNote, parseVerifierKey, SIG_TYPE_COSIGNATURE_V1, SIG_TYPE_ED25519, type NoteVerifier } from './note.js';

export interface PolicyLog {
  readonly verifier: NoteVerifier;
  readonly url?: string;
}

export interface PolicyWitness {
  readonly name: string;
  readonly verifier: NoteVerifier;
  readonly url?: string;
}

export interface PolicyGroup {
  readonly name: string;
  /** At least this many members must have witnessed (1 for `any`, n for `all`). */
  readonly threshold: number;
  /** The spelling of the threshold in the file. */
  readonly thresholdText: 'all' | 'any' | string;
  readonly members: readonly string[];
}

export interface Policy {
  readonly logs: readonly PolicyLog[];
  readonly witnesses: readonly PolicyWitness[];
  readonly groups: readonly PolicyGroup[];
  /** A witness name, a group name, or `none`. */
  readonly quorum: string;
}

/** tlog-policy §Implementation limits recommends at least 32 of each; we accept up to 256. */
export const MAX_POLICY_ENTRIES = 256;

function bad(message: string): CageError {
  return new CageError({ code: 'AUDIT_BAD_POLICY', message });
}

// Allowed octets: tab, newline, 0x20–0x7E and (opaque, here UTF-8) 0x80 and above.
// eslint-disable-next-line no-control-regex -- matching the control characters the spec forbids
const FORBIDDEN_RE = /[\0-\x08\x0b-\x1f\x7f]/;
const THRESHOLD_RE = /^[1-9][0-9]*$/;

function key(line: number, vkey: string, type: number, role: string): NoteVerifier {
  let v: NoteVerifier;
  try {
    v = parseVerifierKey(vkey);
  } catch (err) {
    throw bad(`line ${line}: bad ${role} key: ${(err as Error).message}`);
  }
  if (v.type !== type) throw bad(`line ${line}: a ${role} key must have signature type 0x0${type}`);
  return v;
}

/** Parses a policy file. Throws AUDIT_BAD_POLICY naming the line. */
export function parsePolicy(input: string | Uint8Array): Policy {
  const text = typeof input === 'string' ? input : decodeUtf8(input);
  if (text === undefined) throw bad('policy file is not valid UTF-8');
  if (FORBIDDEN_RE.test(text)) throw bad('policy file contains a control character other than tab and newline');
  if (text.length > 0 && !text.endsWith('\n')) throw bad('the last line of the policy file does not end with a newline');
  const logs: PolicyLog[] = [];
  const witnesses: PolicyWitness[] = [];
  const groups: PolicyGroup[] = [];
  const names = new Map<string, 'witness' | 'group'>();
  const logKeys = new Set<string>();
  const witnessKeys = new Set<string>();
  let quorum: string | undefined;
  const lines = text.split('\n').slice(0, -1);
  lines.forEach((raw, i) => {
    const n = i + 1;
    const words = raw.split(/[ \t]+/).filter((w) => w.length > 0);
    if (words.length === 0 || words[0]!.startsWith('#')) return;
    const [kw, ...args] = words as [string, ...string[]];
    const defineName = (name: string, kind: 'witness' | 'group') => {
      if (name === 'none') throw bad(`line ${n}: the name "none" is predefined`);
      if (names.has(name)) throw bad(`line ${n}: the name ${JSON.stringify(name)} is already defined`);
      if (names.size >= 2 * MAX_POLICY_ENTRIES) throw bad(`line ${n}: too many names`);
      names.set(name, kind);
    };
    switch (kw) {
      case 'log': {
        if (args.length < 1 || args.length > 2) throw bad(`line ${n}: expected "log <vkey> [<url>]"`);
        const verifier = key(n, args[0]!, SIG_TYPE_ED25519, 'log');
        const pk = verifier.publicKey.toString('hex');
        if (logKeys.has(pk)) throw bad(`line ${n}: duplicate log key`);
        if (logs.length >= MAX_POLICY_ENTRIES) throw bad(`line ${n}: more than ${MAX_POLICY_ENTRIES} logs`);
        logKeys.add(pk);
        logs.push(args[1] === undefined ? { verifier } : { verifier, url: args[1] });
        return;
      }
      case 'witness': {
        if (args.length < 2 || args.length > 3) throw bad(`line ${n}: expected "witness <name> <vkey> [<url>]"`);
        const [name, vkey, url] = args as [string, string, string | undefined];
        const verifier = key(n, vkey, SIG_TYPE_COSIGNATURE_V1, 'witness');
        const pk = verifier.publicKey.toString('hex');
        if (witnessKeys.has(pk)) throw bad(`line ${n}: duplicate witness key`);
        defineName(name, 'witness');
        witnessKeys.add(pk);
        witnesses.push(url === undefined ? { name, verifier } : { name, verifier, url });
        return;
      }
      case 'group': {
        if (args.length < 3) throw bad(`line ${n}: expected "group <name> <all|any|k> <name>..."`);
        const [name, t, ...members] = args as [string, string, ...string[]];
        const seen = new Set<string>();
        for (const m of members) {
          if (m === 'none') throw bad(`line ${n}: "none" cannot be a group member`);
          if (!names.has(m)) throw bad(`line ${n}: ${JSON.stringify(m)} is not defined on a preceding line`);
          if (seen.has(m)) throw bad(`line ${n}: ${JSON.stringify(m)} is listed twice`);
          seen.add(m);
        }
        let threshold: number;
        if (t === 'all') threshold = members.length;
        else if (t === 'any') threshold = 1;
        else if (THRESHOLD_RE.test(t) && Number(t) <= members.length) threshold = Number(t);
        else throw bad(`line ${n}: threshold ${JSON.stringify(t)} is not all, any or a decimal k with 1 <= k <= ${members.length}`);
        defineName(name, 'group');
        groups.push({ name, threshold, thresholdText: t, members });
        return;
      }
      case 'quorum': {
        if (args.length !== 1) throw bad(`line ${n}: expected "quorum <name>"`);
        if (quorum !== undefined) throw bad(`line ${n}: a second quorum line`);
        if (args[0] !== 'none' && !names.has(args[0]!)) throw bad(`line ${n}: quorum ${JSON.stringify(args[0])} is not defined on a preceding line`);
        quorum = args[0]!;
        return;
      }
      default:
        throw bad(`line ${n}: unknown keyword ${JSON.stringify(kw)}`);
    }
  });
  if (quorum === undefined) throw bad('policy has no quorum line');
  return Object.freeze({ logs, witnesses, groups, quorum });
}

/** Formats a policy (logs, witnesses, groups, quorum, in that order); parses back to the same policy. */
export function formatPolicy(p: Policy): string {
  let out = '';
  for (const l of p.logs) out += `log ${l.verifier.verifierKey}${l.url === undefined ? '' : ' ' + l.url}\n`;
  for (const w of p.witnesses) out += `witness ${w.name} ${w.verifier.verifierKey}${w.url === undefined ? '' : ' ' + w.url}\n`;
  for (const g of p.groups) out += `group ${g.name} ${g.thresholdText} ${g.members.join(' ')}\n`;
  out += `quorum ${p.quorum}\n`;
  parsePolicy(out);
  return out;
}

/** Whether the witnesses named in `cosigned` satisfy the policy's quorum (tlog-policy §Defining a witness group). */
export function quorumSatisfied(p: Policy, cosigned: ReadonlySet<string>): boolean {
  const groups = new Map(p.groups.map((g) => [g.name, g]));
  const memo = new Map<string, boolean>();
  const witnessed = (name: string): boolean => {
    if (name === 'none') return true;
    const cached = memo.get(name);
    if (cached !== undefined) return cached;
    const g = groups.get(name);
    const r = g === undefined ? cosigned.has(name) : g.members.filter(witnessed).length >= g.threshold;
    memo.set(name, r);
    return r;
  };
  return witnessed(p.quorum);
}

export interface PolicyVerdict {
  readonly checkpoint: Checkpoint;
  readonly log: PolicyLog;
  /** Names of the policy's witnesses whose cosignatures verified. */
  readonly witnesses: readonly string[];
  /** Their cosignature timestamps, by witness name (UNIX seconds). */
  readonly timestamps: ReadonlyMap<string, number>;
}

/**
 * Checks a signed checkpoint against a policy: signed by the policy log whose key name is the
 * checkpoint's origin, and cosigned by a quorum of its witnesses. A failing signature from any
 * policy key rejects the checkpoint. Throws AUDIT_BAD_SIGNATURE, AUDIT_BAD_CHECKPOINT or
 * AUDIT_QUORUM_NOT_MET.
 */
export function verifyCheckpointPolicy(p: Policy, noteText: string | Uint8Array, origin?: string): PolicyVerdict {
  const unverified = parseNote(noteText);
  const claimed = parseCheckpoint(unverified.text).origin;
  if (origin !== undefined && claimed !== origin) {
    throw new CageError({ code: 'AUDIT_BAD_CHECKPOINT', message: `checkpoint origin ${JSON.stringify(claimed)} is not ${JSON.stringify(origin)}` });
  }
  // tlog-policy: the log's key name corresponds to its origin line.
  const log = p.logs.find((l) => l.verifier.name === claimed && unverified.signatures.some((s) => s.name === l.verifier.name && s.keyId === l.verifier.keyId));
  if (log === undefined) {
    throw new CageError({ code: 'AUDIT_BAD_SIGNATURE', message: `checkpoint has no signature from a policy log for origin ${JSON.stringify(claimed)}` });
  }
  const opened = openCheckpoint(noteText, log.verifier, { cosigners: p.witnesses.map((w) => w.verifier) });
  const byKey = new Map(p.witnesses.map((w) => [`${w.verifier.name}+${w.verifier.keyId}`, w.name]));
  const timestamps = new Map<string, number>();
  for (const s of opened.cosignatures) {
    const name = byKey.get(`${s.name}+${s.keyId}`);
    if (name !== undefined) timestamps.set(name, s.timestamp ?? 0);
  }
  const witnesses = [...timestamps.keys()];
  if (!quorumSatisfied(p, new Set(witnesses))) {
    const who = witnesses.length === 0 ? 'no policy witness' : witnesses.join(', ');
    throw new CageError({ code: 'AUDIT_QUORUM_NOT_MET', message: `checkpoint cosigned by ${who}: quorum ${p.quorum} not met` });
  }
  return Object.freeze({ checkpoint: opened.checkpoint, log, witnesses, timestamps });
}
