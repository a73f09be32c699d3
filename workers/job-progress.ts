import type { Job } from 'bullmq';
import type { ProgressFn } from '../shared/progress.ts';

/**
 * Adapts a job to the domain's progress callback. Progress is an object with `percent` (what
 * Bull Board, SSE clients and the CLI bar read) plus the domain's detail (counts, rates).
 * Updates are throttled so a fast loop doesn't flood Redis.
 */
export function jobProgress(job: Job, minIntervalMs = 200): ProgressFn {
  let last = 0;
  let lastPhase: unknown;
  return async (fraction, detail = {}) => {
    const now = Date.now();
    // a new phase is always shown, however soon after the last update it comes
    if (fraction < 1 && now - last < minIntervalMs && detail['phase'] === lastPhase) return;
    last = now;
    lastPhase = detail['phase'];
    await job.updateProgress({ ...detail, percent: Math.round(Math.min(Math.max(fraction, 0), 1) * 1000) / 10 });
  };
}
