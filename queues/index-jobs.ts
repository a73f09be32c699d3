/**
 * The unfinished jobs that name an index (embed and its shards, refresh, autotune and its
 * trials, eval sets and agent ticks): deleting the index while one waits or runs would leave it
 * failing, or rebuilding the index that was just deleted. Schedules a user made (PUT /schedules/:id)
 * naming the index count too: they would fail every run. The index's own schedulers (its cron
 * refresh, its tuning agent) do not: they go with the index.
 */
import type { JobType, Queue } from 'bullmq';
import { agentSchedulerId } from './autotune.ts';
import { refreshSchedulerId } from './refresh.ts';

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
          // a scheduler's next run waits as a delayed job: the scheduler itself is judged below
          if (job?.repeatJobKey !== undefined && state === 'delayed') continue;
          if (job && (job.data as { index?: unknown } | undefined)?.index === index && found.length < max) found.push(`${name}/${job.id} (${state})`);
        }
        if (jobs.length < PAGE) break;
      }
    }
  }
  for (const name of INDEX_QUEUES) {
    if (found.length >= max) break;
    const own = new Set([refreshSchedulerId(index), agentSchedulerId(index)]);
    for (const s of await queue(name).getJobSchedulers(0, -1)) {
      const data = s.template?.data as { index?: unknown } | undefined;
      if (!own.has(s.key) && data?.index === index && found.length < max) found.push(`schedule ${s.key} (${name})`);
    }
  }
  return found;
}
