/**
 * (b) HNSW build and search, ours against raw hnswlib-node with the same parameters, the same
 * vectors in the same insertion order and the same level seed, in this process, single-threaded.
 *
 * - raw build: `new HierarchicalNSW('cosine', d)`, `initIndex(n, m, efC, seed)`, `addPoint` per
 *   vector (a plain array, as hnswlib-node requires), then `writeIndex` to disk, since ours persists.
 * - ours build: `buildGeneration` reading the vectors Parquet that `writeVectorsParquet` wrote
 *   (the write is timed on its own row): stream, insert, write graph + labels + meta, fsync, rename.
 * - load: raw `readIndex`; ours `LoadedGeneration.load` (graph, label map, tombstones).
 * - search: the same queries, k = 10, ef as set; raw `setEf` once + `searchKnn`, ours
 *   `LoadedGeneration.search` (its vector check, setEf per call, the label → score mapping).
 * - recall@10 of both against `exactTopK` over the same vectors (brute force, timed as context).
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import hnswlib from 'hnswlib-node';
import { exactTopK, recall } from '../../shared/vectors/index/exact-search.ts';
import { buildGeneration } from '../../shared/vectors/index/hnsw-build.ts';
import { LoadedGeneration } from '../../shared/vectors/index/hnsw-searcher.ts';
import { writeVectorsParquet, type VectorRow } from '../../shared/vectors/index/vectors-parquet.ts';
import { ownCpuSeconds } from './embed-throughput.ts';
import { mixture, rowOf } from './mixture.ts';

export interface HnswParams {
  vectors: number;
  dims: number;
  queries: number;
  m: number;
  efConstruction: number;
  ef: number;
  seed: number;
  rounds: number;
}

export const K = 10;
/** hnswlib's level generator seed, ours' default: both builds use it, so both graphs are the same. */
const LEVEL_SEED = 100;

export interface HnswTimings {
  generateSeconds: number;
  parquetSeconds: number;
  parquetBytes: number;
  rawBuild: number;
  rawInsert: number;
  oursBuild: number;
  oursPeakRssMb: number;
  rawLoad: number;
  oursLoad: number;
  rawSearch: number[];
  oursSearch: number[];
  exactSeconds: number;
  rawRecall: number;
  oursRecall: number;
  /** Queries whose top 10 was the same list (labels, in order) on both sides. */
  sameResults: number;
  graphBytes: { raw: number; ours: number };
  /** This process's CPU seconds (DuckDB's threads included) per build, and per search pass. */
  cpu: { rawBuild: number; oursBuild: number; rawSearch: number[]; oursSearch: number[] };
  others: Record<'build' | 'search' | 'exact', number[]>;
}

const seconds = (since: number) => (performance.now() - since) / 1000;

