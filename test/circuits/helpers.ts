/**
 * Shared bits of the circuits/ tests: a small group of known members, and real proofs made once
 * per test file (each is about 1 s of CPU). Needs circuits/build (npm test builds it first).
 */
import { Group } from '../../circuits/group.js';
import { identityFromSecret, Prover, type Identity } from '../../circuits/prover.js';
import { contentDigestOf, type BoundRequest } from '../../circuits/field.js';

export { expectCode, expectCodeAsync } from '../pq/helpers.js';

/** Deterministic identities (secrets 1001, 1002, …): the tests' known inputs. */
export async function knownMembers(n: number): Promise<Identity[]> {
  return Promise.all(Array.from({ length: n }, (_, i) => identityFromSecret(1001n + BigInt(i))));
}

export const SCOPE = 'api.example';
export const EPOCH = 491_000;
/** Unix ms inside EPOCH for hour-long epochs; the request's timestamp. */
export const NOW = EPOCH * 3600 * 1000 + 1_234_000;

export function boundRequest(over: Partial<BoundRequest> = {}): BoundRequest {
  return { method: 'POST', target: '/v1/items?x=1', contentDigest: contentDigestOf('{"a":1}'), timestamp: Math.floor(NOW / 1000), ...over };
}

export interface Fixture {
  members: Identity[];
  group: Group;
  prover: Prover;
  /** A per-request proof by members[1] for boundRequest(), SCOPE, EPOCH. */
  requestHeader: string;
  /** A session proof by members[2] for `sessionKey`. */
  sessionHeader: string;
  sessionKey: Uint8Array;
}

/** Makes the fixture's two proofs. Close `fixture.prover` in after(). */
export async function makeFixture(): Promise<Fixture> {
  const members = await knownMembers(4);
  const group = await Group.create('staff', { rootHistory: 4 });
  group.addMany(members.map((m) => m.commitment));
  const prover = await Prover.create();
  const requestHeader = await prover.proveRequest({ identity: members[1]!, group, scope: SCOPE, epoch: EPOCH }, boundRequest());
  const sessionKey = new Uint8Array(32).fill(7);
  const sessionHeader = await prover.proveSession({ identity: members[2]!, group, scope: SCOPE, epoch: EPOCH }, sessionKey);
  return { members, group, prover, requestHeader, sessionHeader, sessionKey };
}

/** The header with one field replaced (`key=value`). */
export function withField(header: string, key: string, value: string): string {
  return header.split(';').map((p) => (p.startsWith(`${key}=`) ? `${key}=${value}` : p)).join(';');
}

export function field(header: string, key: string): string {
  return header.split(';').find((p) => p.startsWith(`${key}=`))!.slice(key.length + 1);
}
