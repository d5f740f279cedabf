/**
 * One random byzantine-free schedule for the QBFT property test: a chaos phase with message drops,
 * duplicates, random delays, partitions and crash-restarts of any nodes, then a heal (all nodes up,
 * one partition, no drops) after which every node must finalize two more heights. Safety (no two
 * different final blocks at one height) is checked over the whole run.
 */
import { MessageType, decodeMessage, encodeMessage, maxFaulty, roundTimeoutMs, signCommitSeal, signMessage, type QbftMessage } from '../../../chain/qbft/index.js';
import { Rng, Sim, decodeToyBlock, encodeToyBlock, hashToyBlock, type SimNode } from './sim.js';

export interface ChaosParams {
  seed: number;
  n: number;
  chaosSteps: number;
  dropRate: number;
  dupRate: number;
  maxDelayMs: number;
  /** Change the validator set at heights 4 and 8 (a node joins, later another leaves). */
  setChange?: boolean;
  /** How many validators (the last ones, at most f) lie: conflicting proposals, votes and certificates. */
  byzantine?: number;
}

export interface ChaosResult {
  fork: string | undefined;
  live: boolean;
  heightAtHeal: number;
  finalHeight: number;
  maxRound: number;
  simulatedMs: number;
}

const BASE_MS = 200;

export function runChaos(p: ChaosParams): ChaosResult {
  const all = Array.from({ length: p.n }, (_, i) => i);
  const validatorsAt = p.setChange && p.n >= 2 ? (h: number) => (h < 4 ? all.slice(0, -1) : h < 8 ? all : all.slice(1)) : () => all;
  const sim = new Sim({ seed: p.seed, n: p.n, validatorsAt, baseTimeoutMs: BASE_MS, maxDelayMs: p.maxDelayMs, dropRate: p.dropRate, dupRate: p.dupRate, syncIntervalMs: 4 * BASE_MS, blockPeriodMs: BASE_MS / 4, fastSignatures: true });
  const rng = new Rng(p.seed ^ 0x5eed);
  const liars = Math.min(p.byzantine ?? 0, maxFaulty(p.setChange ? p.n - 1 : p.n)); // at most f of every set
  if (liars > 0) {
    sim.opts.byzantine = all.slice(p.n - liars);
    sim.equivocator = lie(new Rng(p.seed ^ 0xbad));
  }
  sim.start();
  const check = () => sim.fork !== undefined;
  for (let step = 0; step < p.chaosSteps && !check(); step++) {
    const r = rng.next();
    const i = rng.int(0, p.n - 1);
    if (r < 0.15) sim.crash(i);
    else if (r < 0.25) {
      for (let k = 0; k < p.n; k++) if (rng.chance(0.5)) sim.crash(k);
    } else if (r < 0.4) sim.restart(i);
    else if (r < 0.5) {
      for (let k = 0; k < p.n; k++) sim.restart(k);
    } else if (r < 0.7) {
      const side = sim.nodes.map(() => rng.chance(0.5));
      sim.reachable = (a, b) => side[a] === side[b];
    } else if (r < 0.85) sim.reachable = () => true;
    sim.run(sim.now + rng.int(5, 3 * BASE_MS), check);
  }
  // Heal.
  const heightAtHeal = Math.max(...sim.nodes.map((n) => n.chain.headHeight));
  sim.reachable = () => true;
  sim.opts.dropRate = 0;
  for (let i = 0; i < p.n; i++) sim.restart(i);
  const maxRound = Math.max(0, ...sim.nodes.map((n) => n.qbft?.currentRound ?? 0));
  const bound = sim.now + 8 * roundTimeoutMs(BASE_MS, maxRound + 2) + 60_000;
  if (!check()) sim.run(bound, () => check() || sim.minHeight() >= heightAtHeal + 2);
  const live = !check() && sim.minHeight() >= heightAtHeal + 2;
  return { fork: sim.fork, live, heightAtHeal, finalHeight: sim.minHeight(), maxRound, simulatedMs: sim.now };
}

/**
 * A byzantine sender: per message and recipient it sends the message, a conflicting validly signed
 * one (another block, another digest with a valid seal, a ROUND-CHANGE that hides its prepared
 * certificate), both, or nothing.
 */
function lie(rng: Rng): (node: SimNode, to: number, bytes: Uint8Array) => Uint8Array | undefined {
  return (node, _to, bytes) => {
    const r = rng.next();
    if (r < 0.3) return undefined;
    if (r < 0.45) return Buffer.alloc(0); // dropped: decodes as garbage, refused
    const m = decodeMessage(bytes);
    const forged = forge(node, m, rng);
    return forged ?? undefined;
  };
}

function forge(node: SimNode, m: QbftMessage, rng: Rng): Uint8Array | undefined {
  const s = node.key.signer;
  const p = m.payload;
  switch (m.type) {
    case MessageType.PROPOSAL: {
      const b = decodeToyBlock(m.block);
      const block = encodeToyBlock({ ...b, nonce: rng.int(0, 0xffffffff) });
      return encodeMessage(signMessage(s, { type: MessageType.PROPOSAL, height: p.height, round: p.round, digest: hashToyBlock(block) }, { block, roundChanges: m.roundChanges, prepares: m.prepares }));
    }
    case MessageType.PREPARE:
      return encodeMessage(signMessage(s, { type: MessageType.PREPARE, height: p.height, round: p.round, digest: hashToyBlock(Buffer.from([rng.int(0, 255)])) }));
    case MessageType.COMMIT: {
      const digest = hashToyBlock(Buffer.from([rng.int(0, 255)]));
      return encodeMessage(signMessage(s, { type: MessageType.COMMIT, height: p.height, round: p.round, digest, commitSeal: signCommitSeal(s, digest, p.round) }));
    }
    case MessageType.ROUND_CHANGE:
      return encodeMessage(signMessage(s, { type: MessageType.ROUND_CHANGE, height: p.height, round: p.round }));
  }
}
