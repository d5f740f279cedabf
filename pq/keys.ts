/**
 * The gateway's HPKE keys (RFC 9458 §6.4 key management): a KeyRing holds X-Wing key pairs with
 * 8-bit key ids, makes a new one every `rotateMs` (by an injected clock), keeps accepting the
 * previous ones for `graceMs` after they were replaced, then forgets them (and deletes their files),
 * which also gives the forward secrecy of §6.6 past that point. It publishes the accepted keys'
 * configurations, newest first, as application/ohttp-keys.
 *
 * Persistence (optional `dir`): one JSON file per key, `key-<id>.json`, mode 0600, in a 0700
 * directory, written atomically (temporary file, fsync, rename, fsync of the directory), holding
 * the 32-byte seed and the creation time. A key is retired when the next one is created, so no file
 * is ever rewritten. Files readable by group or others are refused, as ssh does.
 *
 * Trust: the directory is the operator's; a damaged file stops start-up (PQ_KEY_STORE) rather than
 * being skipped. Lookups (`findKey`) are in memory and check the clock, so an expired key is refused
 * even if `maintain()` has not run yet.
 *
 * Worker threads that open envelopes (pq/pool.ts) hold copies of the seeds, in memory only: they
 * read `keySeeds()` at start and again after every change of the held keys (`onKeysChanged`).
 */
