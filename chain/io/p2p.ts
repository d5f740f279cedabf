/**
 * The validator transport: WebSocket (`ws`) connections between validators, full mesh. Each node
 * listens and dials every configured peer (redialing with backoff); a connection carries nothing
 * until both sides have authenticated with a signed handshake:
 *
 *   HELLO  0x10 ‖ JSON {v:1, chainId, genesis (hex), did, nonce (base64, 32 random bytes)}
 *   AUTH   0x11 ‖ JSON {sig}: Ed25519 by `did` over
 *          "cage-chain-p2p/v1\0" ‖ chainId ‖ 0x00 ‖ genesis ‖ 0x00 ‖ the PEER's nonce ‖ own did
 *
 * A peer is accepted only if its AUTH verifies, its chain id and genesis match, and its DID is a
 * validator (CHAIN_BAD_HANDSHAKE, connection closed). Then frames (binary, first byte the type):
 *
 *   0x01 consensus message (chain/qbft, signed by its author; relayed as is)
 *   0x02 transactions: u32 n ‖ n × (u32 len ‖ tx)            (pool gossip)
 *   0x03 status: u64 head height                              (sent on every new head and each second)
 *   0x04 get blocks: u64 from ‖ u64 to
 *   0x05 blocks: u32 n ‖ n × (u32 round ‖ u32 sealsLen ‖ seals ‖ u32 blockLen ‖ block)
 *
 * Trust: everything a peer sends is attacker-controlled: frames are length-checked here, and the
 * consensus machine, the pool and the importer check the content (signatures, seals, execution).
 */
import { randomBytes } from 'node:crypto';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { CageError } from '../../core/errors.js';
import { parseHostPort } from '../../core/units.js';
import { verifyEd25519, type ChainKey } from '../keys.js';
import { decodeSeals, encodeSeals, type CommitSeal } from '../qbft/index.js';

export interface SyncBlock {
  readonly bytes: Buffer;
  readonly round: number;
  readonly seals: CommitSeal[];
}

export interface P2POptions {
  readonly key: ChainKey;
  readonly chainId: string;
  readonly genesisHash: string;
  isValidator(did: string): boolean;
  onConsensus(bytes: Uint8Array): void;
  onTxs(txs: Uint8Array[]): void;
  onStatus(height: number): void;
  getBlocks(from: number, to: number): Promise<SyncBlock[]>;
  onBlocks(blocks: SyncBlock[]): void;
  head(): number;
  log(event: string, data: Record<string, unknown>): void;
}

const DOMAIN = Buffer.from('cage-chain-p2p/v1\0', 'latin1');
const MAX_FRAME_BYTES = 64 * 1024 * 1024;
const HANDSHAKE_TIMEOUT_MS = 5000;
const STATUS_INTERVAL_MS = 1000;
const T = { CONSENSUS: 0x01, TXS: 0x02, STATUS: 0x03, GET_BLOCKS: 0x04, BLOCKS: 0x05, HELLO: 0x10, AUTH: 0x11 } as const;

function authData(chainId: string, genesis: string, nonce: Uint8Array, did: string): Buffer {
  return Buffer.concat([DOMAIN, Buffer.from(chainId, 'latin1'), Buffer.from([0]), Buffer.from(genesis, 'latin1'), Buffer.from([0]), nonce, Buffer.from(did, 'latin1')]);
}

function frame(type: number, payload: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from([type]), payload]);
}

function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

function badFrame(message: string): CageError {
  return new CageError({ code: 'CHAIN_BAD_MESSAGE', message });
}

/** Encodes a list of length-prefixed byte strings. */
export function encodeList(items: readonly Uint8Array[]): Buffer {
  const parts: Buffer[] = [Buffer.alloc(4)];
  parts[0]!.writeUInt32BE(items.length);
  for (const it of items) {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(it.length);
    parts.push(len, Buffer.from(it.buffer, it.byteOffset, it.length));
  }
  return Buffer.concat(parts);
}

/** Decodes `encodeList` output (attacker-controlled). Throws CHAIN_BAD_MESSAGE. */
export function decodeList(b: Buffer, maxItems: number): Buffer[] {
  if (b.length < 4) throw badFrame('truncated list');
  const n = b.readUInt32BE(0);
  if (n > maxItems) throw badFrame(`list of ${n} items exceeds ${maxItems}`);
  const out: Buffer[] = [];
  let off = 4;
  for (let i = 0; i < n; i++) {
    if (off + 4 > b.length) throw badFrame('truncated list item');
    const len = b.readUInt32BE(off);
    off += 4;
    if (off + len > b.length) throw badFrame('truncated list item');
    out.push(b.subarray(off, off + len));
    off += len;
  }
  if (off !== b.length) throw badFrame('bytes after the list');
  return out;
}

