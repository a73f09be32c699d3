/**
 * The query behind a hybrid-search filter: `SELECT DISTINCT <id> FROM <dataset> WHERE (<filter>)`.
 * The filter is text spliced into that query, so its parse tree is checked to be exactly that
 * shape: a filter that closes the parenthesis and adds a UNION, a GROUP BY, a LIMIT or a CTE
 * would otherwise change what the query selects (SECURITY.md, "SQL"). The result then goes
 * through the same guard, engine, limits and audit as POST /query.
 */
import { BadRequestError } from '../errors.ts';
import { quoteIdent } from './sql-text.ts';

export function filterQuerySql(dataset: string, idColumn: string, filter: string): string {
  return `SELECT DISTINCT CAST(${quoteIdent(idColumn)} AS VARCHAR) AS doc_id FROM ${quoteIdent(dataset)} WHERE (${filter})`;
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Throws unless `treeJson` (json_serialize_sql of filterQuerySql's output) has the expected shape. */
export function assertFilterShape(treeJson: string, dataset: string): void {
  const tree = JSON.parse(treeJson) as { [key: string]: Json };
  if (tree['error'] === true) throw new BadRequestError(`the filter is not a valid SQL expression: ${String(tree['error_message'] ?? 'parse error')}`);
  const statements = tree['statements'];
  const node = Array.isArray(statements) && statements.length === 1 ? field(field(statements[0], 'node'), undefined) : undefined;
  const from = field(node, 'from_table');
  const plain =
    node !== undefined &&
    node['type'] === 'SELECT_NODE' &&
    empty(field(node, 'cte_map')?.['map']) &&
    empty(node['group_expressions']) &&
    empty(node['group_sets']) &&
    node['having'] === null &&
    node['qualify'] === null &&
    node['sample'] === null &&
    Array.isArray(node['select_list']) &&
    node['select_list'].length === 1 &&
    Array.isArray(node['modifiers']) &&
    node['modifiers'].every((m) => field(m, undefined)?.['type'] === 'DISTINCT_MODIFIER') &&
    from?.['type'] === 'BASE_TABLE' &&
    from['table_name'] === dataset &&
    from['alias'] === '' &&
    from['schema_name'] === '';
  if (!plain) throw new BadRequestError('the filter must be one boolean expression over the dataset\'s columns (no closing parenthesis, UNION, GROUP BY, LIMIT…)');
}

function field(value: Json | undefined, key: string | undefined): { [key: string]: Json } | undefined {
  const target = key === undefined ? value : value !== null && typeof value === 'object' && !Array.isArray(value) ? value[key] : undefined;
  return target !== null && typeof target === 'object' && !Array.isArray(target) ? target : undefined;
}

function empty(value: Json | undefined): boolean {
  return Array.isArray(value) && value.length === 0;
}
