import type { Job } from 'bullmq';
import { clampPercent, cleanDetail, JobProgressStore, type ProgressDetail } from '../queues/job-progress-store.ts';
import type { ProgressFn } from '../shared/progress.ts';
import type { WorkerContext } from './context.ts';

/** The progress store of a worker process (queues/job-progress-store.ts). */
export function progressStore(ctx: Pick<WorkerContext, 'redis' | 'config'>): JobProgressStore {
  return new JobProgressStore(ctx.redis, ctx.config.queuePrefix);
}

/**
 * Sets a job's progress: the detail first (so whoever reacts to the progress event reads it),
 * then the number 0–100 as BullMQ's progress, which Bull Board draws as a bar.
 */
export async function setProgress(store: JobProgressStore, job: Job, percent: number, detail: ProgressDetail): Promise<void> {
  await store.writeDetail(job, detail);
  await job.updateProgress(clampPercent(percent));
}

/**
 * Adapts a job to the domain's progress callback: the number for Bull Board, the detail (counts,
 * rates, and an ETA from the pace so far) beside it. Updates are throttled so a fast loop doesn't
 * flood Redis; each new phase also goes to the job's log, which Bull Board shows.
 */
export function jobProgress(job: Job, store: JobProgressStore, minIntervalMs = 200): ProgressFn {
  const started = Date.now();
  let last = 0;
  let lastPhase: unknown;
  return async (fraction, detail = {}) => {
    const now = Date.now();
    const f = Math.min(Math.max(fraction, 0), 1);
    // a new phase is always shown, however soon after the last update it comes
    if (f < 1 && now - last < minIntervalMs && detail['phase'] === lastPhase) return;
    last = now;
    const phaseChanged = detail['phase'] !== lastPhase;
    lastPhase = detail['phase'];
    const elapsed = (now - started) / 1000;
    const eta = f > 0 && f < 1 && elapsed > 0 ? { eta_s: Math.round((elapsed * (1 - f)) / f) } : {};
    const full = cleanDetail({ ...detail, ...eta });
    await setProgress(store, job, f * 100, full);
    if (phaseChanged && typeof full['phase'] === 'string') await job.log(`${full['phase']}: ${describe(f, full)}`);
  };
}

function describe(fraction: number, detail: ProgressDetail): string {
  const fields = Object.entries(detail).filter(([k]) => k !== 'phase').map(([k, v]) => `${k}=${v}`);
  return [`${Math.round(fraction * 1000) / 10}%`, ...fields].join(' ');
}
