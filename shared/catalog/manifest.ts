/**
 * A dataset's manifest: the one file that says which Parquet parts make up the dataset right now.
 * Readers trust only what the manifest lists, so a part file written but not yet listed (a crash
 * mid-ingest) is invisible. Every change bumps `version`.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { redactDsn } from '../redact.ts';
import { writeFileAtomic } from '../storage/atomic-write.ts';

export const columnSchema = z.object({ name: z.string(), type: z.string() });

export const lineageSchema = z
  .object({
    kind: z.string().describe('upload | inbox | postgres | mysql'),
    format: z.string().optional(),
    filename: z.string().nullable().optional(),
    // redacted again whenever a manifest is read: parts written by older versions may hold a regex-redacted DSN
    dsn: z
      .string()
      .overwrite((d) => (d.startsWith('connection:') ? d : redactDsn(d)))
      .optional()
      .describe('redacted: the password never appears'),
    statement: z.string().optional(),
    host: z.string(),
    started_at: z.string(),
    finished_at: z.string(),
  })
  .catchall(z.unknown());

export const partSchema = z.object({
  file: z.string().describe('path relative to the dataset directory'),
  rows: z.number().int(),
  bytes: z.number().int(),
  job_id: z.string(),
  created_at: z.string(),
  fingerprint: z.string().describe('sha256 of the source bytes (files) or of the fetched rows (databases)'),
  lineage: lineageSchema,
});

export const piiFlagSchema = z.object({ column: z.string(), kind: z.string(), confidence: z.number() });

export const incrementalSchema = z.object({
  column: z.string(),
  high_water_mark: z.union([z.string(), z.number()]).nullable(),
  source: z.string().describe('the table or query it belongs to'),
});

export const manifestSchema = z.object({
  name: z.string(),
  bucket: z.string(),
  version: z.number().int(),
  created_at: z.string(),
  updated_at: z.string(),
  rows: z.number().int(),
  bytes: z.number().int(),
  schema: z.array(columnSchema),
  parts: z.array(partSchema),
  pii: z.array(piiFlagSchema).default([]),
  public_columns: z.array(z.string()).default([]).describe('PII columns the owner made visible to readers'),
  incremental: incrementalSchema.optional(),
  committed_jobs: z
    .array(z.object({ job_id: z.string(), version: z.number().int() }))
    .default([])
    .describe('the last jobs (COMMITTED_JOBS_KEPT) that changed the dataset: a retried job finds itself here even after a replace superseded its part'),
});

export type Column = z.infer<typeof columnSchema>;
export type Part = z.infer<typeof partSchema>;
export type PiiFlag = z.infer<typeof piiFlagSchema>;
export type Manifest = z.infer<typeof manifestSchema>;

export const MANIFEST_FILE = 'manifest.json';
export const COMMITTED_JOBS_KEPT = 1_000;

/** The version a job committed, if it did (its part may since have been superseded). */
export function committedVersion(m: Manifest | undefined, jobId: string): number | undefined {
  return m?.committed_jobs.find((c) => c.job_id === jobId)?.version;
}

export async function readManifest(datasetDir: string): Promise<Manifest | undefined> {
  let text: string;
  try {
    text = await fs.readFile(path.join(datasetDir, MANIFEST_FILE), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  return manifestSchema.parse(JSON.parse(text));
}

export async function writeManifest(datasetDir: string, manifest: Manifest): Promise<void> {
  await writeFileAtomic(path.join(datasetDir, MANIFEST_FILE), JSON.stringify(manifest, null, 2) + '\n');
}

export function emptyManifest(name: string, bucket: string, now: string): Manifest {
  return { name, bucket, version: 0, created_at: now, updated_at: now, rows: 0, bytes: 0, schema: [], parts: [], pii: [], public_columns: [], committed_jobs: [] };
}

/** Columns readers see as `***`: flagged as PII and not made public by the owner. */
export function maskedColumns(m: Manifest): string[] {
  return [...new Set(m.pii.map((p) => p.column))].filter((c) => !m.public_columns.includes(c));
}
