/**
 * The one workload every section runs: N small ingest-shaped jobs whose processor does nothing.
 * The payload is already in the shape the ingest schema outputs (defaults filled in), so the
 * bytes BullMQ stores are the same whether or not zod ran on the way in.
 */
import type { Worker } from 'bullmq';
import type { Phase } from '../cpu-meter.ts';
import type { z } from 'zod';
import type { ingestPayload } from '../../queues/ingest.ts';

/** Raw and ours use the same queue name, so every Redis key has the same length in both. */
export const QUEUE_NAME = 'ingest';

export const PAYLOAD: z.output<typeof ingestPayload> = {
  dataset: 'bench',
  source: { kind: 'upload', path: 'staging/uploads/bench.csv' },
  mode: 'append',
  format: 'csv',
  split_markdown: false,
  on_error: 'fail',
};

export const noop = async (): Promise<void> => {};

/** Sizes of the batches that cut `total` into pieces of at most `size`. */
export function batchSizes(total: number, size: number): number[] {
  return Array.from({ length: Math.ceil(total / size) }, (_, i) => Math.min(size, total - i * size));
}

/** Starts a timed span that also counts this process's and redis-server's CPU (bench/cpu-meter.ts). */
export type StartPhase = () => Promise<() => Promise<Phase>>;

/**
 * Resolves when `worker` has emitted `n` completions; rejects on the first failed job or at the
 * deadline. Attach it right after constructing the worker, before the event loop turns.
 */
export function completions(worker: Worker, n: number, deadlineMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let done = 0;
    const timer = setTimeout(() => reject(new Error(`only ${done} of ${n} jobs completed within ${deadlineMs} ms`)), deadlineMs);
    worker.on('completed', () => {
      if (++done === n) (clearTimeout(timer), resolve());
    });
    worker.on('failed', (job, err) => (clearTimeout(timer), reject(new Error(`job ${job?.id} failed: ${err.message}`))));
  });
}

/** Generous: a no-op job that takes 2 ms on average means something is badly wrong. */
export const completionDeadlineMs = (jobs: number) => Math.max(60_000, jobs * 2);
