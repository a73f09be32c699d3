/**
 * An index's manifest: the registry entry of one vector index and the pointer to its current
 * generation. Readers trust only what it names: a generation directory that exists but is not
 * listed (a build that crashed before its commit) is invisible. Every change bumps `version`.
 *
 *   <bucket root>/indexes/<name>/manifest.json           this file
 *   <bucket root>/indexes/<name>/vectors/part-*.parquet  vectors, the source of truth (vectors-parquet.ts)
 *   <bucket root>/indexes/<name>/tombstones/part-*.parquet  chunk_ids deleted since (tombstones.ts)
 *   <bucket root>/indexes/<name>/gen-<n>/                one immutable build (hnsw-build.ts)
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { MANIFEST_FILE } from '../../catalog/manifest.ts';
import { BadRequestError } from '../../errors.ts';
import { nextCronRun } from '../../schedules/cadence.ts';
import { writeFileAtomic } from '../../storage/atomic-write.ts';
import { checkName, type DataRoot } from '../../storage/data-root.ts';
import { entityName } from '../../storage/names.ts';

/** Generations listed in the manifest; directories of older ones may be removed. */
export const KEEP_GENERATIONS = 3;

const count = z.number().int().min(0);
const positive = z.number().int().min(1);

export const buildStatsSchema = z.object({
  seconds: z.number().min(0),
  m: positive,
  ef_construction: positive,
  peak_rss_mb: z.number().min(0).optional(),
});

export const generationSchema = z.object({
  id: positive,
  created_at: z.string(),
  vectors_files: z.array(z.string()).describe('vectors Parquet files the build read, relative to the index directory'),
  count: count.describe('vectors in the HNSW graph, tombstones included'),
  deleted: count.describe('labels marked deleted since the build (tombstones)'),
  build: buildStatsSchema,
  tombstone_files: z
    .array(z.string())
    .default([])
    .describe('tombstone Parquet files (chunk_id per row), relative to the index directory; each row cancels one occurrence of the chunk_id in vectors_files (refresh-diff.ts)'),
  source_version: count
    .nullable()
    .default(null)
    .describe('the source dataset manifest version this generation reflects; null when not recorded'),
});

const cronPolicy = z.object({ cron: z.string().trim().min(1).max(256) }).superRefine((p, ctx) => {
  const next = nextCronRun(p.cron, { from: Date.now() });
  if ('problem' in next) ctx.addIssue({ code: 'custom', message: next.problem, path: ['cron'] });
});

export const refreshPolicySchema = z.union([z.enum(['manual', 'on_append']), cronPolicy]);

export const indexManifestSchema = z.object({
  name: entityName,
  bucket: z.string(),
  version: count,
  created_at: z.string(),
  updated_at: z.string(),
  source: z.object({ dataset: entityName, id_column: z.string().min(1), text_column: z.string().min(1) }),
  embedding: z.object({
    provider: z.string().min(1).describe('the name of an embedding provider configured on the server; its URL is looked up at use'),
    kind: z.enum(['local', 'ollama', 'openai']).optional().describe('the protocol of the provider it was built with (absent in manifests written before named providers: then the provider name is the kind)'),
    model: z.string().min(1),
    dims: positive,
    normalized: z.boolean(),
    // no `url`: older manifests recorded one; parsing strips it, so it is neither used nor shown
  }),
  chunking: z
    .object({ size: positive, overlap: count })
    .refine((c) => c.overlap < c.size, { message: 'overlap must be smaller than size', path: ['overlap'] }),
  hnsw: z.object({ m: z.number().int().min(2).max(100), ef_construction: positive, ef_search: positive }),
  generation: positive.nullable().describe('the current generation; null until the first build is committed'),
  generations: z.array(generationSchema).describe(`the last ${KEEP_GENERATIONS}, oldest first`),
  stale_since: z.string().nullable().describe('when the source changed after the current generation was built'),
  stale_source_version: count
    .nullable()
    .optional()
    .describe('the newest source dataset version seen while stale; a generation reflecting an older version does not clear stale_since'),
  refresh_policy: refreshPolicySchema,
  stats: z.object({ docs: count, chunks: count }),
});

export type BuildStats = z.infer<typeof buildStatsSchema>;
/**
 * A generation as a build hands it to `commitGeneration`: fields added later (`tombstone_files`,
 * `source_version`) may be left out and take their defaults. A manifest holds {@link StoredGeneration}s.
 */
