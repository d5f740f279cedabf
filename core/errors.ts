/**
 * One error type for the whole cage: `CageError` carries a stable `code` from the registry below.
 * HTTP answers put the code in a JSON body (`{"error":{"code","message","request_id"}}`); tests
 * assert codes, never messages. `docs/errors.md` lists every code; test/core/errors.test.ts keeps
 * the two in sync.
 */

/** Every error code, its HTTP status (when it reaches a client) and what it means. */
export const ERROR_CODES = {
  // Requests refused at the edge
  GW_BAD_REQUEST: { status: 400, summary: 'The request is malformed (bad request line, header or framing).' },
  GW_NO_ROUTE: { status: 404, summary: 'No route matches the request host and path.' },
  GW_BODY_TOO_LARGE: { status: 413, summary: "The request body exceeds the route's max_body_bytes." },
  GW_HEADERS_TOO_LARGE: { status: 431, summary: 'The request headers exceed limits.max_header_bytes.' },
  GW_DENIED: { status: 403, summary: 'A pipeline stage (policy, identity) refused the request.' },
  GW_INTERNAL: { status: 500, summary: 'An unexpected error inside the cage; the request id locates it in the log.' },
  // Upstream failures
  GW_UPSTREAM_UNREACHABLE: { status: 502, summary: 'The upstream refused the connection or could not be reached.' },
  GW_UPSTREAM_RESET: { status: 502, summary: 'The upstream closed or reset the connection before answering.' },
  GW_UPSTREAM_BAD_RESPONSE: { status: 502, summary: 'The upstream sent a response the cage cannot parse or forward.' },
  GW_UPSTREAM_TIMEOUT: { status: 504, summary: 'The upstream did not connect, answer or send body data within its timeout.' },
  GW_NO_HEALTHY_UPSTREAM: { status: 503, summary: "All of the route's upstreams are marked unhealthy." },
  GW_WS_UPSTREAM_FAILED: { status: 502, summary: 'The upstream refused or failed the WebSocket handshake.' },
  // Start-up and listeners
  GW_UWS_UNAVAILABLE: { status: 500, summary: "uWebSockets.js's native binary did not load; the cage does not fall back to a slow server." },
  GW_LISTEN_FAILED: { status: 500, summary: 'A listener could not bind its address (in use, or not permitted).' },
  GW_TLS_INVALID: { status: 500, summary: 'The TLS certificate or key file is missing or unreadable.' },
  // Configuration
  CONFIG_NOT_FOUND: { status: 400, summary: 'The config file does not exist or cannot be read.' },
  CONFIG_PARSE_ERROR: { status: 400, summary: 'The config file is not valid YAML.' },
  CONFIG_INVALID: { status: 400, summary: 'The config does not match the schema (unknown key, wrong type, bad value); the path is named.' },
  CONFIG_ENV_MISSING: { status: 400, summary: 'A value written as env:VAR names an environment variable that is not set.' },
  // Command line
  CLI_BAD_ARGS: { status: 400, summary: 'An unknown command or flag, or a flag with a bad value.' },
  // Admin API
  ADMIN_UNAUTHORIZED: { status: 401, summary: 'The admin API needs `Authorization: Bearer <admin token>`.' },
  ADMIN_NOT_FOUND: { status: 404, summary: 'No admin endpoint at this path.' },
  ADMIN_METHOD_NOT_ALLOWED: { status: 405, summary: 'The admin endpoint does not accept this method.' },
  ADMIN_RELOAD_FAILED: { status: 422, summary: 'A config reload was refused; the old config keeps running.' },
  // Audit log
  AUDIT_BAD_NOTE: { status: 400, summary: 'A signed note is malformed (missing blank line, bad signature line, bad encoding).' },
  AUDIT_BAD_KEY: { status: 400, summary: 'A verifier or signer key string is malformed or of an unsupported type.' },
  AUDIT_BAD_SIGNATURE: { status: 400, summary: "A note or checkpoint has no valid signature from the required key, or a known key's signature fails." },
  AUDIT_BAD_CHECKPOINT: { status: 400, summary: 'A checkpoint body is malformed (origin, size or root hash line).' },
  AUDIT_BAD_PROOF: { status: 400, summary: 'An inclusion or consistency proof is malformed or does not verify.' },
  AUDIT_BAD_RECORD: { status: 400, summary: 'An audit record does not decode, or does not hash to the proven leaf.' },
  AUDIT_BAD_TILE: { status: 400, summary: 'A tile path, hash tile or entry bundle is malformed (bad path element, wrong width, truncated bundle).' },
  AUDIT_BAD_POLICY: { status: 400, summary: 'A tlog-policy file is malformed (unknown keyword, bad key, undefined or duplicate name, no quorum line).' },
  AUDIT_QUORUM_NOT_MET: { status: 400, summary: "A checkpoint's verified cosignatures do not satisfy the policy's witness quorum." },
  AUDIT_INDEX_OUT_OF_RANGE: { status: 404, summary: "The record index or tree size is beyond the log's current size." },
  AUDIT_STORE_CORRUPT: { status: 500, summary: 'The audit log on disk is damaged beyond the torn tail that recovery trims.' },
  AUDIT_STORE_IO: { status: 503, summary: 'The audit log could not write or fsync; sync-mode routes refuse requests until it can.' },
  AUDIT_STORE_LOCKED: { status: 500, summary: 'The audit log directory is already open in this or another live process (see its state/lock file).' },
  AUDIT_ENTRY_TOO_LARGE: { status: 500, summary: 'An audit entry exceeds 65,535 bytes, the most a tlog-tiles entry bundle can hold.' },
  AUDIT_CHECKPOINT_REFUSED: { status: 500, summary: 'The store refused to save a checkpoint: its size is beyond the durable size or below the latest saved one.' },
  AUDIT_ORIGIN_SIGNATURE_INVALID: { status: 502, summary: "The app's Cage-Origin-Signature did not verify and the route refuses unsigned or badly signed answers." },
  AUDIT_RESPONSE_TOO_LARGE: { status: 502, summary: 'A sync-audited response exceeded audit.sync_max_response_bytes before its record could be made durable.' },
  // Post-quantum envelope (Oblivious-HTTP style, X-Wing HPKE)
  PQ_BAD_ENVELOPE: { status: 400, summary: 'An encapsulated request or response is malformed, truncated, tampered with, or does not decrypt.' },
  PQ_UNKNOWN_KEY: { status: 400, summary: 'The encapsulated request names a key id the cage does not hold (never issued, or past its grace period).' },
  PQ_UNSUPPORTED_SUITE: { status: 400, summary: 'The KEM, KDF or AEAD id of an encapsulated request or key configuration is not one the key accepts.' },
  PQ_BAD_BHTTP: { status: 400, summary: 'The decrypted message is not valid Binary HTTP (RFC 9292), or exceeds the configured limits.' },
  PQ_REQUIRED: { status: 403, summary: 'The route accepts only encapsulated requests (message/ohttp-req).' },
  PQ_REPLAY: { status: 400, summary: 'The encapsulated request was already answered within the freshness window (same enc).' },
  PQ_STALE: { status: 400, summary: "The inner request's Date is missing or outside the freshness window." },
  PQ_KEY_STORE: { status: 500, summary: 'The post-quantum key directory could not be read or written, or holds a damaged key file.' },
  PQ_BUSY: { status: 503, summary: 'Too many encapsulated requests are waiting to be opened (the worker pool queue is full); retry later.' },
  // BISO policies (policies/)
  POLICY_INVALID: { status: 400, summary: 'A policy bundle is refused at load: not YAML, too large or too deep, an alias, a schema or semantic error; file:line and the reason are named.' },
  POLICY_BAD_SIGNATURE: { status: 400, summary: "A policy bundle's Ed25519 signature is missing where required, malformed, by an untrusted key, or does not verify over the canonical form." },
  POLICY_DENIED: { status: 403, summary: 'The BISO policy gave a Red verdict; the body names the violated rule ids.' },
  // DID notaries (witnesses), their registry and the witnessing of checkpoints
  NOTARY_BAD_DID: { status: 400, summary: 'A DID is malformed, uses a method other than did:key or did:web, or its document does not describe it (wrong id).' },
  NOTARY_DID_UNRESOLVABLE: { status: 502, summary: 'A did:web document could not be fetched (unreachable, timeout, not 200, too large, not JSON).' },
  NOTARY_KEY_NOT_ED25519: { status: 422, summary: 'The DID names no Ed25519 key (another multicodec, JWK curve or verification method type), or the key has the wrong length.' },
  NOTARY_BAD_REQUEST: { status: 400, summary: 'An add-checkpoint body is malformed (old size line, proof lines, blank line or the signed checkpoint).' },
  NOTARY_OLD_SIZE_TOO_LARGE: { status: 400, summary: "add-checkpoint: the old size is greater than the checkpoint's size." },
  NOTARY_UNKNOWN_LOG: { status: 404, summary: "add-checkpoint: the notary witnesses no log with the checkpoint's origin." },
  NOTARY_BAD_LOG_SIGNATURE: { status: 403, summary: 'add-checkpoint: no signature on the checkpoint verifies with a log key the notary trusts for its origin.' },
  NOTARY_SIZE_CONFLICT: { status: 409, summary: 'add-checkpoint: the old size is not the size the notary last cosigned; the body (text/x.tlog.size) is that size.' },
  NOTARY_FORK: { status: 409, summary: "add-checkpoint: same size as the notary's latest checkpoint but another root hash; refused, both checkpoints kept as evidence." },
  NOTARY_BAD_PROOF: { status: 422, summary: 'add-checkpoint: the consistency proof does not verify (or a size-0 checkpoint lacks the empty root); refused, kept as evidence.' },
  NOTARY_BODY_TOO_LARGE: { status: 413, summary: "The request body exceeds the notary's limit." },
  NOTARY_NOT_FOUND: { status: 404, summary: 'No notary endpoint at this path.' },
  NOTARY_METHOD_NOT_ALLOWED: { status: 405, summary: 'The notary endpoint does not accept this method.' },
  NOTARY_STORE_IO: { status: 503, summary: 'The notary state or registry file could not be written or fsynced; nothing was cosigned or saved.' },
  NOTARY_STORE_LOCKED: { status: 500, summary: 'The notary data directory is in use by another live notary process (see its lock file).' },
  NOTARY_STORE_CORRUPT: { status: 500, summary: 'A notary state or registry file is damaged or does not match its log key; the notary refuses to start rather than forget.' },
  NOTARY_INTERNAL: { status: 500, summary: 'An unexpected error inside the notary.' },
  NOTARY_UNREACHABLE: { status: 502, summary: 'The cage could not connect to a notary, or the connection failed mid-request.' },
  NOTARY_TIMEOUT: { status: 504, summary: 'A notary did not answer add-checkpoint within the timeout.' },
  NOTARY_BAD_RESPONSE: { status: 502, summary: 'A notary answered with an unexpected status or a malformed body.' },
  NOTARY_BAD_COSIGNATURE: { status: 502, summary: "A notary's cosignature does not verify with the key its DID names." },
  NOTARY_BAD_QUORUM: { status: 400, summary: 'The notary quorum k is not 1 <= k <= n (or 0 with no notaries), or a change would break that.' },
  NOTARY_DUPLICATE: { status: 409, summary: 'The notary registry already holds this DID, key or name.' },
  NOTARY_UNKNOWN_NOTARY: { status: 404, summary: 'The notary registry holds no notary with this DID.' },
  NOTARY_BAD_REGISTRY: { status: 400, summary: 'A notary registry entry or file is malformed (URL, name, verifier key that does not match the DID).' },
  // Caller identity and rate limits (gateway/identity, gateway/limits)
  IDENTITY_SIGNATURE_MALFORMED: { status: 400, summary: 'Signature-Input or Signature (RFC 9421) is not a valid structured field, names an unsupported component or parameter, or the two do not match.' },
  IDENTITY_BAD_SIGNATURE: { status: 401, summary: 'The request signature (RFC 9421, Ed25519) does not verify, its keyid is not a did:key, its alg is not ed25519, or a covered field is missing.' },
  IDENTITY_SIGNATURE_COMPONENTS: { status: 401, summary: 'The request signature does not cover what the cage requires: @method, @target-uri (or @authority and @path, plus @query with a query), and content-digest when there is a body.' },
  IDENTITY_SIGNATURE_EXPIRED: { status: 401, summary: "The request signature's created time is missing, too old or in the future, or its expires time has passed." },
  IDENTITY_SIGNATURE_REPLAY: { status: 401, summary: 'The signature nonce was already used by this key within the window (or a nonce is required and missing).' },
  IDENTITY_BAD_DIGEST: { status: 400, summary: 'The Content-Digest header (RFC 9530) is missing, malformed, or does not match the body.' },
  IDENTITY_BAD_API_KEY: { status: 401, summary: 'The API key is not one the cage knows.' },
  IDENTITY_BAD_TOKEN: { status: 401, summary: 'The bearer JWT is malformed, uses an algorithm not allowed (including none), is signed by another key, or has the wrong issuer or audience.' },
  IDENTITY_TOKEN_EXPIRED: { status: 401, summary: 'The bearer JWT has expired (exp) or is not yet valid (nbf), beyond the clock tolerance.' },
  IDENTITY_KEYS_INVALID: { status: 400, summary: 'The configured JWT key file is unreadable or not a PEM key, JWK or JWKS.' },
  RATE_LIMITED: { status: 429, summary: 'A rate limit was reached; Retry-After, RateLimit-Policy and RateLimit say which and when to retry.' },
  RATE_LIMIT_UNAVAILABLE: { status: 503, summary: 'The shared rate-limit store (Redis) is unreachable and ratelimit.on_redis_error is closed.' },
  // (end identity)
  // Chain consensus (chain/qbft)
  CHAIN_BAD_MESSAGE: { status: 400, summary: 'A consensus message does not decode: unknown version or type, truncated, trailing bytes, a field out of range or over its size limit.' },
  CHAIN_BAD_SIGNATURE: { status: 400, summary: 'A consensus message (or a message inside a justification) carries a signature that does not verify with the key its signer names.' },
  CHAIN_NOT_VALIDATOR: { status: 400, summary: 'A consensus message or commit seal is signed by a DID that is not in the validator set for its height.' },
  CHAIN_WRONG_PROPOSER: { status: 400, summary: 'A PROPOSAL is signed by a validator that is not the proposer for its height and round.' },
  CHAIN_BAD_JUSTIFICATION: { status: 400, summary: 'A PROPOSAL or ROUND-CHANGE justification is short or forged: fewer than a quorum of distinct valid ROUND-CHANGEs for exactly its height and round, or PREPAREs that do not match the highest prepared block.' },
  CHAIN_BAD_DIGEST: { status: 400, summary: "A message's block digest does not match the hash of the block it carries." },
  CHAIN_BAD_BLOCK: { status: 400, summary: "A proposed block is refused by the chain's block validation, or is for another height." },
  CHAIN_BAD_SEAL: { status: 400, summary: 'Commit seals do not finalize the block: a seal does not verify over the block hash and round, a signer repeats or is not a validator, or fewer than a quorum.' },
  CHAIN_EQUIVOCATION: { status: 400, summary: 'A validator signed two conflicting messages for one height and round (two proposals, prepares or commits for different blocks); the second is refused and both are evidence.' },
  CHAIN_OLD_MESSAGE: { status: 400, summary: 'A consensus message for a finished height or a past round; dropped.' },
  CHAIN_FUTURE_MESSAGE_DROPPED: { status: 400, summary: 'A consensus message too far ahead of the local height or round, or beyond the bounded future-message buffer; dropped.' },
  CHAIN_BAD_CONSENSUS_STATE: { status: 400, summary: 'The persisted consensus state does not decode; the validator stays silent at that height rather than risk signing twice.' },
  // (end consensus)
  // Chain node: blocks, transactions, store, p2p, RPC, anchor module (chain/)
  CHAIN_BAD_TX: { status: 400, summary: 'A transaction does not decode (bad layout, lengths, JSON args, field values) or exceeds the size limit.' },
  CHAIN_BAD_TX_SIGNATURE: { status: 400, summary: "A transaction's Ed25519 signature does not verify with the key its sender did:key names." },
  CHAIN_WRONG_CHAIN: { status: 400, summary: "A transaction names another chain id than this chain's." },
  CHAIN_BAD_NONCE: { status: 400, summary: "A transaction's nonce is already used by its sender, or too far ahead of the sender's next nonce." },
  CHAIN_DUPLICATE_TX: { status: 409, summary: 'The transaction (same hash) is already in the pool or in a block.' },
  CHAIN_UNKNOWN_MODULE: { status: 400, summary: 'A transaction or query names a module this chain does not run.' },
  CHAIN_UNKNOWN_METHOD: { status: 400, summary: 'A module has no transaction or query method of this name.' },
  CHAIN_BAD_ARGS: { status: 400, summary: "A module call's arguments are malformed (wrong type, missing or out-of-range field)." },
  CHAIN_POOL_FULL: { status: 503, summary: "The transaction pool (or the sender's share of it) is full; retry later." },
  CHAIN_INVALID_BLOCK: { status: 400, summary: 'A proposed or fetched block is malformed, does not extend the head, or its re-execution gives another tx, result or state root.' },
  CHAIN_BAD_GENESIS: { status: 400, summary: 'The genesis file is malformed (chain id, validators, module sections) or does not match the stored chain.' },
  CHAIN_NOT_FOUND: { status: 404, summary: 'No block or transaction with this height or hash on this node.' },
  CHAIN_STORE_IO: { status: 503, summary: 'The chain store could not read or write (disk full, I/O error); nothing was committed.' },
  CHAIN_STORE_CORRUPT: { status: 500, summary: 'The chain store is damaged or inconsistent (missing block for the head, bad encoding).' },
  CHAIN_STORE_LOCKED: { status: 500, summary: 'The chain data directory is open in another live process.' },
  CHAIN_BAD_HANDSHAKE: { status: 400, summary: "A peer's handshake is malformed, signed by a key not in the validator set, or for another chain." },
  CHAIN_SYNC_FAILED: { status: 502, summary: 'Catch-up sync could not fetch or verify blocks from any peer.' },
  CHAIN_RPC_PARSE_ERROR: { status: 400, summary: 'JSON-RPC: the body is not valid JSON (-32700).' },
  CHAIN_RPC_BAD_REQUEST: { status: 400, summary: 'JSON-RPC: the request is not a valid request object, or a batch is empty or too large (-32600).' },
  CHAIN_RPC_UNKNOWN_METHOD: { status: 404, summary: 'JSON-RPC: no such method (-32601).' },
  CHAIN_RPC_BAD_PARAMS: { status: 400, summary: 'JSON-RPC: the params are missing, of the wrong type or out of range (-32602).' },
  CHAIN_RPC_BODY_TOO_LARGE: { status: 413, summary: "JSON-RPC: the request body exceeds the node's limit." },
  CHAIN_RPC_UNREACHABLE: { status: 502, summary: 'The chain client could not reach the RPC endpoint, or it answered with something that is not JSON-RPC.' },
  CHAIN_RPC_ERROR: { status: 502, summary: 'The RPC endpoint answered with a JSON-RPC error that carries no CageError code.' },
  CHAIN_TX_TIMEOUT: { status: 504, summary: 'A submitted transaction was not included in a final block within the wait time.' },
  CHAIN_TX_FAILED: { status: 422, summary: 'A transaction was included in a final block but failed (its code is in the receipt).' },
  CHAIN_VOTE_REFUSED: { status: 403, summary: 'validators: the voter is not a current validator, or the vote would empty the set or add a member twice.' },
  ANCHOR_BAD_ARGS: { status: 400, summary: 'anchor: a register or submit call is malformed (origin, policy, checkpoint note, proof hashes).' },
  ANCHOR_LOG_EXISTS: { status: 409, summary: 'anchor: a log with this origin is already registered (only its registrant may update its policy).' },
  ANCHOR_NOT_OWNER: { status: 403, summary: 'anchor: only the account that registered the log may change its policy.' },
  ANCHOR_UNKNOWN_LOG: { status: 404, summary: "anchor: no log with the checkpoint's origin is registered." },
  ANCHOR_BAD_POLICY: { status: 400, summary: 'anchor: the tlog-policy does not parse, or names no log key for the origin.' },
  ANCHOR_BAD_SIGNATURE: { status: 400, summary: 'anchor: the checkpoint carries no valid signature from the registered log key.' },
  ANCHOR_QUORUM_NOT_MET: { status: 400, summary: "anchor: the checkpoint's verified cosignatures do not satisfy the registered policy's notary quorum." },
  ANCHOR_BAD_PROOF: { status: 400, summary: 'anchor: the consistency proof from the last anchored checkpoint does not verify.' },
  ANCHOR_ROLLBACK: { status: 409, summary: 'anchor: the checkpoint is smaller than the last anchored one (not an append-only extension).' },
  ANCHOR_FORK: { status: 409, summary: 'anchor: same size as the last anchored checkpoint but another root hash.' },
  ANCHOR_NOT_ANCHORED: { status: 404, summary: 'No final block anchors the checkpoint (or a later consistent one) for this origin.' },
  // (end chain)
  // Anonymous membership proofs (circuits/)
  ZK_BAD_HEADER: { status: 400, summary: 'The Cage-ZK-Proof header is malformed: unknown version or mode, a missing, repeated or unknown field, bad base64url, a wrong length, or a value outside its field.' },
  ZK_BAD_PROOF: { status: 401, summary: 'The Groth16 proof does not verify against the public signals the cage rebuilt (root, nullifier, signal, scope, epoch), or its points are not on the curve.' },
  ZK_UNKNOWN_GROUP: { status: 401, summary: 'The proof names a group the cage does not know.' },
  ZK_UNKNOWN_ROOT: { status: 401, summary: 'The proof is for a Merkle root that was never a root of the named group.' },
  ZK_STALE_ROOT: { status: 401, summary: 'The proof is for an old root of the group that has left the window of accepted recent roots; prove again against the current group.' },
  ZK_WRONG_SCOPE: { status: 401, summary: "The proof is for another scope than the route's." },
  ZK_WRONG_EPOCH: { status: 401, summary: 'The proof is for another epoch than the current one (an expired session, or a proof made for a later or earlier epoch).' },
  ZK_WRONG_SIGNAL: { status: 401, summary: "The proof's signal does not match this request (method, target, content digest, timestamp) or this session key: a proof made for another request." },
  ZK_EXPIRED: { status: 401, summary: "The per-request proof's timestamp is outside the accepted window around the cage's clock." },
  ZK_WRONG_MODE: { status: 401, summary: 'A per-request proof was sent where a session proof is expected, or the reverse.' },
  ZK_BUSY: { status: 503, summary: 'The proof verification pool is full (queue bound reached); retry later.' },
  ZK_ARTIFACTS_MISSING: { status: 500, summary: 'The circuit artifacts (wasm, zkey or verification key) are missing or unreadable; run npm run build:circuits.' },
  ZK_NOT_MEMBER: { status: 400, summary: "The identity's commitment is not a member of the group, so no proof can be made (client side)." },
  ZK_BAD_GROUP: { status: 400, summary: 'A group file or group operation is invalid: a malformed export, a root that does not match its members, a duplicate or out-of-field commitment, an unknown member, or a full tree.' },
  ZK_BAD_IDENTITY: { status: 400, summary: 'An identity file is malformed, or its secret is outside the field or does not match its commitment.' },
  ZK_REQUIRED: { status: 401, summary: 'The route requires anonymous membership (require_zk): send a Cage-ZK-Proof header, or sign with a session key opened by one.' },
  ZK_NULLIFIER_LIMIT: { status: 429, summary: 'This member (its nullifier) has already shown as many proofs or opened as many sessions in this scope and epoch as the route allows; wait for the next epoch.' },
  ZK_REPLAY: { status: 409, summary: 'The same proof (same nullifier and signal) was already accepted: a per-request proof or a session opening cannot be used twice.' },
  ZK_UNKNOWN_SESSION: { status: 401, summary: "The request is signed with a key that opened no anonymous session at this cage (or not for this route's scope)." },
  ZK_SESSION_EXPIRED: { status: 401, summary: 'The anonymous session was opened for an earlier epoch; open a new session with a proof for the current epoch.' },
  ZK_GROUP_NOT_FOUND: { status: 404, summary: 'Admin API: no group with this id.' },
  ZK_GROUP_EXISTS: { status: 409, summary: 'Admin API: a group with this id already exists.' },
  ZK_STORE_IO: { status: 503, summary: 'The group or nullifier store could not be written or fsynced; nothing was accepted or changed.' },
  // (end zk)
  // Bank Mesh, Court and governance (chain/modules)
  BANK_BAD_ARGS: { status: 400, summary: 'A bank call\'s arguments are malformed: unknown key, missing field, bad DID, token or amount (amounts are decimal strings).' },
  BANK_UNKNOWN_METHOD: { status: 400, summary: 'The bank module has no transaction or query of this name.' },
  BANK_BAD_GENESIS: { status: 400, summary: 'The bank section of the genesis file is malformed (params, balances or bonds).' },
  BANK_INSUFFICIENT_FUNDS: { status: 400, summary: 'The account\'s balance (or escrow, bond or hold) is smaller than the amount.' },
  BANK_TRANSFER_DISABLED: { status: 403, summary: 'The token\'s rules (genesis, changed only by governance) do not allow transfers.' },
  BANK_NOT_ISSUER: { status: 403, summary: 'Only the configured settlement issuer may attest reserves and mint or burn AUR.' },
  BANK_RESERVE_EXCEEDED: { status: 400, summary: 'The mint would raise AUR supply above the latest reserve attestation (or there is none).' },
  BANK_NO_BOND: { status: 404, summary: 'The account has no (or not enough) GEN bonded in this role.' },
  BANK_BOND_TOO_SMALL: { status: 400, summary: 'The bond would be below the role\'s minimum bond.' },
  BANK_LOG_KEY_TAKEN: { status: 409, summary: 'Another account already bonded a log with this origin or key.' },
  BANK_DUPLICATE_REPORT: { status: 409, summary: 'The operator already posted a usage report for this epoch (or a later one).' },
  BANK_UNKNOWN_REPORT: { status: 404, summary: 'No usage report from this operator for this epoch.' },
  BANK_BAD_USAGE_PROOF: { status: 400, summary: 'A usage line does not verify against its report\'s Merkle root.' },
  BANK_BAD_SETTLEMENT: { status: 400, summary: 'A settlement batch is malformed, already applied, misses a debtor\'s signature or cannot be paid; nothing of it applied.' },
  COURT_BAD_ARGS: { status: 400, summary: 'A court call\'s arguments are malformed: unknown key, missing field, bad DID or choice.' },
  COURT_UNKNOWN_METHOD: { status: 400, summary: 'The court module has no transaction or query of this name.' },
  COURT_BAD_EVIDENCE: { status: 400, summary: 'Evidence is malformed or does not verify (bad note, signature, proof or record).' },
  COURT_UNKNOWN_KEY: { status: 404, summary: 'The evidence names a log, notary or validator that has no bonded key on chain.' },
  COURT_NOT_CONFLICTING: { status: 400, summary: 'The two signed items do not contradict each other (same content, different origin, size or height).' },
  COURT_DUPLICATE_EVIDENCE: { status: 409, summary: 'This misbehaviour was already judged; the same evidence counts once.' },
  COURT_STALE_EVIDENCE: { status: 400, summary: 'The evidence is older than the court\'s evidence window.' },
  COURT_UNKNOWN_CASE: { status: 404, summary: 'No case with this id.' },
  COURT_CASE_CLOSED: { status: 409, summary: 'The case is decided or its voting window has closed.' },
  COURT_ALREADY_VOTED: { status: 409, summary: 'This account already voted on the case.' },
  COURT_NO_STAKE: { status: 403, summary: 'Only accounts with bonded GEN vote, and parties to a case do not.' },
  COURT_NOT_PARTY: { status: 403, summary: 'Only the payer of a usage line can dispute it.' },
  GOV_BAD_ARGS: { status: 400, summary: 'A governance call\'s arguments are malformed: unknown key, missing field, bad choice.' },
  GOV_UNKNOWN_METHOD: { status: 400, summary: 'The gov module has no transaction or query of this name.' },
  GOV_BAD_PROPOSAL: { status: 400, summary: 'A proposal action is unknown or its value is refused by the parameter\'s rules.' },
  GOV_UNKNOWN_PROPOSAL: { status: 404, summary: 'No proposal with this id.' },
  GOV_VOTING_CLOSED: { status: 409, summary: 'The proposal\'s voting window has closed.' },
  GOV_ALREADY_VOTED: { status: 409, summary: 'This account already voted on the proposal.' },
  GOV_NO_STAKE: { status: 403, summary: 'Only accounts with bonded GEN propose and vote.' },
  // (end bank-court)
} as const satisfies Record<string, { status: number; summary: string }>;

export type CageErrorCode = keyof typeof ERROR_CODES;

export interface CageErrorOptions {
  code: CageErrorCode;
  message: string;
  cause?: unknown;
}

export class CageError extends Error {
  readonly code: CageErrorCode;

  constructor(opts: CageErrorOptions) {
    super(opts.message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'CageError';
    this.code = opts.code;
  }

  /** The HTTP status this error answers with. */
  get status(): number {
    return ERROR_CODES[this.code].status;
  }
}

export function isCageError(err: unknown, code?: CageErrorCode): err is CageError {
  return err instanceof CageError && (code === undefined || err.code === code);
}

/** The JSON body every error answer carries. */
export function errorBody(code: CageErrorCode, message: string, requestId: string): string {
  return JSON.stringify({ error: { code, message, request_id: requestId } });
}
