/**
 * The SQL attack corpus (SECURITY.md, "SQL"): shapes of SQL a reader might send to reach raw
 * values of masked (PII) columns, the server's settings or files outside the datasets. Each entry
 * is one class member; the suites run every entry as reader, writer and admin and check what a
 * user cares about (no raw value, no file from outside the data), whatever the status.
 */
export interface CorpusPaths {
  /** Absolute path of one raw Parquet part of the PII dataset. */
  part: string;
  /** The dataset's folder (…/datasets/people). */
  datasetDir: string;
  /** The data root. */
  root: string;
  /** A file outside the datasets folder holding a canary string. */
  canaryFile: string;
  /** The dataset's name (a plain identifier). */
  dataset: string;
}

export interface Attack {
  label: string;
  sql: string;
}

const KELVIN = '\u212A'; // folds to "k" in JS toLowerCase, not in DuckDB
const CYRILLIC_E = '\u0435';

export function sqlAttacks(p: CorpusPaths): Attack[] {
  const q = (s: string) => `'${s.replace(/'/g, "''")}'`;
  const d = p.dataset;
  const part = p.part;
  const glob = `${p.datasetDir}/parts/*.parquet`;
  const list: [string, string][] = [
    // CTEs named like files, self-references, scope tricks
    ['CTE named as the part path', `WITH "${part}" AS (SELECT 1 AS one) SELECT * FROM "${part}"`],
    ['self-referencing CTE named as the part', `WITH "${part}" AS (SELECT * FROM "${part}") SELECT * FROM "${part}"`],
    ['WITH RECURSIVE without UNION, self-referencing', `WITH RECURSIVE "${part}" AS (SELECT * FROM "${part}") SELECT * FROM "${part}"`],
    ['CTE body reading the part by string', `WITH x AS (SELECT * FROM ${q(part)}) SELECT * FROM x`],
    ['CTE in a subquery, used outside it', `SELECT * FROM (WITH "${part}" AS (SELECT 1) SELECT 1) t, "${part}"`],
    ['CTE visible only in a sibling subquery', `SELECT * FROM (WITH x AS (SELECT 1) SELECT * FROM x) t, ${q(part)}`],
    ['CTE shadowing a system view with itself', 'WITH duckdb_settings AS (SELECT * FROM duckdb_settings) SELECT * FROM duckdb_settings'],
    ['CTE shadowing duckdb_views with itself', 'WITH duckdb_views AS (SELECT * FROM duckdb_views) SELECT sql FROM duckdb_views'],
    ['CTE referencing one defined later', 'WITH a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a'],
    ['recursive CTE joined with the part', `WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT * FROM r, ${q(part)}`],
    ['materialized CTE over the part', `WITH x AS MATERIALIZED (SELECT * FROM ${q(part)}) SELECT * FROM x`],
    ['CTE with column aliases over a glob', `WITH x(a, b, c) AS (SELECT * FROM ${q(glob)}) SELECT * FROM x`],
    // replacement scans: file paths as table names
    ['the part as a string table', `SELECT * FROM ${q(part)}`],
    ['the part as a quoted identifier', `SELECT * FROM "${part}"`],
    ['a glob of the parts', `SELECT * FROM ${q(glob)}`],
    ['FROM-first syntax', `FROM ${q(part)}`],
    ['FROM-first in a subquery', `SELECT * FROM (FROM ${q(part)})`],
    ['comment between FROM and the path', `SELECT * FROM/**/${q(part)}`],
    ['line comment before the path', `SELECT * FROM -- hidden\n ${q(part)}`],
    ['the part joined to the dataset', `SELECT * FROM ${d} p JOIN ${q(part)} r USING (id)`],
    ['positional join with the part', `SELECT * FROM ${d} POSITIONAL JOIN ${q(part)}`],
    ['lateral over the part', `SELECT * FROM ${d} p, LATERAL (SELECT * FROM ${q(part)} r WHERE r.id = p.id)`],
    ['union with the part', `SELECT * FROM ${d} UNION ALL SELECT * FROM ${q(part)}`],
    ['scalar subquery on the part', `SELECT (SELECT string_agg(email, ',') FROM ${q(part)}) AS e`],
    ['IN subquery on the part', `SELECT id FROM ${d} WHERE id IN (SELECT id FROM ${q(part)} WHERE email LIKE '%@%')`],
    ['EXISTS on the part', `SELECT count(*) FROM ${d} WHERE EXISTS (SELECT 1 FROM ${q(part)} WHERE email LIKE 'a%')`],
    ['a sample of the part', `SELECT * FROM ${q(part)} USING SAMPLE 10`],
    ['a lambda holding a subquery', `SELECT list_transform([1], x -> (SELECT email FROM ${q(part)} LIMIT 1)) AS l`],
    ['DESCRIBE of the part', `DESCRIBE SELECT * FROM ${q(part)}`],
    ['SUMMARIZE of the part', `SUMMARIZE SELECT * FROM ${q(part)}`],
    // table functions, any case
    ['read_parquet', `SELECT * FROM read_parquet(${q(part)})`],
    ['READ_PARQUET in upper case', `SeLeCt * FrOm READ_PARQUET(${q(part)})`],
    ['read_parquet of a list', `SELECT * FROM read_parquet([${q(part)}])`],
    ['read_parquet of list_value', `SELECT * FROM read_parquet(list_value(${q(part)}))`],
    ['parquet_scan', `SELECT * FROM parquet_scan(${q(part)})`],
    ['parquet_metadata (min/max statistics)', `SELECT * FROM parquet_metadata(${q(part)})`],
    ['parquet_schema', `SELECT * FROM parquet_schema(${q(part)})`],
    ['read_blob', `SELECT * FROM read_blob(${q(part)})`],
    ['read_text of the canary', `SELECT * FROM read_text(${q(p.canaryFile)})`],
    ['read_csv of the canary', `SELECT * FROM read_csv(${q(p.canaryFile)}, header = false)`],
    ['read_json_auto of the canary', `SELECT * FROM read_json_auto(${q(p.canaryFile)})`],
    ['the canary as a table', `SELECT * FROM ${q(p.canaryFile)}`],
    ['glob of the data root', `SELECT * FROM glob(${q(p.root + '/**')})`],
    ['query()', `SELECT * FROM query('SELECT * FROM read_parquet(${part.replace(/'/g, "''''")})')`],
    ['query_table()', `SELECT * FROM query_table('${d}')`],
    ['sniff_csv', `SELECT * FROM sniff_csv(${q(p.canaryFile)})`],
    ['range (harmless table function)', 'SELECT * FROM range(3)'],
    // settings, session and catalog functions and views
    ['current_setting(allowed_directories)', "SELECT current_setting('allowed_directories') AS s"],
    ['CURRENT_SETTING in upper case', "SELECT CURRENT_SETTING('ALLOWED_DIRECTORIES') AS s"],
    ['quoted "current_setting"', `SELECT "current_setting"('temp_directory') AS s`],
    ['main.current_setting', "SELECT main.current_setting('allowed_directories') AS s"],
    ['system.main.current_setting', "SELECT system.main.current_setting('allowed_directories') AS s"],
    ['current_setting in a CTE', "WITH s AS (SELECT current_setting('allowed_directories') AS v) SELECT * FROM s"],
    ['current_setting in a filter', `SELECT count(*) FROM ${d} WHERE current_setting('allowed_directories') LIKE '%/%'`],
    ['getvariable', "SELECT getvariable('x') AS v"],
    ['current_query', 'SELECT current_query() AS q'],
    ['stats() of a masked column', `SELECT stats(email) AS s FROM ${d} LIMIT 1`],
    ['pg_get_viewdef', `SELECT pg_get_viewdef('${d}') AS v`],
    ['json_serialize_sql', "SELECT json_serialize_sql('SELECT 1') AS j"],
    ['duckdb_views()', 'SELECT * FROM duckdb_views()'],
    ['duckdb_views unqualified', 'SELECT sql FROM duckdb_views'],
    ['duckdb_settings()', 'SELECT * FROM duckdb_settings()'],
    ['duckdb_databases()', 'SELECT * FROM duckdb_databases()'],
    ['duckdb_columns() in a subquery', `SELECT * FROM ${d} WHERE EXISTS (SELECT 1 FROM duckdb_columns())`],
    ['information_schema.views', 'SELECT * FROM information_schema.views'],
    ['pg_catalog.pg_views', 'SELECT * FROM pg_catalog.pg_views'],
    ['sqlite_master', 'SELECT * FROM sqlite_master'],
    ['pragma_table_info', `SELECT * FROM pragma_table_info('${d}')`],
    ['main schema (unmasked views live there for writers)', `SELECT * FROM main.${d}`],
    ['catalog-qualified name', `SELECT * FROM memory.main.${d}`],
    ['system catalog', `SELECT * FROM system.main.duckdb_views`],
    // names that look like the dataset but are not, or fold differently
    ['Kelvin sign CTE', `WITH "${KELVIN}" AS (SELECT * FROM ${q(part)}) SELECT * FROM "${KELVIN}"`],
    ['Kelvin sign against a plain k CTE', `WITH k AS (SELECT 1) SELECT * FROM "${KELVIN}"`],
    ['Cyrillic look-alike of the dataset', `SELECT * FROM "p${CYRILLIC_E}ople"`],
    ['dataset name in upper case (allowed)', `SELECT * FROM ${d.toUpperCase()}`],
    ['dataset name quoted (allowed)', `SELECT * FROM "${d}"`],
    ['AT clause', `SELECT * FROM ${d} AT (VERSION => 1)`],
    // reading the masked view every way (answers allowed, raw values never)
    ['SELECT *', `SELECT * FROM ${d}`],
    ['the row as a struct', `SELECT ${d} FROM ${d}`],
    ['to_json of the row', `SELECT to_json(${d}) AS j FROM ${d}`],
    ['COLUMNS regex', `SELECT COLUMNS('.*') FROM ${d}`],
    ['struct_pack(*)', `SELECT struct_pack(*) AS s FROM ${d}`],
    ['min/max of masked columns', `SELECT min(email), max(email), min(card), max(phone) FROM ${d}`],
    ['string_agg of a masked column', `SELECT string_agg(email, ',') AS e FROM ${d}`],
    ['SUMMARIZE the dataset', `SUMMARIZE ${d}`],
    ['UNPIVOT the dataset', `SELECT * FROM (UNPIVOT ${d} ON COLUMNS(* EXCLUDE (id)) INTO NAME k VALUE v)`],
    ['predicate oracle on a masked value', `SELECT count(*) AS n FROM ${d} WHERE email LIKE 'a%'`],
    ['length of a masked value', `SELECT length(email) AS l FROM ${d} LIMIT 5`],
    ['hash of a masked value', `SELECT md5(email) AS h FROM ${d} LIMIT 5`],
    ['masked column through a view alias rename', `SELECT * FROM ${d} AS t(a, b, c, dd, e, f)`],
    ['NATURAL JOIN with itself', `SELECT * FROM ${d} NATURAL JOIN ${d} x`],
    // statements other than one SELECT
    ['EXPLAIN ANALYZE', `EXPLAIN ANALYZE SELECT * FROM ${q(part)}`],
    ['COPY to a file', `COPY (SELECT * FROM ${d}) TO ${q(p.root + '/leak.csv')}`],
    ['ATTACH', `ATTACH ${q(p.root + '/x.duckdb')}`],
    ['SET allowed_directories', "SET allowed_directories = ['/']"],
    ['SET search_path to main', "SET search_path = 'main'"],
    ['PRAGMA', 'PRAGMA database_list'],
    ['CALL', 'CALL duckdb_settings()'],
    ['INSTALL', 'INSTALL httpfs'],
    ['CREATE VIEW', `CREATE VIEW v AS SELECT * FROM ${q(part)}`],
    ['two statements', `SELECT 1; SELECT * FROM ${q(part)}`],
    ['a PIVOT statement', `PIVOT ${d} ON city USING count(*)`],
  ];
  return list.map(([label, sql]) => ({ label, sql }));
}