export type GenerationRecord = z.input<typeof generationSchema>;
/** A generation as a parsed manifest lists it: every field present. */
export type StoredGeneration = z.output<typeof generationSchema>;
export type RefreshPolicy = z.infer<typeof refreshPolicySchema>;
export type IndexManifest = z.infer<typeof indexManifestSchema>;

/** What a caller chooses when it creates an index; the rest starts empty. */
export type IndexDefinition = Pick<IndexManifest, 'name' | 'bucket' | 'source' | 'embedding' | 'chunking' | 'hnsw' | 'refresh_policy'>;

export function indexesDir(root: DataRoot): string {
  return path.join(root.root, 'indexes');
}

export function indexDir(root: DataRoot, name: string): string {
  return root.inside(indexesDir(root), checkName(name, 'index'));
}

export function vectorsDir(root: DataRoot, name: string): string {
  return path.join(indexDir(root, name), 'vectors');
}

export function generationDirName(gen: number): string {
  if (!Number.isSafeInteger(gen) || gen < 1) throw new BadRequestError(`generation ${gen} is not a positive integer`);
  return `gen-${gen}`;
}

export function generationDir(root: DataRoot, name: string, gen: number): string {
  return path.join(indexDir(root, name), generationDirName(gen));
}

/** Absolute paths of the vectors files a generation was built from. */
export function generationVectorFiles(root: DataRoot, manifest: IndexManifest, gen: GenerationRecord): string[] {
  const dir = indexDir(root, manifest.name);
  return gen.vectors_files.map((f) => root.inside(dir, f));
}

/** Absolute paths of a generation's tombstone files (none for a fresh build). */
export function generationTombstoneFiles(root: DataRoot, manifest: IndexManifest, gen: GenerationRecord): string[] {
  const dir = indexDir(root, manifest.name);
  return (gen.tombstone_files ?? []).map((f) => root.inside(dir, f));
}

export function currentGeneration(manifest: IndexManifest): StoredGeneration | undefined {
  return manifest.generations.find((g) => g.id === manifest.generation);
}

export async function readIndexManifest(root: DataRoot, name: string): Promise<IndexManifest | undefined> {
  let text: string;
  try {
    text = await fs.readFile(path.join(indexDir(root, name), MANIFEST_FILE), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  return indexManifestSchema.parse(JSON.parse(text));
}

/** Validates and writes atomically; the caller holds the index's entity lock and has bumped the version. */
export async function writeIndexManifest(root: DataRoot, manifest: IndexManifest): Promise<void> {
  const valid = indexManifestSchema.parse(manifest);
  const dir = indexDir(root, valid.name);
  await fs.mkdir(dir, { recursive: true });
  await writeFileAtomic(path.join(dir, MANIFEST_FILE), JSON.stringify(valid, null, 2) + '\n');
}

export function newIndexManifest(def: IndexDefinition, now: string): IndexManifest {
  return { ...def, version: 0, created_at: now, updated_at: now, generation: null, generations: [], stale_since: null, stats: { docs: 0, chunks: 0 } };
}

/**
 * The manifest after `gen` becomes current: listed last (its defaults filled in), the oldest
 * dropped beyond {@link KEEP_GENERATIONS}, no longer stale, version bumped. Pure, so a retried
 * commit can check first whether its generation is already there.
 *
 * Stale stays set when both sides know versions and the generation reflects an older source
 * version than the newest one that made the index stale: a refresh that read version 5 while an
 * ingest committed version 6 must not hide version 6.
 */
export function withGeneration(m: IndexManifest, gen: GenerationRecord, stats: IndexManifest['stats'], now: string): IndexManifest {
  const stored = generationSchema.parse(gen);
  const generations = [...m.generations.filter((g) => g.id !== stored.id), stored].slice(-KEEP_GENERATIONS);
  const { stale_source_version: staleVersion, ...rest } = m;
  const covers = stored.source_version === null || staleVersion === null || staleVersion === undefined || stored.source_version >= staleVersion;
  const stale = covers ? { stale_since: null } : { stale_since: m.stale_since, stale_source_version: staleVersion };
  return { ...rest, version: m.version + 1, updated_at: now, generation: stored.id, generations, ...stale, stats };
}

/** Whether the source changed after the current generation (or the index was never built since). */
export function isStale(m: IndexManifest): boolean {
  return m.stale_since !== null;
}
