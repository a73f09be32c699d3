/**
 * SQL errors in our words: a query naming a missing dataset is a 400 that says the dataset does
 * not exist and suggests near names from OUR catalog — never DuckDB's guesses among its internal
 * tables (`Did you mean "pg_depend"?`) — for writers (DuckDB's binder) and readers (the guard).
 * Column mistakes keep DuckDB's candidates, which are the columns of the query's own datasets.
 * A real sandboxed engine answers; the Parquet fixtures are written by a separate DuckDB.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DomainError } from '../../shared/errors.ts';
import { editDistance, nearNames } from '../../shared/catalog/near-names.ts';
import { QueryEngine, translateError, type QueryOptions } from '../../shared/sql/query-engine.ts';
import { withDuckDB, sqlString } from '../helpers/duckdb.ts';

const READER: QueryOptions = { maxRows: 100, timeoutMs: 10_000, role: 'reader' };
const WRITER: QueryOptions = { maxRows: 100, timeoutMs: 10_000, role: 'writer' };
const DATASETS = ['customers', 'notes', 'orders', 'order_lines'];
/** Names of DuckDB's own catalog: none may appear in a suggestion. */
const INTERNAL = /pg_|duckdb_|information_schema|sqlite_|"masked"|main\./;

let root: string;
let engine: QueryEngine;

before(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'sql-errors-'));
  const dir = path.join(root, 'datasets');
  const files: Record<string, string> = {};
  await withDuckDB(async (db) => {
    for (const name of DATASETS) {
      await fs.mkdir(path.join(dir, name), { recursive: true });
      files[name] = path.join(dir, name, 'part-1.parquet');
      await db.all(`COPY (SELECT 1::BIGINT AS id, 'some text' AS body, 'a title' AS title) TO ${sqlString(files[name]!)} (FORMAT parquet)`);
    }
  });
  engine = await QueryEngine.open({ allowedDirs: [dir], readerDirs: [path.join(root, 'reader')], threads: 1 });
  await engine.syncViews(DATASETS.map((name) => ({ name, version: 1, files: [files[name]!] })));
});

after(async () => {
  await engine?.close();
  await fs.rm(root, { recursive: true, force: true });
});

async function badRequest(sql: string, opts: QueryOptions, check: (message: string) => void): Promise<void> {
  await assert.rejects(engine.query(sql, opts), (err: unknown) => {
    assert.ok(err instanceof DomainError, `expected a DomainError, got ${String(err)}`);
    assert.equal(err.status, 400, err.message);
    check(err.message);
    return true;
  });
}

describe('a query naming a missing dataset', () => {
  // [what the user typed, the catalog names the answer must suggest]
  const typos: [string, string[]][] = [
    ['note', ['notes']],
    ['nots', ['notes']],
    ['custommers', ['customers']],
    ['Customer', ['customers']],
    ['ordres', ['orders']],
    ['orderlines', ['order_lines']],
  ];
  for (const role of [WRITER, READER]) {
    for (const [typo, expected] of typos) {
      it(`${role.role}: ${typo} → says it does not exist and suggests ${expected.join(', ')}`, async () => {
        await badRequest(`SELECT * FROM ${typo}`, role, (message) => {
          assert.match(message, new RegExp(`"${typo}".*(does not exist|is not a dataset)`, 'i'));
          for (const name of expected) assert.ok(message.includes(`"${name}"`), `${message} should suggest ${name}`);
          assert.doesNotMatch(message, INTERNAL);
        });
      });
    }
  }

  // names close to DuckDB's system tables and to nothing of ours: DuckDB itself says pg_depend, duckdb_tables…
  for (const name of ['pg_dep', 'pg_depends', 'duckdb_table', 'information_schem', 'pg_clas', 'duckdb_setting', 'zzz_nothing']) {
    it(`writer: ${name} → no internal table suggested; the catalog's datasets are listed instead`, async () => {
      await badRequest(`SELECT * FROM ${name}`, WRITER, (message) => {
        assert.match(message, new RegExp(`dataset "${name}" does not exist`));
        assert.doesNotMatch(message.replace(`"${name}"`, '"…"'), INTERNAL, 'only the name typed may look internal');
        assert.match(message, /Datasets: customers, notes, order_lines, orders\./);
      });
    });
  }

  it('in a join, a subquery and a CTE body the missing one is named', async () => {
    for (const sql of [
      'SELECT * FROM customers c JOIN ordrs o ON o.id = c.id',
      'SELECT * FROM (SELECT * FROM ordrs) t',
      'WITH x AS (SELECT * FROM ordrs) SELECT * FROM x',
    ]) {
      await badRequest(sql, WRITER, (message) => {
        assert.match(message, /dataset "ordrs" does not exist\. Did you mean "orders"/);
        assert.doesNotMatch(message, INTERNAL);
      });
    }
  });
});

describe('a query naming a missing column', () => {
  it("keeps DuckDB's candidates: the columns of the query's own datasets, nothing internal", async () => {
    for (const role of [WRITER, READER]) {
      await badRequest('SELECT bdy FROM notes', role, (message) => {
        assert.match(message, /"bdy"/);
        assert.match(message, /"body"/);
        assert.doesNotMatch(message, INTERNAL);
      });
    }
  });
});

describe('translateError', () => {
  it('rewrites DuckDB\'s missing-table message and leaves other errors in DuckDB\'s words', () => {
    const missing = translateError(new Error('Catalog Error: Table with name pg_dep does not exist!\nDid you mean "pg_depend"?\n\nLINE 1: SELECT * FROM pg_dep'), ['notes']);
    assert.ok(missing instanceof DomainError);
    assert.equal(missing.message, 'dataset "pg_dep" does not exist. Datasets: notes.');
    const empty = translateError(new Error('Catalog Error: Table with name x does not exist!\nDid you mean "pg_am"?'), []) as DomainError;
    assert.equal(empty.message, 'dataset "x" does not exist. The catalog has no datasets yet.');
    const binder = translateError(new Error('Binder Error: Referenced column "q" not found in FROM clause!\nCandidate bindings: "body"\n\nLINE 1: x'), ['notes']) as DomainError;
    assert.equal(binder.status, 400);
    assert.equal(binder.message, 'Binder Error: Referenced column "q" not found in FROM clause! Candidate bindings: "body"');
    const internal = new Error('INTERNAL Error: something broke');
    assert.equal(translateError(internal, ['notes']), internal, 'a DuckDB bug stays a 500');
  });
});

describe('nearNames', () => {
  it('ranks by edit distance, ignores case, keeps far names out', () => {
    assert.equal(editDistance('kitten', 'sitting'), 3);
    assert.equal(editDistance('Notes', 'notes'), 0);
    assert.deepEqual(nearNames('ordr', ['orders', 'order_lines', 'customers', 'order']), ['order', 'orders']);
    assert.deepEqual(nearNames('order', ['orders', 'order_lines', 'customers']), ['orders', 'order_lines'], 'a shared prefix counts');
    assert.deepEqual(nearNames('zzz', ['orders', 'customers']), []);
    assert.deepEqual(nearNames('a', ['b', 'abc', 'xyz']), ['b', 'abc']);
  });
});
