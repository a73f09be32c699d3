/**
 * The steps an embed or refresh job takes around its fan-out: plan (chunk the dataset, write
 * shard files, add shard children, park), then build (an HNSW generation from the shards'
 * vectors, in a worker thread, committed to the index manifest). The processors in
 * workers/processors/ pick the steps; the domain work is in shared/vectors/.
 */
import { UnrecoverableError, type Job } from 'bullmq';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Bucket } from '../shared/storage/buckets.ts';
import { embedShard, jobTag, readShard, shardFile, shardVectorsName, workDir, writeShards } from '../shared/vectors/embed-shards.ts';
import type { Chunk } from '../shared/vectors/chunking.ts';
import { providerFor } from '../shared/vectors/embedding/provider-cache.ts';
import { commitGeneration, nextGenerationId } from '../shared/vectors/index/generations.ts';
import { currentGeneration, generationDir, indexDir, readIndexManifest, type GenerationRecord, type IndexManifest, type StoredGeneration } from '../shared/vectors/index/index-manifest.ts';
import { buildInThread } from '../shared/vectors/index/run-build.ts';
import { NotFoundError } from '../shared/errors.ts';
import type { WorkerContext } from './context.ts';
import { fanOutShards, reportShardBatch } from './fan-out.ts';
import { jobProgress, progressStore } from './job-progress.ts';
import { indexLockKey } from '../shared/catalog/lock-keys.ts';
import type { IndexLease } from './index-lease.ts';


export async function requireIndex(bucket: Bucket, name: string): Promise<IndexManifest> {
  const m = await readIndexManifest(bucket.root, name);
  if (!m) throw new NotFoundError(`index ${JSON.stringify(name)} does not exist`);
  return m;
}

/** Writes the chunks as shard files and parks the job until every shard is embedded. */
export async function planShards(job: Job, token: string, ctx: WorkerContext, bucket: Bucket, index: IndexManifest, chunks: Chunk[], parentQueue: 'embed' | 'refresh'): Promise<void> {
  const work = workDir(indexDir(bucket.root, index.name), jobTag(job.queueName, job.id!));
  const shards = await writeShards(work, chunks, ctx.config.embedding.shardChunks);
  const startedAt = Date.now();
  await fanOutShards(
    job,
    token,
    progressStore(ctx),
    ctx.queue('embed'),
    Array.from({ length: shards }, (_, shard) => ({
      kind: 'shard' as const, index: index.name, bucket: bucket.name, parent_job: job.id!, parent_queue: parentQueue, started_at: startedAt,
      shard, shards, chunks_total: chunks.length,
      provider: index.embedding.provider, model: index.embedding.model,
    })),
  );
}

export interface ShardData {
  index: string;
  bucket: string;
  parent_job: string;
  parent_queue: 'embed' | 'refresh';
  started_at: number;
  shard: number;
  chunks_total: number;
  provider: string;
  model?: string | undefined;
}

/** One shard: embed its chunks into its own vectors part (skipped if a finished attempt wrote it). */
export async function runShard(job: Job, ctx: WorkerContext, s: ShardData): Promise<{ shard: number; rows: number; file: string }> {
  const bucket = ctx.buckets.get(s.bucket);
  const index = await requireIndex(bucket, s.index);
  const dir = indexDir(bucket.root, s.index);
  const tag = jobTag(s.parent_queue, s.parent_job);
  const file = shardVectorsName(tag, s.shard);
  const out = path.join(dir, file);
  const chunks = await readShard(shardFile(workDir(dir, tag), s.shard));
  if (await fs.access(out).then(() => true, () => false)) return { shard: s.shard, rows: chunks.length, file };
  const provider = providerFor({ provider: s.provider, ...(s.model ? { model: s.model } : {}) }, ctx.config);
  const parentQueue = ctx.queue(s.parent_queue);
  const outcome = await embedShard({
    chunks, provider, dims: index.embedding.dims, out, progress: jobProgress(job, progressStore(ctx)),
    // one call feeds every local thread a full sub-batch (remote providers split it into requests)
    batch: ctx.config.embedding.batchSize * ctx.config.embedding.localThreads,
    onBatch: (n) => reportShardBatch(progressStore(ctx), ctx.redis, ctx.config.queuePrefix, parentQueue, s.parent_job, n, s.chunks_total, s.started_at).catch(() => {}),
  });
  return { shard: s.shard, rows: outcome.rows, file };
}

export interface BuildOutcome {
  manifest: IndexManifest;
  generation: GenerationRecord;
}

/** What goes into a new generation: its files, and how its graph is made in a given directory. */
export interface GenerationPlan {
  vectorFiles: string[];
  tombstoneFiles: string[];
  sourceVersion: number | null;
  stats: IndexManifest['stats'];
  make: (outDir: string, id: number) => Promise<{ count: number; deleted: number; seconds: number; peak_rss_mb: number }>;
}

/**
 * Makes a generation (in a worker thread, see run-build.ts) and points the manifest at it; the
 * caller holds the index's generation lease (index-lease.ts), so the id it allocates is nobody
 * else's and the outcome names the generation this job committed. A retried job whose
 * generation was already committed (same files) gets that generation back instead of building another.
 */
