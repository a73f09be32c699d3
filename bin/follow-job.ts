/**
 * Following one job's event stream to its end, as the client commands' `--wait` does: progress
 * on stderr (a bar on a terminal), the result as JSON on stdout when it completes (exit 0), the
 * reason on stderr when it fails (exit 1).
 */
import type { ApiClient } from './api-client.ts';
import { CliError } from './cli-errors.ts';
import { ProgressBar } from './progress-bar.ts';
import { readEvents } from './sse.ts';

/** What an enqueue answers (202). */
export interface Enqueued {
  id: string;
  queue: string;
  state: string;
}

/** How a finished job's result is printed: JSON unless a command renders it its own way. */
export type ResultPrinter = (result: unknown) => string;
const asJson: ResultPrinter = (result) => `${JSON.stringify(result, null, 2)}\n`;

export async function followJob(client: ApiClient, job: Enqueued, print: ResultPrinter = asJson): Promise<number> {
  const bar = new ProgressBar(`${job.queue} ${job.id}`);
  // the API ends a stream at LAKEHOUSE_SSE_MAX_LIFETIME_MS with a `timeout` event: open another
  for (;;) {
    const outcome = await followOnce(client, job, bar, print);
    if (outcome !== 'reconnect') return outcome;
  }
}

async function followOnce(client: ApiClient, job: Enqueued, bar: ProgressBar, print: ResultPrinter): Promise<number | 'reconnect'> {
  const res = await client.fetch(`/jobs/${job.queue}/${encodeURIComponent(job.id)}/events`, { headers: { accept: 'text/event-stream' } });
  if (!res.body) throw new CliError('the API sent no event stream');
  for await (const { event, data } of readEvents(res.body)) {
    const body = JSON.parse(data) as Record<string, unknown>;
    if (event === 'state') {
      const state = String(body['state']);
      const progress = percentOf(body['progress'], body['progress_detail']);
      if (state !== 'completed' && state !== 'failed') bar.status(state);
      if (progress !== undefined && progress.percent > 0 && state !== 'completed') bar.update(progress.percent, progress.detail);
    } else if (event === 'active') {
      bar.status('active');
    } else if (event === 'progress') {
      const progress = percentOf(body['percent'], body['detail']);
      if (progress) bar.update(progress.percent, progress.detail);
    } else if (event === 'completed') {
      bar.update(100);
      bar.finish('completed');
      process.stdout.write(print(body['result']));
      return 0;
    } else if (event === 'failed') {
      bar.finish('failed');
      process.stderr.write(`${job.queue} job ${job.id} failed: ${String(body['reason'] ?? body['error_class'])}\n`);
      return 1;
    } else if (event === 'timeout') {
      return 'reconnect';
    }
  }
  bar.finish();
  throw new CliError(
    `the event stream ended before ${job.queue} job ${job.id} finished (the API stopped?); ` +
      `see \`lakehouse jobs ${job.queue}\` or GET /jobs/${job.queue}/${job.id}`,
  );
}

/** The API sends the percent (0–100) and its detail (phase, counts, rates, eta_s) side by side. */
function percentOf(percent: unknown, detail: unknown): { percent: number; detail: Record<string, unknown> } | undefined {
  if (typeof percent !== 'number') return undefined;
  return { percent, detail: detail && typeof detail === 'object' ? (detail as Record<string, unknown>) : {} };
}

/** Enqueued: with `wait`, follows the job to its end; without, prints its id for scripts. */
export async function reportEnqueued(client: ApiClient, job: Enqueued, wait: boolean | undefined): Promise<number> {
  if (!wait) {
    process.stdout.write(`${job.id}\n`);
    return 0;
  }
  process.stderr.write(`${job.queue} job ${job.id} queued\n`);
  return followJob(client, job);
}
