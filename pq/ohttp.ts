/**
 * Oblivious HTTP message encapsulation (RFC 9458): key configurations (§3, the
 * `application/ohttp-keys` list), Encapsulated Requests (§4.1, §4.3) and Encapsulated Responses
 * (§4.2, §4.4) carrying Binary HTTP (RFC 9292), over HPKE (pq/hpke.ts) with X-Wing or DHKEM(X25519).
 *
 * Two sides:
 * - client: `encapsulateRequest(config, bhttp)` → the message/ohttp-req bytes and a function that
 *   opens the message/ohttp-res answer;
 * - gateway: `OhttpGateway.decapsulateRequest(bytes)` → inner BHTTP bytes and a ResponseContext, or
 *   `OhttpGateway.openRequest(body, contentType)` → the decoded inner request and `seal(response)`.
 *
 * Trust: the encapsulated request is attacker input (key id, algorithm ids, enc, ciphertext); every
 * field is checked before use. Errors before the encapsulation is removed (unknown key, bad suite,
 * bad envelope) can only be answered in the clear (RFC 9458 §5.2); errors after it (bad BHTTP,
 * replay, stale Date, 100-continue) are PqInnerError, whose `seal` encapsulates the error answer.
 * Pure: no sockets, no timers; randomness and the clock are injected.
 */
import { CageError, errorBody, type CageErrorCode } from '../core/errors.js';
import { decodeRequest, encodeResponse, resolveBhttpLimits, type BhttpLimits, type Field } from './bhttp.js';
import { defaultRng, kemById, setupBaseR, setupBaseS, suiteFor, type HpkeContext, type KemPrivateKey, type KemPublicKey, type Rng, type Suite } from './hpke.js';
import { checkInteger, rejectUnknownOptions } from './options.js';
import type { ReplayGuard } from './replay.js';

export const OHTTP_REQUEST_LABEL = 'message/bhttp request';
export const OHTTP_RESPONSE_LABEL = 'message/bhttp response';
export const MEDIA_TYPE_OHTTP_KEYS = 'application/ohttp-keys';
export const MEDIA_TYPE_OHTTP_REQUEST = 'message/ohttp-req';
export const MEDIA_TYPE_OHTTP_RESPONSE = 'message/ohttp-res';
/** Key id (8) + KEM, KDF, AEAD ids (16 each). */
export const OHTTP_HEADER_LENGTH = 7;

const REQUEST_LABEL = Buffer.from(OHTTP_REQUEST_LABEL);
const RESPONSE_LABEL = Buffer.from(OHTTP_RESPONSE_LABEL);
const EMPTY = Buffer.alloc(0);

export interface SymmetricAlgorithm {
  kdfId: number;
  aeadId: number;
}

/** RFC 9458 §3.1 Key Config. */
export interface KeyConfig {
  keyId: number;
  kemId: number;
  publicKey: Uint8Array;
  symmetric: SymmetricAlgorithm[];
}

function envelope(message: string, cause?: unknown): CageError {
  return new CageError({ code: 'PQ_BAD_ENVELOPE', message, cause });
}

// ---------------------------------------------------------------------------------------------
// Key configurations (§3).

/**
 * Key Config {
 *   Key Identifier (8), HPKE KEM ID (16), HPKE Public Key (Npk * 8),
 *   HPKE Symmetric Algorithms Length (16) = 4..65532,
 *   HPKE Symmetric Algorithms (32) ...,   // each: HPKE KDF ID (16), HPKE AEAD ID (16)
 * }
 */
export function encodeKeyConfig(config: KeyConfig): Buffer {
  checkInteger(config.keyId, 'keyId', 0, 255);
  checkInteger(config.kemId, 'kemId', 0, 0xffff);
  const kem = kemById(config.kemId);
  if (kem && config.publicKey.length !== kem.Npk) throw envelope(`public key must be ${kem.Npk} bytes for ${kem.name}`);
  if (config.symmetric.length === 0 || config.symmetric.length > 16383) throw envelope('a key configuration needs 1..16383 symmetric algorithms');
  const out = Buffer.alloc(1 + 2 + config.publicKey.length + 2 + 4 * config.symmetric.length);
  let o = out.writeUInt8(config.keyId, 0);
  o = out.writeUInt16BE(config.kemId, o);
  out.set(config.publicKey, o);
  o += config.publicKey.length;
  o = out.writeUInt16BE(4 * config.symmetric.length, o);
  for (const { kdfId, aeadId } of config.symmetric) {
    o = out.writeUInt16BE(checkInteger(kdfId, 'kdfId', 0, 0xffff), o);
    o = out.writeUInt16BE(checkInteger(aeadId, 'aeadId', 0, 0xffff), o);
  }
  return out;
}

