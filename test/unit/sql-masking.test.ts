/**
 * Reader masking in the query engine: readers see masked (PII) columns as '***' however they
 * write the query, cannot reach the unmasked data through table functions, other schemas or
 * system catalogs, and writers see the data as it is. Also what `references()` reports for the
 * audit log. Parquet fixtures are written by a separate, unsandboxed DuckDB.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DuckDBInstance } from '@duckdb/node-api';
import { DomainError } from '../../shared/errors.ts';
import { QueryEngine, type DatasetView, type QueryOptions } from '../../shared/sql/query-engine.ts';

const READER: QueryOptions = { maxRows: 1000, timeoutMs: 10_000, role: 'reader' };
const WRITER: QueryOptions = { maxRows: 1000, timeoutMs: 10_000, role: 'writer' };
const REAL_VALUES = /example\.com|4111111111111111|\+44|\+33/;

const q = (s: string): string => `'${s.replace(/'/g, "''")}'`;

let root: string;
let dataDir: string;
let customersFile: string;
let ordersFile: string;
let engine: QueryEngine;

function views(masked: { customers?: string[]; orders?: string[] } = {}): DatasetView[] {
  return [
    { name: 'customers', version: 1, files: [customersFile], maskedColumns: masked.customers ?? ['Email', 'card'] },
    { name: 'orders', version: 1, files: [ordersFile], maskedColumns: masked.orders ?? ['contact_phone'] },
  ];
}

async function writeFixtures(): Promise<void> {
  const instance = await DuckDBInstance.create(':memory:', { autoinstall_known_extensions: 'false', autoload_known_extensions: 'false' });
  const db = await instance.connect();
  try {
    await db.run(`COPY (SELECT * FROM (VALUES
        (1::BIGINT, 'Alice Smith', 'alice@example.com', 'London', 4111111111111111::BIGINT),
        (2::BIGINT, 'Bob Jones', 'bob@example.com', 'Paris', 5500000000000004::BIGINT),
        (3::BIGINT, 'Carol White', 'carol@example.com', 'London', 340000000000009::BIGINT)
      ) t(id, name, "Email", city, card)) TO ${q(customersFile)} (FORMAT parquet)`);
    await db.run(`COPY (SELECT * FROM (VALUES
        (10::BIGINT, 1::BIGINT, 5.00::DECIMAL(10,2), '+44 20 7946 0001'),
        (11::BIGINT, 1::BIGINT, 7.50::DECIMAL(10,2), '+44 20 7946 0002'),
        (12::BIGINT, 2::BIGINT, 1.25::DECIMAL(10,2), '+33 1 23 45 67 89')
      ) t(order_id, customer_id, amount, contact_phone)) TO ${q(ordersFile)} (FORMAT parquet)`);
  } finally {
    db.closeSync();
    instance.closeSync();
  }
}

async function refused(sql: string, pattern: RegExp): Promise<void> {
  await assert.rejects(engine.query(sql, READER), (err: unknown) => {
    assert.ok(err instanceof DomainError, `expected a DomainError, got ${String(err)}`);
    assert.equal(err.status, 400, err.message);
    assert.match(err.message, pattern);
    assert.doesNotMatch(err.message, REAL_VALUES, 'a refusal must not carry the values it protects');
    return true;
  });
}

before(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'sql-masking-'));
  dataDir = path.join(root, 'datasets');
  await fs.mkdir(path.join(dataDir, 'customers', 'parts'), { recursive: true });
  await fs.mkdir(path.join(dataDir, 'orders', 'parts'), { recursive: true });
  customersFile = path.join(dataDir, 'customers', 'parts', 'part-1.parquet');
  ordersFile = path.join(dataDir, 'orders', 'parts', 'part-1.parquet');
  await writeFixtures();
  engine = await QueryEngine.open({ allowedDirs: [dataDir], readerDirs: [path.join(root, 'reader')], threads: 2 });
  await engine.syncViews(views());
});

after(async () => {
  await engine?.close();
  await fs.rm(root, { recursive: true, force: true });
});

describe('a reader', () => {
  it('sees masked columns as *** in SELECT *, keeping column names and the other values', async () => {
    const result = await engine.query('SELECT * FROM customers ORDER BY id', READER);
    assert.deepEqual(result.columns.map((c) => c.name), ['id', 'name', 'Email', 'city', 'card']);
    assert.deepEqual(result.rows, [
      { id: 1, name: 'Alice Smith', Email: '***', city: 'London', card: '***' },
      { id: 2, name: 'Bob Jones', Email: '***', city: 'Paris', card: '***' },
      { id: 3, name: 'Carol White', Email: '***', city: 'London', card: '***' },
    ]);
  });

  it('sees *** in explicit selects, expressions, whole-row structs and joins', async () => {
    assert.deepEqual((await engine.query('SELECT email, upper(EMAIL) AS u, card FROM customers WHERE id = 1', READER)).rows, [{ Email: '***', u: '***', card: '***' }]);
    assert.deepEqual((await engine.query('SELECT customers FROM customers WHERE id = 2', READER)).rows, [
      { customers: { id: 2, name: 'Bob Jones', Email: '***', city: 'Paris', card: '***' } },
    ]);
    const joined = await engine.query(
      'SELECT c.name, c.email, o.contact_phone FROM customers c JOIN orders o ON o.customer_id = c.id ORDER BY o.order_id',
      READER,
    );
    assert.deepEqual(joined.rows.map((r) => [r['Email'], r['contact_phone']]), [['***', '***'], ['***', '***'], ['***', '***']]);
  });

  it('filters and groups on the masked value, never the real one', async () => {
    assert.deepEqual((await engine.query("SELECT count(*) AS n FROM customers WHERE email = 'alice@example.com'", READER)).rows, [{ n: 0 }]);
    assert.deepEqual((await engine.query("SELECT count(*) AS n FROM customers WHERE email LIKE '%@%'", READER)).rows, [{ n: 0 }]);
    assert.deepEqual((await engine.query('SELECT email, count(*) AS n FROM customers GROUP BY email', READER)).rows, [{ Email: '***', n: 3 }]);
    assert.deepEqual((await engine.query('SELECT count(DISTINCT contact_phone) AS n, max(length(contact_phone)) AS len FROM orders', READER)).rows, [{ n: 1, len: 3 }]);
    assert.deepEqual((await engine.query('SELECT city, count(*) AS n FROM customers GROUP BY ALL ORDER BY ALL', READER)).rows, [
      { city: 'London', n: 2 },
      { city: 'Paris', n: 1 },
    ]);
  });

  it('may use CTEs, subqueries, set operations, VALUES, DESCRIBE and the masked schema by name', async () => {
    const cte = await engine.query('WITH x AS (SELECT email FROM customers), y AS (SELECT * FROM x) SELECT DISTINCT * FROM y', READER);
    assert.deepEqual(cte.rows, [{ Email: '***' }]);
    const sub = await engine.query('SELECT (SELECT max(email) FROM customers) AS m, * FROM (SELECT card FROM customers LIMIT 1)', READER);
    assert.deepEqual(sub.rows, [{ m: '***', card: '***' }]);
    const correlated = await engine.query(
      'SELECT name FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id) ORDER BY name',
      READER,
    );
    assert.deepEqual(correlated.rows, [{ name: 'Alice Smith' }, { name: 'Bob Jones' }]);
    const union = await engine.query('SELECT email AS v FROM customers UNION SELECT contact_phone FROM orders UNION SELECT * FROM (VALUES (\'x\')) t(v) ORDER BY v', READER);
    assert.deepEqual(union.rows, [{ v: '***' }, { v: 'x' }]);
    const qualified = await engine.query('SELECT email FROM masked.customers LIMIT 1', READER);
    assert.deepEqual(qualified.rows, [{ Email: '***' }]);
    const described = await engine.query('DESCRIBE customers', READER);
    assert.equal(described.rows.find((r) => r['column_name'] === 'card')?.['column_type'], 'VARCHAR');
    const summary = await engine.query('SUMMARIZE customers', READER);
    assert.doesNotMatch(JSON.stringify(summary.rows), REAL_VALUES);
  });

  const tableFunction = /^Readers may only query catalog datasets by name: the table function/;
  const bypasses: [string, () => string, RegExp][] = [
    ['read_parquet on the dataset file', () => `SELECT * FROM read_parquet(${q(customersFile)})`, tableFunction],
    ['parquet_scan', () => `SELECT Email FROM parquet_scan(${q(customersFile)})`, tableFunction],
    ['read_csv', () => `SELECT * FROM read_csv(${q(ordersFile)})`, tableFunction],
    ['read_text', () => `SELECT * FROM read_text(${q(customersFile)})`, tableFunction],
    ['read_blob', () => `SELECT * FROM read_blob(${q(customersFile)})`, tableFunction],
    ['glob', () => `SELECT * FROM glob(${q(dataDir + '/*/parts/*')})`, tableFunction],
    ['query()', () => "SELECT * FROM query('SELECT * FROM main.customers')", tableFunction],
    ['query_table()', () => "SELECT * FROM query_table('main.customers')", tableFunction],
    ['a harmless-looking table function', () => 'SELECT * FROM range(3)', tableFunction],
    ['read_parquet in a CTE', () => `WITH x AS (SELECT * FROM read_parquet(${q(customersFile)})) SELECT Email FROM x`, tableFunction],
    ['read_parquet in a scalar subquery', () => `SELECT (SELECT max(Email) FROM read_parquet(${q(customersFile)})) AS m`, tableFunction],
    ['read_parquet in an IN subquery', () => `SELECT id FROM customers WHERE id IN (SELECT id FROM read_parquet(${q(customersFile)}) WHERE Email LIKE 'a%')`, tableFunction],
    ['read_parquet in a LATERAL join', () => `SELECT * FROM customers c, LATERAL (SELECT Email FROM read_parquet(${q(customersFile)}) WHERE id = c.id)`, tableFunction],
    ['read_parquet in a UNION', () => `SELECT Email FROM customers UNION ALL SELECT Email FROM read_parquet(${q(customersFile)})`, tableFunction],
    ['the file as a table name', () => `SELECT * FROM ${q(customersFile)}`, /is not a plain identifier/],
    ['the main schema', () => 'SELECT * FROM main.customers', /"main\.customers" names a schema or catalog/],
    ['the main schema in upper case', () => 'SELECT * FROM "MAIN"."CUSTOMERS"', /names a schema or catalog/],
    ['the catalog', () => 'SELECT * FROM memory.main.customers', /"memory\.main\.customers" names a schema or catalog/],
    ['the catalog as a schema', () => 'SELECT * FROM memory.customers', /names a schema or catalog/],
    ['the main schema in a subquery', () => 'SELECT * FROM customers WHERE id IN (SELECT id FROM main.customers WHERE Email IS NOT NULL)', /names a schema or catalog/],
    ['a CTE shadowing the dataset with the unmasked view', () => 'WITH customers AS (SELECT * FROM main.customers) SELECT * FROM customers', /names a schema or catalog/],
    ['a CTE named after one defined later', () => 'WITH a AS (SELECT * FROM duckdb_tables), duckdb_tables AS (SELECT 1) SELECT * FROM a', /"duckdb_tables" is not a dataset/],
    ['information_schema', () => 'SELECT * FROM information_schema.columns', /names a schema or catalog/],
    ['pg_catalog', () => 'SELECT * FROM pg_catalog.pg_tables', /names a schema or catalog/],
    ['an unqualified system view', () => 'SELECT * FROM duckdb_views', /"duckdb_views" is not a dataset/],
    ['sqlite_master', () => 'SELECT * FROM sqlite_master', /is not a dataset/],
    ['a system table function', () => 'SELECT * FROM duckdb_columns()', tableFunction],
    ['SHOW TABLES', () => 'SHOW TABLES', /SHOW/],
    ['SUMMARIZE over a file', () => `SUMMARIZE SELECT * FROM read_parquet(${q(customersFile)})`, tableFunction],
    ['DESCRIBE of the unmasked view', () => 'DESCRIBE main.customers', /names a schema or catalog/],
    // DuckDB expands a PIVOT statement into two: one to find the values, one to pivot.
    ['a PIVOT statement', () => 'PIVOT customers ON Email USING count(*)', /^Send exactly one SQL statement; this query has 2$/],
    ['EXPLAIN', () => 'EXPLAIN SELECT * FROM main.customers', /^Only read-only SELECT queries are allowed$/],
    ['COPY', () => `COPY (SELECT 1) TO ${q(path.join(dataDir, 'x.csv'))}`, /^Only read-only SELECT queries are allowed$/],
    ['SET search_path', () => "SET search_path = 'main'", /^Only read-only SELECT queries are allowed$/],
    ['two statements', () => 'SELECT 1; SELECT * FROM main.customers', /^Send exactly one SQL statement; this query has 2$/],
    ['a syntax error', () => 'SELEC 1', /^Parser Error: syntax error at or near "SELEC"$/],
  ];
  for (const [label, sql, pattern] of bypasses) {
    it(`cannot bypass masking with ${label}`, async () => {
      await refused(sql(), pattern);
    });
  }

  it('left no file behind from the refused statements', async () => {
    assert.deepEqual((await fs.readdir(dataDir)).sort(), ['customers', 'orders']);
  });
});

describe('a writer', () => {
  it('sees the real values, and may read the files directly', async () => {
    const result = await engine.query('SELECT Email, card FROM customers WHERE id = 1', WRITER);
    assert.deepEqual(result.rows, [{ Email: 'alice@example.com', card: 4111111111111111 }]);
    const direct = await engine.query(`SELECT count(*) AS n FROM read_parquet(${q(customersFile)})`, WRITER);
    assert.deepEqual(direct.rows, [{ n: 3 }]);
  });

  it('is the default when no role is given', async () => {
    const result = await engine.query('SELECT contact_phone FROM orders ORDER BY order_id LIMIT 1', { maxRows: 10, timeoutMs: 10_000 });
    assert.deepEqual(result.rows, [{ contact_phone: '+44 20 7946 0001' }]);
  });
});

describe('changing what is masked', () => {
  after(async () => {
    await engine.syncViews(views());
  });

  it('shows a column made public to readers after the next sync, and masks it again when flagged again', async () => {
    await engine.syncViews(views({ customers: ['card'] }));
    assert.deepEqual((await engine.query('SELECT Email, card FROM customers WHERE id = 1', READER)).rows, [{ Email: 'alice@example.com', card: '***' }]);
    await engine.syncViews(views());
    assert.deepEqual((await engine.query('SELECT Email, card FROM customers WHERE id = 1', READER)).rows, [{ Email: '***', card: '***' }]);
  });

  it('matches masked column names case-insensitively', async () => {
    await engine.syncViews(views({ customers: ['EMAIL', 'Card'] }));
    const result = await engine.query('SELECT * FROM customers WHERE id = 1', READER);
    assert.deepEqual(result.rows, [{ id: 1, name: 'Alice Smith', Email: '***', city: 'London', card: '***' }]);
  });

  it('fails the reader view closed when a masked column is not in the data, leaving writers their view', async () => {
    await engine.syncViews(views({ customers: ['Email', 'card', 'ssn'] }));
    await assert.rejects(engine.query('SELECT * FROM customers', READER), (err: unknown) => {
      assert.ok(err instanceof DomainError && err.status === 400);
      assert.match(err.message, /Dataset customers \(version 1\) cannot be read: masked column "ssn" is not a column of the dataset/);
      return true;
    });
    assert.deepEqual((await engine.query('SELECT count(*) AS n FROM customers', WRITER)).rows, [{ n: 3 }]);
  });
});

describe('references', () => {
  it('names the datasets and columns of a join, qualified and unqualified', async () => {
    const refs = await engine.references('SELECT c.email, amount FROM customers c JOIN orders o ON o.customer_id = c.id WHERE city = \'London\'');
    assert.deepEqual(refs, {
      datasets: ['customers', 'orders'],
      columns: [
        { dataset: 'customers', column: 'Email' },
        { dataset: 'customers', column: 'city' },
        { dataset: 'customers', column: 'id' },
        { dataset: 'orders', column: 'amount' },
        { dataset: 'orders', column: 'customer_id' },
      ],
    });
  });

  it('expands * to the columns of the datasets in its FROM, minus EXCLUDE and REPLACE', async () => {
    const all = await engine.references('SELECT * FROM customers');
    assert.deepEqual(all.columns.map((c) => c.column), ['Email', 'card', 'city', 'id', 'name']);
    const some = await engine.references('SELECT * EXCLUDE (card) REPLACE (1 AS name) FROM customers');
    assert.deepEqual(some.columns.map((c) => c.column), ['Email', 'city', 'id']);
    const qualified = await engine.references('SELECT o.* FROM customers c JOIN orders o USING (id)');
    assert.deepEqual(qualified.columns, [
      { dataset: 'customers', column: 'id' },
      { dataset: 'orders', column: 'amount' },
      { dataset: 'orders', column: 'contact_phone' },
      { dataset: 'orders', column: 'customer_id' },
      { dataset: 'orders', column: 'order_id' },
    ]);
  });

  it('counts what a CTE or subquery selects, not the * over it', async () => {
    const refs = await engine.references('WITH x AS (SELECT email FROM customers) SELECT * FROM x, (SELECT amount FROM orders) AS y');
    assert.deepEqual(refs, {
      datasets: ['customers', 'orders'],
      columns: [
        { dataset: 'customers', column: 'Email' },
        { dataset: 'orders', column: 'amount' },
      ],
    });
  });

  it('resolves correlated columns to the outer dataset, and count(*) to no column', async () => {
    const refs = await engine.references('SELECT count(*) FROM customers c WHERE EXISTS (SELECT 1 FROM orders WHERE customer_id = c.id AND card > 0)');
    assert.deepEqual(refs.columns, [
      { dataset: 'customers', column: 'card' },
      { dataset: 'customers', column: 'id' },
      { dataset: 'orders', column: 'customer_id' },
    ]);
  });

  it('attributes a table function reading a dataset file to that dataset', async () => {
    const refs = await engine.references(`SELECT count(*) FROM read_parquet(${q(path.join(dataDir, 'orders', 'parts', '*.parquet'))})`);
    assert.deepEqual(refs.datasets, ['orders']);
    assert.equal(refs.columns.length, 4);
  });

  it('references nothing when the SQL is not one SELECT', async () => {
    assert.deepEqual(await engine.references('SELEC 1'), { datasets: [], columns: [] });
    assert.deepEqual(await engine.references('DROP TABLE customers'), { datasets: [], columns: [] });
  });
});
