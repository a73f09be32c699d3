import { z } from 'zod';
import { entityName } from '../shared/storage/names.ts';
import { DEFAULT_JOB_OPTIONS } from './default-job-options.ts';
import { requireIndexForJob } from '../shared/vectors/embed-source-check.ts';
import { declareQueue } from './queue-declaration.ts';

/** The job scheduler of an index whose refresh policy is a cron (workers/refresh-schedule.ts). */
export const refreshSchedulerId = (index: string) => `refresh-${index}`;

export const refreshRequest = z.object({ index: entityName });

export const refreshPayload = refreshRequest.extend({
  step: z.enum(['plan', 'build']).default('plan'),
  /** Remembered between the steps (the job waits for its shards in between). */
  shards: z.number().int().min(0).optional(),
  embedded_chunks: z.number().int().optional(),
  added: z.number().int().optional(),
  changed: z.number().int().optional(),
  deleted: z.number().int().optional(),
  docs: z.number().int().optional(),
  source_version: z.number().int().optional(),
  started_at: z.number().optional(),
  /** The generation the diff was made against, under the index's lease. */
  base_generation: z.number().int().min(0).optional(),
  /** When the job first found the index's lease busy (workers/index-lease.ts). */
  lease_waiting_since: z.number().optional(),
});

export const refreshResult = z.object({
  index: z.string(),
  added: z.number().int().describe('documents new since the last generation'),
  changed: z.number().int().describe('documents whose text changed'),
  deleted: z.number().int().describe('documents gone from the dataset'),
  embedded_chunks: z.number().int(),
  generation: z.number().int(),
  rebuilt: z.boolean().describe('tombstones passed the threshold: a fresh graph was built'),
  seconds: z.number(),
});

export const refresh = declareQueue({
  name: 'refresh',
  description: "Bring a vector index up to date with its dataset: embed only new and changed text, tombstone what is gone",
  payload: refreshPayload,
  request: refreshRequest,
  // a missing index is a 400 now, not a job failing later (a schedule: every run)
  seal: async (request, ctx) => (await requireIndexForJob(ctx.catalog, request.index), request),
  result: refreshResult,
  jobOptions: DEFAULT_JOB_OPTIONS,
});
