/**
 * The view of the run: one line per figure it asks for (section, metric, ours, raw,
 * ratio, target, result). The rows of the BenchReport hold the timings behind it; this table
 * adds what is not a rate (recall, p50/p95 latency, speed-up, the plan chosen) and says which
 * figure each target applies to.
 */

export interface SummaryLine {
  section: string;
  metric: string;
  ours: string;
  raw: string;
  /** Ours against raw, oriented so that above 1 is ours better. */
  ratio: string;
  target: string;
  result: 'PASS' | 'FAIL' | '—';
}

export const verdict = (ok: boolean | undefined): SummaryLine['result'] => (ok === undefined ? '—' : ok ? 'PASS' : 'FAIL');

export function summaryTable(lines: readonly SummaryLine[]): string {
  const head = ['section', 'metric', 'ours', 'raw', 'ratio', 'target', 'result'];
  const out = [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i < 2 ? '---' : '---:')).join('|')}|`];
  for (const l of lines) out.push(`| ${[l.section, l.metric, l.ours, l.raw, l.ratio, l.target, l.result].join(' | ')} |`);
  return out.join('\n');
}
