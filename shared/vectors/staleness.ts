/**
 * Staleness: an ingest that changes a dataset marks every index built from it stale
 * (`stale_since`), and says which of them refresh on append, so the ingest can enqueue their
 * refresh. A committed generation clears the mark (`withGeneration` in index-manifest.ts, via
 * `commitGeneration`) — unless it reflects an older dataset version than the one that made the
 * index stale, so a refresh racing an ingest never hides the ingest's rows.
 *
 * Indexes are found by scanning `indexes/<name>/manifest.json` in every bucket, as datasets are:
 * any process on any host sees the same list without a registry.
 */
import fs from 'node:fs/promises';
import type { Redis } from 'ioredis';
import { withEntityLock, type LockOptions } from '../redis/entity-lock.ts';
import type { Bucket, Buckets } from '../storage/buckets.ts';
import { ENTITY_NAME } from '../storage/names.ts';
import { currentGeneration, indexesDir, isStale, readIndexManifest, writeIndexManifest, type IndexManifest } from './index/index-manifest.ts';

export { isStale };

interface Located {
  manifest: IndexManifest;
  bucket: Bucket;
}

async function listBucket(bucket: Bucket): Promise<Located[]> {
  let names: string[];
  try {
    names = await fs.readdir(indexesDir(bucket.root));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const manifests = await Promise.all(names.filter((n) => ENTITY_NAME.test(n)).map((n) => readIndexManifest(bucket.root, n)));
  return manifests.flatMap((manifest) => (manifest ? [{ manifest, bucket }] : []));
}

async function locateAll(buckets: Buckets): Promise<Located[]> {
  const all = (await Promise.all(buckets.all().map(listBucket))).flat();
  return all.sort((a, b) => a.manifest.name.localeCompare(b.manifest.name) || a.bucket.name.localeCompare(b.bucket.name));
}

/** Every index in every bucket, by name; `{ stale: true }` keeps the stale ones (`GET /indexes?stale=true`). */
export async function listIndexes(buckets: Buckets, filter: { stale?: boolean } = {}): Promise<IndexManifest[]> {
  const all = (await locateAll(buckets)).map((l) => l.manifest);
  return filter.stale === undefined ? all : all.filter((m) => isStale(m) === filter.stale);
}

/** The indexes built from `dataset`, in every bucket, by name. */
export async function dependentIndexes(buckets: Buckets, dataset: string): Promise<IndexManifest[]> {
  return (await locateAll(buckets)).filter((l) => l.manifest.source.dataset === dataset).map((l) => l.manifest);
}

/**
 * Whether the current generation already reflects dataset version `datasetVersion` (or a newer
 * one): a refresh that finds this has nothing to do and answers without reading a file.
 */
export function isUpToDate(m: IndexManifest, datasetVersion: number): boolean {
  const reflected = currentGeneration(m)?.source_version ?? null;
  return reflected !== null && reflected >= datasetVersion;
}

/**
 * The manifest marked stale at `at` by a change that produced dataset version `sourceVersion`,
 * or undefined when nothing changes: it was already stale from an earlier moment (and version),
 * or its current generation already reflects that version (a retried ingest after the refresh).
 * Pure; the earliest `stale_since` and the newest source version are kept.
 */
export function withStale(m: IndexManifest, at: string, now: string, sourceVersion?: number): IndexManifest | undefined {
  if (sourceVersion !== undefined && isUpToDate(m, sourceVersion)) return undefined;
  const since = m.stale_since !== null && Date.parse(m.stale_since) <= Date.parse(at) ? m.stale_since : at;
  const known = m.stale_source_version ?? null;
  const version = sourceVersion === undefined ? known : Math.max(known ?? sourceVersion, sourceVersion);
  if (since === m.stale_since && version === known) return undefined;
  const next: IndexManifest = { ...m, version: m.version + 1, updated_at: now, stale_since: since };
  if (version !== null) next.stale_source_version = version;
  return next;
}

export interface MarkStaleRequest {
  buckets: Buckets;
  redis: Redis;
  /** The entity lock key of an index (the same one its builds and refreshes commit under). */
  lockKeyFor: (index: string) => string;
  dataset: string;
  /** When the dataset changed. @defaultValue now */
  at?: string;
  /** The dataset manifest version the change produced; lets a newer generation say it is covered. */
  sourceVersion?: number;
  lock?: LockOptions;
}

export interface MarkStaleOutcome {
  /** Indexes of the dataset that are stale now (newly or already), by name. */
  stale: string[];
  /** Those of them whose refresh policy is `on_append`: the ingest enqueues their refresh. */
  onAppend: string[];
  /** Those whose manifest this call wrote (the rest already said so). */
  changed: string[];
}

/**
 * Marks every index built from `dataset` stale, each under its own entity lock (re-reading the
 * manifest inside it), bumping its version when the manifest changes. Idempotent: a retried
 * ingest finds the marks in place and writes nothing.
 */
export async function markStale(req: MarkStaleRequest): Promise<MarkStaleOutcome> {
  const at = req.at ?? new Date().toISOString();
  if (Number.isNaN(Date.parse(at))) throw new RangeError(`stale time ${JSON.stringify(at)} is not a date`);
  const out: MarkStaleOutcome = { stale: [], onAppend: [], changed: [] };
  for (const { manifest, bucket } of (await locateAll(req.buckets)).filter((l) => l.manifest.source.dataset === req.dataset)) {
    const name = manifest.name;
    const result = await withEntityLock(
      req.redis,
      req.lockKeyFor(name),
      async (lock) => {
        const current = await readIndexManifest(bucket.root, name);
        if (!current || current.source.dataset !== req.dataset) return undefined; // removed or redefined meanwhile
        const next = withStale(current, at, new Date().toISOString(), req.sourceVersion);
        if (next) {
          await lock.assertHeld();
          await writeIndexManifest(bucket.root, next);
        }
        return { manifest: next ?? current, changed: next !== undefined };
      },
      req.lock,
    );
    if (!result || !isStale(result.manifest)) continue;
    out.stale.push(name);
    if (result.manifest.refresh_policy === 'on_append') out.onAppend.push(name);
    if (result.changed) out.changed.push(name);
  }
  return out;
}
