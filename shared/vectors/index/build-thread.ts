/**
 * Worker-thread entry for HNSW builds and extensions: hnswlib's inserts are synchronous and would
 * block the event loop that renews job locks for minutes, so they run here (see run-build.ts).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { buildGeneration } from './hnsw-build.ts';
import { extendGeneration } from './hnsw-extend.ts';
import type { ThreadTask } from './run-build.ts';

const port = parentPort!;
const task = workerData as ThreadTask;
const progress = (fraction: number, detail?: Record<string, number | string>) => port.postMessage({ type: 'progress', fraction, detail });
const result = task.kind === 'build' ? await buildGeneration({ ...task.options, progress }) : await extendGeneration({ ...task.options, progress });
port.postMessage({ type: 'done', result });
