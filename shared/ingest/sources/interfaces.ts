/**
 * Glossary of the database-source ingest:
 *
 * - **source** — a Postgres or MySQL/MariaDB server, read through its own Node driver (`pg`,
 *   `mysql2`) because DuckDB's scanner extensions download at run time and fail offline.
 * - **statement** — the one read-only SELECT that runs on the source; `since` is a bound parameter.
 * - **cell** — a value as the driver delivered it, reduced to its exact text, raw bytes, or NULL.
 *   Drivers are told to parse nothing that JS could round (int8, numeric, timestamps stay text).
 * - **column plan** — per result column: its DuckDB type, how its cells are staged (VARCHAR or
 *   BLOB), and an optional `adapt` for cells whose source text DuckDB cannot cast as is.
 * - **batch** — up to `batchSize` rows fetched at once; the only rows held in JS memory.
 * - **sink** — the private DuckDB that casts staged batches into typed rows and writes Parquet.
 */

/** A driver value reduced to exact text, raw bytes, or NULL. */
export type Cell = string | Uint8Array | null;

export interface ColumnPlan {
  name: string;
  /** DuckDB type of the Parquet column, e.g. `DECIMAL(20,6)`, `TIMESTAMPTZ`, `JSON`. */
  type: string;
  /** How cells are appended before the cast to `type`. */
  stage: 'VARCHAR' | 'BLOB';
  /** Rewrites a non-NULL cell into what DuckDB casts to `type` (e.g. MySQL zero dates → NULL). */
  adapt?: (cell: string | Uint8Array) => Cell;
}

/** A statement running on a source: its columns are known before the first row is consumed. */
export interface OpenSource {
  statement: Statement;
  columns: ColumnPlan[];
  /** Rows in source order, at most `batchSize` per batch, each row one cell per column. */
  batches: AsyncIterable<Cell[][]>;
  /** Ends the connection: politely after the last batch, abruptly when stopped part-way. */
  close(): Promise<void>;
}

/** The SQL that runs on the source, with its parameter values (only ever `since`). */
export interface Statement {
  sql: string;
  params: (string | number)[];
}
