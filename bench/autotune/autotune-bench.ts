/**
 * bench autotune: the time to run the default grid (DEFAULT_GRID, 7 configs) on a 50k-vector
 * index through our autotune job, and the recall/latency frontier it finds, against the same
 * configs run by hand with plain hnswlib-node in this process, in the same run. The figure the
 * issue targets is the overhead ratio, our wall time ÷ the raw total, ≤ 1.15×.
 *
 * - ours (our-autotune.ts): the real API (startApi, in this process) and one real
 *   `lakehouse worker --queues autotune --concurrency 1` process: POST /jobs/autotune
 *   {index, k, min_recall, queries} → the job samples and scores its eval set, fans out 7 trial
 *   jobs (one at a time, each in its own worker thread), journals them, promotes the winner.
 * - raw (raw-grid.ts): initIndex + addPoint loop, setEf, the eval set's queries, recall@k against
 *   its ground truth, p50 — on this process's main thread, one config after another.
 * - where our extra time goes: every span of the job from its own timestamps (our-autotune.ts),
 *   and probes timed here of the pieces inside a trial (thread-probe.ts) and of the brute force.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { Redis } from 'ioredis';
import { configKey, DEFAULT_GRID, type HnswConfig } from '../../shared/autotune/hnsw-config.ts';
import type { EvalSet } from '../../shared/autotune/evalset.ts';
import { startTsWorker } from '../../shared/threads/ts-worker.ts';
import { exactTopK } from '../../shared/vectors/index/exact-search.ts';
import { generationDir } from '../../shared/vectors/index/index-manifest.ts';
import { startCpuMeter } from '../cpu-meter.ts';
import { descendantsCpuSeconds, redisCpuSeconds } from '../ingest/process-cpu.ts';
import { dropPrefix } from '../queue/redis-prefix.ts';
import { compare, machineInfo, median, row, type BenchReport, type BenchRow } from '../report.ts';
import { Cluster } from '../vectors/cluster.ts';
import { createBenchIndex, GEN1_HNSW, INDEX, type BenchIndex } from './index-setup.ts';
import { runOurAutotune, type OurRun } from './our-autotune.ts';
import { runRawGrid, type RawRun } from './raw-grid.ts';
import { loadSettings, settingsRecord, type AutotuneBenchSettings } from './settings.ts';
import type { ProbeMessage, ProbeTask } from './thread-probe.ts';

/** Our wall time ÷ the raw total, at most. */
export const MAX_OVERHEAD = 1.15;
const JOB_TIMEOUT_MS = 30 * 60_000;
const PROBES = 3;

const say = (line: string) => process.stderr.write(`autotune bench: ${line}\n`);
const fixed = (x: number, d = 2) => x.toFixed(d);
const since = (t0: number) => (performance.now() - t0) / 1000;
const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);
const ownCpuSeconds = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
};

interface Round {
  order: ('ours' | 'raw')[];
  ours: OurRun;
  raw: RawRun;
  /** exactTopK over the in-memory vectors for the eval set's queries: the brute force alone. */
  exactSeconds: number;
  others: { ours: number; raw: number };
  cpu: { oursWorker: number; oursBench: number; oursRedis: number; raw: number };
}

/** Where ours' extra seconds over raw went, in one round; the parts add up to `extra`. */
export interface Overhead {
  ours: number;
  raw: number;
  ratio: number;
  extra: number;
  parts: Record<string, number>;
}

interface Probes {
  /** startTsWorker → the thread's modules loaded (what trial-thread.ts loads). */
  threadStartSeconds: number;
  /** countVectors + a full readVectorBatches scan in a fresh thread: buildGeneration's reads. */
  scanSeconds: number;
  /** LoadedGeneration.load of a 50k generation (gen-1): readIndex + labels.parquet. */
  loadSeconds: number;
  /** writeIndex of gen-1's graph (m 16) to a scratch file, and that file's fsync. */
  writeSeconds: number;
  fsyncSeconds: number;
}