export async function commitNewGeneration(ctx: WorkerContext, bucket: Bucket, name: string, plan: GenerationPlan, lease: IndexLease): Promise<BuildOutcome> {
  const manifest = await requireIndex(bucket, name);
  const current = currentGeneration(manifest);
  if (current && sameFiles(current.vectors_files, plan.vectorFiles) && sameFiles(current.tombstone_files, plan.tombstoneFiles)) return { manifest, generation: current };
  const id = await nextGenerationId(bucket.root, name, manifest);
  const made = await plan.make(generationDir(bucket.root, name, id), id);
  const generation: GenerationRecord = {
    id, created_at: new Date().toISOString(), vectors_files: plan.vectorFiles, tombstone_files: plan.tombstoneFiles,
    source_version: plan.sourceVersion, count: made.count, deleted: made.deleted,
    build: { seconds: made.seconds, m: manifest.hnsw.m, ef_construction: manifest.hnsw.ef_construction, peak_rss_mb: made.peak_rss_mb },
  };
  await lease.assertHeld();
  const committed = await commitGeneration({ redis: ctx.redis, lockKey: indexLockKey(ctx.config, name), root: bucket.root, name, generation, stats: plan.stats });
  await pruneVectorFiles(bucket, committed.manifest);
  return { manifest: committed.manifest, generation: committed.manifest.generations.find((g) => g.id === id) ?? generation };
}

/**
 * The generation this job already committed, when a retry resumes after its commit: the oldest
 * listed one reading a file the job wrote (its shards' vectors, its tombstones, its compaction).
 */
export function committedBy(manifest: IndexManifest, tag: string): StoredGeneration | undefined {
  const mine = (f: string) => {
    const base = path.basename(f);
    const rest = base.startsWith(`part-${tag}`) ? base.slice(`part-${tag}`.length) : undefined;
    return rest !== undefined && /^(?:-\d+|-compact)?\.parquet$/.test(rest);
  };
  return manifest.generations.find((g) => g.vectors_files.some(mine) || g.tombstone_files.some(mine));
}

/**
 * A job plans on the generation current when it took the lease and keeps the lease until its
 * commit, so that generation is still current at build time. If not, the lease was lost (a
 * manual retry of a job that had failed for good, say): its plan would drop the newer
 * generation's vectors, so the job stops and a new one must plan again.
 */
export function assertBaseGeneration(manifest: IndexManifest, base: number | undefined, what: string): void {
  if (base === undefined || (manifest.generation ?? 0) === base) return;
  throw new UnrecoverableError(
    `index ${manifest.name} moved from generation ${base} to ${manifest.generation} while this ${what} was not holding its lease; nothing was committed: run a new ${what}`,
  );
}

/** A fresh graph over every listed vector (no tombstones). */
export function fullBuild(job: Job, ctx: WorkerContext, bucket: Bucket, index: IndexManifest, vectorFiles: string[]): GenerationPlan['make'] {
  const dir = indexDir(bucket.root, index.name);
  const progress = jobProgress(job, progressStore(ctx));
  return async (outDir) => {
    const built = await buildInThread(
      { kind: 'build', options: { files: vectorFiles.map((f) => bucket.root.inside(dir, f)), dims: index.embedding.dims, m: index.hnsw.m, efConstruction: index.hnsw.ef_construction, efSearch: index.hnsw.ef_search, outDir } },
      (f, detail) => progress(0.9 + f * 0.09, { phase: 'index build', ...detail }),
    );
    return { ...built, deleted: 0 };
  };
}

function sameFiles(a: readonly string[] | undefined, b: readonly string[] | undefined): boolean {
  return JSON.stringify([...(a ?? [])].sort()) === JSON.stringify([...(b ?? [])].sort());
}

/** Vectors and tombstone parts no listed generation reads any more. */
async function pruneVectorFiles(bucket: Bucket, m: IndexManifest): Promise<void> {
  const dir = indexDir(bucket.root, m.name);
  const keep = new Set(m.generations.flatMap((g) => [...g.vectors_files, ...(g.tombstone_files ?? [])]).map((f) => path.normalize(f)));
  for (const sub of ['vectors', 'tombstones']) {
    const names = await fs.readdir(path.join(dir, sub)).catch(() => [] as string[]);
    for (const n of names) {
      const rel = path.join(sub, n);
      if (n.endsWith('.parquet') && !keep.has(rel)) await fs.rm(path.join(dir, rel), { force: true });
    }
  }
}

export async function removeWork(bucket: Bucket, name: string, job: Job): Promise<void> {
  await fs.rm(workDir(indexDir(bucket.root, name), jobTag(job.queueName, job.id!)), { recursive: true, force: true });
}

/** The bucket holding an index (indexes live beside their source dataset). */
export async function locateIndex(ctx: WorkerContext, name: string): Promise<{ bucket: Bucket; index: IndexManifest }> {
  for (const bucket of ctx.buckets.all()) {
    const index = await readIndexManifest(bucket.root, name);
    if (index) return { bucket, index };
  }
  throw new NotFoundError(`index ${JSON.stringify(name)} does not exist`);
}
