/**
 * Database sources against the real PostgreSQL and MariaDB on 127.0.0.1: every mapped type (with
 * NULLs, negative and large values) written to Parquet and read back with a fresh DuckDB, value
 * for value; incremental reads; query sources; small batches; errors that name the source but
 * never the password; fingerprints.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { BadRequestError, UnavailableError } from '../../shared/errors.ts';
import { dbToParquet, type DbIngestOutput, type DbSourceSpec } from '../../shared/ingest/sources/db-source.ts';
import type { ProgressFn } from '../../shared/progress.ts';
import { sqlString, withDuckDB } from '../helpers/duckdb.ts';

const PG_DSN = 'postgres://postgres@127.0.0.1:5432/test';
const MYSQL_DSN = 'mysql://root@127.0.0.1:3306/test';
const PASSWORD = 's3cretPW';

let workDir: string;
before(async () => {
  workDir = await fs.mkdtemp(path.join(os.tmpdir(), 'lh-dbsrc-'));
});
after(async () => {
  await fs.rm(workDir, { recursive: true, force: true });
});

const suffix = randomBytes(4).toString('hex');
let fileNo = 0;
const target = (): string => path.join(workDir, `part_${++fileNo}.parquet`);

interface Admin {
  exec(sql: string): Promise<void>;
  /** First column of every row, as text. */
  column(sql: string): Promise<(string | null)[]>;
  close(): Promise<void>;
}

async function pgAdmin(): Promise<Admin> {
  const client = new pg.Client(PG_DSN);
  await client.connect();
  return {
    exec: async (sql) => void (await client.query(sql)),
    column: async (sql) => (await client.query({ text: sql, rowMode: 'array' })).rows.map((r: unknown[]) => (r[0] === null ? null : String(r[0]))),
    close: () => client.end(),
  };
}

async function mysqlAdmin(): Promise<Admin> {
  const conn = await mysql.createConnection({ uri: MYSQL_DSN, supportBigNumbers: true, bigNumberStrings: true, dateStrings: true });
  return {
    exec: async (sql) => void (await conn.query(sql)),
    column: async (sql) => {
      const [rows] = await conn.query({ sql, rowsAsArray: true });
      return (rows as unknown[][]).map((r) => (r[0] === null ? null : String(r[0])));
    },
    close: () => conn.end(),
  };
}

/** Rows of a Parquet file in file order, as plain JS values (see test/helpers/duckdb.ts). */
async function readParquet(file: string, select = '*', tail = ''): Promise<Record<string, unknown>[]> {
  return withDuckDB(async (db) => {
    await db.all("SET TimeZone = 'UTC'");
    return db.all(`SELECT ${select} FROM read_parquet(${sqlString(file)}) ${tail}`);
  });
}

async function parquetSchema(file: string): Promise<{ name: string; type: string }[]> {
  return withDuckDB(async (db) =>
    (await db.all(`DESCRIBE SELECT * FROM read_parquet(${sqlString(file)})`)).map((r) => ({ name: String(r['column_name']), type: String(r['column_type']) })),
  );
}

function recorder(): { progress: ProgressFn; calls: [number, Record<string, number | string> | undefined][] } {
  const calls: [number, Record<string, number | string> | undefined][] = [];
  return { progress: (f, d) => void calls.push([f, d]), calls };
}

/** 2024-03-10 08:30:00.123456+05:30 in microseconds since the epoch. */
const TSTZ_US = String(BigInt(Date.UTC(2024, 2, 10, 3, 0, 0)) * 1000n + 123_456n);
const NESTED_JSON = '{"a": {"b": [1, 2, {"c": null}]}, "s": "é \\"q\\""}';
const TEXT = 'héllo "quoted", comma\nsecond line ✓';
const UUID = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11';

/** MySQL string literals also treat backslashes as escapes. */
const mysqlString = (s: string): string => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;

