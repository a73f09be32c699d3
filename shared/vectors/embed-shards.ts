/**
 * The unit of embedding fan-out: a shard file of chunks (JSON lines, in the index's work folder
 * on the shared data root) that any worker can embed into one vectors Parquet part. Names are
 * deterministic per job and shard, so a retried shard overwrites its own output and nothing else.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { ProgressFn } from '../progress.ts';
import { writeFileAtomic } from '../storage/atomic-write.ts';
import type { Chunk } from './chunking.ts';
import type { EmbeddingProvider } from './embedding/provider.ts';
import { writeVectorsParquet, type VectorRow } from './index/vectors-parquet.ts';

/**
 * Names a job's files: queue and id together, as job ids are only unique within a queue (an
 * embed job and a refresh job may both be "1").
 */
export function jobTag(queue: string, jobId: string): string {
  return safe(`${queue}-${jobId}`);
}

export function workDir(indexDirPath: string, tag: string): string {
  return path.join(indexDirPath, 'work', tag);
}

export function shardFile(work: string, shard: number): string {
  return path.join(work, `shard-${shard}.jsonl`);
}

/** The vectors part a shard writes, relative to the index directory. */
export function shardVectorsName(tag: string, shard: number): string {
  return path.join('vectors', `part-${tag}-${shard}.parquet`);
}

const safe = (s: string) => s.replace(/[^A-Za-z0-9_-]/g, '_');

export async function writeShards(work: string, chunks: readonly Chunk[], perShard: number): Promise<number> {
  await fs.mkdir(work, { recursive: true });
  const shards = Math.max(1, Math.ceil(chunks.length / perShard));
  for (let s = 0; s < shards; s++) {
    const lines = chunks.slice(s * perShard, (s + 1) * perShard).map((c) => JSON.stringify(c));
    await writeFileAtomic(shardFile(work, s), lines.join('\n') + (lines.length ? '\n' : ''));
  }
  return shards;
}

export async function readShard(file: string): Promise<Chunk[]> {
  const text = await fs.readFile(file, 'utf8');
  return text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Chunk);
}

export interface ShardOutcome {
  rows: number;
  seconds: number;
}

/**
 * Embeds a shard's chunks in batches and writes them as one vectors part. `onBatch` hears how
 * many chunks each finished batch held (for the parent's cluster-wide progress).
 */
export async function embedShard(opts: {
  chunks: readonly Chunk[];
  provider: EmbeddingProvider;
  dims: number;
  out: string;
  batch: number;
  progress: ProgressFn;
  onBatch?: (n: number) => Promise<void>;
}): Promise<ShardOutcome> {
  const started = performance.now();
  const rows: VectorRow[] = [];
  for (let i = 0; i < opts.chunks.length; i += opts.batch) {
    const batch = opts.chunks.slice(i, i + opts.batch);
    const vectors = await opts.provider.embed(batch.map((c) => c.text));
    batch.forEach((c, j) => rows.push({ ...c, vector: vectors[j]! }));
    const seconds = (performance.now() - started) / 1000;
    await opts.progress(rows.length / opts.chunks.length, { chunks_done: rows.length, chunks_total: opts.chunks.length, chunks_per_s: Math.round(rows.length / Math.max(seconds, 0.001)) });
    await opts.onBatch?.(batch.length);
  }
  await fs.mkdir(path.dirname(opts.out), { recursive: true });
  await writeVectorsParquet(opts.out, rows, opts.dims);
  return { rows: rows.length, seconds: (performance.now() - started) / 1000 };
}
