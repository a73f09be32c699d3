/**
 * The query engine behind POST /query: views over Parquet, the sandbox (no files outside the data
 * root, no writes, no settings, no extensions), row and time limits, and JSON-safe values.
 * Parquet fixtures are written by a separate, unsandboxed DuckDB.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DuckDBInstance } from '@duckdb/node-api';
import { BadRequestError, DomainError } from '../../shared/errors.ts';
import { QueryEngine, type QueryLimits } from '../../shared/sql/query-engine.ts';

const LIMITS: QueryLimits = { maxRows: 1000, timeoutMs: 10_000 };
/** 10^12 rows: far longer than any test runs unless it is interrupted. */
const ENDLESS = 'SELECT sum(a.range * b.range) AS s FROM range(1000000) a, range(1000000) b';

const q = (s: string): string => `'${s.replace(/'/g, "''")}'`;

let root: string;
let dataDir: string;
let outsideFile: string;
let part1: string;
let part2: string;
let engine: QueryEngine;

async function writeFixtures(): Promise<void> {
  const instance = await DuckDBInstance.create(':memory:', { autoinstall_known_extensions: 'false', autoload_known_extensions: 'false' });
  const db = await instance.connect();
  try {
    // amounts sum to 10 * (0 + ... + 99) + 1000 * 0.25 = 49750
    await db.run(`COPY (SELECT i::BIGINT AS id, (i % 100 + 0.25)::DECIMAL(10,2) AS amount, DATE '2024-01-01' + (i % 28)::INTEGER AS day
                        FROM range(1000) t(i)) TO ${q(part1)} (FORMAT parquet)`);
    // a later part adds a column, which union_by_name must pick up
    await db.run(`COPY (SELECT (1000 + i)::BIGINT AS id, 1.00::DECIMAL(10,2) AS amount, DATE '2024-02-01' AS day, 'late' AS note
                        FROM range(500) t(i)) TO ${q(part2)} (FORMAT parquet)`);
  } finally {
    db.closeSync();
    instance.closeSync();
  }
}

async function rejectsWith(promise: Promise<unknown>, status: number, pattern: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof DomainError, `expected a DomainError, got ${String(err)}`);
    assert.equal(err.status, status, err.message);
    assert.match(err.message, pattern);
    assert.doesNotMatch(err.message, /\n/, 'one line of DuckDB text, no excerpt or stack frames');
    return true;
  });
}

before(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'sql-sandbox-'));
  dataDir = path.join(root, 'datasets');
  await fs.mkdir(dataDir);
  outsideFile = path.join(root, 'outside.txt');
  await fs.writeFile(outsideFile, 'secret outside the data root\n');
  part1 = path.join(dataDir, 'sales-1.parquet');
  part2 = path.join(dataDir, 'sales-2.parquet');
  await writeFixtures();
  engine = await QueryEngine.open({ allowedDirs: [dataDir], readerDirs: [path.join(root, 'reader')], threads: 2, memoryLimit: '512MB' });
});

after(async () => {
  await engine?.close();
  await fs.rm(root, { recursive: true, force: true });
});