describe('postgres source', () => {
  const types = `lh_types_${suffix}`;
  let admin: Admin;

  before(async () => {
    admin = await pgAdmin();
    await admin.exec(`CREATE TABLE ${types} (
      id integer PRIMARY KEY, small smallint, big bigint, num numeric(20,6), num_free numeric, real_v real,
      dbl double precision, flag boolean, d date, tm time, ts timestamp, tstz timestamptz, doc json, docb jsonb,
      uid uuid, txt text, vc varchar(20), ch char(3), bin bytea, iv interval)`);
    await admin.exec(`INSERT INTO ${types} VALUES
      (1, 32767, 9007199254740993, 12345678901234.123456, 3.14159265358979323846264338327950288, 1.5,
       0.1, true, '2024-02-29', '23:59:59.999999', '2024-01-02 03:04:05.123456', '2024-03-10 08:30:00.123456+05:30',
       ${sqlString(NESTED_JSON)}, ${sqlString(NESTED_JSON)}, '${UUID}', ${sqlString(TEXT)}, 'v', 'ab', '\\x00ff0000'::bytea, '1 day 02:03:04'),
      (2, -32768, -9223372036854775808, -99999999999999.999999, -0.00000000000000000001, -2.25,
       '-Infinity', false, '1970-01-01', '00:00:00', '1969-12-31 23:59:59.999999', '1969-12-31 23:59:59-08',
       '[]', '{"n": 123456789012345678901234567890}', '00000000-0000-0000-0000-000000000000', '', '', '', '\\x'::bytea, '-1 mons'),
      (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`);
  });
  after(async () => {
    await admin.exec(`DROP TABLE IF EXISTS ${types}`);
    await admin.close();
  });

  test('every mapped type reaches Parquet value for value, NULLs included', async () => {
    const file = target();
    const { progress, calls } = recorder();
    const out = await dbToParquet({ kind: 'postgres', dsn: PG_DSN, table: types, batchSize: 2 }, file, progress);
    const expectedSchema = [
      ['id', 'INTEGER'], ['small', 'SMALLINT'], ['big', 'BIGINT'], ['num', 'DECIMAL(20,6)'], ['num_free', 'VARCHAR'],
      ['real_v', 'FLOAT'], ['dbl', 'DOUBLE'], ['flag', 'BOOLEAN'], ['d', 'DATE'], ['tm', 'TIME'], ['ts', 'TIMESTAMP'],
      ['tstz', 'TIMESTAMP WITH TIME ZONE'], ['doc', 'JSON'], ['docb', 'JSON'], ['uid', 'UUID'], ['txt', 'VARCHAR'],
      ['vc', 'VARCHAR'], ['ch', 'VARCHAR'], ['bin', 'BLOB'], ['iv', 'VARCHAR'],
    ].map(([name, type]) => ({ name, type }));
    assert.deepEqual(out.schema, expectedSchema);
    assert.deepEqual(await parquetSchema(file), expectedSchema);
    assert.equal(out.rows, 3);
    assert.equal(out.bytes, (await fs.stat(file)).size);
    assert.equal(out.statement, `SELECT * FROM "${types}"`);
    assert.equal(out.highWaterMark, null);
    assert.match(out.fingerprint, /^[0-9a-f]{64}$/);
    assert.ok(calls.length > 0 && calls.every(([f]) => f >= 0 && f < 1), 'progress stays below 1 for the caller');
    assert.ok(calls.some(([, d]) => d?.['rows'] === 3));

    const got = await readParquet(
      file,
      `id, small, big::VARCHAR AS big, num::VARCHAR AS num, num_free, real_v, dbl, flag, d::VARCHAR AS d, tm::VARCHAR AS tm,
       ts::VARCHAR AS ts, epoch_us(tstz)::VARCHAR AS tstz, doc::VARCHAR AS doc, docb::VARCHAR AS docb, uid::VARCHAR AS uid,
       txt, vc, ch, hex(bin) AS bin, iv`,
      'ORDER BY id',
    );
    assert.deepEqual(got, [
      {
        id: 1, small: 32767, big: '9007199254740993', num: '12345678901234.123456', num_free: '3.14159265358979323846264338327950288',
        real_v: 1.5, dbl: 0.1, flag: true, d: '2024-02-29', tm: '23:59:59.999999', ts: '2024-01-02 03:04:05.123456', tstz: TSTZ_US,
        doc: NESTED_JSON, docb: NESTED_JSON, // already in jsonb's canonical spacing and key order
        uid: UUID, txt: TEXT, vc: 'v', ch: 'ab ', bin: '00FF0000', iv: '1 day 02:03:04',
      },
      {
        id: 2, small: -32768, big: '-9223372036854775808', num: '-99999999999999.999999', num_free: '-0.00000000000000000001',
        real_v: -2.25, dbl: -Infinity, flag: false, d: '1970-01-01', tm: '00:00:00', ts: '1969-12-31 23:59:59.999999',
        tstz: String(BigInt(Date.UTC(1970, 0, 1, 7, 59, 59)) * 1000n), doc: '[]', docb: '{"n": 123456789012345678901234567890}',
        uid: '00000000-0000-0000-0000-000000000000', txt: '', vc: '', ch: '   ', bin: '', iv: '-1 mons',
      },
      {
        id: 3, small: null, big: null, num: null, num_free: null, real_v: null, dbl: null, flag: null, d: null, tm: null, ts: null,
        tstz: null, doc: null, docb: null, uid: null, txt: null, vc: null, ch: null, bin: null, iv: null,
      },
    ]);
    // The instant, as Postgres itself computes it, and jsonb as the driver prints it.
    assert.deepEqual(await admin.column(`SELECT (extract(epoch FROM tstz) * 1000000)::bigint FROM ${types} ORDER BY id`), [
      TSTZ_US, String(BigInt(Date.UTC(1970, 0, 1, 7, 59, 59)) * 1000n), null,
    ]);
    assert.deepEqual(
      (await readParquet(file, 'docb::VARCHAR AS v', 'ORDER BY id')).map((r) => r['v']),
      await admin.column(`SELECT docb::text FROM ${types} ORDER BY id`),
    );
  });

  test('decimalsAsFloat reads numerics as DOUBLE', async () => {
    const file = target();
    const out = await dbToParquet({ kind: 'postgres', dsn: PG_DSN, query: `SELECT id, num, num_free FROM ${types} ORDER BY id`, batchSize: 10, decimalsAsFloat: true }, file, () => {});
    assert.deepEqual(out.schema.map((c) => c.type), ['INTEGER', 'DOUBLE', 'DOUBLE']);
    assert.deepEqual(await readParquet(file, 'num, num_free'), [
      { num: 12345678901234.123456, num_free: 3.141592653589793 },
      { num: -99999999999999.999999, num_free: -1e-20 },
      { num: null, num_free: null },
    ]);
  });

  test('fingerprint: same data same hash, a changed row a different one', async () => {
    const spec: DbSourceSpec = { kind: 'postgres', dsn: PG_DSN, query: `SELECT * FROM ${types} ORDER BY id`, batchSize: 100 };
    const a = await dbToParquet(spec, target(), () => {});
    const b = await dbToParquet({ ...spec, batchSize: 1 }, target(), () => {});
    assert.equal(a.fingerprint, b.fingerprint);
    await admin.exec(`UPDATE ${types} SET big = big - 1 WHERE id = 1`);
    try {
      const c = await dbToParquet(spec, target(), () => {});
      assert.notEqual(c.fingerprint, a.fingerprint);
    } finally {
      await admin.exec(`UPDATE ${types} SET big = big + 1 WHERE id = 1`);
    }
    assert.equal((await dbToParquet(spec, target(), () => {})).fingerprint, a.fingerprint);
  });

  test('a value DuckDB cannot hold fails naming the column', async () => {
    await assert.rejects(
      dbToParquet({ kind: 'postgres', dsn: PG_DSN, query: "SELECT 'NaN'::numeric(10,2) AS price", batchSize: 10 }, target(), () => {}),
      (err: Error) => err instanceof BadRequestError && /"price".*DECIMAL\(10,2\).*decimalsAsFloat/.test(err.message),
    );
  });

  test('an error raised by the server after some batches stops the ingest and leaves no file', async () => {
    const file = target();
    await assert.rejects(
      dbToParquet({ kind: 'postgres', dsn: PG_DSN, query: 'SELECT 1 / (500 - g) AS x FROM generate_series(1, 1000) g', batchSize: 50 }, file, () => {}),
      (err: Error) => err instanceof BadRequestError && /^postgres source at 127\.0\.0\.1:5432: division by zero/.test(err.message),
    );
    assert.deepEqual((await fs.readdir(workDir)).filter((f) => f.includes(path.basename(file))), []);
  });

  sharedBehaviour('postgres', PG_DSN, pgAdmin, (t) => `"${t}"`);
});

