/**
 * Reads a Postgres statement with `pg` + `pg-cursor`, `batchSize` rows per round trip, inside a
 * READ ONLY transaction (a query source cannot write). Every value stays the server's text except
 * bytea (raw bytes): int8, numeric and timestamps would lose precision as JS numbers or Dates, and
 * DuckDB casts the text exactly. The session is pinned (UTC, ISO dates, round-trip floats) so the
 * same rows always give the same text, and so the same fingerprint.
 */
import pg from 'pg';
import Cursor from 'pg-cursor';
import type { DbSourceSpec } from './db-source.ts';
import type { Cell, ColumnPlan, OpenSource } from './interfaces.ts';
import { decimalType } from './parquet-sink.ts';
import { buildStatement, postgresDialect } from './statement.ts';

export const CONNECT_TIMEOUT_MS = 10_000;

const OID = pg.types.builtins;
const parseBytea = pg.types.getTypeParser(OID.BYTEA, 'text');
const keepText = (text: string): string => text;

/** Type parsers for the cursor: bytea → Buffer, everything else its exact text. */
const TEXT_TYPES = {
  getTypeParser: ((oid: number) => (oid === OID.BYTEA ? parseBytea : keepText)) as pg.CustomTypesConfig['getTypeParser'],
};

const SESSION = [
  'BEGIN TRANSACTION READ ONLY',
  "SET LOCAL TimeZone = 'UTC'",
  "SET LOCAL DateStyle = 'ISO, YMD'",
  "SET LOCAL IntervalStyle = 'postgres'",
  'SET LOCAL extra_float_digits = 3',
  "SET LOCAL bytea_output = 'hex'",
].join('; ');

export async function openPostgres(spec: DbSourceSpec): Promise<OpenSource> {
  const client = new pg.Client({ connectionString: spec.dsn, connectionTimeoutMillis: CONNECT_TIMEOUT_MS });
  // A socket error after connect also fails the pending read, which is where it is reported.
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query(SESSION);
    const statement = buildStatement(spec, postgresDialect);
    const cursor = client.query(new Cursor<Cell[]>(statement.sql, statement.params.map(String), { rowMode: 'array', types: TEXT_TYPES }));
    const first = await read(cursor, spec.batchSize);
    const columns = first.fields.map((f) => planColumn(f, spec.decimalsAsFloat ?? false));
    async function* batches(): AsyncGenerator<Cell[][]> {
      for (let rows = first.rows; rows.length > 0; rows = (await read(cursor, spec.batchSize)).rows) {
        yield rows;
        if (rows.length < spec.batchSize) return;
      }
    }
    return { statement, columns, batches: batches(), close: () => client.end().catch(() => {}) };
  } catch (err) {
    await client.end().catch(() => {});
    throw err;
  }
}

/** cursor.read with the fields too (the promise form resolves with the rows only). */
function read(cursor: Cursor<Cell[]>, n: number): Promise<{ rows: Cell[][]; fields: pg.FieldDef[] }> {
  return new Promise((resolve, reject) => {
    cursor.read(n, (err, rows, result) => (err ? reject(err) : resolve({ rows, fields: result.fields })));
  });
}

function planColumn(field: pg.FieldDef, decimalsAsFloat: boolean): ColumnPlan {
  const text = (type: string): ColumnPlan => ({ name: field.name, type, stage: 'VARCHAR' });
  switch (field.dataTypeID) {
    case OID.BOOL:
      return text('BOOLEAN');
    case OID.INT2:
      return text('SMALLINT');
    case OID.INT4:
      return text('INTEGER');
    case OID.INT8:
      return text('BIGINT');
    case OID.FLOAT4:
      return text('FLOAT');
    case OID.FLOAT8:
      return text('DOUBLE');
    case OID.NUMERIC:
      return text(decimalType(...numericTypmod(field.dataTypeModifier), decimalsAsFloat));
    case OID.DATE:
      return text('DATE');
    case OID.TIME:
      return text('TIME');
    case OID.TIMESTAMP:
      return text('TIMESTAMP');
    case OID.TIMESTAMPTZ:
      return text('TIMESTAMPTZ');
    case OID.JSON:
    case OID.JSONB:
      return text('JSON');
    case OID.UUID:
      return text('UUID');
    case OID.BYTEA:
      return { name: field.name, type: 'BLOB', stage: 'BLOB' };
    default:
      // text, varchar, char, enums, arrays, intervals, …: the server's text form.
      return text('VARCHAR');
  }
}

/** numeric(p,s) is sent as typmod ((p << 16) | s) + 4, s an 11-bit signed value; -1 if unconstrained. */
function numericTypmod(typmod: number): [number | undefined, number | undefined] {
  if (typmod < 4) return [undefined, undefined];
  const packed = typmod - 4;
  return [(packed >> 16) & 0xffff, ((packed & 0x7ff) ^ 0x400) - 0x400];
}