describe('views', () => {
  it('answers count and sum over a dataset view with DuckDB types and plain JSON numbers', async () => {
    await engine.syncViews([{ name: 'sales', version: 1, files: [part1] }]);
    const result = await engine.query('SELECT count(*) AS n, sum(amount) AS total, min(day) AS first_day FROM sales', LIMITS);
    assert.deepEqual(result.columns, [
      { name: 'n', type: 'BIGINT' },
      { name: 'total', type: 'DECIMAL(38,2)' },
      { name: 'first_day', type: 'DATE' },
    ]);
    assert.deepEqual(result.rows, [{ n: 1000, total: 49750, first_day: '2024-01-01' }]);
    assert.equal(typeof result.rows[0]?.n, 'number');
    assert.equal(result.row_count, 1);
    assert.equal(result.truncated, false);
  });

  it('serves concurrent queries, each on its own connection, from views created on the instance', async () => {
    await engine.syncViews([{ name: 'sales', version: 1, files: [part1] }]);
    const [a, b] = await Promise.all([
      engine.query('SELECT count(*) AS n FROM sales WHERE id < 10', LIMITS),
      engine.query('SELECT max(id) AS m FROM sales', LIMITS),
    ]);
    assert.deepEqual(a.rows, [{ n: 10 }]);
    assert.deepEqual(b.rows, [{ m: 999 }]);
  });

  it('picks up a new version with a new file list, unioning columns by name', async () => {
    await engine.syncViews([{ name: 'sales', version: 1, files: [part1] }]);
    await engine.syncViews([{ name: 'sales', version: 2, files: [part1, part2] }]);
    const result = await engine.query("SELECT count(*) AS n, sum(amount) AS total, count(*) FILTER (note = 'late') AS late FROM sales", LIMITS);
    assert.deepEqual(result.rows, [{ n: 1500, total: 50250, late: 500 }]);
  });

  it('drops views of datasets no longer listed and gives none to a dataset without files', async () => {
    await engine.syncViews([
      { name: 'sales', version: 2, files: [part1, part2] },
      { name: 'other', version: 1, files: [part1] },
    ]);
    assert.deepEqual((await engine.query('SELECT count(*) AS n FROM other', LIMITS)).rows, [{ n: 1000 }]);
    await engine.syncViews([
      { name: 'sales', version: 2, files: [part1, part2] },
      { name: 'empty', version: 1, files: [] },
    ]);
    await rejectsWith(engine.query('SELECT * FROM other', LIMITS), 400, /dataset "other" does not exist/);
    await rejectsWith(engine.query('SELECT * FROM empty', LIMITS), 400, /dataset "empty" does not exist/);
    assert.deepEqual((await engine.query('SELECT count(*) AS n FROM sales', LIMITS)).rows, [{ n: 1500 }]);
  });

  it('turns a dataset whose files cannot be read into a view that says so, without hurting the others', async () => {
    const missing = path.join(dataDir, 'gone.parquet');
    await engine.syncViews([
      { name: 'sales', version: 2, files: [part1, part2] },
      { name: 'broken', version: 7, files: [missing] },
    ]);
    await rejectsWith(engine.query('SELECT count(*) FROM broken', LIMITS), 400, /Dataset broken \(version 7\) cannot be read: IO Error/);
    // readers are told why, not where the files live
    await assert.rejects(engine.query('SELECT count(*) FROM broken', { ...LIMITS, role: 'reader' }), (err: Error) => {
      assert.match(err.message, /Dataset broken \(version 7\) cannot be read: IO Error/);
      assert.ok(!err.message.includes(root), err.message);
      return true;
    });
    assert.deepEqual((await engine.query('SELECT count(*) AS n FROM sales', LIMITS)).rows, [{ n: 1500 }]);
    // once the file exists, the next sync retries and the view works
    await fs.copyFile(part1, missing);
    await engine.syncViews([{ name: 'broken', version: 7, files: [missing] }]);
    assert.deepEqual((await engine.query('SELECT count(*) AS n FROM broken', LIMITS)).rows, [{ n: 1000 }]);
    await fs.rm(missing);
  });

  it('drops the view of an unreadable dataset once it is no longer listed', async () => {
    await engine.syncViews([{ name: 'ghost', version: 1, files: [path.join(dataDir, 'never.parquet')] }]);
    await rejectsWith(engine.query('SELECT * FROM ghost', LIMITS), 400, /Dataset ghost \(version 1\) cannot be read/);
    await engine.syncViews([]);
    await rejectsWith(engine.query('SELECT * FROM ghost', LIMITS), 400, /dataset "ghost" does not exist/);
  });

  it('refuses invalid view names and relative file paths', async () => {
    await assert.rejects(engine.syncViews([{ name: 'Bad-Name', version: 1, files: [part1] }]), /Invalid dataset name/);
    await assert.rejects(engine.syncViews([{ name: 'rel', version: 1, files: ['datasets/x.parquet'] }]), /relative file path/);
  });
});

