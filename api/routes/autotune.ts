import { z } from 'zod';
import { activateConfig } from '../../shared/autotune/activate.ts';
import { evalSetIdSchema, listEvalSets, MAX_EVAL_K, MAX_EVAL_QUERIES, newEvalSetId, readEvalSet, suppliedItemsSchema } from '../../shared/autotune/evalset.ts';
import { findTrial, listTrials, MAX_TRIAL_LIMIT, trialRecordSchema } from '../../shared/autotune/journal.ts';
import { promote, promotionRegistrySchema, readPromotion, rollback } from '../../shared/autotune/promotion.ts';
import { indexLeaseKey, indexLockKey } from '../../shared/catalog/lock-keys.ts';
import { NotFoundError } from '../../shared/errors.ts';
import { entityName } from '../../shared/storage/names.ts';
import { MASK } from '../../shared/sql/sql-text.ts';
import { caller } from '../auth.ts';
import type { ApiDeps } from '../deps.ts';
import { enqueuedSchema } from '../job-view.ts';
import type { RouteTable } from '../route-table.ts';
import { agentSchedulerId } from '../../queues/autotune.ts';
import { answerEnqueued } from './jobs.ts';

/** What an index falls back to when its last promotion is rolled back: the embed job's defaults. */
export const DEFAULT_HNSW = { m: 16, ef_construction: 200, ef_search: 100 };

const indexParam = z.object({ name: entityName });

const evalsetRequest = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('generated'),
    id: evalSetIdSchema.optional(),
    n: z.number().int().min(1).max(MAX_EVAL_QUERIES).default(100).describe('queries sampled from the index\'s own chunks'),
    k: z.number().int().min(1).max(MAX_EVAL_K).default(10),
    texts: z.array(z.string().min(1).max(10_000)).min(1).max(MAX_EVAL_QUERIES).optional().describe('queries to use instead of sampled chunks'),
    seed: z.number().int().default(1),
  }),
  z.object({ kind: z.literal('supplied'), id: evalSetIdSchema.optional(), k: z.number().int().min(1).max(MAX_EVAL_K).default(10), items: suppliedItemsSchema }),
]);

