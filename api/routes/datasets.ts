import { z } from 'zod';
import { manifestSchema, maskedColumns, type Manifest } from '../../shared/catalog/manifest.ts';
import { getDataset, listDatasets } from '../../shared/catalog/catalog.ts';
import { purgeTrash, setPublicColumns, trashDataset } from '../../shared/catalog/dataset-admin.ts';
import { FILE_FORMATS } from '../../shared/ingest/formats/file-format.ts';
import { entityName } from '../../shared/storage/names.ts';
import { datasetLockKey } from '../../shared/catalog/lock-keys.ts';
import { caller } from '../auth.ts';
import type { ApiDeps } from '../deps.ts';
import { enqueuedSchema } from '../job-view.ts';
import type { RouteTable } from '../route-table.ts';
import { discardStaged, stageUpload } from '../upload.ts';
import { answerEnqueued, idempotencyKey, jobIdSchema } from './jobs.ts';
import { queryResultSchema } from './query.ts';

const datasetSummary = z.object({
  name: z.string(),
  bucket: z.string(),
  version: z.number().int(),
  rows: z.number().int(),
  bytes: z.number().int(),
  parts: z.number().int(),
  columns: z.array(z.object({ name: z.string(), type: z.string() })),
  updated_at: z.string(),
});

export function datasetRoutes(table: RouteTable, deps: ApiDeps): void {
  table.add(
    {
      method: 'get', path: '/datasets', tag: 'datasets', role: 'reader', summary: 'Every dataset in the catalog',
      responses: { 200: { description: 'datasets', schema: z.object({ datasets: z.array(datasetSummary) }) } },
    },
    async (ctx) => {
      const manifests = await listDatasets(deps.buckets);
      ctx.body = {
        datasets: manifests.map((m) => ({
          name: m.name, bucket: m.bucket, version: m.version, rows: m.rows, bytes: m.bytes, parts: m.parts.length, columns: m.schema, updated_at: m.updated_at,
        })),
      };
    },
  );

  table.add(
    {
      method: 'get', path: '/datasets/:name', tag: 'datasets', role: 'reader', summary: 'A dataset manifest: version, schema, parts and their lineage',
      params: z.object({ name: entityName }), responses: { 200: { description: 'the manifest', schema: manifestSchema } },
    },
    async (ctx, { params }) => {
      const { manifest } = await getDataset(deps.buckets, params.name);
      ctx.body = caller(ctx).role === 'reader' ? readerManifest(manifest) : manifest;
    },
  );

  table.add(
    {
      method: 'post', path: '/datasets/:name/upload', tag: 'datasets', role: 'writer',
      summary: 'Upload a file (CSV, TSV, JSON, NDJSON, Parquet, text, Markdown, PDF; streamed to the staging area) and enqueue its ingest',
      params: z.object({ name: entityName }),
      query: z.object({
        mode: z.enum(['replace', 'append']).default('append'),
        format: z.enum(['auto', ...FILE_FORMATS]).default('auto'),
        filename: z.string().max(255).optional().describe('original file name: helps format detection and lineage'),
        split_markdown: z.enum(['true', 'false']).default('false').transform((v) => v === 'true'),
        on_error: z
          .enum(['fail', 'skip'])
          .default('fail')
          .describe('CSV/TSV bad records: fail the job naming the first bad lines, or skip them into the dataset <name>_rejects (see the ingest job)'),
        bucket: z.string().optional(),
        jobId: jobIdSchema.optional(),
      }),
      rawBody: { contentType: 'application/octet-stream', description: `the file's bytes; limited by LAKEHOUSE_UPLOAD_MAX_BYTES` },
      responses: { 202: { description: 'the ingest job', schema: enqueuedSchema } },
    },
    async (ctx, { params, query }) => {
      const jobId = idempotencyKey(ctx, query.jobId);
      const earlier = jobId ? await deps.producer.queue('ingest').getJob(jobId) : undefined;
      if (earlier) return answerEnqueued(ctx, earlier); // a repeated upload: the first one stands
      if (query.bucket !== undefined) deps.buckets.get(query.bucket); // 400 naming the buckets before reading the body
      const staged = await stageUpload(ctx, deps.root, deps.config.uploadMaxBytes, deps.config.http.uploadIdleTimeoutMs);
      const job = await deps.producer
        .add('ingest', {
          payload: {
            dataset: params.name, mode: query.mode, format: query.format, split_markdown: query.split_markdown, on_error: query.on_error,
            ...(query.bucket ? { bucket: query.bucket } : {}),
            source: { kind: 'upload', path: staged.relative, bytes: staged.bytes, ...(query.filename ? { filename: query.filename } : {}) },
          },
          jobId,
        })
        .catch(async (err) => {
          await discardStaged(staged);
          throw err;
        });
      // Two uploads with one key racing: add() returns a job built from *our* data even when the
      // other won, so read back what Redis holds before deciding whose file is used.
      const stored = jobId ? await deps.producer.queue('ingest').getJob(jobId) : job;
      if ((stored?.data as { source?: { path?: string } } | undefined)?.source?.path !== staged.relative) {
        await discardStaged(staged);
      }
      await answerEnqueued(ctx, job);
    },
  );

  const lock = (name: string) => ({ redis: deps.redis, lockKey: datasetLockKey(deps.config, name) });

  table.add(
    {
      method: 'get', path: '/datasets/:name/preview', tag: 'datasets', role: 'reader',
      summary: 'The first rows of a dataset (PII columns masked for readers)',
      params: z.object({ name: entityName }),
      query: z.object({ limit: z.coerce.number().int().min(1).max(1000).default(20) }),
      responses: { 200: { description: 'rows', schema: queryResultSchema } },
    },
    async (ctx, { params, query }) => {
      await getDataset(deps.buckets, params.name); // 404 before SQL says "table does not exist"
      ctx.body = await deps.sql.query(`SELECT * FROM "${params.name}" LIMIT ${query.limit}`, caller(ctx), query.limit);
    },
  );

  table.add(
    {
      method: 'put', path: '/datasets/:name/public-columns', tag: 'datasets', role: 'admin',
      summary: 'Admin decision: PII-flagged columns readers may see unmasked (replaces the list)',
      params: z.object({ name: entityName }),
      body: z.object({ columns: z.array(z.string().min(1)).max(1000) }),
      responses: { 200: { description: 'the updated manifest', schema: manifestSchema } },
    },
    async (ctx, { params, body }) => {
      ctx.body = await setPublicColumns(deps.buckets, lock(params.name), params.name, body.columns);
    },
  );

  table.add(
    {
      method: 'delete', path: '/datasets/:name', tag: 'datasets', role: 'admin',
      summary: `Delete a dataset: its files move to the bucket's trash, kept LAKEHOUSE_TRASH_DAYS days`,
      params: z.object({ name: entityName }),
      responses: { 200: { description: 'trashed', schema: z.object({ dataset: z.string(), trashed_to: z.string(), purged: z.array(z.string()) }) } },
    },
    async (ctx, { params }) => {
      const { trashed_to } = await trashDataset(deps.buckets, lock(params.name), params.name);
      const purged = await purgeTrash(deps.buckets, deps.config.trashDays);
      ctx.body = { dataset: params.name, trashed_to, purged };
    },
  );
}

/**
 * A manifest as readers see it (SECURITY.md, "Roles"): without the lineage's DSN and source
 * statement (a writer's SQL may quote values), and without the high-water mark of an incremental
 * column that is masked (it is one of the column's values).
 */
function readerManifest(manifest: Manifest): Manifest {
  const masked = new Set(maskedColumns(manifest));
  return {
    ...manifest,
    parts: manifest.parts.map((part) => {
      const { dsn: _dsn, statement: _statement, ...lineage } = part.lineage;
      return { ...part, lineage };
    }),
    ...(manifest.incremental && masked.has(manifest.incremental.column)
      ? { incremental: { ...manifest.incremental, high_water_mark: null } }
      : {}),
  };
}
