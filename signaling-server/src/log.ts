// One pino logger for the process. Children carry node, room and participant ids; nothing here
// ever logs tokens or message payloads (the redact list is a second line of defence).
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string, nodeId: string): Logger {
  return pino({
    level,
    base: { node: nodeId },
    redact: { paths: ['token', '*.token', 'data', '*.data', 'resume', '*.resume'], censor: '[redacted]' },
  });
}
