/**
 * The gateway side of the split-origin audit: turns a finished (or finishing) Exchange into its
 * canonical record (audit/record.ts) and hands it to the log (an AuditSink, audit/io/log.ts), and
 * gives the response its `Cage-Receipt`. The record is written in one of two ways:
 *  - complete, before the response head leaves, when the whole response body is already known (a
 *    small body that arrived with its head, a bodyless answer, a buffered sync answer, an error
 *    the cage wrote itself): one append, the receipt names its index;
 *  - reserved, when the head must leave before the body ends (streaming): the index is taken
 *    now, the record written when the exchange finishes (or sealed as incomplete by the log after
 *    `audit.max_pending`, so one endless stream never holds back the records after it).
 * The app's `Cage-Origin-Signature` is checked here against the registered key.
 * Everything in an Exchange came from the client or the app: it is recorded, never trusted.
 */
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import type { CageConfig } from './config/load.js';
import type { Exchange, ZkFacts } from './exchange.js';
import { EMPTY_SHA256 } from './forward.js';
import { RECORD_LIMITS, digestHeaders, encodeRecord, hashPath, verifyOriginSignature, type AuditRecord } from '../audit/record.js';

/** Where the gateway writes records: the audit log (audit/io/log.ts implements it). */
export interface AuditSink {
  /** The log's origin line, named in every receipt. */
  readonly origin: string;
  /** Append a complete record; returns its index. */
  append(record: Uint8Array): number;
  /** Reserve the next index; `seal` gives the record to write if it is still pending when sealed. */
  reserve(seal: () => Uint8Array): number;
  /** Write the record of a reserved index (ignored if the log sealed it already). */
  fill(index: number, record: Uint8Array): void;
  /** Resolves once the record at `index` is durable; rejects (AUDIT_STORE_IO) if it cannot be. */
  durable(index: number): Promise<void>;
}

const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** RFC 8941 sf-string: printable ASCII with `"` and `\` escaped. */
function sfString(s: string): string {
  return `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/** `Cage-Origin-Signature: keyid="<name>", sig=:<base64 Ed25519 signature>:` (RFC 8941 dictionary). */
const ORIGIN_SIGNATURE_RE = /^\s*keyid="([A-Za-z0-9_.-]{1,64})"\s*,\s*sig=:([A-Za-z0-9+/]{86}==):\s*$/;

export function parseOriginSignature(value: string): { keyId: string; signature: Buffer } | undefined {
  const m = ORIGIN_SIGNATURE_RE.exec(value);
  if (m === null) return undefined;
  const signature = Buffer.from(m[2]!, 'base64');
  return signature.length === 64 ? { keyId: m[1]!, signature } : undefined;
}

export class ExchangeAuditor {
  private originKeys = new Map<string, KeyObject>();
  /** Route name → the key its app signs with (routes[].origin_signature.key). */
  private routeKeys = new Map<string, string>();
  private receiptPrefix: string;

  constructor(
    private readonly sink: AuditSink | null,
    config: CageConfig,
  ) {
    this.receiptPrefix = sink === null ? '' : `origin=${sfString(sink.origin)}, index=`;
    this.configure(config);
  }

  /** True when there is a log to write to (routes may still be `audit: off`). */
  get enabled(): boolean {
    return this.sink !== null;
  }

