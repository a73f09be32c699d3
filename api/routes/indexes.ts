import { z } from 'zod';
import { agentSchedulerId } from '../../queues/autotune.ts';
import { unfinishedIndexJobs } from '../../queues/index-jobs.ts';
import { refreshSchedulerId } from '../../queues/refresh.ts';
import { purgeTrash } from '../../shared/catalog/dataset-admin.ts';
import { indexLeaseKey, indexLockKey } from '../../shared/catalog/lock-keys.ts';
import { trashIndex } from '../../shared/vectors/index/index-admin.ts';
import { indexManifestSchema } from '../../shared/vectors/index/index-manifest.ts';
import { listIndexes } from '../../shared/vectors/staleness.ts';
import { entityName } from '../../shared/storage/names.ts';
import { caller } from '../auth.ts';
import type { ApiDeps } from '../deps.ts';
import type { RouteTable } from '../route-table.ts';

const searchBody = z
  .object({
    query: z.string().min(1).max(10_000).optional(),
    vector: z.array(z.number()).min(1).max(100_000).optional(),
    k: z.number().int().min(1).max(1000).default(10),
    ef: z.number().int().min(1).max(10_000).optional(),
    filter: z.string().min(1).max(10_000).optional().describe("SQL boolean expression over the source dataset's columns, e.g. state = 'OH' AND years > 5"),
  })
  .refine((b) => (b.query === undefined) !== (b.vector === undefined), { message: 'give exactly one of query or vector', path: ['query'] });

const hit = z.object({ doc_id: z.string(), chunk_id: z.string(), score: z.number(), text: z.string() });

export function indexRoutes(table: RouteTable, deps: ApiDeps): void {
  table.add(
    {
      method: 'get', path: '/indexes', tag: 'vectors', role: 'reader', summary: 'Vector indexes: source, model, generation, stale flag',
      query: z.object({ stale: z.enum(['true', 'false']).optional().describe('true: only indexes whose dataset changed since their generation') }),
      responses: { 200: { description: 'indexes', schema: z.object({ indexes: z.array(indexManifestSchema.extend({ stale: z.boolean() })) }) } },
    },
    async (ctx, { query }) => {
      const all = (await listIndexes(deps.buckets)).map((m) => ({ ...m, stale: m.stale_since !== null }));
      ctx.body = { indexes: query.stale === undefined ? all : all.filter((m) => m.stale === (query.stale === 'true')) };
    },
  );

  table.add(
    {
      method: 'get', path: '/indexes/:name', tag: 'vectors', role: 'reader',
      summary: 'One index: source dataset and columns, provider, model, dims, chunking, HNSW config, generations, build stats, stale flag, bucket',
      params: z.object({ name: entityName }),
      responses: { 200: { description: 'the index manifest', schema: indexManifestSchema.extend({ stale: z.boolean() }) } },
    },
    async (ctx, { params }) => {
      const { index } = await deps.search.locate(params.name);
      ctx.body = { ...index, stale: index.stale_since !== null };
    },
  );

  table.add(
    {
      method: 'delete', path: '/indexes/:name', tag: 'vectors', role: 'writer',
      summary: "Delete an index: its manifest, generations and vectors move to the bucket's trash (kept LAKEHOUSE_TRASH_DAYS days); 409 while a job for it waits or runs",
      params: z.object({ name: entityName }),
      responses: { 200: { description: 'trashed', schema: z.object({ index: z.string(), trashed_to: z.string(), purged: z.array(z.string()) }) } },
    },
    async (ctx, { params }) => {
      const name = params.name;
      const locks = { redis: deps.redis, lockKey: indexLockKey(deps.config, name), leaseKey: indexLeaseKey(deps.config, name), leaseTtlMs: deps.config.indexLease.ttlMs };
      const { trashed_to } = await trashIndex(deps.buckets, locks, name, () => unfinishedIndexJobs((q) => deps.producer.queue(q), name));
      deps.search.forget(name);
      // its cron refresh and tuning agent would otherwise fail every run
      await deps.producer.queue('refresh').removeJobScheduler(refreshSchedulerId(name));
      await deps.producer.queue('autotune').removeJobScheduler(agentSchedulerId(name));
      const purged = await purgeTrash(deps.buckets, deps.config.trashDays);
      ctx.body = { index: name, trashed_to, purged };
    },
  );

  table.add(
    {
      method: 'post', path: '/indexes/:name/search', tag: 'vectors', role: 'reader',
      summary: 'Semantic search (query text or a vector), optionally hybrid with a SQL filter over the source dataset',
      params: z.object({ name: entityName }), body: searchBody,
      responses: {
        200: {
          description: 'hits, best first',
          schema: z.object({ hits: z.array(hit), took_ms: z.number(), generation: z.number(), plan: z.enum(['hnsw', 'exact', 'hnsw-filtered']), matched_docs: z.number().optional() }),
        },
      },
    },
    async (ctx, { params, body }) => {
      ctx.body = await deps.search.search(params.name, body, caller(ctx));
    },
  );
}
