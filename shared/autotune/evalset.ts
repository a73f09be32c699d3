/**
 * Eval sets: the queries a trial is measured on, each with its ground truth.
 *
 *   <index dir>/evalsets/<id>.json   one set, written atomically, never changed
 *
 * - *generated*: queries sampled from the index's own live chunks (the chunk's vector is the
 *   query vector, its text the query) or embedded from texts a caller gives; the ground truth is
 *   the exact top-k live chunks by brute force (`relevant_chunk_ids`, best first) and their
 *   documents. The set records the vectors and tombstone files it was computed over, so a trial
 *   can index exactly those and its recall is exact (trial.ts `trialVectors`).
 * - *supplied*: `[{query, relevant_doc_ids}]` judged by a person; queries are embedded once, here,
 *   and recall counts the relevant documents found.
 *
 * A sampled chunk's nearest neighbour is itself, in the ground truth and in the graph alike; that
 * is one of k hits an approximate search has to find, as the earlier system's autogen sets had it.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { BadRequestError, ConflictError, NotFoundError } from '../errors.ts';
import { tempPathFor, writeFileAtomic } from '../storage/atomic-write.ts';
import type { DataRoot } from '../storage/data-root.ts';
import { entityName } from '../storage/names.ts';
import { scoreInto, TopK } from '../vectors/index/exact-search.ts';
import {
  currentGeneration,
  generationTombstoneFiles,
  generationVectorFiles,
  indexDir,
  type IndexManifest,
} from '../vectors/index/index-manifest.ts';
import { compactVectors } from '../vectors/index/tombstones.ts';
import { countVectors, readChunkMeta, readVectorBatches } from '../vectors/index/vectors-parquet.ts';
import { mulberry32 as prng } from '../random.ts';

export const EVALSETS_DIR = 'evalsets';
/** Queries per set: each costs a brute-force pass over the vectors and `dims` numbers of JSON. */
export const MAX_EVAL_QUERIES = 1000;
/** Ground-truth depth. */
export const MAX_EVAL_K = 100;

/** Caller-given ids become file names: lower-case so two ids never share a file on a case-insensitive disk. */
const EVALSET_ID = /^[a-z0-9][a-z0-9_-]{0,79}$/;

export const evalSetIdSchema = z
  .string()
  .regex(EVALSET_ID, 'an eval set id is 1–80 lower-case letters, digits, _ or -, starting with a letter or digit');

export type Embed = (texts: string[]) => Promise<Float32Array[]>;

const evalQuerySchema = z.object({
  query: z.string(),
  vector: z.array(z.number().refine(Number.isFinite, 'vector values must be finite')).min(1),
  relevant_doc_ids: z.array(z.string().min(1)).min(1),
  relevant_chunk_ids: z.array(z.string().min(1)).optional().describe('generated sets: the exact top-k live chunks, best first'),
});

export const evalSetSchema = z.object({
  id: evalSetIdSchema,
  index: entityName,
  kind: z.enum(['generated', 'supplied']),
  k: z.number().int().min(1).max(MAX_EVAL_K),
  created_at: z.string(),
  generation: z.number().int().min(1).nullable().describe('the index generation current when the set was made; null before the first build'),
  vectors_files: z.array(z.string()).describe('relative to the index directory: what the ground truth was computed over'),
  tombstone_files: z.array(z.string()),
  seed: z.number().int().optional().describe('generated sets: the sampling seed'),
  queries: z.array(evalQuerySchema).min(1).max(MAX_EVAL_QUERIES),
});

export type EvalQuery = z.infer<typeof evalQuerySchema>;
export type EvalSet = z.infer<typeof evalSetSchema>;

export interface EvalSetSummary {
  id: string;
  kind: EvalSet['kind'];
  k: number;
  /** Queries. */
  n: number;
  created_at: string;
  generation: number | null;
}

