/**
 * Admin connections to the real PostgreSQL and MariaDB on 127.0.0.1 (DESIGN §6), for tests that
 * create source tables, and reading them back the way a client of the driver would: pg with its
 * default parsers (int8 / numeric as exact strings, timestamptz as a Date, json parsed, bytea as a
 * Buffer) except DATE, kept as its ISO text so no local time zone gets in; mysql2 with big numbers
 * and DECIMAL as exact strings, dates as the server's text and BLOBs as Buffers.
 */
import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import pg from 'pg';

export const PG_ADMIN_DSN = 'postgres://postgres@127.0.0.1:5432/test';
export const MYSQL_ADMIN_DSN = 'mysql://root@127.0.0.1:3306/test';

/** Lower-case hex, safe inside SQL identifiers, role names and dataset names. */
export function randomSuffix(bytes = 4): string {
  return randomBytes(bytes).toString('hex');
}

const DATE_OID = pg.types.builtins.DATE;

export interface PgAdmin {
  exec(sql: string, params?: unknown[]): Promise<void>;
  /** Rows as objects, parsed by pg's default parsers (DATE kept as text). */
  rows(sql: string, params?: unknown[]): Promise<Record<string, unknown>[]>;
  close(): Promise<void>;
}

export async function pgAdmin(dsn = PG_ADMIN_DSN): Promise<PgAdmin> {
  const client = new pg.Client({
    connectionString: dsn,
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
        oid === DATE_OID ? (text: string) => text : pg.types.getTypeParser(oid, format)) as pg.CustomTypesConfig['getTypeParser'],
    },
  });
  await client.connect();
  return {
    exec: async (sql, params) => void (await client.query(sql, params)),
    rows: async (sql, params) => (await client.query(sql, params)).rows as Record<string, unknown>[],
    close: () => client.end(),
  };
}

export interface MysqlAdmin {
  exec(sql: string, params?: unknown[]): Promise<void>;
  rows(sql: string, params?: unknown[]): Promise<Record<string, unknown>[]>;
  close(): Promise<void>;
}

export async function mysqlAdmin(dsn = MYSQL_ADMIN_DSN): Promise<MysqlAdmin> {
  const conn = await mysql.createConnection({ uri: dsn, supportBigNumbers: true, bigNumberStrings: true, dateStrings: true });
  return {
    exec: async (sql, params) => void (await conn.query(sql, params)),
    rows: async (sql, params) => (await conn.query(sql, params))[0] as Record<string, unknown>[],
    close: () => conn.end(),
  };
}
