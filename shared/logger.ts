import { pino, type Logger } from 'pino';
import { redactSecrets } from './redact.ts';

export type { Logger };

/** One JSON logger per process; DSN passwords are scrubbed from every message. */
export function createLogger(level: string, name: string): Logger {
  return pino({
    name,
    level,
    hooks: {
      logMethod(args, method) {
        method.apply(this, args.map((a) => (typeof a === 'string' ? redactSecrets(a) : a)) as Parameters<typeof method>);
      },
    },
    serializers: { err: (e: Error) => ({ type: e.name, message: redactSecrets(e.message), stack: e.stack && redactSecrets(e.stack) }) },
  });
}
