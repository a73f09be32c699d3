/**
 * One trial: an HNSW config built over an index's live vectors with a fixed seed, then measured on
 * an eval set — recall@k, per-query latency, build time, memory.
 *
 * The build is hnsw-build.ts's own (cosine space, labels in file order), so a graph kept in
 * `outDir` is a generation directory a promotion can adopt as is. Building is synchronous CPU for
 * seconds to minutes: callers on an event loop that renews job locks use {@link runTrialInThread}.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { BadRequestError, ConflictError, NotFoundError } from '../errors.ts';
import { noProgress, type ProgressFn } from '../progress.ts';
import type { DataRoot } from '../storage/data-root.ts';
import type { Worker } from 'node:worker_threads';
import { startTsWorker } from '../threads/ts-worker.ts';
import { buildGeneration } from '../vectors/index/hnsw-build.ts';
import { readVectorBatches, type VectorBatch } from '../vectors/index/vectors-parquet.ts';
import { LoadedGeneration } from '../vectors/index/hnsw-searcher.ts';
import { currentGeneration, generationTombstoneFiles, generationVectorFiles, indexDir, type IndexManifest } from '../vectors/index/index-manifest.ts';
import { withLiveVectors, type EvalSet } from './evalset.ts';
import { hnswConfigSchema, type HnswConfig } from './hnsw-config.ts';

/** hnsw-build.ts's default seed: a trial graph and a production build of one config are the same graph. */
export const TRIAL_SEED = 100;

/** Kept trial graphs live under the index directory, away from `gen-<n>` (which pruning owns). */
export const TRIALS_DIR = 'trials';

export interface RunTrialOptions {
  /** Vectors Parquet files (absolute), in label order. */
  files: readonly string[];
  /** Tombstone files (absolute) that apply to `files`; the trial indexes only the live rows. */
  tombstoneFiles: readonly string[];
  dims: number;
  config: HnswConfig;
  /** hnswlib's level generator seed. @defaultValue {@link TRIAL_SEED} */
  seed?: number;
  evalset: EvalSet;
  /** Hits per query that recall counts; at most the set's k for a generated set. @defaultValue the eval set's k */
  k?: number;
  /**
   * Where to keep the built graph as a generation directory (it must not exist). With
   * tombstones, it holds the live rows only (no deleted labels); the live chunk set equals that
   * of `files` minus `tombstoneFiles`. @defaultValue a scratch directory, removed afterwards
   */
  outDir?: string;
  /** Build progress, the fraction of vectors inserted. @defaultValue none */
  progress?: ProgressFn;
}

export interface TrialMeasure {
  /** recall@k averaged over the queries, 0–1 (see {@link queryRecall}). */
  recall: number;
  /** Median single-query search latency, ms, after one warm-up pass. */
  p50_ms: number;
  p95_ms: number;
  /** The graph build: reading vectors, inserting, writing the generation directory. */
  build_seconds: number;
  /**
   * The loaded generation's footprint, MiB: hnsw.bin's size (vectors and links, as hnswlib holds
   * them in memory) plus the label map's estimate (`LoadedGeneration.bytes`). Chosen over an RSS
   * delta, which in a thread is the whole process's and moves with the allocator.
   */
  memory_mb: number;
  /** Vectors in the graph: the live rows. */
  count: number;
}

