/**
 * Runs BullMQ workers for a subset of the declared queues in this process, announces them in
 * the cluster membership, and shuts them down gracefully: on close, active jobs get until the
 * deadline to finish; past it the workers are force-closed and their jobs' locks lapse, so
 * BullMQ's stalled-job check hands them to another worker. No job is lost either way.
 */
import { Worker, type Processor, type WorkerOptions as BullWorkerOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import { fileURLToPath } from 'node:url';
import { getQueueDeclaration } from '../queues/registry.ts';
import type { Config } from '../shared/config.ts';
import { heartbeat, HEARTBEAT_MS, leave, newWorkerRecord, type WorkerRecord } from '../shared/cluster/membership.ts';
import type { Logger } from '../shared/logger.ts';
import { createRedis } from '../shared/redis/connection.ts';
import { closeProviders } from '../shared/vectors/embedding/provider-cache.ts';
import { closeWorkerContext } from './context.ts';
import { startInboxFeeder } from './inbox-feeder.ts';
import { redactFailure } from './redacted-failure.ts';
import { startOrphanSweep } from './orphan-sweep.ts';

export interface WorkerOptions {
  config: Config;
  queues: string[];
  /** Jobs run at once per queue. @defaultValue config.workerConcurrency */
  concurrency?: number;
  /** Lock and stall tuning (lockDuration, stalledInterval, maxStalledCount). @defaultValue BullMQ's */
  tuning?: Pick<BullWorkerOptions, 'lockDuration' | 'stalledInterval' | 'maxStalledCount'>;
  log: Logger;
}

export interface RunningWorkers {
  record: WorkerRecord;
  workers: Worker[];
  /** Waits for active jobs up to `deadlineMs`, then forces. */
  close(deadlineMs?: number): Promise<void>;
}

export function processorFile(queue: string): string {
  return fileURLToPath(new URL(`./processors/${queue}.ts`, import.meta.url));
}

/** A sandboxed child must load TypeScript too (a tsx loader), and must die with its parent. */
function childExecArgv(): string[] {
  const inherited = process.execArgv.filter((a) => !a.startsWith('--inspect'));
  const tsx = inherited.some((a) => a.includes('tsx')) ? [] : ['--import', import.meta.resolve('tsx')];
  return [...inherited, ...tsx, '--import', import.meta.resolve('./sandbox-guard.ts')];
}

const FORCE_CLOSE_MS = 5_000;

async function waitUntil(done: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}

interface WorkerSetup {
  concurrency: number;
  connection: Redis;
  prefix: string;
  tuning: WorkerOptions['tuning'];
  /** The membership id: BullMQ records it as each job's `processedBy`. */
  name: string;
}

/**
 * Jobs running in this process, for the shutdown deadline. In-process processors are counted by
 * a wrapper (a job that parks itself to wait for its children ends without a 'completed' or
 * 'failed' event); sandboxed ones, which never park, by the worker's events.
 */
class ActiveJobs {
  n = 0;

  wrap(fn: Processor): Processor {
    return async (job, token, signal) => {
      this.n++;
      try {
        return await fn(job, token, signal);
      } catch (err) {
        throw redactFailure(err);
      } finally {
        this.n--;
      }
    };
  }

  watch(w: Worker): void {
    w.on('active', () => this.n++);
    w.on('completed', () => this.n--);
    w.on('failed', () => this.n--);
  }
}

async function makeWorker(queue: string, setup: WorkerSetup, active: ActiveJobs): Promise<Worker> {
  const decl = getQueueDeclaration(queue);
  const file = processorFile(queue);
  const { tuning, ...options } = setup;
  if (!decl.sandboxed) {
    const processor = ((await import(file)) as { default: Processor }).default;
    return new Worker(queue, active.wrap(processor), { ...options, ...tuning });
  }
  const w = new Worker(queue, file, { ...options, ...tuning, workerForkOptions: { execArgv: childExecArgv() } });
  active.watch(w);
  return w;
}

export async function startWorkers(opts: WorkerOptions): Promise<RunningWorkers> {
  const concurrency = opts.concurrency ?? opts.config.workerConcurrency;
  const prefix = opts.config.queuePrefix;
  const connection = createRedis(opts.config.redisUrl, 'worker');
  const record = newWorkerRecord(opts.queues, concurrency);
  const setup = { concurrency, connection, prefix, tuning: opts.tuning, name: record.id };
  const active = new ActiveJobs();
  const workers = await Promise.all(opts.queues.map((q) => makeWorker(q, setup, active)));
  for (const w of workers) {
    w.on('failed', (job, err) => opts.log.warn({ queue: w.name, job: job?.id, attempt: job?.attemptsMade, err }, 'job failed'));
    w.on('error', (err) => opts.log.error({ queue: w.name, err }, 'worker error'));
  }
  const inbox = opts.queues.includes('ingest') ? await startInboxFeeder(opts.config, opts.log) : undefined;
  const sweep = startOrphanSweep(opts.config, connection, opts.log);
  const beat = () => heartbeat(connection, prefix, record).catch((err: Error) => opts.log.warn({ err }, 'heartbeat failed'));
  await beat();
  const timer = setInterval(beat, HEARTBEAT_MS);
  opts.log.info({ queues: opts.queues, concurrency, id: record.id }, 'workers started');

  let closing: Promise<void> | undefined;
  const close = (deadlineMs = opts.config.shutdownTimeoutMs) =>
    (closing ??= (async () => {
      clearInterval(timer);
      await sweep.stop();
      await inbox?.stop(); // no new claims while we wind down
      // BullMQ keeps the first close() call's promise, so a graceful close cannot be upgraded to a
      // forced one later: stop fetching, wait for the active jobs up to the deadline, then close
      // once — forced if jobs are still running (their locks lapse and they return to the queue).
      await Promise.all(workers.map((w) => w.pause(true)));
      const finished = await waitUntil(() => active.n <= 0, deadlineMs);
      if (!finished) opts.log.warn({ deadlineMs, active: active.n }, 'active jobs did not finish before the deadline; forcing close, they return to the queue');
      // close() still talks to Redis; with Redis gone it would wait forever
      const closed = Promise.all(workers.map((w) => w.close(!finished)));
      await Promise.race([closed, new Promise((r) => setTimeout(r, FORCE_CLOSE_MS).unref())]);
      await closeProviders(); // the local embedder's threads
      await closeWorkerContext(); // in-process processors' connection and queues
      await leave(connection, prefix, record.id).catch(() => {});
      await connection.quit().catch(() => {});
      opts.log.info({ id: record.id }, 'workers stopped');
    })());
  return { record, workers, close };
}
