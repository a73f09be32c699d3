/**
 * A per-entity writer lock in Redis (DESIGN §4): a random token, a TTL so a crashed holder
 * cannot block others forever, and renewal while the holder is still working. Release and
 * renewal only act when the token still matches, so a holder whose lock expired cannot free
 * someone else's.
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';

const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;
const RENEW = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end`;

export interface LockOptions {
  /** @defaultValue 30000 */
  ttlMs?: number;
  /** How long to keep trying before giving up. @defaultValue 60000 */
  waitMs?: number;
}

export interface HeldLock {
  /** Throws when the lock has expired or been taken over; call it right before committing. */
  assertHeld(): Promise<void>;
}

export class LockTimeoutError extends Error {
  override name = 'LockTimeoutError';
}

export async function withEntityLock<T>(
  redis: Redis,
  key: string,
  fn: (lock: HeldLock) => Promise<T>,
  { ttlMs = 30_000, waitMs = 60_000 }: LockOptions = {},
): Promise<T> {
  const token = randomBytes(16).toString('hex');
  const deadline = Date.now() + waitMs;
  let backoff = 20;
  while ((await redis.set(key, token, 'PX', ttlMs, 'NX')) !== 'OK') {
    if (Date.now() > deadline) throw new LockTimeoutError(`lock ${key} still held by another writer after ${waitMs} ms`);
    await new Promise((r) => setTimeout(r, backoff));
    backoff = Math.min(backoff * 2, 500);
  }
  const renewal = setInterval(() => {
    redis.eval(RENEW, 1, key, token, String(ttlMs)).catch(() => {});
  }, Math.max(ttlMs / 3, 50));
  const held: HeldLock = {
    async assertHeld() {
      if ((await redis.get(key)) !== token) {
        throw new LockTimeoutError(`lock ${key} expired while it was held; the change was not committed`);
      }
    },
  };
  try {
    return await fn(held);
  } finally {
    clearInterval(renewal);
    await redis.eval(RELEASE, 1, key, token).catch(() => {});
  }
}
