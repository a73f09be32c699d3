/**
 * `lakehouse up`: the laptop set-up — API and workers for every queue in one process, and a
 * private redis-server if no Redis answers.
 */
import path from 'node:path';
import { startApi, type RunningApi } from '../../api/server.ts';
import { BOARD_PATH } from '../../api/board.ts';
import { GENERATED_KEY_FILE } from '../../shared/auth/key-ring.ts';
import { loadConfig, type Config } from '../../shared/config.ts';
import { createLogger } from '../../shared/logger.ts';
import { redactSecrets } from '../../shared/redact.ts';
import type { PrivateRedis } from '../../shared/redis/private-server.ts';
import { DataRoot } from '../../shared/storage/data-root.ts';
import { startWorkers } from '../../workers/runner.ts';
import { parseCommandArgs, positiveInt, queueList } from '../args.ts';
import { ensureRedis } from '../ensure-redis.ts';
import { Lifecycle } from '../lifecycle.ts';

export const usage = `Usage: lakehouse up [--queues LIST] [--concurrency N]

Runs the API and workers in this one process: the laptop set-up. If no Redis answers at
REDIS_URL, starts a private redis-server with its files under <data dir>/redis (unless
LAKEHOUSE_PRIVATE_REDIS=never or redis-server is not installed).

Options:
  --queues LIST       queues to work, comma-separated, or "all" (default: all)
  --concurrency N     jobs at once per queue (default: LAKEHOUSE_WORKER_CONCURRENCY)
  -h, --help          this text

SIGTERM or Ctrl-C stops: running jobs get LAKEHOUSE_SHUTDOWN_TIMEOUT_MS to finish, then the
API and any private Redis stop. A second signal exits at once.
`;

export async function run(args: string[]): Promise<number> {
  const { values } = parseCommandArgs('up', {
    args,
    options: { queues: { type: 'string' }, concurrency: { type: 'string' } },
  });
  const queues = queueList(values.queues, 'up');
  const concurrency = positiveInt(values.concurrency, '--concurrency', 'up');
  const configured = loadConfig();
  const log = createLogger(configured.logLevel, 'lakehouse');
  const life = new Lifecycle(log);

  const { config, privateRedis } = await ensureRedis(configured, log);
  const api = await life.start(async () => {
    if (privateRedis) life.add({ what: 'private redis-server', close: () => privateRedis.stop(), abandon: () => void privateRedis.stop() });
    const started = await startApi(config, log);
    life.add({ what: 'API', close: started.close });
    const workers = await startWorkers({ config, queues, concurrency, log });
    life.add({ what: 'workers', close: () => workers.close(config.shutdownTimeoutMs) });
    return started;
  });
  process.stderr.write(banner(config, api, queues, privateRedis));
  return life.untilSignal();
}

/** On stderr, so stdout stays the JSON log a shipper can parse. */
function banner(config: Config, api: RunningApi, queues: string[], privateRedis: PrivateRedis | undefined): string {
  const keyFile = path.join(new DataRoot(config.dataDir).secretsDir(), GENERATED_KEY_FILE);
  const usesEnvKeys = config.apiKeys.length > 0;
  const auth = usesEnvKeys ? '"Authorization: Bearer <a key from LAKEHOUSE_API_KEYS>"' : `"Authorization: Bearer $(cat ${keyFile})"`;
  return [
    '',
    `lakehouse up: API and workers (${queues.join(', ')}) in one process`,
    `  API         ${api.url}   (OpenAPI: ${api.url}/openapi.json)`,
    `  Bull Board  ${api.url}${BOARD_PATH}   (any user name, an admin key as the password)`,
    `  API key     ${usesEnvKeys ? 'from LAKEHOUSE_API_KEYS' : `${keyFile} (mode 0600)`}`,
    `  Redis       ${redactSecrets(config.redisUrl)}${privateRedis ? `   (private, files in ${new DataRoot(config.dataDir).redisDir()})` : ''}`,
    `  Data root   ${config.dataDir}`,
    '  Try',
    `    curl -H ${auth} --data-binary @people.csv -H 'Content-Type: text/csv' '${api.url}/datasets/people/upload?mode=replace'`,
    `    npx lakehouse ingest people.csv --dataset people --wait && npx lakehouse query 'SELECT count(*) FROM people'`,
    `Stop with Ctrl-C or SIGTERM (running jobs get ${config.shutdownTimeoutMs} ms).`,
    '',
  ].join('\n');
}
