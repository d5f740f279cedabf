/**
 * Loads a BISO policy bundle from YAML text: size, depth and alias limits first (the text is
 * operator-supplied but may come from a compromised repo: hostile by default), then the JSON
 * Schema (ajv, unknown keys refused), then the Ed25519 signature over the canonical form, then the
 * semantic checks of the compiler. Every refusal is POLICY_INVALID (or POLICY_BAD_SIGNATURE)
 * naming `file:line` and the reason. `signBundle` is what `cage policy sign` runs.
 *
 * Canonical form (what is signed): the bundle as parsed, without `signature`, written as JSON with
 * object keys sorted by UTF-16 code units and no whitespace (the JCS subset for strings, integers,
 * booleans, null, arrays and objects), prefixed with the domain separator `http-cage policy bundle v1\n`.
 */

import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Ajv, type ErrorObject } from 'ajv';
import { isAlias, isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from 'yaml';
import { CageError, type CageErrorCode } from '../core/errors.js';
import { checkBundle, compilePolicy, type CompiledPolicy } from './compile.js';
import { BUNDLE_LIMITS, BUNDLE_SCHEMA, type Bundle } from './schema.js';

export const SIGNATURE_DOMAIN = 'http-cage policy bundle v1\n';
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex'); // RFC 8410 SubjectPublicKeyInfo header

export interface LoadOptions {
  /** Shown in errors; defaults to `<bundle>`. */
  file?: string;
  /** Base64 Ed25519 public keys (32 bytes raw). When given, the bundle must be signed by one of them. */
  trustedKeys?: readonly string[];
  /** Demand a signature even without trusted keys (integrity only). Defaults to `trustedKeys !== undefined`. */
  requireSignature?: boolean;
}

export interface LoadedBundle {
  bundle: Bundle;
  /** The key that signed the bundle, when signed. */
  signedBy?: string;
}

const ajv = new Ajv({ allErrors: false, useDefaults: true, strict: true });
const validateSchema = ajv.compile<Bundle>(BUNDLE_SCHEMA);

type Path = (string | number)[];

function fail(code: CageErrorCode, file: string, line: number | undefined, reason: string): never {
  throw new CageError({ code, message: `${file}${line === undefined ? '' : `:${line}`}: ${reason}` });
}

/** Finds the YAML node at a JSON path (or the key node of its last element); its 1-based line. */
function lineOf(doc: Document, lc: LineCounter, path: Path, keyOfLast = false): number | undefined {
  let node: unknown = doc.contents;
  let line: number | undefined = node && (node as Node).range ? lc.linePos((node as Node).range![0]).line : undefined;
  for (const [i, seg] of path.entries()) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(seg));
      if (!pair) break;
      node = keyOfLast && i === path.length - 1 ? pair.key : pair.value;
    } else if (isSeq(node)) {
      node = node.items[Number(seg)];
    } else break;
    const range = (node as Node | undefined)?.range;
    if (range) line = lc.linePos(range[0]).line;
  }
  return line;
}

/** Nesting depth of flow collections ([ and {) outside quotes: refused before the parser recurses. */
function flowDepth(text: string): number {
  let depth = 0;
  let max = 0;
  let quote = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (quote !== 0) {
      if (c === quote) quote = 0;
      else if (c === 92 && quote === 34) i++;
      continue;
    }
    if (c === 34 || c === 39) quote = c;
    else if (c === 35 && (i === 0 || text.charCodeAt(i - 1) <= 32)) { const nl = text.indexOf('\n', i); i = nl < 0 ? text.length : nl; }
    else if (c === 91 || c === 123) { if (++depth > max) max = depth; }
    else if (c === 93 || c === 125) depth--;
  }
  return max;
}

