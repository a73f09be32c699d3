/**
 * Redis connections by role. BullMQ workers block on Redis and must retry forever
 * (`maxRetriesPerRequest: null`); API producers must fail fast so a request gets a 503 instead
 * of hanging while Redis is away (`enableOfflineQueue: false`).
 */
import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from '../logger.ts';

export type RedisRole = 'worker' | 'producer' | 'subscriber';

const ROLE_OPTIONS: Record<RedisRole, RedisOptions> = {
  worker: { maxRetriesPerRequest: null },
  subscriber: { maxRetriesPerRequest: null },
  producer: { enableOfflineQueue: false, maxRetriesPerRequest: 1, connectTimeout: 5_000 },
};

export function createRedis(url: string, role: RedisRole, extra: RedisOptions = {}): Redis {
  return new Redis(url, { ...ROLE_OPTIONS[role], lazyConnect: false, ...extra });
}

/** Resolves once the connection is ready, or rejects after `timeoutMs` with the last error. */
export async function waitForReady(redis: Redis, timeoutMs = 5_000): Promise<void> {
  if (redis.status === 'ready') return;
  await new Promise<void>((resolve, reject) => {
    let lastError: Error | undefined;
    const onError = (e: Error) => {
      lastError = e;
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`Redis not ready after ${timeoutMs} ms${lastError ? `: ${lastError.message}` : ''}`));
    }, timeoutMs);
    const onReady = () => {
      cleanup();
      resolve();
    };
    const cleanup = () => {
      clearTimeout(timer);
      redis.off('ready', onReady);
      redis.off('error', onError);
    };
    redis.on('ready', onReady);
    redis.on('error', onError);
  });
}

/** Probes a URL with a short-lived connection that does not retry. */
export async function canReach(url: string, timeoutMs = 1_500): Promise<boolean> {
  const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: timeoutMs });
  probe.on('error', () => {});
  try {
    await probe.connect();
    await probe.ping();
    return true;
  } catch {
    return false;
  } finally {
    probe.disconnect();
  }
}

/** BullMQ silently loses jobs when Redis evicts keys; say so loudly at start-up. */
export async function warnUnlessNoeviction(redis: Redis, log: Logger): Promise<string | undefined> {
  try {
    const reply = (await redis.config('GET', 'maxmemory-policy')) as string[];
    const policy = reply[1];
    if (policy && policy !== 'noeviction') {
      log.warn(
        `!!! Redis maxmemory-policy is "${policy}", not "noeviction": under memory pressure Redis will evict ` +
          `BullMQ keys and jobs will be lost. Run: redis-cli CONFIG SET maxmemory-policy noeviction`,
      );
    }
    return policy;
  } catch (err) {
    log.warn({ err }, 'could not read Redis maxmemory-policy (CONFIG may be disabled); make sure it is noeviction');
    return undefined;
  }
}
