/**
 * Runs the inbox watcher in a worker process that serves `ingest`: claimed files become ingest
 * jobs. Every such process runs one; claims by atomic rename keep them from doubling work.
 */
import { Producer } from '../queues/producer.ts';
import { createSealContext } from '../queues/seal-context.ts';
import type { Config } from '../shared/config.ts';
import { startInboxWatcher } from '../shared/inbox/watcher.ts';
import type { Logger } from '../shared/logger.ts';
import { createRedis } from '../shared/redis/connection.ts';
import { Buckets } from '../shared/storage/buckets.ts';

export async function startInboxFeeder(config: Config, log: Logger): Promise<{ stop(): Promise<void> }> {
  const buckets = new Buckets(config.dataDir, config.buckets);
  // a worker-role connection: the watcher should ride out a Redis blip, not fail its enqueue
  const connection = createRedis(config.redisUrl, 'worker');
  const producer = new Producer(connection, config.queuePrefix, await createSealContext(config, buckets));
  const watcher = startInboxWatcher({
    root: buckets.primary,
    pollMs: config.inboxPollMs,
    log,
    enqueue: async (job) => {
      await producer.addPayload('ingest', { dataset: job.dataset, source: { kind: 'inbox', path: job.claimed, filename: job.filename } }, job.jobId);
    },
  });
  return {
    async stop() {
      await watcher.stop();
      await producer.close();
      await connection.quit().catch(() => connection.disconnect());
    },
  };
}
