/**
 * One source into one dataset: fingerprint, convert to a Parquet part named after the job, scan
 * it for PII, then list it in the manifest under the dataset's lock. Safe to run twice: a job
 * whose part is listed returns what it did; bytes the dataset already holds are a no-op that
 * says `duplicate: true`.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { alreadyHolds, commitPart, datasetPartName, type WriteMode } from '../catalog/catalog.ts';
import { committedVersion, readManifest, type Column, type Manifest, type Part } from '../catalog/manifest.ts';
import { NotFoundError } from '../errors.ts';
import { detectPii } from '../pii/detect.ts';
import type { ProgressFn } from '../progress.ts';
import type { Bucket, Buckets } from '../storage/buckets.ts';
import { knownFingerprint } from './fingerprint.ts';
import { detectFormat, type FileFormat } from './formats/file-format.ts';
import { fileToParquet, type OnError, type Rejects } from './formats/to-parquet.ts';
import { commitRejects, REJECTS_SUFFIX } from './rejects.ts';
import { dbToParquet, type DbSourceSpec } from './sources/db-source.ts';

export type ResolvedSource =
  | {
      kind: 'upload' | 'inbox'; file: string; filename?: string; format: FileFormat | 'auto'; splitMarkdown?: boolean;
      /** CSV/TSV bad records: fail (default) or skip into `<dataset>_rejects` (rejects.ts). */
      onError?: OnError;
      /** With skip: more bad records than this fail the job. @defaultValue DEFAULT_MAX_REJECTS */
      maxRejects?: number;
    }
  | { kind: 'postgres' | 'mysql'; spec: DbSourceSpec; dsnRedacted: string };

export interface IngestRequest {
  buckets: Buckets;
  redis: Redis;
  lockKey: string;
  dataset: string;
  bucket?: string;
  mode: WriteMode;
  jobId: string;
  source: ResolvedSource;
  progress: ProgressFn;
  /**
   * The lock of `<dataset>_rejects`, taken when skipped records are committed there.
   * @defaultValue `lockKey` + `_rejects` (the dataset lock key ends with the dataset's name)
   */
  rejectsLockKey?: string;
}

export interface IngestResult {
  dataset: string;
  bucket: string;
  rows: number;
  bytes: number;
  version: number;
  dataset_rows: number;
  part: string | null;
  duplicate: boolean;
  fingerprint: string;
  /** Records left out by `on_error: "skip"`. */
  rejected_rows: number;
  /** Where they are, when there are any. */
  rejects_dataset: string | null;
}

interface Converted {
  rows: number;
  bytes: number;
  schema: Column[];
  fingerprint: string;
  lineage: Record<string, unknown>;
  incremental?: Manifest['incremental'];
  rejects?: Rejects;
}

export async function ingestSource(req: IngestRequest): Promise<IngestResult> {
  const bucket = await req.buckets.forWrite(req.dataset, req.bucket);
  const dir = bucket.root.datasetDir(req.dataset);
  const before = await readManifest(dir);
  const done = before?.parts.find((p) => p.job_id === req.jobId);
  if (before && done) return result(req, bucket, before, done, false);
  if (committedVersion(before, req.jobId) !== undefined) return supersededResult(req, bucket, before!);

  await fs.mkdir(path.join(dir, 'parts'), { recursive: true });
  const partName = datasetPartName(req.jobId);
  const target = path.join(dir, partName);
  await removeStaleTemps(target);
  try {
    return await convertAndCommit(req, bucket, before, partName, target);
  } catch (err) {
    // Leave the data root as if the job never ran: no orphan part, and no empty dataset folder
    // (which would otherwise pin a never-created dataset to this bucket). A part the manifest
    // already lists (the failure came after the commit) stays: it is the dataset's data now.
    const listed = (await readManifest(dir).catch(() => undefined))?.parts.some((p) => p.job_id === req.jobId);
    if (!listed) {
      await fs.rm(target, { force: true });
      if (!before) await fs.rmdir(path.join(dir, 'parts')).then(() => fs.rmdir(dir)).catch(() => {});
    }
    throw err;
  }
}

