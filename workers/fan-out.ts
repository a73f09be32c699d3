/**
 * Fan-out of embedding shards as BullMQ child jobs of the job that planned them: any worker that
 * serves `embed` takes shards; the parent waits (waiting-children) and resumes to build the index.
 * The parent's progress is kept cluster-wide in one Redis counter that every shard bumps.
 */
import { Job, WaitingChildrenError, type Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { z } from 'zod';
import type { shardPayload } from '../queues/embed.ts';

type Shard = z.input<typeof shardPayload>;

export const progressKey = (prefix: string, queue: string, parentId: string) => `${prefix}:fanout:done:${queue}:${parentId}`;

/**
 * Adds one child per shard (ids derived from the parent's queue and id, so a re-planned parent
 * re-adds nothing, and parents of two queues with the same id never share a child) and moves the parent to waiting-children. Returns only when no child is pending,
 * i.e. all shards already finished; otherwise throws BullMQ's WaitingChildrenError, which tells
 * the worker the parent is parked, not failed.
 */
export async function fanOutShards(parent: Job, token: string, embedQueue: Queue, shards: Shard[]): Promise<void> {
  await embedQueue.addBulk(
    shards.map((s) => ({
      name: 'shard',
      data: s,
      opts: { jobId: `${parent.queueName}-${parent.id}-shard-${s.shard}`, parent: { id: parent.id!, queue: parent.queueQualifiedName }, failParentOnFailure: true },
    })),
  );
  if (await parent.moveToWaitingChildren(token)) throw new WaitingChildrenError();
}

/** A finished batch of a shard: count it, and show the parent's overall progress. */
export async function reportShardBatch(redis: Redis, prefix: string, parentQueue: Queue, parentId: string, n: number, total: number, startedAt: number): Promise<void> {
  const done = await redis.incrby(progressKey(prefix, parentQueue.name, parentId), n);
  await redis.pexpire(progressKey(prefix, parentQueue.name, parentId), 7 * 24 * 3600 * 1000);
  const parent = await Job.fromId(parentQueue, parentId);
  const seconds = Math.max((Date.now() - startedAt) / 1000, 0.001);
  const rate = done / seconds;
  await parent?.updateProgress({
    percent: Math.round((Math.min(done / total, 1) * 90) * 10) / 10, // the last 10% is the index build
    phase: 'embedding',
    chunks_done: done,
    chunks_total: total,
    chunks_per_s: Math.round(rate * 10) / 10,
    eta_s: Math.round((total - done) / Math.max(rate, 0.001)),
  });
}
