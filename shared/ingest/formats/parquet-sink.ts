/**
 * Where every format ends: DuckDB's COPY to zstd Parquet. The DuckDB here is the worker's own
 * (`:memory:`, never a shared `.duckdb` file, never the API's sandboxed query engine) and loads no
 * extension, so nothing is downloaded at run time.
 */
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import type { Column } from '../../catalog/manifest.ts';
import { PROGRESS_INTERVAL_MS, type ProgressMeter } from './progress-meter.ts';

/** Rows per Parquet row group: DuckDB's default, a good balance of scan speed and memory. */
export const ROW_GROUP_SIZE = 122_880;

let instance: Promise<DuckDBInstance> | undefined;

function sharedInstance(): Promise<DuckDBInstance> {
  instance ??= DuckDBInstance.create(':memory:', {
    autoinstall_known_extensions: 'false',
    autoload_known_extensions: 'false',
  }).catch((err: unknown) => {
    instance = undefined;
    throw err;
  });
  return instance;
}

/** A connection of its own for one conversion (temporary tables and settings stay in it). */
export async function openConnection(): Promise<DuckDBConnection> {
  const conn = await (await sharedInstance()).connect();
  // Embedded DuckDB tracks no query progress unless the progress bar is on: `conn.progress`
  // would stay at -1 for the whole COPY. Printing it is a CLI thing, so that stays off.
  await conn.run('SET enable_progress_bar = true');
  await conn.run('SET enable_progress_bar_print = false');
  return conn;
}

export function sqlString(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

/** Writes the result of `relation` (a SELECT) to `file` as zstd Parquet. */
export async function copyToParquet(conn: DuckDBConnection, relation: string, file: string): Promise<void> {
  await conn.run(
    `COPY (${relation}) TO ${sqlString(file)} (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE ${ROW_GROUP_SIZE})`,
  );
}

/** Row count (from the footer) and column types of a Parquet file, read back through DuckDB. */
export async function describeParquet(conn: DuckDBConnection, file: string): Promise<{ rows: number; schema: Column[] }> {
  const count = await conn.runAndReadAll(`SELECT count(*) AS n FROM read_parquet(${sqlString(file)})`);
  const described = await conn.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet(${sqlString(file)})`);
  const schema = described.getRowObjects().map((r) => ({ name: String(r['column_name']), type: String(r['column_type']) }));
  return { rows: Number(count.getRowObjects()[0]?.['n'] ?? 0), schema };
}

/**
 * Reports the running statement's progress as bytes of a `bytesTotal`-byte source until the
 * returned function is called. DuckDB says -1 while it is still sniffing or binding; the meter
 * then repeats the last known figure, so the job still shows it is alive.
 */
export function watchStatement(conn: DuckDBConnection, bytesTotal: number, meter: ProgressMeter): () => void {
  let done = 0;
  const timer = setInterval(() => {
    const { percentage } = conn.progress;
    if (percentage >= 0) done = Math.max(done, (Math.min(percentage, 100) / 100) * bytesTotal);
    meter.report(done);
  }, PROGRESS_INTERVAL_MS);
  return () => clearInterval(timer);
}
