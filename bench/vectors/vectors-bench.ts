/**
 * bench vectors: (a) local embedding throughput, raw model vs the embed job path; (b) HNSW build,
 * QPS and recall@10, ours vs raw hnswlib-node; (c) hybrid (filter + vector) search latency over a
 * large dataset, ours vs plain DuckDB + hnswlib; (d) the embed job's fan-out over 1, 2, 4 worker
 * processes against an embedding server with fixed latency. All in one run on this machine;
 * sections can be picked with BENCH_VECTORS_SECTIONS. The earlier system's figures (125 chunks/s
 * on a GPU via Ollama; 131 ms hybrid) are printed for reference, not used as targets.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { Redis } from 'ioredis';
import { startCpuMeter } from '../cpu-meter.ts';
import { descendantsCpuSeconds, redisCpuSeconds } from '../ingest/process-cpu.ts';
import { dropPrefix } from '../queue/redis-prefix.ts';
import { compare, machineInfo, median, row, type BenchReport, type BenchRow } from '../report.ts';
import { Cluster, ingestFile, type Api } from './cluster.ts';
import { embedRounds, startEmbedConfig, type EmbedTimings } from './embed-throughput.ts';
import { hnswBench, K, type HnswTimings } from './hnsw-recall.ts';
import { hybridDataset, hybridIndex, hybridRounds, type HybridDataset, type HybridSetup, type HybridTimings } from './hybrid-search.ts';
import { startLatencyStandIn, type LatencyStandIn } from './latency-stand-in.ts';
import { scaleRounds, startScaleConfig, type ScaleTimings } from './scale-out.ts';
import { loadSettings, settingsRecord, type VectorsBenchSettings } from './settings.ts';
import { summaryTable, verdict, type SummaryLine } from './summary.ts';
import { passages, writeTextsCsv } from './texts.ts';

/** The earlier system, as the issue quotes it. */
const EARLIER = { chunksPerSecond: 125, hybridMs: 131 };
const TARGETS = { embedRatio: 0.9, qpsRatio: 0.9, recall: 0.95 };
const WARM_EMBED_DOCS = 16;

const say = (line: string) => process.stderr.write(`vectors bench: ${line}\n`);
const fixed = (x: number, d = 2) => x.toFixed(d);
const ms = (s: number) => `${fixed(s * 1000, 1)} ms`;
const percentile = (xs: number[], p: number) => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
};

interface Results {
  embed?: EmbedTimings;
  hnsw?: HnswTimings;
  hybrid?: { setup: HybridSetup; t: HybridTimings };
  scale?: { t: ScaleTimings; server: { latencyMs: number; dims: number } };
}

