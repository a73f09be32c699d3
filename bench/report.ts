/**
 * Glossary
 * - bench: one module under bench/<name>/ whose `run()` measures ours against a raw baseline
 *   in the same process and run (DESIGN §6) and returns a BenchReport.
 * - row: one measurement — what was measured, over how many items, how long it took (median of
 *   the rounds) and, for our rows, the ratio against the raw row it is compared with.
 * - target: the figure an issue asks for, either a ratio against raw or an absolute rate.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

export type Target = { kind: 'ratio'; min: number } | { kind: 'rate'; min: number };

export interface BenchRow {
  /** Short label, shown in the table. */
  section: string;
  /** One sentence: exactly what the timed span contains. */
  measures: string;
  items: number;
  /** Median over the rounds. */
  seconds: number;
  /** items / seconds, rounded. */
  rate: number;
  unit: string;
  /** The section label of the row this one is compared with. */
  baseline?: string;
  /**
   * Median over the rounds of (this row's rate / the baseline's rate in the same round). Pairing
   * by round keeps load that comes and goes on a shared machine out of the ratio.
   */
  ratio?: number;
  round_ratios?: number[];
  /**
   * Baseline CPU per item over this row's (all processes summed, medians): the throughput ratio to
   * expect where CPU is the limit, and one a busy neighbour hardly moves.
   */
  cpu_ratio?: number;
  /** The ratio over only the rounds in which neither row had a busy neighbour, and how many there were. */
  quiet_ratio?: number;
  quiet_rounds?: number;
  target?: Target;
  pass?: boolean;
  /** Seconds of every round, in the order they ran. */
  rounds: number[];
  /** Per round: cores other processes kept busy meanwhile (bench/cpu-meter.ts). */
  other_cores_busy?: number[];
  /** CPU microseconds per item by whom (e.g. bench process, redis-server): median, and every round. */
  cpu_us_per_item?: Record<string, number>;
  cpu_us_per_item_rounds?: Record<string, number[]>;
}

export type RowInput = Omit<BenchRow, 'seconds' | 'rate' | 'cpu_us_per_item' | 'cpu_us_per_item_rounds'> & {
  /** CPU seconds per round by whom; turned into µs per item. */
  cpu_seconds?: Record<string, number[]>;
};

export interface BenchReport {
  bench: string;
  /** ISO timestamp of the start of the run. */
  date: string;
  machine: Record<string, string | number>;
  settings: Record<string, string | number>;
  rows: BenchRow[];
  /** What the rows do not show: caveats, what was left out and why. */
  notes: string[];
}

