/**
 * Turns "done of total" into the job's progress: a fraction up to {@link CONVERSION_SHARE} (the
 * caller reports 1 once the part is committed) and a rate, so Bull Board shows how fast a big
 * file is going, not only how far.
 */
import type { ProgressFn } from '../../progress.ts';

/** The share of the job a conversion may claim; committing the part and the manifest is the rest. */
export const CONVERSION_SHARE = 0.9;

/** How often a running conversion reports, in milliseconds. */
export const PROGRESS_INTERVAL_MS = 250;

export type ProgressUnit = 'bytes' | 'rows';

export class ProgressMeter {
  private readonly started = Date.now();
  private lastReport = 0;

  constructor(
    private readonly progress: ProgressFn,
    private readonly unit: ProgressUnit,
    private readonly total: number,
  ) {}

  /** Reports `done` now. */
  report(done: number): void {
    this.lastReport = Date.now();
    const seconds = Math.max((this.lastReport - this.started) / 1000, 0.001);
    const fraction = this.total > 0 ? Math.min(done / this.total, 1) * CONVERSION_SHARE : 0;
    const detail: Record<string, number> =
      this.unit === 'bytes'
        ? { bytes_done: Math.round(done), bytes_total: this.total, mb_per_s: round2(done / 1e6 / seconds) }
        : { rows_done: done, rows_total: this.total, rows_per_s: round2(done / seconds) };
    // Progress is advice: a failed update (Redis briefly away) must not fail the conversion, and
    // an unhandled rejection would take the whole worker down.
    try {
      void Promise.resolve(this.progress(fraction, detail)).catch(() => {});
    } catch {
      /* same as above, for a callback that throws synchronously */
    }
  }

  /** Reports `done` unless the last report is more recent than {@link PROGRESS_INTERVAL_MS}. */
  reportThrottled(done: number): void {
    if (Date.now() - this.lastReport >= PROGRESS_INTERVAL_MS) this.report(done);
  }
}

function round2(n: number): number {
  return Math.round(n * 100) / 100;
}
