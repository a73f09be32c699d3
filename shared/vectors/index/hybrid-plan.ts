/**
 * How a filtered search runs. A filter that leaves few chunks is answered exactly: cosine over
 * just those vectors, perfect recall. A filter that leaves many is answered by HNSW with
 * post-filtering: ask for k' candidates, keep those that pass, and widen k' until k pass or the
 * whole index has been asked.
 *
 * Where the line is comes from measured costs (100k × 512-d, m=16, this 2-core machine):
 * - exact is dominated by fetching the matched vectors, not scoring them: ~45 µs a vector from
 *   the loaded graph (`LoadedGeneration.vectors`, hnswlib's getPoint), scoring ~1 µs. From
 *   Parquet it is worse: matched rows are scattered, so the scan decodes every page (~0.5 s).
 *   So exact(m) ≈ 45 µs · m.
 * - HNSW at selectivity s = m / total asks first for k' = 2k / s candidates (see
 *   {@link wideningSchedule}), and a search costs ~2 µs per candidate asked (k' = 1,000: 0.8 ms;
 *   16,000: 31 ms; 100,000: 112 ms). So hnsw(m) ≈ 4 µs · k · total / m.
 * The two meet at m ≈ 0.3 · √(k · total): 300 rows for k = 10 in 100k chunks, 950 in 1M. Below
 * that exact is both cheaper and exact; a floor of 256 rows (~12 ms) keeps small indexes exact.
 * The example, max(2,000, 2% of total), would spend ~90 ms on 2,000 rows where HNSW
 * answers in ~1 ms, and ~1 s at 2% of a million.
 */

/** Matched chunks up to which the exact plan is always chosen. */
export const EXACT_MIN_ROWS = 256;

/** c in the crossover m = c · √(k · total) (see above). */
export const EXACT_CROSSOVER = 0.3;

/** Each widening multiplies k' by this. */
export const WIDEN_FACTOR = 4;

export type FilteredPlan = { kind: 'exact' } | { kind: 'hnsw'; widths: number[] };

export interface PlanInput {
  /** Chunks the filter matches (or its estimate, see {@link estimateMatchedChunks}). */
  matched: number;
  /** Chunks in the index. */
  total: number;
  k: number;
}

/** Matched chunks up to which exact search is the cheaper plan. */
export function exactThreshold(total: number, k: number): number {
  return Math.max(EXACT_MIN_ROWS, Math.ceil(EXACT_CROSSOVER * Math.sqrt(k * total)));
}

export function planFilteredSearch({ matched, total, k }: PlanInput): FilteredPlan {
  if (matched <= exactThreshold(total, k)) return { kind: 'exact' };
  return { kind: 'hnsw', widths: wideningSchedule(k, total, matched / total) };
}

/**
 * Candidate counts to ask HNSW for, increasing, ending at `total`. The first is k × 4, or twice
 * the k / selectivity the filter is expected to need when that is larger, so a filter of known
 * selectivity usually needs one pass; each later one is × {@link WIDEN_FACTOR}.
 */
export function wideningSchedule(k: number, total: number, selectivity = 1): number[] {
  if (total <= 0 || k <= 0) return [];
  const expected = selectivity > 0 ? Math.ceil((2 * k) / selectivity) : total;
  const widths: number[] = [];
  for (let w = Math.min(total, Math.max(k * WIDEN_FACTOR, expected)); ; w = Math.min(total, w * WIDEN_FACTOR)) {
    widths.push(w);
    if (w >= total) return widths;
  }
}

/**
 * Runs a filtered search with each width (an ef) in turn until it returns k hits: the filter
 * applies inside the graph walk, and a walk too narrow for a selective filter finds fewer.
 */
export function widenUntil<H>(widths: readonly number[], k: number, search: (width: number) => H[]): H[] {
  let hits: H[] = [];
  for (const width of widths) {
    hits = search(width);
    if (hits.length >= k) break;
  }
  return hits;
}

/** Chunks a filter matching `matchedDocs` documents is expected to cover, from the index's average. */
export function estimateMatchedChunks(matchedDocs: number, stats: { docs: number; chunks: number }): number {
  if (stats.docs === 0) return 0;
  return Math.ceil((matchedDocs * stats.chunks) / stats.docs);
}
