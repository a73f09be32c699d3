/**
 * "Did you mean": the names closest to a mistyped one, by edit distance, from a list we own (the
 * catalog's datasets, a dataset's columns) — never from the SQL engine's internal tables.
 */

/** Levenshtein distance (insert, delete, substitute, each 1), case-insensitive. */
export function editDistance(a: string, b: string): number {
  const s = a.toLowerCase();
  const t = b.toLowerCase();
  let prev = Array.from({ length: t.length + 1 }, (_, j) => j);
  for (let i = 1; i <= s.length; i++) {
    const row = [i];
    for (let j = 1; j <= t.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (s[i - 1] === t[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[t.length]!;
}

/**
 * Up to `max` candidates within a distance of a third of the name's length (at least 2), or
 * sharing a prefix of 3+ characters with it, closest first.
 */
export function nearNames(name: string, candidates: readonly string[], max = 3): string[] {
  const limit = Math.max(2, Math.floor(name.length / 3));
  const lower = name.toLowerCase();
  return [...new Set(candidates)]
    .map((c) => ({ c, d: editDistance(name, c) }))
    .filter(({ c, d }) => d <= limit || (lower.length >= 3 && (c.toLowerCase().startsWith(lower) || lower.startsWith(c.toLowerCase()))))
    .sort((x, y) => x.d - y.d || x.c.localeCompare(y.c))
    .slice(0, max)
    .map(({ c }) => c);
}

/** " Did you mean a, b?" or "" — to append to a message. */
export function didYouMean(name: string, candidates: readonly string[]): string {
  const near = nearNames(name, candidates);
  return near.length === 0 ? '' : ` Did you mean ${near.map((n) => JSON.stringify(n)).join(', ')}?`;
}