export function machineInfo(extra: Record<string, string | number> = {}): Record<string, string | number> {
  return {
    cpus: os.availableParallelism(),
    cpu_model: os.cpus()[0]?.model ?? 'unknown',
    memory_gib: Math.round(os.totalmem() / 2 ** 30),
    platform: `${os.platform()} ${os.release()}`,
    node: process.version,
    /** Includes the bench's own threads: read other_cores_busy per row for what neighbours took. */
    load_avg_1m_at_end: Number(os.loadavg()[0]!.toFixed(2)),
    ...extra,
  };
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** A row from per-round timings; the ratio and pass/fail are filled in by `compare`. */
export function row({ cpu_seconds, ...fields }: RowInput): BenchRow {
  const seconds = median(fields.rounds);
  const perItem = cpu_seconds
    ? Object.fromEntries(Object.entries(cpu_seconds).map(([who, secs]) => [who, secs.map((x) => Math.round((x / fields.items) * 1e6))]))
    : undefined;
  return {
    ...fields,
    seconds: round(seconds, 3),
    rate: Math.round(fields.items / seconds),
    rounds: fields.rounds.map((x) => round(x, 3)),
    ...(perItem
      ? { cpu_us_per_item: Object.fromEntries(Object.entries(perItem).map(([who, us]) => [who, Math.round(median(us))])), cpu_us_per_item_rounds: perItem }
      : {}),
  };
}

/** Cores a neighbour may take during a round before the round stops counting as quiet. */
export const QUIET_BELOW_CORES = 0.25;

/**
 * Fills ratio (against the row named by `baseline`) and pass (against `target`) on every row.
 * Pass/fail uses every round; the quiet-round ratio is shown beside it, never instead of it.
 */
export function compare(rows: BenchRow[]): BenchRow[] {
  return rows.map((r) => {
    const base = r.baseline ? rows.find((b) => b.section === r.baseline) : undefined;
    if (!base) return withPass(r, undefined);
    if (base.rounds.length !== r.rounds.length) throw new Error(`${r.section} and ${base.section} ran a different number of rounds`);
    const roundRatios = r.rounds.map((sec, i) => round((r.items / sec) / (base.items / base.rounds[i]!), 3));
    const quiet = roundRatios.filter((_, i) => (r.other_cores_busy?.[i] ?? 0) < QUIET_BELOW_CORES && (base.other_cores_busy?.[i] ?? 0) < QUIET_BELOW_CORES);
    const ratio = round(median(roundRatios), 3);
    const cpu = (x: BenchRow) => Object.values(x.cpu_us_per_item ?? {}).reduce((a, b) => a + b, 0);
    const cpuRatio = cpu(r) > 0 && cpu(base) > 0 ? round(cpu(base) / cpu(r), 3) : undefined;
    return withPass(
      {
        ...r, ratio, round_ratios: roundRatios,
        ...(cpuRatio !== undefined ? { cpu_ratio: cpuRatio } : {}),
        ...(quiet.length > 0 ? { quiet_ratio: round(median(quiet), 3) } : {}), quiet_rounds: quiet.length,
      },
      ratio,
    );
  });
}

function withPass(r: BenchRow, ratio: number | undefined): BenchRow {
  if (!r.target) return r;
  return { ...r, pass: r.target.kind === 'rate' ? r.rate >= r.target.min : ratio !== undefined && ratio >= r.target.min };
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

function ratioText(r: BenchRow): string {
  if (r.ratio === undefined) return 'baseline';
  const extra: string[] = [];
  if (r.quiet_rounds !== r.rounds.length) extra.push(r.quiet_ratio === undefined ? 'no quiet round' : `quiet ${r.quiet_ratio.toFixed(2)}×, ${r.quiet_rounds}/${r.rounds.length}`);
  if (r.cpu_ratio !== undefined) extra.push(`CPU ${r.cpu_ratio.toFixed(2)}×`);
  return `${r.ratio.toFixed(2)}×${extra.length > 0 ? ` (${extra.join('; ')})` : ''}`;
}

function targetText(t: Target | undefined, unit: string): string {
  if (!t) return '—';
  return t.kind === 'ratio' ? `≥ ${t.min}× raw` : `≥ ${t.min.toLocaleString('en-US')} ${unit}`;
}

/** The table as Markdown, so the same text goes to stdout and into README. */
export function markdownTable(report: BenchReport): string {
  const head = ['section', 'jobs', 'seconds', 'rate', 'ratio vs raw', 'target', 'result', 'CPU µs/job'];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((h, i) => (i === 0 ? '---' : '---:')).join('|')}|`];
  for (const r of report.rows) {
    lines.push(
      `| ${[
        r.section,
        r.items.toLocaleString('en-US'),
        r.seconds.toFixed(2),
        `${r.rate.toLocaleString('en-US')} ${r.unit}`,
        ratioText(r),
        targetText(r.target, r.unit),
        r.pass === undefined ? '—' : r.pass ? 'PASS' : 'FAIL',
        r.cpu_us_per_item ? Object.entries(r.cpu_us_per_item).map(([who, us]) => `${us} ${who}`).join(' + ') : '—',
      ].join(' | ')} |`,
    );
  }
  return lines.join('\n');
}

export function printReport(report: BenchReport): void {
  const out: string[] = [`\n## bench ${report.bench} — ${report.date}`, ''];
  out.push(`machine: ${Object.entries(report.machine).map(([k, v]) => `${k}=${v}`).join(', ')}`);
  out.push(`settings: ${Object.entries(report.settings).map(([k, v]) => `${k}=${v}`).join(', ')}`, '');
  out.push(markdownTable(report), '');
  out.push(
    'CPU µs/job: median CPU time per job of each process named (less sensitive to busy neighbours than wall time);',
    '"CPU n×" in the ratio column: the baseline\'s total CPU per job over this row\'s, the ratio to expect where CPU is the limit.',
    'seconds and rate: the median round. ratio: the median of per-round ratios against the baseline row, all rounds (pass/fail uses this);',
    `"quiet" is the same over the rounds in which other processes kept < ${QUIET_BELOW_CORES} cores busy. Every round ran on a fresh Redis prefix.`,
  );
  const noisy = report.rows.flatMap((r) => r.other_cores_busy ?? []).filter((x) => x >= QUIET_BELOW_CORES).length;
  if (noisy > 0) out.push(`WARNING: other processes kept ≥ ${QUIET_BELOW_CORES} cores busy during ${noisy} row-rounds (see below): those timings are slowed by a neighbour, not by the code.`);
  out.push('', 'What each row measures:');
  for (const r of report.rows) {
    const ratios = r.round_ratios ? `; ratio per round: ${r.round_ratios.map((x) => x.toFixed(2)).join(', ')}` : '';
    const others = r.other_cores_busy ? `; cores busy with other processes per round: ${r.other_cores_busy.map((x) => x.toFixed(2)).join(', ')}` : '';
    out.push(`- ${r.section}: ${r.measures} Seconds per round: ${r.rounds.map((x) => x.toFixed(2)).join(', ')}${ratios}${others}.`);
  }
  if (report.notes.length > 0) out.push('', 'Notes:', ...report.notes.map((n) => `- ${n}`));
  process.stdout.write(`${out.join('\n')}\n`);
}

/** Writes `bench/results/<bench>-<date>.json` (colons in the time replaced, for portable file names). */
export async function writeReport(report: BenchReport, dir: string): Promise<string> {
  await fs.mkdir(dir, { recursive: true });
  const file = path.join(dir, `${report.bench}-${report.date.replace(/:/g, '-').replace(/\.\d+Z$/, 'Z')}.json`);
  const tmp = `${file}.tmp`;
  await fs.writeFile(tmp, `${JSON.stringify(report, null, 2)}\n`);
  await fs.rename(tmp, file);
  return file;
}
