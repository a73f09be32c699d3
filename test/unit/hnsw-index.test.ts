/**
 * HNSW generations end to end on real files: vectors Parquet → build → load → search, measured
 * against exact search. 20,000 seeded 64-d unit vectors drawn around 20 topic centres (a
 * Gaussian mixture, the shape sentence embeddings have; see the recall note in the test).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BadRequestError, ConflictError } from '../../shared/errors.ts';
import { DataRoot } from '../../shared/storage/data-root.ts';
import { exactTopK, recall } from '../../shared/vectors/index/exact-search.ts';
import { HNSW_FILE, LABELS_FILE, META_FILE } from '../../shared/vectors/index/generation-files.ts';
import { buildGeneration, type BuildResult } from '../../shared/vectors/index/hnsw-build.ts';
import { LoadedGeneration } from '../../shared/vectors/index/hnsw-searcher.ts';
import { exactThreshold, planFilteredSearch, wideningSchedule, widenUntil } from '../../shared/vectors/index/hybrid-plan.ts';
import { IndexCache } from '../../shared/vectors/index/index-cache.ts';
import { generationDir, indexDir, vectorsDir } from '../../shared/vectors/index/index-manifest.ts';
import { readChunkMeta, readVectorsByDocIds, writeVectorsParquet, type VectorRow } from '../../shared/vectors/index/vectors-parquet.ts';
import { mulberry32 as prng } from '../../shared/random.ts';

const N = 20_000;
const DIMS = 64;
const TOPICS = 20;
const QUERIES = 200;
const INDEX = 'recall_idx';


function gaussian(rand: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
}

function normalise(v: Float32Array): Float32Array {
  const n = Math.hypot(...v);
  for (let j = 0; j < v.length; j++) v[j]! /= n;
  return v;
}

/** Unit vectors around random topic centres; `topicOf` says which centre each came from. */
function mixture(seed: number, count: number): { vectors: Float32Array; topicOf: number[]; sample: () => Float32Array } {
  const rand = prng(seed);
  const centres = Array.from({ length: TOPICS }, () => normalise(Float32Array.from({ length: DIMS }, () => gaussian(rand))));
  const spread = 1.5 / Math.sqrt(DIMS);
  const draw = (topic: number) => normalise(Float32Array.from(centres[topic]!, (c) => c + gaussian(rand) * spread));
  const vectors = new Float32Array(count * DIMS);
  const topicOf: number[] = [];
  for (let i = 0; i < count; i++) {
    const topic = Math.floor(rand() * TOPICS);
    topicOf.push(topic);
    vectors.set(draw(topic), i * DIMS);
  }
  return { vectors, topicOf, sample: () => draw(Math.floor(rand() * TOPICS)) };
}

/** Three chunks per document; doc ids name the topic so filters can pick one. */
function rows(vectors: Float32Array, topicOf: number[], from: number, to: number): VectorRow[] {
  return Array.from({ length: to - from }, (_, k) => {
    const i = from + k;
    const doc = `t${topicOf[Math.floor(i / 3) * 3]}-d${Math.floor(i / 3)}`;
    return { doc_id: doc, chunk_id: `c${i}`, seq: i % 3, text: `chunk ${i} of ${doc}`, content_hash: `h${i}`, vector: vectors.slice(i * DIMS, (i + 1) * DIMS) };
  });
}

async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const f of (await fs.readdir(dir)).sort()) {
    const st = await fs.stat(path.join(dir, f));
    out[f] = `${st.mtimeMs}:${st.size}:${createHash('sha256').update(await fs.readFile(path.join(dir, f))).digest('hex')}`;
  }
  return out;
}

let tmp: string;
let root: DataRoot;
let data: ReturnType<typeof mixture>;
let allRows: VectorRow[];
let files: string[];
let built: BuildResult;
let progress: { fraction: number; outDirExisted: boolean; listing: string[] }[];
let gen1: LoadedGeneration;

before(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'hnsw-index-'));
  root = new DataRoot(tmp);
  data = mixture(7, N);
  allRows = rows(data.vectors, data.topicOf, 0, N);
  await fs.mkdir(vectorsDir(root, INDEX), { recursive: true });
  files = [path.join(vectorsDir(root, INDEX), 'part-1.parquet'), path.join(vectorsDir(root, INDEX), 'part-2.parquet')];
  await writeVectorsParquet(files[0]!, allRows.slice(0, 12_000), DIMS);
  await writeVectorsParquet(files[1]!, allRows.slice(12_000), DIMS);

  const outDir = generationDir(root, INDEX, 1);
  progress = [];
  built = await buildGeneration({
    files, dims: DIMS, m: 16, efConstruction: 200, efSearch: 100, seed: 1, outDir,
    progress: async (fraction) => {
      const listing = await fs.readdir(indexDir(root, INDEX));
      progress.push({ fraction, outDirExisted: listing.includes('gen-1'), listing });
    },
  });
  gen1 = await LoadedGeneration.load(outDir, DIMS);
});