/** What a caller supplies: judged queries. */
export const suppliedItemsSchema = z
  .array(z.object({ query: z.string().trim().min(1, 'query must not be empty'), relevant_doc_ids: z.array(z.string().min(1)).min(1, 'relevant_doc_ids needs at least one doc id') }))
  .min(1)
  .max(MAX_EVAL_QUERIES);

export type SuppliedItem = z.infer<typeof suppliedItemsSchema>[number];

/** `es-<yyyymmddhhmmss>-<6 hex>`: sorts by creation, unique without coordination. */
export function newEvalSetId(now = new Date()): string {
  return `es-${now.toISOString().replace(/\D/g, '').slice(0, 14)}-${randomBytes(3).toString('hex')}`;
}

export function evalSetsDir(root: DataRoot, index: string): string {
  return path.join(indexDir(root, index), EVALSETS_DIR);
}

function checkEvalSetId(id: string): string {
  const valid = evalSetIdSchema.safeParse(id);
  if (!valid.success) throw new BadRequestError(`eval set id ${JSON.stringify(id)} is invalid: ${valid.error.issues[0]!.message}`);
  return valid.data;
}

function evalSetFile(root: DataRoot, index: string, id: string): string {
  return root.inside(evalSetsDir(root, index), `${checkEvalSetId(id)}.json`);
}

function checkCount(what: string, value: number, max: number): number {
  if (!Number.isInteger(value) || value < 1 || value > max) throw new BadRequestError(`${what} ${value} must be an integer in 1–${max}`);
  return value;
}

export interface GenerateEvalSetOptions {
  root: DataRoot;
  index: IndexManifest;
  /** Queries to sample; capped at the live chunks (or the texts) there are. */
  n: number;
  /** Ground-truth depth. */
  k: number;
  /** Sampling seed: the same seed over the same generation samples the same queries. */
  seed: number;
  /** Query texts to embed instead of sampling chunks; `n` of them are sampled when there are more. */
  texts?: string[];
  /** Required with `texts`: the index's embedding provider. */
  embed?: Embed;
  /** @defaultValue {@link newEvalSetId} */
  id?: string;
}

/**
 * A generated set over the index's current generation. Memory stays bounded: vectors are
 * streamed twice (sample, then score), holding the n query vectors and n·k candidates. The
 * scoring pass is n·rows·dims multiply-adds on this thread, yielding between 2,048-row batches.
 */
export async function generateEvalSet(opts: GenerateEvalSetOptions): Promise<EvalSet> {
  const gen = currentGeneration(opts.index);
  if (!gen) throw new ConflictError(`index ${opts.index.name} has no generation yet: build it before generating an eval set`);
  const n = checkCount('n', opts.n, MAX_EVAL_QUERIES);
  const k = checkCount('k', opts.k, MAX_EVAL_K);
  if (!Number.isSafeInteger(opts.seed)) throw new BadRequestError(`seed ${opts.seed} must be an integer`);
  if (opts.texts && !opts.embed) throw new BadRequestError('query texts need an embedding provider');
  const id = checkEvalSetId(opts.id ?? newEvalSetId());
  const dims = opts.index.embedding.dims;
  return withLiveVectors(generationVectorFiles(opts.root, opts.index, gen), generationTombstoneFiles(opts.root, opts.index, gen), async (files) => {
    const rows = await countVectors(files);
    if (rows === 0) throw new ConflictError(`index ${opts.index.name} holds no live vectors`);
    const rand = prng(opts.seed);
    const probes = opts.texts ? await embedTexts(sample(opts.texts, n, rand), opts.embed!, dims) : await sampleChunks(files, dims, rows, n, rand);
    const truth = await groundTruth(files, dims, probes.map((p) => p.vector), k);
    return {
      id,
      index: opts.index.name,
      kind: 'generated',
      k,
      created_at: new Date().toISOString(),
      generation: gen.id,
      vectors_files: [...gen.vectors_files],
      tombstone_files: [...gen.tombstone_files],
      seed: opts.seed,
      queries: probes.map((p, i) => ({
        query: p.text,
        vector: Array.from(p.vector),
        relevant_doc_ids: [...new Set(truth[i]!.map((h) => h.doc))],
        relevant_chunk_ids: truth[i]!.map((h) => h.chunk),
      })),
    };
  });
}