export async function hnswBench(p: HnswParams, dir: string, meter: () => Promise<() => Promise<number>>, say: (line: string) => void): Promise<HnswTimings> {
  let t0 = performance.now();
  const data = mixture(p.seed, p.vectors, p.dims);
  const queries = data.sample(p.queries);
  const generateSeconds = seconds(t0);
  const others: HnswTimings['others'] = { build: [], search: [], exact: [] };

  const file = path.join(dir, 'vectors.parquet');
  function* rows(): Generator<VectorRow> {
    for (let i = 0; i < p.vectors; i++) {
      yield { doc_id: `d${i}`, chunk_id: `c${i}`, seq: 0, text: `vector ${i}`, content_hash: `h${i}`, vector: rowOf(data.vectors, p.dims, i) };
    }
  }
  t0 = performance.now();
  const written = await writeVectorsParquet(file, rows(), p.dims);
  const parquetSeconds = seconds(t0);
  say(`  vectors Parquet: ${parquetSeconds.toFixed(2)} s`);

  let stop = await meter();
  let cpu0 = ownCpuSeconds();
  t0 = performance.now();
  const raw = new hnswlib.HierarchicalNSW('cosine', p.dims);
  raw.initIndex(p.vectors, p.m, p.efConstruction, LEVEL_SEED);
  for (let i = 0; i < p.vectors; i++) raw.addPoint(Array.from(rowOf(data.vectors, p.dims, i)), i);
  const rawInsert = seconds(t0);
  const rawFile = path.join(dir, 'raw.bin');
  await raw.writeIndex(rawFile);
  const rawBuild = seconds(t0);
  const rawBuildCpu = ownCpuSeconds() - cpu0;
  others.build.push(await stop());
  say(`  raw build: ${rawBuild.toFixed(2)} s`);

  stop = await meter();
  cpu0 = ownCpuSeconds();
  const outDir = path.join(dir, 'gen-1');
  const built = await buildGeneration({ files: [file], dims: p.dims, m: p.m, efConstruction: p.efConstruction, efSearch: p.ef, seed: LEVEL_SEED, outDir });
  const oursBuildCpu = ownCpuSeconds() - cpu0;
  others.build.push(await stop());
  if (built.count !== p.vectors) throw new Error(`ours built ${built.count} vectors of ${p.vectors}`);
  say(`  ours build: ${built.seconds.toFixed(2)} s`);

  t0 = performance.now();
  const rawLoaded = new hnswlib.HierarchicalNSW('cosine', p.dims);
  await rawLoaded.readIndex(rawFile);
  const rawLoad = seconds(t0);
  t0 = performance.now();
  const ours = await LoadedGeneration.load(outDir, p.dims, p.ef);
  const oursLoad = seconds(t0);

  const query = (i: number) => rowOf(queries, p.dims, i);
  const rawAnswers: number[][] = [];
  const oursAnswers: number[][] = [];
  const cpu = { rawBuild: rawBuildCpu, oursBuild: oursBuildCpu, rawSearch: [] as number[], oursSearch: [] as number[] };
  const rawPass = () => {
    rawLoaded.setEf(p.ef);
    const [started, c0] = [performance.now(), ownCpuSeconds()];
    for (let i = 0; i < p.queries; i++) rawAnswers[i] = rawLoaded.searchKnn(Array.from(query(i)), K).neighbors;
    cpu.rawSearch.push(ownCpuSeconds() - c0);
    return seconds(started);
  };
  const oursPass = () => {
    const [started, c0] = [performance.now(), ownCpuSeconds()];
    for (let i = 0; i < p.queries; i++) oursAnswers[i] = ours.search(query(i), K).map((h) => h.label);
    cpu.oursSearch.push(ownCpuSeconds() - c0);
    return seconds(started);
  };
  rawPass(); // warm-up: page in both graphs
  oursPass();
  cpu.rawSearch.length = cpu.oursSearch.length = 0;
  const rawSearch: number[] = [];
  const oursSearch: number[] = [];
  for (let r = 0; r < p.rounds; r++) {
    stop = await meter();
    if (r % 2 === 0) (rawSearch.push(rawPass()), oursSearch.push(oursPass()));
    else (oursSearch.push(oursPass()), rawSearch.push(rawPass()));
    others.search.push(await stop());
  }

  stop = await meter();
  t0 = performance.now();
  const exact = Array.from({ length: p.queries }, (_, i) => exactTopK(query(i), data.vectors, p.dims, K).map((r) => r.index));
  const exactSeconds = seconds(t0);
  others.exact.push(await stop());

  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const graphBytes = { raw: (await fs.stat(rawFile)).size, ours: (await fs.stat(path.join(outDir, 'hnsw.bin'))).size };
  return {
    generateSeconds, parquetSeconds, parquetBytes: written.bytes,
    rawBuild, rawInsert, oursBuild: built.seconds, oursPeakRssMb: built.peak_rss_mb,
    rawLoad, oursLoad, rawSearch, oursSearch, exactSeconds,
    rawRecall: mean(exact.map((e, i) => recall(rawAnswers[i]!, e))),
    oursRecall: mean(exact.map((e, i) => recall(oursAnswers[i]!, e))),
    sameResults: oursAnswers.filter((a, i) => a.join() === rawAnswers[i]!.join()).length,
    graphBytes, cpu, others,
  };
}
