/**
 * `lakehouse search INDEX "TEXT"`: semantic search of a vector index (hybrid with --filter),
 * shown as a ranked table whose text column fits the terminal.
 */
import { ApiClient } from '../api-client.ts';
import { CLIENT_OPTIONS, CLIENT_USAGE, parseCommandArgs, positiveInt } from '../args.ts';
import { UsageError } from '../cli-errors.ts';
import { resolveClientConfig } from '../client-config.ts';
import { cellText, formatTable, truncate } from '../text-table.ts';

export const usage = `Usage: lakehouse search INDEX "TEXT" [--k N] [--filter "SQL"] [--ef N] [--json]

Searches a vector index for the chunks closest in meaning to TEXT and prints them best first:
rank, score (cosine similarity), document id and the chunk's text, cut to the terminal width.

Options:
  -k, --k N           hits to return (default: 10)
  --filter SQL        only documents whose source row matches this SQL condition over the
                      dataset's columns, e.g. "state = 'OH' AND years > 5"
  --ef N              HNSW search breadth (default: the index's ef_search)
  --json              print the API's JSON answer instead of a table
${CLIENT_USAGE}
  -h, --help          this text
`;

interface SearchAnswer {
  hits: { doc_id: string; chunk_id: string; score: number; text: string }[];
  took_ms: number;
  generation: number;
  plan: string;
  matched_docs?: number;
}

/** Used when stdout is not a terminal and COLUMNS is unset. */
const DEFAULT_WIDTH = 120;
const MIN_TEXT_WIDTH = 20;

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs('search', {
    args,
    allowPositionals: true,
    options: { k: { type: 'string', short: 'k' }, filter: { type: 'string' }, ef: { type: 'string' }, json: { type: 'boolean' }, ...CLIENT_OPTIONS },
  });
  if (positionals.length !== 2) throw new UsageError('give the INDEX and the search TEXT (quote it)', 'search');
  const [index, query] = positionals as [string, string];
  const k = positiveInt(values.k, '--k', 'search');
  const ef = positiveInt(values.ef, '--ef', 'search');
  const client = new ApiClient(await resolveClientConfig(values, 'search'));
  const answer = await client.postJson<SearchAnswer>(`/indexes/${encodeURIComponent(index)}/search`, {
    query, ...(k ? { k } : {}), ...(ef ? { ef } : {}), ...(values.filter !== undefined ? { filter: values.filter } : {}),
  });
  process.stdout.write(values.json ? `${JSON.stringify(answer, null, 2)}\n` : render(answer, terminalWidth()));
  return 0;
}

function terminalWidth(): number {
  if (process.stdout.isTTY && process.stdout.columns) return process.stdout.columns;
  const columns = Number(process.env['COLUMNS']);
  return Number.isInteger(columns) && columns > 0 ? columns : DEFAULT_WIDTH;
}

export function render(answer: SearchAnswer, width: number): string {
  const rows = answer.hits.map((h, i) => [String(i + 1), h.score.toFixed(4), cellText(h.doc_id), cellText(h.text)]);
  // what the other columns and the two-space gaps take; the text gets the rest of the line
  const fixed = [0, 1, 2].reduce((sum, c) => sum + Math.max(['rank', 'score', 'doc_id'][c]!.length, ...rows.map((r) => [...r[c]!].length)) + 2, 0);
  const textWidth = Math.max(MIN_TEXT_WIDTH, width - fixed);
  for (const r of rows) r[3] = truncate(r[3]!, textWidth);
  const table = answer.hits.length === 0 ? '(no hits)\n' : formatTable(['rank', 'score', 'doc_id', 'text'], rows, ['right', 'right', 'left', 'left']);
  const matched = answer.matched_docs === undefined ? '' : `; filter matched ${answer.matched_docs} docs`;
  const hits = `${answer.hits.length} ${answer.hits.length === 1 ? 'hit' : 'hits'}`;
  return `${table}(${hits} in ${answer.took_ms} ms; plan ${answer.plan}${matched}; generation ${answer.generation})\n`;
}