/** Decodes exactly one key configuration. PQ_UNSUPPORTED_SUITE for an unknown KEM (Npk unknown). */
export function decodeKeyConfig(bytes: Uint8Array): KeyConfig {
  if (bytes.length < 3) throw envelope('key configuration truncated');
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  const keyId = b[0]!;
  const kemId = b.readUInt16BE(1);
  const kem = kemById(kemId);
  if (!kem) throw new CageError({ code: 'PQ_UNSUPPORTED_SUITE', message: `key configuration uses unsupported KEM 0x${kemId.toString(16).padStart(4, '0')}` });
  if (b.length < 3 + kem.Npk + 2) throw envelope('key configuration truncated');
  const publicKey = Uint8Array.from(b.subarray(3, 3 + kem.Npk));
  const symLength = b.readUInt16BE(3 + kem.Npk);
  if (symLength < 4 || symLength > 65532 || symLength % 4 !== 0) throw envelope(`bad symmetric algorithms length ${symLength}`);
  const start = 3 + kem.Npk + 2;
  if (b.length !== start + symLength) throw envelope('key configuration length does not match its contents');
  const symmetric: SymmetricAlgorithm[] = [];
  for (let o = start; o < b.length; o += 4) symmetric.push({ kdfId: b.readUInt16BE(o), aeadId: b.readUInt16BE(o + 2) });
  return { keyId, kemId, publicKey, symmetric };
}

/** §3.2 application/ohttp-keys: each configuration prefixed by its 2-byte length. */
export function encodeKeyConfigList(configs: readonly KeyConfig[]): Buffer {
  const parts: Buffer[] = [];
  for (const config of configs) {
    const encoded = encodeKeyConfig(config);
    if (encoded.length > 0xffff) throw envelope('key configuration longer than 65535 bytes');
    const length = Buffer.alloc(2);
    length.writeUInt16BE(encoded.length);
    parts.push(length, encoded);
  }
  return Buffer.concat(parts);
}

/**
 * Decodes an application/ohttp-keys list. A framing error discards the whole list (§3.2: clients
 * MUST discard incorrectly encoded collections); configurations for KEMs this side does not
 * implement are skipped, since their public key length is unknown.
 */
export function decodeKeyConfigList(bytes: Uint8Array): KeyConfig[] {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  const out: KeyConfig[] = [];
  if (b.length === 0) throw envelope('empty key configuration list');
  for (let o = 0; o < b.length;) {
    if (o + 2 > b.length) throw envelope('key configuration list truncated');
    const length = b.readUInt16BE(o);
    o += 2;
    if (o + length > b.length) throw envelope('key configuration list truncated');
    const one = b.subarray(o, o + length);
    o += length;
    if (length >= 3 && !kemById(one.readUInt16BE(1))) continue;
    out.push(decodeKeyConfig(one));
  }
  return out;
}

/** hdr = key_id (8) ‖ kem_id (16) ‖ kdf_id (16) ‖ aead_id (16). */
export function encodeRequestHeader(keyId: number, kemId: number, kdfId: number, aeadId: number): Buffer {
  const hdr = Buffer.alloc(OHTTP_HEADER_LENGTH);
  hdr.writeUInt8(keyId, 0);
  hdr.writeUInt16BE(kemId, 1);
  hdr.writeUInt16BE(kdfId, 3);
  hdr.writeUInt16BE(aeadId, 5);
  return hdr;
}

/** info = "message/bhttp request" ‖ 0x00 ‖ hdr. */
function requestInfo(hdr: Uint8Array): Buffer {
  return Buffer.concat([REQUEST_LABEL, Buffer.of(0), hdr]);
}