export async function runTrial(opts: RunTrialOptions): Promise<TrialMeasure> {
  const config = hnswConfigSchema.parse(opts.config);
  const k = trialK(opts.evalset, opts.k);
  const queries = opts.evalset.queries.map((q) => {
    if (q.vector.length !== opts.dims) throw new BadRequestError(`eval set ${opts.evalset.id} holds ${q.vector.length}-dimensional queries, the index has ${opts.dims}`);
    return Float32Array.from(q.vector);
  });
  const scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'lakehouse-trial-'));
  try {
    const outDir = opts.outDir ?? path.join(scratch, 'graph');
    const vectors = await liveVectors(opts.files, opts.tombstoneFiles, opts.dims);
    const built = await buildGeneration({
      files: opts.files, vectors, dims: opts.dims, m: config.m, efConstruction: config.ef_construction, efSearch: config.ef_search,
      seed: opts.seed ?? TRIAL_SEED, outDir, progress: opts.progress ?? noProgress,
    });
    const gen = await LoadedGeneration.load(outDir, opts.dims, config.ef_search);
    const search = (q: Float32Array) => gen.search(q, k, config.ef_search);
    for (const q of queries) search(q); // warm-up: first touches of the graph's pages are not the config's cost
    const millis: number[] = [];
    const recalls = queries.map((q, i) => {
      const started = performance.now();
      const hits = search(q);
      millis.push(performance.now() - started);
      return queryRecall(opts.evalset.queries[i]!, k, hits.map((h) => ({ chunk: gen.chunkId(h.label), doc: gen.docId(h.label) })));
    });
    millis.sort((a, b) => a - b);
    return {
      recall: round(mean(recalls), 4),
      p50_ms: round(percentile(millis, 50), 4),
      p95_ms: round(percentile(millis, 95), 4),
      build_seconds: round(built.seconds, 3),
      memory_mb: round(gen.bytes / 2 ** 20, 3),
      count: built.count,
    };
  } finally {
    await fs.rm(scratch, { recursive: true, force: true });
  }
}

function trialK(evalset: EvalSet, k: number | undefined): number {
  const n = k ?? evalset.k;
  if (!Number.isInteger(n) || n < 1) throw new BadRequestError(`k ${n} must be a positive integer`);
  if (evalset.kind === 'generated' && n > evalset.k) {
    throw new BadRequestError(`k ${n} is above the eval set's ground-truth depth ${evalset.k}; generate a set with k ≥ ${n}`);
  }
  return n;
}

/**
 * One query's recall@k. Generated sets: the share of the exact top-k chunks (`relevant_chunk_ids`
 * cut to k) among the hits. Supplied sets: the share of `relevant_doc_ids` with a chunk among the
 * hits — a person's judgement is about documents, and several chunks may stand for one.
 */
export function queryRecall(q: EvalSet['queries'][number], k: number, hits: readonly { chunk: string; doc: string }[]): number {
  if (q.relevant_chunk_ids) {
    const relevant = q.relevant_chunk_ids.slice(0, k);
    if (relevant.length === 0) return 1;
    const found = new Set(hits.map((h) => h.chunk));
    return relevant.filter((c) => found.has(c)).length / relevant.length;
  }
  const found = new Set(hits.map((h) => h.doc));
  return q.relevant_doc_ids.filter((d) => found.has(d)).length / q.relevant_doc_ids.length;
}

/** Nearest-rank percentile of ascending `sorted`. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

function mean(xs: readonly number[]): number {
  return xs.length === 0 ? 0 : xs.reduce((a, b) => a + b, 0) / xs.length;
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/**
 * The live vectors of the last files a trial indexed, kept in memory: an autotune run builds
 * every config of its grid over the same files, and reading them once instead of per trial was
 * a measurable part of its overhead (bench/autotune). One entry, replaced when the files change.
 */
let liveCache: { key: string; vectors: { count: number; batches: VectorBatch[] } } | undefined;

async function liveVectors(files: readonly string[], tombstoneFiles: readonly string[], dims: number): Promise<{ count: number; batches: VectorBatch[] }> {
  const key = JSON.stringify([files, tombstoneFiles, dims]);
  if (liveCache?.key === key) return liveCache.vectors;
  liveCache = undefined; // free the old set before reading the new one
  const batches = await withLiveVectors(files, tombstoneFiles, async (live) => {
    const out: VectorBatch[] = [];
    for await (const batch of readVectorBatches(live, dims)) out.push(batch);
    return out;
  });
  const vectors = { count: batches.reduce((n, b) => n + b.doc_ids.length, 0), batches };
  liveCache = { key, vectors };
  return vectors;
}

/** What the thread posts. Errors travel as fields: a thrown DomainError would arrive as a plain Error. */
export type TrialThreadMessage =
  | { type: 'progress'; fraction: number; detail?: Record<string, number | string> }
  | { type: 'done'; result: TrialMeasure }
  | { type: 'failed'; status?: number; message: string };

interface Pending {
  resolve: (m: TrialMeasure) => void;
  reject: (e: Error) => void;
  progress: ProgressFn;
}

