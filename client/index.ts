/**
 * What an app or caller imports to talk to a cage. Today: the post-quantum envelope (`pqFetch`).
 */
export { clearPqKeyCache, DEFAULT_KEYS_PATH, pqFetch, type PqOptions, type PqRequestInit } from './pq.js';
