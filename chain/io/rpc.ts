/**
 * JSON-RPC 2.0 (https://www.jsonrpc.org/specification) at `POST /rpc`, and the same methods over a
 * WebSocket at `/rpc` with a new-heads subscription. Methods:
 *
 *   chain_status                          {chainId, height, hash, validator, peers, pool}
 *   chain_head                            the head header (every block is final: QBFT)
 *   chain_getBlockByHeight [h, full?]     header, seals, round, tx hashes (full: txs and results)
 *   chain_getBlockByHash   [hash, full?]
 *   chain_getTransaction   [hash]         receipt {hash, height, index, blockHash, code, events, tx} or null
 *   chain_sendTransaction  [base64 tx]    {hash}: checked and pooled (not yet final)
 *   chain_getNonce         [did]          next nonce (state plus queued pool transactions)
 *   chain_validators                      the set finalizing the next block
 *   anchor_getCheckpoint   [origin, height?]  the latest anchored checkpoint (at or below height)
 *   <module>_<method>      [params]       module.query(method, params)  (e.g. anchor_logs, bank_balance)
 *   chain_subscribe ["newHeads"] / chain_unsubscribe [id]   (WebSocket only; notifications are
 *                                          {"method":"chain_subscription","params":{subscription, result}})
 *
 * Errors: -32700 parse error, -32600 invalid request, -32601 unknown method, -32602 bad params,
 * -32000 any other refusal; `error.data.code` is always the CageError code. Batches (arrays of up
 * to 100 requests) are answered in one array. Bodies above `maxBodyBytes` get 413.
 *
 * Trust: request bodies are attacker-controlled; nothing a request holds can throw out of the
 * handler (every failure is a JSON-RPC error).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { WebSocketServer, type WebSocket } from 'ws';
import { CageError, isCageError, type CageErrorCode } from '../../core/errors.js';
import { decodeBlock, headerToJson, type Block } from '../block.js';
import { transactionToJson } from '../tx.js';
import type { ChainNode } from './node.js';
import { listenAddress } from './p2p.js';

export const MAX_BATCH = 100;
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;

type Json = unknown;
interface RpcRequest {
  jsonrpc: '2.0';
  id?: string | number | null;
  method: string;
  params?: unknown[] | Record<string, unknown>;
}

const JSONRPC_CODES: Partial<Record<CageErrorCode, number>> = {
  CHAIN_RPC_PARSE_ERROR: -32700,
  CHAIN_RPC_BAD_REQUEST: -32600,
  CHAIN_RPC_UNKNOWN_METHOD: -32601,
  CHAIN_UNKNOWN_MODULE: -32601,
  CHAIN_UNKNOWN_METHOD: -32601,
  CHAIN_RPC_BAD_PARAMS: -32602,
  CHAIN_BAD_ARGS: -32602,
  ANCHOR_BAD_ARGS: -32602,
};

function rpcError(id: unknown, err: unknown): Json {
  const code: CageErrorCode = isCageError(err) ? err.code : 'CHAIN_RPC_ERROR';
  const message = isCageError(err) ? err.message : 'internal error';
  return { jsonrpc: '2.0', id: id ?? null, error: { code: JSONRPC_CODES[code] ?? (isCageError(err) ? -32000 : -32603), message, data: { code } } };
}

function badParams(message: string): CageError {
  return new CageError({ code: 'CHAIN_RPC_BAD_PARAMS', message });
}

function param(params: unknown[], i: number, type: 'string' | 'number' | 'boolean', optional = false): unknown {
  const v = params[i];
  if (v === undefined && optional) return undefined;
  if (typeof v !== type) throw badParams(`param ${i} must be a ${type}`);
  if (type === 'number' && (!Number.isSafeInteger(v) || (v as number) < 0)) throw badParams(`param ${i} must be a non-negative integer`);
  return v;
}

function hexHash(v: unknown): string {
  if (typeof v !== 'string' || !/^(0x)?[0-9a-fA-F]{64}$/.test(v)) throw badParams('hash must be 64 hex digits');
  return v.replace(/^0x/, '').toLowerCase();
}

export class RpcServer {
  private server: Server | undefined;
  private wss: WebSocketServer | undefined;
  private readonly subs = new Map<WebSocket, Set<string>>();
  private nextSub = 1;
  port = 0;
  private readonly onHead = (b: Block): void => this.notifyHead(b);

  constructor(
    private readonly node: ChainNode,
    private readonly maxBodyBytes = DEFAULT_MAX_BODY_BYTES,
  ) {}

  async listen(addr: string): Promise<void> {
    const { host, port } = listenAddress(addr);
    const server = createServer((req, res) => this.handleHttp(req, res));
    server.keepAliveTimeout = 5000;
    this.server = server;
    this.wss = new WebSocketServer({ noServer: true, maxPayload: this.maxBodyBytes });
    server.on('upgrade', (req, socket, head) => {
      if (!req.url?.startsWith('/rpc')) {
        socket.destroy();
        return;
      }
      this.wss!.handleUpgrade(req, socket, head, (ws) => this.handleWs(ws));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    this.port = (server.address() as { port: number }).port;
    this.node.on('head', this.onHead);
  }

  async close(): Promise<void> {
    this.node.off('head', this.onHead);
    for (const ws of this.subs.keys()) ws.terminate();
    this.wss?.close();
    if (this.server !== undefined) {
      this.server.closeAllConnections();
      await new Promise<void>((resolve) => this.server!.close(() => resolve()));
    }
  }

  private handleHttp(req: IncomingMessage, res: ServerResponse): void {
    const send = (status: number, body: Json): void => {
      const text = JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/rpc' && path !== '/') return send(404, rpcError(null, new CageError({ code: 'CHAIN_RPC_BAD_REQUEST', message: 'JSON-RPC is served at /rpc' })));
    if (req.method !== 'POST') return send(405, rpcError(null, new CageError({ code: 'CHAIN_RPC_BAD_REQUEST', message: 'JSON-RPC needs POST' })));
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (c: Buffer) => {
      if (tooLarge) return;
      size += c.length;
      if (size > this.maxBodyBytes) {
        tooLarge = true;
        send(413, rpcError(null, new CageError({ code: 'CHAIN_RPC_BODY_TOO_LARGE', message: `body exceeds ${this.maxBodyBytes} bytes` })));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('error', () => {});
    req.on('end', () => {
      if (tooLarge) return;
      void this.handleText(Buffer.concat(chunks).toString('utf8')).then(
        (body) => (body === undefined ? (res.writeHead(204), res.end()) : send(200, body)),
        (err) => send(500, rpcError(null, err)),
      );
    });
  }

  private handleWs(ws: WebSocket): void {
    this.subs.set(ws, new Set());
    ws.on('message', (data, isBinary) => {
      if (isBinary) return ws.send(JSON.stringify(rpcError(null, new CageError({ code: 'CHAIN_RPC_PARSE_ERROR', message: 'send text frames' }))));
      void this.handleText(data.toString(), ws).then((body) => {
        if (body !== undefined && ws.readyState === ws.OPEN) ws.send(JSON.stringify(body));
      });
    });
    ws.on('close', () => this.subs.delete(ws));
    ws.on('error', () => {});
  }

  /** Answers one request body (a request or a batch); undefined when only notifications were sent. */
  async handleText(text: string, ws?: WebSocket): Promise<Json | undefined> {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return rpcError(null, new CageError({ code: 'CHAIN_RPC_PARSE_ERROR', message: 'body is not JSON' }));
    }
    if (Array.isArray(parsed)) {
      if (parsed.length === 0 || parsed.length > MAX_BATCH) {
        return rpcError(null, new CageError({ code: 'CHAIN_RPC_BAD_REQUEST', message: `a batch holds 1..${MAX_BATCH} requests` }));
      }
      const out: Json[] = [];
      for (const r of parsed) {
        const a = await this.handleOne(r, ws);
        if (a !== undefined) out.push(a);
      }
      return out.length === 0 ? undefined : out;
    }
    return this.handleOne(parsed, ws);
  }

  private async handleOne(r: unknown, ws?: WebSocket): Promise<Json | undefined> {
    if (typeof r !== 'object' || r === null || Array.isArray(r)) return rpcError(null, new CageError({ code: 'CHAIN_RPC_BAD_REQUEST', message: 'a request is an object' }));
    const req = r as Partial<RpcRequest>;
    const id = req.id;
    const idOk = id === undefined || id === null || typeof id === 'string' || (typeof id === 'number' && Number.isFinite(id));
    if (req.jsonrpc !== '2.0' || typeof req.method !== 'string' || !idOk || (req.params !== undefined && (typeof req.params !== 'object' || req.params === null))) {
      return rpcError(idOk ? id : null, new CageError({ code: 'CHAIN_RPC_BAD_REQUEST', message: 'not a JSON-RPC 2.0 request' }));
    }
    try {
      const result = await this.dispatch(req.method, req.params ?? [], ws);
      return id === undefined ? undefined : { jsonrpc: '2.0', id, result: result ?? null };
    } catch (err) {
      return id === undefined ? undefined : rpcError(id, err);
    }
  }

  private async dispatch(method: string, rawParams: unknown[] | Record<string, unknown>, ws?: WebSocket): Promise<Json> {
    const node = this.node;
    const params = Array.isArray(rawParams) ? rawParams : [rawParams];
    switch (method) {
      case 'chain_status':
        return {
          chainId: node.chain.chainId,
          height: node.chain.head.height,
          hash: node.chain.head.hash.toString('hex'),
          validator: node.key.did,
          validators: node.chain.validators,
          peers: node.p2p?.connected() ?? [],
          pool: node.chain.mempool.size,
        };
      case 'chain_head':
        return this.block(node.chain.head.height, false);
      case 'chain_getBlockByHeight':
        return this.block(param(params, 0, 'number') as number, (param(params, 1, 'boolean', true) as boolean | undefined) ?? false);
      case 'chain_getBlockByHash': {
        const h = await node.store.heightOfHash(hexHash(params[0]));
        return h === undefined ? null : this.block(h, (param(params, 1, 'boolean', true) as boolean | undefined) ?? false);
      }
      case 'chain_getTransaction':
        return this.receipt(hexHash(params[0]));
      case 'chain_sendTransaction': {
        const raw = param(params, 0, 'string') as string;
        if (!/^[A-Za-z0-9+/]*={0,2}$/.test(raw)) throw badParams('the transaction must be base64');
        const tx = node.submitTransaction(Buffer.from(raw, 'base64'));
        return { hash: tx.hash.toString('hex') };
      }
      case 'chain_getNonce': {
        const did = param(params, 0, 'string') as string;
        return node.chain.pendingNonce(did);
      }
      case 'chain_validators':
        return node.chain.validators;
      case 'anchor_getCheckpoint': {
        const origin = param(params, 0, 'string') as string;
        const height = param(params, 1, 'number', true) as number | undefined;
        return node.chain.query('anchor', 'checkpoint', height === undefined ? { origin } : { origin, height });
      }
      case 'chain_subscribe': {
        if (ws === undefined) throw new CageError({ code: 'CHAIN_RPC_UNKNOWN_METHOD', message: 'subscriptions need the WebSocket endpoint' });
        if (params[0] !== 'newHeads') throw badParams('the only subscription is "newHeads"');
        const id = `0x${(this.nextSub++).toString(16)}`;
        this.subs.get(ws)?.add(id);
        return id;
      }
      case 'chain_unsubscribe':
        if (ws === undefined) throw new CageError({ code: 'CHAIN_RPC_UNKNOWN_METHOD', message: 'subscriptions need the WebSocket endpoint' });
        return this.subs.get(ws)?.delete(String(params[0])) ?? false;
      default: {
        const m = /^([a-z0-9_]+?)_([A-Za-z0-9]+)$/.exec(method);
        if (m === null || m[1] === 'chain' || !node.chain.modules.has(m[1]!)) {
          throw new CageError({ code: 'CHAIN_RPC_UNKNOWN_METHOD', message: `no method ${JSON.stringify(method.slice(0, 100))}` });
        }
        return node.chain.query(m[1]!, m[2]!, Array.isArray(rawParams) ? rawParams[0] : rawParams);
      }
    }
  }

  private async block(height: number, full: boolean): Promise<Json> {
    const stored = await this.node.store.block(height);
    if (stored === undefined) return null;
    const block = decodeBlock(stored.bytes);
    const out: Record<string, unknown> = {
      ...headerToJson(block),
      round: stored.round,
      seals: stored.seals.map((s) => ({ signer: s.signer, signature: Buffer.from(s.signature).toString('base64') })),
      txs: block.txs.map((t) => t.hash.toString('hex')),
    };
    if (full) {
      const r = await this.node.store.results(height);
      out.txs = block.txs.map((t, i) => ({ ...transactionToJson(t), code: r?.results[i]?.code, events: r?.results[i]?.events }));
      out.events = r?.events ?? [];
    }
    return out;
  }

  private async receipt(hash: string): Promise<Json> {
    const loc = await this.node.store.txLocation(hash);
    if (loc === undefined) return null;
    const stored = await this.node.store.block(loc.height);
    const results = await this.node.store.results(loc.height);
    if (stored === undefined) return null;
    const block = decodeBlock(stored.bytes);
    const tx = block.txs[loc.index]!;
    const r = results?.results[loc.index];
    return { hash, height: loc.height, index: loc.index, blockHash: block.hash.toString('hex'), code: r?.code ?? 'OK', events: r?.events ?? [], tx: transactionToJson(tx) };
  }

  private notifyHead(b: Block): void {
    if (this.subs.size === 0) return;
    const header = headerToJson(b);
    for (const [ws, ids] of this.subs) {
      for (const id of ids) ws.send(JSON.stringify({ jsonrpc: '2.0', method: 'chain_subscription', params: { subscription: id, result: header } }));
    }
  }
}
