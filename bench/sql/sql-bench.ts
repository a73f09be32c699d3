/**
 * bench sql: what closing the PII leak of issue #8 costs. Readers' SQL runs on a second DuckDB
 * engine over "reader copies" of the parts (shared/sql/reader-copies.ts, query-engine.ts), so
 * 1. making a copy is new work after every ingest (or public-columns change) — timed here against
 *    plain DuckDB converting the same data from CSV to Parquet, the bulk of an ingest, with the
 *    disk it takes against the part's;
 * 2. readers' queries take a different path (reader guard, reader engine, masked copy) — timed
 *    per role against plain DuckDB over the raw part.
 * The data: bench/ingest/profiles-csv.ts's generated staffing profiles (first_name, last_name,
 * email and phone are the PII columns masked for readers).
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { DataRoot } from '../../shared/storage/data-root.ts';
import type { QueryEngine } from '../../shared/sql/query-engine.ts';
import { generateProfilesCsv, type GeneratedCsv } from '../ingest/profiles-csv.ts';
import { RawSql } from '../ingest/raw-duckdb.ts';
import { compare, machineInfo, median, row, type BenchReport, type BenchRow } from '../report.ts';
import {
  copyRounds, DATASET, datasetView, openDuckDb, openEngine, PII_COLUMNS, rawCsvToParquet,
  type CopyRounds, type DiskFacts, type Span,
} from './reader-copy-cost.ts';
import { measureRoles, QUERIES, ROLE_SIDES, type QueryKey, type QueryTimings } from './role-latency.ts';
import { loadSettings, type SqlBenchSettings } from './settings.ts';

const say = (line: string) => process.stderr.write(`sql bench: ${line}\n`);
const mb = (bytes: number) => bytes / 1e6;
const fixed = (x: number, d = 2) => x.toFixed(d);

async function duckdbVersion(): Promise<string> {
  const duck = await openDuckDb(1);
  try {
    return String((await duck.conn.runAndReadAll('SELECT library_version FROM pragma_version()')).getRows()[0]?.[0] ?? 'unknown');
  } finally {
    duck.close();
  }
}

function copyRows(s: SqlBenchSettings, csv: GeneratedCsv, duckdb: string, t: CopyRounds): BenchRow[] {
  // thousands of rows, so the CPU column (µs per item, whole numbers) keeps its precision
  const items = csv.rows / 1000;
  const spans = (side: keyof CopyRounds) => ({
    rounds: t[side].map((x: Span) => x.seconds),
    other_cores_busy: t[side].map((x: Span) => x.others),
    cpu_seconds: { bench: t[side].map((x: Span) => x.cpu) },
  });
  const masked = PII_COLUMNS.join(', ');
  return [
    row({
      section: 'raw CSV → Parquet', items, unit: 'k rows/s', ...spans('raw'),
      measures: `plain DuckDB ${duckdb}, a fresh :memory: instance with its defaults (threads = cores): COPY (FROM read_csv(csv)) TO part.parquet (FORMAT parquet, COMPRESSION zstd) on the ${fixed(mb(csv.bytes), 1)} MB CSV (page-cached); the COPY only. The bulk of an ingest, and the baseline of the copy rows.`,
    }),
    row({
      section: 'ours masked copy', items, unit: 'k rows/s', baseline: 'raw CSV → Parquet', ...spans('masked'),
      measures: `ensureReaderCopies (shared/sql/reader-copies.ts) on a kept-open DuckDB connection (threads ${s.threads}, as the full engine's) masking ${masked}: stat + hash of the part, DESCRIBE, COPY (SELECT * REPLACE ('***' AS …) FROM read_parquet(part)) TO a temp file (zstd), rename.`,
    }),
    row({
      section: 'ours hard link', items, unit: 'k rows/s', baseline: 'raw CSV → Parquet', ...spans('link'),
      measures: 'ensureReaderCopies of the same part with nothing masked: stat + hash, mkdir, link(2) to a temp name, rename.',
    }),
    row({
      section: 'ours view sync', items, unit: 'k rows/s', baseline: 'raw CSV → Parquet', ...spans('sync'),
      measures: `QueryEngine.syncViews on a freshly opened engine (opening it not timed) with the dataset's masked columns (${masked}): the writers' view and DESCRIBE, the masked copy, the readers' view, the prune of old copies. What the first query after an ingest or a public-columns change waits for when no copy exists yet.`,
    }),
  ];
}

function queryRows(lat: Record<QueryKey, QueryTimings>): BenchRow[] {
  const rows: BenchRow[] = [];
  for (const q of QUERIES) {
    const t = lat[q.key];
    const sideRow = (side: (typeof ROLE_SIDES)[number], measures: string) =>
      row({
        section: `${side} ${q.label}`, items: 1, unit: 'queries/s', rounds: t.seconds[side], other_cores_busy: t.others,
        cpu_seconds: { bench: t.cpu[side] }, ...(side === 'raw' ? {} : { baseline: `raw ${q.label}` }), measures,
      });
    rows.push(
      sideRow('raw', `plain DuckDB, a fresh :memory: instance (threads = cores) with a view over the raw part, one kept-open connection, rows as JS objects (getRowObjectsJson): \`${q.sql}\`.`),
      sideRow('writer', `QueryEngine.query(sql, {role: 'writer'}) with the product's default limits: the gate, a fresh connection on the full engine, statement check, prepare, stream and convert rows with the JSON byte budget; over the raw part. Same SQL.`),
      sideRow('reader', `QueryEngine.query(sql, {role: 'reader'}): as writer, plus json_serialize_sql + the reader guard's walk of the parse tree and SET search_path, on the reader engine over the masked reader copy. Same SQL.`),
    );
  }
  return rows;
}

/** p50s in milliseconds from the unrounded timings, and raw p50 ÷ ours p50. */
export interface QueryP50 {
  raw_ms: number;
  writer_ms: number;
  reader_ms: number;
  parse_ms: number;
  writer_ratio: number;
  reader_ratio: number;
}