async function redisFacts(admin: Redis): Promise<{ version: string; policy: string }> {
  const info = await admin.info('server');
  const policy = ((await admin.config('GET', 'maxmemory-policy')) as string[])[1] ?? 'unknown';
  if (policy !== 'noeviction') throw new Error(`Redis maxmemory-policy is ${policy}; BullMQ needs noeviction (redis-cli CONFIG SET maxmemory-policy noeviction)`);
  return { version: /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown', policy };
}

interface Datasets {
  embedTexts: string[];
  scaleTexts: string[];
  hybrid?: HybridDataset;
}

/** Every dataset the sections use, ingested through the API by one `worker --queues ingest` process, stopped afterwards. */
async function ingestDatasets(s: VectorsBenchSettings, cluster: Cluster, setup: Api, tmp: string): Promise<Datasets> {
  const on = (x: string) => s.BENCH_VECTORS_SECTIONS.includes(x as never);
  const ingester = await cluster.worker(setup, 'ingest worker', 'ingest', 1);
  const seed = s.BENCH_VECTORS_SEED;
  const texts = async (name: string, n: number, textSeed: number) => {
    const list = passages(n, s.BENCH_EMBED_CHARS, textSeed);
    const file = path.join(tmp, `${name}.csv`);
    await writeTextsCsv(file, list);
    const { rows } = await ingestFile(setup, cluster.key, file, name);
    if (rows !== n) throw new Error(`dataset ${name} has ${rows} rows, expected ${n}`);
    return list;
  };
  const out: Datasets = { embedTexts: [], scaleTexts: [] };
  if (on('embed')) {
    out.embedTexts = await texts('embed_texts', s.BENCH_EMBED_CHUNKS, seed);
    await texts('embed_warm', WARM_EMBED_DOCS, seed + 1);
  }
  if (on('scale')) {
    out.scaleTexts = await texts('scale_texts', s.BENCH_SCALE_CHUNKS, seed + 3);
    await texts('scale_warm', Math.max(...s.BENCH_SCALE_WORKERS) * s.BENCH_SCALE_SHARD_CHUNKS, seed + 4);
  }
  if (on('hybrid')) {
    say(`generating and ingesting the ${s.BENCH_HYBRID_ROWS.toLocaleString('en-US')}-row hybrid dataset…`);
    out.hybrid = await hybridDataset(setup, cluster.key, hybridParams(s), tmp);
  }
  await cluster.stop(ingester);
  return out;
}

const hybridParams = (s: VectorsBenchSettings) => ({
  rows: s.BENCH_HYBRID_ROWS, dims: s.BENCH_HYBRID_DIMS, queries: s.BENCH_HYBRID_QUERIES, k: s.BENCH_HYBRID_K,
  targetMatches: s.BENCH_HYBRID_MATCHES, seed: s.BENCH_VECTORS_SEED,
});

async function runSections(s: VectorsBenchSettings, admin: Redis, tmp: string, own: { cluster?: Cluster; server?: LatencyStandIn }): Promise<Results> {
  const meter = () => startCpuMeter(async () => (await redisCpuSeconds(admin)) + (await descendantsCpuSeconds()));
  const on = (x: string) => s.BENCH_VECTORS_SECTIONS.includes(x as never);
  const r: Results = {};
  let setup: Api | undefined;
  let data: Datasets = { embedTexts: [], scaleTexts: [] };
  if (on('embed') || on('hybrid') || on('scale')) {
    own.cluster = await Cluster.create(s.REDIS_URL, admin, path.join(tmp, 'data'));
    setup = await own.cluster.api('vec-setup');
    say('ingesting datasets…');
    data = await ingestDatasets(s, own.cluster, setup, tmp);
  }
  const cluster = own.cluster;
  if (on('embed')) {
    say(`(a) embedding throughput, ${s.BENCH_EMBED_CHUNKS} chunks…`);
    const configs = [];
    for (const threads of [...new Set([s.BENCH_EMBED_THREADS, 1])]) configs.push(await startEmbedConfig(cluster!, threads, 'embed_warm'));
    r.embed = await embedRounds(configs, 'embed_texts', data.embedTexts, s.BENCH_VECTORS_ROUNDS, meter, say);
    for (const c of configs) await cluster!.stopWorkersOf(c.api);
  }
  if (on('hnsw')) {
    say(`(b) HNSW, ${s.BENCH_HNSW_VECTORS.toLocaleString('en-US')} × ${s.BENCH_HNSW_DIMS}…`);
    const dir = path.join(tmp, 'hnsw');
    await fs.mkdir(dir, { recursive: true });
    r.hnsw = await hnswBench(
      { vectors: s.BENCH_HNSW_VECTORS, dims: s.BENCH_HNSW_DIMS, queries: s.BENCH_HNSW_QUERIES, m: s.BENCH_HNSW_M, efConstruction: s.BENCH_HNSW_EF_CONSTRUCTION, ef: s.BENCH_HNSW_EF, seed: s.BENCH_VECTORS_SEED, rounds: s.BENCH_VECTORS_ROUNDS },
      dir, meter, say,
    );
    await fs.rm(dir, { recursive: true, force: true });
  }
  if (on('hybrid')) {
    say(`(c) hybrid search, index of ${s.BENCH_HYBRID_ROWS.toLocaleString('en-US')} × ${s.BENCH_HYBRID_DIMS}…`);
    const built = await hybridIndex(setup!, hybridParams(s), data.hybrid!);
    say(`  vectors Parquet ${fixed(built.parquetSeconds, 1)} s, HNSW build ${fixed(built.buildSeconds, 1)} s; ${s.BENCH_HYBRID_QUERIES} queries…`);
    r.hybrid = { setup: built, t: await hybridRounds(setup!, built, hybridParams(s), meter) };
  }
  if (on('scale')) {
    say(`(d) scale-out, ${s.BENCH_SCALE_CHUNKS} chunks, ${s.BENCH_SCALE_LATENCY_MS} ms per request, workers ${s.BENCH_SCALE_WORKERS.join('/')}…`);
    own.server = await startLatencyStandIn(s.BENCH_SCALE_DIMS, s.BENCH_SCALE_LATENCY_MS);
    const configs = [];
    for (const n of s.BENCH_SCALE_WORKERS) configs.push(await startScaleConfig(cluster!, own.server, n, s.BENCH_SCALE_SHARD_CHUNKS, 'scale_warm'));
    const t = await scaleRounds(configs, own.server, 'scale_texts', data.scaleTexts, s.BENCH_SCALE_ROUNDS, meter, say);
    r.scale = { t, server: { latencyMs: s.BENCH_SCALE_LATENCY_MS, dims: s.BENCH_SCALE_DIMS } };
    for (const c of configs) await cluster!.stopWorkersOf(c.api);
  }
  return r;
}

const threadsLabel = (n: number) => `${n} thread${n === 1 ? '' : 's'}`;
const workersLabel = (n: number) => `${n} worker${n === 1 ? '' : 's'}`;

function embedRows(s: VectorsBenchSettings, e: EmbedTimings): BenchRow[] {
  const items = e.chunks;
  const rows = [
    row({
      section: 'raw embed, 1 thread', items, unit: 'chunks/s', rounds: e.raw, other_cores_busy: e.others['raw'], cpu_seconds: { bench: e.cpu.raw },
      measures: `@energetic-ai USE lite (initModel(modelSource), loaded and warmed beforehand) on this process's main thread: model.embed over the ${items} texts in batches of 32, one after another.`,
    }),
  ];
  for (const threads of Object.keys(e.ours).map(Number).sort((a, b) => b - a)) {
    const runs = e.ours[threads]!;
    const others = e.others[`t${threads}`];
    rows.push(
      row({
        section: `ours embed job, ${threadsLabel(threads)}`, items, unit: 'chunks/s', rounds: runs.map((x) => x.embedSeconds), other_cores_busy: others,
        baseline: 'raw embed, 1 thread', target: { kind: 'ratio', min: TARGETS.embedRatio },
        measures: `POST /jobs/embed {provider: 'local'} on a dataset of the same ${items} texts (one chunk each), served by one \`lakehouse worker --queues embed --concurrency 1\` process with LAKEHOUSE_EMBED_THREADS=${threads}: the shard jobs' first processedOn → last finishedOn (read shard file, embed in batches of 64 split over the threads, progress to Redis, write the vectors Parquet).`,
      }),
      row({
        section: `ours embed job e2e, ${threadsLabel(threads)}`, items, unit: 'chunks/s', rounds: runs.map((x) => x.e2eSeconds), other_cores_busy: others,
        cpu_seconds: { 'worker process': e.cpu.worker[threads]!, 'bench (API)': e.cpu.bench[threads]! },
        baseline: 'raw embed, 1 thread',
        measures: `the same jobs from just before the POST until the parent's finishedOn: queue, chunking the dataset, the fan-out, the embedding above, the HNSW build in a worker thread and the manifest commit.`,
      }),
    );
  }
  return rows;
}

function hnswRows(s: VectorsBenchSettings, h: HnswTimings): BenchRow[] {
  const n = s.BENCH_HNSW_VECTORS;
  const q = s.BENCH_HNSW_QUERIES;
  const params = `m=${s.BENCH_HNSW_M}, efConstruction=${s.BENCH_HNSW_EF_CONSTRUCTION}, level seed 100`;
  const searchRatio = (row: BenchRow): BenchRow => {
    const ok = row.pass === true && h.oursRecall >= TARGETS.recall;
    return { ...row, pass: ok };
  };
  const rows = compare([
    row({ section: 'raw hnsw build', items: n, unit: 'vectors/s', rounds: [h.rawBuild], other_cores_busy: [h.others.build[0]!], cpu_seconds: { bench: [h.cpu.rawBuild] },
      measures: `hnswlib-node ${hnswVersion()}: initIndex(${n}, ${params}) + addPoint(Array.from(v), i) for ${n} ${s.BENCH_HNSW_DIMS}-d vectors held in memory + writeIndex to disk.` }),
    row({ section: 'ours hnsw build', items: n, unit: 'vectors/s', rounds: [h.oursBuild], other_cores_busy: [h.others.build[1]!], baseline: 'raw hnsw build', cpu_seconds: { bench: [h.cpu.oursBuild] },
      measures: `buildGeneration (${params}): stream the vectors Parquet, the same inserts in the same order, write graph + labels.parquet + generation.json, fsync, rename into place.` }),
    row({ section: 'raw hnsw load', items: n, unit: 'vectors/s', rounds: [h.rawLoad], measures: 'readIndex of the raw graph file.' }),
    row({ section: 'ours hnsw load', items: n, unit: 'vectors/s', rounds: [h.oursLoad], baseline: 'raw hnsw load',
      measures: 'LoadedGeneration.load: the graph (readIndex), the label map from labels.parquet, tombstones (none), consistency checks.' }),
    row({ section: 'raw hnsw search', items: q, unit: 'queries/s', rounds: h.rawSearch, other_cores_busy: h.others.search, cpu_seconds: { bench: h.cpu.rawSearch },
      measures: `setEf(${s.BENCH_HNSW_EF}) then searchKnn(Array.from(q), ${K}) for ${q} queries drawn from the same mixture, one after another (one pass per round, after one warm-up pass).` }),
    row({ section: 'ours hnsw search', items: q, unit: 'queries/s', rounds: h.oursSearch, other_cores_busy: h.others.search, baseline: 'raw hnsw search', cpu_seconds: { bench: h.cpu.oursSearch },
      target: { kind: 'ratio', min: TARGETS.qpsRatio },
      measures: `LoadedGeneration.search(q, ${K}) with ef ${s.BENCH_HNSW_EF} over the same queries. PASS needs both ≥ ${TARGETS.qpsRatio}× raw QPS and recall@${K} ≥ ${TARGETS.recall} (recall ${fixed(h.oursRecall, 4)}).` }),
    row({ section: 'exact search (ground truth)', items: q, unit: 'queries/s', rounds: [h.exactSeconds], other_cores_busy: h.others.exact,
      measures: `exactTopK(q, all ${n} vectors, ${K}) per query: brute-force cosine, the truth recall is measured against.` }),
    row({ section: 'ours vectors Parquet write', items: n, unit: 'vectors/s', rounds: [h.parquetSeconds],
      measures: 'writeVectorsParquet of the vectors (what an embed shard does with its output), the input of ours build: not in the build row.' }),
  ]);
  return rows.map((r) => (r.section === 'ours hnsw search' ? searchRatio(r) : r));
}

function hybridRows(s: VectorsBenchSettings, hy: { setup: HybridSetup; t: HybridTimings }): BenchRow[] {
  const { t, setup } = hy;
  const what = `k=${s.BENCH_HYBRID_K}, filter \`${setup.filter}\` (${setup.matched.toLocaleString('en-US')} of ${s.BENCH_HYBRID_ROWS.toLocaleString('en-US')} rows), a fresh query vector each`;
  return compare([
    row({ section: 'raw hybrid', items: 1, unit: 'queries/s', rounds: t.latency.raw, other_cores_busy: t.others,
      measures: `one query, ${what}: plain DuckDB SELECT id … WHERE filter over the dataset's Parquet part, then hnswlib searchKnn(q, k, label => ids.has(label)) with ef 100 (the index's ef_search) on the same graph file, then the hits' text from DuckDB. Seconds = the median query (p50).` }),
    row({ section: 'ours hybrid in-process', items: 1, unit: 'queries/s', rounds: t.latency.inProcess, other_cores_busy: t.others, baseline: 'raw hybrid',
      measures: `IndexSearcher.search as the route calls it: manifest read, the filter through the sandboxed, audited SQL (CatalogQuery), the plan, the HNSW search, the hits' text from the vectors Parquet.` }),
    row({ section: 'ours hybrid HTTP', items: 1, unit: 'queries/s', rounds: t.latency.http, other_cores_busy: t.others, baseline: 'raw hybrid',
      measures: 'POST /indexes/<name>/search {vector, k, filter} with the admin key over keep-alive HTTP, JSON parsed (the client in this process).' }),
  ]);
}

function scaleRows(s: VectorsBenchSettings, sc: ScaleTimings): BenchRow[] {
  const items = s.BENCH_SCALE_CHUNKS;
  const rows: BenchRow[] = [];
  for (const n of s.BENCH_SCALE_WORKERS) {
    const raw = `raw HTTP, ${n} in flight`;
    rows.push(
      row({ section: raw, items, unit: 'chunks/s', rounds: sc.raw[n]!, other_cores_busy: sc.others[n],
        measures: `plain fetch POST /v1/embeddings to the stand-in, batches of 32, ${n} request(s) in flight, until the last answer.` }),
      row({ section: `ours embed e2e, ${workersLabel(n)}`, items, unit: 'chunks/s', rounds: sc.ours[n]!.map((x) => x.e2eSeconds), other_cores_busy: sc.others[n], baseline: raw,
        measures: `POST /jobs/embed {provider: 'openai'} with ${n} \`lakehouse worker --queues embed --concurrency 1\` processes (LAKEHOUSE_EMBED_SHARD_CHUNKS=${s.BENCH_SCALE_SHARD_CHUNKS}): POST → the parent's finishedOn (plan, dimension probe, ${Math.ceil(items / s.BENCH_SCALE_SHARD_CHUNKS)} shards, HNSW build, commit).` }),
      row({ section: `ours embed phase, ${workersLabel(n)}`, items, unit: 'chunks/s', rounds: sc.ours[n]!.map((x) => x.embedSeconds), other_cores_busy: sc.others[n], baseline: raw,
        measures: `the same jobs' first shard processedOn → last shard finishedOn.` }),
    );
  }
  return compare(rows);
}

function hnswVersion(): string {
  return (createRequire(import.meta.url)('hnswlib-node/package.json') as { version: string }).version;
}

const rowNamed = (rows: BenchRow[], section: string) => rows.find((r) => r.section === section);
const ratioOf = (r: BenchRow | undefined) => (r?.ratio === undefined ? '—' : `${fixed(r.ratio)}×`);

function summary(s: VectorsBenchSettings, res: Results, rows: BenchRow[]): SummaryLine[] {
  const out: SummaryLine[] = [];
  const rate = (r: BenchRow | undefined, unit: string) => (r ? `${r.rate.toLocaleString('en-US')} ${unit}` : '—');
  if (res.embed) {
    const raw = rowNamed(rows, 'raw embed, 1 thread');
    for (const threads of Object.keys(res.embed.ours).map(Number).sort((a, b) => b - a)) {
      const ours = rowNamed(rows, `ours embed job, ${threadsLabel(threads)}`);
      out.push({ section: 'embed', metric: `chunks/s, embedding phase: ours ${threadsLabel(threads)} vs raw 1 thread${threads === 1 ? ' (like for like)' : ''}`,
        ours: rate(ours, 'chunks/s'), raw: rate(raw, 'chunks/s'), ratio: ratioOf(ours), target: `≥ ${TARGETS.embedRatio}× raw`, result: verdict(ours?.pass) });
      const e2e = rowNamed(rows, `ours embed job e2e, ${threadsLabel(threads)}`);
      out.push({ section: 'embed', metric: `chunks/s, whole job (e2e): ours ${threadsLabel(threads)}`, ours: rate(e2e, 'chunks/s'), raw: rate(raw, 'chunks/s'), ratio: ratioOf(e2e), target: '—', result: '—' });
    }
    const best = Math.max(...Object.keys(res.embed.ours).map((t) => rowNamed(rows, `ours embed job, ${threadsLabel(Number(t))}`)?.rate ?? 0));
    out.push({ section: 'embed', metric: 'earlier system: 125 chunks/s on a GPU via Ollama (reference)', ours: `${best} chunks/s`, raw: '—', ratio: `${fixed(best / EARLIER.chunksPerSecond)}× of 125`, target: 'reference', result: '—' });
  }
  if (res.hnsw) {
    const h = res.hnsw;
    const d = `${s.BENCH_HNSW_VECTORS.toLocaleString('en-US')} × ${s.BENCH_HNSW_DIMS}-d`;
    out.push({ section: 'hnsw', metric: `build seconds, ${d}`, ours: `${fixed(h.oursBuild)} s`, raw: `${fixed(h.rawBuild)} s`, ratio: ratioOf(rowNamed(rows, 'ours hnsw build')), target: '—', result: '—' });
    const search = rowNamed(rows, 'ours hnsw search');
    out.push({ section: 'hnsw', metric: `QPS, k=${K}, ef=${s.BENCH_HNSW_EF}, 1 thread`, ours: rate(search, 'q/s'), raw: rate(rowNamed(rows, 'raw hnsw search'), 'q/s'), ratio: ratioOf(search), target: `≥ ${TARGETS.qpsRatio}× raw`, result: verdict((search?.ratio ?? 0) >= TARGETS.qpsRatio) });
    out.push({ section: 'hnsw', metric: `recall@${K} vs exact (${s.BENCH_HNSW_QUERIES} queries)`, ours: fixed(h.oursRecall, 4), raw: fixed(h.rawRecall, 4), ratio: fixed(h.oursRecall / h.rawRecall, 3), target: `≥ ${TARGETS.recall}`, result: verdict(h.oursRecall >= TARGETS.recall) });
    out.push({ section: 'hnsw', metric: 'load seconds', ours: `${fixed(h.oursLoad)} s`, raw: `${fixed(h.rawLoad)} s`, ratio: ratioOf(rowNamed(rows, 'ours hnsw load')), target: '—', result: '—' });
  }
  if (res.hybrid) {
    const { t, setup } = res.hybrid;
    const p = (side: 'http' | 'inProcess' | 'raw', pct: number) => percentile(t.latency[side], pct);
    for (const pct of [50, 95]) {
      out.push({ section: 'hybrid', metric: `p${pct} latency, HTTP (k=${s.BENCH_HYBRID_K}, ${setup.matched.toLocaleString('en-US')} rows match)`, ours: ms(p('http', pct)), raw: ms(p('raw', pct)),
        ratio: `${fixed(p('raw', pct) / p('http', pct))}×`, target: `earlier system ${EARLIER.hybridMs} ms (reference)`, result: '—' });
      out.push({ section: 'hybrid', metric: `p${pct} latency, in-process IndexSearcher`, ours: ms(p('inProcess', pct)), raw: ms(p('raw', pct)), ratio: `${fixed(p('raw', pct) / p('inProcess', pct))}×`, target: '—', result: '—' });
    }
    out.push({ section: 'hybrid', metric: `recall@${s.BENCH_HYBRID_K} vs exact among the filtered rows`, ours: fixed(t.recall.ours, 4), raw: fixed(t.recall.raw, 4), ratio: '—', target: '—', result: '—' });
    out.push({ section: 'hybrid', metric: 'plan chosen', ours: Object.entries(t.plans).map(([k, v]) => `${k} ×${v}`).join(', '), raw: 'hnswlib filter callback', ratio: '—', target: '—', result: '—' });
  }
  if (res.scale) {
    const sc = res.scale.t;
    const base = { ours: median(sc.ours[1]!.map((x) => x.e2eSeconds)), raw: median(sc.raw[1]!) };
    for (const n of s.BENCH_SCALE_WORKERS) {
      const ours = median(sc.ours[n]!.map((x) => x.e2eSeconds));
      const raw = median(sc.raw[n]!);
      const r = rowNamed(rows, `ours embed e2e, ${workersLabel(n)}`);
      out.push({ section: 'scale', metric: `wall seconds, ${workersLabel(n)} (raw: ${n} in flight)`, ours: `${fixed(ours)} s`, raw: `${fixed(raw)} s`, ratio: ratioOf(r), target: '—', result: '—' });
      if (n > 1) out.push({ section: 'scale', metric: `speed-up vs 1, ${workersLabel(n)}`, ours: `${fixed(base.ours / ours)}×`, raw: `${fixed(base.raw / raw)}×`, ratio: '—', target: `ideal ${n}×`, result: '—' });
    }
  }
  return out;
}

function notes(s: VectorsBenchSettings, res: Results, loadAtStart: number): string[] {
  const out: string[] = [];
  if (res.embed) {
    const e = res.embed;
    out.push(
      `(a) Texts: ${e.chunks} generated English passages of ~${s.BENCH_EMBED_CHARS} characters (seed ${s.BENCH_VECTORS_SEED}), one per row, so each document is one chunk with the same text as raw embeds. Raw loads the model once (${fixed(e.modelLoadSeconds)} s incl. one 4-text call, not timed). Each configuration of ours ran one ${WARM_EMBED_DOCS}-document embed job first (its threads then hold a loaded model), as a worker that has run a job before. Threads: raw 1 (this process's main thread); ours LAKEHOUSE_EMBED_THREADS=${s.BENCH_EMBED_THREADS} and 1, in a separate worker process. On ${os.availableParallelism()} cores the ${threadsLabel(s.BENCH_EMBED_THREADS)} ratio measures parallelism; the 1-thread ratio is the job path's overhead.`,
      `(a) Shards per job: ${[...new Set(Object.values(e.ours).flat().map((x) => x.shards))].join(', ')} (LAKEHOUSE_EMBED_SHARD_CHUNKS default 2000). Earlier system, for reference: 125 chunks/s on a GPU via Ollama; the GPU path here is the ollama/openai provider, which (d) exercises.`,
    );
  }
  if (res.hnsw) {
    const h = res.hnsw;
    out.push(
      `(b) ${s.BENCH_HNSW_VECTORS.toLocaleString('en-US')} unit vectors, d=${s.BENCH_HNSW_DIMS}, a seeded Gaussian mixture of 50 topics (generated in ${fixed(h.generateSeconds, 1)} s), ${s.BENCH_HNSW_QUERIES} query vectors drawn from the same topics. d=512 (USE lite's) would take ~4× longer per build here (a 100k×384 build took 100–180 s, DESIGN §5); set BENCH_HNSW_DIMS=512 for it. Both graphs use the same parameters, insertion order and level seed: ${h.sameResults} of ${s.BENCH_HNSW_QUERIES} queries got the identical top ${K} from both, so recall differs only if the graphs do.`,
      `(b) Raw build: inserts ${fixed(h.rawInsert)} s + writeIndex ${fixed(h.rawBuild - h.rawInsert)} s. Ours peak RSS of this process after the build: ${h.oursPeakRssMb} MB. Graph files: raw ${(h.graphBytes.raw / 1e6).toFixed(1)} MB, ours ${(h.graphBytes.ours / 1e6).toFixed(1)} MB. Vectors Parquet: ${(h.parquetBytes / 1e6).toFixed(1)} MB in ${fixed(h.parquetSeconds)} s. Exact search over all vectors: ${fixed(h.exactSeconds, 1)} s for ${s.BENCH_HNSW_QUERIES} queries. Recall@${K}: ours ${fixed(h.oursRecall, 4)}, raw ${fixed(h.rawRecall, 4)}.`,
    );
  }
  if (res.hybrid) {
    const { setup, t } = res.hybrid;
    const hp = (side: 'http' | 'inProcess' | 'raw') => `p50 ${ms(percentile(t.latency[side], 50))}, p95 ${ms(percentile(t.latency[side], 95))}`;
    out.push(
      `(c) Dataset: ${s.BENCH_HYBRID_ROWS.toLocaleString('en-US')} rows (id, state of 20 equally likely, years 0–39, text), generated by DuckDB (${fixed(setup.generateSeconds, 1)} s) and ingested through the API (${fixed(setup.ingestSeconds, 1)} s). ${s.BENCH_HYBRID_ROWS < 500_000 ? `The issue asks for 500k rows; an HNSW build of 500k × 64 alone took ~105 s here (measured while writing the bench), so the default is 200,000 and BENCH_HYBRID_ROWS=500000 runs the full size (the filter re-tunes to ~${s.BENCH_HYBRID_MATCHES.toLocaleString('en-US')} matches). ` : ''}Vectors: precomputed ${s.BENCH_HYBRID_DIMS}-d mixture vectors (embedding this many rows locally would take hours), one per row, written with writeVectorsParquet (${fixed(setup.parquetSeconds, 1)} s) and built with buildGeneration (m=16, efConstruction=100, ${fixed(setup.buildSeconds, 1)} s) into a real index directory with a manifest, served by the API's IndexSearcher.`,
      `(c) Filter \`${setup.filter}\` matches ${setup.matched.toLocaleString('en-US')} rows (${fixed((100 * setup.matched) / s.BENCH_HYBRID_ROWS)}%); the exact plan is chosen up to ${t.exactThreshold} matched chunks here, so this filter takes HNSW with post-filtering. Plans: ${Object.entries(t.plans).map(([k, v]) => `${k} ×${v}`).join(', ')}. ${s.BENCH_HYBRID_QUERIES} queries, the three sides per query in rotating order. HTTP ${hp('http')}; in-process ${hp('inProcess')}; raw ${hp('raw')}. IndexSearcher's own took_ms median ${fixed(median(t.tookMs), 1)}. First search (cold): ours ${fixed(t.coldSeconds.http, 2)} s (loads the generation into the API's cache), raw ${fixed(t.coldSeconds.raw, 2)} s (readIndex + first query). Recall@${s.BENCH_HYBRID_K} among the filtered rows: ours ${fixed(t.recall.ours, 4)}, raw ${fixed(t.recall.raw, 4)}. Earlier system, for reference: ${EARLIER.hybridMs} ms.`,
    );
  }
  if (res.scale) {
    const sc = res.scale.t;
    const shards = Math.ceil(s.BENCH_SCALE_CHUNKS / s.BENCH_SCALE_SHARD_CHUNKS);
    const reqs = s.BENCH_SCALE_WORKERS.map((n) => `${n}: ${sc.requests[n]!.map((x) => `${x.requests} requests of ${fixed(x.meanBatch, 1)} texts`).join(' / ')}`).join('; ');
    const spread = s.BENCH_SCALE_WORKERS.map((n) => `${n}: ${sc.ours[n]!.map((x) => Object.values(x.shardsByWorker).sort((a, b) => b - a).join('+')).join(' / ')}`).join('; ');
    out.push(
      `(d) Stand-in: test/helpers/llm-stand-in.ts scripted to answer every request after ${res.scale.server.latencyMs} ms regardless of batch size, ${res.scale.server.dims}-d vectors, requests served concurrently (a server with capacity to spare, so the client side is what scales). ${s.BENCH_SCALE_CHUNKS} chunks in ${shards} shards of ≤ ${s.BENCH_SCALE_SHARD_CHUNKS}; provider batch 32, so a shard of 100 is 4 requests. Requests per ours run by worker count (the provider's one-text dimension probe happens only on a process's first job, the warm-up) — ${reqs}. Shards per worker per run — ${spread}. The ideal for ours at N workers is ceil(${shards}/N) shards × ${Math.ceil(s.BENCH_SCALE_SHARD_CHUNKS / 32)} × ${res.scale.server.latencyMs} ms of embedding, plus plan and build.`,
    );
  }
  out.push(
    'Queue prefixes: one per configuration (setup, each embed thread count, each scale-out worker count), kept for all its rounds and deleted at the end; the "fresh Redis prefix" line printed under the table is the queue bench\'s convention and does not apply here.',
    `Everything — this process (raw sides, the APIs, the HTTP clients), the worker processes and their threads, and redis-server — shares this machine's ${os.availableParallelism()} cores; the 1-minute load average was ${fixed(loadAtStart, 1)} before the bench started. 'cores busy with other processes' counts machine CPU minus this process's, its children's (the worker processes) and redis-server's.`,
  );
  return out;
}

export async function run(): Promise<BenchReport> {
  const s = loadSettings();
  const date = new Date().toISOString();
  const loadAtStart = os.loadavg()[0]!;
  const admin = new Redis(s.REDIS_URL, { maxRetriesPerRequest: 3 });
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'lhbench-vectors-'));
  const own: { cluster?: Cluster; server?: LatencyStandIn } = {};
  try {
    const redis = await redisFacts(admin);
    const res = await runSections(s, admin, tmp, own);
    const rows = [
      ...(res.embed ? compare(embedRows(s, res.embed)) : []),
      ...(res.hnsw ? hnswRows(s, res.hnsw) : []),
      ...(res.hybrid ? hybridRows(s, res.hybrid) : []),
      ...(res.scale ? scaleRows(s, res.scale.t) : []),
    ];
    const lines = summary(s, res, rows);
    const table = summaryTable(lines);
    process.stdout.write(`\n## bench vectors — summary (ratio: ours ÷ raw as a rate, above 1 = ours faster)\n\n${table}\n`);
    const report: BenchReport & { summary: SummaryLine[] } = {
      bench: 'vectors',
      date,
      machine: machineInfo({ redis: redis.version, redis_maxmemory_policy: redis.policy, hnswlib_node: hnswVersion(), load_avg_1m_at_start: Number(fixed(loadAtStart)) }),
      settings: settingsRecord(s),
      rows,
      notes: notes(s, res, loadAtStart),
      summary: lines,
    };
    return report;
  } finally {
    await own.server?.close();
    if (own.cluster) {
      const prefixes = own.cluster.apis.map((a) => a.prefix);
      await own.cluster.close();
      for (const p of prefixes) await dropPrefix(admin, p);
    }
    await admin.quit().catch(() => admin.disconnect());
    await fs.rm(tmp, { recursive: true, force: true });
  }
}
