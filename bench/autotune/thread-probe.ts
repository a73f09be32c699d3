/**
 * Worker-thread entry for the overhead probes (autotune-bench.ts `probeThread`): started exactly as
 * a trial thread is (`startTsWorker`, tsx registered inside the thread), it loads what
 * shared/autotune/trial-thread.ts loads, says `ready` (thread start-up and module loading are
 * done), then times what every trial does around its inserts: the Parquet scan `buildGeneration`
 * makes (`countVectors` + `readVectorBatches`, the thread's first DuckDB use included) and
 * `LoadedGeneration.load` of a generation of the same size, and the graph half of what a build
 * writes: `writeIndex` of that generation's graph to a scratch file, then its fsync.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import hnswlib from 'hnswlib-node';
import '../../shared/autotune/trial.ts';
import { HNSW_FILE } from '../../shared/vectors/index/generation-files.ts';
import { LoadedGeneration } from '../../shared/vectors/index/hnsw-searcher.ts';
import { countVectors, readVectorBatches } from '../../shared/vectors/index/vectors-parquet.ts';

export interface ProbeTask {
  files: string[];
  dims: number;
  genDir: string;
  /** A file this probe may write (and removes). */
  scratchFile: string;
}

export type ProbeMessage = { type: 'ready' } | { type: 'done'; scanSeconds: number; loadSeconds: number; writeSeconds: number; fsyncSeconds: number; rows: number };

const port = parentPort!;
port.postMessage({ type: 'ready' } satisfies ProbeMessage);
const task = workerData as ProbeTask;
let t0 = performance.now();
let rows = await countVectors(task.files);
for await (const batch of readVectorBatches(task.files, task.dims)) rows -= batch.chunk_ids.length;
if (rows !== 0) throw new Error(`the scan and the count disagree by ${rows} rows`);
const scanSeconds = (performance.now() - t0) / 1000;
t0 = performance.now();
const gen = await LoadedGeneration.load(task.genDir, task.dims);
const loadSeconds = (performance.now() - t0) / 1000;
const graph = new hnswlib.HierarchicalNSW('cosine', task.dims);
await graph.readIndex(path.join(task.genDir, HNSW_FILE));
t0 = performance.now();
await graph.writeIndex(task.scratchFile);
const writeSeconds = (performance.now() - t0) / 1000;
t0 = performance.now();
const handle = await fs.open(task.scratchFile, 'r');
await handle.sync();
await handle.close();
const fsyncSeconds = (performance.now() - t0) / 1000;
await fs.rm(task.scratchFile, { force: true });
port.postMessage({ type: 'done', scanSeconds, loadSeconds, writeSeconds, fsyncSeconds, rows: gen.count } satisfies ProbeMessage);