function queryP50s(lat: Record<QueryKey, QueryTimings>): Record<QueryKey, QueryP50> {
  const out = {} as Record<QueryKey, QueryP50>;
  const msOf = (xs: number[]) => Math.round(median(xs) * 1e6) / 1e3;
  for (const q of QUERIES) {
    const t = lat[q.key];
    const [raw, writer, reader] = [msOf(t.seconds.raw), msOf(t.seconds.writer), msOf(t.seconds.reader)];
    out[q.key] = {
      raw_ms: raw, writer_ms: writer, reader_ms: reader, parse_ms: msOf(t.parse),
      writer_ratio: Math.round((raw / writer) * 1000) / 1000, reader_ratio: Math.round((raw / reader) * 1000) / 1000,
    };
  }
  return out;
}

function report(
  s: SqlBenchSettings, date: string, loadAtStart: number, duckdb: string, csv: GeneratedCsv, ingest: Span,
  copies: CopyRounds, disk: DiskFacts, syncFirst: number, lat: Record<QueryKey, QueryTimings>,
): BenchReport & { disk: DiskFacts; queries: Record<QueryKey, QueryP50> } {
  const rows = compare([...copyRows(s, csv, duckdb, copies), ...queryRows(lat)]);
  const sec = (side: keyof CopyRounds) => median(copies[side].map((x) => x.seconds));
  const share = (side: keyof CopyRounds) => `${Math.round((sec(side) / sec('raw')) * 100)}%`;
  const p50 = queryP50s(lat);
  const queryLine = (q: (typeof QUERIES)[number]) => {
    const t = p50[q.key];
    return `${q.label}: raw ${fixed(t.raw_ms, 1)} ms, writer ${fixed(t.writer_ms, 1)} ms (${fixed(t.writer_ratio)}×), reader ${fixed(t.reader_ms, 1)} ms (${fixed(t.reader_ratio)}×); reader − writer ${fixed(t.reader_ms - t.writer_ms, 1)} ms, the parse tree alone (QueryEngine.parseTree) ${fixed(t.parse_ms, 1)} ms`;
  };
  return {
    bench: 'sql',
    date,
    machine: machineInfo({ duckdb, load_avg_1m_at_start: Number(loadAtStart.toFixed(2)) }),
    settings: {
      rows: csv.rows, seed: s.seed, csv_bytes: csv.bytes, rounds: s.rounds, query_runs: s.queryRuns, threads: s.threads,
      masked_columns: PII_COLUMNS.join(','),
    },
    rows,
    disk,
    queries: p50,
    notes: [
      `Input: ${csv.rows.toLocaleString('en-US')} generated staffing profiles (bench/ingest/profiles-csv.ts, seed ${s.seed}), ${fixed(mb(csv.bytes), 1)} MB of CSV, generated in ${fixed(csv.seconds, 1)} s; converted once by plain DuckDB (${fixed(ingest.seconds)} s, not in any row) into the dataset's one part, ${fixed(mb(disk.partBytes), 1)} MB of zstd Parquet, which every copy and query below reads.`,
      `The "jobs" column is the number of items a row times: thousands of profile rows for the copy rows (rate in k rows/s, CPU in µs per 1000 rows), 1 query for the query rows (so "rate" is k rows/s or queries/s and "seconds" the median round or the p50 query). "ratio vs raw" = ours rate ÷ raw rate of the same round = raw seconds ÷ ours seconds: above 1× ours is quicker.`,
      `Extra ingest-time cost if reader copies were made at ingest: the masked copy takes ${share('masked')} of the raw CSV → Parquet time (${fixed(sec('masked'))} s vs ${fixed(sec('raw'))} s), the whole view sync ${share('sync')} (${fixed(sec('sync'))} s), the hard link ${fixed(sec('link') * 1000, 2)} ms. Whoever makes the copy pays this once per part and masked-column set: the ingest job if it prepares the copies, else the first query after an ingest or a public-columns change (the view sync); every later query reuses the copy.`,
      `Disk: the part is ${disk.partBytes.toLocaleString('en-US')} bytes; its masked copy ${disk.maskedCopyBytes.toLocaleString('en-US')} bytes (${fixed((disk.maskedCopyBytes / disk.partBytes) * 100, 1)}% of the part: the four masked columns become one constant each, which zstd stores in almost nothing). The hard-link case ${disk.linkSharesInode ? 'shares the part\'s inode' : 'does NOT share the part\'s inode'} and added ${disk.linkExtraBytes.toLocaleString('en-US')} bytes (allocated blocks of files in its reader directory other than the part's inode).`,
      `Query p50 over ${s.queryRuns} runs per side after one warm-up, with raw p50 ÷ ours p50 (the table's query ratios are per-run ratios of times report.ts rounds to 1 ms, so they come in steps at this scale; these, also in the JSON's "queries", do not): ${QUERIES.map(queryLine).join('; ')}. The engine was opened and its views synced before (the sync, which found the copy already made, took ${fixed(syncFirst * 1000, 1)} ms). CatalogQuery adds to every query a manifest listing, the view-sync check, a second parse for the audit line and the audit append; HTTP adds more: bench/ingest measures those.`,
      `Both engines and the raw DuckDB use ${s.threads} threads on this machine's ${os.availableParallelism()} cores; our engines have the product's memory limit (1024 MiB each) and spill directory. The 1-minute load average was ${fixed(loadAtStart, 1)} before the bench started; a query row's "cores busy with other processes" is measured over each run of its three sides together (milliseconds, 10 ms CPU ticks): coarse.`,
    ],
  };
}