  /** Take the registered app keys of a (re)loaded config. */
  configure(config: CageConfig): void {
    const keys = new Map<string, KeyObject>();
    for (const [name, raw] of config.audit.originKeys) {
      keys.set(name, createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, raw]), format: 'der', type: 'spki' }));
    }
    this.originKeys = keys;
    this.routeKeys = new Map(config.routes.flatMap((r) => (r.originSignature === undefined ? [] : [[r.name, r.originSignature.key] as const])));
  }

  receipt(index: number): string {
    return this.receiptPrefix + index;
  }

  /** Write the exchange's complete record now; returns its index (-1 when not audited). */
  complete(ex: Exchange, responseBodyDigest: Buffer): number {
    if (this.sink === null || ex.audit === 0) return -1;
    ex.responseBodyDigest = responseBodyDigest;
    // The app's own answer, known whole before its head leaves: its signature is checked now.
    if (ex.errorCode === '') this.checkOriginAtEnd(ex, responseBodyDigest);
    const index = this.sink.append(this.encode(ex, responseBodyDigest, false));
    ex.auditIndex = index;
    return index;
  }

  /** Reserve the exchange's index; its record is written by finish(). */
  reserve(ex: Exchange): number {
    if (this.sink === null || ex.audit === 0) return -1;
    const index = this.sink.reserve(() => this.encode(ex, this.digestSoFar(ex), true));
    ex.auditIndex = index;
    ex.auditPending = true;
    return index;
  }

  /** The exchange is over: fill its reserved slot, or append its record if it has none yet. */
  finish(ex: Exchange): void {
    if (this.sink === null || ex.audit === 0) return;
    if (ex.auditPending) {
      ex.auditPending = false;
      const digest = ex.responseBodyDigest ?? (ex.responseBodyHash !== null ? (ex.responseBodyDigest = ex.responseBodyHash.digest()) : EMPTY_SHA256);
      this.checkOriginAtEnd(ex, digest);
      this.sink.fill(ex.auditIndex, this.encode(ex, digest, false));
      return;
    }
    if (ex.auditIndex < 0) {
      // Never answered (the client left first, or the stream broke before the head): recorded all the same.
      this.complete(ex, ex.responseBodyHash !== null ? ex.responseBodyHash.digest() : EMPTY_SHA256);
    }
  }

  durable(index: number): Promise<void> {
    return this.sink === null ? Promise.resolve() : this.sink.durable(index);
  }

  /**
   * Verify the app's Cage-Origin-Signature: Ed25519 by the key registered as `keyName` over
   * originSignatureMessage(request id, status, response body digest). Sets ex.originVerified.
   */
  verifyOrigin(ex: Exchange, keyName: string, bodyDigest: Buffer): boolean {
    const key = this.originKeys.get(keyName);
    const parsed = ex.originSignature === null ? undefined : parseOriginSignature(ex.originSignature);
    const ok =
      key !== undefined &&
      parsed !== undefined &&
      parsed.keyId === keyName &&
      verifyOriginSignature(key, ex.id, ex.status, bodyDigest, parsed.signature);
    ex.originVerified = ok ? 1 : 2;
    return ok;
  }

  /**
   * Answers not held for verification (async routes, signature not required) are verified once
   * their body is known: whole before the head leaves, or at the end of a stream. Only the key
   * the route names counts; a signature by any other registered key is a discrepancy.
   */
  private checkOriginAtEnd(ex: Exchange, digest: Buffer): void {
    if (ex.originVerified !== 0 || ex.originSignature === null) return;
    const keyName = this.routeKeys.get(ex.route);
    if (keyName !== undefined) this.verifyOrigin(ex, keyName, digest);
    else ex.originVerified = 2;
  }

  private digestSoFar(ex: Exchange): Buffer {
    if (ex.responseBodyDigest !== null) return ex.responseBodyDigest;
    return ex.responseBodyHash !== null ? ex.responseBodyHash.copy().digest() : EMPTY_SHA256;
  }

  private encode(ex: Exchange, responseBodyDigest: Buffer, incomplete: boolean): Uint8Array {
    const record: AuditRecord = {
      requestId: ex.id,
      time: ex.time,
      route: ex.route,
      method: fit(ex.method, RECORD_LIMITS.method),
      host: fit(ex.host, RECORD_LIMITS.host),
      path: Buffer.byteLength(ex.target) > RECORD_LIMITS.path ? hashPath(ex.target) : ex.target,
      // An anonymous member (zk) is recorded by its nullifier and the group root it proved
      // against only: no client address (it would identify the member).
      clientAddress: ex.zk === null ? ex.remoteAddress : '',
      identity: ex.identity === '' ? undefined : fit(ex.zk !== null ? zkIdentity(ex.zk) : ex.qualifiedIdentity(), RECORD_LIMITS.identity),
      requestHeadersDigest: digestHeaders(ex.headers),
      requestBodyDigest: ex.requestBodyHash !== null ? ex.requestBodyHash.copy().digest() : EMPTY_SHA256,
      requestBodyLength: ex.bytesIn,
      clientSignature: clientSignature(ex),
      status: ex.status,
      responseHeadersDigest: ex.responseHeadersDigest ?? EMPTY_SHA256,
      responseBodyDigest,
      responseBodyLength: ex.bytesOut,
      durationMicros: Math.max(0, Math.round(((ex.endedAt || performance.now()) - ex.startedAt) * 1000)),
      cageError: ex.errorCode === '' ? undefined : ex.errorCode,
      originSignature: originSignature(ex),
      decision: ex.verdict === '' ? undefined : { verdict: ex.verdict, reasons: ex.verdictReasons.slice(0, RECORD_LIMITS.reasons).map((r) => fit(r, RECORD_LIMITS.reason)) },
      incomplete,
    };
    return encodeRecord(record);
  }
}

/** `zk:<nullifier>;group=<id>;root=<hex>;scope=<scope>;epoch=<n>` (ZkFacts, gateway/zk/stage.ts). */
function zkIdentity(z: ZkFacts): string {
  return `zk:${z.nullifier};group=${z.group};root=${z.root};scope=${z.scope};epoch=${z.epoch}`;
}

/**
 * A field over its record limit (a huge Host, say) is recorded as `sha256:<hex>` of its value:
 * still checkable against what the client sent, and the record stays within its size bound.
 */
function fit(value: string, limit: number): string {
  return value.length * 3 <= limit || Buffer.byteLength(value) <= limit ? value : `sha256:${createHash('sha256').update(value).digest('hex')}`;
}

function clientSignature(ex: Exchange): AuditRecord['clientSignature'] {
  const input = ex.header('signature-input');
  const sig = ex.header('signature');
  if (input === undefined || sig === undefined) return undefined;
  return { signatureInput: fit(input, RECORD_LIMITS.signatureInput), signature: fit(sig, RECORD_LIMITS.signature) };
}

const NO_SIGNATURE = Buffer.alloc(64);

/** The app's signature as recorded; a malformed header is recorded as a failed (all-zero) one. */
function originSignature(ex: Exchange): AuditRecord['originSignature'] {
  if (ex.originSignature === null) return undefined;
  const parsed = parseOriginSignature(ex.originSignature);
  return parsed === undefined
    ? { signature: NO_SIGNATURE, keyId: '', verified: false }
    : { signature: parsed.signature, keyId: parsed.keyId, verified: ex.originVerified === 1 };
}
