/**
 * What the queues still need from the data root, for the orphan sweeper
 * (shared/maintenance/orphan-sweeper.ts): staged uploads named by jobs that will still run, and
 * sealed secrets named by any job Redis keeps (a failed one may be retried) or by a schedule's
 * template.
 */
import { Queue, type JobType } from 'bullmq';
import type { Redis } from 'ioredis';
import { collectReferences, type SweepReferences } from '../shared/maintenance/orphan-sweeper.ts';
import { QUEUES } from './registry.ts';

/** States whose jobs will still run and read their staged upload. */
const LIVE: JobType[] = ['waiting', 'active', 'delayed', 'prioritized', 'waiting-children'];
const FINISHED: JobType[] = ['completed', 'failed'];
const PAGE = 500;

export async function jobReferences(connection: Redis, prefix: string): Promise<SweepReferences> {
  const live: SweepReferences = { uploads: new Set(), secrets: new Set() };
  const finished: SweepReferences = { uploads: new Set(), secrets: new Set() };
  const queues = QUEUES.map((d) => new Queue(d.name, { connection, prefix }));
  try {
    for (const q of queues) {
      await scan(q, LIVE, (data) => collectReferences(data, live));
      await scan(q, FINISHED, (data) => collectReferences(data, finished));
      for (const s of await q.getJobSchedulers(0, -1)) collectReferences(s.template?.data, live);
    }
  } finally {
    await Promise.all(queues.map((q) => q.close()));
  }
  for (const id of finished.secrets) live.secrets.add(id);
  return live;
}

async function scan(q: Queue, states: JobType[], visit: (data: unknown) => void): Promise<void> {
  for (const state of states) {
    for (let start = 0; ; start += PAGE) {
      const jobs = await q.getJobs([state], start, start + PAGE - 1, true);
      for (const job of jobs) if (job) visit(job.data);
      if (jobs.length < PAGE) break;
    }
  }
}