async function redisFacts(admin: Redis): Promise<{ version: string; policy: string }> {
  const info = await admin.info('server');
  const policy = ((await admin.config('GET', 'maxmemory-policy')) as string[])[1] ?? 'unknown';
  if (policy !== 'noeviction') throw new Error(`Redis maxmemory-policy is ${policy}; BullMQ needs noeviction (redis-cli CONFIG SET maxmemory-policy noeviction)`);
  return { version: /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown', policy };
}

function hnswVersion(): string {
  return (createRequire(import.meta.url)('hnswlib-node/package.json') as { version: string }).version;
}

/** One probe thread (thread-probe.ts), started as trial.ts starts a trial's. */
function probeThread(task: ProbeTask): Promise<Probes> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    let ready = 0;
    const thread = startTsWorker(new URL('./thread-probe.ts', import.meta.url), { workerData: task });
    thread.on('message', (m: ProbeMessage) => {
      if (m.type === 'ready') ready = since(t0);
      else resolve({ threadStartSeconds: ready, scanSeconds: m.scanSeconds, loadSeconds: m.loadSeconds, writeSeconds: m.writeSeconds, fsyncSeconds: m.fsyncSeconds });
    });
    thread.once('error', reject);
    thread.once('exit', (code) => reject(new Error(`the probe thread exited with code ${code} before reporting`)));
  });
}

async function probes(idx: BenchIndex, genDir: string, scratchFile: string): Promise<Probes & { runs: Probes[] }> {
  const runs: Probes[] = [];
  for (let i = 0; i < PROBES; i++) runs.push(await probeThread({ files: [idx.vectorsFile], dims: idx.dims, genDir, scratchFile }));
  const m = (f: (p: Probes) => number) => median(runs.map(f));
  return {
    threadStartSeconds: m((p) => p.threadStartSeconds), scanSeconds: m((p) => p.scanSeconds), loadSeconds: m((p) => p.loadSeconds),
    writeSeconds: m((p) => p.writeSeconds), fsyncSeconds: m((p) => p.fsyncSeconds), runs,
  };
}

/** The brute force of the eval set's ground truth on in-memory vectors, and whether it agrees with the set's. */
function bruteForce(idx: BenchIndex, evalset: EvalSet, k: number): { seconds: number; agree: number } {
  const t0 = performance.now();
  const exact = evalset.queries.map((q) => exactTopK(Float32Array.from(q.vector), idx.vectors, idx.dims, k));
  const seconds = since(t0);
  const agree = exact.filter((e, i) => {
    const mine = new Set(e.map((r) => idx.chunkIds[r.index]));
    const theirs = (evalset.queries[i]!.relevant_chunk_ids ?? []).slice(0, k);
    return theirs.length === mine.size && theirs.every((c) => mine.has(c));
  }).length;
  return { seconds, agree };
}

