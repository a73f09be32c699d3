/**
 * What a generation directory holds. Written once by hnsw-build.ts, read by hnsw-searcher.ts:
 *
 *   gen-<n>/hnsw.bin          hnswlib graph and vectors; label = the row's position in the build
 *   gen-<n>/labels.parquet    label INTEGER, doc_id VARCHAR, chunk_id VARCHAR (one row per label, in label order)
 *   gen-<n>/generation.json   how it was built ({@link GenerationMeta})
 *   gen-<n>/deleted.parquet   label INTEGER: labels marked deleted (tombstones), in label order. Written by
 *                             hnsw-extend.ts; absent in a fresh build, which has none
 *
 * Labels are dense (0 … count-1) so the label → chunk map is two arrays in memory, and the
 * mapping is Parquet because it is as long as the index and DuckDB reads it back in one scan.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';

export const HNSW_FILE = 'hnsw.bin';
export const LABELS_FILE = 'labels.parquet';
export const META_FILE = 'generation.json';
/**
 * The labels an extended generation holds as tombstones. hnswlib saves markDelete in hnsw.bin
 * too (a flag in each element's level-0 header, counted again by loadIndex), but it offers no
 * way to list the deleted labels; this file is how a loader knows them without probing each.
 */
export const DELETED_FILE = 'deleted.parquet';

/**
 * hnswlib's `cosine` space: its distance is 1 − cos, so score = 1 − distance is the cosine
 * similarity. With L2-normalised vectors it ranks exactly like `ip` (the recall measured here
 * was identical) and costs one normalisation per insert and query; in exchange a slightly
 * unnormalised provider vector or a caller's raw query vector still scores as a true cosine.
 */
export const SPACE = 'cosine';

export const generationMetaSchema = z.object({
  format: z.literal(1),
  space: z.literal(SPACE),
  dims: z.number().int().min(1),
  count: z.number().int().min(1),
  m: z.number().int().min(2),
  ef_construction: z.number().int().min(1),
  ef_search: z.number().int().min(1).describe('the ef a loader uses when the caller names none'),
  seed: z.number().int(),
  seconds: z.number().min(0),
  built_at: z.string(),
  deleted: z.number().int().min(0).optional().describe('labels in deleted.parquet; absent in a fresh build (none)'),
  base: z.string().optional().describe('the generation directory this one extended (hnsw-extend.ts); absent in a fresh build'),
});

export type GenerationMeta = z.infer<typeof generationMetaSchema>;

export async function readGenerationMeta(dir: string): Promise<GenerationMeta> {
  return generationMetaSchema.parse(JSON.parse(await fs.readFile(path.join(dir, META_FILE), 'utf8')));
}
