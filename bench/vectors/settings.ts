/**
 * What the vectors bench reads from the environment. A bad value stops the bench naming the
 * variable, like shared/config.ts does for the product. The defaults finish in about 5 minutes on
 * the 2-core machine.
 */
import { z } from 'zod';
import { parseBenchEnv } from '../bench-env.ts';

const count = (fallback: number, min: number, max: number) => z.coerce.number().int().min(min).max(max).default(fallback);

export const SECTIONS = ['embed', 'hnsw', 'hybrid', 'scale'] as const;
export type Section = (typeof SECTIONS)[number];

const schema = z.object({
  REDIS_URL: z.string().regex(/^redis:\/\//, 'a redis:// URL').default('redis://127.0.0.1:6379'),
  /** Which sections run, comma-separated. */
  BENCH_VECTORS_SECTIONS: z
    .string()
    .default(SECTIONS.join(','))
    .transform((s, ctx) => {
      const names = [...new Set(s.split(',').map((x) => x.trim()).filter(Boolean))];
      const bad = names.filter((n) => !(SECTIONS as readonly string[]).includes(n));
      if (bad.length > 0 || names.length === 0) {
        ctx.addIssue({ code: 'custom', message: `a comma-separated subset of ${SECTIONS.join(',')}; got ${JSON.stringify(s)}` });
        return z.NEVER;
      }
      return names as Section[];
    }),
  /** Seed of every generator (texts, vectors, the dataset). */
  BENCH_VECTORS_SEED: count(20_261_126, 0, 2 ** 31 - 1),
  /** Rounds of (a), and timed passes over the queries in (b); ours and raw interleaved. */
  BENCH_VECTORS_ROUNDS: count(3, 1, 10),

  /** (a) Chunks embedded per round, one ~BENCH_EMBED_CHARS-character document each. */
  BENCH_EMBED_CHUNKS: count(300, 10, 100_000),
  BENCH_EMBED_CHARS: count(300, 50, 1_000),
  /** (a) LAKEHOUSE_EMBED_THREADS of the default configuration of ours; a 1-thread one always runs too. */
  BENCH_EMBED_THREADS: count(2, 1, 64),

  /** (b) Vectors in the graph, their dimension, the queries timed and checked, and the HNSW parameters. */
  BENCH_HNSW_VECTORS: count(100_000, 1_000, 5_000_000),
  BENCH_HNSW_DIMS: count(128, 2, 4_096),
  BENCH_HNSW_QUERIES: count(1_000, 10, 100_000),
  BENCH_HNSW_M: count(16, 2, 100),
  BENCH_HNSW_EF_CONSTRUCTION: count(100, 10, 1_000),
  BENCH_HNSW_EF: count(100, 10, 10_000),

  /** (c) Rows of the dataset (one vector each), their vectors' dimension, the queries, k. */
  BENCH_HYBRID_ROWS: count(200_000, 10_000, 5_000_000),
  BENCH_HYBRID_DIMS: count(64, 2, 4_096),
  BENCH_HYBRID_QUERIES: count(50, 5, 10_000),
  BENCH_HYBRID_K: count(5, 1, 1_000),
  /** (c) Rows the filter `state = 'OH' AND years > N` should match; N is chosen to come close. */
  BENCH_HYBRID_MATCHES: count(6_000, 1, 5_000_000),

  /** (d) Chunks of the scale-out job, chunks per shard, the stand-in's latency per request, worker counts. */
  BENCH_SCALE_CHUNKS: count(1_200, 10, 1_000_000),
  BENCH_SCALE_SHARD_CHUNKS: count(100, 1, 100_000),
  BENCH_SCALE_LATENCY_MS: count(200, 0, 60_000),
  BENCH_SCALE_DIMS: count(768, 2, 4_096),
  /** (d) Rounds: every worker count once per round, raw and ours. */
  BENCH_SCALE_ROUNDS: count(2, 1, 10),
  BENCH_SCALE_WORKERS: z
    .string()
    .default('1,2,4')
    .transform((s, ctx) => {
      const ns = [...new Set(s.split(',').map((x) => Number(x.trim())))].sort((a, b) => a - b);
      if (ns.length === 0 || ns.some((n) => !Number.isInteger(n) || n < 1 || n > 32) || ns[0] !== 1) {
        ctx.addIssue({ code: 'custom', message: `comma-separated worker counts in 1..32, starting with 1 (the baseline); got ${JSON.stringify(s)}` });
        return z.NEVER;
      }
      return ns;
    }),
});

export type VectorsBenchSettings = z.output<typeof schema>;

export function loadSettings(env: NodeJS.ProcessEnv = process.env): VectorsBenchSettings {
  return parseBenchEnv(schema, env);
}

/** The settings as the report records them (flat). */
export function settingsRecord(s: VectorsBenchSettings): Record<string, string | number> {
  return Object.fromEntries(
    Object.entries(s).map(([k, v]) => [k.replace(/^BENCH_/, '').toLowerCase(), Array.isArray(v) ? v.join(',') : (v as string | number)]),
  );
}
