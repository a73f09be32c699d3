/**
 * The functions a reader's SQL may call: DuckDB's own scalar, aggregate and macro functions of the
 * `main` schema, as the running DuckDB lists them (so an upgrade adds its new functions only after
 * they pass the denial below), minus those that reveal the server rather than compute on data.
 * Anything not listed is refused by the reader guard: the list fails closed.
 */
import type { DuckDBConnection } from '@duckdb/node-api';

/**
 * Settings, session and catalog introspection (the data root is in `allowed_directories`; view
 * definitions hold part paths), sequences, sleeps, statistics of a column (`stats` shows min/max)
 * and the parse-tree functions the guard itself relies on. The pg_catalog schema (PostgreSQL
 * compatibility macros) is left out as a whole.
 */
export const DENIED_READER_FUNCTION = new RegExp(
  '^(' +
    [
      'current_(setting|query|query_id|connection_id|transaction_id|schema|schemas|database|catalog|role|user)',
      'txid_current', 'session_user', 'user', 'getvariable', 'in_search_path', 'version', 'stats', 'sleep_ms',
      'pg_.*', 'has_.*_privilege', '(col|obj|shobj)_description', 'format_pg_type', 'format_type', 'map_to_pg_oid',
      'inet_.*', 'get_block_size', 'json_(serialize|deserialize)_(sql|plan)', 'json_execute_serialized_sql',
      'nextval', 'currval', 'duckdb_.*', 'pragma_.*', 'read_.*', 'glob', 'parquet_.*', 'which_secret',
    ].join('|') +
    ')$',
);

export async function allowedReaderFunctions(connection: DuckDBConnection): Promise<ReadonlySet<string>> {
  const reader = await connection.runAndReadAll(
    "SELECT DISTINCT function_name FROM duckdb_functions() WHERE schema_name = 'main' AND function_type IN ('scalar', 'aggregate', 'macro')",
  );
  const names = reader.getRows().map((row) => String(row[0]));
  const allowed = new Set(names.filter((name) => !DENIED_READER_FUNCTION.test(name.toLowerCase())).map((name) => name.toLowerCase()));
  if (!allowed.has('count') || !allowed.has('lower')) throw new Error('DuckDB listed no usable functions for readers');
  return allowed;
}
