/**
 * The cage's notary registry: which DIDs witness its log, where their tlog-witness submission
 * prefix is, and the quorum k of n. A registry is an immutable value (every change returns a new
 * one, validated), so the cage can swap it atomically; `toPolicy` writes it as a C2SP tlog-policy
 * file (https://c2sp.org/tlog-policy) and `checkQuorum` judges a cosigned checkpoint against it.
 * `loadRegistry`/`saveRegistry` keep it in one JSON file, written durably.
 *
 * Policy shape: `log <vkey>`, one `witness <name> <vkey> <url>` per notary, `group <GROUP> <k>
 * <names…>` and `quorum <GROUP>`; with no notaries, `quorum none`. A notary's vkey is derived from
 * its DID (key name = DID, type 0x04; see notary/did.ts).
 *
 * Trust: entries come from the authenticated admin API or the cage's own file, and are validated
 * strictly all the same (a did:key's verifier key must be the one its DID encodes; a did:web's
 * key is what its document said when it was registered). Cosigned notes are untrusted.
 */
import { CageError, isCageError } from '../core/errors.js';
import { openCheckpoint } from '../audit/checkpoint.js';
import { parseVerifierKey, SIG_TYPE_COSIGNATURE_V1, SIG_TYPE_ED25519, type NoteVerifier } from '../audit/note.js';
import { formatPolicy, parsePolicy, quorumSatisfied, type Policy } from '../audit/policy.js';
import { canonicalDid, publicKeyFromDidKey, resolveNotaryDid, type ResolveOptions } from './did.js';
import { storeError, writeFileDurable } from './io/files.js';
import { readFile } from 'node:fs/promises';

export const REGISTRY_TYPE = 'cage-notary-registry/v1';
/** The policy group that holds every notary with threshold k. */
export const POLICY_GROUP = 'cage-notaries';
/** tlog-policy §Implementation limits: 32 witnesses at least; we allow as many as the policy parser. */
export const MAX_NOTARIES = 64;
const MAX_NAME = 128;

export interface NotaryEntry {
  /** The notary's DID (did:key canonical form, or did:web). */
  readonly did: string;
  /** Its tlog-witness submission prefix (POST <url>/add-checkpoint). */
  readonly url: string;
  /** Its name in the policy file (default: the DID). */
  readonly name: string;
  /** `<DID>+<key ID>+<base64(0x04 ‖ Ed25519 key)>`. */
  readonly verifierKey: string;
}

export interface NotaryInput {
  readonly did: string;
  readonly url: string;
  readonly name?: string;
  readonly verifierKey: string;
}

export interface QuorumCheck {
  readonly met: boolean;
  /** k (0 when there are no notaries: `quorum none`). */
  readonly quorum: number;
  /** DIDs of the registered notaries whose cosignatures verified. */
  readonly cosigners: readonly string[];
}

/** The registry file: `{"type":"cage-notary-registry/v1","quorum":k,"notaries":[{did,url,name,verifier_key}]}`. */
export interface RegistryFile {
  readonly type: typeof REGISTRY_TYPE;
  readonly quorum: number;
  readonly notaries: readonly { readonly did: string; readonly url: string; readonly name: string; readonly verifier_key: string }[];
}

function bad(message: string): CageError {
  return new CageError({ code: 'NOTARY_BAD_REGISTRY', message });
}

function badQuorum(message: string): CageError {
  return new CageError({ code: 'NOTARY_BAD_QUORUM', message });
}

/** A submission prefix: http(s), no credentials, query or fragment; no trailing slash. */
export function normalizeNotaryUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw bad(`notary URL ${JSON.stringify(url)} is not a URL`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw bad(`notary URL ${JSON.stringify(url)} must be http or https`);
  if (u.username !== '' || u.password !== '' || u.search !== '' || u.hash !== '') throw bad(`notary URL ${JSON.stringify(url)} must have no credentials, query or fragment`);
  return u.href.replace(/\/+$/, '');
}

// A policy name: printable, no whitespace (tlog-policy separates words by spaces and tabs).
const NAME_RE = /^[\x21-\x7e]+$/;

