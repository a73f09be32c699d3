/**
 * `lakehouse index rm NAME` / `lakehouse index ls`: manage vector indexes through the API
 * (DELETE /indexes/:name, GET /indexes).
 */
import { ApiClient } from '../api-client.ts';
import { CLIENT_OPTIONS, CLIENT_USAGE, parseCommandArgs } from '../args.ts';
import { UsageError } from '../cli-errors.ts';
import { resolveClientConfig } from '../client-config.ts';

export const usage = `Usage: lakehouse index rm NAME
       lakehouse index ls

  rm NAME   delete a vector index: its manifest, generations and vectors move to the bucket's
            trash (purged after LAKEHOUSE_TRASH_DAYS); refused (exit 1) while a job for the
            index waits or runs. The name can then be used by a new embed. Needs a writer key.
  ls        list indexes: name, source dataset(columns), generation, stale

Options:
${CLIENT_USAGE}
  -h, --help          this text
`;

interface IndexSummary {
  name: string;
  generation: number | null;
  stale: boolean;
  source: { dataset: string; id_column: string; text_column: string };
}

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs('index', { args, allowPositionals: true, options: { ...CLIENT_OPTIONS } });
  const [action, ...rest] = positionals;
  if (action === 'rm') {
    if (rest.length !== 1) throw new UsageError('give exactly one index NAME to remove', 'index');
    const client = new ApiClient(await resolveClientConfig(values, 'index'));
    const res = await client.fetch(`/indexes/${encodeURIComponent(rest[0]!)}`, { method: 'DELETE', headers: { accept: 'application/json' } });
    const body = (await res.json()) as { index: string; trashed_to: string };
    process.stdout.write(`index ${body.index} deleted (moved to ${body.trashed_to})\n`);
    return 0;
  }
  if (action === 'ls') {
    if (rest.length !== 0) throw new UsageError('ls takes no arguments', 'index');
    const client = new ApiClient(await resolveClientConfig(values, 'index'));
    const { indexes } = await client.getJson<{ indexes: IndexSummary[] }>('/indexes');
    for (const i of indexes) {
      process.stdout.write(`${i.name}\t${i.source.dataset}(${i.source.id_column}, ${i.source.text_column})\tgeneration ${i.generation ?? '-'}${i.stale ? '\tstale' : ''}\n`);
    }
    return 0;
  }
  throw new UsageError(action === undefined ? 'give an action: rm NAME or ls' : `unknown action ${JSON.stringify(action)}; actions: rm, ls`, 'index');
}
