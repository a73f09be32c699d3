/**
 * A BullMQ Worker set up the way workers/runner.ts sets one up for a declared queue that is not
 * sandboxed — same connection factory and role, same Worker options, same event listeners,
 * same cluster-membership heartbeat — but with a processor handed in instead of loaded from
 * workers/processors/<queue>.ts.
 *
 * Why this copy exists: startWorkers() only runs registry queues with their shipped processors,
 * and the only queue (ingest) is sandboxed and does real work, so it cannot measure a no-op
 * workload. If runner.ts changes how it builds a Worker, change this file with it (bench/README
 * proposes the runner change that would make this file unnecessary).
 */
import { Worker, type Processor } from 'bullmq';
import type { Config } from '../../shared/config.ts';
import { heartbeat, HEARTBEAT_MS, leave, newWorkerRecord } from '../../shared/cluster/membership.ts';
import type { Logger } from '../../shared/logger.ts';
import { createRedis } from '../../shared/redis/connection.ts';

export interface RunnerConfiguredWorker {
  worker: Worker;
  close(): Promise<void>;
}

export async function startRunnerConfiguredWorker(opts: {
  config: Config;
  queue: string;
  processor: Processor;
  concurrency: number;
  log: Logger;
  /** Called right after the Worker is made, before any job can finish: attach listeners here. */
  onWorker?: (worker: Worker) => void;
}): Promise<RunnerConfiguredWorker> {
  const prefix = opts.config.queuePrefix;
  const connection = createRedis(opts.config.redisUrl, 'worker');
  const worker = new Worker(opts.queue, opts.processor, { connection, prefix, concurrency: opts.concurrency });
  opts.onWorker?.(worker);
  worker.on('failed', (job, err) => opts.log.warn({ queue: worker.name, job: job?.id, attempt: job?.attemptsMade, err: err.message }, 'job failed'));
  worker.on('error', (err) => opts.log.error({ queue: worker.name, err: err.message }, 'worker error'));
  const record = newWorkerRecord([opts.queue], opts.concurrency);
  const beat = () => heartbeat(connection, prefix, record).catch((err: Error) => opts.log.warn({ err: err.message }, 'heartbeat failed'));
  await beat();
  const timer = setInterval(beat, HEARTBEAT_MS);
  return {
    worker,
    async close() {
      clearInterval(timer);
      await worker.close();
      await leave(connection, prefix, record.id).catch(() => {});
      await connection.quit().catch(() => {});
    },
  };
}
