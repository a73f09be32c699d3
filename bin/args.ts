/**
 * The argument checks every command shares: node:util parseArgs in strict mode, with its
 * complaints turned into usage errors (exit 2), plus the few value checks parseArgs can't do.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { parseQueueList } from '../queues/registry.ts';
import { UsageError } from './cli-errors.ts';

/** Options every client command accepts: where the API is and which key to present. */
export const CLIENT_OPTIONS = {
  url: { type: 'string' },
  key: { type: 'string' },
} as const;

export const CLIENT_USAGE = `  --url URL           the API (default: LAKEHOUSE_API_URL, else http://127.0.0.1:$PORT)
  --key KEY           API key (default: LAKEHOUSE_API_KEY, else the generated key in the data root)`;

export function parseCommandArgs<T extends ParseArgsConfig>(command: string, config: T): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config); // strict by default: unknown flags and missing values throw
  } catch (err) {
    throw new UsageError((err as Error).message, command);
  }
}

export function positiveInt(value: string | undefined, flag: string, command: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < 1) {
    throw new UsageError(`${flag} expects a positive integer, got ${JSON.stringify(value)}`, command);
  }
  return n;
}

export function queueList(value: string | undefined, command: string): string[] {
  try {
    return parseQueueList(value);
  } catch (err) {
    throw new UsageError(`--queues: ${(err as Error).message}`, command);
  }
}
