/**
 * What the autotune bench reads from the environment. A bad value stops the bench naming the
 * variable, like shared/config.ts does for the product. The defaults (50k × 128, 200 queries, three
 * rounds) finish in about 4 minutes on the 2-core machine; one round at 384 dimensions in about 3.
 */
import { z } from 'zod';
import { parseBenchEnv } from '../bench-env.ts';

const count = (fallback: number, min: number, max: number) => z.coerce.number().int().min(min).max(max).default(fallback);

const schema = z.object({
  REDIS_URL: z.string().regex(/^redis:\/\//, 'a redis:// URL').default('redis://127.0.0.1:6379'),
  /** Vectors in the index, and their dimension. */
  BENCH_AUTOTUNE_VECTORS: count(50_000, 1_000, 2_000_000),
  BENCH_AUTOTUNE_DIMS: count(128, 2, 4_096),
  /** Size of the eval set the job generates (its `queries`), and k. */
  BENCH_AUTOTUNE_QUERIES: count(200, 1, 1_000),
  BENCH_AUTOTUNE_K: count(10, 1, 100),
  /** The job's min_recall: the winner is promoted when it clears it (promotion is part of ours). */
  BENCH_AUTOTUNE_MIN_RECALL: z.coerce.number().min(0).max(1).default(0.9),
  /** Rounds: one autotune job and one raw pass over the grid each, order alternating. */
  BENCH_AUTOTUNE_ROUNDS: count(3, 1, 10),
  /** Seed of the vectors (the mixture); the job's eval set uses its own fixed seed 1. */
  BENCH_AUTOTUNE_SEED: count(20_261_126, 0, 2 ** 31 - 1),
});

export type AutotuneBenchSettings = z.output<typeof schema>;

export function loadSettings(env: NodeJS.ProcessEnv = process.env): AutotuneBenchSettings {
  return parseBenchEnv(schema, env);
}

/** The settings as the report records them (flat). */
export function settingsRecord(s: AutotuneBenchSettings): Record<string, string | number> {
  return Object.fromEntries(Object.entries(s).map(([k, v]) => [k.replace(/^BENCH_/, '').toLowerCase(), v as string | number]));
}
