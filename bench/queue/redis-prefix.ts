/**
 * Every round of every section runs under its own queue prefix, and leaves nothing behind:
 * the prefix's keys are deleted (SCAN + DEL) once the section's queues and workers are closed.
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';

export function freshPrefix(section: string): string {
  return `lhbench-${section}-${randomBytes(4).toString('hex')}`;
}

/** SCAN + DEL every key under `prefix:`; returns how many were deleted. */
export async function dropPrefix(redis: Redis, prefix: string): Promise<number> {
  let cursor = '0';
  let deleted = 0;
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1_000);
    cursor = next;
    if (keys.length > 0) deleted += await redis.unlink(...keys);
  } while (cursor !== '0');
  return deleted;
}

/** Runs `fn` under a fresh prefix and drops the prefix afterwards, also when `fn` throws. */
export async function withFreshPrefix<T>(admin: Redis, section: string, fn: (prefix: string) => Promise<T>): Promise<T> {
  const prefix = freshPrefix(section);
  try {
    return await fn(prefix);
  } finally {
    await dropPrefix(admin, prefix);
  }
}
