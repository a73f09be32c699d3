/**
 * `lakehouse worker`: workers for some queues, no API. Run as many as the queues need, on any
 * host that shares the Redis and the data root.
 */
import { loadConfig, ConfigError } from '../../shared/config.ts';
import { createLogger } from '../../shared/logger.ts';
import { parseQueueList } from '../../queues/registry.ts';
import { startWorkers } from '../../workers/runner.ts';
import { parseCommandArgs, positiveInt, queueList } from '../args.ts';
import { checkRedisForWorkers } from '../ensure-redis.ts';
import { Lifecycle } from '../lifecycle.ts';

export const usage = `Usage: lakehouse worker [--queues LIST] [--concurrency N]

Runs workers for the given queues in this process.

Options:
  --queues LIST       comma-separated queue names, or "all"
                      (default: LAKEHOUSE_QUEUES, else all)
  --concurrency N     jobs at once per queue (default: LAKEHOUSE_WORKER_CONCURRENCY)
  -h, --help          this text

SIGTERM or Ctrl-C stops taking jobs; running ones get LAKEHOUSE_SHUTDOWN_TIMEOUT_MS to finish,
after which they are released for another worker. A second signal exits at once.
`;

export async function run(args: string[]): Promise<number> {
  const { values } = parseCommandArgs('worker', {
    args,
    options: { queues: { type: 'string' }, concurrency: { type: 'string' } },
  });
  // flags first: a usage error is reported as one even when the environment is also wrong
  const flagged = values.queues !== undefined ? queueList(values.queues, 'worker') : undefined;
  const concurrency = positiveInt(values.concurrency, '--concurrency', 'worker');
  const config = loadConfig();
  const queues = flagged ?? configuredQueues(config.workerQueues);
  const log = createLogger(config.logLevel, 'lakehouse-worker');
  await checkRedisForWorkers(config, log);
  const life = new Lifecycle(log);
  await life.start(async () => {
    const workers = await startWorkers({ config, queues, concurrency, log });
    life.add({
      what: 'workers',
      close: () => {
        log.info({ queues, deadlineMs: config.shutdownTimeoutMs }, 'no new jobs; waiting for running ones');
        return workers.close(config.shutdownTimeoutMs);
      },
    });
  });
  return life.untilSignal();
}

/** LAKEHOUSE_QUEUES (config.workerQueues) names queues only the registry knows; check them here. */
function configuredQueues(list: string): string[] {
  try {
    return parseQueueList(list);
  } catch (err) {
    throw new ConfigError(`invalid configuration:\n  LAKEHOUSE_QUEUES: ${(err as Error).message}`);
  }
}
