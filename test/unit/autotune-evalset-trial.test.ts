/**
 * Eval sets and trials on real files: 1,000 seeded 32-d unit vectors around 10 topic centres,
 * four chunks per document, in two vectors Parquet files. Ground truth is checked against an
 * in-memory brute force, tombstoned chunks against both, and trials build real hnswlib graphs in
 * a worker thread.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  generateEvalSet,
  listEvalSets,
  readEvalSet,
  saveEvalSet,
  suppliedEvalSet,
  type EvalSet,
} from '../../shared/autotune/evalset.ts';
import { runTrial, runTrialInThread, trialBuildDir, trialVectors, type TrialMeasure } from '../../shared/autotune/trial.ts';
import { BadRequestError, ConflictError, NotFoundError } from '../../shared/errors.ts';
import { DataRoot } from '../../shared/storage/data-root.ts';
import { exactTopK } from '../../shared/vectors/index/exact-search.ts';
import { LoadedGeneration } from '../../shared/vectors/index/hnsw-searcher.ts';
import {
  generationVectorFiles,
  indexDir,
  newIndexManifest,
  vectorsDir,
  withGeneration,
  type IndexManifest,
} from '../../shared/vectors/index/index-manifest.ts';
import { writeTombstones } from '../../shared/vectors/index/tombstones.ts';
import { writeVectorsParquet, type VectorRow } from '../../shared/vectors/index/vectors-parquet.ts';
import { mulberry32 as prng } from '../../shared/random.ts';

const N = 1000;
const DIMS = 32;
const TOPICS = 10;
const CHUNKS_PER_DOC = 4;
const INDEX = 'autotune_idx';


const rand = prng(5);
const gaussian = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());

function normalise(v: Float32Array): Float32Array {
  const n = Math.hypot(...v);
  return v.map((x) => x / n);
}

const centres = Array.from({ length: TOPICS }, () => normalise(Float32Array.from({ length: DIMS }, gaussian)));
const near = (centre: Float32Array) => normalise(Float32Array.from(centre, (c) => c + gaussian() * (1.5 / Math.sqrt(DIMS))));

/** Rows of `N / CHUNKS_PER_DOC` documents; chunk ids shaped as chunking.ts makes them. */
function makeRows(): VectorRow[] {
  return Array.from({ length: N }, (_, i) => {
    const doc = `d${Math.floor(i / CHUNKS_PER_DOC)}`;
    const seq = i % CHUNKS_PER_DOC;
    const text = `text ${seq} of ${doc}`;
    const content_hash = createHash('sha256').update(text).digest('hex');
    const vector = near(centres[Math.floor(rand() * TOPICS)]!);
    return { doc_id: doc, chunk_id: `${doc}#${seq}:${content_hash.slice(0, 12)}`, seq, text, content_hash, vector };
  });
}

/** Chunk ids of the exact top-k of `rows` for `query`, best first: the brute force the set must match. */
function bruteForce(query: Float32Array, rows: readonly VectorRow[], k: number): string[] {
  const flat = new Float32Array(rows.length * DIMS);
  rows.forEach((r, i) => flat.set(r.vector, i * DIMS));
  return exactTopK(query, flat, DIMS, k).map((r) => rows[r.index]!.chunk_id);
}

let tmp: string;
let root: DataRoot;
let rows: VectorRow[];
let manifest: IndexManifest;
/** The same index one generation later: 100 chunks tombstoned. */
let tombstoned: IndexManifest;
let deadIds: Set<string>;