describe('mysql source', () => {
  const types = `lh_types_${suffix}`;
  let admin: Admin;

  before(async () => {
    admin = await mysqlAdmin();
    await admin.exec(`CREATE TABLE ${types} (
      id INT PRIMARY KEY, tiny TINYINT, tiny_u TINYINT UNSIGNED, small SMALLINT, small_u SMALLINT UNSIGNED, med MEDIUMINT,
      i INT, i_u INT UNSIGNED, big BIGINT, big_u BIGINT UNSIGNED, num DECIMAL(20,6), num_u DECIMAL(10,2) UNSIGNED,
      num0 DECIMAL(12,0), wide DECIMAL(50,10), f FLOAT, dbl DOUBLE, flag TINYINT(1), bits BIT(10), yr YEAR, d DATE,
      tm TIME(6), dt DATETIME(6), ts TIMESTAMP(6) NULL DEFAULT NULL, doc JSON, uid UUID, txt TEXT, vc VARCHAR(20),
      ch CHAR(3), en ENUM('a','b'), st SET('x','y'), bin VARBINARY(16), blb BLOB, fixed BINARY(4)
    ) CHARACTER SET utf8mb4`);
    // TIMESTAMP converts from the session zone: 08:30 at +05:30 is 03:00 UTC.
    await admin.exec("SET time_zone = '+05:30'");
    await admin.exec(`INSERT INTO ${types} VALUES
      (1, 127, 255, 32767, 65535, 8388607, 2147483647, 4294967295, 9007199254740993, 18446744073709551615,
       12345678901234.123456, 99999999.99, 999999999999, 1234567890123456789012345678901234567890.0123456789,
       1.5, 0.1, 1, b'1010101010', 2024, '2024-02-29', '23:59:59.999999', '2024-01-02 03:04:05.123456',
       '2024-03-10 08:30:00.123456', ${mysqlString(NESTED_JSON)}, '${UUID}', ${mysqlString(TEXT)}, 'v', 'ab', 'b', 'x,y',
       0x00FF00, 0x000102, 0x0001),
      (2, -128, 0, -32768, 0, -8388608, -2147483648, 0, -9223372036854775808, 0,
       -99999999999999.999999, 0, -999999999999, -1234567890123456789012345678901234567890.0123456789,
       -2.25, -1.7976931348623157e308, 0, b'0', 1901, '1000-01-01', '00:00:00', '1000-01-01 00:00:00',
       '1970-01-01 05:30:01', '[]', '00000000-0000-0000-0000-000000000000', '', '', '', 'a', '',
       '', 0x00, 0x00000000),
      (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`);
    // A zero date (allowed outside strict NO_ZERO_DATE) and a tinyint(1) that is neither 0 nor 1.
    await admin.exec("SET sql_mode = ''");
    await admin.exec(`INSERT INTO ${types} (id, flag, d, dt) VALUES (4, 2, '0000-00-00', '0000-00-00 00:00:00')`);
  });
  after(async () => {
    await admin.exec(`DROP TABLE IF EXISTS ${types}`);
    await admin.close();
  });

  test('every mapped type reaches Parquet value for value, NULLs included', async () => {
    const file = target();
    const out = await dbToParquet({ kind: 'mysql', dsn: MYSQL_DSN, table: types, batchSize: 3 }, file, () => {});
    const expectedSchema = [
      ['id', 'INTEGER'], ['tiny', 'TINYINT'], ['tiny_u', 'SMALLINT'], ['small', 'SMALLINT'], ['small_u', 'INTEGER'],
      ['med', 'INTEGER'], ['i', 'INTEGER'], ['i_u', 'BIGINT'], ['big', 'BIGINT'], ['big_u', 'UBIGINT'],
      ['num', 'DECIMAL(20,6)'], ['num_u', 'DECIMAL(10,2)'], ['num0', 'DECIMAL(12,0)'], ['wide', 'VARCHAR'],
      ['f', 'FLOAT'], ['dbl', 'DOUBLE'], ['flag', 'BOOLEAN'], ['bits', 'UBIGINT'], ['yr', 'SMALLINT'], ['d', 'DATE'],
      ['tm', 'TIME'], ['dt', 'TIMESTAMP'], ['ts', 'TIMESTAMP'], ['doc', 'JSON'], ['uid', 'UUID'], ['txt', 'VARCHAR'],
      ['vc', 'VARCHAR'], ['ch', 'VARCHAR'], ['en', 'VARCHAR'], ['st', 'VARCHAR'], ['bin', 'BLOB'], ['blb', 'BLOB'], ['fixed', 'BLOB'],
    ].map(([name, type]) => ({ name, type }));
    assert.deepEqual(out.schema, expectedSchema);
    assert.deepEqual(await parquetSchema(file), expectedSchema);
    assert.equal(out.rows, 4);
    assert.equal(out.statement, `SELECT * FROM \`${types}\``);

    const got = await readParquet(
      file,
      `id, tiny, tiny_u, small, small_u, med, i, i_u::VARCHAR AS i_u, big::VARCHAR AS big, big_u::VARCHAR AS big_u,
       num::VARCHAR AS num, num_u::VARCHAR AS num_u, num0::VARCHAR AS num0, wide, f, dbl, flag, bits::VARCHAR AS bits, yr,
       d::VARCHAR AS d, tm::VARCHAR AS tm, dt::VARCHAR AS dt, ts::VARCHAR AS ts, doc::VARCHAR AS doc, uid::VARCHAR AS uid,
       txt, vc, ch, en, st, hex(bin) AS bin, hex(blb) AS blb, hex(fixed) AS fixed`,
      'ORDER BY id',
    );
    const nulls = Object.fromEntries(expectedSchema.map((c) => [c.name, null]));
    assert.deepEqual(got, [
      {
        id: 1, tiny: 127, tiny_u: 255, small: 32767, small_u: 65535, med: 8388607, i: 2147483647, i_u: '4294967295',
        big: '9007199254740993', big_u: '18446744073709551615', num: '12345678901234.123456', num_u: '99999999.99',
        num0: '999999999999', wide: '1234567890123456789012345678901234567890.0123456789', f: 1.5, dbl: 0.1, flag: true,
        bits: '682', yr: 2024, d: '2024-02-29', tm: '23:59:59.999999', dt: '2024-01-02 03:04:05.123456',
        ts: '2024-03-10 03:00:00.123456', doc: NESTED_JSON, uid: UUID, txt: TEXT, vc: 'v', ch: 'ab', en: 'b', st: 'x,y',
        bin: '00FF00', blb: '000102', fixed: '00010000',
      },
      {
        id: 2, tiny: -128, tiny_u: 0, small: -32768, small_u: 0, med: -8388608, i: -2147483648, i_u: '0',
        big: '-9223372036854775808', big_u: '0', num: '-99999999999999.999999', num_u: '0.00', num0: '-999999999999',
        wide: '-1234567890123456789012345678901234567890.0123456789', f: -2.25, dbl: -1.7976931348623157e308, flag: false,
        bits: '0', yr: 1901, d: '1000-01-01', tm: '00:00:00', dt: '1000-01-01 00:00:00', ts: '1970-01-01 00:00:01',
        doc: '[]', uid: '00000000-0000-0000-0000-000000000000', txt: '', vc: '', ch: '', en: 'a', st: '',
        bin: '', blb: '00', fixed: '00000000',
      },
      { ...nulls, id: 3 },
      { ...nulls, id: 4, flag: true },
    ]);
  });

  test('fingerprint: same data same hash, a changed row a different one', async () => {
    const spec: DbSourceSpec = { kind: 'mysql', dsn: MYSQL_DSN, query: `SELECT * FROM ${types} ORDER BY id`, batchSize: 100 };
    const a = await dbToParquet(spec, target(), () => {});
    const b = await dbToParquet({ ...spec, batchSize: 1 }, target(), () => {});
    assert.equal(a.fingerprint, b.fingerprint);
    await admin.exec(`UPDATE ${types} SET txt = 'changed' WHERE id = 1`);
    try {
      assert.notEqual((await dbToParquet(spec, target(), () => {})).fingerprint, a.fingerprint);
    } finally {
      await admin.exec(`UPDATE ${types} SET txt = ${mysqlString(TEXT)} WHERE id = 1`);
    }
    assert.equal((await dbToParquet(spec, target(), () => {})).fingerprint, a.fingerprint);
  });

  test('a value that fails to convert after some batches stops the stream and leaves no file', async () => {
    // MySQL TIME spans ±838 hours; DuckDB TIME is a time of day.
    const file = target();
    const query = "SELECT seq, IF(seq = 700, CAST('838:59:59' AS TIME), CAST('01:00:00' AS TIME)) AS t FROM seq_1_to_5000";
    await assert.rejects(
      dbToParquet({ kind: 'mysql', dsn: MYSQL_DSN, query, batchSize: 100 }, file, () => {}),
      (err: Error) => err instanceof BadRequestError && err.message === 'column "t": value "838:59:59" cannot be stored as TIME',
    );
    assert.deepEqual((await fs.readdir(workDir)).filter((f) => f.includes(path.basename(file))), []);
  });

  sharedBehaviour('mysql', MYSQL_DSN, mysqlAdmin, (t) => `\`${t}\``);
});