/** Parses YAML under the limits; returns the document, its line counter and the plain value. */
function parseYaml(text: string, file: string): { doc: Document; lc: LineCounter; value: unknown } {
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > BUNDLE_LIMITS.maxBytes) fail('POLICY_INVALID', file, undefined, `bundle is ${bytes} bytes; the limit is ${BUNDLE_LIMITS.maxBytes}`);
  if (flowDepth(text) > BUNDLE_LIMITS.maxDepth) fail('POLICY_INVALID', file, undefined, `nesting deeper than ${BUNDLE_LIMITS.maxDepth} levels`);
  const lc = new LineCounter();
  let doc: Document;
  try {
    doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true, schema: 'core', strict: true, stringKeys: true });
  } catch (err) {
    // the parser can exhaust the stack on pathological block nesting; no input may crash the loader
    fail('POLICY_INVALID', file, undefined, `not parseable YAML (${(err as Error).name})`);
  }
  const problem = doc.errors[0] ?? doc.warnings[0];
  if (problem) fail('POLICY_INVALID', file, lc.linePos(problem.pos[0]).line, problem.message.split('\n')[0]!);
  // walk the node tree iteratively: depth limit, and no anchors or aliases at all
  const stack: [unknown, number][] = [[doc.contents, 1]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!;
    const at = (n: unknown): number | undefined => ((n as Node)?.range ? lc.linePos((n as Node).range![0]).line : undefined);
    if (isAlias(node) || (node as { anchor?: string })?.anchor) fail('POLICY_INVALID', file, at(node), 'anchors and aliases are not allowed in a policy bundle');
    if (isMap(node) || isSeq(node)) {
      if (depth > BUNDLE_LIMITS.maxDepth) fail('POLICY_INVALID', file, at(node), `nesting deeper than ${BUNDLE_LIMITS.maxDepth} levels`);
      for (let i = node.items.length - 1; i >= 0; i--) { // reversed: the first offence in the file is reported
        const item: unknown = node.items[i];
        if (isPair(item)) stack.push([item.value, depth + 1], [item.key, depth + 1]);
        else stack.push([item, depth + 1]);
      }
    }
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: BUNDLE_LIMITS.maxAliases });
  } catch (err) {
    fail('POLICY_INVALID', file, undefined, (err as Error).message);
  }
  return { doc, lc, value };
}

