/**
 * Logging: one pino logger for the process (JSON lines), written asynchronously in 4 KiB batches
 * so the request path never blocks on stdout; `flush()` on shutdown. The access log is a Recorder
 * writing one line per exchange.
 */
import { pino, type Logger } from 'pino';
import type { Exchange } from './exchange.js';
import type { Recorder } from './pipeline.js';

export interface LogOptions {
  level: string;
  file: string | undefined;
}

type Destination = ReturnType<typeof pino.destination>;

/** What createLogger opened for each logger, so closeLogger can release it. */
const opened = new WeakMap<Logger, { dest: Destination; timer: NodeJS.Timeout; file: boolean }>();

export function createLogger(opts: LogOptions): Logger {
  const dest = pino.destination({ dest: opts.file ?? 1, sync: false, minLength: 4096, mkdir: true });
  // Batches are written when 4 KiB fill up, or within a second on a quiet server.
  const timer = setInterval(() => {
    try {
      dest.flush();
    } catch {
      // not open yet, or already closed: nothing to flush
    }
  }, 1000);
  timer.unref();
  const logger = pino({ level: opts.level, base: { svc: 'cage' }, timestamp: pino.stdTimeFunctions.isoTime }, dest);
  opened.set(logger, { dest, timer, file: opts.file !== undefined });
  return logger;
}

/** Flush buffered lines (on shutdown and before exit). */
export function flushLogger(logger: Logger): void {
  try {
    logger.flush();
  } catch {
    // the destination may not be ready yet (nothing buffered then)
  }
}

/**
 * Flush and release what createLogger opened (its timer, and its file; stdout stays open). A
 * logger made elsewhere is only flushed. A file logger is silenced first: later lines are dropped.
 */
export function closeLogger(logger: Logger): void {
  const o = opened.get(logger);
  if (o === undefined) return flushLogger(logger);
  opened.delete(logger);
  clearInterval(o.timer);
  if (!o.file) return flushLogger(logger);
  // A late line (a request or probe finishing after shutdown) must not write to a closed file.
  logger.level = 'silent';
  const finish = () => {
    try {
      o.dest.end();
    } catch {
      // already closed
    }
  };
  // A file still opening cannot be flushed or ended yet: wait for it.
  if ((o.dest as unknown as { fd: number }).fd < 0) o.dest.once('ready', finish);
  else finish();
}

const round3 = (ms: number) => Math.round(ms * 1000) / 1000;

export class AccessLog implements Recorder {
  constructor(private readonly logger: Logger) {}

  record(ex: Exchange): void {
    this.logger.info({
      msg: 'request',
      request_id: ex.id,
      route: ex.route,
      method: ex.method,
      uri: ex.target,
      host: ex.host,
      remote: ex.remoteAddress,
      status: ex.status,
      bytes_in: ex.bytesIn,
      bytes_out: ex.bytesOut,
      duration_ms: round3(ex.endedAt - ex.startedAt),
      upstream: ex.upstream,
      upstream_ms: ex.upstreamHeadersAt === 0 ? undefined : round3(ex.upstreamHeadersAt - ex.startedAt),
      retries: ex.retries === 0 ? undefined : ex.retries,
      error: ex.errorCode === '' ? undefined : ex.errorCode,
      aborted: ex.aborted ? true : undefined,
      flags: ex.flags ?? undefined,
    });
  }
}