/** Behaviour that is the same for both kinds; the SQL used here is valid on both servers. */
function sharedBehaviour(kind: DbSourceSpec['kind'], dsn: string, connect: () => Promise<Admin>, quote: (t: string) => string): void {
  const events = `lh_events_${suffix}`;
  const bigIds = `lh_bigids_${suffix}`;
  let admin: Admin;
  const host = kind === 'postgres' ? '127.0.0.1:5432' : '127.0.0.1:3306';
  const withPassword = dsn.replace(/:\/\/(\w+)@/, `://$1:${PASSWORD}@`);

  const ids = async (out: DbIngestOutput, file: string): Promise<number[]> => {
    const rows = await readParquet(file, 'id');
    assert.equal(rows.length, out.rows);
    return rows.map((r) => Number(r['id']));
  };

  before(async () => {
    admin = await connect();
    await admin.exec(`CREATE TABLE ${events} (id BIGINT PRIMARY KEY, grp INT NOT NULL, note VARCHAR(40))`);
    const values = Array.from({ length: 25 }, (_, k) => `(${k + 1}, ${(k + 1) % 3}, 'note ${k + 1}')`).join(', ');
    await admin.exec(`INSERT INTO ${events} (id, grp, note) VALUES ${values}`);
    await admin.exec(`CREATE TABLE ${bigIds} (id BIGINT PRIMARY KEY)`);
    await admin.exec(`INSERT INTO ${bigIds} (id) VALUES (9007199254740992), (9007199254740993), (9007199254740994)`);
  });
  after(async () => {
    await admin.exec(`DROP TABLE IF EXISTS ${events}`);
    await admin.exec(`DROP TABLE IF EXISTS ${bigIds}`);
    await admin.close();
  });

  test('incremental: a first run takes every row, the next only the rows added since', async () => {
    const spec: DbSourceSpec = { kind, dsn, table: events, batchSize: 7, incremental: { column: 'id' } };
    const firstFile = target();
    const first = await dbToParquet(spec, firstFile, () => {});
    assert.equal(first.rows, 25);
    assert.equal(first.highWaterMark, 25);
    assert.deepEqual(await ids(first, firstFile), Array.from({ length: 25 }, (_, k) => k + 1), 'ordered by the column');
    assert.equal(first.statement, `SELECT * FROM ${quote(events)} WHERE ${quote('id')} IS NOT NULL ORDER BY ${quote('id')}`);

    await admin.exec(`INSERT INTO ${events} (id, grp, note) VALUES (26, 1, 'late'), (27, 2, 'later'), (28, 0, 'latest')`);
    const secondFile = target();
    const second = await dbToParquet({ ...spec, incremental: { column: 'id', since: first.highWaterMark } }, secondFile, () => {});
    assert.deepEqual(await ids(second, secondFile), [26, 27, 28]);
    assert.equal(second.highWaterMark, 28);
    // the table's random suffix may hold "25" itself
    assert.doesNotMatch(second.statement.replaceAll(events, '<table>'), /25/, 'since is bound, not in the SQL');

    // Nothing new: still a valid Parquet file with the columns, and the mark stays.
    const emptyFile = target();
    const empty = await dbToParquet({ ...spec, incremental: { column: 'id', since: 28 } }, emptyFile, () => {});
    assert.equal(empty.rows, 0);
    assert.equal(empty.highWaterMark, 28);
    assert.deepEqual((await parquetSchema(emptyFile)).map((c) => c.name), ['id', 'grp', 'note']);
    assert.deepEqual(await readParquet(emptyFile), []);
  });

  test('incremental on a query source wraps it as a subquery', async () => {
    const file = target();
    const out = await dbToParquet(
      { kind, dsn, query: `SELECT id, note FROM ${events} WHERE grp = 1 AND id <= 25 -- trailing comment;`, batchSize: 2, incremental: { column: 'id', since: '10' } },
      file,
      () => {},
    );
    assert.deepEqual(await ids(out, file), [13, 16, 19, 22, 25]);
    assert.equal(out.highWaterMark, 25);
  });

  test('incremental since beyond 2^53 is compared exactly', async () => {
    const file = target();
    const out = await dbToParquet({ kind, dsn, table: bigIds, batchSize: 10, incremental: { column: 'id', since: '9007199254740993' } }, file, () => {});
    assert.deepEqual((await readParquet(file, 'id::VARCHAR AS id')).map((r) => r['id']), ['9007199254740994']);
    assert.equal(out.highWaterMark, '9007199254740994', 'an unsafe integer comes back as a string');
  });

  test('incremental since on a decimal is compared as a decimal, not a double', async () => {
    // The two values are equal as doubles; MySQL compares a string with a DECIMAL as doubles.
    const query = 'SELECT 12345678901234.1234567890 AS v UNION ALL SELECT 12345678901234.1234567892';
    const file = target();
    const out = await dbToParquet({ kind, dsn, query, batchSize: 10, incremental: { column: 'v', since: '12345678901234.1234567891' } }, file, () => {});
    assert.deepEqual((await readParquet(file, 'v::VARCHAR AS v')).map((r) => r['v']), ['12345678901234.1234567892']);
    assert.equal(out.highWaterMark, '12345678901234.1234567892');
  });

  test('a query source with a WHERE, read in batches smaller than the result', async () => {
    const file = target();
    const { progress, calls } = recorder();
    const out = await dbToParquet({ kind, dsn, query: `SELECT id, grp, note FROM ${events} WHERE grp = 2 AND id <= 25`, batchSize: 3 }, file, progress);
    const expected = Array.from({ length: 25 }, (_, k) => k + 1).filter((id) => id % 3 === 2);
    assert.equal(out.rows, expected.length);
    assert.deepEqual((await ids(out, file)).sort((a, b) => a - b), expected);
    assert.deepEqual(await readParquet(file, 'DISTINCT grp'), [{ grp: 2 }]);
    assert.ok(calls.some(([f, d]) => f === 0.9 && d?.['rows'] === expected.length));
  });

  test('many rows stream through small batches', async () => {
    const file = target();
    const n = 20_000;
    const series = kind === 'postgres' ? `SELECT g AS id, md5(g::text) AS h FROM generate_series(1, ${n}) g` : `SELECT seq AS id, md5(seq) AS h FROM seq_1_to_${n}`;
    const out = await dbToParquet({ kind, dsn, query: series, batchSize: 500 }, file, () => {});
    assert.equal(out.rows, n);
    assert.deepEqual(await readParquet(file, 'count(*)::INTEGER AS n, count(DISTINCT id)::INTEGER AS d, min(id)::INTEGER AS lo, max(id)::INTEGER AS hi'), [
      { n, d: n, lo: 1, hi: n },
    ]);
  });

  test('an unknown table is a clear 400 naming the source, and leaves no file behind', async () => {
    const file = target();
    await assert.rejects(dbToParquet({ kind, dsn, table: `no_such_table_${suffix}`, batchSize: 10 }, file, () => {}), (err: Error) => {
      assert.ok(err instanceof BadRequestError, `${err.name}: ${err.message}`);
      assert.ok(err.message.startsWith(`${kind} source at ${host}: `), err.message);
      assert.match(err.message, new RegExp(`no_such_table_${suffix}`));
      return true;
    });
    assert.deepEqual((await fs.readdir(workDir)).filter((f) => f.includes(path.basename(file))), []);
  });

  test('a table name that is not an identifier is refused before connecting', async () => {
    await assert.rejects(dbToParquet({ kind, dsn, table: `${events}; DROP TABLE ${events}`, batchSize: 10 }, target(), () => {}), BadRequestError);
    await assert.rejects(dbToParquet({ kind, dsn, table: events, query: 'SELECT 1', batchSize: 10 }, target(), () => {}), BadRequestError);
  });

  test('a query source cannot write', async () => {
    const count = `SELECT count(*) FROM ${events}`;
    const rowsBefore = await admin.column(count);
    await assert.rejects(dbToParquet({ kind, dsn, query: `DELETE FROM ${events}`, batchSize: 10 }, target(), () => {}), BadRequestError);
    assert.deepEqual(await admin.column(count), rowsBefore);
    assert.notDeepEqual(rowsBefore, ['0']);
  });

  test('failed logins and refused connections never show the password', async () => {
    const badLogin = kind === 'postgres' ? withPassword.replace(/\/test$/, '/nosuchdb') : withPassword;
    const refused = withPassword.replace(/:\d+\//, ':1/');
    for (const [bad, cls, where] of [
      [badLogin, BadRequestError, host],
      [refused, UnavailableError, '127.0.0.1:1'],
    ] as const) {
      assert.ok(bad.includes(PASSWORD));
      await assert.rejects(dbToParquet({ kind, dsn: bad, table: events, batchSize: 10 }, target(), () => {}), (err: Error) => {
        assert.ok(err instanceof cls, `${err.name}: ${err.message}`);
        assert.ok(err.message.startsWith(`${kind} source at ${where}: `), err.message);
        assert.ok(!err.message.includes(PASSWORD) && !String(err.stack).includes(PASSWORD), err.message);
        return true;
      });
    }
  });
}
