/**
 * The sink of a database ingest: a private `:memory:` DuckDB opened per ingest (no extension
 * downloads), with a memory limit and a spill directory so a big source does not have to fit in
 * RAM. Each batch is appended as text/bytes to `staged`, cast in SQL into the typed `fetched`
 * table, and `staged` is emptied; at the end `fetched` is copied to Parquet.
 *
 * The cast happens in SQL rather than in the appender because the appender ignores the UTC offset
 * of a string appended to a TIMESTAMPTZ column (it reads `08:30+05:30` as `08:30Z`).
 */
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { BadRequestError } from '../../errors.ts';
import type { Column } from '../../catalog/manifest.ts';
import { ROW_GROUP_SIZE, sqlString } from '../formats/parquet-sink.ts';
import type { Cell, ColumnPlan } from './interfaces.ts';

/** Above this DuckDB spills staged rows to the spill directory instead of growing. */
export const SINK_MEMORY_LIMIT = '1GB';

/** DuckDB DECIMAL holds at most 38 digits. */
const MAX_DECIMAL_PRECISION = 38;

/**
 * `DECIMAL(p,s)` when DuckDB can hold it exactly; otherwise (precision unknown, above 38, or a
 * negative scale) VARCHAR with the exact text. `asFloat` trades exactness for DOUBLE.
 */
export function decimalType(precision: number | undefined, scale: number | undefined, asFloat: boolean): string {
  if (asFloat) return 'DOUBLE';
  if (precision === undefined || scale === undefined) return 'VARCHAR';
  if (precision < 1 || precision > MAX_DECIMAL_PRECISION || scale < 0 || scale > precision) return 'VARCHAR';
  return `DECIMAL(${precision},${scale})`;
}

export function duckIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

export class ParquetSink {
  private constructor(
    private readonly instance: DuckDBInstance,
    private readonly conn: DuckDBConnection,
    private readonly columns: ColumnPlan[],
  ) {}

  static async open(columns: ColumnPlan[], spillDir: string): Promise<ParquetSink> {
    checkColumnNames(columns);
    const instance = await DuckDBInstance.create(':memory:', {
      autoinstall_known_extensions: 'false',
      autoload_known_extensions: 'false',
      memory_limit: SINK_MEMORY_LIMIT,
      temp_directory: spillDir,
    });
    const conn = await instance.connect();
    const sink = new ParquetSink(instance, conn, columns);
    try {
      await conn.run(`CREATE TABLE staged (${columns.map((c, i) => `c${i} ${c.stage}`).join(', ')})`);
      await conn.run(`CREATE TABLE fetched (${columns.map((c) => `${duckIdent(c.name)} ${c.type}`).join(', ')})`);
    } catch (err) {
      sink.close();
      throw err;
    }
    return sink;
  }

  /** Appends one batch; a value that cannot take its column's type fails here, naming the column. */
  async append(batch: Cell[][]): Promise<void> {
    const appender = await this.conn.createAppender('staged');
    try {
      for (const row of batch) {
        this.columns.forEach((column, i) => {
          const raw = row[i] ?? null;
          const cell = raw === null || column.adapt === undefined ? raw : column.adapt(raw);
          if (cell === null) appender.appendNull();
          else if (typeof cell === 'string') appender.appendVarchar(cell);
          else appender.appendBlob(cell);
        });
        appender.endRow();
      }
      appender.flushSync();
    } finally {
      appender.closeSync();
    }
    try {
      await this.conn.run(`INSERT INTO fetched SELECT ${this.columns.map(castExpression).join(', ')} FROM staged`);
    } catch (err) {
      throw await this.castError(err);
    }
    await this.conn.run('TRUNCATE staged');
  }

  /** Writes every appended row, in order, to `file` as zstd Parquet; returns the file's schema. */
  async writeParquet(file: string): Promise<Column[]> {
    await this.conn.run(`COPY fetched TO ${sqlString(file)} (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE ${ROW_GROUP_SIZE})`);
    const described = await this.conn.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet(${sqlString(file)})`);
    return described.getRowObjects().map((r) => ({ name: String(r['column_name']), type: String(r['column_type']) }));
  }

  close(): void {
    this.conn.closeSync();
    this.instance.closeSync();
  }

  /** Finds the first staged value that does not cast, so the message can name column and value. */
  private async castError(err: unknown): Promise<Error> {
    for (const [i, column] of this.columns.entries()) {
      if (column.type === column.stage) continue;
      const reader = await this.conn.runAndReadAll(
        `SELECT c${i}::VARCHAR AS v FROM staged WHERE c${i} IS NOT NULL AND TRY_CAST(c${i} AS ${column.type}) IS NULL LIMIT 1`,
      );
      const bad = reader.getRowObjects()[0];
      if (bad === undefined) continue;
      const hint = column.type.startsWith('DECIMAL') ? ' (set decimalsAsFloat to read decimals as DOUBLE)' : '';
      return new BadRequestError(`column ${JSON.stringify(column.name)}: value ${JSON.stringify(String(bad['v']).slice(0, 80))} cannot be stored as ${column.type}${hint}`);
    }
    return new Error(`could not convert a batch: ${(err instanceof Error ? err.message : String(err)).split('\n')[0]}`);
  }
}

function castExpression(column: ColumnPlan, i: number): string {
  return column.type === column.stage ? `c${i}` : `CAST(c${i} AS ${column.type})`;
}

/** DuckDB column names are case-insensitive, so `id` and `ID` from Postgres would collide. */
function checkColumnNames(columns: ColumnPlan[]): void {
  if (columns.length === 0) throw new BadRequestError('the statement returns no columns');
  const seen = new Set<string>();
  for (const { name } of columns) {
    const key = name.toLowerCase();
    if (seen.has(key)) throw new BadRequestError(`the result has two columns named ${JSON.stringify(name)} (case-insensitively); alias one of them`);
    seen.add(key);
  }
}