function checkEntry(input: NotaryInput): NotaryEntry {
  if (typeof input !== 'object' || input === null) throw bad('a notary entry must be an object');
  for (const k of Object.keys(input)) if (!['did', 'url', 'name', 'verifierKey'].includes(k)) throw bad(`unknown notary field ${JSON.stringify(k)}`);
  let did: string;
  try {
    did = canonicalDid(input.did);
  } catch (err) {
    throw isCageError(err) ? new CageError({ code: 'NOTARY_BAD_DID', message: err.message }) : err;
  }
  if (did !== input.did) throw bad(`DID ${input.did} is not in canonical form (${did})`);
  const url = normalizeNotaryUrl(input.url);
  const name = input.name ?? did;
  if (typeof name !== 'string' || name.length > MAX_NAME || !NAME_RE.test(name)) throw bad(`notary name ${JSON.stringify(name)} must be 1-${MAX_NAME} printable ASCII characters without spaces`);
  if (name === 'none' || name === POLICY_GROUP) throw bad(`notary name ${JSON.stringify(name)} is reserved`);
  let v: NoteVerifier;
  try {
    v = parseVerifierKey(input.verifierKey);
  } catch (err) {
    throw bad(`verifier key of ${did}: ${(err as Error).message}`);
  }
  if (v.type !== SIG_TYPE_COSIGNATURE_V1) throw bad(`verifier key of ${did} must have type 0x04 (cosignature/v1)`);
  if (v.name !== did) throw bad(`verifier key of ${did} is named ${v.name}; a notary's key name is its DID`);
  if (did.startsWith('did:key:') && !publicKeyFromDidKey(did).equals(v.publicKey)) throw bad(`verifier key of ${did} is not the key its DID encodes`);
  return Object.freeze({ did, url, name, verifierKey: v.verifierKey });
}

export class NotaryRegistry {
  private constructor(
    readonly notaries: readonly NotaryEntry[],
    readonly quorum: number,
  ) {}

  static empty(): NotaryRegistry {
    return new NotaryRegistry(Object.freeze([]), 0);
  }

  /** Validates notaries (unique DID, name and key) and 1 ≤ quorum ≤ n (0 when n = 0). */
  static create(data: { notaries?: readonly NotaryInput[]; quorum?: number } = {}): NotaryRegistry {
    const inputs = data.notaries ?? [];
    if (!Array.isArray(inputs)) throw bad('notaries must be a list');
    if (inputs.length > MAX_NOTARIES) throw bad(`more than ${MAX_NOTARIES} notaries`);
    const entries = inputs.map(checkEntry);
    const dids = new Set<string>();
    const names = new Set<string>();
    const keys = new Set<string>();
    for (const e of entries) {
      const key = parseVerifierKey(e.verifierKey).publicKey.toString('hex');
      if (dids.has(e.did)) throw new CageError({ code: 'NOTARY_DUPLICATE', message: `notary ${e.did} is registered twice` });
      if (names.has(e.name)) throw new CageError({ code: 'NOTARY_DUPLICATE', message: `notary name ${e.name} is used twice` });
      if (keys.has(key)) throw new CageError({ code: 'NOTARY_DUPLICATE', message: `notary ${e.did} uses the key of another notary` });
      dids.add(e.did);
      names.add(e.name);
      keys.add(key);
    }
    const n = entries.length;
    const k = data.quorum ?? (n === 0 ? 0 : 1);
    if (!Number.isSafeInteger(k)) throw badQuorum(`quorum ${String(k)} is not an integer`);
    if (n === 0 ? k !== 0 : k < 1 || k > n) throw badQuorum(n === 0 ? 'with no notaries the quorum is 0' : `quorum ${k} is not between 1 and ${n}`);
    return new NotaryRegistry(Object.freeze(entries), k);
  }

  get(did: string): NotaryEntry | undefined {
    return this.notaries.find((e) => e.did === did);
  }

  /** The notary's cosignature verifier (type 0x04, key name = DID). */
  verifier(did: string): NoteVerifier {
    const e = this.get(did);
    if (e === undefined) throw new CageError({ code: 'NOTARY_UNKNOWN_NOTARY', message: `no notary ${did}` });
    return parseVerifierKey(e.verifierKey);
  }

