/**
 * What a processor needs from its process: config, storage buckets, sealed secrets, a Redis
 * connection for locks and a logger. Built once per process (a sandboxed child builds its own
 * from the environment it inherited).
 */
import type { Redis } from 'ioredis';
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
}

let context: Promise<WorkerContext> | undefined;

export function workerContext(): Promise<WorkerContext> {
  context ??= (async () => {
    const config = loadConfig();
    const buckets = new Buckets(config.dataDir, config.buckets);
    await buckets.ensure();
    return {
      config,
      buckets,
      secrets: await SecretBox.open(buckets.primary.secretsDir(), config.secretKey),
      redis: createRedis(config.redisUrl, 'worker'),
      log: createLogger(config.logLevel, 'processor'),
    };
  })();
  return context;
}
