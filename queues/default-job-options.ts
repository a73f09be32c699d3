import type { JobsOptions } from 'bullmq';

/**
 * Options every job gets unless its queue says otherwise: a few attempts with exponential
 * backoff, and bounded history so Redis stays small however many jobs run.
 */
export const DEFAULT_JOB_OPTIONS = {
  /** @defaultValue 3 */
  attempts: 3,
  /** 1 s, 2 s, 4 s… between attempts. */
  backoff: { type: 'exponential', delay: 1_000 },
  /** Keep the last 1000 completed jobs for a day. */
  removeOnComplete: { count: 1_000, age: 24 * 3600 },
  /** Keep the last 5000 failed jobs for a week: failures are what people come to look at. */
  removeOnFail: { count: 5_000, age: 7 * 24 * 3600 },
} satisfies JobsOptions;