async function convertAndCommit(req: IngestRequest, bucket: Bucket, before: Manifest | undefined, partName: string, target: string): Promise<IngestResult> {
  const started = new Date().toISOString();
  const converted = isDatabase(req.source)
    ? await fromDatabase(req.source, target, before, req.progress)
    : await fromFile(req.source, target, before, req.mode, req.progress);
  if ('duplicate' in converted) return duplicateResult(req, bucket, before, converted.fingerprint);
  if (converted.rejects && converted.rejects.count > 0) {
    // Before the good rows: a retry after this finds its rejects committed and adds them once.
    const rejectsDataset = await commitRejects({
      buckets: req.buckets, redis: req.redis, lockKey: req.rejectsLockKey ?? req.lockKey + REJECTS_SUFFIX, dataset: req.dataset, bucket: bucket.name,
      jobId: req.jobId, filename: String(converted.lineage['filename'] ?? ''), fingerprint: converted.fingerprint, records: converted.rejects.records,
      lineage: { ...converted.lineage, host: os.hostname(), rejects_of: req.dataset },
    });
    converted.lineage = { ...converted.lineage, rejected_rows: converted.rejects.count, rejects_dataset: rejectsDataset };
  }
  if (converted.rows === 0 && req.mode === 'append' && before && before.parts.length > 0) {
    await fs.rm(target, { force: true }); // nothing new (an incremental run with no new rows): no empty part
    await req.progress(1, { rows: 0 });
    const rejects = converted.lineage['rejects_dataset'];
    return {
      ...duplicateResult(req, bucket, before, converted.fingerprint), duplicate: false,
      rejected_rows: converted.rejects?.count ?? 0, rejects_dataset: typeof rejects === 'string' ? rejects : null,
    };
  }

  await req.progress(0.92, { rows: converted.rows, phase: 'pii scan' });
  const pii = await detectPii(target, converted.schema);
  const part: Part = {
    file: partName,
    rows: converted.rows,
    bytes: converted.bytes,
    job_id: req.jobId,
    created_at: new Date().toISOString(),
    fingerprint: converted.fingerprint,
    lineage: { ...converted.lineage, host: os.hostname(), started_at: started, finished_at: new Date().toISOString() } as Part['lineage'],
  };
  const outcome = await commitPart({
    redis: req.redis, lockKey: req.lockKey, bucket, dataset: req.dataset, part, schema: converted.schema, mode: req.mode, pii,
    ...(converted.incremental ? { incremental: converted.incremental } : {}),
  });
  if (outcome.duplicate) return duplicateResult(req, bucket, outcome.manifest, converted.fingerprint);
  await req.progress(1, { rows: converted.rows });
  return result(req, bucket, outcome.manifest, outcome.manifest.parts.find((p) => p.job_id === req.jobId) ?? part, false);
}

type FileSource = Extract<ResolvedSource, { kind: 'upload' | 'inbox' }>;
type DbSource = Extract<ResolvedSource, { kind: 'postgres' | 'mysql' }>;

const isDatabase = (s: ResolvedSource): s is DbSource => s.kind === 'postgres' || s.kind === 'mysql';

