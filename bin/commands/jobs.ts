/**
 * `lakehouse jobs [QUEUE]`: counts per queue, or one queue's jobs in one state.
 */
import { QUEUE_NAMES } from '../../queues/registry.ts';
import { ApiClient } from '../api-client.ts';
import { CLIENT_OPTIONS, CLIENT_USAGE, parseCommandArgs, positiveInt } from '../args.ts';
import { UsageError } from '../cli-errors.ts';
import { resolveClientConfig } from '../client-config.ts';
import { formatTable, truncate } from '../text-table.ts';

export const usage = `Usage: lakehouse jobs [QUEUE] [--state STATE] [--limit N] [--start N]

Without QUEUE: how many jobs each queue holds, by state. With QUEUE: its most recent jobs of
every state, newest first; with --state, its jobs in that state only.

Options:
  --state STATE       waiting|active|completed|failed|delayed|prioritized|waiting-children
                      (default: every state)
  --limit N           jobs to list (default: 20)
  --start N           skip the first N of the state (for the next page; needs --state)
${CLIENT_USAGE}
  -h, --help          this text
`;

const DEFAULT_LIMIT = 20;
const REASON_WIDTH = 60;

interface JobView {
  id: string;
  state: string;
  progress: unknown;
  attempts: number;
  max_attempts: number;
  failed_reason?: string;
  created_at: string;
  duration_ms?: number;
}

interface JobList {
  queue: string;
  state: string;
  counts: Record<string, number>;
  jobs: JobView[];
  next_start: number | null;
}

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs('jobs', {
    args,
    allowPositionals: true,
    options: { state: { type: 'string' }, limit: { type: 'string' }, start: { type: 'string' }, ...CLIENT_OPTIONS },
  });
  if (positionals.length > 1) throw new UsageError('give at most one QUEUE', 'jobs');
  const queue = positionals[0];
  const limit = positiveInt(values.limit, '--limit', 'jobs') ?? DEFAULT_LIMIT;
  const start = values.start === undefined ? 0 : Number(values.start);
  if (!Number.isSafeInteger(start) || start < 0) throw new UsageError(`--start expects a whole number, got ${JSON.stringify(values.start)}`, 'jobs');
  if (!queue && (values.state || values.limit || values.start)) throw new UsageError('--state, --limit and --start need a QUEUE', 'jobs');
  if (values.start !== undefined && !values.state) throw new UsageError('--start pages through one state: give --state too', 'jobs');
  const client = new ApiClient(await resolveClientConfig(values, 'jobs'));
  if (!queue) {
    process.stdout.write(await countsTable(client));
    return 0;
  }
  if (!values.state) {
    process.stdout.write(await recentTable(client, queue, limit));
    return 0;
  }
  const params = new URLSearchParams({ limit: String(limit), start: String(start), state: values.state });
  const list = await client.getJson<JobList>(`/jobs/${encodeURIComponent(queue)}?${params}`);
  process.stdout.write(jobsTable(list, start));
  return 0;
}

const STATES = ['waiting', 'active', 'completed', 'failed', 'delayed', 'prioritized', 'waiting-children'] as const;

/** The newest `limit` jobs of every state: each state's newest `limit`, merged by creation time. */
async function recentTable(client: ApiClient, queue: string, limit: number): Promise<string> {
  const lists = await Promise.all(STATES.map((state) => client.getJson<JobList>(`/jobs/${encodeURIComponent(queue)}?${new URLSearchParams({ state, limit: String(limit) })}`)));
  const jobs = lists.flatMap((l) => l.jobs).sort((a, b) => b.created_at.localeCompare(a.created_at)).slice(0, limit);
  const counts = lists[0]?.counts ?? {};
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  const table = jobRows(jobs);
  const shown = jobs.length === 0 ? `(no jobs in ${queue})` : `(newest ${jobs.length} of ${total}: ${STATES.filter((s) => counts[s]).map((s) => `${counts[s]} ${s}`).join(', ')}; --state STATE lists one state)`;
  return `${table}${shown}\n`;
}

async function countsTable(client: ApiClient): Promise<string> {
  const lists = await Promise.all(QUEUE_NAMES.map((q) => client.getJson<JobList>(`/jobs/${q}?limit=1`)));
  const states = Object.keys(lists[0]?.counts ?? {});
  return formatTable(
    ['queue', ...states],
    lists.map((l) => [l.queue, ...states.map((s) => String(l.counts[s] ?? 0))]),
    ['left', ...states.map(() => 'right' as const)],
  );
}

function jobsTable(list: JobList, start: number): string {
  const total = list.counts[list.state] ?? list.jobs.length;
  const table = jobRows(list.jobs);
  const shown = list.jobs.length === 0 ? `(no ${list.state} jobs in ${list.queue})` : `(${start + 1}–${start + list.jobs.length} of ${total} ${list.state})`;
  const more = list.next_start === null ? '' : `; next page: --start ${list.next_start}`;
  return `${table}${shown}${more}\n`;
}

function jobRows(jobs: JobView[]): string {
  const rows = jobs.map((j) => [
    j.id,
    j.state,
    percentText(j.progress),
    `${j.attempts}/${j.max_attempts}`,
    j.created_at.replace(/\.\d+Z$/, 'Z'),
    j.duration_ms === undefined ? '' : durationText(j.duration_ms),
    truncate((j.failed_reason ?? '').replace(/\s+/g, ' '), REASON_WIDTH),
  ]);
  return formatTable(['id', 'state', 'progress', 'attempts', 'created', 'duration', 'failed reason'], rows, [
    'left', 'left', 'right', 'right', 'left', 'right', 'left',
  ]);
}

function percentText(progress: unknown): string {
  const percent = typeof progress === 'number' ? progress : (progress as { percent?: unknown } | null)?.percent;
  return typeof percent === 'number' ? `${Math.round(percent)}%` : '';
}

function durationText(ms: number): string {
  if (ms < 1_000) return `${ms} ms`;
  if (ms < 60_000) return `${(ms / 1_000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)} m ${Math.round((ms % 60_000) / 1_000)} s`;
}
