/**
 * What the sql bench reads from the environment. A bad value stops the bench naming the
 * variable, like shared/config.ts does for the product.
 */
import { z } from 'zod';
import { parseBenchEnv } from '../bench-env.ts';

const count = (fallback: number, min: number, max: number) => z.coerce.number().int().min(min).max(max).default(fallback);

const schema = z.object({
  /** Rows of the generated profiles CSV (~700 bytes each: 500,000 make ~350 MB, ~32 MB of zstd Parquet). */
  BENCH_SQL_ROWS: count(500_000, 1_000, 5_000_000),
  /** Seed of the generator (bench/ingest/profiles-csv.ts): the same seed and row count give the same bytes. */
  BENCH_SQL_SEED: count(20_261_126, 0, 2 ** 31 - 1),
  /** Rounds of the reader-copy section (raw CSV → Parquet, masked copy, hard link, view sync; order rotated per round). */
  BENCH_SQL_ROUNDS: count(5, 1, 10),
  /** Timed runs of each query per side (after one warm-up), raw, writer and reader interleaved. */
  BENCH_SQL_QUERY_RUNS: count(31, 1, 200),
  /** DuckDB threads of our engines and of the DuckDB that makes the copies (the product's LAKEHOUSE_QUERY_THREADS default). */
  BENCH_SQL_THREADS: count(2, 1, 64),
});

export interface SqlBenchSettings {
  rows: number;
  seed: number;
  rounds: number;
  queryRuns: number;
  threads: number;
}

export function loadSettings(env: NodeJS.ProcessEnv = process.env): SqlBenchSettings {
  const s = parseBenchEnv(schema, env);
  return { rows: s.BENCH_SQL_ROWS, seed: s.BENCH_SQL_SEED, rounds: s.BENCH_SQL_ROUNDS, queryRuns: s.BENCH_SQL_QUERY_RUNS, threads: s.BENCH_SQL_THREADS };
}