async function fromFile(
  source: FileSource, target: string, before: Manifest | undefined, mode: WriteMode, progress: ProgressFn,
): Promise<Converted | { duplicate: true; fingerprint: string }> {
  await fs.access(source.file).catch(() => {
    throw new NotFoundError(`source file ${path.basename(source.file)} is not there (already ingested, or cleaned up?)`);
  });
  await progress(0.01, { phase: 'fingerprint' });
  const fingerprint = await knownFingerprint(source.file);
  if (alreadyHolds(before, fingerprint, mode)) return { duplicate: true, fingerprint };
  const filename = source.filename ?? path.basename(source.file);
  const format = source.format === 'auto' ? await detectFormat(source.file, filename) : source.format;
  const docId = path.basename(filename, path.extname(filename));
  const out = await fileToParquet(source.file, target, {
    format, docId, path: filename, splitMarkdown: source.splitMarkdown ?? false,
    ...(source.onError ? { onError: source.onError } : {}), ...(source.maxRejects !== undefined ? { maxRejects: source.maxRejects } : {}),
    progress: (f, detail) => progress(0.05 + f * 0.85, { phase: 'convert', ...detail }),
  });
  return { ...out, fingerprint, lineage: { kind: source.kind, format, filename } };
}

async function fromDatabase(source: DbSource, target: string, before: Manifest | undefined, progress: ProgressFn): Promise<Converted> {
  const spec = { ...source.spec };
  const sourceKey = spec.table ?? spec.query ?? '';
  if (spec.incremental && spec.incremental.since === undefined) {
    const known = before?.incremental;
    // resume from the manifest's mark only when it belongs to the same column of the same source
    if (known && known.column === spec.incremental.column && known.source === sourceKey) {
      spec.incremental = { ...spec.incremental, since: known.high_water_mark };
    }
  }
  const out = await dbToParquet(spec, target, (f, detail) => progress(0.05 + f * 0.85, { phase: 'fetch', ...detail }));
  return {
    rows: out.rows,
    bytes: out.bytes,
    schema: out.schema,
    fingerprint: out.fingerprint,
    lineage: { kind: source.kind, dsn: source.dsnRedacted, statement: out.statement },
    ...(spec.incremental ? { incremental: { column: spec.incremental.column, high_water_mark: out.highWaterMark, source: sourceKey } } : {}),
  };
}

function result(req: IngestRequest, bucket: Bucket, m: Manifest, part: Part, duplicate: boolean): IngestResult {
  return {
    dataset: req.dataset, bucket: bucket.name, rows: part.rows, bytes: part.bytes, version: m.version,
    dataset_rows: m.rows, part: part.file, duplicate, fingerprint: part.fingerprint,
    rejected_rows: typeof part.lineage['rejected_rows'] === 'number' ? part.lineage['rejected_rows'] : 0,
    rejects_dataset: typeof part.lineage['rejects_dataset'] === 'string' ? part.lineage['rejects_dataset'] : null,
  };
}

/** A retried job whose commit a later replace has since superseded: it did its work; report, don't redo. */
function supersededResult(req: IngestRequest, bucket: Bucket, m: Manifest): IngestResult {
  return {
    dataset: req.dataset, bucket: bucket.name, rows: 0, bytes: 0, version: m.version, dataset_rows: m.rows, part: null, duplicate: false, fingerprint: '',
    rejected_rows: 0, rejects_dataset: null,
  };
}

/**
 * Temporary files of an earlier attempt of this job (killed mid-conversion): the part name is
 * the job's own, so any `.<part>.*.tmp` beside it is that attempt's leftover.
 */
async function removeStaleTemps(target: string): Promise<void> {
  const dir = path.dirname(target);
  const prefix = `.${path.basename(target)}.`;
  const names = await fs.readdir(dir).catch(() => [] as string[]);
  await Promise.all(names.filter((n) => n.startsWith(prefix) && n.endsWith('.tmp')).map((n) => fs.rm(path.join(dir, n), { force: true })));
}

function duplicateResult(req: IngestRequest, bucket: Bucket, m: Manifest | undefined, fingerprint: string): IngestResult {
  return {
    dataset: req.dataset, bucket: bucket.name, rows: 0, bytes: 0, version: m?.version ?? 0,
    dataset_rows: m?.rows ?? 0, part: null, duplicate: true, fingerprint, rejected_rows: 0, rejects_dataset: null,
  };
}
