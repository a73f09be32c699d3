/**
 * `lakehouse api`: the API alone, for production where workers run as their own processes.
 */
import { startApi } from '../../api/server.ts';
import { loadConfig } from '../../shared/config.ts';
import { createLogger } from '../../shared/logger.ts';
import { parseCommandArgs } from '../args.ts';
import { requireRedis } from '../ensure-redis.ts';
import { Lifecycle } from '../lifecycle.ts';

export const usage = `Usage: lakehouse api

Runs the HTTP API (and Bull Board at /admin/queues) on LAKEHOUSE_HOST:PORT. Needs the Redis at
REDIS_URL; unlike \`up\` it never starts a private one, since every process of a cluster must
share one Redis.

Options:
  -h, --help          this text

SIGTERM or Ctrl-C stops gracefully; a second signal exits at once.
`;

export async function run(args: string[]): Promise<number> {
  parseCommandArgs('api', { args, options: {} });
  const config = loadConfig();
  const log = createLogger(config.logLevel, 'lakehouse-api');
  await requireRedis(config);
  const life = new Lifecycle(log);
  await life.start(async () => {
    const api = await startApi(config, log);
    life.add({ what: 'API', close: api.close });
  });
  return life.untilSignal();
}
