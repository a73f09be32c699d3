/**
 * Owner operations on a whole dataset: marking PII columns public, and deleting it into the
 * bucket's trash folder (kept LAKEHOUSE_TRASH_DAYS, then purged). Both hold the dataset's lock,
 * so they never interleave with an ingest's commit.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { BadRequestError } from '../errors.ts';
import { withEntityLock } from '../redis/entity-lock.ts';
import type { Buckets } from '../storage/buckets.ts';
import { getDataset } from './catalog.ts';
import { readManifest, writeManifest, type Manifest } from './manifest.ts';
import { trashDir } from './trash.ts';

export interface DatasetLock {
  redis: Redis;
  lockKey: string;
}

export async function setPublicColumns(buckets: Buckets, lock: DatasetLock, name: string, columns: string[]): Promise<Manifest> {
  const { bucket } = await getDataset(buckets, name);
  const dir = bucket.root.datasetDir(name);
  return withEntityLock(lock.redis, lock.lockKey, async (held) => {
    const current = (await readManifest(dir))!;
    const unknown = columns.filter((c) => !current.schema.some((s) => s.name === c));
    if (unknown.length > 0) throw new BadRequestError(`no such column(s) in ${name}: ${unknown.join(', ')}`);
    const next = { ...current, version: current.version + 1, updated_at: new Date().toISOString(), public_columns: [...new Set(columns)].sort() };
    await held.assertHeld();
    await writeManifest(dir, next);
    return next;
  });
}

/** Moves the dataset's folder into its bucket's trash (same filesystem, so a rename). */
export async function trashDataset(buckets: Buckets, lock: DatasetLock, name: string): Promise<{ trashed_to: string }> {
  const { bucket } = await getDataset(buckets, name);
  return withEntityLock(lock.redis, lock.lockKey, async (held) => {
    const target = path.join(trashDir(bucket.root), `${name}--${new Date().toISOString().replace(/[:.]/g, '-')}`);
    await fs.mkdir(trashDir(bucket.root), { recursive: true });
    await held.assertHeld();
    await fs.rename(bucket.root.datasetDir(name), target);
    const now = new Date();
    await fs.utimes(target, now, now); // the trash clock starts at deletion, not at the last write
    return { trashed_to: path.relative(bucket.root.root, target) };
  });
}

/** Removes trashed datasets older than `days`. Returns what it removed. */
export async function purgeTrash(buckets: Buckets, days: number, now = Date.now()): Promise<string[]> {
  const removed: string[] = [];
  for (const b of buckets.all()) {
    const dir = trashDir(b.root);
    let entries: string[];
    try {
      entries = await fs.readdir(dir);
    } catch {
      continue;
    }
    for (const entry of entries) {
      const full = path.join(dir, entry);
      const { mtimeMs } = await fs.stat(full);
      if (now - mtimeMs >= days * 86_400_000) {
        await fs.rm(full, { recursive: true, force: true });
        removed.push(`${b.name}/${entry}`);
      }
    }
  }
  return removed;
}
