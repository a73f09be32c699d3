/**
 * A generation made from the previous one instead of from scratch: the previous graph is read,
 * grown, given the new vectors (labels continuing after the previous last one) and told which
 * labels are deleted (hnswlib's markDelete: the vectors stay in the graph as tombstones that
 * searches route through but never return). The result is a complete, immutable generation
 * directory like a fresh build's, plus deleted.parquet naming the tombstones; the previous
 * directory is only read. Like a build, it appears complete or not at all (temporary sibling,
 * fsynced, renamed last), knows nothing about locks or manifests, and is CPU-bound: run it where
 * a build would run.
 *
 * Tombstones cost memory and a little recall; once they pass a share of the graph
 * ({@link shouldRebuild}) a refresh compacts the vectors (tombstones.ts) and builds afresh.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { DuckDBDataChunkWriter } from '@duckdb/node-api';
import hnswlib, { type HierarchicalNSW } from 'hnswlib-node';
import { BadRequestError, ConflictError } from '../../errors.ts';
import { openConnection, sqlString } from '../../ingest/formats/parquet-sink.ts';
import { noProgress, type ProgressFn } from '../../progress.ts';
import { fsyncDir, tempPathFor } from '../../storage/atomic-write.ts';
import { DELETED_FILE, HNSW_FILE, LABELS_FILE, META_FILE, readGenerationMeta } from './generation-files.ts';
import { exists, meta, report, syncAll, writeLabels } from './hnsw-build.ts';
import { readDeletedLabels, readLabels } from './hnsw-searcher.ts';
import { checkDims, countVectors, readVectorBatches } from './vectors-parquet.ts';

/** Tombstones, as a share of the graph, above which a refresh rebuilds rather than extends. */
export const REBUILD_THRESHOLD = 0.2;

/** Whether a graph of `count` labels of which `deleted` are tombstones is due for a fresh build. */
export function shouldRebuild(count: number, deleted: number, threshold = REBUILD_THRESHOLD): boolean {
  return count > 0 && deleted / count > threshold;
}

export interface ExtendGenerationOptions {
  /** The previous generation's directory; only read. */
  prevDir: string;
  /** Vectors Parquet files holding the new chunks, in the order that assigns their labels. */
  newFiles: readonly string[];
  /**
   * Chunk ids to remove: every live label holding one is marked deleted. Ids the previous
   * generation does not hold live are counted in `not_found` and otherwise ignored (a deletion
   * that already happened).
   */
  deletedChunkIds: Iterable<string>;
  dims: number;
  /** The generation directory to create; it must not exist. */
  outDir: string;
  /** Called about every 1% of inserts with the fraction inserted. @defaultValue none */
  progress?: ProgressFn;
}

export interface ExtendResult {
  /** Labels in the new graph, tombstones included (previous count + added). */
  count: number;
  /** Tombstones in the new graph: the previous generation's plus those marked here. */
  deleted: number;
  /** New labels. */
  added: number;
  /** Labels marked deleted here. */
  marked: number;
  /** Deleted chunk ids the previous generation did not hold live. */
  not_found: number;
  /** Wall time from the first read to the rename. */
  seconds: number;
  peak_rss_mb: number;
}

/**
 * Deletions are applied before additions, so a chunk id both deleted and added ends live, under
 * its new label. A new chunk id that is already live (or that `newFiles` holds twice) is refused:
 * it would be returned twice by searches, and tombstones could no longer say which copy they
 * cancel (a refresh embeds only ids that are not live, refresh-diff.ts).
 */
