// One pino logger for the process. Children carry node, room and participant ids; nothing here
// ever logs tokens or message payloads (the redact list is a second line of defence).
import { destination, pino, type Logger } from 'pino';

export type { Logger };

/**
 * Lines go to stdout in one write on the main thread once this many bytes have gathered, and at
 * the latest FLUSH_MS after they were logged. Pino's default writes each line on its own through
 * libuv's thread pool: a thread hand-off and about six system calls per line, which was a fifth
 * of the system calls of a join and leave. The batch is written at exit too; a SIGKILL loses at
 * most FLUSH_MS of lines.
 */
const BATCH_BYTES = 4096;

/** Fields that may hold a token, a payload, a secret or a TURN credential, at the top or one level down. */
const REDACTED = ['token', 'data', 'resume', 'secret', 'credential', 'iceServers', 'TURN_SECRET', 'AUTH_JWT_SECRET'].flatMap(
  (k) => [k, `*.${k}`],
);
const FLUSH_MS = 200;

export function createLogger(level: string, nodeId: string): Logger {
  // Synchronous like Node's own stdout on a pipe: a reader that stops reading holds the node up
  // rather than letting unwritten lines pile up in memory.
  const stdout = destination({ dest: 1, sync: true, minLength: BATCH_BYTES });
  // Without a listener a failing stdout (EIO, a full disk behind a file) would throw out of
  // whichever log call hit it, in the middle of a join. The lines are lost either way: nothing is
  // left to record them.
  stdout.on('error', () => {});
  let isPending = false;
  const log = pino(
    {
      level,
      base: { node: nodeId },
      redact: { paths: REDACTED, censor: '[redacted]' },
      hooks: {
        streamWrite: (line) => {
          isPending = true;
          return line;
        },
      },
    },
    stdout,
  );
  const flush = () => {
    if (!isPending) return;
    isPending = false;
    // flush(), not flushSync(): the destination is synchronous anyway, and flushSync() retries a
    // closed stdout forever where flush() reports EPIPE to pino, which then stops logging.
    stdout.flush();
  };
  setInterval(flush, FLUSH_MS).unref();
  process.on('exit', flush);
  return log;
}
