import type { Job, JobState } from 'bullmq';
import { z } from 'zod';
import type { Role } from '../shared/config.ts';
import { metaOf, progressNumber, type JobProgressMeta } from '../queues/job-progress-store.ts';

export const jobStates = ['waiting', 'active', 'completed', 'failed', 'delayed', 'prioritized', 'waiting-children'] as const;

export const jobViewSchema = z.object({
  id: z.string(),
  queue: z.string(),
  state: z.string(),
  progress: z.number().min(0).max(100).describe('percent done, 0–100 (100 once completed); the number Bull Board draws'),
  progress_detail: z
    .record(z.string(), z.union([z.number(), z.string()]))
    .optional()
    .describe('what the job last reported beside its percent: phase, counts, rates (…_per_s), eta_s; counts and rates only, never values of the data'),
  attempts: z.number().int().describe('attempts made so far'),
  max_attempts: z.number().int(),
  data: z.unknown().optional().describe('writers and admins only: the (sealed, redacted) payload'),
  result: z.unknown().optional(),
  failed_reason: z.string().optional().describe('writers and admins only: the error message'),
  failed: z.literal(true).optional().describe('readers: the job failed (its reason is for writers and admins)'),
  error_class: z.string().optional().describe('readers: the kind of error, e.g. UnrecoverableError, without its message'),
  created_at: z.string(),
  started_at: z.string().optional().describe('when the job first started; a flow parent keeps it across its resume after the children'),
  processed_at: z.string().optional().describe('when the job last started (a flow parent: its resume)'),
  finished_at: z.string().optional(),
  duration_ms: z.number().optional().describe('finished_at − started_at'),
});

export type JobView = z.infer<typeof jobViewSchema>;

const iso = (ms: number | undefined) => (ms ? new Date(ms).toISOString() : undefined);

/**
 * What a caller may see of a job. A payload can hold source SQL and redacted DSNs, and an error
 * message can quote values of the rows it choked on, so readers get neither: only that the job
 * failed and the error's class name.
 */
export function jobView(job: Job, state: JobState | 'unknown' | string, role: Role, stored?: JobProgressMeta): JobView {
  const full = role !== 'reader';
  const meta = metaOf(stored, job.timestamp);
  const started = Math.min(meta.firstStartedAt ?? Infinity, job.processedOn ?? Infinity);
  const startedAt = Number.isFinite(started) ? started : undefined;
  return {
    id: job.id!,
    queue: job.queueName,
    state,
    progress: progressNumber(job.progress, state),
    ...(meta.detail && Object.keys(meta.detail).length > 0 ? { progress_detail: meta.detail } : {}),
    attempts: job.attemptsMade,
    max_attempts: job.opts.attempts ?? 1,
    ...(full ? { data: job.data } : {}),
    ...(job.returnvalue !== null && job.returnvalue !== undefined ? { result: job.returnvalue } : {}),
    ...(job.failedReason ? (full ? { failed_reason: job.failedReason } : { failed: true as const, error_class: errorClass(job) }) : {}),
    created_at: iso(job.timestamp)!,
    ...(startedAt ? { started_at: iso(startedAt) } : {}),
    ...(job.processedOn ? { processed_at: iso(job.processedOn) } : {}),
    ...(job.finishedOn ? { finished_at: iso(job.finishedOn) } : {}),
    ...(job.finishedOn && startedAt ? { duration_ms: job.finishedOn - startedAt } : {}),
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
