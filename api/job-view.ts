import type { Job, JobState } from 'bullmq';
import { z } from 'zod';
import type { Role } from '../shared/config.ts';

export const jobStates = ['waiting', 'active', 'completed', 'failed', 'delayed', 'prioritized', 'waiting-children'] as const;

export const jobViewSchema = z.object({
  id: z.string(),
  queue: z.string(),
  state: z.string(),
  progress: z.unknown(),
  attempts: z.number().int().describe('attempts made so far'),
  max_attempts: z.number().int(),
  data: z.unknown().optional().describe('writers and admins only: the (sealed, redacted) payload'),
  result: z.unknown().optional(),
  failed_reason: z.string().optional().describe('writers and admins only: the error message'),
  failed: z.literal(true).optional().describe('readers: the job failed (its reason is for writers and admins)'),
  error_class: z.string().optional().describe('readers: the kind of error, e.g. UnrecoverableError, without its message'),
  created_at: z.string(),
  processed_at: z.string().optional(),
  finished_at: z.string().optional(),
  duration_ms: z.number().optional(),
});

export type JobView = z.infer<typeof jobViewSchema>;

const iso = (ms: number | undefined) => (ms ? new Date(ms).toISOString() : undefined);

/**
 * What a caller may see of a job. A payload can hold source SQL and redacted DSNs, and an error
 * message can quote values of the rows it choked on, so readers get neither: only that the job
 * failed and the error's class name.
 */
export function jobView(job: Job, state: JobState | 'unknown' | string, role: Role): JobView {
  const full = role !== 'reader';
  return {
    id: job.id!,
    queue: job.queueName,
    state,
    progress: job.progress,
    attempts: job.attemptsMade,
    max_attempts: job.opts.attempts ?? 1,
    ...(full ? { data: job.data } : {}),
    ...(job.returnvalue !== null && job.returnvalue !== undefined ? { result: job.returnvalue } : {}),
    ...(job.failedReason ? (full ? { failed_reason: job.failedReason } : { failed: true as const, error_class: errorClass(job) }) : {}),
    created_at: iso(job.timestamp)!,
    ...(job.processedOn ? { processed_at: iso(job.processedOn) } : {}),
    ...(job.finishedOn ? { finished_at: iso(job.finishedOn) } : {}),
    ...(job.finishedOn && job.processedOn ? { duration_ms: job.finishedOn - job.processedOn } : {}),
  };
}

/** The class name heading the last stack trace BullMQ kept (`FooError: message…`), else `Error`. */
export function errorClass(job: Pick<Job, 'stacktrace'>): string {
  const last = job.stacktrace?.at(-1) ?? '';
  return /^([A-Z][A-Za-z0-9]{0,60}Error)\b/.exec(last)?.[1] ?? 'Error';
}

/** The `failed` event of a job stream as a caller may see it. */
export function failedEvent(reason: string | undefined, role: Role, cls = 'Error'): Record<string, unknown> {
  return role === 'reader' ? { failed: true, error_class: cls } : { reason };
}

export const enqueuedSchema = z.object({ id: z.string(), queue: z.string(), state: z.string() });
