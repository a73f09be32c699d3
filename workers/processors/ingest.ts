import { UnrecoverableError, type Job } from 'bullmq';
import fs from 'node:fs/promises';
import os from 'node:os';
import { ingestPayload, type ingestResult } from '../../queues/ingest.ts';
import { ingestFile } from '../../shared/ingest/ingest-file.ts';
import { DomainError } from '../../shared/errors.ts';
import type { z } from 'zod';
import { workerContext } from '../context.ts';
import { jobProgress } from '../job-progress.ts';

export default async function ingest(job: Job): Promise<z.output<typeof ingestResult>> {
  const payload = ingestPayload.parse(job.data);
  const ctx = workerContext();
  const source = ctx.root.inside(ctx.root.root, payload.source.path);
  try {
    const result = await ingestFile({
      root: ctx.root,
      redis: ctx.redis,
      lockKey: `${ctx.config.queuePrefix}:lock:dataset:${payload.dataset}`,
      dataset: payload.dataset,
      mode: payload.mode,
      file: source,
      jobId: job.id!,
      lineage: { kind: payload.source.kind, filename: payload.source.filename ?? null, host: os.hostname() },
      progress: jobProgress(job),
    });
    await fs.rm(source, { force: true }); // the staged upload is now in the catalog
    return result;
  } catch (err) {
    // Bad input will not get better on a retry; everything else (Redis, disk, a lock) might.
    if (err instanceof DomainError && err.status < 500) throw new UnrecoverableError(err.message);
    throw err;
  }
}