export function overhead(r: Pick<Round, 'ours' | 'raw'>, p: Probes): Overhead {
  const { ours, raw } = r;
  const m = ours.marks;
  const trials = [...ours.trials].sort((a, b) => a.processedOn - b.processedOn);
  const rawOf = (c: HnswConfig) => raw.trials.find((t) => configKey(t.config) === configKey(c))!;
  const gaps = trials.slice(1).map((t, i) => (t.processedOn - trials[i]!.finishedOn) / 1000);
  const buildExtra = sum(trials.map((t) => t.build_seconds - rawOf(t.config).build_seconds));
  const outsideBuild = sum(trials.map((t) => t.job_seconds - t.build_seconds - rawOf(t.config).search_seconds));
  const n = trials.length;
  const s = (a: number, b: number) => (b - a) / 1000;
  const parts: Record<string, number> = {
    'API + queue hop to the job (POST → first active)': s(m.posted, m.active1),
    'eval set generation (sample scan + ground-truth scan + brute force)': s(m.active1, m.evalsetDone),
    'eval set save + fan-out of 7 trial jobs (→ waiting-children)': s(m.evalsetDone, m.waitingChildren),
    'job hops: parent → first trial, between trials, last trial → parent': s(m.waitingChildren, trials[0]!.processedOn) + sum(gaps) + s(trials.at(-1)!.finishedOn, m.active2),
    [`builds: Parquet reads (probe: ${n} × ${fixed(p.scanSeconds)} s)`]: n * p.scanSeconds,
    [`builds: graph file written (probe, m 16 graph: ${n} × ${fixed(p.writeSeconds)} s)`]: n * p.writeSeconds,
    [`builds: graph file fsynced (probe: ${n} × ${fixed(p.fsyncSeconds)} s)`]: n * p.fsyncSeconds,
    'builds: the rest (inserts fed by a streaming DuckDB scan, not from memory; labels.parquet + meta written and fsynced; rename; contention, noise)': buildExtra - n * (p.scanSeconds + p.writeSeconds + p.fsyncSeconds),
    [`trial threads: start-up + module load (probe: ${n} × ${fixed(p.threadStartSeconds)} s)`]: n * p.threadStartSeconds,
    [`trial threads: generation load (probe: ${n} × ${fixed(p.loadSeconds)} s)`]: n * p.loadSeconds,
    'trials: the rest (eval set + journal reads, thread exit, search noise, journal append)': outsideBuild - n * (p.threadStartSeconds + p.loadSeconds),
    'decide: journal reads, promotion, trial dirs removed': s(m.active2, m.finished),
  };
  const extra = ours.wallSeconds - raw.seconds;
  return { ours: ours.wallSeconds, raw: raw.seconds, ratio: ours.wallSeconds / raw.seconds, extra, parts };
}

/** Configs no other config beats on both recall (≥) and p50 (≤), best recall first. */
function frontier(trials: readonly { config: HnswConfig; recall: number; p50_ms: number }[]): Set<string> {
  const out = new Set<string>();
  for (const t of trials) {
    const beaten = trials.some((o) => o !== t && o.recall >= t.recall && o.p50_ms <= t.p50_ms && (o.recall > t.recall || o.p50_ms < t.p50_ms));
    if (!beaten) out.add(configKey(t.config));
  }
  return out;
}

interface ConfigLine {
  config: string;
  ours: { recall: number; p50_ms: number; p95_ms: number; build_seconds: number; trial_job_seconds: number; on_frontier: boolean };
  raw: { recall: number; p50_ms: number; p95_ms: number; build_seconds: number; seconds: number; on_frontier: boolean };
}

/** Per config, the median over the rounds of each figure; frontier membership from those medians. */
function configLines(rounds: readonly Round[]): ConfigLine[] {
  const lines = DEFAULT_GRID.map((c) => {
    const key = configKey(c);
    const o = rounds.map((r) => r.ours.trials.find((t) => configKey(t.config) === key)!);
    const w = rounds.map((r) => r.raw.trials.find((t) => configKey(t.config) === key)!);
    const med = <T>(xs: T[], f: (x: T) => number) => median(xs.map(f));
    return {
      config: key,
      ours: { recall: med(o, (t) => t.recall), p50_ms: med(o, (t) => t.p50_ms), p95_ms: med(o, (t) => t.p95_ms), build_seconds: med(o, (t) => t.build_seconds), trial_job_seconds: med(o, (t) => t.job_seconds), on_frontier: false },
      raw: { recall: med(w, (t) => t.recall), p50_ms: med(w, (t) => t.p50_ms), p95_ms: med(w, (t) => t.p95_ms), build_seconds: med(w, (t) => t.build_seconds), seconds: med(w, (t) => t.build_seconds + t.search_seconds), on_frontier: false },
    };
  });
  const fo = frontier(lines.map((l) => ({ config: configOf(l.config), ...l.ours })));
  const fr = frontier(lines.map((l) => ({ config: configOf(l.config), ...l.raw })));
  return lines.map((l) => ({ ...l, ours: { ...l.ours, on_frontier: fo.has(l.config) }, raw: { ...l.raw, on_frontier: fr.has(l.config) } }));
}

const configOf = (key: string): HnswConfig => DEFAULT_GRID.find((c) => configKey(c) === key)!;

