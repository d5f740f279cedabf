/**
 * The chain's durable store on LevelDB (`classic-level`): blocks by height and hash, commit seals,
 * results, a transaction index, the full state, the head, and QBFT's persisted consensus state.
 * Each block commit is one atomic, fsynced batch (block, seals, results, indexes, state writes and
 * the new head together), so a `kill -9` at any instant reopens at the previous or the new head,
 * never between. The consensus state is written with `sync` before the shell sends the broadcasts
 * that follow it.
 *
 * Keys (UTF-8) → values:
 *   B<height:13 hex>  block bytes (chain/block.ts)       S<height>  u32 round ‖ encodeSeals(seals)
 *   R<height>         results JSON {results, events}     H<hash hex> height (decimal)
 *   T<tx hash hex>    "<height>:<index>"                 K<state key> state value
 *   Mhead             JSON {height, hash, timestamp, stateRoot}
 *   Mconsensus        QBFT persisted state bytes         Mgenesis  genesis block hash (hex)
 */
import { ClassicLevel } from 'classic-level';
import { CageError, type CageErrorCode } from '../../core/errors.js';
import { decodeSeals, encodeSeals, type CommitSeal } from '../qbft/index.js';
import type { TxResult } from '../block.js';
import type { ChainEvent } from '../module.js';
import type { ChainHead, Execution } from '../chain.js';

export interface StoredBlock {
  readonly bytes: Buffer;
  readonly round: number;
  readonly seals: CommitSeal[];
}

export interface StoredResults {
  readonly results: TxResult[];
  readonly events: ChainEvent[];
}

function heightKey(h: number): string {
  return h.toString(16).padStart(13, '0');
}

function storeError(code: CageErrorCode, what: string, err: unknown): CageError {
  return new CageError({ code, message: `chain store: ${what}: ${(err as Error).message}`, cause: err });
}

export class ChainStore {
  private constructor(private readonly db: ClassicLevel<string, Buffer>) {}

  /** Opens (creating) the store. Throws CHAIN_STORE_LOCKED when another process holds it, CHAIN_STORE_IO otherwise. */
  static async open(dir: string): Promise<ChainStore> {
    const db = new ClassicLevel<string, Buffer>(dir, { keyEncoding: 'utf8', valueEncoding: 'buffer' });
    try {
      await db.open();
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause;
      if (cause?.code === 'LEVEL_LOCKED') throw storeError('CHAIN_STORE_LOCKED', dir, err);
      throw storeError('CHAIN_STORE_IO', `cannot open ${dir}`, err);
    }
    return new ChainStore(db);
  }

  async close(): Promise<void> {
    await this.db.close();
  }

  private async read(key: string): Promise<Buffer | undefined> {
    try {
      return await this.db.get(key);
    } catch (err) {
      throw storeError('CHAIN_STORE_IO', `read ${key}`, err);
    }
  }

  async head(): Promise<ChainHead | undefined> {
    const v = await this.read('Mhead');
    if (v === undefined) return undefined;
    try {
      const j = JSON.parse(v.toString('utf8')) as { height: number; hash: string; timestamp: number; stateRoot: string };
      return { height: j.height, hash: Buffer.from(j.hash, 'hex'), timestamp: j.timestamp, stateRoot: Buffer.from(j.stateRoot, 'hex') };
    } catch (err) {
      throw storeError('CHAIN_STORE_CORRUPT', 'head record', err);
    }
  }

  async genesisHash(): Promise<string | undefined> {
    return (await this.read('Mgenesis'))?.toString('utf8');
  }

  /** Every state key and value (to restore the in-memory state at start). */
  async *state(): AsyncIterable<[string, Uint8Array]> {
    for await (const [k, v] of this.db.iterator({ gt: 'K', lt: 'L' })) yield [k.slice(1), v];
  }

  /** Commits an executed block with its seals in one atomic, fsynced batch. */
  async commitBlock(exec: Execution, round: number, seals: readonly CommitSeal[]): Promise<void> {
    const b = exec.block;
    const h = b.header;
    const hk = heightKey(h.height);
    const sealBytes = Buffer.alloc(4);
    sealBytes.writeUInt32BE(round);
    const ops: ({ type: 'put'; key: string; value: Buffer } | { type: 'del'; key: string })[] = [
      { type: 'put', key: 'B' + hk, value: b.bytes },
      { type: 'put', key: 'S' + hk, value: Buffer.concat([sealBytes, encodeSeals(seals)]) },
      { type: 'put', key: 'R' + hk, value: Buffer.from(JSON.stringify({ results: exec.results, events: exec.blockEvents }), 'utf8') },
      { type: 'put', key: 'H' + b.hash.toString('hex'), value: Buffer.from(String(h.height)) },
    ];
    b.txs.forEach((tx, i) => ops.push({ type: 'put', key: 'T' + tx.hash.toString('hex'), value: Buffer.from(`${h.height}:${i}`) }));
    for (const [k, v] of exec.writes) ops.push(v === null ? { type: 'del', key: 'K' + k } : { type: 'put', key: 'K' + k, value: Buffer.from(v) });
    const head = { height: h.height, hash: b.hash.toString('hex'), timestamp: h.timestamp, stateRoot: h.stateRoot.toString('hex') };
    ops.push({ type: 'put', key: 'Mhead', value: Buffer.from(JSON.stringify(head), 'utf8') });
    if (h.height === 0) ops.push({ type: 'put', key: 'Mgenesis', value: Buffer.from(b.hash.toString('hex'), 'utf8') });
    try {
      await this.db.batch(ops, { sync: true });
    } catch (err) {
      throw storeError('CHAIN_STORE_IO', `commit block ${h.height}`, err);
    }
  }

  /** Makes QBFT's persisted state durable (fsync) before the caller sends what follows it. */
  async putConsensus(state: Uint8Array): Promise<void> {
    try {
      await this.db.put('Mconsensus', Buffer.from(state), { sync: true });
    } catch (err) {
      throw storeError('CHAIN_STORE_IO', 'consensus state', err);
    }
  }

  async consensus(): Promise<Buffer | undefined> {
    return this.read('Mconsensus');
  }

  async block(height: number): Promise<StoredBlock | undefined> {
    if (!Number.isSafeInteger(height) || height < 0) return undefined;
    const [bytes, seal] = await Promise.all([this.read('B' + heightKey(height)), this.read('S' + heightKey(height))]);
    if (bytes === undefined) return undefined;
    if (seal === undefined || seal.length < 4) throw storeError('CHAIN_STORE_CORRUPT', `seals of block ${height}`, new Error('missing'));
    return { bytes, round: seal.readUInt32BE(0), seals: decodeSeals(seal.subarray(4)) };
  }

  async heightOfHash(hashHex: string): Promise<number | undefined> {
    if (!/^[0-9a-f]{64}$/.test(hashHex)) return undefined;
    const v = await this.read('H' + hashHex);
    return v === undefined ? undefined : Number(v.toString('utf8'));
  }

  async txLocation(hashHex: string): Promise<{ height: number; index: number } | undefined> {
    if (!/^[0-9a-f]{64}$/.test(hashHex)) return undefined;
    const v = await this.read('T' + hashHex);
    if (v === undefined) return undefined;
    const [height, index] = v.toString('utf8').split(':').map(Number);
    return { height: height!, index: index! };
  }

  async results(height: number): Promise<StoredResults | undefined> {
    const v = await this.read('R' + heightKey(height));
    return v === undefined ? undefined : (JSON.parse(v.toString('utf8')) as StoredResults);
  }
}