/** This process's trial thread: started on first use, kept for later trials, replaced if it dies. */
let trialThread: { thread: Worker; pending: Map<number, Pending> } | undefined;
let nextTask = 0;

function sharedThread(): { thread: Worker; pending: Map<number, Pending> } {
  if (trialThread) return trialThread;
  const thread = startTsWorker(new URL('./trial-thread.ts', import.meta.url));
  const pending = new Map<number, Pending>();
  const current = { thread, pending };
  const fail = (err: Error) => {
    if (trialThread === current) trialThread = undefined;
    for (const p of pending.values()) p.reject(err);
    pending.clear();
  };
  thread.on('message', (m: TrialThreadMessage & { id: number }) => {
    const p = pending.get(m.id);
    if (!p) return;
    if (m.type === 'progress') void Promise.resolve(p.progress(m.fraction, m.detail)).catch(() => {});
    else {
      pending.delete(m.id);
      if (pending.size === 0) thread.unref(); // an idle thread keeps no process alive
      if (m.type === 'done') p.resolve(m.result);
      else p.reject(domainError(m.status, m.message));
    }
  });
  thread.once('error', fail);
  thread.once('exit', (code) => fail(new Error(`the trial thread exited with code ${code} before finishing`)));
  trialThread = current;
  return current;
}

/** {@link runTrial} in a worker thread, so the caller's event loop keeps renewing job locks. */
export async function runTrialInThread(opts: Omit<RunTrialOptions, 'progress'>, progress: ProgressFn = noProgress): Promise<TrialMeasure> {
  const task: Omit<RunTrialOptions, 'progress'> = { ...opts, config: hnswConfigSchema.parse(opts.config) }; // a bad config rejects before a thread starts
  const { thread, pending } = sharedThread();
  const id = nextTask++;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject, progress });
    thread.ref();
    thread.postMessage({ id, task });
  });
}

function domainError(status: number | undefined, message: string): Error {
  if (status === 400) return new BadRequestError(message);
  if (status === 404) return new NotFoundError(message);
  if (status === 409) return new ConflictError(message);
  return new Error(message);
}

export interface TrialVectors {
  /** The index generation whose vectors these are (TrialRecord.generation). */
  generation: number;
  files: string[];
  tombstoneFiles: string[];
}

/**
 * The vectors a trial on `evalset` should index. A generated set's ground truth holds for the
 * files it was computed over, so those (still there: vectors files are pruned with the
 * generations that list them); a supplied set's judgement holds for any, so the current ones.
 */
export async function trialVectors(root: DataRoot, index: IndexManifest, evalset: EvalSet): Promise<TrialVectors> {
  if (evalset.index !== index.name) throw new BadRequestError(`eval set ${evalset.id} belongs to index ${evalset.index}, not ${index.name}`);
  if (evalset.kind === 'supplied') {
    const gen = currentGeneration(index);
    if (!gen) throw new ConflictError(`index ${index.name} has no generation yet: build it before running trials`);
    return { generation: gen.id, files: generationVectorFiles(root, index, gen), tombstoneFiles: generationTombstoneFiles(root, index, gen) };
  }
  const dir = indexDir(root, index.name);
  const files = evalset.vectors_files.map((f) => root.inside(dir, f));
  const tombstoneFiles = evalset.tombstone_files.map((f) => root.inside(dir, f));
  for (const f of [...files, ...tombstoneFiles]) {
    try {
      await fs.access(f);
    } catch {
      throw new ConflictError(
        `eval set ${evalset.id} was computed over generation ${evalset.generation}, whose file ${path.relative(dir, f)} is gone; generate a new eval set`,
      );
    }
  }
  return { generation: evalset.generation!, files, tombstoneFiles };
}

/** `trials/<trial id>`, relative to the index directory: where a kept trial graph goes (TrialRecord.built_dir). */
export function trialBuildDirName(trialId: string): string {
  if (!/^[A-Za-z0-9_-]{1,200}$/.test(trialId)) throw new BadRequestError(`trial id ${JSON.stringify(trialId)} is not a safe directory name`);
  return path.join(TRIALS_DIR, trialId);
}

export function trialBuildDir(root: DataRoot, index: string, trialId: string): string {
  return root.inside(indexDir(root, index), trialBuildDirName(trialId));
}
