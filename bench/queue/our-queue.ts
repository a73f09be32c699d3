/**
 * Ours: jobs enter through queues/producer.ts (registry lookup, request validation, the queue's
 * seal step, payload validation, the declaration's default job options) on a producer-role
 * connection as the API makes it, and are worked by a Worker configured as workers/runner.ts
 * configures one, running a no-op.
 */
import type { Worker } from 'bullmq';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Producer } from '../../queues/producer.ts';
import { createSealContext } from '../../queues/seal-context.ts';
import { loadConfig } from '../../shared/config.ts';
import type { Logger } from '../../shared/logger.ts';
import { createRedis, waitForReady } from '../../shared/redis/connection.ts';
import { expectWaiting, type RoundTimes } from './raw-bullmq.ts';
import { startRunnerConfiguredWorker } from './runner-configured-worker.ts';
import type { QueueBenchSettings } from './settings.ts';
import { batchSizes, completionDeadlineMs, completions, noop, PAYLOAD, QUEUE_NAME, type StartPhase } from './workload.ts';

export async function ourRound(s: QueueBenchSettings, prefix: string, log: Logger, startPhase: StartPhase): Promise<RoundTimes> {
  const config = loadConfig({ REDIS_URL: s.redisUrl, LAKEHOUSE_QUEUE_PREFIX: prefix, LOG_LEVEL: 'warn' });
  const secretsDir = await fs.mkdtemp(path.join(os.tmpdir(), 'lhbench-secrets-'));
  const connection = createRedis(config.redisUrl, 'producer');
  connection.on('error', () => {});
  // what the API hands its Producer; upload sources never touch the secret box, but it is real
  const producer = new Producer(connection, config.queuePrefix, await createSealContext({ ...config, dataDir: secretsDir }));
  try {
    await waitForReady(connection);
    const queue = producer.queue(QUEUE_NAME);
    await queue.waitUntilReady();
    const batches = batchSizes(s.jobs, s.batch).map((n) => Array.from({ length: n }, () => ({ payload: PAYLOAD })));

    const adding = await startPhase();
    for (const batch of batches) await producer.addBulk(QUEUE_NAME, batch);
    const add = await adding();
    await expectWaiting(queue, s.jobs);

    const working = await startPhase();
    let done: Promise<void> | undefined;
    const running = await startRunnerConfiguredWorker({
      config, queue: QUEUE_NAME, processor: noop, concurrency: s.concurrency, log,
      onWorker: (w: Worker) => {
        done = completions(w, s.jobs, completionDeadlineMs(s.jobs));
        done.catch(() => {}); // awaited below; don't let an early failure count as unhandled meanwhile
      },
    });
    try {
      if (!done) throw new Error('the worker was never handed to onWorker');
      await done;
      return { add, work: await working() };
    } finally {
      await running.close();
    }
  } finally {
    await producer.close();
    await connection.quit().catch(() => connection.disconnect());
    await fs.rm(secretsDir, { recursive: true, force: true });
  }
}
