/**
 * What a processor needs from its process: config, storage buckets, sealed secrets, a Redis
 * connection for locks and a logger. Built once per process (a sandboxed child builds its own
 * from the environment it inherited).
 */
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { getQueueDeclaration } from '../queues/registry.ts';
import { loadConfig, type Config } from '../shared/config.ts';
import { createLogger, type Logger } from '../shared/logger.ts';
import { createRedis } from '../shared/redis/connection.ts';
import { SecretBox } from '../shared/secrets/secret-box.ts';
import { Buckets } from '../shared/storage/buckets.ts';

export interface WorkerContext {
  config: Config;
  buckets: Buckets;
  secrets: SecretBox;
  redis: Redis;
  log: Logger;
  /** A queue to add jobs to (fan-out children, follow-up refreshes), on this process's connection. */
  queue(name: string): Queue;
}

let context: Promise<WorkerContext> | undefined;
let openQueues: Map<string, Queue> | undefined;

export function workerContext(): Promise<WorkerContext> {
  context ??= (async () => {
    const config = loadConfig();
    const buckets = new Buckets(config.dataDir, config.buckets);
    await buckets.ensure();
    const redis = createRedis(config.redisUrl, 'worker');
    const queues = new Map<string, Queue>();
    openQueues = queues;
    return {
      config,
      buckets,
      secrets: await SecretBox.open(buckets.primary.secretsDir(), config.secretKey),
      redis,
      log: createLogger(config.logLevel, 'processor'),
      queue(name) {
        let q = queues.get(name);
        if (!q) queues.set(name, (q = new Queue(name, { connection: redis, prefix: config.queuePrefix, defaultJobOptions: getQueueDeclaration(name).jobOptions })));
        return q;
      },
    };
  })();
  return context;
}

/**
 * Closes this process's context (its queues and Redis connection) if one was built; the next
 * workerContext() builds a fresh one. The runner calls it once its workers have stopped, so a
 * process that ran in-process processors can exit.
 */
export async function closeWorkerContext(): Promise<void> {
  const current = context;
  const queues = openQueues;
  context = undefined;
  openQueues = undefined;
  if (!current) return;
  const ctx = await current.catch(() => undefined);
  await Promise.allSettled([...(queues?.values() ?? [])].map((q) => q.close()));
  await ctx?.redis.quit().catch(() => ctx.redis.disconnect());
}