before(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'autotune-'));
  root = new DataRoot(tmp);
  rows = makeRows();
  await fs.mkdir(vectorsDir(root, INDEX), { recursive: true });
  await writeVectorsParquet(path.join(vectorsDir(root, INDEX), 'part-1.parquet'), rows.slice(0, 600), DIMS);
  await writeVectorsParquet(path.join(vectorsDir(root, INDEX), 'part-2.parquet'), rows.slice(600), DIMS);
  const now = new Date().toISOString();
  const fresh = newIndexManifest(
    {
      name: INDEX, bucket: 'primary', source: { dataset: 'docs', id_column: 'id', text_column: 'body' },
      embedding: { provider: 'local', model: 'test', dims: DIMS, normalized: true }, chunking: { size: 500, overlap: 50 },
      hnsw: { m: 16, ef_construction: 200, ef_search: 100 }, refresh_policy: 'manual',
    },
    now,
  );
  const vectors_files = ['vectors/part-1.parquet', 'vectors/part-2.parquet'];
  const build = { seconds: 1, m: 16, ef_construction: 200 };
  manifest = withGeneration(fresh, { id: 1, created_at: now, vectors_files, count: N, deleted: 0, build }, { docs: N / CHUNKS_PER_DOC, chunks: N }, now);
  // every tenth row, so tombstones sit in both files and in every topic
  deadIds = new Set(rows.filter((_, i) => i % 10 === 3).map((r) => r.chunk_id));
  const tomb = await writeTombstones(indexDir(root, INDEX), 'gen2', deadIds);
  tombstoned = withGeneration(
    manifest,
    { id: 2, created_at: now, vectors_files, count: N, deleted: deadIds.size, build, tombstone_files: [tomb!.file] },
    { docs: N / CHUNKS_PER_DOC, chunks: N - deadIds.size },
    now,
  );
});

