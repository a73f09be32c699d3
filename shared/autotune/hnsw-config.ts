/**
 * The HNSW parameters an autotune trial varies, their allowed ranges, and the grid tried when a
 * caller names none.
 *
 * Glossary (shared by the autotune modules):
 * - *config*: `{m, ef_construction, ef_search}`, one point of the search space.
 * - *grid*: the configs one autotune run tries, each once.
 * - *eval set*: queries with their ground truth (evalset.ts); a trial is measured against one.
 * - *trial*: one config built from an index's vectors and measured on an eval set (trial.ts),
 *   recorded in the index's trial journal (journal.ts).
 */
import { z } from 'zod';

export interface HnswConfig {
  /** Graph degree: links per node per layer (twice that at layer 0). */
  m: number;
  /** Candidate list size while inserting: build time against graph quality. */
  ef_construction: number;
  /** Candidate list size while searching: latency against recall. */
  ef_search: number;
}

/**
 * Inclusive bounds. ef_construction and ef_search are the earlier system's (they rejected absurd
 * values from a custom grid); M 4–64 spans hnswlib's useful range: below 4 the graph fragments,
 * above 64 memory grows with no recall left to gain at embedding dimensions.
 */
export const HNSW_BOUNDS = {
  m: { min: 4, max: 64 },
  ef_construction: { min: 10, max: 400 },
  ef_search: { min: 10, max: 200 },
} as const satisfies Record<keyof HnswConfig, { min: number; max: number }>;

/** Grids hold at most this many configs: each one is a full build. */
export const MAX_GRID = 50;

/** An integer field whose messages name the field, the value given and the bound it broke, for the 400. */
function bounded(field: keyof HnswConfig) {
  const { min, max } = HNSW_BOUNDS[field];
  const range = `${min}–${max}`;
  return z
    .number({ error: (iss) => `${field} must be an integer in ${range}, got ${JSON.stringify(iss.input) ?? 'nothing'}` })
    .int({ error: (iss) => `${field} must be an integer in ${range}, got ${String(iss.input)}` })
    .min(min, { error: (iss) => `${field} ${String(iss.input)} is below the minimum ${min} (allowed ${range})` })
    .max(max, { error: (iss) => `${field} ${String(iss.input)} is above the maximum ${max} (allowed ${range})` });
}

export const hnswConfigSchema = z.strictObject({
  m: bounded('m'),
  ef_construction: bounded('ef_construction'),
  ef_search: bounded('ef_search'),
});

/** `m16-efc80-efs30`: names a config in trial ids and directory names. */
export function configKey(c: HnswConfig): string {
  return `m${c.m}-efc${c.ef_construction}-efs${c.ef_search}`;
}

export const gridSchema = z
  .array(hnswConfigSchema)
  .min(1, 'a grid needs at least one config')
  .max(MAX_GRID, { error: (iss) => `a grid holds at most ${MAX_GRID} configs, got ${Array.isArray(iss.input) ? iss.input.length : '?'}` })
  .superRefine((grid, ctx) => {
    const first = new Map<string, number>();
    grid.forEach((c, i) => {
      const key = configKey(c);
      const earlier = first.get(key);
      if (earlier === undefined) first.set(key, i);
      else ctx.addIssue({ code: 'custom', path: [i], message: `config ${key} appears twice (at ${earlier} and ${i}); each config is tried once` });
    });
  });

/**
 * The grid tried when a caller names none.
 *
 * The first five are the earlier system's grid at M 16: ef_construction 20 → 160 at ef_search 30,
 * and 80 with ef_search 60. They vary only the candidate lists, so they cannot answer the other
 * question a tuner has: how many links a node needs. M sets memory (2·M links of 4 bytes per
 * vector at layer 0, on top of the vector itself) and the recall ceiling that no ef reaches past,
 * so two M variations join at the strongest ef pair (80/60), where a difference is M's own:
 * - M 8: half the link memory, often enough for small or low-dimensional indexes;
 * - M 32: for high-dimensional embeddings (384–768 d) whose recall at M 16 plateaus below target.
 * Seven builds keep a default run short; a custom grid explores further.
 */
export const DEFAULT_GRID: readonly HnswConfig[] = Object.freeze([
  { m: 16, ef_construction: 20, ef_search: 30 },
  { m: 16, ef_construction: 40, ef_search: 30 },
  { m: 16, ef_construction: 80, ef_search: 30 },
  { m: 16, ef_construction: 80, ef_search: 60 },
  { m: 16, ef_construction: 160, ef_search: 30 },
  { m: 8, ef_construction: 80, ef_search: 60 },
  { m: 32, ef_construction: 80, ef_search: 60 },
].map((c) => Object.freeze(c)));