export function autotuneRoutes(table: RouteTable, deps: ApiDeps): void {
  const target = async (name: string) => {
    const { root } = await deps.search.locate(name);
    const lease = { key: indexLeaseKey(deps.config, name), waitMs: deps.config.indexLease.waitMs, ttlMs: deps.config.indexLease.ttlMs };
    return { root, name, redis: deps.redis, lockKey: indexLockKey(deps.config, name), lease };
  };

  table.add(
    {
      method: 'post', path: '/indexes/:name/evalsets', tag: 'autotune', role: 'writer',
      summary: 'Make an eval set: generated (ground truth = exact top-k by brute force) or supplied ({query, relevant_doc_ids}); a job, as ground truth is CPU work',
      params: indexParam, body: evalsetRequest,
      responses: { 202: { description: 'the eval set job; its result names the set', schema: enqueuedSchema } },
    },
    async (ctx, { params, body }) => {
      await deps.search.locate(params.name); // 404 now, not in the job
      const id = body.id ?? newEvalSetId();
      const payload = body.kind === 'supplied'
        ? { kind: 'evalset', index: params.name, id, k: body.k, items: body.items }
        : { kind: 'evalset', index: params.name, id, k: body.k, n: body.n, seed: body.seed, ...(body.texts ? { texts: body.texts } : {}) };
      await answerEnqueued(ctx, await deps.producer.addPayload('autotune', payload));
    },
  );

  table.add(
    { method: 'get', path: '/indexes/:name/evalsets', tag: 'autotune', role: 'reader', summary: 'Eval sets of an index', params: indexParam,
      responses: { 200: { description: 'summaries', schema: z.object({ evalsets: z.array(z.record(z.string(), z.unknown())) }) } } },
    async (ctx, { params }) => {
      const { root } = await deps.search.locate(params.name);
      ctx.body = { evalsets: await listEvalSets(root, params.name) };
    },
  );

  table.add(
    { method: 'get', path: '/indexes/:name/evalsets/:id', tag: 'autotune', role: 'reader', summary: 'One eval set: its queries and ground truth (vectors left out)',
      params: indexParam.extend({ id: evalSetIdSchema }), responses: { 200: { description: 'the eval set', schema: z.record(z.string(), z.unknown()) } } },
    async (ctx, { params }) => {
      const { root, index } = await deps.search.locate(params.name);
      const set = await readEvalSet(root, params.name, params.id);
      // masked like a search hit: query texts are chunk texts (or a person's words about them)
      const masked = await deps.search.maskedForCaller(index, caller(ctx));
      const text = masked.has(index.source.text_column);
      const ids = masked.has(index.source.id_column);
      ctx.body = {
        ...set,
        queries: set.queries.map(({ vector: _v, ...q }) => ({
          ...q,
          ...(text ? { query: MASK } : {}),
          ...(ids ? { relevant_doc_ids: q.relevant_doc_ids.map(() => MASK), ...(q.relevant_chunk_ids ? { relevant_chunk_ids: q.relevant_chunk_ids.map(() => MASK) } : {}) } : {}),
        })),
      };
    },
  );

  table.add(
    { method: 'get', path: '/indexes/:name/trials', tag: 'autotune', role: 'reader', summary: 'The trial journal, newest first: every trial by hand, autotune or agent',
      params: indexParam, query: z.object({ limit: z.coerce.number().int().min(1).max(MAX_TRIAL_LIMIT).default(100), before: z.string().max(300).optional() }),
      responses: { 200: { description: 'trials', schema: z.object({ trials: z.array(trialRecordSchema) }) } } },
    async (ctx, { params, query }) => {
      const { root } = await deps.search.locate(params.name);
      ctx.body = { trials: await listTrials(root, params.name, { limit: query.limit, ...(query.before ? { before: query.before } : {}) }) };
    },
  );

  table.add(
    { method: 'get', path: '/indexes/:name/promotion', tag: 'autotune', role: 'reader', summary: 'The promoted config: current and history (50 kept)',
      params: indexParam, responses: { 200: { description: 'the registry', schema: promotionRegistrySchema } } },
    async (ctx, { params }) => {
      const { root } = await deps.search.locate(params.name);
      ctx.body = await readPromotion(root, params.name);
    },
  );

  table.add(
    { method: 'post', path: '/indexes/:name/promote/:trial_id', tag: 'autotune', role: 'writer',
      summary: "Promote a trial's config: it becomes current (the previous goes to history) and every API instance serves its graph within seconds",
      params: indexParam.extend({ trial_id: z.string().min(1).max(300) }), responses: { 200: { description: 'the registry', schema: promotionRegistrySchema } } },
    async (ctx, { params }) => {
      const t = await target(params.name);
      const trial = await findTrial(t.root, params.name, params.trial_id);
      if (!trial) throw new NotFoundError(`index ${params.name} has no trial ${JSON.stringify(params.trial_id)} in its journal`);
      const { registry } = await promote({ ...t, trial: { trial_id: trial.trial_id, config: trial.config, built_dir: trial.built_dir }, by: 'manual', activate: activateConfig(t.root, params.name) });
      ctx.body = registry;
    },
  );

  table.add(
    { method: 'post', path: '/indexes/:name/rollback', tag: 'autotune', role: 'writer',
      summary: 'Undo the last promotion: the previous one becomes current again; with none left, the default config',
      params: indexParam, responses: { 200: { description: 'the registry', schema: promotionRegistrySchema } } },
    async (ctx, { params }) => {
      const t = await target(params.name);
      ctx.body = (await rollback({ ...t, by: 'manual', defaultConfig: DEFAULT_HNSW, activate: activateConfig(t.root, params.name) })).registry;
    },
  );

  table.add(
    { method: 'put', path: '/indexes/:name/agent', tag: 'autotune', role: 'writer',
      summary: 'Turn the tuning agent on (a repeatable job proposing one trial at a time around the champion) or off',
      params: indexParam,
      body: z.object({
        enabled: z.boolean(),
        every_ms: z.number().int().min(60_000).default(15 * 60_000),
        max_trials_per_hour: z.number().int().min(1).max(60).default(4),
        cooldown_ms: z.number().int().min(0).default(10 * 60_000),
        evalset: evalSetIdSchema.optional(),
        k: z.number().int().min(1).max(MAX_EVAL_K).default(10),
      }),
      responses: { 200: { description: 'the agent setting', schema: z.object({ index: z.string(), enabled: z.boolean(), next_run_at: z.string().nullable() }) } } },
    async (ctx, { params, body }) => {
      await deps.search.locate(params.name);
      const queue = deps.producer.queue('autotune');
      const id = agentSchedulerId(params.name);
      if (!body.enabled) {
        await queue.removeJobScheduler(id);
        ctx.body = { index: params.name, enabled: false, next_run_at: null };
        return;
      }
      const data = await deps.producer.preparePayload('autotune', {
        kind: 'agent', index: params.name, k: body.k, max_trials_per_hour: body.max_trials_per_hour, cooldown_ms: body.cooldown_ms, ...(body.evalset ? { evalset: body.evalset } : {}),
      });
      const job = await queue.upsertJobScheduler(id, { every: body.every_ms }, { name: 'agent', data });
      ctx.body = { index: params.name, enabled: true, next_run_at: job?.opts.delay !== undefined ? new Date(job.timestamp + (job.opts.delay ?? 0)).toISOString() : null };
    },
  );
}
