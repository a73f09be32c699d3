/**
 * How an embed or refresh job holds its index's generation lease (shared/vectors/index/generation-lease.ts):
 * taken before the job reads the generation it builds on, kept while the job is parked waiting
 * for its shards, released when it commits or fails for good.
 *
 * A job that finds the lease busy polls it for `indexLease.waitMs`, then parks itself as a
 * delayed job for `indexLease.retryMs` (BullMQ's moveToDelayed: no attempt is used, and its
 * worker slot is free for the holder's shards) and tries again, until `indexLease.maxWaitMs` has
 * passed since it first waited; then it fails like any retryable error.
 */
import { DelayedError, UnrecoverableError, type Job } from 'bullmq';
import { indexLeaseKey } from '../shared/catalog/lock-keys.ts';
import { assertLeaseHeld, describeHolder, jobHolder, releaseLease, waitForLease } from '../shared/vectors/index/generation-lease.ts';
import type { WorkerContext } from './context.ts';
import { isPermanent } from './permanent-failure.ts';

export interface IndexLease {
  /** Throws unless the job still holds the lease; checked right before the commit. */
  assertHeld(): Promise<void>;
  /** Frees the lease (after the commit). */
  release(): Promise<void>;
  /** Frees the lease when `err` ends the job for good (no retry will resume it); rethrows nothing. */
  releaseIfFinal(err: unknown): Promise<void>;
}

/** Job data field: when the job first found the lease busy (ms since epoch). */
export const LEASE_WAITING_SINCE = 'lease_waiting_since';

export async function holdIndexLease(job: Job, token: string, ctx: WorkerContext, index: string): Promise<IndexLease> {
  const key = indexLeaseKey(ctx.config, index);
  const holder = jobHolder(job);
  const { waitMs, retryMs, maxWaitMs } = ctx.config.indexLease;
  const attempt = await waitForLease(ctx.redis, key, holder, { waitMs, ttlMs: null });
  if (!attempt.acquired) {
    const since = Number((job.data as Record<string, unknown>)[LEASE_WAITING_SINCE] ?? Date.now());
    if (Date.now() - since >= maxWaitMs) {
      throw new Error(`index ${index} is still being rebuilt by ${describeHolder(attempt.holder)} after ${maxWaitMs} ms of waiting (LAKEHOUSE_INDEX_LEASE_MAX_WAIT_MS)`);
    }
    await job.updateData({ ...job.data, [LEASE_WAITING_SINCE]: since });
    await job.moveToDelayed(Date.now() + retryMs, token);
    throw new DelayedError(`waiting for ${describeHolder(attempt.holder)} to finish with index ${index}`);
  }
  if ((job.data as Record<string, unknown>)[LEASE_WAITING_SINCE] !== undefined) {
    const { [LEASE_WAITING_SINCE]: _waited, ...data } = job.data as Record<string, unknown>;
    await job.updateData(data); // a later wait (after a retry) gets its own budget
  }
  const release = () => releaseLease(ctx.redis, key, holder);
  return {
    assertHeld: () => assertLeaseHeld(ctx.redis, key, holder),
    release,
    async releaseIfFinal(err) {
      if (!isFinal(job, err)) return;
      await release().catch((e: Error) => ctx.log.warn({ err: e, index }, 'could not release the index lease; the next writer breaks it'));
    },
  };
}

/** Whether the job ends with `err` (no retry), as opposed to parking or being retried. */
export function isFinal(job: Job, err: unknown): boolean {
  if (err instanceof DelayedError || (err as Error)?.name === 'WaitingChildrenError' || (err as Error)?.name === 'DelayedError') return false;
  if (err instanceof UnrecoverableError || isPermanent(err)) return true;
  return job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
}

/**
 * Runs `work` holding the index's lease: released after it returns, and after it throws when
 * the failure is final (a retry resumes still holding it); `onFinalFailure` runs first, still
 * under the lease. `work` sees the payload without the waiting mark, which only matters while
 * the job waits for the lease.
 */
export async function withIndexLease<P extends { index: string }, R>(
  job: Job,
  token: string,
  ctx: WorkerContext,
  payload: P,
  work: (payload: P, lease: IndexLease) => Promise<R>,
  onFinalFailure?: () => Promise<void>,
): Promise<R> {
  const lease = await holdIndexLease(job, token, ctx, payload.index);
  try {
    const result = await work({ ...payload, [LEASE_WAITING_SINCE]: undefined }, lease);
    await lease.release();
    return result;
  } catch (err) {
    if (onFinalFailure && isFinal(job, err)) await onFinalFailure();
    await lease.releaseIfFinal(err);
    throw err;
  }
}
