/**
 * Reads a MySQL/MariaDB statement with mysql2's `query().stream()` on a callback (non-promise)
 * connection, inside a READ ONLY transaction. The stream's highWaterMark is `batchSize`: while a
 * batch is being written to DuckDB the stream fills up and mysql2 pauses the socket, so the server
 * waits instead of the rows piling up in memory.
 *
 * The options keep every value exact: BIGINT and DECIMAL as strings, dates as the server's text,
 * JSON as text (`jsonStrings`), binary columns as Buffers. Small integers and floats come back as
 * JS numbers, which hold them exactly. The session runs in UTC so TIMESTAMP columns read the same
 * whatever the server's zone.
 */
import mysql, { type Connection, type FieldPacket, type QueryOptions } from 'mysql2';
import { BadRequestError } from '../../errors.ts';
import type { DbSourceSpec } from './db-source.ts';
import type { Cell, ColumnPlan, OpenSource, Statement } from './interfaces.ts';
import { decimalType } from './parquet-sink.ts';
import { buildStatement, mysqlDialect, probeIncrementalColumn, type Dialect } from './statement.ts';
import { CONNECT_TIMEOUT_MS } from './postgres-reader.ts';

const T = mysql.Types;
const UNSIGNED_FLAG = 32;
const BINARY_CHARSET = 63;

/**
 * The server would compare an integer or DECIMAL column with a string `since` as DOUBLE, which
 * rounds above 2^53 and at 17 digits; comparing with an exact DECIMAL keeps incremental reads exact.
 */
const EXACT_SINCE = 'CAST(? AS DECIMAL(65,30))';
const EXACT_NUMERIC = new Set([T.TINY, T.SHORT, T.INT24, T.LONG, T.LONGLONG, T.YEAR, T.DECIMAL, T.NEWDECIMAL]);

const SESSION = [
  "SET time_zone = '+00:00'",
  // Pausing the socket while DuckDB writes a batch must not look like a dead client.
  'SET SESSION net_write_timeout = 600',
  'START TRANSACTION READ ONLY',
];

/** mysql2 would parse geometry into objects and vectors into arrays; keep their bytes instead. */
const typeCast: QueryOptions['typeCast'] = (field, next) => (field.type === 'GEOMETRY' || field.type === 'VECTOR' ? field.buffer() : next());

export async function openMysql(spec: DbSourceSpec): Promise<OpenSource> {
  const conn = mysql.createConnection({
    uri: spec.dsn,
    connectTimeout: CONNECT_TIMEOUT_MS,
    supportBigNumbers: true,
    bigNumberStrings: true,
    decimalNumbers: false,
    dateStrings: true,
    jsonStrings: true,
    typeCast,
  });
  // Fatal errors also fail the running command, which is where they are reported.
  conn.on('error', () => {});
  let finished = false;
  const close = (): Promise<void> =>
    finished ? new Promise((resolve) => conn.end(() => resolve())) : Promise.resolve(conn.destroy());
  try {
    for (const sql of SESSION) await run(conn, sql);
    const statement = await statementFor(conn, spec);
    const query = conn.query({ sql: statement.sql, values: statement.params, rowsAsArray: true });
    const stream = query.stream({ highWaterMark: spec.batchSize });
    // mysql2 destroys the stream with the error, which for-await rethrows; an error before the
    // iteration starts must not become an uncaught 'error' event meanwhile.
    stream.on('error', () => {});
    const fields = await new Promise<FieldPacket[]>((resolve, reject) => {
      query.once('fields', (f: FieldPacket[]) => resolve(f));
      query.once('error', reject);
      // After an error mysql2 also emits 'end'; the promise has settled by then.
      query.once('end', () => reject(new BadRequestError('the statement returned no result set')));
    });
    const columns = fields.map((f) => planColumn(f, spec.decimalsAsFloat ?? false));
    async function* batches(): AsyncGenerator<Cell[][]> {
      let batch: Cell[][] = [];
      for await (const row of stream) {
        batch.push((row as unknown[]).map(toCell));
        if (batch.length >= spec.batchSize) {
          yield batch;
          batch = [];
        }
      }
      if (batch.length > 0) yield batch;
      finished = true;
    }
    return { statement, columns, batches: batches(), close };
  } catch (err) {
    await close();
    throw err;
  }
}