  /** Adds a notary. The quorum stays k (or becomes 1 for the first notary) unless `quorum` is given. */
  add(input: NotaryInput, opts: { quorum?: number } = {}): NotaryRegistry {
    const quorum = opts.quorum ?? (this.notaries.length === 0 ? 1 : this.quorum);
    return NotaryRegistry.create({ notaries: [...this.notaries, input], quorum });
  }

  /** Removes a notary. If k would exceed n − 1, give the new `quorum` (it becomes 0 by itself when none are left). */
  remove(did: string, opts: { quorum?: number } = {}): NotaryRegistry {
    if (this.get(did) === undefined) throw new CageError({ code: 'NOTARY_UNKNOWN_NOTARY', message: `no notary ${did}` });
    const rest = this.notaries.filter((e) => e.did !== did);
    let quorum = opts.quorum ?? this.quorum;
    if (rest.length === 0 && opts.quorum === undefined) quorum = 0;
    if (opts.quorum === undefined && quorum > rest.length) {
      throw badQuorum(`removing ${did} leaves ${rest.length} notaries for a quorum of ${this.quorum}; lower the quorum in the same change`);
    }
    return NotaryRegistry.create({ notaries: rest, quorum });
  }

  /** Changes a notary's URL, name or (for a did:web that rotated its key) verifier key. */
  update(did: string, patch: { url?: string; name?: string; verifierKey?: string }): NotaryRegistry {
    if (this.get(did) === undefined) throw new CageError({ code: 'NOTARY_UNKNOWN_NOTARY', message: `no notary ${did}` });
    return NotaryRegistry.create({ notaries: this.notaries.map((e) => (e.did === did ? { ...e, ...patch } : e)), quorum: this.quorum });
  }

  withQuorum(quorum: number): NotaryRegistry {
    return NotaryRegistry.create({ notaries: this.notaries, quorum });
  }

  toJSON(): RegistryFile {
    return { type: REGISTRY_TYPE, quorum: this.quorum, notaries: this.notaries.map((e) => ({ did: e.did, url: e.url, name: e.name, verifier_key: e.verifierKey })) };
  }

  /** The policy as parsed (see toPolicy). */
  policy(logVerifierKey: string | NoteVerifier, opts: { logUrl?: string } = {}): Policy {
    return parsePolicy(this.toPolicy(logVerifierKey, opts));
  }

  /** A C2SP tlog-policy file: the log, every notary as a witness, and the k-of-n quorum. */
  toPolicy(logVerifierKey: string | NoteVerifier, opts: { logUrl?: string } = {}): string {
    const log = typeof logVerifierKey === 'string' ? parseVerifierKey(logVerifierKey) : logVerifierKey;
    if (log.type !== SIG_TYPE_ED25519) throw new CageError({ code: 'AUDIT_BAD_KEY', message: 'the log key must have signature type 0x01' });
    const k = this.quorum;
    return formatPolicy({
      logs: [opts.logUrl === undefined ? { verifier: log } : { verifier: log, url: opts.logUrl }],
      witnesses: this.notaries.map((e) => ({ name: e.name, verifier: parseVerifierKey(e.verifierKey), url: e.url })),
      groups: this.notaries.length === 0 ? [] : [{ name: POLICY_GROUP, threshold: k, thresholdText: String(k), members: this.notaries.map((e) => e.name) }],
      quorum: this.notaries.length === 0 ? 'none' : POLICY_GROUP,
    });
  }

