import { UnrecoverableError, type Job } from 'bullmq';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { z } from 'zod';
import { refreshPayload, type refreshResult } from '../../queues/refresh.ts';
import { getDataset } from '../../shared/catalog/catalog.ts';
import { withEntityLock } from '../../shared/redis/entity-lock.ts';
import type { Bucket } from '../../shared/storage/buckets.ts';
import { writeFileAtomic } from '../../shared/storage/atomic-write.ts';
import { datasetChunks } from '../../shared/vectors/dataset-chunks.ts';
import { jobTag, shardVectorsName, workDir } from '../../shared/vectors/embed-shards.ts';
import { shouldRebuild } from '../../shared/vectors/index/hnsw-extend.ts';
import { currentGeneration, generationDir, indexDir, readIndexManifest, writeIndexManifest, type IndexManifest } from '../../shared/vectors/index/index-manifest.ts';
import { buildInThread } from '../../shared/vectors/index/run-build.ts';
import { compactVectors, writeTombstones } from '../../shared/vectors/index/tombstones.ts';
import { diffChunks, isEmptyDiff, liveChunkIds } from '../../shared/vectors/refresh-diff.ts';
import { agentSchedulerId } from '../../queues/autotune.ts';
import { shouldWake } from '../../shared/autotune/agent.ts';
import { isPermanent } from '../permanent-failure.ts';
import { assertNoFailedChildren } from '../fan-out.ts';
import { workerContext, type WorkerContext } from '../context.ts';
import { assertBaseGeneration, commitNewGeneration, committedBy, fullBuild, locateIndex, planShards, removeWork } from '../embed-steps.ts';
import { withIndexLease, type IndexLease } from '../index-lease.ts';
import { indexLockKey } from '../../shared/catalog/lock-keys.ts';
import { jobProgress, progressStore, setProgress } from '../job-progress.ts';
import { shardCount } from './embed.ts';

type Payload = z.output<typeof refreshPayload>;
type Result = z.output<typeof refreshResult>;

export default async function refresh(job: Job, token?: string): Promise<Result> {
  const ctx = await workerContext();
  try {
    return await run(job, token!, ctx, refreshPayload.parse(job.data));
  } catch (err) {
    if (isPermanent(err)) throw new UnrecoverableError((err as Error).message);
    throw err;
  }
}

const REMOVED_FILE = 'removed.json';

/**
 * The whole job, diff to commit, holds the index's generation lease (workers/index-lease.ts): the
 * diff is made against the generation current once the lease is held, and stays current until
 * this job commits, so concurrent refreshes (and embeds, promotions) land one after another and
 * none extends a stale generation.
 */
async function run(job: Job, token: string, ctx: WorkerContext, p: Payload): Promise<Result> {
  return withIndexLease(job, token, ctx, p, (payload, lease) => underLease(job, token, ctx, payload, lease));
}

async function underLease(job: Job, token: string, ctx: WorkerContext, p: Payload, lease: IndexLease): Promise<Result> {
  const { bucket, index } = await locateIndex(ctx, p.index);
  const current = currentGeneration(index);
  if (!current) throw new UnrecoverableError(`index ${p.index} has no generation yet: run an embed job first`);
  const dir = indexDir(bucket.root, index.name);
  const tag = jobTag(job.queueName, job.id!);
  const work = workDir(dir, tag);
  if (p.step === 'build') {
    const done = committedBy(index, tag);
    if (done) return finish(job, ctx, bucket, index, p, { generation: done.id, rebuilt: done.vectors_files.some((f) => f.endsWith(`part-${tag}-compact.parquet`)) });
    assertBaseGeneration(index, p.base_generation, 'refresh');
  }
  if (p.step === 'plan') {
    const started = Date.now();
    const { manifest: dataset } = await getDataset(ctx.buckets, index.source.dataset);
    // nothing happened to the dataset since this generation: answer without reading anything
    if (current.source_version === dataset.version && !index.stale_since) return noop(p, current.id, started);
    const live = await liveChunkIds(abs(bucket, dir, current.vectors_files), abs(bucket, dir, current.tombstone_files));
    const { chunks, docs } = await datasetChunks(ctx.buckets, dataset, index.source, index.chunking);
    const diff = diffChunks(live, chunks);
    if (isEmptyDiff(diff)) {
      await markUpToDate(ctx, bucket, index.name, dataset.version);
      return noop(p, current.id, started);
    }
    await fs.mkdir(work, { recursive: true });
    await writeFileAtomic(path.join(work, REMOVED_FILE), JSON.stringify(diff.removedChunkIds));
    p = {
      ...p, step: 'build', shards: diff.toEmbed.length === 0 ? 0 : shardCount(diff.toEmbed.length, ctx), embedded_chunks: diff.toEmbed.length,
      added: diff.added_docs, changed: diff.changed_docs, deleted: diff.deleted_docs, docs, source_version: dataset.version, started_at: started,
      base_generation: current.id,
    };
    await job.updateData(p);
    if (diff.toEmbed.length > 0) await planShards(job, token, ctx, bucket, index, diff.toEmbed, 'refresh');
  }
  await assertNoFailedChildren(job);
  const removed = JSON.parse(await fs.readFile(path.join(work, REMOVED_FILE), 'utf8')) as string[];
  const newFiles = Array.from({ length: p.shards ?? 0 }, (_, s) => shardVectorsName(jobTag(job.queueName, job.id!), s));
  const outcome = await nextGeneration(job, ctx, bucket, index, removed, newFiles, p, lease);
  return finish(job, ctx, bucket, index, p, outcome);
}

