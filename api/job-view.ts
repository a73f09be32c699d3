import type { Job, JobState } from 'bullmq';
import { z } from 'zod';

export const jobStates = ['waiting', 'active', 'completed', 'failed', 'delayed', 'prioritized', 'waiting-children'] as const;

export const jobViewSchema = z.object({
  id: z.string(),
  queue: z.string(),
  state: z.string(),
  progress: z.unknown(),
  attempts: z.number().int().describe('attempts made so far'),
  max_attempts: z.number().int(),
  data: z.unknown(),
  result: z.unknown().optional(),
  failed_reason: z.string().optional(),
  created_at: z.string(),
  processed_at: z.string().optional(),
  finished_at: z.string().optional(),
  duration_ms: z.number().optional(),
});

export type JobView = z.infer<typeof jobViewSchema>;

const iso = (ms: number | undefined) => (ms ? new Date(ms).toISOString() : undefined);

export function jobView(job: Job, state: JobState | 'unknown' | string): JobView {
  return {
    id: job.id!,
    queue: job.queueName,
    state,
    progress: job.progress,
    attempts: job.attemptsMade,
    max_attempts: job.opts.attempts ?? 1,
    data: job.data,
    ...(job.returnvalue !== null && job.returnvalue !== undefined ? { result: job.returnvalue } : {}),
    ...(job.failedReason ? { failed_reason: job.failedReason } : {}),
    created_at: iso(job.timestamp)!,
    ...(job.processedOn ? { processed_at: iso(job.processedOn) } : {}),
    ...(job.finishedOn ? { finished_at: iso(job.finishedOn) } : {}),
    ...(job.finishedOn && job.processedOn ? { duration_ms: job.finishedOn - job.processedOn } : {}),
  };
}

export const enqueuedSchema = z.object({ id: z.string(), queue: z.string(), state: z.string() });
