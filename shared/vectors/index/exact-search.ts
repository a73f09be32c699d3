/**
 * Brute-force cosine top-k: the plan for filters that leave few rows, and the ground truth that
 * HNSW recall is measured against. Scores are cosine similarities like the HNSW searcher's
 * (1 − hnswlib's cosine distance). Providers L2-normalise, so that is the dot product; the norms
 * are computed anyway (one more multiply-add per value) so a vector that drifted from unit
 * length still scores exactly as hnswlib, which normalises on insert, scores it.
 */

export interface ScoredRow {
  /** Row position in the vectors searched. */
  index: number;
  score: number;
}

/**
 * The best `k` seen so far, in a min-heap of size k: O(n log k) over n rows, and rows can be
 * pushed batch by batch (`offset` + position) without holding them all.
 */
export class TopK {
  private readonly heap: ScoredRow[] = [];

  constructor(readonly k: number) {}

  push(index: number, score: number): void {
    if (this.k <= 0) return;
    if (this.heap.length < this.k) {
      this.heap.push({ index, score });
      this.up(this.heap.length - 1);
    } else if (worse(this.heap[0]!, { index, score })) {
      this.heap[0] = { index, score };
      this.down(0);
    }
  }

  /** Best first; equal scores by lower index, so results are deterministic. */
  sorted(): ScoredRow[] {
    return [...this.heap].sort((a, b) => b.score - a.score || a.index - b.index);
  }

  private up(i: number): void {
    const h = this.heap;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!worse(h[i]!, h[parent]!)) return;
      [h[i], h[parent]] = [h[parent]!, h[i]!];
      i = parent;
    }
  }

  private down(i: number): void {
    const h = this.heap;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let least = i;
      if (l < h.length && worse(h[l]!, h[least]!)) least = l;
      if (r < h.length && worse(h[r]!, h[least]!)) least = r;
      if (least === i) return;
      [h[i], h[least]] = [h[least]!, h[i]!];
      i = least;
    }
  }
}

/** `a` ranks below `b`: a lower score, or the same score and a higher index. */
function worse(a: ScoredRow, b: ScoredRow): boolean {
  return a.score < b.score || (a.score === b.score && a.index > b.index);
}

function norm(v: Float32Array, from: number, dims: number): number {
  let s = 0;
  for (let j = from; j < from + dims; j++) s += v[j]! * v[j]!;
  return Math.sqrt(s);
}

/**
 * Pushes the cosine similarity of `query` with every row of `vectors` (rows × dims, flat) into
 * `top`, numbering rows from `offset`. A zero vector scores 0.
 */
export function scoreInto(top: TopK, query: Float32Array, vectors: Float32Array, dims: number, offset = 0): void {
  if (query.length !== dims) throw new RangeError(`query has ${query.length} dimensions, expected ${dims}`);
  if (vectors.length % dims !== 0) throw new RangeError(`vectors hold ${vectors.length} values, not a multiple of ${dims}`);
  const qNorm = norm(query, 0, dims);
  const rows = vectors.length / dims;
  for (let r = 0; r < rows; r++) {
    const base = r * dims;
    let dot = 0;
    let sq = 0;
    for (let j = 0; j < dims; j++) {
      const x = vectors[base + j]!;
      dot += query[j]! * x;
      sq += x * x;
    }
    const denom = qNorm * Math.sqrt(sq);
    top.push(offset + r, denom > 0 ? dot / denom : 0);
  }
}

/** The `k` rows of `vectors` most similar to `query`, best first. */
export function exactTopK(query: Float32Array, vectors: Float32Array, dims: number, k: number): ScoredRow[] {
  const top = new TopK(k);
  scoreInto(top, query, vectors, dims);
  return top.sorted();
}

/** The share of `exact` that `approx` found: recall@k when both hold k ids. */
export function recall(approx: Iterable<number>, exact: readonly number[]): number {
  if (exact.length === 0) return 1;
  const found = new Set(approx);
  return exact.filter((id) => found.has(id)).length / exact.length;
}
