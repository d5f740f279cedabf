// WebSocket virtual users (package "ws"): per iteration a VU opens ws://BASE/path, sends
// `messages` text messages one at a time, waits for each echo, records its round-trip time,
// then closes with 1000. Metrics as in loadtest/k6/websocket.js: ws_sessions, ws_connecting,
// ws_session_duration, ws_msgs_sent, ws_msgs_received, ws_msg_rtt, ws_session_failed, checks.
// A session fails unless: 101 upgrade, every echo identical, no error, closed with code 1000.

import WebSocket from 'ws';
import { CHECK_WS_101, CHECK_WS_ECHOES, recordCheck, recordError } from './checks.js';
import { joinPath, type VuDriver } from './http-vu.js';
import type { MetricRegistry } from './metrics.js';
import type { VuContext } from './ramping.js';

export interface WsVuOptions {
  baseUrl: string;
  path: string;
  messages: number;
  messageBytes: number;
  /** A session not finished by then is terminated and fails. */
  sessionTimeoutMs: number;
  /** Opening handshake timeout. */
  timeoutMs: number;
  metrics: MetricRegistry;
  errors: Map<string, number>;
}

interface SessionOutcome {
  status: number;
  received: number;
  mismatch: boolean;
  error: unknown;
  closeCode: number;
  aborted: boolean;
}

/** http(s)://host/prefix + path -> ws(s)://host/prefix/path */
export function toWsUrl(baseUrl: string, path: string): string {
  const base = new URL(baseUrl);
  const scheme = base.protocol === 'https:' || base.protocol === 'wss:' ? 'wss:' : 'ws:';
  return `${scheme}//${base.host}${joinPath(base, path)}`;
}

/** Metric names a ws scenario produces (so thresholds on them resolve even with no data). */
export function registerWsMetrics(metrics: MetricRegistry): void {
  metrics.counter('ws_sessions');
  metrics.trend('ws_connecting');
  metrics.trend('ws_session_duration');
  metrics.counter('ws_msgs_sent');
  metrics.counter('ws_msgs_received');
  metrics.trend('ws_msg_rtt');
  metrics.rate('ws_session_failed');
  metrics.counter('iterations');
  metrics.rate('checks');
}

/** A message unique to this VU, iteration and index, padded to `bytes`. */
function messageFor(vu: VuContext, index: number, bytes: number): string {
  const head = `${vu.id + 1}:${vu.iteration}:${index}:`;
  return head.length >= bytes ? head : head + 'x'.repeat(bytes - head.length);
}

export function createWsVus(options: WsVuOptions): VuDriver {
  const url = toWsUrl(options.baseUrl, options.path);
  const { metrics } = options;
  registerWsMetrics(metrics);

  const session = (vu: VuContext): Promise<SessionOutcome> =>
    new Promise((resolve) => {
      const started = performance.now();
      const outcome: SessionOutcome = { status: 0, received: 0, mismatch: false, error: undefined, closeCode: 0, aborted: false };
      const ws = new WebSocket(url, { handshakeTimeout: options.timeoutMs, perMessageDeflate: false });
      let expected = '';
      let sentAt = 0;
      const timer = setTimeout(() => {
        outcome.error ??= new Error(`session timeout after ${options.sessionTimeoutMs}ms`);
        ws.terminate();
      }, options.sessionTimeoutMs);
      const onAbort = (): void => {
        outcome.aborted = true;
        ws.terminate();
      };
      vu.signal.addEventListener('abort', onAbort, { once: true });

      const sendNext = (): void => {
        expected = messageFor(vu, outcome.received, options.messageBytes);
        sentAt = performance.now();
        ws.send(expected);
        metrics.counter('ws_msgs_sent').add(1);
      };
      ws.on('upgrade', (res) => {
        outcome.status = res.statusCode ?? 0;
      });
      ws.on('unexpected-response', (_req, res) => {
        outcome.status = res.statusCode ?? 0;
        outcome.error ??= new Error(`unexpected response ${res.statusCode} to the upgrade`);
        res.resume();
        ws.terminate();
      });
      ws.on('open', () => {
        metrics.trend('ws_connecting').add(performance.now() - started);
        sendNext();
      });
      ws.on('message', (data: WebSocket.RawData) => {
        const text = Array.isArray(data) ? Buffer.concat(data).toString() : Buffer.from(data as ArrayBuffer).toString();
        metrics.counter('ws_msgs_received').add(1);
        if (text !== expected) {
          outcome.mismatch = true;
          ws.close(1000);
          return;
        }
        metrics.trend('ws_msg_rtt').add(performance.now() - sentAt);
        outcome.received += 1;
        if (outcome.received < options.messages) sendNext();
        else ws.close(1000);
      });
      ws.on('error', (err) => {
        outcome.error ??= err;
      });
      ws.on('close', (code) => {
        clearTimeout(timer);
        vu.signal.removeEventListener('abort', onAbort);
        outcome.closeCode = code;
        metrics.trend('ws_session_duration').add(performance.now() - started);
        resolve(outcome);
      });
    });

  return {
    async iterate(vu) {
      if (vu.signal.aborted) return;
      const outcome = await session(vu);
      if (outcome.aborted) return; // cut by the end of the run: not a sample
      metrics.counter('ws_sessions').add(1);
      metrics.counter('iterations').add(1);
      const upgraded = recordCheck(metrics, CHECK_WS_101, outcome.status === 101);
      const echoed = recordCheck(metrics, CHECK_WS_ECHOES, outcome.received === options.messages && !outcome.mismatch);
      const cleanClose = outcome.closeCode === 1000;
      if (outcome.error) recordError(options.errors, outcome.error);
      else if (outcome.mismatch) recordError(options.errors, new Error('echo differs from the message sent'));
      else if (!cleanClose) recordError(options.errors, new Error(`closed with code ${outcome.closeCode}`));
      metrics.rate('ws_session_failed').add(!(upgraded && echoed && cleanClose && !outcome.error));
    },
    async close() {
      // Sessions are closed per iteration; nothing is pooled.
    },
  };
}
