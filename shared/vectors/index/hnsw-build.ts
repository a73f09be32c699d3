/**
 * Builds one HNSW generation from vectors Parquet into a directory that appears complete or not
 * at all: everything is written into a temporary sibling, fsynced, and the directory is renamed
 * into place last. Nothing here knows about locks or manifests — the caller commits.
 *
 * `addPoint` is synchronous and a 100k×384 build holds the CPU for minutes, so this runs in a
 * sandboxed child process (the caller arranges that), never on an event loop that renews locks.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import { DuckDBDataChunkWriter } from '@duckdb/node-api';
import hnswlib, { type HierarchicalNSW } from 'hnswlib-node';
import { BadRequestError, ConflictError } from '../../errors.ts';
import { openConnection, sqlString } from '../../ingest/formats/parquet-sink.ts';
import { noProgress, type ProgressFn } from '../../progress.ts';
import { fsyncDir, tempPathFor } from '../../storage/atomic-write.ts';
import { HNSW_FILE, LABELS_FILE, META_FILE, SPACE, type GenerationMeta } from './generation-files.ts';
import { checkDims, countVectors, readVectorBatches, type VectorBatch } from './vectors-parquet.ts';

export interface BuildGenerationOptions {
  /** Vectors Parquet files, in the order that assigns labels. */
  files: readonly string[];
  dims: number;
  /** Graph degree. @defaultValue 16 */
  m?: number;
  /** Candidate list size while inserting. @defaultValue 200 */
  efConstruction?: number;
  /** Recorded as the generation's default search ef. @defaultValue 100 */
  efSearch?: number;
  /** hnswlib's level generator seed; the same seed, files and order give the same graph. @defaultValue 100 */
  seed?: number;
  /** The generation directory to create (`generationDir(...)`); it must not exist. */
  outDir: string;
  /**
   * The vectors already in memory (in `files` order): a caller building several graphs over the
   * same files (autotune trials) reads them once. @defaultValue read from `files`
   */
  vectors?: { count: number; batches: readonly VectorBatch[] };
  /** Called about every 1% of inserts with the fraction inserted; awaited, so an IPC message can leave. @defaultValue none */
  progress?: ProgressFn;
}

/** The options with every default filled in. */
export type BuildParams = Required<Pick<BuildGenerationOptions, 'm' | 'efConstruction' | 'efSearch' | 'seed'>>;

export function params(opts: BuildGenerationOptions): BuildParams {
  return { m: opts.m ?? 16, efConstruction: opts.efConstruction ?? 200, efSearch: opts.efSearch ?? 100, seed: opts.seed ?? 100 };
}

export interface BuildResult {
  count: number;
  /** Wall time from the first read to the rename. */
  seconds: number;
  /** The process's peak resident set so far (the build's, in a child that does only this). */
  peak_rss_mb: number;
}

export async function buildGeneration(opts: BuildGenerationOptions): Promise<BuildResult> {
  const started = performance.now();
  const dims = checkDims(opts.dims);
  if (await exists(opts.outDir)) throw new ConflictError(`generation directory ${path.basename(opts.outDir)} already exists`);
  const count = opts.vectors?.count ?? (await countVectors(opts.files));
  if (count === 0) throw new BadRequestError('there are no vectors to index');
  const tmp = tempPathFor(opts.outDir);
  await fs.mkdir(path.dirname(opts.outDir), { recursive: true });
  await fs.mkdir(tmp);
  try {
    const p = params(opts);
    const built = await insertAll(opts, p, dims, count);
    await built.index.writeIndex(path.join(tmp, HNSW_FILE));
    await writeLabels(path.join(tmp, LABELS_FILE), built.docIds, built.chunkIds);
    const seconds = (performance.now() - started) / 1000;
    await fs.writeFile(path.join(tmp, META_FILE), JSON.stringify(meta(p, dims, built.docIds.length, seconds), null, 2) + '\n');
    await syncAll(tmp);
    await fs.rename(tmp, opts.outDir);
    await fsyncDir(path.dirname(opts.outDir)); // the manifest will name it: its name must survive a crash too
    return { count: built.docIds.length, seconds: (performance.now() - started) / 1000, peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024) };
  } catch (err) {
    await fs.rm(tmp, { recursive: true, force: true });
    if ((err as NodeJS.ErrnoException).code === 'ENOTEMPTY' || (err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new ConflictError(`generation directory ${path.basename(opts.outDir)} was created by another build`);
    }
    throw err;
  }
}

