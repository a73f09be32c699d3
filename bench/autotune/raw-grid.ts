/**
 * Raw: the same grid run by hand with plain hnswlib-node in this process, one config after the
 * other, as someone would without our job: for each config `new HierarchicalNSW('cosine', d)`,
 * `initIndex(n, m, ef_construction, 100)` (the trials' level seed), `addPoint(Array.from(v), i)`
 * for the vectors held in memory in the Parquet file's order, `setEf(ef_search)`, one warm-up pass
 * over the queries and one timed pass (per-query `searchKnn(q, k)`, as runTrial measures), then
 * recall@k against the eval set's ground truth. Queries and ground truth are the job's eval set,
 * read from its JSON file before the clock starts; no graph is written to disk.
 */
import hnswlib from 'hnswlib-node';
import type { EvalSet } from '../../shared/autotune/evalset.ts';
import type { HnswConfig } from '../../shared/autotune/hnsw-config.ts';
import { rowOf } from '../vectors/mixture.ts';

/** trial.ts TRIAL_SEED, written out: the raw side does not import the product. */
const LEVEL_SEED = 100;

export interface RawTrial {
  config: HnswConfig;
  recall: number;
  p50_ms: number;
  p95_ms: number;
  /** initIndex + the addPoint loop. */
  build_seconds: number;
  /** setEf, the warm-up pass, the timed pass and recall. */
  search_seconds: number;
}

export interface RawRun {
  /** The whole grid, first initIndex to the last recall. */
  seconds: number;
  trials: RawTrial[];
}

const since = (t0: number) => (performance.now() - t0) / 1000;

/** Nearest rank, as trial.ts computes it. */
function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export function runRawGrid(grid: readonly HnswConfig[], vectors: Float32Array, dims: number, chunkIds: readonly string[], evalset: EvalSet, k: number): RawRun {
  const n = chunkIds.length;
  const queries = evalset.queries.map((q) => q.vector); // plain arrays, as searchKnn wants them
  const truth = evalset.queries.map((q) => (q.relevant_chunk_ids ?? []).slice(0, k));
  const trials: RawTrial[] = [];
  const started = performance.now();
  for (const config of grid) {
    let t0 = performance.now();
    const index = new hnswlib.HierarchicalNSW('cosine', dims);
    index.initIndex(n, config.m, config.ef_construction, LEVEL_SEED);
    for (let i = 0; i < n; i++) index.addPoint(Array.from(rowOf(vectors, dims, i)), i);
    const build_seconds = since(t0);

    t0 = performance.now();
    index.setEf(config.ef_search);
    for (const q of queries) index.searchKnn(q, k);
    const millis: number[] = [];
    const recalls = queries.map((q, i) => {
      const s = performance.now();
      const { neighbors } = index.searchKnn(q, k);
      millis.push(performance.now() - s);
      const relevant = truth[i]!;
      if (relevant.length === 0) return 1;
      const found = new Set(neighbors.map((label) => chunkIds[label]));
      return relevant.filter((c) => found.has(c)).length / relevant.length;
    });
    millis.sort((a, b) => a - b);
    const recall = recalls.reduce((a, b) => a + b, 0) / recalls.length;
    trials.push({
      config, recall: Math.round(recall * 1e4) / 1e4, p50_ms: percentile(millis, 50), p95_ms: percentile(millis, 95),
      build_seconds, search_seconds: since(t0),
    });
  }
  return { seconds: since(started), trials };
}
