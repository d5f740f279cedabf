/**
 * Example: an app that calls an API through the cage's post-quantum envelope with `pqFetch`.
 * The request's method, path, headers and body are sealed to the cage's X-Wing (ML-KEM-768 +
 * X25519) key (RFC 9458 framing, Binary HTTP inside); the cage opens it, forwards it to the app
 * behind it, and seals the answer back. Only a POST of `message/ohttp-req` is visible on the wire.
 *
 * Run it against the quick-start cage, which fronts a built-in echo app on 127.0.0.1:8080:
 *
 *   npm run build && npm start                               # terminal 1
 *   node --import tsx examples/pq-client.ts                  # terminal 2
 *
 * That route takes plaintext too. For a route that takes only envelopes (`require_pq: true`,
 * docs/config.md), start a second cage in front of the first one and point the example at it:
 *
 *   node bin/cage.js run --config examples/pq-cage.yaml      # listens on 127.0.0.1:8081
 *   node --import tsx examples/pq-client.ts http://127.0.0.1:8081/orders
 *
 * The same from a shell: `cage pq fetch URL -d '…' -H 'Content-Type: application/json' -i`.
 * In your own code, import from `http-cage/dist/client/index.js` (or ../client/index.js here).
 * Over plain http:// the key list could be swapped by anyone on the path: use https:// or pin
 * the key list (`pq: { keyConfigs }`) outside of a local demo (docs/pq.md, "Keys and rotation").
 */
import { pqFetch } from '../client/index.js';
import { isCageError } from '../core/errors.js';

const url = process.argv[2] ?? 'http://127.0.0.1:8080/orders';

async function main(): Promise<number> {
  // 1. The call itself: pqFetch takes what fetch takes and returns a standard Response.
  const order = { item: 'post-quantum widget', quantity: 3 };
  const res = await pqFetch(`${url}?source=example`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer demo-token' },
    body: JSON.stringify(order),
  });
  console.log(`sealed POST ${url} -> ${res.status} (request id ${res.headers.get('x-request-id') ?? '-'})`);
  const receipt = res.headers.get('cage-receipt');
  if (receipt !== null) console.log(`audit receipt: ${receipt}`);
  console.log(await res.text());

  // 2. The same request in plaintext: a route with require_pq refuses it before the app sees it.
  const plain = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(order) });
  const text = await plain.text();
  if (plain.status === 403 && text.includes('"PQ_REQUIRED"')) {
    console.log('plaintext POST -> 403 PQ_REQUIRED: this route accepts only post-quantum envelopes');
  } else {
    console.log(`plaintext POST -> ${plain.status}: this route also accepts plaintext (set require_pq: true on it to refuse that)`);
  }
  return res.ok ? 0 : 1;
}

main().then(
  (code) => (process.exitCode = code),
  (err: unknown) => {
    // CageError: the exchange could not be protected (PQ_UNKNOWN_KEY, PQ_BAD_ENVELOPE, …);
    // a TypeError from fetch: the cage could not be reached.
    const cause = (err as { cause?: { code?: string } }).cause?.code;
    console.error(isCageError(err) ? `pq-client: ${err.code}: ${err.message}` : `pq-client: cannot reach ${url}: ${cause ?? String(err)} (is the cage running?)`);
    process.exitCode = 1;
  },
);