after(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

describe('buildGeneration', () => {
  it('reports progress about every 1%, while the generation directory does not exist yet', (t) => {
    t.diagnostic(`build of ${N}×${DIMS} (m=16, efc=200): ${built.seconds.toFixed(2)} s, peak RSS ${built.peak_rss_mb} MB`);
    assert.equal(built.count, N);
    assert.ok(progress.length >= 95 && progress.length <= 101, `${progress.length} reports`);
    assert.equal(progress.at(-1)!.fraction, 1);
    progress.forEach((p, i) => i > 0 && assert.ok(p.fraction > progress[i - 1]!.fraction));
    assert.ok(progress.every((p) => !p.outDirExisted), 'gen-1 appears only once complete');
    assert.ok(progress.every((p) => p.listing.some((n) => /^\.gen-1\.[0-9a-f]+\.tmp$/.test(n))), 'the build writes under a temporary name');
  });

  it('leaves exactly the generation files and no temporary name', async () => {
    assert.deepEqual((await fs.readdir(indexDir(root, INDEX))).sort(), ['gen-1', 'vectors']);
    assert.deepEqual((await fs.readdir(generationDir(root, INDEX, 1))).sort(), [META_FILE, HNSW_FILE, LABELS_FILE].sort());
    assert.equal(gen1.meta.count, N);
    assert.equal(gen1.meta.space, 'cosine');
  });

  it('refuses to build into an existing generation directory', async () => {
    await assert.rejects(buildGeneration({ files, dims: DIMS, outDir: generationDir(root, INDEX, 1) }), ConflictError);
  });

  it('fails cleanly on vectors of another dimension: no directory, no temporary left', async () => {
    await assert.rejects(buildGeneration({ files, dims: 32, outDir: generationDir(root, INDEX, 9) }), /Cannot cast list with length 64 to array with length 32/);
    await assert.rejects(buildGeneration({ files: [], dims: DIMS, outDir: generationDir(root, INDEX, 9) }), BadRequestError);
    assert.deepEqual((await fs.readdir(indexDir(root, INDEX))).sort(), ['gen-1', 'vectors']);
  });

  it('a second build into gen-2 leaves gen-1 untouched, and both load', async () => {
    const before1 = await snapshot(generationDir(root, INDEX, 1));
    const second = await buildGeneration({ files: [files[1]!], dims: DIMS, m: 8, efConstruction: 50, outDir: generationDir(root, INDEX, 2) });
    assert.equal(second.count, N - 12_000);
    assert.deepEqual(await snapshot(generationDir(root, INDEX, 1)), before1);
    const gen2 = await LoadedGeneration.load(generationDir(root, INDEX, 2), DIMS);
    assert.equal(gen2.count, N - 12_000);
    assert.equal(gen2.chunkId(0), 'c12000', 'labels restart at 0 in the new generation');
    assert.equal(gen1.count, N);
  });
});

describe('LoadedGeneration', () => {
  it('reaches recall@10 ≥ 0.95 against exact search (m=16, efc=200, ef=100)', (t) => {
    const queries = Array.from({ length: QUERIES }, () => data.sample());
    const started = performance.now();
    const approx = queries.map((q) => gen1.search(q, 10, 100));
    const seconds = (performance.now() - started) / 1000;
    const recalls = queries.map((q, i) => recall(approx[i]!.map((h) => h.label), exactTopK(q, data.vectors, DIMS, 10).map((h) => h.index)));
    const mean = recalls.reduce((a, b) => a + b, 0) / recalls.length;
    t.diagnostic(`recall@10 ${mean.toFixed(4)} over ${QUERIES} queries; ${Math.round(QUERIES / seconds)} queries/s single-threaded`);
    assert.ok(mean >= 0.95, `recall@10 ${mean}`);
  });

  it('scores are cosine similarities, equal to exact scores', () => {
    const q = data.sample();
    const exact = new Map(exactTopK(q, data.vectors, DIMS, 50).map((h) => [h.index, h.score]));
    for (const hit of gen1.search(q, 10)) {
      const e = exact.get(hit.label);
      if (e !== undefined) assert.ok(Math.abs(e - hit.score) < 1e-5, `label ${hit.label}: ${hit.score} vs exact ${e}`);
    }
  });

  it('maps labels back to the chunks they were built from, across files', async () => {
    for (const label of [0, 1, 11_999, 12_000, N - 1]) {
      assert.equal(gen1.chunkId(label), `c${label}`);
      assert.equal(gen1.docId(label), allRows[label]!.doc_id);
    }
    const hits = gen1.search(data.vectors.slice(0, DIMS), 3);
    assert.equal(hits[0]!.label, 0, 'a stored vector finds itself first');
    assert.ok(hits[0]!.score > 0.9999);
    const meta = await readChunkMeta(files, hits.map((h) => gen1.chunkId(h.label)));
    assert.equal(meta.get('c0')?.text, allRows[0]!.text);
    assert.throws(() => gen1.chunkId(N), RangeError);
  });

  it('clamps k to the number of vectors, and answers k = 0 with nothing', async () => {
    const small = generationDir(root, 'tiny_idx', 1);
    const file = path.join(tmp, 'tiny.parquet');
    await writeVectorsParquet(file, allRows.slice(0, 5), DIMS);
    await buildGeneration({ files: [file], dims: DIMS, outDir: small });
    const tiny = await LoadedGeneration.load(small, DIMS);
    assert.equal(tiny.search(data.sample(), 50).length, 5);
    assert.equal(tiny.search(data.sample(), 0).length, 0);
    assert.throws(() => tiny.search(new Float32Array(DIMS + 1), 3), BadRequestError);
  });

  it('markDeleted excludes labels from results, idempotently', async () => {
    const gen = await LoadedGeneration.load(generationDir(root, INDEX, 1), DIMS);
    const q = data.vectors.slice(42 * DIMS, 43 * DIMS);
    const before = gen.search(q, 10);
    assert.equal(before[0]!.label, 42);
    const doomed = before.slice(0, 3).map((h) => h.label);
    assert.equal(gen.markDeleted(doomed), 3);
    assert.equal(gen.markDeleted(doomed), 0, 'already deleted');
    const afterHits = gen.search(q, 10);
    assert.equal(afterHits.length, 10);
    assert.ok(afterHits.every((h) => !doomed.includes(h.label)));
    assert.deepEqual(afterHits.slice(0, 7).map((h) => h.label), before.slice(3).map((h) => h.label));
    assert.equal(gen.deletedCount, 3);
    assert.ok(!gen.labelsOfDocs([gen.docId(42)]).includes(42));
    assert.throws(() => gen.markDeleted([N]), RangeError);
  });

  it('refuses a generation built for other dimensions', async () => {
    await assert.rejects(LoadedGeneration.load(generationDir(root, INDEX, 1), 128), /64-dimensional/);
  });
});

describe('hybrid filtered search', () => {
  const k = 10;
  const topicDocs = (topic: number) => [...new Set(allRows.filter((r) => r.doc_id.startsWith(`t${topic}-`)).map((r) => r.doc_id))];

  it('plans exact for few rows and HNSW with a widening schedule for many', () => {
    assert.equal(exactThreshold(N, k), 256, 'the floor');
    assert.equal(exactThreshold(100_000, 10), 300);
    assert.equal(exactThreshold(1_000_000, 10), 949);
    assert.deepEqual(planFilteredSearch({ matched: 256, total: N, k }), { kind: 'exact' });
    assert.deepEqual(planFilteredSearch({ matched: 257, total: N, k }).kind, 'hnsw');
    assert.deepEqual(wideningSchedule(10, 20_000), [40, 160, 640, 2560, 10_240, 20_000]);
    assert.deepEqual(wideningSchedule(10, 20_000, 0.05), [400, 1600, 6400, 20_000]);
    assert.deepEqual(wideningSchedule(10, 30), [30]);
    const plan = planFilteredSearch({ matched: 3000, total: N, k });
    assert.equal(plan.kind, 'hnsw');
  });

  it('exact plan: cosine over just the matched rows equals brute force with the filter', async () => {
    const docs = topicDocs(3).slice(0, 80);
    const q = data.sample();
    const candidates = await readVectorsByDocIds(files, DIMS, docs);
    assert.equal(candidates.doc_ids.length, 240);
    assert.deepEqual(planFilteredSearch({ matched: candidates.doc_ids.length, total: N, k }), { kind: 'exact' });
    const viaParquet = exactTopK(q, candidates.vectors, DIMS, k).map((h) => candidates.chunk_ids[h.index]);
    const labels = gen1.labelsOfDocs(docs);
    const viaGraph = exactTopK(q, gen1.vectors(labels), DIMS, k).map((h) => gen1.chunkId(labels[h.index]!));
    const wanted = new Set(docs);
    const truth = exactTopK(q, data.vectors, DIMS, N).filter((h) => wanted.has(allRows[h.index]!.doc_id)).slice(0, k).map((h) => `c${h.index}`);
    assert.deepEqual(viaParquet, truth);
    assert.deepEqual(viaGraph, truth);
  });

  it('HNSW plan: the filter applies inside the graph walk, widening ef until k pass', () => {
    const wanted = new Set([5, 6, 7].flatMap(topicDocs));
    const matched = allRows.filter((r) => wanted.has(r.doc_id)).length;
    const plan = planFilteredSearch({ matched, total: N, k });
    assert.equal(plan.kind, 'hnsw');
    const q = data.sample();
    const keep = (label: number) => wanted.has(gen1.docId(label));
    const hits = widenUntil(plan.kind === 'hnsw' ? plan.widths : [], k, (width) => gen1.search(q, k, width, keep));
    assert.equal(hits.length, k);
    assert.ok(hits.every((h) => wanted.has(gen1.docId(h.label))));
    const truth = exactTopK(q, data.vectors, DIMS, N).filter((h) => wanted.has(allRows[h.index]!.doc_id)).slice(0, k).map((h) => h.index);
    assert.ok(recall(hits.map((h) => h.label), truth) >= 0.9);

    // A filter that hardly matches: every width is tried, and the walk finds the few there are.
    const rare = new Set([allRows[7]!.doc_id]);
    const all = wideningSchedule(k, N, 3 / N);
    const seen: number[] = [];
    const few = widenUntil(all, k, (w) => (seen.push(w), gen1.search(q, k, w, (l) => rare.has(gen1.docId(l)))));
    assert.deepEqual(seen, all);
    assert.equal(few.length, 3);
  });
});

describe('IndexCache', () => {
  let gen2: LoadedGeneration;

  before(async () => {
    gen2 = await LoadedGeneration.load(generationDir(root, INDEX, 2), DIMS);
  });

  function gate(): { open: () => void; wait: Promise<void> } {
    let open!: () => void;
    const wait = new Promise<void>((r) => (open = r));
    return { open, wait };
  }

  it('single-flights concurrent loads and never hands out a half-loaded generation', async () => {
    const cache = new IndexCache();
    const g = gate();
    let loads = 0;
    const loader = async () => {
      loads++;
      await g.wait;
      return LoadedGeneration.load(generationDir(root, INDEX, 1), DIMS);
    };
    const pending = Array.from({ length: 5 }, () => cache.get(INDEX, 1, loader));
    assert.equal(cache.peek(INDEX, 1), undefined, 'nothing to peek at while loading');
    g.open();
    const got = await Promise.all(pending);
    assert.equal(loads, 1);
    assert.ok(got.every((x) => x === got[0]));
    assert.equal(got[0]!.count, N);
    assert.equal(cache.peek(INDEX, 1), got[0]);
    assert.equal(await cache.get(INDEX, 1, loader), got[0]);
    assert.equal(loads, 1);
  });

  it('a newer generation replaces the older one of the same index', async () => {
    const cache = new IndexCache();
    await cache.get(INDEX, 1, async () => gen1);
    await cache.get('other', 1, async () => gen2);
    await cache.get(INDEX, 2, async () => gen2);
    assert.deepEqual(cache.loaded().map((e) => `${e.name}@${e.gen}`), ['other@1', `${INDEX}@2`]);

    // A request that read an older manifest is served but does not bring the old one back.
    assert.equal(await cache.get(INDEX, 1, async () => gen1), gen1);
    assert.equal(cache.peek(INDEX, 1), undefined);
  });

  it('evicts the least recently used beyond its generation bound', async () => {
    const cache = new IndexCache({ maxGenerations: 2 });
    await cache.get('a', 1, async () => gen1);
    await cache.get('b', 1, async () => gen2);
    await cache.get('a', 1, async () => assert.fail('cached, not reloaded'));
    await cache.get('c', 1, async () => gen2);
    assert.deepEqual(cache.loaded().map((e) => e.name), ['a', 'c']);
  });

  it('stays within its byte bound, keeping the newest even when it alone is larger', async () => {
    const cache = new IndexCache({ maxBytes: gen1.bytes + gen2.bytes - 1 });
    await cache.get('a', 1, async () => gen2);
    await cache.get('b', 1, async () => gen1);
    assert.deepEqual(cache.loaded().map((e) => e.name), ['b']);
    assert.ok(cache.bytes <= gen1.bytes + gen2.bytes - 1);
    const tiny = new IndexCache({ maxBytes: 1 });
    await tiny.get('a', 1, async () => gen1);
    assert.deepEqual(tiny.loaded().map((e) => e.name), ['a']);
  });

  it('forgets a failed load so the next get tries again', async () => {
    const cache = new IndexCache();
    await assert.rejects(cache.get(INDEX, 1, () => LoadedGeneration.load(generationDir(root, INDEX, 1), 999)), /64-dimensional/);
    assert.deepEqual(cache.loaded(), []);
    assert.equal(await cache.get(INDEX, 1, async () => gen1), gen1);
    cache.evict(INDEX);
    assert.equal(cache.peek(INDEX, 1), undefined);
  });
});