async function finish(job: Job, ctx: WorkerContext, bucket: Bucket, index: IndexManifest, p: Payload, outcome: { generation: number; rebuilt: boolean }): Promise<Result> {
  await removeWork(bucket, index.name, job);
  await wakeAgent(ctx, index, p.embedded_chunks ?? 0);
  await setProgress(progressStore(ctx), job, 100, { phase: 'done' });
  return {
    index: index.name, added: p.added ?? 0, changed: p.changed ?? 0, deleted: p.deleted ?? 0, embedded_chunks: p.embedded_chunks ?? 0,
    generation: outcome.generation, rebuilt: outcome.rebuilt, seconds: Math.round((Date.now() - (p.started_at ?? job.timestamp)) / 100) / 10,
  };
}

/**
 * The next generation: the previous graph extended with the new vectors and the removed chunks
 * marked deleted, or — once tombstones would pass the threshold — a fresh graph over the
 * compacted live vectors.
 */
async function nextGeneration(
  job: Job, ctx: WorkerContext, bucket: Bucket, index: IndexManifest, removed: string[], newFiles: string[], p: Payload, lease: IndexLease,
): Promise<{ generation: number; rebuilt: boolean }> {
  const current = currentGeneration(index)!;
  const dir = indexDir(bucket.root, index.name);
  const tag = jobTag(job.queueName, job.id!);
  const tomb = await writeTombstones(dir, tag, removed).catch(async (err) => {
    // a retried build finds its own tombstone file already written (they are never replaced)
    if ((err as NodeJS.ErrnoException).code === 'EEXIST' || /exists/.test((err as Error).message)) return { file: path.join('tombstones', `part-${tag}.parquet`) };
    throw err;
  });
  const vectorFiles = [...current.vectors_files, ...newFiles];
  const tombstoneFiles = [...current.tombstone_files, ...(tomb ? [tomb.file] : [])];
  const liveChunks = current.count - current.deleted - removed.length + (p.embedded_chunks ?? 0);
  const stats = { docs: p.docs ?? index.stats.docs, chunks: liveChunks };
  const progress = jobProgress(job, progressStore(ctx));
  if (shouldRebuild(current.count + (p.embedded_chunks ?? 0), current.deleted + removed.length)) {
    const compacted = path.join('vectors', `part-${tag}-compact.parquet`);
    await compactVectors({ files: abs(bucket, dir, vectorFiles), tombstoneFiles: abs(bucket, dir, tombstoneFiles), outFile: path.join(dir, compacted) });
    const made = await commitNewGeneration(ctx, bucket, index.name, {
      vectorFiles: [compacted], tombstoneFiles: [], sourceVersion: p.source_version ?? null, stats, make: fullBuild(job, ctx, bucket, index, [compacted]),
    }, lease);
    return { generation: made.generation.id, rebuilt: true };
  }
  const made = await commitNewGeneration(ctx, bucket, index.name, {
    vectorFiles, tombstoneFiles, sourceVersion: p.source_version ?? null, stats,
    make: async (outDir) =>
      buildInThread(
        { kind: 'extend', options: { prevDir: generationDir(bucket.root, index.name, current.id), newFiles: abs(bucket, dir, newFiles), deletedChunkIds: removed, dims: index.embedding.dims, outDir } },
        (f, detail) => progress(0.9 + f * 0.09, { phase: 'index update', ...detail }),
      ),
  }, lease);
  return { generation: made.generation.id, rebuilt: false };
}

function abs(bucket: Bucket, dir: string, files: readonly string[]): string[] {
  return files.map((f) => bucket.root.inside(dir, f));
}

function noop(p: Payload, generation: number, started: number): Result {
  return { index: p.index, added: 0, changed: 0, deleted: 0, embedded_chunks: 0, generation, rebuilt: false, seconds: (Date.now() - started) / 1000 };
}

/** The dataset changed but not what the index holds: record that the generation reflects it. */
async function markUpToDate(ctx: WorkerContext, bucket: Bucket, name: string, version: number): Promise<void> {
  await withEntityLock(ctx.redis, indexLockKey(ctx.config, name), async (lock) => {
    const m = (await readIndexManifest(bucket.root, name))!;
    const generations = m.generations.map((g) => (g.id === m.generation ? { ...g, source_version: version } : g));
    await lock.assertHeld();
    await writeIndexManifest(bucket.root, { ...m, generations, stale_since: null, version: m.version + 1, updated_at: new Date().toISOString() });
  });
}

/**
 * A refresh that appended many new vectors (a tenth of the index, or 1000) wakes the index's
 * tuning agent, if it has one, instead of waiting for its next scheduled tick.
 */
async function wakeAgent(ctx: WorkerContext, index: IndexManifest, added: number): Promise<void> {
  if (!shouldWake({ newVectorsSinceLastTrial: added, threshold: Math.max(1, Math.min(1000, Math.ceil(index.stats.chunks / 10))) })) return;
  const queue = ctx.queue('autotune');
  const scheduler = await queue.getJobScheduler(agentSchedulerId(index.name));
  if (scheduler?.template?.data) await queue.add('agent', scheduler.template.data);
}
