/**
 * The raw baselines: plain DuckDB, as someone without our stack would use it.
 * - ingest: a fresh `:memory:` instance runs `COPY (FROM read_csv(file)) TO out (FORMAT parquet,
 *   COMPRESSION zstd)` with DuckDB's defaults (sniffing, threads = cores);
 * - SQL: a fresh instance with a view over the same Parquet part files our dataset lists, queried
 *   on one kept-open connection (one connection per query in flight for the concurrent section),
 *   results materialised as JS objects.
 */
import fs from 'node:fs/promises';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';

const sqlString = (s: string) => `'${s.replace(/'/g, "''")}'`;

export interface RawIngest {
  seconds: number;
  rows: number;
  bytes: number;
}

/** Converts `csv` to `out`; only the COPY statement is timed. */
export async function rawIngest(csv: string, out: string): Promise<RawIngest> {
  const instance = await DuckDBInstance.create(':memory:');
  const conn = await instance.connect();
  try {
    const started = performance.now();
    await conn.run(`COPY (FROM read_csv(${sqlString(csv)})) TO ${sqlString(out)} (FORMAT parquet, COMPRESSION zstd)`);
    const seconds = (performance.now() - started) / 1000;
    const counted = await conn.runAndReadAll(`SELECT count(*) AS n FROM read_parquet(${sqlString(out)})`);
    return { seconds, rows: Number(counted.getRows()[0]?.[0] ?? 0), bytes: (await fs.stat(out)).size };
  } finally {
    conn.closeSync();
    instance.closeSync();
  }
}

export class RawSql {
  private constructor(
    private readonly instance: DuckDBInstance,
    private readonly conn: DuckDBConnection,
  ) {}

  /** A fresh instance with `CREATE VIEW <name> AS SELECT * FROM read_parquet([files])`. */
  static async open(name: string, files: string[]): Promise<RawSql> {
    const instance = await DuckDBInstance.create(':memory:');
    const conn = await instance.connect();
    await conn.run(`CREATE VIEW "${name}" AS SELECT * FROM read_parquet([${files.map(sqlString).join(', ')}])`);
    return new RawSql(instance, conn);
  }

  async query(sql: string, conn: DuckDBConnection = this.conn): Promise<Record<string, unknown>[]> {
    const reader = await conn.runAndReadAll(sql);
    return reader.getRowObjectsJson() as Record<string, unknown>[];
  }

  /** `n` connections for the concurrent section, opened before the clock starts. */
  async connections(n: number): Promise<DuckDBConnection[]> {
    return Promise.all(Array.from({ length: n }, () => this.instance.connect()));
  }

  close(): void {
    this.conn.closeSync();
    this.instance.closeSync();
  }
}
