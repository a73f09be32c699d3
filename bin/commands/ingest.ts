/**
 * `lakehouse ingest FILE --dataset NAME`: streams a CSV to the upload route (never read into
 * memory) and, with --wait, follows the job's event stream to its end.
 */
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { ApiClient } from '../api-client.ts';
import { CLIENT_OPTIONS, CLIENT_USAGE, parseCommandArgs } from '../args.ts';
import { CliError, UsageError } from '../cli-errors.ts';
import { resolveClientConfig } from '../client-config.ts';
import { followJob, type Enqueued } from '../follow-job.ts';

export const usage = `Usage: lakehouse ingest FILE --dataset NAME [--mode replace|append] [--wait]

Uploads a file (CSV, TSV, JSON, NDJSON, Parquet, text, Markdown or PDF; the format is detected
from the content) into a dataset of the catalog. Prints the ingest job's id; with --wait,
shows its progress on stderr and prints its result as JSON (exit 1 if the job fails).

Options:
  -d, --dataset NAME  the dataset (lower-case letter, then letters, digits, _)
  --mode MODE         replace the dataset's rows, or append to them (default: append)
  --format FORMAT     csv, tsv, json, ndjson, parquet, text, markdown or pdf (default: detected)
  --bucket NAME       storage bucket of a new dataset (default: primary)
  --on-error MODE     CSV/TSV bad records: fail the job naming them (default), or skip them
                      into the dataset NAME_rejects (the result says how many)
  -w, --wait          follow the job until it completes or fails
${CLIENT_USAGE}
  -h, --help          this text
`;

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs('ingest', {
    args,
    allowPositionals: true,
    options: { dataset: { type: 'string', short: 'd' }, mode: { type: 'string' }, format: { type: 'string' }, bucket: { type: 'string' }, 'on-error': { type: 'string' }, wait: { type: 'boolean', short: 'w' }, ...CLIENT_OPTIONS },
  });
  const [file, ...extra] = positionals;
  if (file === undefined || extra.length > 0) throw new UsageError('give exactly one FILE', 'ingest');
  if (values.dataset === undefined) throw new UsageError('--dataset is required', 'ingest');
  if (values.mode !== undefined && values.mode !== 'replace' && values.mode !== 'append') {
    throw new UsageError(`--mode expects replace or append, got ${JSON.stringify(values.mode)}`, 'ingest');
  }
  const onError = values['on-error'];
  if (onError !== undefined && onError !== 'fail' && onError !== 'skip') {
    throw new UsageError(`--on-error expects fail or skip, got ${JSON.stringify(onError)}`, 'ingest');
  }
  const size = await fileSize(file);
  const client = new ApiClient(await resolveClientConfig(values, 'ingest'));

  // the file's name helps the server detect its format (format= overrides) and goes into lineage
  const query = new URLSearchParams({
    filename: path.basename(file),
    ...(values.mode ? { mode: values.mode } : {}),
    ...(values.format ? { format: values.format } : {}),
    ...(values.bucket ? { bucket: values.bucket } : {}),
    ...(onError ? { on_error: onError } : {}),
  });
  const res = await client.fetch(`/datasets/${encodeURIComponent(values.dataset)}/upload?${query}`, {
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(size), accept: 'application/json' },
    body: Readable.toWeb(createReadStream(file)) as ReadableStream<Uint8Array>,
    duplex: 'half',
  } as RequestInit);
  const job = (await res.json()) as Enqueued;
  if (!values.wait) {
    process.stdout.write(`${job.id}\n`);
    return 0;
  }
  process.stderr.write(`${job.queue} job ${job.id} queued\n`);
  return followJob(client, job);
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
