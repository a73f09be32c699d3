/**
 * The last wall before a failure reaches Redis: whatever a processor throws, its message (the
 * job's `failedReason`, shown in job views and Bull Board) and stack go through redaction, so a
 * DSN, URL credential, key or token that some library quoted is never stored. The domain code
 * scrubs what it knows first (shared/ingest/sources/source-errors.ts, provider-error.ts).
 */
import { redactSecrets } from '../shared/redact.ts';

export function redactFailure(err: unknown): unknown {
  if (!(err instanceof Error)) return typeof err === 'string' ? new Error(redactSecrets(err)) : err;
  const message = redactSecrets(err.message);
  if (message !== err.message) err.message = message;
  if (err.stack) err.stack = redactSecrets(err.stack);
  return err;
}
