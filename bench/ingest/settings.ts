/**
 * What the ingest bench reads from the environment. A bad value stops the bench naming the
 * variable, like shared/config.ts does for the product.
 */
import { z } from 'zod';
import { parseBenchEnv } from '../bench-env.ts';

const count = (fallback: number, min: number, max: number) => z.coerce.number().int().min(min).max(max).default(fallback);

const schema = z.object({
  REDIS_URL: z.string().regex(/^redis:\/\//, 'a redis:// URL').default('redis://127.0.0.1:6379'),
  /** Rows of the generated CSV (~700 bytes each: 500,000 make ~350 MB). */
  BENCH_INGEST_ROWS: count(500_000, 1_000, 5_000_000),
  /** Seed of the generator: the same seed and row count give the same bytes. */
  BENCH_INGEST_SEED: count(20_261_126, 0, 2 ** 31 - 1),
  /** Ingest rounds, raw, ours and the raw upload interleaved (order rotated per round); the table shows the median. */
  BENCH_INGEST_ROUNDS: count(5, 1, 10),
  /** Timed runs of each SQL query (after one warm-up), ours and raw interleaved. */
  BENCH_QUERY_RUNS: count(5, 1, 50),
  /** Queries in flight at once in the concurrent section. */
  BENCH_QUERY_CONCURRENCY: count(10, 2, 100),
});

export interface IngestBenchSettings {
  redisUrl: string;
  rows: number;
  seed: number;
  rounds: number;
  queryRuns: number;
  queryConcurrency: number;
}

export function loadSettings(env: NodeJS.ProcessEnv = process.env): IngestBenchSettings {
  const s = parseBenchEnv(schema, env);
  return {
    redisUrl: s.REDIS_URL,
    rows: s.BENCH_INGEST_ROWS,
    seed: s.BENCH_INGEST_SEED,
    rounds: s.BENCH_INGEST_ROUNDS,
    queryRuns: s.BENCH_QUERY_RUNS,
    queryConcurrency: s.BENCH_QUERY_CONCURRENCY,
  };
}
