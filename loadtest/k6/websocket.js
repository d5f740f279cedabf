// k6 "websocket" scenario: each VU opens a WebSocket through the proxy, sends `messages` messages
// one at a time, expects each to be echoed back unchanged, records the round-trip time, closes
// with code 1000, then thinks for `sleep` seconds. A session fails (ws_session_failed) unless it
// upgraded with 101, got every echo, saw no error, and the close handshake ended with code 1000.
// Stages and thresholds come from ../scenarios.json, shared with the Node runner (loadtest/runner.ts).
// Custom metrics (same names in the Node runner): ws_session_failed (Rate), ws_msg_rtt (Trend, ms).
// Uses the blocking k6/ws API so that one iteration is exactly one session.
// Run: k6 run -e BASE_URL=http://127.0.0.1:8080 loadtest/k6/websocket.js

import ws from 'k6/ws';
import { check, sleep } from 'k6';
import { Rate, Trend } from 'k6/metrics';
import {
  BASE_URL,
  CHECK_WS_101,
  CHECK_WS_ECHOES,
  buildOptions,
  parseDurationMs,
  pickScenario,
} from './lib.js';

const scenario = pickScenario(JSON.parse(open('../scenarios.json')), 'websocket');

export const options = buildOptions('websocket', scenario);

const wsSessionFailed = new Rate('ws_session_failed');
const wsMsgRtt = new Trend('ws_msg_rtt', true);

const WS_URL = `${BASE_URL.replace(/^http/, 'ws')}${scenario.path}`;
const MESSAGES = scenario.messages ?? 10;
const PADDING = 'x'.repeat(scenario.messageBytes ?? 64);
const SESSION_TIMEOUT_MS = parseDurationMs(scenario.sessionTimeout ?? '10s');

export default function () {
  let received = 0;
  let closeCode = 0;
  let echoOk = true;
  let errored = false;
  let expected = '';
  let sentAt = 0;

  const res = ws.connect(WS_URL, null, (socket) => {
    const sendNext = () => {
      // Unique prefix per VU/iteration/message, padded to messageBytes: an echo is recognisable.
      expected = `${__VU}:${__ITER}:${received}:${PADDING}`.slice(0, Math.max(PADDING.length, 16));
      sentAt = Date.now();
      socket.send(expected);
    };
    socket.on('open', sendNext);
    socket.on('message', (data) => {
      if (data !== expected) {
        echoOk = false;
        socket.close(1000);
        return;
      }
      wsMsgRtt.add(Date.now() - sentAt);
      received += 1;
      if (received < MESSAGES) sendNext();
      else socket.close(1000);
    });
    socket.on('close', (code) => {
      closeCode = code;
    });
    socket.on('error', () => {
      errored = true;
    });
    socket.setTimeout(() => {
      errored = true;
      socket.close(1000);
    }, SESSION_TIMEOUT_MS);
  });

  const upgraded = check(res, { [CHECK_WS_101]: (r) => Boolean(r) && r.status === 101 });
  const echoed = check(received, { [CHECK_WS_ECHOES]: (n) => n === MESSAGES && echoOk });
  wsSessionFailed.add(!(upgraded && echoed && !errored && closeCode === 1000));
  sleep(scenario.sleep);
}