export function encodeBlocks(blocks: readonly SyncBlock[]): Buffer {
  const items: Buffer[] = [];
  for (const b of blocks) {
    const round = Buffer.alloc(4);
    round.writeUInt32BE(b.round);
    items.push(round, Buffer.from(encodeSeals(b.seals)), b.bytes);
  }
  return encodeList(items);
}

export function decodeBlocks(b: Buffer): SyncBlock[] {
  const items = decodeList(b, 3 * 256);
  if (items.length % 3 !== 0) throw badFrame('blocks frame is not (round, seals, block) triples');
  const out: SyncBlock[] = [];
  for (let i = 0; i < items.length; i += 3) {
    if (items[i]!.length !== 4) throw badFrame('bad round field');
    out.push({ round: items[i]!.readUInt32BE(0), seals: decodeSeals(items[i + 1]!), bytes: Buffer.from(items[i + 2]!) });
  }
  return out;
}

/** Parses `host:port` (port 0 = any free port). Throws CHAIN_BAD_ARGS. */
export function listenAddress(addr: string): { host: string; port: number } {
  const hp = parseHostPort(addr);
  if (hp === undefined) throw new CageError({ code: 'CHAIN_BAD_ARGS', message: `${JSON.stringify(addr)} is not host:port` });
  return hp;
}

interface Peer {
  ws: WebSocket;
  did?: string;
  myNonce: Buffer;
  peerNonce?: Buffer;
  authed: boolean;
}

export class P2P {
  private server: WebSocketServer | undefined;
  private readonly peers = new Set<Peer>();
  private readonly dialers = new Map<string, NodeJS.Timeout | undefined>();
  private statusTimer: NodeJS.Timeout | undefined;
  private closed = false;
  /** The bound listen port (after start). */
  port = 0;

  constructor(private readonly opts: P2POptions) {}

  async start(listen: string | undefined, peers: readonly string[]): Promise<void> {
    if (listen !== undefined) {
      const { host, port } = listenAddress(listen);
      const server = new WebSocketServer({ host, port, maxPayload: MAX_FRAME_BYTES });
      this.server = server;
      await new Promise<void>((resolve, reject) => {
        server.once('listening', resolve);
        server.once('error', reject);
      });
      server.on('error', (err) => this.opts.log('p2p-error', { message: err.message }));
      this.port = (server.address() as { port: number }).port;
      server.on('connection', (ws) => this.attach(ws));
    }
    for (const addr of peers) this.dial(addr, 100);
    this.statusTimer = setInterval(() => this.broadcastStatus(this.opts.head()), STATUS_INTERVAL_MS);
  }

  /** Authenticated peer DIDs. */
  connected(): string[] {
    return [...new Set([...this.peers].filter((p) => p.authed).map((p) => p.did!))];
  }

  private dial(addr: string, delayMs: number): void {
    if (this.closed) return;
    const t = setTimeout(() => {
      if (this.closed) return;
      const url = addr.includes('://') ? addr : `ws://${addr}`;
      const ws = new WebSocket(url, { maxPayload: MAX_FRAME_BYTES, handshakeTimeout: HANDSHAKE_TIMEOUT_MS });
      ws.on('error', () => {});
      ws.on('close', () => this.dial(addr, Math.min(delayMs * 2, 2000)));
      ws.on('open', () => {
        delayMs = 100;
      });
      this.attach(ws);
    }, delayMs);
    this.dialers.set(addr, t);
  }

  private attach(ws: WebSocket): void {
    const peer: Peer = { ws, myNonce: randomBytes(32), authed: false };
    this.peers.add(peer);
    const timer = setTimeout(() => {
      if (!peer.authed) ws.terminate();
    }, HANDSHAKE_TIMEOUT_MS);
    const sendHello = (): void => {
      ws.send(frame(T.HELLO, Buffer.from(JSON.stringify({ v: 1, chainId: this.opts.chainId, genesis: this.opts.genesisHash, did: this.opts.key.did, nonce: peer.myNonce.toString('base64') }))));
    };
    if (ws.readyState === WebSocket.OPEN) sendHello();
    else ws.once('open', sendHello);
    ws.on('message', (data: RawData, isBinary: boolean) => {
      try {
        if (!isBinary) throw badFrame('text frame');
        this.onFrame(peer, Buffer.isBuffer(data) ? data : Buffer.concat(data as Buffer[]));
      } catch (err) {
        this.opts.log('p2p-reject', { peer: peer.did, code: (err as CageError).code ?? 'CHAIN_BAD_MESSAGE', message: (err as Error).message });
        if (!peer.authed || (err as CageError).code === 'CHAIN_BAD_HANDSHAKE') ws.terminate();
      }
    });
    ws.on('close', () => {
      clearTimeout(timer);
      this.peers.delete(peer);
    });
    ws.on('error', () => {});
  }