export interface SuppliedEvalSetOptions {
  index: IndexManifest;
  k: number;
  items: SuppliedItem[];
  embed: Embed;
  /** @defaultValue {@link newEvalSetId} */
  id?: string;
}

/** A supplied set: the items validated and their queries embedded. Save it with {@link saveEvalSet}. */
export async function suppliedEvalSet(opts: SuppliedEvalSetOptions): Promise<EvalSet> {
  const k = checkCount('k', opts.k, MAX_EVAL_K);
  const items = suppliedItemsSchema.parse(opts.items);
  const id = checkEvalSetId(opts.id ?? newEvalSetId());
  const probes = await embedTexts(items.map((i) => i.query), opts.embed, opts.index.embedding.dims);
  const gen = currentGeneration(opts.index);
  return {
    id,
    index: opts.index.name,
    kind: 'supplied',
    k,
    created_at: new Date().toISOString(),
    generation: gen?.id ?? null,
    vectors_files: [...(gen?.vectors_files ?? [])],
    tombstone_files: [...(gen?.tombstone_files ?? [])],
    queries: items.map((item, i) => ({ query: item.query, vector: Array.from(probes[i]!.vector), relevant_doc_ids: [...new Set(item.relevant_doc_ids)] })),
  };
}

/**
 * Writes the set as `<index dir>/evalsets/<id>.json`, atomically. An id names one set for good:
 * an existing file is not replaced (ConflictError), so a retried job should read its id first.
 */
export async function saveEvalSet(root: DataRoot, set: EvalSet): Promise<void> {
  const valid = evalSetSchema.parse(set);
  const file = evalSetFile(root, valid.index, valid.id);
  await fs.mkdir(path.dirname(file), { recursive: true });
  const tmp = tempPathFor(file);
  await writeFileAtomic(tmp, JSON.stringify(valid) + '\n');
  try {
    await fs.link(tmp, file); // link never replaces, so two writers of one id cannot both win
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new ConflictError(`eval set ${valid.id} of index ${valid.index} already exists`);
    throw err;
  } finally {
    await fs.rm(tmp, { force: true });
  }
}

export async function readEvalSet(root: DataRoot, index: string, id: string): Promise<EvalSet> {
  let text: string;
  try {
    text = await fs.readFile(evalSetFile(root, index, id), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError(`index ${index} has no eval set ${JSON.stringify(id)}`);
    throw err;
  }
  return evalSetSchema.parse(JSON.parse(text));
}

/** Every set of the index, oldest first. */
export async function listEvalSets(root: DataRoot, index: string): Promise<EvalSetSummary[]> {
  let names: string[];
  try {
    names = await fs.readdir(evalSetsDir(root, index));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const ids = names.filter((f) => f.endsWith('.json') && EVALSET_ID.test(f.slice(0, -5))).map((f) => f.slice(0, -5));
  const sets = await Promise.all(ids.map((id) => readEvalSet(root, index, id)));
  return sets
    .map((s) => ({ id: s.id, kind: s.kind, k: s.k, n: s.queries.length, created_at: s.created_at, generation: s.generation }))
    .sort((a, b) => a.created_at.localeCompare(b.created_at) || a.id.localeCompare(b.id));
}

/**
 * Runs `fn` over files holding exactly the live rows: `files` themselves without tombstones,
 * otherwise one compacted file (tombstones.ts: the last copy of each live chunk, in file order)
 * in a scratch directory removed afterwards. Trials index the same rows, so ground truth and
 * graph agree on what exists.
 */
export async function withLiveVectors<T>(files: readonly string[], tombstoneFiles: readonly string[], fn: (live: readonly string[]) => Promise<T>): Promise<T> {
  if (tombstoneFiles.length === 0) return fn(files);
  const scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'lakehouse-live-'));
  try {
    const outFile = path.join(scratch, 'live.parquet');
    await compactVectors({ files, tombstoneFiles, outFile });
    return await fn([outFile]);
  } finally {
    await fs.rm(scratch, { recursive: true, force: true });
  }
}

