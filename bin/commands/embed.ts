/**
 * `lakehouse embed --index NAME --dataset NAME --id-column C --text-column C`: enqueues an embed
 * job (POST /jobs/embed) and, with --wait, follows it to its end.
 */
import { ApiClient } from '../api-client.ts';
import { CLIENT_OPTIONS, CLIENT_USAGE, parseCommandArgs, positiveInt } from '../args.ts';
import { UsageError } from '../cli-errors.ts';
import { resolveClientConfig } from '../client-config.ts';
import { reportEnqueued, type Enqueued } from '../follow-job.ts';

export const usage = `Usage: lakehouse embed --index NAME --dataset NAME --id-column C --text-column C
                      [--provider NAME] [--model M] [--refresh-policy P] [--wait]

Embeds a dataset's text column into a vector index: the index is created by its first embed,
and a later embed rebuilds it (with the same provider and model). Prints the embed job's id;
with --wait, shows its progress on stderr and prints its result as JSON (exit 1 if it fails).

Options:
  -i, --index NAME         the index (lower-case letter, then letters, digits, _)
  -d, --dataset NAME       the source dataset
  --id-column C            the column that identifies a document (unique)
  --text-column C          the column whose text is chunked and embedded
  --provider NAME          a provider configured on the server: local (offline, the default), ollama,
                           openai, or one named by LAKEHOUSE_EMBED_PROVIDER_<NAME>
  --model M                the provider's model (default: the provider's default model)
  --chunk-size N           characters per chunk (default: 1000)
  --overlap N              characters neighbouring chunks share (default: 150)
  --refresh-policy P       manual (default) or on_append: refresh after every ingest into the dataset
  --refresh-cron EXPR      refresh on a cron schedule instead, e.g. "0 3 * * *"
  -w, --wait               follow the job until it completes or fails
${CLIENT_USAGE}
  -h, --help               this text
`;

const POLICIES = ['manual', 'on_append'];

export async function run(args: string[]): Promise<number> {
  const { values } = parseCommandArgs('embed', {
    args,
    options: {
      index: { type: 'string', short: 'i' },
      dataset: { type: 'string', short: 'd' },
      'id-column': { type: 'string' },
      'text-column': { type: 'string' },
      provider: { type: 'string' },
      model: { type: 'string' },
      'provider-url': { type: 'string' },
      'chunk-size': { type: 'string' },
      overlap: { type: 'string' },
      'refresh-policy': { type: 'string' },
      'refresh-cron': { type: 'string' },
      wait: { type: 'boolean', short: 'w' },
      ...CLIENT_OPTIONS,
    },
  });
  if (values['provider-url'] !== undefined) {
    throw new UsageError('--provider-url is gone: embedding servers are server configuration (LAKEHOUSE_EMBED_PROVIDER_<NAME>=<kind>:<url>); pass --provider NAME', 'embed');
  }
  for (const flag of ['index', 'dataset', 'id-column', 'text-column'] as const) {
    if (values[flag] === undefined) throw new UsageError(`--${flag} is required`, 'embed');
  }
  const body = {
    index: values.index,
    dataset: values.dataset,
    id_column: values['id-column'],
    text_column: values['text-column'],
    ...(values.provider !== undefined ? { provider: values.provider } : {}),
    ...(values.model !== undefined ? { model: values.model } : {}),
    ...optionalInt('chunk_size', positiveInt(values['chunk-size'], '--chunk-size', 'embed')),
    ...optionalInt('overlap', wholeNumber(values.overlap, '--overlap')),
    ...refreshPolicy(values['refresh-policy'], values['refresh-cron']),
  };
  const client = new ApiClient(await resolveClientConfig(values, 'embed'));
  const job = await client.postJson<Enqueued>('/jobs/embed', body);
  return reportEnqueued(client, job, values.wait);
}

function oneOf(value: string, allowed: string[], flag: string): string {
  if (!allowed.includes(value)) throw new UsageError(`${flag} expects ${allowed.join(', ')}; got ${JSON.stringify(value)}`, 'embed');
  return value;
}

function wholeNumber(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) throw new UsageError(`${flag} expects a whole number, got ${JSON.stringify(value)}`, 'embed');
  return Number(value);
}

function optionalInt(key: string, value: number | undefined): Record<string, number> {
  return value === undefined ? {} : { [key]: value };
}

function refreshPolicy(policy: string | undefined, cron: string | undefined): { refresh_policy?: string | { cron: string } } {
  if (policy !== undefined && cron !== undefined) throw new UsageError('give --refresh-policy or --refresh-cron, not both', 'embed');
  if (cron !== undefined) return { refresh_policy: { cron } };
  return policy === undefined ? {} : { refresh_policy: oneOf(policy, POLICIES, '--refresh-policy') };
}
