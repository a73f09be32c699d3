/**
 * Worker-thread entry for the overhead probes (autotune-bench.ts `probeThread`): started exactly as
 * a trial thread is (`startTsWorker`, tsx registered inside the thread), it loads what
 * shared/autotune/trial-thread.ts loads, says `ready` (thread start-up and module loading are
 * done), then times what every trial does around its inserts: the Parquet scan `buildGeneration`
 * makes (`countVectors` + `readVectorBatches`, the thread's first DuckDB use included) and
 * `LoadedGeneration.load` of a generation of the same size.
 */
import { parentPort, workerData } from 'node:worker_threads';
import '../../shared/autotune/trial.ts';
import { LoadedGeneration } from '../../shared/vectors/index/hnsw-searcher.ts';
import { countVectors, readVectorBatches } from '../../shared/vectors/index/vectors-parquet.ts';

export interface ProbeTask {
  files: string[];
  dims: number;
  genDir: string;
}

export type ProbeMessage = { type: 'ready' } | { type: 'done'; scanSeconds: number; loadSeconds: number; rows: number };

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
port.postMessage({ type: 'done', scanSeconds, loadSeconds, rows: gen.count } satisfies ProbeMessage);
