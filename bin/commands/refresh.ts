/**
 * `lakehouse refresh INDEX`: enqueues a refresh of a vector index (POST /jobs/refresh) — only
 * new and changed text is embedded — and, with --wait, follows it to its end.
 */
import { ApiClient } from '../api-client.ts';
import { CLIENT_OPTIONS, CLIENT_USAGE, parseCommandArgs } from '../args.ts';
import { UsageError } from '../cli-errors.ts';
import { resolveClientConfig } from '../client-config.ts';
import { reportEnqueued, type Enqueued } from '../follow-job.ts';

export const usage = `Usage: lakehouse refresh INDEX [--wait]

Brings a vector index up to date with its dataset: embeds only documents that are new or whose
text changed, and drops deleted ones. Prints the refresh job's id; with --wait, shows its
progress on stderr and prints its result (added, changed, deleted, embedded_chunks,
generation) as JSON (exit 1 if it fails).

Options:
  -w, --wait          follow the job until it completes or fails
${CLIENT_USAGE}
  -h, --help          this text
`;

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs('refresh', {
    args,
    allowPositionals: true,
    options: { wait: { type: 'boolean', short: 'w' }, ...CLIENT_OPTIONS },
  });
  if (positionals.length !== 1) throw new UsageError('give exactly one INDEX', 'refresh');
  const client = new ApiClient(await resolveClientConfig(values, 'refresh'));
  const job = await client.postJson<Enqueued>('/jobs/refresh', { index: positionals[0] });
  return reportEnqueued(client, job, values.wait);
}