function configTable(lines: readonly ConfigLine[], k: number): string {
  const head = ['config (m-efC-efS)', `ours recall@${k}`, `raw recall@${k}`, 'ours p50 ms', 'raw p50 ms', 'ours build s', 'raw build s', 'ours trial job s', 'raw config s', 'frontier (ours/raw)'];
  const out = [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`];
  for (const l of lines) {
    out.push(`| ${[
      l.config, fixed(l.ours.recall, 4), fixed(l.raw.recall, 4), fixed(l.ours.p50_ms, 3), fixed(l.raw.p50_ms, 3),
      fixed(l.ours.build_seconds), fixed(l.raw.build_seconds), fixed(l.ours.trial_job_seconds), fixed(l.raw.seconds),
      `${l.ours.on_frontier ? '●' : '·'} / ${l.raw.on_frontier ? '●' : '·'}`,
    ].join(' | ')} |`);
  }
  return out.join('\n');
}

function overheadTable(o: Overhead): string {
  const out = ['| where ours spent its extra time | seconds | share of the extra |', '|---|---:|---:|'];
  for (const [what, secs] of Object.entries(o.parts)) out.push(`| ${what} | ${fixed(secs)} | ${fixed((100 * secs) / o.extra, 0)}% |`);
  out.push(`| **ours − raw** (${fixed(o.ours)} s − ${fixed(o.raw)} s; the parts add up to it) | **${fixed(o.extra)}** | 100% |`);
  return out.join('\n');
}

async function runRounds(s: AutotuneBenchSettings, cluster: Cluster, admin: Redis, tmp: string): Promise<{ idx: BenchIndex; rounds: Round[]; probe: Probes & { runs: Probes[] }; evalsetAgree: number }> {
  const api = await cluster.api('autotune');
  say(`writing the index: ${s.BENCH_AUTOTUNE_VECTORS.toLocaleString('en-US')} × ${s.BENCH_AUTOTUNE_DIMS} vectors, Parquet, gen-1 (m ${GEN1_HNSW.m}, efC ${GEN1_HNSW.ef_construction})…`);
  const idx = await createBenchIndex(api, s.BENCH_AUTOTUNE_VECTORS, s.BENCH_AUTOTUNE_DIMS, s.BENCH_AUTOTUNE_SEED);
  say(`  generated ${fixed(idx.seconds.generate)} s, Parquet ${fixed(idx.seconds.parquet)} s, gen-1 build + commit ${fixed(idx.seconds.gen1Build)} s`);
  // probed now, while gen-1 is the generation (promotion may prune it later); the worker is not up yet
  const genDir = generationDir(api.running.deps.buckets.primary, INDEX, 1);
  say(`probing a trial thread's start-up, Parquet scan and generation load (${PROBES}×)…`);
  const probe = await probes(idx, genDir, path.join(tmp, 'probe-graph.bin'));
  say(`  thread start ${fixed(probe.threadStartSeconds)} s, scan ${fixed(probe.scanSeconds)} s, load ${fixed(probe.loadSeconds)} s, graph write ${fixed(probe.writeSeconds)} s + fsync ${fixed(probe.fsyncSeconds)} s`);
  await cluster.worker(api, 'autotune worker', 'autotune', 1);
  const meter = () => startCpuMeter(async () => (await redisCpuSeconds(admin)) + (await descendantsCpuSeconds()));
  const rounds: Round[] = [];
  let firstSet: EvalSet | undefined;
  let evalsetAgree = 0;
  for (let r = 0; r < s.BENCH_AUTOTUNE_ROUNDS; r++) {
    // the raw side needs the job's eval set, so the first round runs ours first; then they alternate
    const order: Round['order'] = r % 2 === 0 ? ['ours', 'raw'] : ['raw', 'ours'];
    let ours: OurRun | undefined;
    let raw: RawRun | undefined;
    const others = { ours: 0, raw: 0 };
    const cpu = { oursWorker: 0, oursBench: 0, oursRedis: 0, raw: 0 };
    for (const side of order) {
      const stop = await meter();
      if (side === 'ours') {
        say(`round ${r + 1}: ours, POST /jobs/autotune (default grid, k ${s.BENCH_AUTOTUNE_K}, ${s.BENCH_AUTOTUNE_QUERIES} queries)…`);
        const [w0, b0, r0] = [await descendantsCpuSeconds(), ownCpuSeconds(), await redisCpuSeconds(admin)];
        ours = await runOurAutotune(
          api, admin,
          { index: INDEX, indexDir: idx.dir, k: s.BENCH_AUTOTUNE_K, min_recall: s.BENCH_AUTOTUNE_MIN_RECALL, queries: s.BENCH_AUTOTUNE_QUERIES, grid: DEFAULT_GRID },
          JOB_TIMEOUT_MS,
        );
        Object.assign(cpu, { oursWorker: (await descendantsCpuSeconds()) - w0, oursBench: ownCpuSeconds() - b0, oursRedis: (await redisCpuSeconds(admin)) - r0 });
        others.ours = await stop();
        say(`  ${fixed(ours.wallSeconds)} s; winner ${ours.winner ?? 'none'}, ${ours.promoted ? 'promoted' : 'not promoted'}`);
        firstSet ??= ours.evalset;
      } else {
        const set = firstSet!;
        say(`round ${r + 1}: raw hnswlib-node, the same ${DEFAULT_GRID.length} configs on the eval set ${set.id}…`);
        const c0 = ownCpuSeconds();
        raw = runRawGrid(DEFAULT_GRID, idx.vectors, idx.dims, idx.chunkIds, set, s.BENCH_AUTOTUNE_K);
        cpu.raw = ownCpuSeconds() - c0;
        others.raw = await stop();
        say(`  ${fixed(raw.seconds)} s`);
      }
    }
    say(`round ${r + 1}: brute force of the eval set's ground truth on in-memory vectors (context, not timed as raw)…`);
    const brute = bruteForce(idx, firstSet!, s.BENCH_AUTOTUNE_K);
    if (r === 0) evalsetAgree = brute.agree;
    if (ours!.evalset.queries.some((q, i) => q.query !== firstSet!.queries[i]?.query)) say(`  note: round ${r + 1}'s eval set sampled other chunks than round 1's`);
    rounds.push({ order, ours: ours!, raw: raw!, exactSeconds: brute.seconds, others, cpu });
  }
  return { idx, rounds, probe, evalsetAgree };
}

function rows(s: AutotuneBenchSettings, rounds: readonly Round[]): BenchRow[] {
  const n = DEFAULT_GRID.length;
  const q = s.BENCH_AUTOTUNE_QUERIES;
  // items: vectors indexed over the whole grid (configs × index size), so the rate column reads as
  // vectors/s rather than a fraction of a config per second
  const items = n * s.BENCH_AUTOTUNE_VECTORS;
  const unit = 'vectors/s';
  const built = compare([
    row({
      section: 'raw grid by hand', items, unit, rounds: rounds.map((r) => r.raw.seconds), other_cores_busy: rounds.map((r) => r.others.raw),
      cpu_seconds: { bench: rounds.map((r) => r.cpu.raw) },
      measures: `hnswlib-node ${hnswVersion()} on this process's main thread, for each of the ${n} default configs in turn: initIndex(${s.BENCH_AUTOTUNE_VECTORS}, m, efC, seed 100) + addPoint(Array.from(v), i) over the vectors in memory, setEf(efS), a warm-up pass and a timed pass of the eval set's ${q} queries (searchKnn, k ${s.BENCH_AUTOTUNE_K}), recall@${s.BENCH_AUTOTUNE_K} against its ground truth. Nothing written to disk; the ground truth is the job's (not recomputed).`,
    }),
    row({
      section: 'ours autotune job', items, unit, rounds: rounds.map((r) => r.ours.wallSeconds), other_cores_busy: rounds.map((r) => r.others.ours),
      baseline: 'raw grid by hand', target: { kind: 'ratio', min: Math.round((1 / MAX_OVERHEAD) * 1000) / 1000 },
      cpu_seconds: { 'worker process': rounds.map((r) => r.cpu.oursWorker), 'bench (API, polling)': rounds.map((r) => r.cpu.oursBench), redis: rounds.map((r) => r.cpu.oursRedis) },
      measures: `just before POST /jobs/autotune {index, k ${s.BENCH_AUTOTUNE_K}, min_recall ${s.BENCH_AUTOTUNE_MIN_RECALL}, queries ${q}} (grid left out: DEFAULT_GRID) until the parent's finishedOn: the eval set generated (${q} sampled chunks, brute-force top ${s.BENCH_AUTOTUNE_K}), ${n} trial child jobs run one at a time by one worker process (concurrency 1), each in a fresh worker thread (build from the vectors Parquet, write the generation directory, load it, warm-up + timed searches), journaled, the winner promoted. Target: our time ≤ ${MAX_OVERHEAD}× raw, i.e. this rate ratio ≥ ${fixed(1 / MAX_OVERHEAD, 3)}.`,
    }),
    row({
      section: 'ours trials only', items, unit, rounds: rounds.map((r) => r.ours.trialsSeconds), other_cores_busy: rounds.map((r) => r.others.ours),
      baseline: 'raw grid by hand',
      measures: 'the same job from the first trial\'s processedOn to the last trial\'s finishedOn: the 7 trial jobs and the hops between them, without eval set, fan-out and promotion.',
    }),
    row({
      section: 'raw brute-force ground truth', items: q, unit: 'queries/s', rounds: rounds.map((r) => r.exactSeconds),
      measures: `exactTopK over the ${s.BENCH_AUTOTUNE_VECTORS.toLocaleString('en-US')} vectors in memory for the eval set's ${q} queries, k ${s.BENCH_AUTOTUNE_K}: the CPU floor of eval set generation (context; not part of the raw total, which reuses the job's ground truth).`,
    }),
    row({
      section: 'ours eval set generation', items: q, unit: 'queries/s', rounds: rounds.map((r) => (r.ours.marks.evalsetDone - r.ours.marks.active1) / 1000),
      baseline: 'raw brute-force ground truth',
      measures: 'the parent\'s first active → the eval set\'s created_at: worker context and index lookup, a Parquet scan to sample the queries, a second scan scoring every batch against them (TopK per query).',
    }),
  ]);
  // The issue's target is on time: pass when our wall time ÷ raw's (median of the rounds' quotients) ≤ MAX_OVERHEAD.
  const wallRatio = median(rounds.map((r) => r.ours.wallSeconds / r.raw.seconds));
  return built.map((r) => (r.section === 'ours autotune job' ? { ...r, pass: wallRatio <= MAX_OVERHEAD } : r));
}

export async function run(): Promise<BenchReport> {
  const s = loadSettings();
  const date = new Date().toISOString();
  const loadAtStart = os.loadavg()[0]!;
  const admin = new Redis(s.REDIS_URL, { maxRetriesPerRequest: null });
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'lhbench-autotune-'));
  let cluster: Cluster | undefined;
  try {
    const redis = await redisFacts(admin);
    cluster = await Cluster.create(s.REDIS_URL, admin, path.join(tmp, 'data'));
    const { idx, rounds, probe, evalsetAgree } = await runRounds(s, cluster, admin, tmp);
    const lines = configLines(rounds);
    const overheads = rounds.map((r) => overhead(r, probe));
    const ratios = overheads.map((o) => o.ratio);
    const ratio = median(ratios);
    const mid = overheads[ratios.indexOf([...ratios].sort((a, b) => a - b)[Math.floor((ratios.length - 1) / 2)]!)]!;
    const sameRecall = lines.filter((l) => l.ours.recall === l.raw.recall).length;

    const out: string[] = [];
    out.push(`\n## bench autotune — default grid (${DEFAULT_GRID.length} configs) on ${s.BENCH_AUTOTUNE_VECTORS.toLocaleString('en-US')} × ${s.BENCH_AUTOTUNE_DIMS}-d, k ${s.BENCH_AUTOTUNE_K}, ${s.BENCH_AUTOTUNE_QUERIES} queries`, '');
    out.push(configTable(lines, s.BENCH_AUTOTUNE_K), '');
    out.push(`● = on the recall/p50 frontier (no other config has higher-or-equal recall at lower-or-equal p50). Medians over ${rounds.length} round(s).`);
    out.push(`Winner (ours): ${rounds.map((r) => `${r.ours.winner ?? 'none'} — ${r.ours.reason}`).join(' | ')}`, '');
    out.push(`**Overhead ratio (our wall time ÷ raw total): ${fixed(ratio, 3)}×** (per round: ${ratios.map((x) => fixed(x, 3)).join(', ')}; target ≤ ${MAX_OVERHEAD}×: ${ratio <= MAX_OVERHEAD ? 'PASS' : 'FAIL'}). Ours ${overheads.map((o) => fixed(o.ours)).join(', ')} s; raw ${overheads.map((o) => fixed(o.raw)).join(', ')} s.`, '');
    const withoutTruth = median(rounds.map((r) => (r.ours.wallSeconds - r.exactSeconds) / r.raw.seconds));
    out.push(`Context: less the brute force a by-hand run would need too (raw exactTopK, ${rounds.map((r) => fixed(r.exactSeconds)).join(', ')} s), ours ÷ raw is ${fixed(withoutTruth, 3)}×.`, '');
    out.push(`Where it goes (round ${overheads.indexOf(mid) + 1}, the median one):`, '', overheadTable(mid), '');
    process.stdout.write(`${out.join('\n')}\n`);

    const r0 = rounds[0]!;
    const notes = [
      `Overhead ratio (our wall ÷ raw total), the issue's figure: ${fixed(ratio, 3)}× (target ≤ ${MAX_OVERHEAD}×). The table's "ratio vs raw" is the report's usual rate ratio (raw seconds ÷ ours, above 1 = ours faster), so the target appears there as ≥ ${fixed(1 / MAX_OVERHEAD, 3)}; PASS/FAIL is decided on the wall-time quotient.`,
      `Index: ${s.BENCH_AUTOTUNE_VECTORS.toLocaleString('en-US')} unit vectors, d=${s.BENCH_AUTOTUNE_DIMS}, a seeded Gaussian mixture of 50 topics (bench/vectors/mixture.ts, seed ${s.BENCH_AUTOTUNE_SEED}; generated in ${fixed(idx.seconds.generate)} s), written with writeVectorsParquet (${fixed(idx.seconds.parquet)} s, ${(idx.parquetBytes / 1e6).toFixed(1)} MB), gen-1 built with buildGeneration (m ${GEN1_HNSW.m}, efC ${GEN1_HNSW.ef_construction}, outside the grid) and committed with commitGeneration (${fixed(idx.seconds.gen1Build)} s), in a temporary data root. No embedding: the manifest names a "bench" provider, which the generated eval set never calls. d=128 keeps 2 × 7 builds within minutes on 2 cores; d=512 (USE lite's) makes each build several times longer. BENCH_AUTOTUNE_DIMS=384 runs a larger one.`,
      `Topology: the API in this process (startApi, HTTP on 127.0.0.1; the client polls GET /jobs/autotune/<id> every 50 ms); one worker process \`lakehouse worker --queues autotune --concurrency 1\` (pid-separate from this one), so the parent and its 7 trial jobs run one at a time, each trial in one worker thread of that process (hnswlib single-threaded; DuckDB's Parquet scan may use more threads). Raw: this process's main thread, with the worker process idle. Everything shares ${os.availableParallelism()} cores with redis-server.`,
      `Eval set: generated by the job (seed 1): ${r0.ours.evalset.queries.length} queries sampled from the index's own chunks, ground truth the exact top ${r0.ours.evalset.k}; the raw side read it from ${path.join('<index dir>', 'evalsets', `${r0.ours.evalset.id}.json`)}. An independent brute force here (exactTopK over the in-memory vectors) agreed with its ground truth on ${evalsetAgree} of ${r0.ours.evalset.queries.length} queries (exact ties can order differently).`,
      `Same graphs: both sides insert the same vectors in the same order with level seed 100, so recall should match to the last digit: it did for ${sameRecall} of ${lines.length} configs. p50s differ by measurement context only (ours in a worker thread of another process via LoadedGeneration.search — setEf per call, Float32Array → array; raw searchKnn on plain arrays).`,
      `Probes (a fresh thread each, ${PROBES} runs, medians): thread start-up with trial.ts's modules ${fixed(probe.threadStartSeconds)} s; countVectors + full readVectorBatches scan ${fixed(probe.scanSeconds)} s; LoadedGeneration.load of a ${s.BENCH_AUTOTUNE_VECTORS.toLocaleString('en-US')}-vector generation ${fixed(probe.loadSeconds)} s; writeIndex of its graph (m ${GEN1_HNSW.m}; the grid's m 8 and m 32 graphs are smaller and larger) ${fixed(probe.writeSeconds)} s, then fsync ${fixed(probe.fsyncSeconds)} s. The breakdown charges these per trial; "the rest" rows are what the timestamps leave after them (noise of single-shot builds and searches included, so a small negative value is possible).`,
      `CPU seconds per round — ours: worker process ${rounds.map((r) => fixed(r.cpu.oursWorker, 1)).join(', ')}, this process (API + polling) ${rounds.map((r) => fixed(r.cpu.oursBench, 1)).join(', ')}, redis ${rounds.map((r) => fixed(r.cpu.oursRedis, 1)).join(', ')}; raw: ${rounds.map((r) => fixed(r.cpu.raw, 1)).join(', ')}.`,
      `Rounds: ${rounds.length} (BENCH_AUTOTUNE_ROUNDS); order per round: ${rounds.map((r) => r.order.join('→')).join(', ')}. Each ours round is a new autotune job on the same index (a later round's eval set samples the same chunks: same seed, same vectors files). The queue prefix (one, lhbench-autotune-<hex>) is kept for all rounds and deleted at the end; the "fresh Redis prefix" line under the table is the queue bench's convention.`,
      `The 1-minute load average was ${fixed(loadAtStart, 1)} before the bench started. 'cores busy with other processes' counts machine CPU minus this process's, its children's (the worker process) and redis-server's.`,
    ];
    const report: BenchReport & Record<string, unknown> = {
      bench: 'autotune',
      date,
      machine: machineInfo({ redis: redis.version, redis_maxmemory_policy: redis.policy, hnswlib_node: hnswVersion(), load_avg_1m_at_start: Number(fixed(loadAtStart)) }),
      settings: { ...settingsRecord(s), grid: DEFAULT_GRID.map(configKey).join(','), worker_processes: 1, autotune_concurrency: 1 },
      rows: rows(s, rounds),
      notes,
      overhead_ratio: Number(fixed(ratio, 3)),
      overhead_ratio_per_round: ratios.map((x) => Number(fixed(x, 3))),
      overhead_ratio_less_brute_force: Number(fixed(withoutTruth, 3)),
      configs: lines,
      overhead: overheads,
      probes: probe,
      rounds: rounds.map((r) => ({
        order: r.order,
        ours: { job_id: r.ours.jobId, evalset: r.ours.evalset.id, wall_seconds: r.ours.wallSeconds, trials_seconds: r.ours.trialsSeconds, winner: r.ours.winner, promoted: r.ours.promoted, reason: r.ours.reason, marks: r.ours.marks, trials: r.ours.trials },
        raw: r.raw,
        exact_seconds: r.exactSeconds,
        cpu_seconds: r.cpu,
        other_cores_busy: r.others,
      })),
    };
    return report;
  } finally {
    if (cluster) {
      const prefixes = cluster.apis.map((a) => a.prefix);
      await cluster.close();
      for (const p of prefixes) await dropPrefix(admin, p);
    }
    await admin.quit().catch(() => admin.disconnect());
    await fs.rm(tmp, { recursive: true, force: true });
  }
}
