/**
 * The per-index generation lease: one writer of an index's generations at a time. An embed,
 * refresh, promote or rollback holds it from the moment it reads the generation it builds on (an
 * embed's plan, a refresh's diff, a promotion's activation) until its commit, across a job's
 * parked wait for its shard children. The index's entity lock (entity-lock.ts) stays the short
 * lock around each manifest write; the lease is the long one around a whole build, so an ingest
 * marking the index stale never waits for an embedding run.
 *
 * Two kinds of holder (the value of the lease key):
 * - a job, `{"queue":"<prefix>:<queue>","id":"<job id>"}`. No TTL: the lease lives as long as the
 *   job. BullMQ's own job lock is its renewal: a worker that dies mid-build hands the job back to
 *   the queue (stalled check) still holding the lease, and the retry resumes where it stopped. A
 *   waiter breaks the lease of a job that is gone, completed or failed (for good).
 * - a process (promote/rollback from the API), `{"token":"<random>"}`, with a TTL renewed every
 *   third of it while held, like entity-lock.ts.
 * Acquiring again as the same holder succeeds: a retried or resumed job keeps its lease.
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { ConflictError } from '../../errors.ts';

/** Takes a free lease, or re-takes one this holder already has; otherwise answers the holder. */
const ACQUIRE = `
local v = redis.call('get', KEYS[1])
if (not v) or v == ARGV[1] then
  if ARGV[2] == '0' then redis.call('set', KEYS[1], ARGV[1]) else redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2]) end
  return ''
end
return v`;
const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;
const RENEW = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end`;

/** The lease value naming a job: its queue's qualified name (`<prefix>:<queue>`) and id. */
export function jobHolder(job: { queueQualifiedName: string; id?: string | undefined }): string {
  return JSON.stringify({ queue: job.queueQualifiedName, id: job.id ?? '' });
}

function parseJobHolder(value: string): { queue: string; id: string } | undefined {
  try {
    const v = JSON.parse(value) as { queue?: unknown; id?: unknown };
    return typeof v.queue === 'string' && typeof v.id === 'string' ? { queue: v.queue, id: v.id } : undefined;
  } catch {
    return undefined;
  }
}

/** Who holds a lease, for messages: `job refresh/42`, or `a promotion or rollback`. */
export function describeHolder(value: string): string {
  const job = parseJobHolder(value);
  return job ? `job ${job.queue.split(':').pop()}/${job.id}` : 'a promotion or rollback';
}

/**
 * Whether a job still exists and has not finished, read from BullMQ's keys: the job hash
 * `<queue>:<id>` and the `completed`/`failed` sets. A job waiting, active, delayed (a retry's
 * backoff) or waiting for its children is alive.
 */
async function jobAlive(redis: Redis, queue: string, id: string): Promise<boolean> {
  const replies = await redis.multi().exists(`${queue}:${id}`).zscore(`${queue}:completed`, id).zscore(`${queue}:failed`, id).exec();
  if (!replies || replies.some(([err]) => err)) return true; // cannot tell: never break a lease on doubt
  const [[, exists], [, completed], [, failed]] = replies as [[null, number], [null, string | null], [null, string | null]];
  return exists === 1 && completed === null && failed === null;
}

export type LeaseAttempt = { acquired: true } | { acquired: false; holder: string };

/**
 * One attempt: takes the lease for `holder` (with `ttlMs`, or none for a job holder), breaking
 * the lease of a job holder that is no longer alive.
 */
export async function tryLease(redis: Redis, key: string, holder: string, ttlMs: number | null): Promise<LeaseAttempt> {
  for (let i = 0; i < 2; i++) {
    const other = (await redis.eval(ACQUIRE, 1, key, holder, String(ttlMs ?? 0))) as string;
    if (other === '') return { acquired: true };
    const job = parseJobHolder(other);
    if (!job || (await jobAlive(redis, job.queue, job.id))) return { acquired: false, holder: other };
    await redis.eval(RELEASE, 1, key, other); // a dead job's lease: only if it is still that job's
  }
  return { acquired: false, holder: (await redis.get(key)) ?? '' };
}

/** Polls {@link tryLease} with backoff for up to `waitMs`; the last attempt's answer. */
export async function waitForLease(redis: Redis, key: string, holder: string, opts: { waitMs: number; ttlMs: number | null }): Promise<LeaseAttempt> {
  const deadline = Date.now() + opts.waitMs;
  let backoff = 50;
  for (;;) {
    const attempt = await tryLease(redis, key, holder, opts.ttlMs);
    if (attempt.acquired || Date.now() + backoff > deadline) return attempt;
    await new Promise((r) => setTimeout(r, backoff));
    backoff = Math.min(backoff * 2, 1_000);
  }
}

/** Frees the lease if `holder` still has it. */
export async function releaseLease(redis: Redis, key: string, holder: string): Promise<void> {
  await redis.eval(RELEASE, 1, key, holder);
}

/** Throws unless `holder` has the lease: a commit checks it right before writing. */
export async function assertLeaseHeld(redis: Redis, key: string, holder: string): Promise<void> {
  const now = await redis.get(key);
  if (now !== holder) throw new Error(`the generation lease ${key} is no longer held by this writer (now: ${now === null ? 'free' : describeHolder(now)}); nothing was committed`);
}

export interface ProcessLeaseOptions {
  /** How long to wait for a busy lease before answering 409. */
  waitMs: number;
  /** TTL of the lease, renewed every third of it while `fn` runs. */
  ttlMs: number;
  /** Named in the 409. */
  index: string;
}

/**
 * Runs `fn` holding the lease as this process (promote/rollback). A lease still busy after
 * `waitMs` is a ConflictError (409): the index is being rebuilt; the caller tries again later.
 */
export async function withProcessLease<T>(redis: Redis, key: string, fn: () => Promise<T>, opts: ProcessLeaseOptions): Promise<T> {
  const holder = JSON.stringify({ token: randomBytes(16).toString('hex') });
  const attempt = await waitForLease(redis, key, holder, { waitMs: opts.waitMs, ttlMs: opts.ttlMs });
  if (!attempt.acquired) {
    throw new ConflictError(`index ${opts.index} is busy: ${describeHolder(attempt.holder)} is building a generation of it; try again when it has finished`);
  }
  const renewal = setInterval(() => void redis.eval(RENEW, 1, key, holder, String(opts.ttlMs)).catch(() => {}), Math.max(opts.ttlMs / 3, 50));
  try {
    return await fn();
  } finally {
    clearInterval(renewal);
    await releaseLease(redis, key, holder).catch(() => {});
  }
}
