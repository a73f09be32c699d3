/**
 * `lakehouse <command>`: the one entry point for servers (up, api, worker) and clients (ingest,
 * query, jobs, embed, search, refresh, autotune, index). Commands load on demand, so a client command
 * doesn't pay for the server's modules.
 *
 * Exit codes: 0 done; 1 the work failed (an API error, a failed job, no Redis); 2 the command
 * line or the environment is wrong (nothing was attempted).
 */
import { ConfigError } from '../shared/config.ts';
import { ApiError } from './api-client.ts';
import { CliError, UsageError } from './cli-errors.ts';
import type { CommandModule } from './command.ts';

const COMMANDS: Record<string, { summary: string; load: () => Promise<CommandModule> }> = {
  up: { summary: 'run the API and all workers in one process (a laptop)', load: () => import('./commands/up.ts') },
  api: { summary: 'run the HTTP API', load: () => import('./commands/api.ts') },
  worker: { summary: 'run workers for some queues', load: () => import('./commands/worker.ts') },
  ingest: { summary: 'upload a CSV file into a dataset', load: () => import('./commands/ingest.ts') },
  query: { summary: 'run a read-only SQL query over the catalog', load: () => import('./commands/query.ts') },
  jobs: { summary: 'job counts per queue, or the jobs of one queue', load: () => import('./commands/jobs.ts') },
  embed: { summary: 'embed a dataset text column into a vector index', load: () => import('./commands/embed.ts') },
  search: { summary: 'search a vector index by meaning (hybrid with --filter)', load: () => import('./commands/search.ts') },
  refresh: { summary: 'bring a vector index up to date with its dataset', load: () => import('./commands/refresh.ts') },
  autotune: { summary: 'try HNSW configs on a vector index and promote the best', load: () => import('./commands/autotune.ts') },
  index: { summary: 'manage vector indexes: rm NAME (to trash), ls', load: () => import('./commands/index.ts') },
};

const OVERVIEW = `Usage: lakehouse <command> [options]

Commands:
${Object.entries(COMMANDS)
  .map(([name, c]) => `  ${name.padEnd(10)}${c.summary}`)
  .join('\n')}

Run \`lakehouse <command> --help\` for a command's options. Configuration comes from the
environment (REDIS_URL, LAKEHOUSE_DATA_DIR, PORT, ... — see README); the client commands also
read LAKEHOUSE_API_URL and LAKEHOUSE_API_KEY.
`;

export async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  try {
    if (name === undefined) throw new UsageError('no command given');
    if (name === '--help' || name === '-h') return print(OVERVIEW);
    if (name === 'help') return args[0] === undefined ? print(OVERVIEW) : print((await command(args[0])).usage);
    const cmd = await command(name);
    return wantsHelp(args) ? print(cmd.usage) : await cmd.run(args);
  } catch (err) {
    return fail(err);
  }
}

async function command(name: string): Promise<CommandModule> {
  const entry = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!entry) throw new UsageError(`unknown command ${JSON.stringify(name)}; commands: ${Object.keys(COMMANDS).join(', ')}`);
  return entry.load();
}

/** `--help` anywhere before a `--` (after it, it is an argument such as SQL text). */
function wantsHelp(args: string[]): boolean {
  const end = args.indexOf('--');
  return (end < 0 ? args : args.slice(0, end)).some((a) => a === '--help' || a === '-h');
}

function print(text: string): number {
  process.stdout.write(text);
  return 0;
}

function fail(err: unknown): number {
  if (err instanceof UsageError) {
    const help = err.command ? `lakehouse ${err.command} --help` : 'lakehouse --help';
    process.stderr.write(`lakehouse: ${err.message}\nRun \`${help}\` for usage.\n`);
    return 2;
  }
  if (err instanceof ConfigError) {
    process.stderr.write(`lakehouse: ${err.message}\n`);
    return 2;
  }
  if (err instanceof ApiError || err instanceof CliError) {
    process.stderr.write(`${err instanceof ApiError ? '' : 'lakehouse: '}${err.message}\n`);
    return 1;
  }
  const e = err as Error;
  process.stderr.write(`lakehouse: ${e?.message ?? String(err)}${e?.cause instanceof Error ? ` (${e.cause.message})` : ''}\n`);
  return 1;
}