/** With a string `since` on a numeric column, bind it as an exact DECIMAL (see EXACT_SINCE). */
async function statementFor(conn: Connection, spec: DbSourceSpec): Promise<Statement> {
  const since = spec.incremental?.since;
  if (typeof since !== 'string') return buildStatement(spec, mysqlDialect);
  const [field] = await run(conn, probeIncrementalColumn(spec, mysqlDialect));
  if (field?.columnType === undefined || !EXACT_NUMERIC.has(field.columnType)) return buildStatement(spec, mysqlDialect);
  if (!/^-?\d+(\.\d+)?$/.test(since)) {
    throw new BadRequestError(`incremental.since must be a number for the numeric column ${JSON.stringify(spec.incremental?.column)}`);
  }
  const exact: Dialect = { ...mysqlDialect, param: EXACT_SINCE };
  return buildStatement(spec, exact);
}

function run(conn: Connection, sql: string): Promise<FieldPacket[]> {
  return new Promise((resolve, reject) => conn.query(sql, (err, _result, fields) => (err ? reject(err) : resolve(fields ?? []))));
}

function toCell(value: unknown): Cell {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string' || value instanceof Uint8Array) return value;
  return String(value);
}

function planColumn(field: FieldPacket, decimalsAsFloat: boolean): ColumnPlan {
  const name = field.name;
  const text = (type: string, adapt?: ColumnPlan['adapt']): ColumnPlan => ({ name, type, stage: 'VARCHAR', ...(adapt && { adapt }) });
  const unsigned = (Number(field.flags) & UNSIGNED_FLAG) !== 0;
  // MariaDB sends JSON and UUID columns as text; their real type is in the extended metadata.
  if (field.extendedFormat === 'json') return text('JSON');
  if (field.extendedTypeName === 'uuid') return text('UUID');
  switch (field.columnType) {
    case T.TINY:
      if (field.columnLength === 1) return text('BOOLEAN', (v) => (v === '0' ? 'false' : 'true'));
      return text(unsigned ? 'SMALLINT' : 'TINYINT');
    case T.SHORT:
      return text(unsigned ? 'INTEGER' : 'SMALLINT');
    case T.INT24:
      return text('INTEGER');
    case T.LONG:
      return text(unsigned ? 'BIGINT' : 'INTEGER');
    case T.LONGLONG:
      return text(unsigned ? 'UBIGINT' : 'BIGINT');
    case T.YEAR:
      return text('SMALLINT');
    case T.BIT:
      return text('UBIGINT', (v) => BigInt(`0x${Buffer.from(v).toString('hex') || '0'}`).toString());
    case T.DECIMAL:
    case T.NEWDECIMAL: {
      const scale = field.decimals;
      // The display length counts the sign (if signed) and the decimal point (if any scale).
      const precision = (field.columnLength ?? 0) - (scale > 0 ? 1 : 0) - (unsigned ? 0 : 1);
      return text(decimalType(precision, scale, decimalsAsFloat));
    }
    case T.FLOAT:
      return text('FLOAT');
    case T.DOUBLE:
      return text('DOUBLE');
    case T.DATE:
    case T.NEWDATE:
      return text('DATE', zeroDateAsNull);
    case T.DATETIME:
    case T.TIMESTAMP:
      return text('TIMESTAMP', zeroDateAsNull);
    case T.TIME:
      return text('TIME');
    case T.JSON:
      return text('JSON');
    case T.GEOMETRY:
    case T.VECTOR:
      return { name, type: 'BLOB', stage: 'BLOB' };
    default:
      // CHAR/VARCHAR/TEXT/ENUM/SET and their binary twins, told apart by the binary charset.
      return field.characterSet === BINARY_CHARSET ? { name, type: 'BLOB', stage: 'BLOB' } : text('VARCHAR');
  }
}

/** MySQL's "zero" date has no instant; NULL is what Connector/J and others read it as. */
function zeroDateAsNull(cell: string | Uint8Array): Cell {
  return typeof cell === 'string' && cell.startsWith('0000-00-00') ? null : cell;
}
