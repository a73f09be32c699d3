import { z } from 'zod';
import { evalSetIdSchema, MAX_EVAL_K, MAX_EVAL_QUERIES, suppliedItemsSchema } from '../shared/autotune/evalset.ts';
import { gridSchema, hnswConfigSchema } from '../shared/autotune/hnsw-config.ts';
import { entityName } from '../shared/storage/names.ts';
import { DEFAULT_JOB_OPTIONS } from './default-job-options.ts';
import { requireIndexForJob } from '../shared/vectors/embed-source-check.ts';
import { declareQueue } from './queue-declaration.ts';

export const autotuneRequest = z.object({
  index: entityName,
  evalset: evalSetIdSchema.optional().describe('an eval set of the index; default: one generated from its own chunks'),
  k: z.number().int().min(1).max(MAX_EVAL_K).default(10),
  min_recall: z.number().min(0).max(1).default(0.9),
  grid: gridSchema.optional().describe('configs to try; default: the earlier system\'s five plus M 8 and M 32'),
  queries: z.number().int().min(1).max(MAX_EVAL_QUERIES).default(100).describe('size of a generated eval set'),
});

const autotunePayload = z.object({
  kind: z.literal('autotune').default('autotune'),
  ...autotuneRequest.shape,
  step: z.enum(['plan', 'decide']).default('plan'),
  evalset_id: z.string().optional(),
  started_at: z.number().optional(),
});

/** A child of an autotune job: build and measure one config. */
export const trialPayload = z.object({
  kind: z.literal('trial'),
  index: entityName,
  bucket: z.string(),
  evalset: evalSetIdSchema,
  k: z.number().int().min(1),
  config: hnswConfigSchema,
  parent_tag: z.string(),
  by: z.enum(['autotune', 'agent', 'manual']),
});

/** Server-added: make an eval set (brute-force ground truth is CPU work for a worker, not the API). */
export const evalsetPayload = z.object({
  kind: z.literal('evalset'),
  index: entityName,
  id: evalSetIdSchema,
  k: z.number().int().min(1).max(MAX_EVAL_K),
  n: z.number().int().min(1).max(MAX_EVAL_QUERIES).optional(),
  texts: z.array(z.string().min(1).max(10_000)).max(MAX_EVAL_QUERIES).optional(),
  items: suppliedItemsSchema.optional(),
  seed: z.number().int().default(1),
});

/** The job scheduler that runs an index's tuning agent. */
export const agentSchedulerId = (index: string) => `agent-${index}`;

/** The opt-in tuning agent's tick (a job scheduler per index). */
export const agentPayload = z.object({
  kind: z.literal('agent'),
  index: entityName,
  evalset: evalSetIdSchema.optional(),
  k: z.number().int().min(1).max(MAX_EVAL_K).default(10),
  max_trials_per_hour: z.number().int().min(1).max(60).default(4),
  cooldown_ms: z.number().int().min(0).default(10 * 60_000),
});

export const autotuneJobPayload = z.union([autotunePayload, trialPayload, evalsetPayload, agentPayload]);

const trialSummary = z.object({ trial_id: z.string(), config: hnswConfigSchema, recall: z.number(), p50_ms: z.number(), p95_ms: z.number(), build_seconds: z.number() });

export const autotuneResult = z.union([
  z.object({
    index: z.string(), evalset: z.string(), trials: z.array(trialSummary), winner: trialSummary.nullable(),
    promoted: z.boolean(), reason: z.string(), generation: z.number().nullable(),
  }),
  trialSummary,
  z.object({ evalset: z.string(), n: z.number(), k: z.number() }),
  z.object({ ran: z.boolean(), reason: z.string(), trial: trialSummary.optional() }),
]);

export const autotune = declareQueue({
  name: 'autotune',
  description: 'Try HNSW configs on an eval set (trials fan out as child jobs), journal them, promote the winner that clears min_recall',
  payload: autotuneJobPayload,
  request: autotuneRequest,
  // a missing index is a 400 now, not a job failing later (a schedule: every run)
  seal: async (request, ctx) => (await requireIndexForJob(ctx.catalog, request.index), { kind: 'autotune' as const, ...request }),
  result: autotuneResult,
  jobOptions: DEFAULT_JOB_OPTIONS,
  // one autotune per index at a time: a second request while one runs gets that one back
  dedupeFor: (payload) => (payload.kind === 'autotune' ? `autotune-${payload.index}` : undefined),
});