interface Probe {
  text: string;
  vector: Float32Array;
}

async function embedTexts(texts: string[], embed: Embed, dims: number): Promise<Probe[]> {
  const vectors = await embed(texts);
  if (vectors.length !== texts.length) throw new Error(`the embedder returned ${vectors.length} vectors for ${texts.length} texts`);
  return texts.map((text, i) => {
    const vector = vectors[i]!;
    if (vector.length !== dims) throw new BadRequestError(`query ${i} embedded to ${vector.length} dimensions, the index has ${dims}`);
    return { text, vector };
  });
}

/** `n` distinct rows of the `rows` in `files`, chosen by `rand`, with their vectors and texts. */
async function sampleChunks(files: readonly string[], dims: number, rows: number, n: number, rand: () => number): Promise<Probe[]> {
  const wanted = samplePositions(rows, Math.min(n, rows), rand);
  const picked: { chunk: string; vector: Float32Array }[] = [];
  let offset = 0;
  for await (const batch of readVectorBatches(files, dims)) {
    const end = offset + batch.chunk_ids.length;
    for (; picked.length < wanted.length && wanted[picked.length]! < end; ) {
      const r = wanted[picked.length]! - offset;
      picked.push({ chunk: batch.chunk_ids[r]!, vector: batch.vectors.slice(r * dims, (r + 1) * dims) });
    }
    offset = end;
    if (picked.length === wanted.length) break;
  }
  const meta = await readChunkMeta(files, picked.map((p) => p.chunk));
  return picked.map((p) => ({ text: meta.get(p.chunk)?.text ?? '', vector: p.vector }));
}

interface Hit {
  chunk: string;
  doc: string;
}

/**
 * The exact top-k rows of `files` for each query, best first. TopK keeps row positions only, so
 * after each batch the ids of positions still in some top-k are kept and the rest forgotten.
 */
async function groundTruth(files: readonly string[], dims: number, queries: Float32Array[], k: number): Promise<Hit[][]> {
  const tops = queries.map(() => new TopK(k));
  let ids = new Map<number, Hit>();
  let offset = 0;
  for await (const batch of readVectorBatches(files, dims)) {
    const rows = batch.chunk_ids.length;
    const kept = new Map<number, Hit>();
    queries.forEach((q, i) => {
      scoreInto(tops[i]!, q, batch.vectors, dims, offset);
      for (const { index } of tops[i]!.sorted()) {
        const hit = index >= offset ? { chunk: batch.chunk_ids[index - offset]!, doc: batch.doc_ids[index - offset]! } : ids.get(index)!;
        kept.set(index, hit);
      }
    });
    ids = kept;
    offset += rows;
  }
  return tops.map((top) => top.sorted().map((r) => ids.get(r.index)!));
}

/** Floyd's algorithm: `n` distinct positions in 0..rows-1, ascending, in O(n) memory. */
function samplePositions(rows: number, n: number, rand: () => number): number[] {
  const chosen = new Set<number>();
  for (let j = rows - n; j < rows; j++) {
    const t = Math.floor(rand() * (j + 1));
    chosen.add(chosen.has(t) ? j : t);
  }
  return [...chosen].sort((a, b) => a - b);
}

/** `n` of `items` in their given order, or all of them. */
function sample<T>(items: readonly T[], n: number, rand: () => number): T[] {
  if (items.length === 0) throw new BadRequestError('texts must hold at least one query');
  if (n >= items.length) return [...items];
  return samplePositions(items.length, n, rand).map((i) => items[i]!);
}

