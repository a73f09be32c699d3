/**
 * The unfinished jobs that name an index (embed and its shards, refresh, autotune and its
 * trials, eval sets and agent ticks): deleting the index while one waits or runs would leave it
 * failing, or rebuilding the index that was just deleted.
 */
import type { JobType, Queue } from 'bullmq';

const UNFINISHED: JobType[] = ['active', 'waiting', 'waiting-children', 'delayed', 'prioritized'];
export const INDEX_QUEUES = ['embed', 'refresh', 'autotune'] as const;
/** Jobs read from Redis per call; a long backlog is paged, never loaded at once. */
const PAGE = 500;

/** Up to `max` of them, as `queue/id (state)`. */
export async function unfinishedIndexJobs(queue: (name: string) => Queue, index: string, max = 5): Promise<string[]> {
  const found: string[] = [];
  for (const name of INDEX_QUEUES) {
    const q = queue(name);
    for (const state of UNFINISHED) {
      for (let start = 0; found.length < max; start += PAGE) {
        const jobs = await q.getJobs([state], start, start + PAGE - 1);
        for (const job of jobs) {
          if (job && (job.data as { index?: unknown } | undefined)?.index === index && found.length < max) found.push(`${name}/${job.id} (${state})`);
        }
        if (jobs.length < PAGE) break;
      }
    }
  }
  return found;
}
