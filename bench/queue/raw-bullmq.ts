/**
 * The baseline: plain BullMQ as its README shows it — a Queue and a Worker each given
 * connection options (BullMQ makes its own clients), `Queue.addBulk` in batches, and a Worker
 * with a no-op processor. Jobs carry only `removeOnComplete: true`.
 */
import { Queue, Worker } from 'bullmq';
import type { QueueBenchSettings } from './settings.ts';
import type { Phase } from '../cpu-meter.ts';
import { batchSizes, completionDeadlineMs, completions, noop, PAYLOAD, QUEUE_NAME, type StartPhase } from './workload.ts';

export interface RoundTimes {
  add: Phase;
  work: Phase;
}

export function redisOptions(url: string): { host: string; port: number } {
  const u = new URL(url);
  return { host: u.hostname, port: Number(u.port || 6379) };
}

export async function rawRound(s: QueueBenchSettings, prefix: string, startPhase: StartPhase): Promise<RoundTimes> {
  const queue = new Queue(QUEUE_NAME, { connection: redisOptions(s.redisUrl), prefix });
  try {
    await queue.waitUntilReady();
    const batches = batchSizes(s.jobs, s.batch).map((n) =>
      Array.from({ length: n }, () => ({ name: QUEUE_NAME, data: PAYLOAD, opts: { removeOnComplete: true } })),
    );

    const adding = await startPhase();
    for (const batch of batches) await queue.addBulk(batch);
    const add = await adding();
    await expectWaiting(queue, s.jobs);

    const working = await startPhase();
    const worker = new Worker(QUEUE_NAME, noop, {
      connection: { ...redisOptions(s.redisUrl), maxRetriesPerRequest: null },
      prefix,
      concurrency: s.concurrency,
    });
    try {
      await completions(worker, s.jobs, completionDeadlineMs(s.jobs));
      return { add, work: await working() };
    } finally {
      await worker.close();
    }
  } finally {
    await queue.close();
  }
}

/** Checked outside the timed spans: a bench that lost jobs must not report a rate. */
export async function expectWaiting(queue: Queue, n: number): Promise<void> {
  const { wait = 0 } = await queue.getJobCounts('wait');
  if (wait !== n) throw new Error(`expected ${n} waiting jobs in ${queue.qualifiedName}, found ${wait}`);
}
