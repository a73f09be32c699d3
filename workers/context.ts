/**
 * What a processor needs from its process: config, data root, a Redis connection for locks and
 * a logger. Built once per process (a sandboxed child builds its own from the environment the
 * runner handed it).
 */
import type { Redis } from 'ioredis';
import { loadConfig, type Config } from '../shared/config.ts';
import { createLogger, type Logger } from '../shared/logger.ts';
import { createRedis } from '../shared/redis/connection.ts';
import { DataRoot } from '../shared/storage/data-root.ts';

export interface WorkerContext {
  config: Config;
  root: DataRoot;
  redis: Redis;
  log: Logger;
}

let context: WorkerContext | undefined;

export function workerContext(): WorkerContext {
  if (!context) {
    const config = loadConfig();
    context = {
      config,
      root: new DataRoot(config.dataDir),
      redis: createRedis(config.redisUrl, 'worker'),
      log: createLogger(config.logLevel, 'processor'),
    };
  }
  return context;
}