interface Inserted {
  index: HierarchicalNSW;
  docIds: string[];
  chunkIds: string[];
}

/** Streams every vector into the graph; label = position in the stream. */
async function insertAll(opts: BuildGenerationOptions, p: BuildParams, dims: number, count: number): Promise<Inserted> {
  const index = new hnswlib.HierarchicalNSW(SPACE, dims);
  index.initIndex(count, p.m, p.efConstruction, p.seed);
  const progress = opts.progress ?? noProgress;
  const step = Math.max(1, Math.ceil(count / 100));
  const docIds: string[] = [];
  const chunkIds: string[] = [];
  const started = performance.now();
  for await (const batch of opts.vectors?.batches ?? readVectorBatches(opts.files, dims)) {
    for (let i = 0; i < batch.doc_ids.length; i++) {
      const label = docIds.length;
      // The files are immutable, so the footer count holds; growing beats a throw if it ever does not.
      if (label >= index.getMaxElements()) index.resizeIndex(Math.ceil(index.getMaxElements() * 1.25) + 1);
      index.addPoint(Array.from(batch.vectors.subarray(i * dims, (i + 1) * dims)), label);
      docIds.push(batch.doc_ids[i]!);
      chunkIds.push(batch.chunk_ids[i]!);
      if (docIds.length % step === 0) await report(progress, docIds.length, count, started);
    }
  }
  return { index, docIds, chunkIds };
}

/** Progress is advice: a failed update must not fail a build minutes long. */
export async function report(progress: ProgressFn, done: number, total: number, started: number): Promise<void> {
  const seconds = Math.max((performance.now() - started) / 1000, 0.001);
  try {
    await progress(Math.min(done / total, 1), { vectors_done: done, vectors_total: total, vectors_per_s: Math.round(done / seconds) });
  } catch {
    /* see above */
  }
}

export async function writeLabels(file: string, docIds: readonly string[], chunkIds: readonly string[]): Promise<void> {
  const conn = await openConnection();
  try {
    await conn.run('CREATE TEMP TABLE labels_out (label INTEGER NOT NULL, doc_id VARCHAR NOT NULL, chunk_id VARCHAR NOT NULL)');
    await appendLabels(conn, docIds, chunkIds);
    await conn.run(`COPY (SELECT * FROM labels_out ORDER BY label) TO ${sqlString(file)} (FORMAT parquet, COMPRESSION zstd)`);
  } finally {
    conn.closeSync();
  }
}

async function appendLabels(conn: DuckDBConnection, docIds: readonly string[], chunkIds: readonly string[]): Promise<void> {
  const appender = await conn.createAppender('labels_out');
  try {
    const writer = DuckDBDataChunkWriter.forAppender(appender);
    for (let label = 0; label < docIds.length; label++) writer.appendRow([label, docIds[label]!, chunkIds[label]!]);
    writer.flush();
    appender.flushSync();
  } finally {
    appender.closeSync();
  }
}

export function meta(p: BuildParams, dims: number, count: number, seconds: number): GenerationMeta {
  return {
    format: 1,
    space: SPACE,
    dims,
    count,
    m: p.m,
    ef_construction: p.efConstruction,
    ef_search: p.efSearch,
    seed: p.seed,
    seconds: Math.round(seconds * 1000) / 1000,
    built_at: new Date().toISOString(),
  };
}

/** fsyncs every file and then the directory itself, so the rename publishes durable content. */
export async function syncAll(dir: string): Promise<void> {
  for (const name of await fs.readdir(dir)) await syncPath(path.join(dir, name));
  await syncPath(dir);
}

async function syncPath(p: string): Promise<void> {
  const handle = await fs.open(p, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export async function exists(p: string): Promise<boolean> {
  try {
    await fs.access(p);
    return true;
  } catch {
    return false;
  }
}