import { mkdir, open, readdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { CageError } from '../core/errors.js';
import { AEAD_AES_128_GCM, AEAD_AES_256_GCM, AEAD_CHACHA20_POLY1305, defaultRng, KDF_HKDF_SHA256, KEM_XWING, kemById, suiteFor, type Rng } from './hpke.js';
import { encodeKeyConfigList, type GatewayKey, type KeyConfig, type OhttpKeySource, type SymmetricAlgorithm } from './ohttp.js';
import { checkInteger, rejectUnknownOptions } from './options.js';

/** AES-256-GCM first (a 256-bit key keeps 128-bit strength against Grover), then ChaCha20-Poly1305, then AES-128-GCM. */
export const DEFAULT_SYMMETRIC: readonly SymmetricAlgorithm[] = Object.freeze([
  { kdfId: KDF_HKDF_SHA256, aeadId: AEAD_AES_256_GCM },
  { kdfId: KDF_HKDF_SHA256, aeadId: AEAD_CHACHA20_POLY1305 },
  { kdfId: KDF_HKDF_SHA256, aeadId: AEAD_AES_128_GCM },
]);

export interface KeyRingOptions {
  /** Keep keys here across restarts; memory only when absent. */
  dir?: string;
  /** A new key every rotateMs. */
  rotateMs: number;
  /** A replaced key is still accepted for graceMs. */
  graceMs: number;
  /** Default X-Wing (0x647a). */
  kemId?: number;
  symmetric?: readonly SymmetricAlgorithm[];
  now?: () => number;
  rng?: Rng;
}

const OPTION_KEYS = ['dir', 'rotateMs', 'graceMs', 'kemId', 'symmetric', 'now', 'rng'];
const FILE_RE = /^key-(\d{1,3})\.json$/;

/** A held key as worker threads get it (pq/pool.ts): the seed, never the file. */
export interface KeySeed {
  keyId: number;
  kemId: number;
  /** Identifies the key together with keyId: key ids are reused after 256 rotations. */
  createdAt: number;
  seed: Uint8Array;
  symmetric: SymmetricAlgorithm[];
}

interface HeldKey extends GatewayKey {
  createdAt: number;
  /** When the next key was created; undefined for the current key. */
  retiredAt: number | undefined;
  seed: Uint8Array;
}

/** On-disk form, one file per key. */
interface KeyFile {
  version: 1;
  keyId: number;
  kemId: number;
  createdAt: number;
  seed: string;
  symmetric: SymmetricAlgorithm[];
}

function storeError(message: string, cause?: unknown): CageError {
  return new CageError({ code: 'PQ_KEY_STORE', message, cause });
}

export class KeyRing implements OhttpKeySource {
  readonly rotateMs: number;
  readonly graceMs: number;
  readonly kemId: number;
  readonly symmetric: readonly SymmetricAlgorithm[];
  readonly dir: string | undefined;
  readonly #now: () => number;
  readonly #rng: Rng;
  /** Oldest first. */
  #keys: HeldKey[] = [];
  /** Encoded list, tagged with its key ids; reset whenever a key is added or dropped. */
  #encoded: { tag: string; bytes: Buffer } | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  #maintaining: Promise<void> | undefined;
  readonly #listeners = new Set<() => void>();

  private constructor(opts: KeyRingOptions) {
    rejectUnknownOptions(opts, OPTION_KEYS, 'KeyRing');
    this.rotateMs = checkInteger(opts.rotateMs, 'KeyRing rotateMs', 1);
    this.graceMs = checkInteger(opts.graceMs, 'KeyRing graceMs', 0);
    this.kemId = opts.kemId ?? KEM_XWING;
    if (!kemById(this.kemId)) throw new CageError({ code: 'CONFIG_INVALID', message: `KeyRing kemId 0x${this.kemId.toString(16)} is not implemented` });
    this.symmetric = Object.freeze((opts.symmetric ?? DEFAULT_SYMMETRIC).map((s) => ({ kdfId: s.kdfId, aeadId: s.aeadId })));
    if (this.symmetric.length === 0) throw new CageError({ code: 'CONFIG_INVALID', message: 'KeyRing symmetric needs at least one KDF/AEAD pair' });
    for (const s of this.symmetric) suiteFor(this.kemId, s.kdfId, s.aeadId);
    this.dir = opts.dir;
    this.#now = opts.now ?? Date.now;
    this.#rng = opts.rng ?? defaultRng;
  }

  /** Loads the keys in `dir` (if any), then rotates/drops as the clock says, creating a first key if needed. */
  static async open(opts: KeyRingOptions): Promise<KeyRing> {
    const ring = new KeyRing(opts);
    if (ring.dir !== undefined) await ring.#load(ring.dir);
    await ring.maintain();
    return ring;
  }

  /** The key new requests should use. */
  get current(): GatewayKey {
    const key = this.#keys[this.#keys.length - 1];
    if (!key) throw storeError('the key ring holds no key (open() not awaited?)');
    return key;
  }

  /** In memory, no I/O: the current key, or a replaced one still within its grace period. */
  findKey(keyId: number): GatewayKey | undefined {
    const now = this.#now();
    for (let i = this.#keys.length - 1; i >= 0; i--) {
      const key = this.#keys[i]!;
      if (key.config.keyId !== keyId) continue;
      return key.retiredAt === undefined || now < key.retiredAt + this.graceMs ? key : undefined;
    }
    return undefined;
  }

  /** The accepted keys' configurations, newest first. */
  configs(): KeyConfig[] {
    const now = this.#now();
    return this.#keys.filter((k) => k.retiredAt === undefined || now < k.retiredAt + this.graceMs).reverse().map((k) => k.config);
  }

  /** application/ohttp-keys content for `configs()`; cached between changes of the key set. */
  encodedConfigs(): Buffer {
    const list = this.configs();
    const tag = list.map((c) => c.keyId).join(',');
    if (this.#encoded?.tag !== tag) this.#encoded = { tag, bytes: encodeKeyConfigList(list) };
    return this.#encoded.bytes;
  }

  /**
   * Every held key's seed (those `maintain()` has not forgotten yet, including any past its grace
   * by the clock: `findKey` refuses those). Fresh copies; for worker threads (pq/pool.ts).
   */
  keySeeds(): KeySeed[] {
    return this.#keys.map((k) => ({
      keyId: k.config.keyId, kemId: k.config.kemId, createdAt: k.createdAt, seed: Uint8Array.from(k.seed), symmetric: k.config.symmetric.map((s) => ({ ...s })),
    }));
  }

  /**
   * Calls `listener` synchronously after every change of the held keys (a new key, keys forgotten),
   * so a pool can push keySeeds() to its workers before any later lookup. Returns the unsubscribe.
   */
  onKeysChanged(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #changed(): void {
    this.#encoded = undefined;
    for (const listener of this.#listeners) {
      try {
        listener();
      } catch {
        // A listener's failure must not stop rotation; pq/pool.ts's does not throw.
      }
    }
  }

  /**
   * Rotates when the current key is `rotateMs` old, and forgets keys past their grace period.
   * Calls that overlap (the timer and a manual call) share one run.
   */
  maintain(): Promise<void> {
    this.#maintaining ??= this.#maintain().finally(() => {
      this.#maintaining = undefined;
    });
    return this.#maintaining;
  }

  async #maintain(): Promise<void> {
    const now = this.#now();
    const current = this.#keys[this.#keys.length - 1];
    if (!current || now - current.createdAt >= this.rotateMs) await this.#rotate(now);
    const expired = this.#keys.filter((k) => k.retiredAt !== undefined && now >= k.retiredAt + this.graceMs);
    if (expired.length === 0) return;
    this.#keys = this.#keys.filter((k) => !expired.includes(k));
    this.#changed();
    for (const key of expired) {
      key.seed.fill(0);
      if (this.dir !== undefined) await unlink(join(this.dir, `key-${key.config.keyId}.json`)).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw storeError(`cannot delete key file for key ${key.config.keyId}`, err);
      });
    }
  }

  /** Runs maintain() every intervalMs (unref'd); returns a stop function. Errors go to onError. */
  startTimer(intervalMs: number, onError: (err: unknown) => void): () => void {
    checkInteger(intervalMs, 'KeyRing timer interval', 1);
    this.stopTimer();
    this.#timer = setInterval(() => void this.maintain().catch(onError), intervalMs);
    this.#timer.unref();
    return () => this.stopTimer();
  }

  stopTimer(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  async #rotate(now: number): Promise<void> {
    const inUse = new Set(this.#keys.map((k) => k.config.keyId));
    const previous = this.#keys[this.#keys.length - 1];
    let keyId = previous === undefined ? this.#rng(1)[0]! : (previous.config.keyId + 1) & 0xff;
    for (let tries = 0; inUse.has(keyId); tries++) {
      if (tries >= 256) throw storeError('all 256 key ids are in use; shorten graceMs');
      keyId = (keyId + 1) & 0xff;
    }
    const seed = Uint8Array.from(this.#rng(kemById(this.kemId)!.Nsk));
    const key = this.#makeKey(keyId, this.kemId, seed, now, this.symmetric);
    if (this.dir !== undefined) await this.#write(this.dir, key);
    if (previous) previous.retiredAt = now;
    this.#keys.push(key);
    this.#changed();
  }

  #makeKey(keyId: number, kemId: number, seed: Uint8Array, createdAt: number, symmetric: readonly SymmetricAlgorithm[]): HeldKey {
    const privateKey = kemById(kemId)!.importPrivateKey(seed);
    const config: KeyConfig = { keyId, kemId, publicKey: privateKey.publicKey, symmetric: symmetric.map((s) => ({ ...s })) };
    return { config, privateKey, createdAt, retiredAt: undefined, seed };
  }

  async #write(dir: string, key: HeldKey): Promise<void> {
    const file: KeyFile = {
      version: 1, keyId: key.config.keyId, kemId: key.config.kemId, createdAt: key.createdAt,
      seed: Buffer.from(key.seed).toString('base64'), symmetric: key.config.symmetric,
    };
    const path = join(dir, `key-${key.config.keyId}.json`);
    const tmp = `${path}.${process.pid}.${Date.now()}.tmp`;
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const fh = await open(tmp, 'wx', 0o600);
      try {
        await fh.writeFile(`${JSON.stringify(file)}\n`);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, path);
      const dh = await open(dir, 'r');
      try {
        await dh.sync();
      } finally {
        await dh.close();
      }
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw storeError(`cannot write key file ${path}`, err);
    }
  }

  async #load(dir: string): Promise<void> {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw storeError(`cannot read key directory ${dir}`, err);
    }
    const loaded: HeldKey[] = [];
    for (const name of names) {
      if (!FILE_RE.test(name)) continue;
      const path = join(dir, name);
      try {
        const st = await stat(path);
        if ((st.mode & 0o077) !== 0) throw storeError(`key file ${path} is readable by others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`);
        loaded.push(this.#parse(JSON.parse(await readFile(path, 'utf8')) as unknown, name));
      } catch (err) {
        if (err instanceof CageError) throw err;
        throw storeError(`damaged key file ${path}`, err);
      }
    }
    loaded.sort((a, b) => a.createdAt - b.createdAt);
    for (let i = 0; i < loaded.length - 1; i++) loaded[i]!.retiredAt = loaded[i + 1]!.createdAt;
    this.#keys = loaded;
  }

  #parse(raw: unknown, name: string): HeldKey {
    const f = raw as Partial<KeyFile>;
    const fail = (why: string): never => {
      throw storeError(`key file ${name}: ${why}`);
    };
    if (typeof f !== 'object' || f === null || f.version !== 1) fail('unknown format');
    if (!Number.isInteger(f.keyId) || f.keyId! < 0 || f.keyId! > 255 || name !== `key-${f.keyId}.json`) fail('bad keyId');
    if (!Number.isInteger(f.kemId) || !kemById(f.kemId!)) fail('unsupported kemId');
    if (!Number.isSafeInteger(f.createdAt)) fail('bad createdAt');
    const seed = typeof f.seed === 'string' ? Buffer.from(f.seed, 'base64') : undefined;
    if (!seed || seed.length !== kemById(f.kemId!)!.Nsk || seed.toString('base64') !== f.seed) fail('bad seed');
    if (!Array.isArray(f.symmetric) || f.symmetric.length === 0) fail('bad symmetric list');
    for (const s of f.symmetric!) {
      if (!Number.isInteger(s?.kdfId) || !Number.isInteger(s?.aeadId)) fail('bad symmetric list');
      suiteFor(f.kemId!, s.kdfId, s.aeadId);
    }
    return this.#makeKey(f.keyId!, f.kemId!, Uint8Array.from(seed!), f.createdAt!, f.symmetric!);
  }
}