  private onFrame(peer: Peer, b: Buffer): void {
    if (b.length === 0) throw badFrame('empty frame');
    const type = b[0]!;
    const body = b.subarray(1);
    if (!peer.authed) {
      if (type === T.HELLO) return this.onHello(peer, body);
      if (type === T.AUTH) return this.onAuth(peer, body);
      throw new CageError({ code: 'CHAIN_BAD_HANDSHAKE', message: 'frame before the handshake' });
    }
    switch (type) {
      case T.CONSENSUS:
        this.opts.onConsensus(body);
        return;
      case T.TXS:
        this.opts.onTxs(decodeList(body, 100_000));
        return;
      case T.STATUS:
        if (body.length !== 8) throw badFrame('bad status frame');
        this.opts.onStatus(Number(body.readBigUInt64BE(0)));
        return;
      case T.GET_BLOCKS: {
        if (body.length !== 16) throw badFrame('bad get-blocks frame');
        const from = Number(body.readBigUInt64BE(0));
        const to = Number(body.readBigUInt64BE(8));
        void this.opts.getBlocks(from, to).then((blocks) => {
          if (peer.ws.readyState === WebSocket.OPEN) peer.ws.send(frame(T.BLOCKS, encodeBlocks(blocks)));
        }, (err: Error) => this.opts.log('p2p-error', { message: err.message }));
        return;
      }
      case T.BLOCKS:
        this.opts.onBlocks(decodeBlocks(body));
        return;
      default:
        throw badFrame(`unknown frame type ${type}`);
    }
  }

  private onHello(peer: Peer, body: Buffer): void {
    const bad = (m: string): CageError => new CageError({ code: 'CHAIN_BAD_HANDSHAKE', message: m });
    let h: { v?: unknown; chainId?: unknown; genesis?: unknown; did?: unknown; nonce?: unknown };
    try {
      h = JSON.parse(body.toString('utf8')) as typeof h;
    } catch {
      throw bad('hello is not JSON');
    }
    if (h.v !== 1 || h.chainId !== this.opts.chainId || h.genesis !== this.opts.genesisHash) throw bad('hello is for another chain');
    if (typeof h.did !== 'string' || h.did === this.opts.key.did || !this.opts.isValidator(h.did)) throw bad('peer is not another validator');
    const nonce = typeof h.nonce === 'string' ? Buffer.from(h.nonce, 'base64') : Buffer.alloc(0);
    if (nonce.length !== 32) throw bad('bad nonce');
    peer.did = h.did;
    peer.peerNonce = nonce;
    const sig = this.opts.key.sign(authData(this.opts.chainId, this.opts.genesisHash, nonce, this.opts.key.did));
    peer.ws.send(frame(T.AUTH, Buffer.from(JSON.stringify({ sig: sig.toString('base64') }))));
  }

  private onAuth(peer: Peer, body: Buffer): void {
    const bad = (m: string): CageError => new CageError({ code: 'CHAIN_BAD_HANDSHAKE', message: m });
    if (peer.did === undefined) throw bad('auth before hello');
    let a: { sig?: unknown };
    try {
      a = JSON.parse(body.toString('utf8')) as typeof a;
    } catch {
      throw bad('auth is not JSON');
    }
    const sig = typeof a.sig === 'string' ? Buffer.from(a.sig, 'base64') : Buffer.alloc(0);
    if (!verifyEd25519(peer.did, authData(this.opts.chainId, this.opts.genesisHash, peer.myNonce, peer.did), sig)) throw bad('auth signature does not verify');
    peer.authed = true;
    this.opts.log('peer', { did: peer.did });
    peer.ws.send(frame(T.STATUS, u64(this.opts.head())));
  }

  private sendAll(buf: Buffer): void {
    const seen = new Set<string>();
    for (const p of this.peers) {
      if (!p.authed || seen.has(p.did!) || p.ws.readyState !== WebSocket.OPEN) continue;
      seen.add(p.did!);
      p.ws.send(buf);
    }
  }

  broadcastConsensus(bytes: Uint8Array): void {
    this.sendAll(frame(T.CONSENSUS, bytes));
  }

  broadcastTxs(txs: readonly Uint8Array[]): void {
    if (txs.length > 0) this.sendAll(frame(T.TXS, encodeList(txs)));
  }

  broadcastStatus(height: number): void {
    this.sendAll(frame(T.STATUS, u64(height)));
  }

  /** Asks one authenticated peer (the first) for blocks [from, to]. */
  requestBlocks(from: number, to: number): void {
    const peers = [...this.peers].filter((p) => p.authed && p.ws.readyState === WebSocket.OPEN);
    if (peers.length === 0) return;
    const p = peers[Math.floor(Math.random() * peers.length)]!;
    p.ws.send(frame(T.GET_BLOCKS, Buffer.concat([u64(from), u64(to)])));
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.statusTimer !== undefined) clearInterval(this.statusTimer);
    for (const t of this.dialers.values()) if (t !== undefined) clearTimeout(t);
    for (const p of this.peers) p.ws.terminate();
    this.peers.clear();
    if (this.server !== undefined) await new Promise<void>((resolve) => this.server!.close(() => resolve()));
  }
}
