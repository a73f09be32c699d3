/**
 * `lakehouse ingest FILE --dataset NAME`: streams a CSV to the upload route (never read into
 * memory) and, with --wait, follows the job's event stream to its end.
 */
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import { Readable } from 'node:stream';
import { ApiClient } from '../api-client.ts';
import { CLIENT_OPTIONS, CLIENT_USAGE, parseCommandArgs } from '../args.ts';
import { CliError, UsageError } from '../cli-errors.ts';
import { resolveClientConfig } from '../client-config.ts';
import { ProgressBar } from '../progress-bar.ts';
import { readEvents } from '../sse.ts';

export const usage = `Usage: lakehouse ingest FILE --dataset NAME [--mode replace|append] [--wait]

Uploads a CSV file into a dataset of the catalog. Prints the ingest job's id; with --wait,
shows its progress on stderr and prints its result as JSON (exit 1 if the job fails).

Options:
  -d, --dataset NAME  the dataset (lower-case letter, then letters, digits, _)
  --mode MODE         replace the dataset's rows, or append to them (default: append)
  -w, --wait          follow the job until it completes or fails
${CLIENT_USAGE}
  -h, --help          this text
`;

interface Enqueued {
  id: string;
  queue: string;
  state: string;
}

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs('ingest', {
    args,
    allowPositionals: true,
    options: { dataset: { type: 'string', short: 'd' }, mode: { type: 'string' }, wait: { type: 'boolean', short: 'w' }, ...CLIENT_OPTIONS },
  });
  const [file, ...extra] = positionals;
  if (file === undefined || extra.length > 0) throw new UsageError('give exactly one FILE', 'ingest');
  if (values.dataset === undefined) throw new UsageError('--dataset is required', 'ingest');
  if (values.mode !== undefined && values.mode !== 'replace' && values.mode !== 'append') {
    throw new UsageError(`--mode expects replace or append, got ${JSON.stringify(values.mode)}`, 'ingest');
  }
  const size = await fileSize(file);
  const client = new ApiClient(await resolveClientConfig(values, 'ingest'));

  const query = new URLSearchParams(values.mode ? { mode: values.mode } : {});
  const res = await client.fetch(`/datasets/${encodeURIComponent(values.dataset)}/upload?${query}`, {
    method: 'POST',
    headers: { 'content-type': 'text/csv', 'content-length': String(size), accept: 'application/json' },
    body: Readable.toWeb(createReadStream(file)) as ReadableStream<Uint8Array>,
    duplex: 'half',
  } as RequestInit);
  const job = (await res.json()) as Enqueued;
  if (!values.wait) {
    process.stdout.write(`${job.id}\n`);
    return 0;
  }
  process.stderr.write(`${job.queue} job ${job.id} queued\n`);
  return follow(client, job);
}

async function fileSize(file: string): Promise<number> {
  try {
    const stat = await fs.stat(file);
    if (!stat.isFile()) throw new CliError(`${file} is not a file`);
    return stat.size;
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError(`cannot read ${file}: ${(err as Error).message}`);
  }
}

/** Draws the job's progress until its stream says completed (0) or failed (1). */
async function follow(client: ApiClient, job: Enqueued): Promise<number> {
  const res = await client.fetch(`/jobs/${job.queue}/${encodeURIComponent(job.id)}/events`, { headers: { accept: 'text/event-stream' } });
  if (!res.body) throw new CliError('the API sent no event stream');
  const bar = new ProgressBar(`${job.queue} ${job.id}`);
  for await (const { event, data } of readEvents(res.body)) {
    const body = JSON.parse(data) as Record<string, unknown>;
    if (event === 'state') {
      const progress = percentOf(body['progress']);
      if (progress !== undefined && progress.percent > 0) bar.update(progress.percent, progress.detail);
      else bar.status(String(body['state']));
    } else if (event === 'active') {
      bar.status('active');
    } else if (event === 'progress') {
      const progress = percentOf(body);
      if (progress) bar.update(progress.percent, progress.detail);
    } else if (event === 'completed') {
      bar.update(100);
      bar.finish();
      process.stdout.write(`${JSON.stringify(body['result'], null, 2)}\n`);
      return 0;
    } else if (event === 'failed') {
      bar.finish();
      process.stderr.write(`${job.queue} job ${job.id} failed: ${String(body['reason'])}\n`);
      return 1;
    }
  }
  bar.finish();
  throw new CliError(
    `the event stream ended before ${job.queue} job ${job.id} finished (the API stopped?); ` +
      `see \`lakehouse jobs ${job.queue}\` or GET /jobs/${job.queue}/${job.id}`,
  );
}

/** Progress is `{percent, ...detail}` from our processors; a bare number from anything else. */
function percentOf(progress: unknown): { percent: number; detail: Record<string, unknown> } | undefined {
  if (typeof progress === 'number') return { percent: progress, detail: {} };
  if (progress && typeof progress === 'object' && typeof (progress as { percent?: unknown }).percent === 'number') {
    const { percent, ...detail } = progress as { percent: number };
    return { percent, detail };
  }
  return undefined;
}