export async function extendGeneration(opts: ExtendGenerationOptions): Promise<ExtendResult> {
  const started = performance.now();
  const dims = checkDims(opts.dims);
  if (await exists(opts.outDir)) throw new ConflictError(`generation directory ${path.basename(opts.outDir)} already exists`);
  const prevMeta = await readGenerationMeta(opts.prevDir);
  if (prevMeta.dims !== dims) throw new BadRequestError(`${path.basename(opts.prevDir)} holds ${prevMeta.dims}-dimensional vectors, not ${dims}`);
  const newCount = await countVectors(opts.newFiles);

  const index = new hnswlib.HierarchicalNSW(prevMeta.space, dims);
  const [, labels, prevDeleted] = await Promise.all([index.readIndex(path.join(opts.prevDir, HNSW_FILE)), readLabels(opts.prevDir), readDeletedLabels(opts.prevDir)]);
  const prevCount = index.getCurrentCount();
  if (prevCount !== prevMeta.count || labels.chunkIds.length !== prevCount || (prevMeta.deleted ?? 0) !== prevDeleted.length) {
    throw new Error(`${path.basename(opts.prevDir)} is inconsistent: ${prevCount} vectors, ${labels.chunkIds.length} labels, ${prevMeta.count} built`);
  }
  const deleted = new Set(prevDeleted);
  const { docIds, chunkIds } = labels;

  // chunk id → its live labels (more than one only in a graph built from duplicated rows)
  const live = new Map<string, number[]>();
  chunkIds.forEach((id, label) => {
    if (deleted.has(label)) return;
    const held = live.get(id);
    if (held) held.push(label);
    else live.set(id, [label]);
  });

  let marked = 0;
  let notFound = 0;
  for (const id of new Set(opts.deletedChunkIds)) {
    const held = live.get(id);
    if (!held) {
      notFound++;
      continue;
    }
    for (const label of held) {
      markDeleted(index, label);
      deleted.add(label);
      marked++;
    }
    live.delete(id);
  }

  const tmp = tempPathFor(opts.outDir);
  await fs.mkdir(path.dirname(opts.outDir), { recursive: true });
  await fs.mkdir(tmp);
  try {
    if (prevCount + newCount > index.getMaxElements()) index.resizeIndex(prevCount + newCount);
    const progress = opts.progress ?? noProgress;
    const step = Math.max(1, Math.ceil(newCount / 100));
    const insertStarted = performance.now();
    let added = 0;
    for await (const batch of readVectorBatches(opts.newFiles, dims)) {
      for (let i = 0; i < batch.chunk_ids.length; i++) {
        const chunkId = batch.chunk_ids[i]!;
        if (live.has(chunkId)) throw new ConflictError(`chunk ${JSON.stringify(chunkId)} is already in the index; a refresh adds only new chunk ids`);
        const label = chunkIds.length;
        if (label >= index.getMaxElements()) index.resizeIndex(Math.ceil(index.getMaxElements() * 1.25) + 1);
        index.addPoint(Array.from(batch.vectors.subarray(i * dims, (i + 1) * dims)), label);
        docIds.push(batch.doc_ids[i]!);
        chunkIds.push(chunkId);
        live.set(chunkId, [label]);
        added++;
        if (added % step === 0) await report(progress, added, newCount, insertStarted);
      }
    }
    if (added > 0 && added % step !== 0) await report(progress, added, newCount, insertStarted);

    const deletedLabels = [...deleted].sort((a, b) => a - b);
    await index.writeIndex(path.join(tmp, HNSW_FILE));
    await writeLabels(path.join(tmp, LABELS_FILE), docIds, chunkIds);
    await writeDeletedLabels(path.join(tmp, DELETED_FILE), deletedLabels);
    const seconds = (performance.now() - started) / 1000;
    const p = { m: prevMeta.m, efConstruction: prevMeta.ef_construction, efSearch: prevMeta.ef_search, seed: prevMeta.seed };
    const genMeta = { ...meta(p, dims, chunkIds.length, seconds), deleted: deletedLabels.length, base: path.basename(opts.prevDir) };
    await fs.writeFile(path.join(tmp, META_FILE), JSON.stringify(genMeta, null, 2) + '\n');
    await syncAll(tmp);
    await fs.rename(tmp, opts.outDir);
    await fsyncDir(path.dirname(opts.outDir)); // the manifest will name it: its name must survive a crash too
    return {
      count: chunkIds.length,
      deleted: deletedLabels.length,
      added,
      marked,
      not_found: notFound,
      seconds: (performance.now() - started) / 1000,
      peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
    };
  } catch (err) {
    await fs.rm(tmp, { recursive: true, force: true });
    if ((err as NodeJS.ErrnoException).code === 'ENOTEMPTY' || (err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new ConflictError(`generation directory ${path.basename(opts.outDir)} was created by another build`);
    }
    throw err;
  }
}

/** hnswlib's markDelete, tolerating a label the graph file already held deleted. */
function markDeleted(index: HierarchicalNSW, label: number): void {
  try {
    index.markDelete(label);
  } catch (err) {
    if (!/already deleted/.test((err as Error).message)) throw err;
  }
}

/** deleted.parquet: `label INTEGER`, ascending; written even when empty, so the file says "none". */
async function writeDeletedLabels(file: string, labels: readonly number[]): Promise<void> {
  const conn = await openConnection();
  try {
    await conn.run('CREATE TEMP TABLE deleted_out (label INTEGER NOT NULL)');
    const appender = await conn.createAppender('deleted_out');
    try {
      const writer = DuckDBDataChunkWriter.forAppender(appender);
      for (const label of labels) writer.appendRow([label]);
      writer.flush();
      appender.flushSync();
    } finally {
      appender.closeSync();
    }
    await conn.run(`COPY (SELECT label FROM deleted_out ORDER BY label) TO ${sqlString(file)} (FORMAT parquet, COMPRESSION zstd)`);
  } finally {
    conn.closeSync();
  }
}
