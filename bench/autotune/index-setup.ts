/**
 * The index the autotune job tunes, made the way an embed job leaves one but without embedding:
 * seeded mixture vectors (bench/vectors/mixture.ts, the generator of test/unit/hnsw-index.test.ts)
 * written with `writeVectorsParquet` into the index's vectors folder, an empty manifest
 * (`newIndexManifest` + `writeIndexManifest`), then a first generation (`buildGeneration` into
 * gen-1, `commitGeneration` under the index's lock). Its HNSW config is outside the default grid,
 * so promotion can never reuse gen-1 and always adopts a trial's graph.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { indexLockKey } from '../../shared/catalog/lock-keys.ts';
import { PRIMARY } from '../../shared/storage/buckets.ts';
import { commitGeneration } from '../../shared/vectors/index/generations.ts';
import { buildGeneration } from '../../shared/vectors/index/hnsw-build.ts';
import { generationDir, indexDir, newIndexManifest, writeIndexManifest } from '../../shared/vectors/index/index-manifest.ts';
import { writeVectorsParquet, type VectorRow } from '../../shared/vectors/index/vectors-parquet.ts';
import type { Api } from '../vectors/cluster.ts';
import { mixture, rowOf } from '../vectors/mixture.ts';

export const INDEX = 'autotune_bench_idx';
/** gen-1's config: not in DEFAULT_GRID (see the file comment). */
export const GEN1_HNSW = { m: 16, ef_construction: 100, ef_search: 50 };
/** Relative to the index directory, as an embed shard names its output. */
const VECTORS_FILE = path.join('vectors', 'part-bench-0.parquet');

export interface BenchIndex {
  dims: number;
  /** rows × dims, flat: what the raw side inserts, in the Parquet file's order. */
  vectors: Float32Array;
  /** chunk_id of row i (= label i in every graph built from the file). */
  chunkIds: string[];
  dir: string;
  vectorsFile: string;
  seconds: { generate: number; parquet: number; gen1Build: number };
  parquetBytes: number;
}

const since = (t0: number) => (performance.now() - t0) / 1000;

export async function createBenchIndex(api: Api, n: number, dims: number, seed: number): Promise<BenchIndex> {
  const { buckets, config, redis } = api.running.deps;
  const root = buckets.primary;
  let t0 = performance.now();
  const data = mixture(seed, n, dims);
  const chunkIds = Array.from({ length: n }, (_, i) => `doc${i}#0`);
  const generate = since(t0);

  const dir = indexDir(root, INDEX);
  const vectorsFile = path.join(dir, VECTORS_FILE);
  function* rows(): Generator<VectorRow> {
    for (let i = 0; i < n; i++) yield { doc_id: `doc${i}`, chunk_id: chunkIds[i]!, seq: 0, text: `passage ${i}`, content_hash: `h${i}`, vector: rowOf(data.vectors, dims, i) };
  }
  t0 = performance.now();
  await fs.mkdir(path.dirname(vectorsFile), { recursive: true });
  const written = await writeVectorsParquet(vectorsFile, rows(), dims);
  const parquet = since(t0);

  const now = new Date().toISOString();
  await writeIndexManifest(
    root,
    newIndexManifest(
      {
        name: INDEX, bucket: PRIMARY,
        source: { dataset: 'autotune_bench_texts', id_column: 'id', text_column: 'text' },
        embedding: { provider: 'bench', model: `gaussian-mixture-${dims}`, dims, normalized: true },
        chunking: { size: 1000, overlap: 150 }, hnsw: GEN1_HNSW, refresh_policy: 'manual',
      },
      now,
    ),
  );
  t0 = performance.now();
  const built = await buildGeneration({
    files: [vectorsFile], dims, m: GEN1_HNSW.m, efConstruction: GEN1_HNSW.ef_construction, efSearch: GEN1_HNSW.ef_search, outDir: generationDir(root, INDEX, 1),
  });
  await commitGeneration({
    redis, lockKey: indexLockKey(config, INDEX), root, name: INDEX,
    generation: {
      id: 1, created_at: new Date().toISOString(), vectors_files: [VECTORS_FILE], count: built.count, deleted: 0,
      build: { seconds: built.seconds, m: GEN1_HNSW.m, ef_construction: GEN1_HNSW.ef_construction, peak_rss_mb: built.peak_rss_mb },
    },
    stats: { docs: n, chunks: n },
  });
  const gen1Build = since(t0);
  return { dims, vectors: data.vectors, chunkIds, dir, vectorsFile, seconds: { generate, parquet, gen1Build }, parquetBytes: written.bytes };
}