after(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

describe('generateEvalSet', () => {
  let set: EvalSet;
  before(async () => {
    set = await generateEvalSet({ root, index: manifest, n: 60, k: 10, seed: 7 });
  });

  it('samples n live chunks, each queried by its own vector and text', () => {
    assert.equal(set.kind, 'generated');
    assert.equal(set.queries.length, 60);
    assert.equal(set.generation, 1);
    assert.deepEqual(set.vectors_files, manifest.generations[0]!.vectors_files);
    const byText = new Map(rows.map((r) => [r.text, r]));
    assert.equal(new Set(set.queries.map((q) => q.query)).size, 60, 'distinct chunks');
    for (const q of set.queries) {
      const row = byText.get(q.query);
      assert.ok(row, `query ${q.query} is a chunk's text`);
      assert.deepEqual(Float32Array.from(q.vector), row.vector);
    }
  });

  it('has the exact top-k chunk ids of a brute force over all vectors as ground truth, and their documents', () => {
    for (const q of set.queries) {
      const exact = bruteForce(Float32Array.from(q.vector), rows, 10);
      assert.deepEqual(q.relevant_chunk_ids, exact);
      assert.deepEqual(q.relevant_doc_ids, [...new Set(exact.map((c) => c.split('#')[0]!))]);
    }
  });

  it('samples the same queries for the same seed and others for another', async () => {
    const again = await generateEvalSet({ root, index: manifest, n: 60, k: 10, seed: 7 });
    assert.deepEqual(again.queries, set.queries);
    const other = await generateEvalSet({ root, index: manifest, n: 60, k: 10, seed: 8 });
    assert.notDeepEqual(other.queries.map((q) => q.query), set.queries.map((q) => q.query));
  });

  it('never samples or ranks a tombstoned chunk, and its ground truth is the brute force over live vectors', async () => {
    const live = rows.filter((r) => !deadIds.has(r.chunk_id));
    const ts = await generateEvalSet({ root, index: tombstoned, n: 1000, k: 10, seed: 3 });
    assert.equal(ts.queries.length, live.length, 'n is capped at the live chunks');
    assert.deepEqual(ts.tombstone_files, tombstoned.generations.at(-1)!.tombstone_files);
    const deadTexts = new Set(rows.filter((r) => deadIds.has(r.chunk_id)).map((r) => r.text));
    for (const q of ts.queries) {
      assert.ok(!deadTexts.has(q.query), `sampled tombstoned chunk ${q.query}`);
      for (const c of q.relevant_chunk_ids!) assert.ok(!deadIds.has(c), `ground truth holds tombstoned ${c}`);
    }
    for (const q of ts.queries.slice(0, 100)) assert.deepEqual(q.relevant_chunk_ids, bruteForce(Float32Array.from(q.vector), live, 10));
  });

  it('embeds given texts instead of sampling, n of them by seed', async () => {
    const texts = ['alpha', 'beta', 'gamma', 'delta'];
    const vectors = new Map(texts.map((t) => [t, near(centres[t.length % TOPICS]!)]));
    const embedded: string[][] = [];
    const embed = async (batch: string[]) => {
      embedded.push(batch);
      return batch.map((t) => vectors.get(t)!);
    };
    const fromTexts = await generateEvalSet({ root, index: manifest, n: 3, k: 5, seed: 1, texts, embed });
    assert.equal(fromTexts.queries.length, 3);
    assert.deepEqual(embedded, [fromTexts.queries.map((q) => q.query)]);
    for (const q of fromTexts.queries) {
      assert.deepEqual(Float32Array.from(q.vector), vectors.get(q.query));
      assert.deepEqual(q.relevant_chunk_ids, bruteForce(vectors.get(q.query)!, rows, 5));
    }
    await assert.rejects(generateEvalSet({ root, index: manifest, n: 3, k: 5, seed: 1, texts }), BadRequestError);
    await assert.rejects(generateEvalSet({ root, index: manifest, n: 3, k: 5, seed: 1, texts, embed: async (b) => b.map(() => new Float32Array(8)) }), /8 dimensions/);
  });

  it('refuses bad sizes and an index without a generation', async () => {
    await assert.rejects(generateEvalSet({ root, index: manifest, n: 0, k: 10, seed: 1 }), /n 0/);
    await assert.rejects(generateEvalSet({ root, index: manifest, n: 5, k: 101, seed: 1 }), /k 101/);
    await assert.rejects(generateEvalSet({ root, index: { ...manifest, generation: null, generations: [] }, n: 5, k: 5, seed: 1 }), ConflictError);
    await assert.rejects(generateEvalSet({ root, index: manifest, n: 5, k: 5, seed: 1, id: '../Escape' }), BadRequestError);
  });
});

describe('eval set storage', () => {
  it('saves, reads back, lists; an id is never replaced; a missing one is a 404', async () => {
    const a = await generateEvalSet({ root, index: manifest, n: 5, k: 3, seed: 1, id: 'smoke' });
    const b = await suppliedEvalSet({ index: manifest, k: 5, items: [{ query: 'what is d1', relevant_doc_ids: ['d1'] }], embed: async (t) => t.map(() => rows[4]!.vector) });
    await saveEvalSet(root, a);
    await saveEvalSet(root, b);
    assert.deepEqual(await readEvalSet(root, INDEX, 'smoke'), a);
    assert.deepEqual(await readEvalSet(root, INDEX, b.id), b);
    assert.match(b.id, /^es-\d{14}-[0-9a-f]{6}$/);
    const listed = await listEvalSets(root, INDEX);
    assert.deepEqual(
      listed.map((s) => [s.id, s.kind, s.k, s.n, s.generation]).sort(),
      [[b.id, 'supplied', 5, 1, 1], ['smoke', 'generated', 3, 5, 1]].sort(),
    );
    await assert.rejects(saveEvalSet(root, { ...a, k: 4 }), ConflictError);
    assert.equal((await readEvalSet(root, INDEX, 'smoke')).k, 3);
    await assert.rejects(readEvalSet(root, INDEX, 'nope'), NotFoundError);
    await assert.rejects(readEvalSet(root, INDEX, '../manifest'), BadRequestError);
    assert.deepEqual(await listEvalSets(root, 'other_idx'), []);
  });

  it('validates supplied items', async () => {
    const embed = async (t: string[]) => t.map(() => rows[0]!.vector);
    await assert.rejects(suppliedEvalSet({ index: manifest, k: 5, items: [{ query: 'q', relevant_doc_ids: [] }], embed }), /relevant_doc_ids/);
    await assert.rejects(suppliedEvalSet({ index: manifest, k: 5, items: [], embed }), { name: 'ZodError', message: /expected array to have >=1 items/ });
  });
});

describe('runTrial', () => {
  let evalset: EvalSet;
  let high: TrialMeasure;
  let tiny: TrialMeasure;
  before(async () => {
    evalset = await generateEvalSet({ root, index: manifest, n: 100, k: 10, seed: 11 });
    const { files, tombstoneFiles } = await trialVectors(root, manifest, evalset);
    const base = { files, tombstoneFiles, dims: DIMS, evalset };
    high = await runTrialInThread({ ...base, config: { m: 16, ef_construction: 200, ef_search: 100 } });
    tiny = await runTrialInThread({ ...base, config: { m: 4, ef_construction: 10, ef_search: 10 } });
  });

  it('measures a high-ef config at recall ≥ 0.95 and a tiny config lower', () => {
    assert.ok(high.recall >= 0.95, `high recall ${high.recall}`);
    assert.ok(tiny.recall < high.recall, `tiny recall ${tiny.recall} vs high ${high.recall}`);
    assert.ok(tiny.recall > 0, `tiny recall ${tiny.recall}`);
  });

  it('reports latency percentiles in order, build time, memory and the vectors indexed', () => {
    for (const m of [high, tiny]) {
      assert.ok(m.p50_ms > 0 && m.p50_ms <= m.p95_ms, JSON.stringify(m));
      assert.ok(m.build_seconds > 0);
      assert.equal(m.count, N);
    }
    // 2·M links per vector at layer 0: the M 16 graph is the bigger one
    assert.ok(high.memory_mb > tiny.memory_mb && tiny.memory_mb > (N * DIMS * 4) / 2 ** 20, `${high.memory_mb} vs ${tiny.memory_mb}`);
  });

  it('indexes only live vectors when the generation has tombstones, and keeps the graph in outDir', async () => {
    const ts = await generateEvalSet({ root, index: tombstoned, n: 100, k: 10, seed: 11 });
    const src = await trialVectors(root, tombstoned, ts);
    assert.equal(src.generation, 2);
    const outDir = trialBuildDir(root, INDEX, 't-test-m16-efc200-efs100');
    const m = await runTrialInThread({ ...src, dims: DIMS, evalset: ts, config: { m: 16, ef_construction: 200, ef_search: 100 }, outDir });
    assert.equal(m.count, N - deadIds.size);
    assert.ok(m.recall >= 0.95, `recall ${m.recall}`);
    const kept = await LoadedGeneration.load(outDir, DIMS);
    assert.equal(kept.count, N - deadIds.size);
    assert.equal(kept.meta.ef_search, 100);
    for (let label = 0; label < kept.count; label++) assert.ok(!deadIds.has(kept.chunkId(label)));
    await assert.rejects(
      runTrialInThread({ ...src, dims: DIMS, evalset: ts, config: { m: 16, ef_construction: 200, ef_search: 100 }, outDir }),
      ConflictError,
      'a kept graph is never overwritten',
    );
  });

  it('counts relevant documents found for a supplied set', async () => {
    const flat = new Float32Array(N * DIMS);
    rows.forEach((r, i) => flat.set(r.vector, i * DIMS));
    const probe = rows[42]!.vector;
    const ranked = exactTopK(probe, flat, DIMS, N).map((r) => rows[r.index]!.doc_id);
    const nearest = ranked[0]!;
    const far = ranked.at(-1)!; // its chunks are all ranked far below the top 10
    assert.ok(!ranked.slice(0, 50).includes(far));
    const set = await suppliedEvalSet({
      index: manifest,
      k: 10,
      items: [{ query: 'one', relevant_doc_ids: [nearest] }, { query: 'two', relevant_doc_ids: [nearest, far] }],
      embed: async (t) => t.map(() => probe),
    });
    const src = await trialVectors(root, manifest, set);
    const m = await runTrial({ ...src, dims: DIMS, evalset: set, config: { m: 16, ef_construction: 200, ef_search: 100 } });
    assert.equal(m.recall, 0.75, 'one of one found, then one of two');
  });

  it('refuses k beyond a generated set’s ground truth, as a 400 across the thread', async () => {
    const src = await trialVectors(root, manifest, evalset);
    await assert.rejects(runTrialInThread({ ...src, dims: DIMS, evalset, k: 11, config: { m: 8, ef_construction: 20, ef_search: 20 } }), BadRequestError);
    await assert.rejects(runTrialInThread({ ...src, dims: DIMS, evalset, config: { m: 2, ef_construction: 20, ef_search: 20 } }), /m 2 is below the minimum 4/);
  });

  it('uses the vectors a generated set was computed over, and refuses when they are gone', async () => {
    const src = await trialVectors(root, tombstoned, evalset);
    assert.equal(src.generation, 1);
    assert.deepEqual(src.files, generationVectorFiles(root, manifest, manifest.generations[0]!));
    assert.deepEqual(src.tombstoneFiles, []);
    await assert.rejects(trialVectors(root, manifest, { ...evalset, vectors_files: ['vectors/part-9.parquet'] }), ConflictError);
    await assert.rejects(trialVectors(root, manifest, { ...evalset, index: 'other_idx' }), BadRequestError);
  });
});
