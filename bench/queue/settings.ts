/**
 * What the queue bench reads from the environment. A bad value stops the bench naming the
 * variable, like shared/config.ts does for the product.
 */
import { z } from 'zod';
import { parseBenchEnv } from '../bench-env.ts';

const count = (fallback: number, max = 1_000_000) => z.coerce.number().int().min(1).max(max).default(fallback);

const schema = z.object({
  REDIS_URL: z.string().regex(/^redis:\/\//, 'a redis:// URL').default('redis://127.0.0.1:6379'),
  /** Jobs per section and round. */
  BENCH_JOBS: count(50_000),
  /** Worker concurrency, the same for the raw and our worker. */
  BENCH_CONCURRENCY: count(50, 10_000),
  /** Jobs per addBulk call and per HTTP bulk request (the route takes at most 10000). */
  BENCH_BATCH: count(1_000, 10_000),
  /** HTTP bulk requests in flight at once. */
  BENCH_HTTP_CONCURRENCY: count(3, 64),
  /** Every section runs this many times, raw and ours interleaved; the table shows the median. */
  BENCH_ROUNDS: count(5, 20),
});

export interface QueueBenchSettings {
  redisUrl: string;
  jobs: number;
  concurrency: number;
  batch: number;
  httpConcurrency: number;
  rounds: number;
}

export function loadSettings(env: NodeJS.ProcessEnv = process.env): QueueBenchSettings {
  const s = parseBenchEnv(schema, env);
  return {
    redisUrl: s.REDIS_URL,
    jobs: s.BENCH_JOBS,
    concurrency: s.BENCH_CONCURRENCY,
    batch: s.BENCH_BATCH,
    httpConcurrency: s.BENCH_HTTP_CONCURRENCY,
    rounds: s.BENCH_ROUNDS,
  };
}
