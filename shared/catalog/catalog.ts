/**
 * The catalog: datasets are directories under the data root, each with a manifest. Listing reads
 * manifests from disk, so any process on any host sees the same catalog without a registry.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { ConflictError, NotFoundError } from '../errors.ts';
import { withEntityLock } from '../redis/entity-lock.ts';
import { ENTITY_NAME } from '../storage/names.ts';
import type { DataRoot } from '../storage/data-root.ts';
import { emptyManifest, readManifest, writeManifest, type Column, type Manifest, type Part } from './manifest.ts';

export type WriteMode = 'replace' | 'append';

export async function listDatasets(root: DataRoot): Promise<Manifest[]> {
  let names: string[];
  try {
    names = await fs.readdir(root.datasetsDir());
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const manifests = await Promise.all(names.filter((n) => ENTITY_NAME.test(n)).map((n) => readManifest(root.datasetDir(n))));
  return manifests.filter((m): m is Manifest => m !== undefined && m.parts.length > 0).sort((a, b) => a.name.localeCompare(b.name));
}

export async function getDataset(root: DataRoot, name: string): Promise<Manifest> {
  const manifest = await readManifest(root.datasetDir(name));
  if (!manifest || manifest.parts.length === 0) throw new NotFoundError(`dataset ${JSON.stringify(name)} does not exist`);
  return manifest;
}

/** Absolute paths of a dataset's live part files. */
export function partFiles(root: DataRoot, manifest: Manifest): string[] {
  const dir = root.datasetDir(manifest.name);
  return manifest.parts.map((p) => root.inside(dir, p.file));
}

export interface CommitRequest {
  root: DataRoot;
  redis: Redis;
  lockKey: string;
  dataset: string;
  part: Part;
  schema: Column[];
  mode: WriteMode;
}

export interface CommitOutcome {
  manifest: Manifest;
  /** False when this job's part was already listed: a retry of a job that had committed. */
  applied: boolean;
}

/**
 * Lists a finished part file in the manifest under the dataset's writer lock and bumps the
 * version. Idempotent per job id. In replace mode the superseded part files are removed after
 * the new manifest is in place, so a reader never sees a manifest naming a missing file.
 */
export async function commitPart(req: CommitRequest): Promise<CommitOutcome> {
  const dir = req.root.datasetDir(req.dataset);
  const outcome = await withEntityLock(req.redis, req.lockKey, async (lock) => {
    const now = new Date().toISOString();
    const current = (await readManifest(dir)) ?? emptyManifest(req.dataset, now);
    if (current.parts.some((p) => p.job_id === req.part.job_id)) return { manifest: current, applied: false, superseded: [] };
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
    };
    await lock.assertHeld();
    await writeManifest(dir, next);
    return { manifest: next, applied: true, superseded: replacing ? current.parts : [] };
  });
  await Promise.all(outcome.superseded.map((p) => fs.rm(req.root.inside(dir, p.file), { force: true })));
  return { manifest: outcome.manifest, applied: outcome.applied };
}

/** Appends may add columns; a column that changes type would make the dataset unreadable as one table. */
export function mergeSchema(current: Column[], incoming: Column[]): Column[] {
  const merged = [...current];
  for (const col of incoming) {
    const existing = current.find((c) => c.name === col.name);
    if (!existing) merged.push(col);
    else if (existing.type !== col.type) {
      throw new ConflictError(`column ${JSON.stringify(col.name)} is ${existing.type} in the dataset but ${col.type} in the new data`);
    }
  }
  return merged;
}

export function datasetPartName(jobId: string): string {
  return path.join('parts', `part-${jobId.replace(/[^A-Za-z0-9_-]/g, '_')}.parquet`);
}
