/**
 * Fan-out of embedding shards as BullMQ child jobs of the job that planned them: any worker that
 * serves `embed` takes shards; the parent waits (waiting-children) and resumes to build the index.
 * The parent's progress is kept cluster-wide in one Redis counter that every shard bumps.
 */
import { Job, UnrecoverableError, WaitingChildrenError, type Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { z } from 'zod';
import type { shardPayload } from '../queues/embed.ts';
import { configKey, type HnswConfig } from '../shared/autotune/hnsw-config.ts';
import type { JobProgressStore } from '../queues/job-progress-store.ts';
import { setProgress } from './job-progress.ts';

type Shard = z.input<typeof shardPayload>;

export const progressKey = (prefix: string, queue: string, parentId: string) => `${prefix}:fanout:done:${queue}:${parentId}`;

/**
 * Adds children (ids derived from the parent's queue and id and the child's key, so a re-planned
 * parent re-adds nothing, and parents of two queues with the same id never share a child) and
 * moves the parent to waiting-children. Returns only when no child is pending, i.e. all already
 * finished; otherwise throws BullMQ's WaitingChildrenError, which tells the worker the parent is
 * parked, not failed. A failed child fails the parent, or is left out of its results.
 * The parent's first start is kept first: BullMQ resets its processedOn when it resumes, and the
 * job views count a parent's duration from its first start (api/job-view.ts).
 */
export async function fanOut(
  parent: Job, token: string, store: JobProgressStore, queue: Queue, name: string,
  children: { key: string; data: unknown }[], onChildFailure: 'fail-parent' | 'ignore',
): Promise<void> {
  await store.recordFirstStart(parent, parent.processedOn ?? Date.now());
  // 'ignore': the parent resumes whatever happens to a child and decides itself
  await queue.addBulk(
    children.map((c) => ({
      name,
      data: c.data,
      opts: {
        jobId: `${parent.queueName}-${parent.id}-${c.key}`,
        parent: { id: parent.id!, queue: parent.queueQualifiedName },
        ...(onChildFailure === 'fail-parent' ? { failParentOnFailure: true } : { ignoreDependencyOnFailure: true }),
      },
    })),
  );
  if (await parent.moveToWaitingChildren(token)) throw new WaitingChildrenError();
}

/**
 * Shards of an embed or refresh. Every one is needed, but a failed shard is not left to fail the
 * parent by itself (BullMQ's message would name only the child): the parent resumes and
 * {@link assertNoFailedChildren} fails it with the shard's own reason.
 */
export function fanOutShards(parent: Job, token: string, store: JobProgressStore, embedQueue: Queue, shards: Shard[]): Promise<void> {
  return fanOut(parent, token, store, embedQueue, 'shard', shards.map((s) => ({ key: `shard-${s.shard}`, data: s })), 'ignore');
}

export async function assertNoFailedChildren(job: Job): Promise<void> {
  const failed = Object.entries(await job.getIgnoredChildrenFailures());
  if (failed.length === 0) return;
  const [key, reason] = failed[0]!;
  throw new UnrecoverableError(`${failed.length} shard(s) failed; ${key.split(':').pop()}: ${reason}`);
}

/** Trials of an autotune run: a failed trial does not fail the run (the others still count). */
export function fanOutTrials(parent: Job, token: string, store: JobProgressStore, queue: Queue, trials: { config: HnswConfig }[]): Promise<void> {
  return fanOut(parent, token, store, queue, 'trial', trials.map((t) => ({ key: `trial-${configKey(t.config)}`, data: t })), 'ignore');
}

/** A finished batch of a shard: count it, and show the parent's overall progress. */
export async function reportShardBatch(store: JobProgressStore, redis: Redis, prefix: string, parentQueue: Queue, parentId: string, n: number, total: number, startedAt: number): Promise<void> {
  const done = await redis.incrby(progressKey(prefix, parentQueue.name, parentId), n);
  await redis.pexpire(progressKey(prefix, parentQueue.name, parentId), 7 * 24 * 3600 * 1000);
  const parent = await Job.fromId(parentQueue, parentId);
  if (!parent) return;
  const seconds = Math.max((Date.now() - startedAt) / 1000, 0.001);
  const rate = done / seconds;
  // the last 10% is the index build
  await setProgress(store, parent, Math.min(done / total, 1) * 90, {
    phase: 'embedding',
    chunks_done: done,
    chunks_total: total,
    chunks_per_s: Math.round(rate * 10) / 10,
    eta_s: Math.round((total - done) / Math.max(rate, 0.001)),
  });
}

