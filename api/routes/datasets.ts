import fs from 'node:fs/promises';
import { z } from 'zod';
import { manifestSchema } from '../../shared/catalog/manifest.ts';
import { getDataset, listDatasets } from '../../shared/catalog/catalog.ts';
import { entityName } from '../../shared/storage/names.ts';
import type { ApiDeps } from '../deps.ts';
import { enqueuedSchema } from '../job-view.ts';
import type { RouteTable } from '../route-table.ts';
import { stageUpload } from '../upload.ts';
import { answerEnqueued, idempotencyKey, jobIdSchema } from './jobs.ts';

const datasetSummary = z.object({
  name: z.string(),
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
      const manifests = await listDatasets(deps.root);
      ctx.body = {
        datasets: manifests.map((m) => ({
          name: m.name, version: m.version, rows: m.rows, bytes: m.bytes, parts: m.parts.length, columns: m.schema, updated_at: m.updated_at,
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
      ctx.body = await getDataset(deps.root, params.name);
    },
  );

  table.add(
    {
      method: 'post', path: '/datasets/:name/upload', tag: 'datasets', role: 'writer',
      summary: 'Upload a CSV file (streamed to the staging area) and enqueue its ingest',
      params: z.object({ name: entityName }),
      query: z.object({
        mode: z.enum(['replace', 'append']).default('append'),
        format: z.literal('csv').default('csv'),
        jobId: jobIdSchema.optional(),
      }),
      rawBody: { contentType: 'text/csv', description: `the file's bytes; limited by LAKEHOUSE_UPLOAD_MAX_BYTES` },
      responses: { 202: { description: 'the ingest job', schema: enqueuedSchema } },
    },
    async (ctx, { params, query }) => {
      const jobId = idempotencyKey(ctx, query.jobId);
      const earlier = jobId ? await deps.producer.queue('ingest').getJob(jobId) : undefined;
      if (earlier) return answerEnqueued(ctx, earlier); // a repeated upload: the first one stands
      const staged = await stageUpload(ctx, deps.root, deps.config.uploadMaxBytes, query.format);
      const job = await deps.producer
        .add('ingest', {
          payload: { dataset: params.name, mode: query.mode, format: query.format, source: { kind: 'upload', path: staged.relative, bytes: staged.bytes } },
          jobId,
        })
        .catch(async (err) => {
          await fs.rm(staged.absolute, { force: true });
          throw err;
        });
      // Two uploads with one key racing: add() returns a job built from *our* data even when the
      // other won, so read back what Redis holds before deciding whose file is used.
      const stored = jobId ? await deps.producer.queue('ingest').getJob(jobId) : job;
      if ((stored?.data as { source?: { path?: string } } | undefined)?.source?.path !== staged.relative) {
        await fs.rm(staged.absolute, { force: true });
      }
      await answerEnqueued(ctx, job);
    },
  );
}
