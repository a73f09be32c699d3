/**
 * Where an `on_error: "skip"` ingest keeps the CSV/TSV records it left out: the dataset
 * `<dataset>_rejects`, one row per record (job, file, line, error, raw text), appended through the
 * normal commit path — so a user reads them like any dataset (preview, SQL), under the same roles
 * and PII masking, and a retried job adds them once.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { commitPart, datasetPartName } from '../catalog/catalog.ts';
import { readManifest, type Part } from '../catalog/manifest.ts';
import { detectPii } from '../pii/detect.ts';
import type { Buckets } from '../storage/buckets.ts';
import type { BadRecord } from './formats/csv-check.ts';
import { copyToParquet, describeParquet, openConnection } from './formats/parquet-sink.ts';
import { commitTempFile, tempPathFor } from '../storage/atomic-write.ts';

export const REJECTS_SUFFIX = '_rejects';

export function rejectsDatasetName(dataset: string): string {
  return `${dataset}${REJECTS_SUFFIX}`;
}

const TABLE = 'lakehouse_rejects';

export interface RejectsCommit {
  buckets: Buckets;
  redis: Redis;
  lockKey: string;
  /** The dataset the good rows went to; the rejects go to its `_rejects` sibling in the same bucket. */
  dataset: string;
  bucket: string;
  jobId: string;
  filename: string;
  fingerprint: string;
  records: BadRecord[];
  lineage: Record<string, unknown>;
}

/** Appends the records to `<dataset>_rejects`; a job whose rejects are already there adds nothing. */
export async function commitRejects(req: RejectsCommit): Promise<string> {
  const name = rejectsDatasetName(req.dataset);
  // beside the dataset, unless an earlier `_rejects` already lives elsewhere
  const bucket = (await req.buckets.locate(name)) ?? req.buckets.get(req.bucket);
  const dir = bucket.root.datasetDir(name);
  const before = await readManifest(dir);
  if (before?.parts.some((p) => p.job_id === req.jobId) || before?.committed_jobs.some((c) => c.job_id === req.jobId)) return name;
  await fs.mkdir(path.join(dir, 'parts'), { recursive: true });
  const partName = datasetPartName(req.jobId);
  const target = path.join(dir, partName);
  const tmp = tempPathFor(target);
  const conn = await openConnection();
  try {
    await conn.run(`CREATE OR REPLACE TEMP TABLE ${TABLE} (job_id VARCHAR, file VARCHAR, line BIGINT, error VARCHAR, raw VARCHAR)`);
    const appender = await conn.createAppender(TABLE);
    try {
      for (const r of req.records) {
        appender.appendVarchar(req.jobId);
        appender.appendVarchar(req.filename);
        appender.appendBigInt(BigInt(r.line));
        appender.appendVarchar(r.error);
        appender.appendVarchar(r.raw);
        appender.endRow();
      }
      appender.flushSync();
    } finally {
      appender.closeSync();
    }
    await copyToParquet(conn, `SELECT * FROM ${TABLE} ORDER BY line`, tmp);
    const out = await describeParquet(conn, tmp);
    await commitTempFile(tmp, target);
    const bytes = (await fs.stat(target)).size;
    // Raw lines carry whatever the source did (e-mails, phone numbers): flagged columns are masked for readers.
    const pii = await detectPii(target, out.schema);
    const now = new Date().toISOString();
    const part: Part = {
      file: partName, rows: out.rows, bytes, job_id: req.jobId, created_at: now,
      // the rejects of these source bytes, not the source: never "already held" by another job's part
      fingerprint: `rejects:${req.jobId}:${req.fingerprint}`,
      lineage: { ...req.lineage, started_at: now, finished_at: now } as Part['lineage'],
    };
    await commitPart({ redis: req.redis, lockKey: req.lockKey, bucket, dataset: name, part, schema: out.schema, mode: 'append', pii });
    return name;
  } catch (err) {
    await fs.rm(tmp, { force: true });
    const listed = (await readManifest(dir).catch(() => undefined))?.parts.some((p) => p.job_id === req.jobId);
    if (!listed) await fs.rm(target, { force: true });
    throw err;
  } finally {
    conn.closeSync();
  }
}
