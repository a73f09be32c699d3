/**
 * The server commands need a Redis before anything else. `up` (a laptop) may start a private
 * redis-server when none answers; `api` and `worker` (production) never do — a private Redis
 * would silently split the cluster's queues.
 */
import { loadConfig, type Config } from '../shared/config.ts';
import type { Logger } from '../shared/logger.ts';
import { redactSecrets } from '../shared/redact.ts';
import { canReach, createRedis, waitForReady, warnUnlessNoeviction } from '../shared/redis/connection.ts';
import { ensureRedisPassword, redisServerOnPath, startPrivateRedis, type PrivateRedis } from '../shared/redis/private-server.ts';
import { DataRoot } from '../shared/storage/data-root.ts';
import { CliError } from './cli-errors.ts';

export interface RedisSupply {
  /** The config to run with: REDIS_URL points at the private server when one was started. */
  config: Config;
  privateRedis?: PrivateRedis;
}

export function noRedisMessage(url: string, why: string): string {
  return [
    `no Redis answers at ${redactSecrets(url)}${why ? ` (${why})` : ''}. Get one, then run this again:`,
    '  sudo apt install redis-server           # Debian/Ubuntu: listens on 127.0.0.1:6379',
    '  docker run -d -p 6379:6379 redis:7      # or in a container',
    'or set REDIS_URL to a Redis you have, e.g. REDIS_URL=redis://:password@host:6379',
  ].join('\n');
}

/** For `api`: the configured Redis or a clear exit. */
export async function requireRedis(config: Config): Promise<void> {
  if (!(await canReach(config.redisUrl))) throw new CliError(noRedisMessage(config.redisUrl, ''));
}

/** For `up`: the configured Redis, else a private one if allowed and installed, else a clear exit. */
export async function ensureRedis(config: Config, log: Logger): Promise<RedisSupply> {
  if (await canReach(config.redisUrl)) return { config };
  if (config.privateRedis === 'never') {
    throw new CliError(noRedisMessage(config.redisUrl, 'LAKEHOUSE_PRIVATE_REDIS=never, so no private redis-server is started'));
  }
  if (!redisServerOnPath()) {
    throw new CliError(noRedisMessage(config.redisUrl, 'and no redis-server on PATH to start a private one'));
  }
  const root = new DataRoot(config.dataDir);
  const dir = root.redisDir();
  const { password, file } = await ensureRedisPassword(root.secretsDir());
  const privateRedis = await startPrivateRedis(dir, password);
  // Every client of this process reads config.redisUrl, and sandboxed processors (forked with
  // this environment) build their config from REDIS_URL: both carry the password.
  process.env['REDIS_URL'] = privateRedis.url;
  log.warn(
    { configured: redactSecrets(config.redisUrl), url: privateRedis.displayUrl, dir, password_file: file },
    `no Redis at ${redactSecrets(config.redisUrl)}: started a private redis-server at ${privateRedis.displayUrl} (password in ${file}) with its files in ${dir}. ` +
      'Queued jobs live there: only this process serves them, and they wait in those files until the next `lakehouse up`. ' +
      'Set REDIS_URL to a shared Redis to add workers on other hosts.',
  );
  return { config: loadConfig(process.env), privateRedis };
}

/**
 * For `worker`: workers retry a missing Redis forever (so a worker may start before Redis
 * does), but say so, and check the eviction policy the API would otherwise have checked.
 */
export async function checkRedisForWorkers(config: Config, log: Logger): Promise<void> {
  if (!(await canReach(config.redisUrl))) {
    log.warn(noRedisMessage(config.redisUrl, 'workers will keep retrying until one does'));
    return;
  }
  const redis = createRedis(config.redisUrl, 'producer');
  redis.on('error', () => {});
  try {
    await waitForReady(redis);
    await warnUnlessNoeviction(redis, log);
  } finally {
    redis.disconnect();
  }
}