describe('sandbox', () => {
  it('still reads Parquet inside the data root directly', async () => {
    const result = await engine.query(`SELECT count(*) AS n FROM read_parquet(${q(part1)})`, LIMITS);
    assert.deepEqual(result.rows, [{ n: 1000 }]);
  });

  it('refuses to read files outside the data root or on the network', async () => {
    const outside = /^The query tried to read outside the data root: Permission Error: Cannot access file/;
    await rejectsWith(engine.query("SELECT * FROM read_csv('/etc/passwd')", LIMITS), 400, outside);
    await rejectsWith(engine.query(`SELECT * FROM read_text(${q(outsideFile)})`, LIMITS), 400, outside);
    await rejectsWith(engine.query(`SELECT * FROM read_text(${q(path.join(dataDir, '..', 'outside.txt'))})`, LIMITS), 400, outside);
    await rejectsWith(engine.query("SELECT * FROM glob('/etc/*')", LIMITS), 400, outside);
    await rejectsWith(engine.query("SELECT * FROM read_csv('https://example.com/data.csv')", LIMITS), 400, outside);
  });

  const notSelect = /^Only read-only SELECT queries are allowed; this is a \w+ statement$/;
  const refused: [string, (dir: string) => string, RegExp][] = [
    ['COPY ... TO', (dir) => `COPY (SELECT 1) TO ${q(path.join(dir, 'copied.csv'))}`, notSelect],
    ['CREATE TABLE', () => 'CREATE TABLE t AS SELECT 1 AS x', notSelect],
    ['ATTACH', (dir) => `ATTACH ${q(path.join(dir, 'attached.duckdb'))} AS other`, notSelect],
    ['SET', () => 'SET enable_external_access = true', notSelect],
    ['INSTALL', () => 'INSTALL httpfs', notSelect],
    ['LOAD', () => 'LOAD httpfs', notSelect],
    ['PRAGMA', () => "PRAGMA memory_limit = '64GB'", notSelect],
    ['EXPLAIN ANALYZE, which executes its statement', (dir) => `EXPLAIN ANALYZE COPY (SELECT 1) TO ${q(path.join(dir, 'explained.csv'))}`, notSelect],
    ['two statements', () => 'select 1; select 2', /^Send exactly one SQL statement; this query has 2$/],
    ['no statement', () => ' ; ', /^The query contains no SQL statement/],
    ['a syntax error', () => 'SELEC 1', /^Parser Error: syntax error at or near "SELEC"$/],
  ];
  for (const [label, sql, pattern] of refused) {
    it(`refuses ${label}`, async () => {
      await rejectsWith(engine.query(sql(dataDir), LIMITS), 400, pattern);
    });
  }

  it('left no trace of the refused statements', async () => {
    assert.deepEqual(await fs.readdir(dataDir).then((names) => names.sort()), ['sales-1.parquet', 'sales-2.parquet']);
    await rejectsWith(engine.query('SELECT * FROM t', LIMITS), 400, /dataset "t" does not exist/);
    const settings = await engine.query(
      "SELECT current_setting('enable_external_access') AS external, current_setting('lock_configuration') AS locked, current_setting('autoload_known_extensions') AS autoload",
      LIMITS,
    );
    assert.deepEqual(settings.rows, [{ external: false, locked: true, autoload: false }]);
  });
});

/** Turns a broken cancellation into a failure instead of a hang. */
const BOUNDED = { timeout: 20_000 };

describe('limits', () => {
  it('stops after maxRows and reports truncation', async () => {
    const result = await engine.query('SELECT range AS i FROM range(100000)', { ...LIMITS, maxRows: 5 });
    assert.deepEqual(result.rows, [{ i: 0 }, { i: 1 }, { i: 2 }, { i: 3 }, { i: 4 }]);
    assert.equal(result.row_count, 5);
    assert.equal(result.truncated, true);
  });

  it('is not truncated when the rows fit exactly, and is when one more row sits in the next chunk', async () => {
    const exact = await engine.query('SELECT range AS i FROM range(2048)', { ...LIMITS, maxRows: 2048 });
    assert.equal(exact.row_count, 2048);
    assert.equal(exact.truncated, false);
    const oneMore = await engine.query('SELECT range AS i FROM range(2049)', { ...LIMITS, maxRows: 2048 });
    assert.equal(oneMore.row_count, 2048);
    assert.equal(oneMore.truncated, true);
  });

  it('cancels a slow query at its time limit with a 408, and keeps serving', BOUNDED, async () => {
    const started = Date.now();
    await assert.rejects(engine.query(ENDLESS, { ...LIMITS, timeoutMs: 300 }), (err: unknown) => {
      assert.ok(err instanceof DomainError);
      assert.equal(err.status, 408);
      assert.equal(err.title, 'Query Timeout');
      assert.match(err.message, /300 ms time limit/);
      return true;
    });
    assert.ok(Date.now() - started < 5000, `took ${Date.now() - started} ms`);
    assert.deepEqual((await engine.query('SELECT 1 AS one', LIMITS)).rows, [{ one: 1 }]);
  });

  it('times out a query that waited too long for a free slot', BOUNDED, async () => {
    const single = await QueryEngine.open({ allowedDirs: [dataDir], readerDirs: [path.join(root, 'reader')], maxConcurrentQueries: 1 });
    try {
      const slow = single.query(ENDLESS, { ...LIMITS, timeoutMs: 2000 });
      await assert.rejects(single.query('SELECT 1', { ...LIMITS, timeoutMs: 100 }), (err: unknown) => err instanceof DomainError && err.status === 408);
      await assert.rejects(slow, (err: unknown) => err instanceof DomainError && err.status === 408);
    } finally {
      await single.close();
    }
  });

  it('close() cancels running queries instead of waiting for them', BOUNDED, async () => {
    const closing = await QueryEngine.open({ allowedDirs: [dataDir], readerDirs: [path.join(root, 'reader')] });
    const started = Date.now();
    const slow = closing.query(ENDLESS, { ...LIMITS, timeoutMs: 60_000 });
    // a query that completes after the slow one was dispatched: the slow one is now inside DuckDB
    await closing.query('SELECT 1', LIMITS);
    await closing.close();
    await assert.rejects(slow, (err: unknown) => err instanceof DomainError && err.status === 503);
    assert.ok(Date.now() - started < 5000, `took ${Date.now() - started} ms`);
    await rejectsWith(closing.query('SELECT 1', LIMITS), 503, /closed/);
  });
});

