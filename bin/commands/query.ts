/**
 * `lakehouse query "SQL"`: one read-only query over the catalog, shown as a table.
 */
import { ApiClient } from '../api-client.ts';
import { CLIENT_OPTIONS, CLIENT_USAGE, parseCommandArgs, positiveInt } from '../args.ts';
import { UsageError } from '../cli-errors.ts';
import { resolveClientConfig } from '../client-config.ts';
import { cellText, formatTable, type Align } from '../text-table.ts';

export const usage = `Usage: lakehouse query "SQL" [--max-rows N] [--json]

Runs one read-only SQL statement over the catalog (datasets are views by name) and prints the
result as a table.

Options:
  --max-rows N        return at most N rows (the server caps it at LAKEHOUSE_QUERY_MAX_ROWS)
  --json              print the API's JSON answer instead of a table
${CLIENT_USAGE}
  -h, --help          this text
`;

interface QueryResult {
  columns: { name: string; type: string }[];
  rows: Record<string, unknown>[];
  row_count: number;
  truncated: boolean;
}

const NUMERIC_TYPE = /INT|DECIMAL|NUMERIC|DOUBLE|FLOAT|REAL/i;

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs('query', {
    args,
    allowPositionals: true,
    options: { 'max-rows': { type: 'string' }, json: { type: 'boolean' }, ...CLIENT_OPTIONS },
  });
  if (positionals.length !== 1) throw new UsageError('give the SQL as one argument (quote it)', 'query');
  const maxRows = positiveInt(values['max-rows'], '--max-rows', 'query');
  const client = new ApiClient(await resolveClientConfig(values, 'query'));
  const result = await client.postJson<QueryResult>('/query', { sql: positionals[0], ...(maxRows ? { max_rows: maxRows } : {}) });
  process.stdout.write(values.json ? `${JSON.stringify(result, null, 2)}\n` : render(result));
  return 0;
}

function render(result: QueryResult): string {
  const headers = result.columns.map((c) => c.name);
  const align: Align[] = result.columns.map((c) => (NUMERIC_TYPE.test(c.type) ? 'right' : 'left'));
  const rows = result.rows.map((r) => headers.map((h) => cellText(r[h])));
  const count = `(${result.row_count} ${result.row_count === 1 ? 'row' : 'rows'})`;
  const note = result.truncated ? '\n(truncated: more rows matched; raise --max-rows or narrow the query)' : '';
  return `${formatTable(headers, rows, align)}${count}${note}\n`;
}