/**
 * §4.4 response keys: secret = Export("message/bhttp response", max(Nn, Nk));
 * prk = Extract(enc ‖ response_nonce, secret); key = Expand(prk, "key", Nk); nonce = Expand(prk, "nonce", Nn).
 */
function responseKeys(suite: Suite, secret: Uint8Array, enc: Uint8Array, responseNonce: Uint8Array): { key: Buffer; nonce: Buffer } {
  const prk = suite.kdf.extract(Buffer.concat([enc, responseNonce]), secret);
  return { key: suite.kdf.expand(prk, Buffer.from('key'), suite.aead.Nk), nonce: suite.kdf.expand(prk, Buffer.from('nonce'), suite.aead.Nn) };
}

function responseNonceLength(suite: Suite): number {
  return Math.max(suite.aead.Nn, suite.aead.Nk);
}

/** §4.4 secret = Export("message/bhttp response", max(Nn, Nk)): all a ResponseContext needs from the HPKE context. */
export function exportResponseSecret(context: HpkeContext): Buffer {
  return context.export(RESPONSE_LABEL, responseNonceLength(context.suite));
}

// ---------------------------------------------------------------------------------------------
// Client side (§4.3 encapsulation, §4.4 decapsulation of the response).

export interface EncapsulateRequestOptions {
  /** KDF and AEAD to use; both must be listed in the configuration. Default: the first pair this side implements. */
  kdfId?: number;
  aeadId?: number;
  /** KEM encap randomness, for test vectors only (DHKEM: skE; X-Wing: the 64-byte eseed). */
  randomness?: Uint8Array;
  rng?: Rng;
}

export interface EncapsulatedRequest {
  /** The message/ohttp-req content: hdr ‖ enc ‖ ct. */
  bytes: Buffer;
  enc: Uint8Array;
  suite: Suite;
  /** Opens the message/ohttp-res answer to this request (PQ_BAD_ENVELOPE when it does not). */
  decapsulateResponse(encResponse: Uint8Array): Buffer;
}

const publicKeyCache = new WeakMap<Uint8Array, KemPublicKey>();

/** Picks the suite for a configuration: the requested pair, or the first listed pair we implement. */
export function selectSuite(config: KeyConfig, kdfId?: number, aeadId?: number): Suite {
  for (const sym of config.symmetric) {
    if (kdfId !== undefined && sym.kdfId !== kdfId) continue;
    if (aeadId !== undefined && sym.aeadId !== aeadId) continue;
    try {
      return suiteFor(config.kemId, sym.kdfId, sym.aeadId);
    } catch (err) {
      if (kdfId !== undefined && aeadId !== undefined) throw err;
    }
  }
  throw new CageError({ code: 'PQ_UNSUPPORTED_SUITE', message: `key configuration ${config.keyId} offers no KDF/AEAD pair this side implements${kdfId !== undefined || aeadId !== undefined ? ' (as requested)' : ''}` });
}

