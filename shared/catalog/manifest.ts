/**
 * A dataset's manifest: the one file that says which Parquet parts make up the dataset right now.
 * Readers trust only what the manifest lists, so a part file written but not yet listed (a crash
 * mid-ingest) is invisible. Every change bumps `version`.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '../storage/atomic-write.ts';

export const columnSchema = z.object({ name: z.string(), type: z.string() });

export const partSchema = z.object({
  file: z.string().describe('path relative to the dataset directory'),
  rows: z.number().int(),
  bytes: z.number().int(),
  job_id: z.string(),
  created_at: z.string(),
  source: z.record(z.string(), z.unknown()),
});

export const manifestSchema = z.object({
  name: z.string(),
  version: z.number().int(),
  created_at: z.string(),
  updated_at: z.string(),
  rows: z.number().int(),
  bytes: z.number().int(),
  schema: z.array(columnSchema),
  parts: z.array(partSchema),
});

export type Column = z.infer<typeof columnSchema>;
export type Part = z.infer<typeof partSchema>;
export type Manifest = z.infer<typeof manifestSchema>;

export const MANIFEST_FILE = 'manifest.json';

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

export function emptyManifest(name: string, now: string): Manifest {
  return { name, version: 0, created_at: now, updated_at: now, rows: 0, bytes: 0, schema: [], parts: [] };
}
