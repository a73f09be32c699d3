/**
 * Aligned plain-text tables for the terminal: a header, a rule, the rows. Cells are made single
 * line so the columns stay straight.
 */
export type Align = 'left' | 'right';

export function formatTable(headers: readonly string[], rows: readonly (readonly string[])[], align: readonly Align[] = []): string {
  const widths = headers.map((h, i) => Math.max(width(h), ...rows.map((r) => width(r[i] ?? ''))));
  const line = (cells: readonly string[]) =>
    widths
      .map((w, i) => pad(cells[i] ?? '', w, align[i] ?? 'left'))
      .join('  ')
      .trimEnd();
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n') + '\n';
}

/** One value as a single-line cell: NULL for null, JSON for objects, line breaks escaped. */
export function cellText(value: unknown): string {
  if (value === null || value === undefined) return 'NULL';
  const text = typeof value === 'object' ? JSON.stringify(value) : String(value);
  return text.replace(/\r\n|\r|\n/g, '\\n').replace(/\t/g, '\\t');
}

export function truncate(text: string, max: number): string {
  const chars = [...text];
  return chars.length <= max ? text : chars.slice(0, max - 1).join('') + '…';
}

/** Code points, not UTF-16 units: close enough for alignment without a width table. */
function width(s: string): number {
  return [...s].length;
}

function pad(s: string, w: number, align: Align): string {
  const fill = ' '.repeat(w - width(s));
  return align === 'right' ? fill + s : s + fill;
}
