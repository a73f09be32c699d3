/**
 * Converts source files to zstd Parquet with DuckDB. This DuckDB instance is the worker's own
 * (never shared with another process, never the API's sandboxed one) and downloads nothing.
 */
import fs from 'node:fs/promises';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { BadRequestError } from '../errors.ts';
import type { ProgressFn } from '../progress.ts';
import type { Column } from '../catalog/manifest.ts';
import { commitTempFile, tempPathFor } from '../storage/atomic-write.ts';

/** Rows per Parquet row group: DuckDB's default, a good balance of scan speed and memory. */
export const ROW_GROUP_SIZE = 122_880;

let instance: Promise<DuckDBInstance> | undefined;

async function connect(): Promise<DuckDBConnection> {
  instance ??= DuckDBInstance.create(':memory:', {
    autoinstall_known_extensions: 'false',
    autoload_known_extensions: 'false',
  });
  return (await instance).connect();
}

export interface ParquetOutput {
  rows: number;
  bytes: number;
  schema: Column[];
}

export function sqlString(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

/** CSV (DuckDB's sniffer picks delimiter, quoting, header and types) → Parquet at `target`, atomically. */
export async function csvToParquet(source: string, target: string, progress: ProgressFn): Promise<ParquetOutput> {
  const { size } = await fs.stat(source);
  if (size === 0) throw new BadRequestError('the CSV file is empty');
  const tmp = tempPathFor(target);
  const conn = await connect();
  const poll = setInterval(() => {
    const p = conn.progress;
    if (p.percentage >= 0) void progress(Math.min(p.percentage / 100, 1) * 0.9, { bytes_total: size, percent: Math.round(p.percentage) });
  }, 250);
  try {
    await conn.run(
      `COPY (SELECT * FROM read_csv(${sqlString(source)}, auto_detect = true)) TO ${sqlString(tmp)} ` +
        `(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE ${ROW_GROUP_SIZE})`,
    );
    const out = await describeParquet(conn, tmp);
    await commitTempFile(tmp, target);
    return { ...out, bytes: (await fs.stat(target)).size };
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err instanceof BadRequestError ? err : new BadRequestError(`could not read the CSV: ${firstLine(err)}`);
  } finally {
    clearInterval(poll);
    conn.closeSync();
  }
}

async function describeParquet(conn: DuckDBConnection, file: string): Promise<Omit<ParquetOutput, 'bytes'>> {
  const count = await conn.runAndReadAll(`SELECT count(*) AS n FROM read_parquet(${sqlString(file)})`);
  const described = await conn.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet(${sqlString(file)})`);
  const schema = described.getRowObjects().map((r) => ({ name: String(r['column_name']), type: String(r['column_type']) }));
  return { rows: Number(count.getRowObjects()[0]?.['n'] ?? 0), schema };
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? 'unknown error';
}