/** Hybrid-search filters: boolean expressions over the source dataset, as a reader might write them. */
export function filterAttacks(p: CorpusPaths, knownEmail: string): Attack[] {
  const q = (s: string) => `'${s.replace(/'/g, "''")}'`;
  const list: [string, string][] = [
    ['equality on a raw PII value (yes/no oracle)', `email = ${q(knownEmail)}`],
    ['prefix oracle on a masked column', `email LIKE ${q(knownEmail.slice(0, 3) + '%')}`],
    ['IN subquery on the raw part', `id IN (SELECT id FROM ${q(p.part)} WHERE email = ${q(knownEmail)})`],
    ['EXISTS on read_parquet', `EXISTS (SELECT 1 FROM read_parquet(${q(p.part)}) r WHERE r.email = ${q(knownEmail)})`],
    ['closing the WHERE and UNION-ing the part', `1 = 1) UNION ALL SELECT email FROM ${q(p.part)} WHERE (1 = 1`],
    ['closing the WHERE with a comment', `1 = 1) UNION ALL SELECT email FROM ${q(p.part)} --`],
    ['a setting in the filter', "current_setting('allowed_directories') LIKE '%datasets%'"],
    ['a CTE-free scalar subquery on a system view', '(SELECT count(*) FROM duckdb_views()) > 0'],
  ];
  return list.map(([label, sql]) => ({ label, sql }));
}