describe('JSON values', () => {
  it('converts DuckDB values to plain JSON-able values', async () => {
    const result = await engine.query(
      `SELECT 12.50::DECIMAL(10,2) AS dec_small,
              123456789012345678901234.5::DECIMAL(38,1) AS dec_big,
              DATE '2024-02-29' AS d,
              DATE '0044-03-15 (BC)' AS d_bc,
              'infinity'::DATE AS d_inf,
              TIMESTAMP '2024-02-29 13:45:01.123456' AS ts,
              TIMESTAMP '2024-02-29 13:45:01' AS ts_whole,
              TIMESTAMPTZ '2024-01-02 03:04:05.5+02' AS ts_tz,
              '2024-01-02 03:04:05.123456789'::TIMESTAMP_NS AS ts_ns,
              TIME '03:04:05.25' AS t,
              [1, 2, NULL] AS list,
              {'a': 1, 'b': [DATE '2024-01-01'], 'c': 9007199254740993::BIGINT} AS struct,
              MAP {'k': 1.5::DECIMAL(3,1)} AS map,
              '\\x00\\xFFab'::BLOB AS blob,
              170141183460469231731687303715884105727::HUGEINT AS huge,
              42::HUGEINT AS huge_small,
              9007199254740991::BIGINT AS big_safe,
              -9007199254740993::BIGINT AS big_unsafe,
              'nan'::DOUBLE AS nan,
              NULL::INTEGER AS nothing,
              'x' AS text`,
      LIMITS,
    );
    const [row] = result.rows;
    assert.deepEqual(row, {
      dec_small: 12.5,
      dec_big: '123456789012345678901234.5',
      d: '2024-02-29',
      d_bc: '-000043-03-15',
      d_inf: 'infinity',
      ts: '2024-02-29T13:45:01.123456',
      ts_whole: '2024-02-29T13:45:01',
      ts_tz: '2024-01-02T01:04:05.5Z',
      ts_ns: '2024-01-02T03:04:05.123456789',
      t: '03:04:05.25',
      list: [1, 2, null],
      struct: { a: 1, b: ['2024-01-01'], c: '9007199254740993' },
      map: [{ key: 'k', value: 1.5 }],
      blob: Buffer.from([0x00, 0xff, 0x61, 0x62]).toString('base64'),
      huge: '170141183460469231731687303715884105727',
      huge_small: 42,
      big_safe: 9007199254740991,
      big_unsafe: '-9007199254740993',
      nan: 'NaN',
      nothing: null,
      text: 'x',
    });
    // nothing bigint or class-shaped survives: a JSON round trip is lossless
    assert.deepEqual(JSON.parse(JSON.stringify(result.rows)), result.rows);
    const types = Object.fromEntries(result.columns.map((c) => [c.name, c.type]));
    assert.equal(types.dec_small, 'DECIMAL(10,2)');
    assert.equal(types.huge, 'HUGEINT');
    assert.equal(types.blob, 'BLOB');
    assert.equal(types.list, 'INTEGER[]');
  });

  it('keeps DECIMAL as a string when a number would not round-trip', async () => {
    const result = await engine.query('SELECT 0.10::DECIMAL(4,2) AS tenth, 1234567890.123456789::DECIMAL(19,9) AS precise', LIMITS);
    assert.deepEqual(result.rows, [{ tenth: 0.1, precise: '1234567890.123456789' }]);
  });

  it('refuses bad limits as programming errors, not user errors', async () => {
    await assert.rejects(engine.query('SELECT 1', { maxRows: -1, timeoutMs: 1000 }), (err: unknown) => !(err instanceof BadRequestError));
  });
});