/** The canonical JSON of a plain value (sorted keys, no whitespace). */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v === 'boolean' || typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new CageError({ code: 'POLICY_INVALID', message: 'a number in the bundle is not finite' });
    return JSON.stringify(v);
  }
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o).filter((k) => o[k] !== undefined).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`;
  }
  throw new CageError({ code: 'POLICY_INVALID', message: `a ${typeof v} cannot appear in a bundle` });
}

/** The bytes a bundle signature covers: domain separator + canonical JSON without `signature`. */
export function signedBytes(value: unknown): Buffer {
  const { signature: _drop, ...rest } = value as Record<string, unknown>;
  return Buffer.from(SIGNATURE_DOMAIN + canonicalJson(rest), 'utf8');
}

function publicKeyFromRaw(b64: string): KeyObject {
  const raw = Buffer.from(b64, 'base64');
  if (raw.length !== 32) throw new CageError({ code: 'POLICY_BAD_SIGNATURE', message: 'signature.key is not a 32-byte Ed25519 key' });
  return createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, raw]), format: 'der', type: 'spki' });
}

/** The base64 raw Ed25519 public key of a private or public key. */
export function rawPublicKey(key: KeyObject): string {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return pub.export({ format: 'der', type: 'spki' }).subarray(SPKI_ED25519_PREFIX.length).toString('base64');
}

/** Parses, validates and verifies a bundle; compiles nothing. */
export function parseBundle(text: string, opts: LoadOptions = {}): LoadedBundle {
  const file = opts.file ?? '<bundle>';
  const { doc, lc, value } = parseYaml(text, file);
  if (value === null || typeof value !== 'object' || Array.isArray(value)) fail('POLICY_INVALID', file, 1, 'a bundle is a YAML mapping');
  const covered = signedBytes(value); // before ajv fills in defaults
  if (!validateSchema(value)) {
    const e = validateSchema.errors![0]!;
    const path: Path = e.instancePath.split('/').slice(1).map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
    fail('POLICY_INVALID', file, lineOf(doc, lc, addProp(path, e), e.keyword === 'additionalProperties'), describe(e));
  }
  const bundle = value;
  let signedBy: string | undefined;
  const mustSign = opts.requireSignature ?? opts.trustedKeys !== undefined;
  if (bundle.signature) {
    const line = lineOf(doc, lc, ['signature']);
    const key = publicKeyFromRaw(bundle.signature.key);
    if (opts.trustedKeys && !opts.trustedKeys.includes(bundle.signature.key)) fail('POLICY_BAD_SIGNATURE', file, line, 'signed by a key that is not trusted');
    if (!verify(null, covered, key, Buffer.from(bundle.signature.sig, 'base64'))) fail('POLICY_BAD_SIGNATURE', file, line, 'the signature does not verify over the canonical form');
    signedBy = bundle.signature.key;
  } else if (mustSign) {
    fail('POLICY_BAD_SIGNATURE', file, undefined, 'the bundle is not signed');
  }
  const problem = checkBundle(bundle);
  if (problem) fail('POLICY_INVALID', file, lineOf(doc, lc, problem.path), problem.reason);
  return { bundle: deepFreeze(bundle), signedBy };
}

function addProp(path: Path, e: ErrorObject): Path {
  if (e.keyword === 'additionalProperties') return [...path, String(e.params.additionalProperty)];
  return path;
}

function describe(e: ErrorObject): string {
  const where = e.instancePath === '' ? 'bundle' : e.instancePath.slice(1).replace(/\//g, '.');
  if (e.keyword === 'additionalProperties') return `${where}: unknown key ${JSON.stringify(e.params.additionalProperty)}`;
  if (e.keyword === 'required') return `${where}: missing key ${JSON.stringify(e.params.missingProperty)}`;
  if (e.keyword === 'enum') return `${where}: must be one of ${(e.params.allowedValues as unknown[]).join(', ')}`;
  return `${where}: ${e.message ?? e.keyword}`;
}

function deepFreeze<T>(v: T): T {
  if (v !== null && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}

/** Parses, verifies and compiles: what the gateway runs at start and on reload. */
export function loadPolicy(text: string, opts: LoadOptions = {}): CompiledPolicy & { signedBy?: string } {
  const { bundle, signedBy } = parseBundle(text, opts);
  try {
    return Object.freeze({ ...compilePolicy(bundle), signedBy });
  } catch (err) {
    if (err instanceof CageError) fail(err.code, opts.file ?? '<bundle>', undefined, err.message);
    throw err;
  }
}

/** Reads a bundle file and loads it (the only function here that touches the disk). */
export function loadPolicyFile(file: string, opts: Omit<LoadOptions, 'file'> = {}): CompiledPolicy & { signedBy?: string } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    fail('POLICY_INVALID', file, undefined, `cannot read the bundle (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  return loadPolicy(text, { ...opts, file });
}

/**
 * Signs a bundle (`cage policy sign`): validates it, replaces any `signature` block with one by
 * `privateKey` (Ed25519 KeyObject or PKCS#8 PEM) and returns the YAML text, comments kept.
 */
export function signBundle(text: string, privateKey: KeyObject | string, file = '<bundle>'): string {
  const key = typeof privateKey === 'string' ? createPrivateKey(privateKey) : privateKey;
  if (key.asymmetricKeyType !== 'ed25519') throw new CageError({ code: 'POLICY_BAD_SIGNATURE', message: 'bundles are signed with an Ed25519 key' });
  const { doc, value } = parseYaml(text, file);
  const { signature: _old, ...unsigned } = (value ?? {}) as Record<string, unknown>;
  if (!validateSchema(structuredClone(unsigned))) parseBundle(text, { file, requireSignature: false }); // throws with the line
  doc.delete('signature');
  const sig = sign(null, signedBytes(unsigned), key).toString('base64');
  doc.set('signature', { key: rawPublicKey(key), sig });
  const out = doc.toString();
  parseBundle(out, { file }); // the signed text must load (semantic checks, round trip)
  return out;
}

/** Verifies a signed bundle against trusted keys; returns the signing key. Throws POLICY_BAD_SIGNATURE. */
export function verifyBundle(text: string, trustedKeys: readonly string[], file = '<bundle>'): string {
  return parseBundle(text, { file, trustedKeys }).signedBy!;
}
