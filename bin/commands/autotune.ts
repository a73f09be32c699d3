/**
 * `lakehouse autotune INDEX`: enqueues an autotune run (POST /jobs/autotune) — HNSW configs
 * tried on an eval set, every trial journalled, the winner promoted when it clears min_recall —
 * and, with --wait, follows it and prints its trials as a table.
 */
import { ApiClient } from '../api-client.ts';
import { CLIENT_OPTIONS, CLIENT_USAGE, parseCommandArgs, positiveInt } from '../args.ts';
import { UsageError } from '../cli-errors.ts';
import { resolveClientConfig } from '../client-config.ts';
import { followJob, type Enqueued } from '../follow-job.ts';
import { formatTable } from '../text-table.ts';

export const usage = `Usage: lakehouse autotune INDEX [--k N] [--min-recall R] [--grid JSON] [--evalset ID]
                         [--queries N] [--wait]

Tries HNSW configs (M, ef_construction, ef_search) on an eval set of the index, journals every
trial, and promotes the winner — the highest recall, then the lowest p50 latency — when its
recall reaches --min-recall. One run per index at a time: a second request while one runs
gets that run's job. Prints the job's id; with --wait, shows its progress on stderr and prints
a table of the trials (config, recall, p50 ms, p95 ms, build s), the winner marked, and
whether it was promoted and why (exit 1 if the job fails).

Options:
  -k, --k N           hits per query that recall counts (default: 10)
  --min-recall R      promote only a winner with recall@k ≥ R, 0–1 (default: 0.9)
  --grid JSON         configs to try, e.g. '[{"m":16,"ef_construction":80,"ef_search":60}]'
                      (default: the server's grid of seven)
  --evalset ID        measure on this eval set (default: one generated from the index's chunks)
  --queries N         queries of a generated eval set (default: 100)
  -w, --wait          follow the job until it completes or fails
${CLIENT_USAGE}
  -h, --help          this text
`;

interface TrialSummary {
  trial_id: string;
  config: { m: number; ef_construction: number; ef_search: number };
  recall: number;
  p50_ms: number;
  p95_ms: number;
  build_seconds: number;
}

interface AutotuneResult {
  index: string;
  evalset: string;
  trials: TrialSummary[];
  winner: TrialSummary | null;
  promoted: boolean;
  reason: string;
  generation: number | null;
}

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs('autotune', {
    args,
    allowPositionals: true,
    options: {
      k: { type: 'string', short: 'k' },
      'min-recall': { type: 'string' },
      grid: { type: 'string' },
      evalset: { type: 'string' },
      queries: { type: 'string' },
      wait: { type: 'boolean', short: 'w' },
      ...CLIENT_OPTIONS,
    },
  });
  if (positionals.length !== 1) throw new UsageError('give exactly one INDEX', 'autotune');
  const k = positiveInt(values.k, '--k', 'autotune');
  const queries = positiveInt(values.queries, '--queries', 'autotune');
  const body = {
    index: positionals[0],
    ...(k !== undefined ? { k } : {}),
    ...(values['min-recall'] !== undefined ? { min_recall: fraction(values['min-recall']) } : {}),
    ...(values.grid !== undefined ? { grid: grid(values.grid) } : {}),
    ...(values.evalset !== undefined ? { evalset: values.evalset } : {}),
    ...(queries !== undefined ? { queries } : {}),
  };
  const client = new ApiClient(await resolveClientConfig(values, 'autotune'));
  const job = await client.postJson<Enqueued>('/jobs/autotune', body);
  if (!values.wait) {
    process.stdout.write(`${job.id}\n`);
    return 0;
  }
  process.stderr.write(`${job.queue} job ${job.id} queued\n`);
  return followJob(client, job, (result) => render(result as AutotuneResult));
}

function fraction(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0 || n > 1) throw new UsageError(`--min-recall expects a number in 0–1, got ${JSON.stringify(value)}`, 'autotune');
  return n;
}

/** The shape is the server's to check (it names the field and bound that is wrong); here only that it is a JSON array. */
function grid(value: string): unknown[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch (err) {
    throw new UsageError(`--grid expects a JSON array of {m, ef_construction, ef_search}: ${(err as Error).message}`, 'autotune');
  }
  if (!Array.isArray(parsed)) throw new UsageError('--grid expects a JSON array of {m, ef_construction, ef_search}', 'autotune');
  return parsed;
}

/** follow-job.ts's loop, ending in the trials table instead of the result's JSON. */
export function render(result: AutotuneResult): string {
  const marked = result.winner !== null;
  const rows = result.trials.map((t) => [
    `m${t.config.m}-efc${t.config.ef_construction}-efs${t.config.ef_search}`,
    t.recall.toFixed(4),
    t.p50_ms.toFixed(3),
    t.p95_ms.toFixed(3),
    t.build_seconds.toFixed(2),
    ...(marked ? [t.trial_id === result.winner!.trial_id ? 'winner' : ''] : []),
  ]);
  const headers = ['config', 'recall', 'p50 ms', 'p95 ms', 'build s', ...(marked ? ['best'] : [])];
  const table = rows.length === 0 ? '(no trial finished)\n' : formatTable(headers, rows, ['left', 'right', 'right', 'right', 'right', 'left']);
  const serving = result.promoted && result.generation !== null ? ` (index ${result.index} now serves generation ${result.generation})` : '';
  return `${table}eval set ${result.evalset}\npromoted: ${result.promoted ? 'yes' : 'no'}${serving}: ${result.reason}\n`;
}