/** Encapsulates a BHTTP request for the gateway that published `config` (a fresh HPKE context each call, §6.1). */
export function encapsulateRequest(config: KeyConfig, request: Uint8Array, opts: EncapsulateRequestOptions = {}): EncapsulatedRequest {
  rejectUnknownOptions(opts, ['kdfId', 'aeadId', 'randomness', 'rng'], 'encapsulateRequest');
  const suite = selectSuite(config, opts.kdfId, opts.aeadId);
  let pk = publicKeyCache.get(config.publicKey);
  if (!pk || pk.kemId !== config.kemId) {
    pk = suite.kem.importPublicKey(config.publicKey);
    publicKeyCache.set(config.publicKey, pk);
  }
  const hdr = encodeRequestHeader(config.keyId, config.kemId, suite.kdf.id, suite.aead.id);
  const { enc, context } = setupBaseS(suite, pk, requestInfo(hdr), { randomness: opts.randomness, rng: opts.rng });
  const ct = context.seal(EMPTY, request);
  const secret = exportResponseSecret(context);
  return {
    bytes: Buffer.concat([hdr, enc, ct]),
    enc,
    suite,
    decapsulateResponse(encResponse: Uint8Array): Buffer {
      const n = responseNonceLength(suite);
      if (!(encResponse instanceof Uint8Array) || encResponse.length < n + suite.aead.Nt) throw envelope('encapsulated response truncated');
      const { key, nonce } = responseKeys(suite, secret, enc, encResponse.subarray(0, n));
      return suite.aead.open(key, nonce, EMPTY, encResponse.subarray(n));
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Gateway side (§4.3 decapsulation, §4.4 response encapsulation).

/** A key the gateway decrypts with: its published configuration and its (expanded) private key. */
export interface GatewayKey {
  config: KeyConfig;
  privateKey: KemPrivateKey;
}

/** Where the gateway looks keys up; KeyRing (pq/keys.ts) is one. Must not do I/O. */
export interface OhttpKeySource {
  findKey(keyId: number): GatewayKey | undefined;
}

/**
 * Seals responses to one decapsulated request. Holds the exported secret (exportResponseSecret), not
 * the HPKE context, so it can be rebuilt on another thread than the one that opened the request.
 */
export class ResponseContext {
  readonly suite: Suite;
  readonly #secret: Buffer;
  readonly #enc: Uint8Array;
  readonly #rng: Rng;

  constructor(suite: Suite, secret: Buffer, enc: Uint8Array, rng: Rng) {
    if (secret.length !== responseNonceLength(suite)) throw new CageError({ code: 'GW_INTERNAL', message: `response secret must be ${responseNonceLength(suite)} bytes, got ${secret.length}` });
    if (enc.length !== suite.kem.Nenc) throw new CageError({ code: 'GW_INTERNAL', message: `enc must be ${suite.kem.Nenc} bytes, got ${enc.length}` });
    this.suite = suite;
    this.#secret = secret;
    this.#enc = enc;
    this.#rng = rng;
  }

  /** enc_response = response_nonce ‖ Seal(aead_key, aead_nonce, "", response). `nonce` is for vectors only. */
  encapsulate(response: Uint8Array, nonce?: Uint8Array): Buffer {
    const n = responseNonceLength(this.suite);
    const responseNonce = nonce ?? this.#rng(n);
    if (responseNonce.length !== n) throw new CageError({ code: 'CONFIG_INVALID', message: `response nonce must be ${n} bytes` });
    const { key, nonce: aeadNonce } = responseKeys(this.suite, this.#secret, this.#enc, responseNonce);
    return Buffer.concat([responseNonce, this.suite.aead.seal(key, aeadNonce, EMPTY, response)]);
  }
}

export interface DecapsulatedRequest {
  keyId: number;
  /** The KEM encapsulation: unique per request, the replay-cache key (RFC 9458 §6.5). */
  enc: Uint8Array;
  suite: Suite;
  /** The inner message/bhttp bytes. */
  request: Buffer;
  responseContext: ResponseContext;
}

/** The decoded inner request handed to the pipeline. */
export interface InnerRequest {
  method: string;
  scheme: string;
  authority: string;
  path: string;
  headers: Field[];
  body: Buffer;
  trailers: Field[];
}

/** What the pipeline answers; sealed into message/ohttp-res. */
export interface InnerResponse {
  status: number;
  headers: Iterable<readonly [string, string]>;
  body?: Uint8Array | string;
  trailers?: Iterable<readonly [string, string]>;
}

export interface OpenedRequest {
  request: InnerRequest;
  keyId: number;
  enc: Uint8Array;
  /** Encapsulates the answer (message/ohttp-res bytes); call once per request. */
  seal(response: InnerResponse): Buffer;
}

/**
 * An error found after the encapsulation was removed (RFC 9458 §5.2): its answer must itself be
 * encapsulated. `seal` does that for any response; `sealJson` for the standard error body.
 */
export class PqInnerError extends CageError {
  readonly seal: (response: InnerResponse) => Buffer;

  constructor(code: CageErrorCode, message: string, seal: (response: InnerResponse) => Buffer, cause?: unknown) {
    super({ code, message, cause });
    this.name = 'PqInnerError';
    this.seal = seal;
  }

  /** The `{"error":{…}}` body with this error's status, sealed. */
  sealJson(requestId: string): Buffer {
    return this.seal({ status: this.status, headers: [['content-type', 'application/json']], body: errorBody(this.code, this.message, requestId) });
  }
}

/** Connection-specific fields, meaningless inside a binary message (RFC 9292 §3.6 SHOULD remove). */
const CONNECTION_FIELDS = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'transfer-encoding', 'upgrade']);

function toFields(fields: Iterable<readonly [string, string]> | undefined): Field[] {
  const out: Field[] = [];
  if (!fields) return out;
  for (const [name, value] of fields) {
    const lower = name.toLowerCase();
    if (!CONNECTION_FIELDS.has(lower)) out.push([lower, value]);
  }
  return out;
}

/** The BHTTP bytes of an inner response (connection fields dropped, names lowercased). */
export function encodeInnerResponse(response: InnerResponse): Buffer {
  const body = typeof response.body === 'string' ? Buffer.from(response.body) : response.body ?? EMPTY;
  return encodeResponse({ status: response.status, headers: toFields(response.headers), body, trailers: toFields(response.trailers) });
}

/** True when a Content-Type names message/ohttp-req (parameters and case ignored). */
export function isEncapsulatedRequest(contentType: string | undefined | null): boolean {
  if (!contentType) return false;
  const semi = contentType.indexOf(';');
  return (semi === -1 ? contentType : contentType.slice(0, semi)).trim().toLowerCase() === MEDIA_TYPE_OHTTP_REQUEST;
}

/** Throws PQ_REQUIRED unless the request is encapsulated (for routes that demand it). */
export function requireEncapsulated(contentType: string | undefined | null): void {
  if (!isEncapsulatedRequest(contentType)) throw new CageError({ code: 'PQ_REQUIRED', message: `this route accepts only ${MEDIA_TYPE_OHTTP_REQUEST} requests` });
}

export interface OhttpGatewayOptions {
  /** The keys: a source (a KeyRing) or a fixed list. */
  keys: OhttpKeySource | readonly GatewayKey[];
  /** Largest message/ohttp-req accepted, bytes. Default 16 MiB + 64 KiB. */
  maxRequestBytes?: number;
  bhttpLimits?: Partial<BhttpLimits>;
  /** Freshness window and replay cache; off when absent. */
  replay?: ReplayGuard;
  rng?: Rng;
}

const GATEWAY_OPTIONS = ['keys', 'maxRequestBytes', 'bhttpLimits', 'replay', 'rng'];

/** A fixed key list as a key source (duplicate key ids refused). */
export function staticKeySource(keys: readonly GatewayKey[]): OhttpKeySource {
  const byId = new Map<number, GatewayKey>();
  for (const key of keys) {
    if (byId.has(key.config.keyId)) throw new CageError({ code: 'CONFIG_INVALID', message: `duplicate key id ${key.config.keyId}` });
    if (key.privateKey.kemId !== key.config.kemId) throw new CageError({ code: 'CONFIG_INVALID', message: `key ${key.config.keyId}: private key is for another KEM` });
    byId.set(key.config.keyId, key);
  }
  return { findKey: (keyId) => byId.get(keyId) };
}

/** An Encapsulated Request's header, checked against the gateway's keys (§4.3 before any crypto). */
export interface RequestHeader {
  keyId: number;
  key: GatewayKey;
  suite: Suite;
}

/**
 * §4.3, the cheap half: parse hdr = key_id ‖ kem_id ‖ kdf_id ‖ aead_id, find the key, check that it
 * accepts the suite and that enc and an AEAD tag fit. No crypto. Throws PQ_BAD_ENVELOPE,
 * PQ_UNKNOWN_KEY or PQ_UNSUPPORTED_SUITE. `encRequest` is attacker input.
 */
export function checkRequestHeader(encRequest: Uint8Array, keys: OhttpKeySource): RequestHeader {
  if (encRequest.length < OHTTP_HEADER_LENGTH) throw envelope('encapsulated request truncated in its header');
  const b = Buffer.from(encRequest.buffer, encRequest.byteOffset, encRequest.length);
  const keyId = b[0]!;
  const kemId = b.readUInt16BE(1);
  const kdfId = b.readUInt16BE(3);
  const aeadId = b.readUInt16BE(5);
  const key = keys.findKey(keyId);
  if (!key) throw new CageError({ code: 'PQ_UNKNOWN_KEY', message: `unknown key id ${keyId}` });
  if (kemId !== key.config.kemId) throw new CageError({ code: 'PQ_UNSUPPORTED_SUITE', message: `key ${keyId} is not a KEM 0x${kemId.toString(16).padStart(4, '0')} key` });
  if (!key.config.symmetric.some((s) => s.kdfId === kdfId && s.aeadId === aeadId)) {
    throw new CageError({ code: 'PQ_UNSUPPORTED_SUITE', message: `key ${keyId} does not accept KDF 0x${kdfId.toString(16).padStart(4, '0')} with AEAD 0x${aeadId.toString(16).padStart(4, '0')}` });
  }
  const suite = suiteFor(kemId, kdfId, aeadId);
  if (b.length < OHTTP_HEADER_LENGTH + suite.kem.Nenc + suite.aead.Nt) throw envelope('encapsulated request truncated');
  return { keyId, key, suite };
}

/**
 * What opening an Encapsulated Request yields: plain data, so it can cross a thread boundary
 * (pq/pool.ts). `exportedSecret` is §4.4's secret, from which a ResponseContext is rebuilt.
 */
export interface OpenedEnvelope {
  keyId: number;
  kemId: number;
  kdfId: number;
  aeadId: number;
  /** A copy of the KEM encapsulation (its own memory). */
  enc: Uint8Array;
  /** The inner message/bhttp bytes. */
  request: Buffer;
  exportedSecret: Buffer;
}

/**
 * §4.3, the costly half: SetupBaseR (the KEM decapsulation and key schedule), Open, and the §4.4
 * Export. `header` is checkRequestHeader's answer for the same bytes. PQ_BAD_ENVELOPE on failure.
 */
export function openEnvelope(encRequest: Uint8Array, header: RequestHeader): OpenedEnvelope {
  const { suite } = header;
  const b = Buffer.from(encRequest.buffer, encRequest.byteOffset, encRequest.length);
  const encEnd = OHTTP_HEADER_LENGTH + suite.kem.Nenc;
  const enc = b.subarray(OHTTP_HEADER_LENGTH, encEnd);
  const context = setupBaseR(suite, enc, header.key.privateKey, requestInfo(b.subarray(0, OHTTP_HEADER_LENGTH)));
  const request = context.open(EMPTY, b.subarray(encEnd));
  return {
    keyId: header.keyId, kemId: suite.kem.id, kdfId: suite.kdf.id, aeadId: suite.aead.id,
    enc: Uint8Array.from(enc), request, exportedSecret: exportResponseSecret(context),
  };
}

/** Opens envelopes somewhere else than the calling code, e.g. a pool of worker threads (pq/pool.ts). */
export interface EnvelopeOpener {
  /**
   * Checks the header (same codes as checkRequestHeader) and opens the envelope (PQ_BAD_ENVELOPE).
   * May take over `encRequest`'s memory (transfer it to another thread): do not use it afterwards.
   */
  open(encRequest: Buffer): Promise<OpenedEnvelope>;
}

/** The gateway half of RFC 9458: opens Encapsulated Requests and seals their responses. */
export class OhttpGateway {
  readonly #keys: OhttpKeySource;
  readonly #maxRequestBytes: number;
  readonly #limits: Readonly<BhttpLimits>;
  readonly #replay: ReplayGuard | undefined;
  readonly #rng: Rng;

  constructor(opts: OhttpGatewayOptions) {
    rejectUnknownOptions(opts, GATEWAY_OPTIONS, 'OhttpGateway');
    if (!opts.keys) throw new CageError({ code: 'CONFIG_INVALID', message: 'OhttpGateway needs keys' });
    this.#keys = Array.isArray(opts.keys) ? staticKeySource(opts.keys) : (opts.keys as OhttpKeySource);
    this.#maxRequestBytes = checkInteger(opts.maxRequestBytes ?? 16 * 1024 * 1024 + 64 * 1024, 'OhttpGateway maxRequestBytes', OHTTP_HEADER_LENGTH);
    this.#limits = resolveBhttpLimits(opts.bhttpLimits);
    this.#replay = opts.replay;
    this.#rng = opts.rng ?? defaultRng;
  }

  /**
   * §4.3: parse hdr ‖ enc ‖ ct, find the key, check the suite, SetupBaseR and Open. Throws
   * PQ_BAD_ENVELOPE, PQ_UNKNOWN_KEY or PQ_UNSUPPORTED_SUITE; nothing can be encapsulated back yet.
   */
  decapsulateRequest(encRequest: Uint8Array): DecapsulatedRequest {
    this.#checkSize(encRequest);
    return this.#decapsulated(openEnvelope(encRequest, checkRequestHeader(encRequest, this.#keys)));
  }

  /**
   * The pipeline entry: checks the outer Content-Type, decapsulates, decodes the inner BHTTP
   * request and applies the replay guard. Errors before decryption are CageError (answer them in
   * the clear); errors after it are PqInnerError (answer with `err.seal(…)` / `err.sealJson(id)`).
   */
  openRequest(body: Uint8Array, contentType: string | undefined | null): OpenedRequest {
    if (!isEncapsulatedRequest(contentType)) throw envelope(`content-type must be ${MEDIA_TYPE_OHTTP_REQUEST}`);
    return this.#complete(this.decapsulateRequest(body));
  }

  /**
   * openRequest with the decapsulation done by `opener` (pq/pool.ts: worker threads), whose keys
   * must be this gateway's; BHTTP decoding and the replay guard stay here, on the calling thread.
   * Same errors as openRequest. `body` may be taken over by the opener (see EnvelopeOpener).
   */
  async openRequestWith(opener: EnvelopeOpener, body: Buffer, contentType: string | undefined | null): Promise<OpenedRequest> {
    if (!isEncapsulatedRequest(contentType)) throw envelope(`content-type must be ${MEDIA_TYPE_OHTTP_REQUEST}`);
    this.#checkSize(body);
    return this.#complete(this.#decapsulated(await opener.open(body)));
  }

  #checkSize(encRequest: Uint8Array): void {
    if (!(encRequest instanceof Uint8Array)) throw envelope('encapsulated request must be bytes');
    if (encRequest.length > this.#maxRequestBytes) throw envelope(`encapsulated request of ${encRequest.length} bytes exceeds ${this.#maxRequestBytes}`);
  }

  #decapsulated(o: OpenedEnvelope): DecapsulatedRequest {
    const suite = suiteFor(o.kemId, o.kdfId, o.aeadId);
    return { keyId: o.keyId, enc: o.enc, suite, request: o.request, responseContext: new ResponseContext(suite, o.exportedSecret, o.enc, this.#rng) };
  }

  /** After decryption: decode the BHTTP request, refuse 100-continue, check freshness and replays. */
  #complete(d: DecapsulatedRequest): OpenedRequest {
    let sealed = false;
    const seal = (response: InnerResponse): Buffer => {
      if (sealed) throw new CageError({ code: 'GW_INTERNAL', message: 'an encapsulated request can be answered only once' });
      sealed = true;
      return d.responseContext.encapsulate(encodeInnerResponse(response));
    };
    let request: InnerRequest;
    try {
      const m = decodeRequest(d.request, this.#limits);
      request = { method: m.method, scheme: m.scheme, authority: m.authority, path: m.path, headers: m.headers, body: Buffer.from(m.body.buffer, m.body.byteOffset, m.body.length), trailers: m.trailers };
      // RFC 9458 §5.1: a 100-continue expectation cannot work through the encapsulation.
      if (request.headers.some(([n, v]) => n === 'expect' && v.toLowerCase().includes('100-continue'))) {
        throw new CageError({ code: 'PQ_BAD_BHTTP', message: 'Expect: 100-continue is not allowed in an encapsulated request' });
      }
      this.#replay?.check(d.enc, request.headers);
    } catch (err) {
      if (err instanceof CageError) throw new PqInnerError(err.code, err.message, seal, err);
      throw err;
    }
    return { request, keyId: d.keyId, enc: d.enc, seal };
  }
}