  /**
   * Which registered notaries cosigned `note`, and whether they make the quorum. Throws
   * AUDIT_BAD_* when the note is not signed by the log, or a registered notary's line fails.
   */
  checkQuorum(note: string | Uint8Array, logVerifierKey: string | NoteVerifier): QuorumCheck {
    const log = typeof logVerifierKey === 'string' ? parseVerifierKey(logVerifierKey) : logVerifierKey;
    const verifiers = this.notaries.map((e) => parseVerifierKey(e.verifierKey));
    const opened = openCheckpoint(note, log, { cosigners: verifiers });
    const byKey = new Map(this.notaries.map((e, i) => [`${verifiers[i]!.name}+${verifiers[i]!.keyId}`, e]));
    const cosigners: string[] = [];
    const names = new Set<string>();
    for (const s of opened.cosignatures) {
      const e = byKey.get(`${s.name}+${s.keyId}`);
      if (e !== undefined && !names.has(e.name)) {
        names.add(e.name);
        cosigners.push(e.did);
      }
    }
    return { met: quorumSatisfied(this.policy(log), names), quorum: this.quorum, cosigners };
  }
}

/**
 * Registers a notary by DID: resolves it (did:key offline; did:web through `resolve.fetch`),
 * derives its verifier key, and adds it. Throws NOTARY_BAD_DID, NOTARY_DID_UNRESOLVABLE,
 * NOTARY_KEY_NOT_ED25519, NOTARY_DUPLICATE, NOTARY_BAD_REGISTRY or NOTARY_BAD_QUORUM.
 */
export async function registerNotary(reg: NotaryRegistry, input: { did: string; url: string; name?: string }, opts: { quorum?: number; resolve?: ResolveOptions } = {}): Promise<NotaryRegistry> {
  const resolved = await resolveNotaryDid(input.did, opts.resolve ?? {});
  const entry: NotaryInput = { did: resolved.did, url: input.url, verifierKey: resolved.verifierKey, ...(input.name === undefined ? {} : { name: input.name }) };
  return reg.add(entry, opts.quorum === undefined ? {} : { quorum: opts.quorum });
}

/** Builds a registry from its JSON form (RegistryFile). Throws NOTARY_BAD_REGISTRY, NOTARY_BAD_QUORUM, NOTARY_DUPLICATE or NOTARY_BAD_DID. */
export function parseRegistry(json: unknown): NotaryRegistry {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw bad('a registry must be a JSON object');
  const o = json as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!['type', 'quorum', 'notaries'].includes(k)) throw bad(`unknown registry field ${JSON.stringify(k)}`);
  if (o.type !== REGISTRY_TYPE) throw bad(`registry type must be ${REGISTRY_TYPE}`);
  if (!Array.isArray(o.notaries)) throw bad('registry notaries must be a list');
  const notaries = o.notaries.map((n: unknown) => {
    if (typeof n !== 'object' || n === null || Array.isArray(n)) throw bad('a registry notary must be an object');
    const e = n as Record<string, unknown>;
    for (const k of Object.keys(e)) if (!['did', 'url', 'name', 'verifier_key'].includes(k)) throw bad(`unknown notary field ${JSON.stringify(k)}`);
    if (typeof e.did !== 'string' || typeof e.url !== 'string' || typeof e.name !== 'string' || typeof e.verifier_key !== 'string') throw bad('a registry notary needs did, url, name and verifier_key strings');
    return { did: e.did, url: e.url, name: e.name, verifierKey: e.verifier_key };
  });
  if (typeof o.quorum !== 'number') throw badQuorum('registry quorum must be a number');
  return NotaryRegistry.create({ notaries, quorum: o.quorum });
}

/** Reads the registry file; a missing file is an empty registry. A damaged one is NOTARY_STORE_CORRUPT. */
export async function loadRegistry(path: string): Promise<NotaryRegistry> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return NotaryRegistry.empty();
    throw storeError('NOTARY_STORE_IO', `cannot read the notary registry ${path}`, err);
  }
  try {
    return parseRegistry(JSON.parse(text));
  } catch (err) {
    throw new CageError({ code: 'NOTARY_STORE_CORRUPT', message: `notary registry ${path}: ${(err as Error).message}`, cause: err });
  }
}

/** Writes the registry file durably (temp + fsync + rename + dir fsync). Throws NOTARY_STORE_IO. */
export async function saveRegistry(path: string, reg: NotaryRegistry): Promise<void> {
  try {
    await writeFileDurable(path, JSON.stringify(reg.toJSON(), null, 2) + '\n');
  } catch (err) {
    throw storeError('NOTARY_STORE_IO', `cannot write the notary registry ${path}`, err);
  }
}
