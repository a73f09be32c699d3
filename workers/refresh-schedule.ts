/**
 * An index whose refresh policy is `{cron}` gets a BullMQ job scheduler on the refresh queue,
 * named after the index; any other policy removes it.
 */
import type { IndexManifest } from '../shared/vectors/index/index-manifest.ts';
import type { WorkerContext } from './context.ts';

export { refreshSchedulerId } from '../queues/refresh.ts';
import { refreshSchedulerId } from '../queues/refresh.ts';

export async function syncRefreshSchedule(ctx: WorkerContext, index: IndexManifest): Promise<void> {
  const queue = ctx.queue('refresh');
  const policy = index.refresh_policy;
  if (typeof policy === 'object') {
    await queue.upsertJobScheduler(refreshSchedulerId(index.name), { pattern: policy.cron }, { name: 'refresh', data: { index: index.name } });
  } else {
    await queue.removeJobScheduler(refreshSchedulerId(index.name));
  }
}
