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
    serializers: { err: serializeError },
  });
}

/** Errors are logged redacted, whether a call site passes the Error or only its message. */
function serializeError(e: unknown): unknown {
  if (e instanceof Error) return { type: e.name, message: redactSecrets(e.message), ...(e.stack ? { stack: redactSecrets(e.stack) } : {}) };
  return typeof e === 'string' ? redactSecrets(e) : e;
}
