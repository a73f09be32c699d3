/**
 * One file into one dataset: convert to a Parquet part named after the job, then list it in the
 * manifest under the dataset's lock. Running the same job twice is a no-op the second time:
 * the manifest already names its part.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { commitPart, datasetPartName, type WriteMode } from '../catalog/catalog.ts';
import { readManifest } from '../catalog/manifest.ts';
import { NotFoundError } from '../errors.ts';
import type { ProgressFn } from '../progress.ts';
import type { DataRoot } from '../storage/data-root.ts';
import { csvToParquet } from './parquet-writer.ts';

export interface IngestFileRequest {
  root: DataRoot;
  redis: Redis;
  lockKey: string;
  dataset: string;
  mode: WriteMode;
  file: string;
  jobId: string;
  lineage: Record<string, unknown>;
  progress: ProgressFn;
}

export interface IngestFileResult {
  dataset: string;
  rows: number;
  bytes: number;
  version: number;
  dataset_rows: number;
  part: string;
}

export async function ingestFile(req: IngestFileRequest): Promise<IngestFileResult> {
  const dir = req.root.datasetDir(req.dataset);
  const partName = datasetPartName(req.jobId);
  const existing = await readManifest(dir);
  const done = existing?.parts.find((p) => p.job_id === req.jobId);
  if (existing && done) {
    const manifest = existing;
    return { dataset: req.dataset, rows: done.rows, bytes: done.bytes, version: manifest.version, dataset_rows: manifest.rows, part: done.file };
  }
  await fs.access(req.file).catch(() => {
    throw new NotFoundError(`source file ${path.basename(req.file)} is not in the staging area (was it already ingested or cleaned up?)`);
  });
  await fs.mkdir(path.join(dir, 'parts'), { recursive: true });
  const started = Date.now();
  const out = await csvToParquet(req.file, path.join(dir, partName), req.progress);
  const part = {
    file: partName,
    rows: out.rows,
    bytes: out.bytes,
    job_id: req.jobId,
    created_at: new Date().toISOString(),
    source: { ...req.lineage, seconds: (Date.now() - started) / 1000 },
  };
  const { manifest } = await commitPart({ ...req, part, schema: out.schema });
  await req.progress(1, { rows: out.rows });
  return { dataset: req.dataset, rows: out.rows, bytes: out.bytes, version: manifest.version, dataset_rows: manifest.rows, part: partName };
}