export async function run(): Promise<BenchReport> {
  const s = loadSettings();
  const date = new Date().toISOString();
  const loadAtStart = os.loadavg()[0]!;
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'lhbench-sql-'));
  let engine: QueryEngine | undefined;
  let raw: RawSql | undefined;
  try {
    const duckdb = await duckdbVersion();
    const root = new DataRoot(path.join(tmp, 'root'));
    await root.ensure();
    const partsDir = path.join(root.datasetDir(DATASET), 'parts');
    await fs.mkdir(partsDir, { recursive: true });
    const part = path.join(partsDir, 'part-00000.parquet');
    const scratch = path.join(tmp, 'scratch');
    await fs.mkdir(scratch);

    say(`generating ${s.rows.toLocaleString('en-US')} rows…`);
    const csv = await generateProfilesCsv(path.join(tmp, 'profiles.csv'), s.rows, s.seed);
    say(`  ${fixed(mb(csv.bytes), 1)} MB in ${fixed(csv.seconds, 1)} s; making the part…`);
    const ingest = await rawCsvToParquet(csv.file, part);

    const { rounds: copies, disk } = await copyRounds(root, csv.file, part, scratch, s.rounds, s.threads);

    say('query latency per role…');
    engine = await openEngine(root, s.threads);
    const syncStarted = performance.now();
    await engine.syncViews([datasetView(root, part)]);
    const syncFirst = (performance.now() - syncStarted) / 1000;
    raw = await RawSql.open(DATASET, [part]);
    const latency = await measureRoles(engine, raw, s.queryRuns, csv.rows);
    return report(s, date, loadAtStart, duckdb, csv, ingest, copies, disk, syncFirst, latency);
  } finally {
    raw?.close();
    await engine?.close();
    await fs.rm(tmp, { recursive: true, force: true });
  }
}
