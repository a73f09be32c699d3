import { UnrecoverableError, type Job } from 'bullmq';
import type { z } from 'zod';
import { embedJobPayload, type embedResult } from '../../queues/embed.ts';
import { getDataset } from '../../shared/catalog/catalog.ts';
import { datasetChunks } from '../../shared/vectors/dataset-chunks.ts';
import { providerFor } from '../../shared/vectors/embedding/provider-cache.ts';
import { ensureIndex } from '../../shared/vectors/index-setup.ts';
import { jobTag, shardVectorsName } from '../../shared/vectors/embed-shards.ts';
import { isPermanent } from '../permanent-failure.ts';
import { assertNoFailedChildren } from '../fan-out.ts';
import { workerContext, type WorkerContext } from '../context.ts';
import { assertBaseGeneration, commitNewGeneration, committedBy, fullBuild, planShards, removeWork, requireIndex, runShard } from '../embed-steps.ts';
import { withIndexLease, type IndexLease } from '../index-lease.ts';
import { removeUnbuiltIndex } from '../../shared/vectors/index/index-admin.ts';
import { refreshSchedulerId } from '../../queues/refresh.ts';
import { indexLockKey } from '../../shared/catalog/lock-keys.ts';
import { syncRefreshSchedule } from '../refresh-schedule.ts';
import { progressStore, setProgress } from '../job-progress.ts';

type Payload = z.output<typeof embedJobPayload>;
type EmbedPayload = Extract<Payload, { kind: 'embed' }>;

/** The `embed` queue: `embed` jobs orchestrate a full (re)build; `shard` jobs embed one shard of any parent. */
export default async function embed(job: Job, token?: string): Promise<z.output<typeof embedResult>> {
  const ctx = await workerContext();
  const payload = embedJobPayload.parse(job.data);
  try {
    if (payload.kind === 'shard') return await runShard(job, ctx, payload);
    return await orchestrate(job, token!, ctx, payload);
  } catch (err) {
    // bad input (unknown dataset or column, a model mismatch) will not get better on a retry
    if (isPermanent(err)) throw new UnrecoverableError((err as Error).message);
    throw err;
  }
}

/**
 * The whole job, plan to commit, holds the index's generation lease (workers/index-lease.ts):
 * another embed, refresh or promotion of the index waits, and this build's base stays current.
 */
async function orchestrate(job: Job, token: string, ctx: WorkerContext, p: EmbedPayload) {
  return withIndexLease(job, token, ctx, p, (payload, lease) => underLease(job, token, ctx, payload, lease), () => dropUnbuilt(ctx, p.index));
}

/**
 * A first build that failed for good leaves no index behind: the name is free again (for the
 * right columns, say) and no refresh schedule runs against nothing. Still under the lease.
 */
async function dropUnbuilt(ctx: WorkerContext, index: string): Promise<void> {
  try {
    if (await removeUnbuiltIndex(ctx.buckets, ctx.redis, indexLockKey(ctx.config, index), index)) {
      await ctx.queue('refresh').removeJobScheduler(refreshSchedulerId(index));
      ctx.log.info({ index }, 'first build failed: the unbuilt index was removed');
    }
  } catch (e) {
    ctx.log.warn({ err: e, index }, 'could not remove the unbuilt index after its first build failed');
  }
}

async function underLease(job: Job, token: string, ctx: WorkerContext, p: EmbedPayload, lease: IndexLease) {
  const { manifest: dataset, bucket } = await getDataset(ctx.buckets, p.dataset);
  if (p.step === 'plan') {
    const spec = { provider: p.provider, ...(p.model ? { model: p.model } : {}) };
    const index = await ensureIndex({
      root: bucket.root, redis: ctx.redis, lockKey: indexLockKey(ctx.config, p.index), spec, providers: ctx.config.embedding.providers,
      identity: () => providerFor(spec, ctx.config).identity(),
      def: {
        name: p.index, bucket: bucket.name,
        source: { dataset: p.dataset, id_column: p.id_column, text_column: p.text_column },
        chunking: { size: p.chunk_size, overlap: p.overlap }, hnsw: p.hnsw, refresh_policy: p.refresh_policy,
      },
    });
    await syncRefreshSchedule(ctx, index);
    await setProgress(progressStore(ctx), job, 1, { phase: 'chunking' });
    const { chunks, docs } = await datasetChunks(ctx.buckets, dataset, p, { size: p.chunk_size, overlap: p.overlap });
    if (chunks.length === 0) throw new UnrecoverableError(`dataset ${p.dataset} has no text in column ${p.text_column} to embed`);
    // remembered before parking: the job resumes in the build step, maybe on another worker
    p = {
      ...p, step: 'build', shards: shardCount(chunks.length, ctx), chunks: chunks.length, docs, source_version: dataset.version, started_at: Date.now(),
      base_generation: index.generation ?? 0,
    };
    await job.updateData(p);
    await planShards(job, token, ctx, bucket, index, chunks, 'embed');
  }
  await assertNoFailedChildren(job);
  const files = Array.from({ length: p.shards! }, (_, s) => shardVectorsName(jobTag(job.queueName, job.id!), s));
  const index = await requireIndex(bucket, p.index);
  const done = committedBy(index, jobTag(job.queueName, job.id!));
  if (!done) assertBaseGeneration(index, p.base_generation, 'embed');
  const { manifest, generation } = done ? { manifest: index, generation: done } : await commitNewGeneration(ctx, bucket, p.index, {
    vectorFiles: files, tombstoneFiles: [], sourceVersion: p.source_version ?? null,
    stats: { docs: p.docs ?? 0, chunks: p.chunks ?? 0 },
    make: fullBuild(job, ctx, bucket, index, files),
  }, lease);
  await removeWork(bucket, p.index, job);
  await setProgress(progressStore(ctx), job, 100, { phase: 'done', chunks_done: p.chunks ?? 0, chunks_total: p.chunks ?? 0 });
  return {
    index: p.index, generation: generation.id, docs: manifest.stats.docs, chunks: manifest.stats.chunks, dims: manifest.embedding.dims,
    seconds: Math.round((Date.now() - (p.started_at ?? job.timestamp)) / 100) / 10,
  };
}

export function shardCount(chunks: number, ctx: WorkerContext): number {
  return Math.max(1, Math.ceil(chunks / ctx.config.embedding.shardChunks));
}
