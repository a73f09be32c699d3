/**
 * Runs the orphan sweeper (shared/maintenance/orphan-sweeper.ts) in every worker process on a
 * timer; a Redis lock and marker make one of them sweep per LAKEHOUSE_SWEEP_INTERVAL_MS.
 */
import { jobReferences } from '../queues/job-references.ts';
import type { Config } from '../shared/config.ts';
import type { Logger } from '../shared/logger.ts';
import { sweepOnce, type SweepReport } from '../shared/maintenance/orphan-sweeper.ts';
import type { Redis } from 'ioredis';
import { Buckets } from '../shared/storage/buckets.ts';

export interface OrphanSweep {
  /** Sweeps now (unless another process holds the sweep), as the timer does. */
  run(): Promise<SweepReport | undefined>;
  stop(): Promise<void>;
}

export function sweepKeys(config: Config): { lockKey: string; markerKey: string } {
  return { lockKey: `${config.queuePrefix}:lock:orphan-sweep`, markerKey: `${config.queuePrefix}:orphan-sweep:last` };
}

export function startOrphanSweep(config: Config, connection: Redis, log: Logger): OrphanSweep {
  const buckets = new Buckets(config.dataDir, config.buckets);
  let running: Promise<unknown> = Promise.resolve();
  const run = async () => {
    const report = await sweepOnce(
      { redis: connection, ...sweepKeys(config), intervalMs: config.sweep.intervalMs },
      { buckets, graceMs: config.sweep.graceMs, trashDays: config.trashDays, references: () => jobReferences(connection, config.queuePrefix) },
    );
    if (report && report.uploads.length + report.secrets.length + report.trash.length > 0) log.info(report, 'orphan sweep removed files');
    return report;
  };
  const tick = () => {
    running = run().catch((err: Error) => log.warn({ err }, 'orphan sweep failed'));
  };
  const timer = setInterval(tick, config.sweep.intervalMs);
  timer.unref();
  return {
    run,
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
