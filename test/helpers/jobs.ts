/**
 * Producers, workers and job-state polling for integration tests, all registered with the
 * test environment's cleanup so a failing assertion never leaves a worker or connection open.
 */
import { Worker, type Job, type JobState, type Queue, type WorkerOptions } from 'bullmq';
import { Producer } from '../../queues/producer.ts';
import { createSealContext } from '../../queues/seal-context.ts';
import { createLogger } from '../../shared/logger.ts';
import { createRedis, waitForReady } from '../../shared/redis/connection.ts';
import { Buckets } from '../../shared/storage/buckets.ts';
import { processorFile, startWorkers, type RunningWorkers } from '../../workers/runner.ts';
import { waitFor, type TestEnv } from './env.ts';

export const silentLog = createLogger('silent', 'test');

/** A Producer on its own producer-role connection (fail-fast, so it waits for ready first), sealing like the API does. */
export async function startProducer(env: TestEnv): Promise<Producer> {
  const connection = createRedis(env.config.redisUrl, 'producer');
  connection.on('error', () => {});
  await waitForReady(connection);
  const buckets = new Buckets(env.config.dataDir, env.config.buckets);
  await buckets.ensure();
  const producer = new Producer(connection, env.prefix, await createSealContext(env.config, buckets));
  env.defer(async () => {
    await producer.close();
    await connection.quit().catch(() => connection.disconnect());
  });
  return producer;
}

/** startWorkers with this env's config; closed (5 s grace) by cleanup if the test did not. */
export async function startTestWorkers(env: TestEnv, queues: string[] = ['ingest'], concurrency = 1): Promise<RunningWorkers> {
  const running = await startWorkers({ config: env.config, queues, concurrency, log: silentLog });
  env.defer(() => running.close(5_000));
  return running;
}

export async function jobState(queue: Queue, id: string): Promise<JobState | 'unknown'> {
  return queue.getJobState(id);
}

/** Waits until the job is in one of `states`, then returns a fresh copy of it. */
export async function waitForJobState(
  queue: Queue,
  id: string,
  states: readonly (JobState | 'unknown')[],
  timeoutMs = 30_000,
): Promise<Job> {
  let last: JobState | 'unknown' | undefined;
  try {
    await waitFor(async () => states.includes((last = await queue.getJobState(id))), { timeoutMs, intervalMs: 50 });
  } catch (err) {
    throw new Error(`job ${id} did not become ${states.join('|')} within ${timeoutMs} ms; last state: ${last ?? '?'}`, { cause: err });
  }
  const job = await queue.getJob(id);
  if (!job) throw new Error(`job ${id} vanished`);
  return job;
}

/** Waits until the job completed or failed and returns it. */
export function waitForFinished(queue: Queue, id: string, timeoutMs = 30_000): Promise<Job> {
  return waitForJobState(queue, id, ['completed', 'failed'], timeoutMs);
}

/**
 * A plain BullMQ worker for `queue` running the real processor file the way runner.ts does
 * (sandboxed, tsx loader), but with BullMQ options runner.ts does not expose — e.g. a short
 * `stalledInterval` so a stalled job is picked up in seconds rather than minutes.
 */
export async function startBareWorker(env: TestEnv, queue: string, options: Partial<WorkerOptions> = {}): Promise<Worker> {
  const connection = createRedis(env.config.redisUrl, 'worker');
  const inherited = process.execArgv.filter((a) => !a.startsWith('--inspect'));
  const execArgv = inherited.some((a) => a.includes('tsx')) ? inherited : [...inherited, '--import', 'tsx'];
  const worker = new Worker(queue, processorFile(queue), {
    connection,
    prefix: env.prefix,
    concurrency: 1,
    workerForkOptions: { execArgv },
    ...options,
  });
  worker.on('error', () => {});
  env.defer(async () => {
    await worker.close(true);
    await connection.quit().catch(() => connection.disconnect());
  });
  await worker.waitUntilReady();
  return worker;
}

interface ChildHandle {
  pid?: number;
  spawnargs?: string[];
  exitCode: number | null;
  signalCode: string | null;
  kill(signal?: NodeJS.Signals): boolean;
}

function liveSandboxChildren(): ChildHandle[] {
  const handles = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles();
  return handles.filter(
    (h): h is ChildHandle =>
      typeof h === 'object' && h !== null && h.constructor?.name === 'ChildProcess' &&
      ((h as ChildHandle).spawnargs ?? []).some((a) => a.includes('bullmq')) &&
      (h as ChildHandle).exitCode === null && (h as ChildHandle).signalCode === null,
  );
}

/**
 * Fails if a BullMQ sandbox child forked by this process is still alive after `graceMs` (BullMQ
 * gives a SIGTERMed child 30 s to finish its job), and SIGKILLs such leftovers by pid so the
 * test process can exit. Meant for a file-level `after()` hook.
 */
export async function assertNoSandboxChildrenLeft(graceMs = 35_000): Promise<void> {
  try {
    await waitFor(() => liveSandboxChildren().length === 0, { timeoutMs: graceMs, intervalMs: 100 });
  } catch {
    const left = liveSandboxChildren();
    for (const c of left) c.kill('SIGKILL');
    if (left.length > 0) {
      throw new Error(`sandboxed processor children outlived their workers: ${left.map((c) => `pid ${c.pid}`).join(', ')}`);
    }
  }
}
