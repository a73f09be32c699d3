/**
 * The catalog: datasets are directories under each bucket's datasets folder, each with a
 * manifest. Listing reads manifests from disk, so any process on any host sees the same catalog
 * without a registry.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { ConflictError, NotFoundError } from '../errors.ts';
import { withEntityLock } from '../redis/entity-lock.ts';
import type { Bucket, Buckets } from '../storage/buckets.ts';
import type { DataRoot } from '../storage/data-root.ts';
import { ENTITY_NAME } from '../storage/names.ts';
import { trashParts } from './trash.ts';
import { COMMITTED_JOBS_KEPT, committedVersion, emptyManifest, readManifest, writeManifest, type Column, type Manifest, type Part, type PiiFlag } from './manifest.ts';

export type WriteMode = 'replace' | 'append';

export async function listDatasets(buckets: Buckets): Promise<Manifest[]> {
  const all = await Promise.all(buckets.all().map((b) => listBucket(b.root)));
  return all.flat().sort((a, b) => a.name.localeCompare(b.name));
}

async function listBucket(root: DataRoot): Promise<Manifest[]> {
  let names: string[];
  try {
    names = await fs.readdir(root.datasetsDir());
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const manifests = await Promise.all(names.filter((n) => ENTITY_NAME.test(n)).map((n) => readManifest(root.datasetDir(n))));
  return manifests.filter((m): m is Manifest => m !== undefined && m.parts.length > 0);
}

export async function getDataset(buckets: Buckets, name: string): Promise<{ manifest: Manifest; bucket: Bucket }> {
  const bucket = await buckets.locate(name);
  const manifest = bucket && (await readManifest(bucket.root.datasetDir(name)));
  if (!bucket || !manifest || manifest.parts.length === 0) throw new NotFoundError(`dataset ${JSON.stringify(name)} does not exist`);
  return { manifest, bucket };
}

/** Absolute paths of a dataset's live part files. */
export function partFiles(buckets: Buckets, manifest: Manifest): string[] {
  const root = buckets.get(manifest.bucket).root;
  const dir = root.datasetDir(manifest.name);
  return manifest.parts.map((p) => root.inside(dir, p.file));
}

export interface CommitRequest {
  redis: Redis;
  lockKey: string;
  bucket: Bucket;
  dataset: string;
  part: Part;
  schema: Column[];
  mode: WriteMode;
  pii?: PiiFlag[];
  incremental?: Manifest['incremental'];
}

export interface CommitOutcome {
  manifest: Manifest;
  /** False when nothing changed: this job's part was already listed, or its bytes already are. */
  applied: boolean;
  duplicate: boolean;
}

/**
 * Lists a finished part file in the manifest under the dataset's writer lock and bumps the
 * version. Idempotent per job id, and per content: a part whose fingerprint a live part already
 * has is not added (its file is removed). In replace mode the superseded part files move to the
 * bucket's trash (trash.ts) after the new manifest is in place, so a reader never sees a manifest
 * naming a missing file, and a replace can be undone within LAKEHOUSE_TRASH_DAYS.
 */
export async function commitPart(req: CommitRequest): Promise<CommitOutcome> {
  const root = req.bucket.root;
  const dir = root.datasetDir(req.dataset);
  const outcome = await withEntityLock(req.redis, req.lockKey, async (lock) => {
    const now = new Date().toISOString();
    const current = (await readManifest(dir)) ?? emptyManifest(req.dataset, req.bucket.name, now);
    // this job already committed (its part may have been superseded since): do nothing twice
    if (committedVersion(current, req.part.job_id) !== undefined || current.parts.some((p) => p.job_id === req.part.job_id)) {
      return { manifest: current, applied: false, duplicate: false, garbage: current.parts.some((p) => p.job_id === req.part.job_id) ? [] : [req.part] };
    }
    if (alreadyHolds(current, req.part.fingerprint, req.mode)) {
      return { manifest: current, applied: false, duplicate: true, garbage: [req.part] };
    }
    const replacing = req.mode === 'replace';
    const parts = replacing ? [req.part] : [...current.parts, req.part];
    const schema = replacing || current.parts.length === 0 ? req.schema : mergeSchema(current.schema, req.schema);
    const next: Manifest = {
      ...current,
      version: current.version + 1,
      updated_at: now,
      rows: parts.reduce((n, p) => n + p.rows, 0),
      bytes: parts.reduce((n, p) => n + p.bytes, 0),
      schema,
      parts,
      pii: mergePii(replacing ? [] : current.pii, req.pii ?? [], schema),
      ...(req.incremental ? { incremental: req.incremental } : {}),
      committed_jobs: [...current.committed_jobs, { job_id: req.part.job_id, version: current.version + 1 }].slice(-COMMITTED_JOBS_KEPT),
    };
    await lock.assertHeld();
    await writeManifest(dir, next);
    // replaced parts are recoverable: into the trash, still under the lock, so no other commit
    // sees them half-moved
    if (replacing) await trashParts(root, req.dataset, current.parts.map((p) => p.file));
    return { manifest: next, applied: true, duplicate: false, garbage: [] as Part[] };
  });
  await Promise.all(outcome.garbage.map((p) => fs.rm(root.inside(dir, p.file), { force: true })));
  return { manifest: outcome.manifest, applied: outcome.applied, duplicate: outcome.duplicate };
}

/** Append: some live part has these bytes. Replace: the dataset already is exactly these bytes. */
export function alreadyHolds(m: Manifest | undefined, fingerprint: string, mode: WriteMode): boolean {
  if (!m) return false;
  if (mode === 'replace') return m.parts.length === 1 && m.parts[0]!.fingerprint === fingerprint;
  return m.parts.some((p) => p.fingerprint === fingerprint);
}

/** Appends may add columns; a column that changes type would make the dataset unreadable as one table. */
export function mergeSchema(current: Column[], incoming: Column[]): Column[] {
  const merged = [...current];
  for (const col of incoming) {
    const existing = current.find((c) => c.name === col.name);
    if (!existing) merged.push(col);
    else if (existing.type !== col.type) {
      throw new ConflictError(`column ${JSON.stringify(col.name)} is ${existing.type} in the dataset but ${col.type} in the new data; schema changes other than new columns are refused`);
    }
  }
  return merged;
}

/** A column once flagged stays flagged (the strongest finding wins); only live columns are kept. */
function mergePii(current: PiiFlag[], found: PiiFlag[], schema: Column[]): PiiFlag[] {
  const best = new Map<string, PiiFlag>();
  for (const f of [...current, ...found]) {
    const seen = best.get(f.column);
    if (!seen || f.confidence > seen.confidence) best.set(f.column, f);
  }
  return [...best.values()].filter((f) => schema.some((c) => c.name === f.column));
}

/** One file name per job id: readable, and a hash so ids that sanitise alike ("a.b", "a_b") never collide. */
export function datasetPartName(jobId: string): string {
  const safe = jobId.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 80);
  return path.join('parts', `part-${safe}-${createHash('sha256').update(jobId).digest('hex').slice(0, 12)}.parquet`);
}
