/**
 * A fresh, private DuckDB (`:memory:`, no extension downloads) for checking what the code under
 * test wrote — never the instance the code itself uses.
 */
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';

export function sqlString(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

export interface FreshDuckDB {
  /** Rows as plain JS objects (BIGINT → bigint, DOUBLE → number, VARCHAR → string). */
  all(sql: string): Promise<Record<string, unknown>[]>;
  close(): void;
}

export async function freshDuckDB(): Promise<FreshDuckDB> {
  const instance = await DuckDBInstance.create(':memory:', {
    autoinstall_known_extensions: 'false',
    autoload_known_extensions: 'false',
  });
  const conn: DuckDBConnection = await instance.connect();
  return {
    async all(sql) {
      const reader = await conn.runAndReadAll(sql);
      return reader.getRowObjectsJS() as Record<string, unknown>[];
    },
    close() {
      conn.closeSync();
      instance.closeSync();
    },
  };
}

/** Runs `fn` with a fresh DuckDB and closes it afterwards. */
export async function withDuckDB<T>(fn: (db: FreshDuckDB) => Promise<T>): Promise<T> {
  const db = await freshDuckDB();
  try {
    return await fn(db);
  } finally {
    db.close();
  }
}

/**
 * Writes a CSV of `rows` generated rows (id, qty, amount, note — the note holds a comma, so it is
 * quoted) with DuckDB: much faster than building a big string in JS.
 */
export async function generateCsv(file: string, rows: number): Promise<void> {
  await withDuckDB((db) =>
    db.all(
      `COPY (SELECT i AS id, i % 97 AS qty, (i % 1000) / 10 AS amount, 'note number ' || i || ', with a comma' AS note ` +
        `FROM range(1, ${rows + 1}) t(i)) TO ${sqlString(file)} (FORMAT csv, HEADER)`,
    ),
  );
}
