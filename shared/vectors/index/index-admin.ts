/**
 * Owner operations on a whole index: deleting it into its bucket's trash (like a dataset,
 * shared/catalog/dataset-admin.ts: kept LAKEHOUSE_TRASH_DAYS, then purged), and removing an
 * index whose first build failed, so its name can be used again with other columns.
 *
 * Both hold the index's generation lease (generation-lease.ts), so they never run while a build
 * plans or commits, and its entity lock, so no manifest write interleaves.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { trashDir } from '../../catalog/trash.ts';
import { ConflictError, NotFoundError } from '../../errors.ts';
import { withEntityLock } from '../../redis/entity-lock.ts';
import type { Bucket, Buckets } from '../../storage/buckets.ts';
import { withProcessLease } from './generation-lease.ts';
import { indexDir, readIndexManifest } from './index-manifest.ts';

export interface IndexLocks {
  redis: Redis;
  /** indexLockKey (shared/catalog/lock-keys.ts) */
  lockKey: string;
  /** indexLeaseKey */
  leaseKey: string;
  /** TTL of the lease while the delete holds it (renewed). */
  leaseTtlMs: number;
}

/** The trash entry of an index: `index.` cannot start a dataset name, so the two never collide. */
export const trashedIndexPrefix = (name: string) => `index.${name}--`;

async function holdingBucket(buckets: Buckets, name: string): Promise<Bucket | undefined> {
  for (const b of buckets.all()) if (await readIndexManifest(b.root, name)) return b;
  return undefined;
}

/**
 * Moves the index's folder (manifest, generations, vectors, tombstones) to its bucket's trash.
 * 409 while a build holds the lease, or while `pendingJobs` names jobs that would use the index
 * (a waiting embed, refresh or autotune); 404 when there is no such index.
 */
export async function trashIndex(
  buckets: Buckets,
  locks: IndexLocks,
  name: string,
  pendingJobs: () => Promise<string[]>,
): Promise<{ trashed_to: string }> {
  const bucket = await holdingBucket(buckets, name);
  if (!bucket) throw new NotFoundError(`index ${JSON.stringify(name)} does not exist`);
  return withProcessLease(
    locks.redis,
    locks.leaseKey,
    async () => {
      const jobs = await pendingJobs();
      if (jobs.length > 0) {
        throw new ConflictError(`index ${name} has unfinished jobs (${jobs.join(', ')}); wait for them or remove them, then delete the index`);
      }
      return withEntityLock(locks.redis, locks.lockKey, async (held) => {
        const target = path.join(trashDir(bucket.root), `${trashedIndexPrefix(name)}${new Date().toISOString().replace(/[:.]/g, '-')}`);
        await fs.mkdir(trashDir(bucket.root), { recursive: true });
        await held.assertHeld();
        await fs.rename(indexDir(bucket.root, name), target);
        const now = new Date();
        await fs.utimes(target, now, now); // the trash clock starts at deletion
        return { trashed_to: path.relative(bucket.root.root, target) };
      });
    },
    { waitMs: 0, ttlMs: locks.leaseTtlMs, index: name },
  );
}

/**
 * After a first build failed for good: an index with no generation has nothing to search and
 * would hold its name for the columns of the failed job, so it goes (the caller holds the
 * index's lease). An index with a generation is kept. True when it was removed.
 */
export async function removeUnbuiltIndex(buckets: Buckets, redis: Redis, lockKey: string, name: string): Promise<boolean> {
  const bucket = await holdingBucket(buckets, name);
  if (!bucket) return false;
  return withEntityLock(redis, lockKey, async (held) => {
    const m = await readIndexManifest(bucket.root, name);
    if (!m || m.generations.length > 0 || m.generation !== null) return false;
    await held.assertHeld();
    await fs.rm(indexDir(bucket.root, name), { recursive: true, force: true });
    return true;
  });
}
