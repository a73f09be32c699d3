/**
 * How a filtered search runs. A filter that leaves few chunks is answered exactly: cosine over
 * just those vectors is cheap and has perfect recall. A filter that leaves many is answered by
 * HNSW with post-filtering: ask for k' candidates, keep those that pass, and widen k' until k
 * pass or the whole index has been asked.
 *
 * Why the threshold is max(2,000, 2% of the index):
 * - exact costs one multiply-add per value of each matched vector: 2,000 × 512 is 1M, about a
 *   millisecond, plus fetching those vectors; it grows with the matched count, not the index.
 * - post-filtered HNSW needs about k / s candidates at selectivity s, and ef ≥ k'. At s = 2%,
 *   k = 10 that is ~500 candidates with ef ≥ 500, which costs as much as scoring thousands of
 *   vectors outright; below 2% it only gets worse, and its recall falls with it.
 * So below the line exact is both faster and right; above it, HNSW's cost stays near k / s.
 */

/** Matched chunks up to which the exact plan is always chosen. */
export const EXACT_MIN_ROWS = 2_000;

/** Share of the index up to which the exact plan is chosen. */
export const EXACT_SHARE = 0.02;

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

export function exactThreshold(total: number): number {
  return Math.max(EXACT_MIN_ROWS, Math.ceil(EXACT_SHARE * total));
}

export function planFilteredSearch({ matched, total, k }: PlanInput): FilteredPlan {
  if (matched <= exactThreshold(total)) return { kind: 'exact' };
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
 * Runs a schedule: `search(width)` returns candidates best first; the first `k` that `keep`
 * accepts are returned as soon as a width yields k of them, or whatever the widest search kept.
 */
export function collectFiltered<H>(widths: readonly number[], k: number, search: (width: number) => H[], keep: (hit: H) => boolean): H[] {
  let kept: H[] = [];
  for (const width of widths) {
    kept = search(width).filter(keep);
    if (kept.length >= k) break;
  }
  return kept.slice(0, k);
}

/** Chunks a filter matching `matchedDocs` documents is expected to cover, from the index's average. */
export function estimateMatchedChunks(matchedDocs: number, stats: { docs: number; chunks: number }): number {
  if (stats.docs === 0) return 0;
  return Math.ceil((matchedDocs * stats.chunks) / stats.docs);
}
