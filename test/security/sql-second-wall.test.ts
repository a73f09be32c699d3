/**
 * The second wall (SECURITY.md, "SQL"): with the reader guard switched off, the reader engine
 * alone must keep every raw value of a masked column from readers, whatever the SQL, because it
 * can open the reader copies and nothing else. Also: reader copies on disk hold no raw value, a
 * dataset without masked columns costs no disk (its copies are hard links), and a column made
 * public reaches readers through a new copy.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DuckDBInstance } from '@duckdb/node-api';
import { QueryEngine, type DatasetView, type QueryOptions } from '../../shared/sql/query-engine.ts';
import { sqlAttacks, type CorpusPaths } from './sql-corpus.ts';

const READER: QueryOptions = { maxRows: 10_000, timeoutMs: 20_000, role: 'reader' };
const RAW = ['ada.lovelace@analytical.example', 'grace.hopper@cobol.example', '4539578763621486', '+44 20 7946 0958', 'Ada Lovelace', 'Grace Hopper'];

let root: string;
let datasetsDir: string;
let readerDir: string;
let part: string;
let publicPart: string;
let engine: QueryEngine;
let canary: string;

const q = (s: string) => `'${s.replace(/'/g, "''")}'`;

function views(masked = ['email', 'card', 'phone', 'full_name']): DatasetView[] {
  return [
    { name: 'people', version: 1, files: [part], maskedColumns: masked },
    { name: 'cities', version: 1, files: [publicPart] },
  ];
}

async function writeParts(): Promise<void> {
  const instance = await DuckDBInstance.create(':memory:');
  const db = await instance.connect();
  try {
    await db.run(`COPY (SELECT * FROM (VALUES
        (1, 'Ada Lovelace', 'ada.lovelace@analytical.example', '4539578763621486', '+44 20 7946 0958', 'London'),
        (2, 'Grace Hopper', 'grace.hopper@cobol.example', '4539578763621486', '+44 20 7946 0958', 'York')
      ) t(id, full_name, email, card, phone, city)) TO ${q(part)} (FORMAT parquet)`);
    await db.run(`COPY (SELECT * FROM (VALUES ('London', 9000000), ('York', 210000)) t(city, population)) TO ${q(publicPart)} (FORMAT parquet)`);
  } finally {
    db.closeSync();
    instance.closeSync();
  }
}

describe('the reader engine without the guard', { timeout: 120_000 }, () => {
  before(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'lhtest-wall-'));
    datasetsDir = path.join(root, 'datasets');
    readerDir = path.join(root, 'reader');
    await fs.mkdir(path.join(datasetsDir, 'people', 'parts'), { recursive: true });
    await fs.mkdir(path.join(datasetsDir, 'cities', 'parts'), { recursive: true });
    part = path.join(datasetsDir, 'people', 'parts', 'part-1.parquet');
    publicPart = path.join(datasetsDir, 'cities', 'parts', 'part-1.parquet');
    canary = path.join(root, 'secrets', 'canary.txt');
    await fs.mkdir(path.dirname(canary));
    await fs.writeFile(canary, 'CANARY-second-wall\n');
    await writeParts();
    engine = await QueryEngine.open({ allowedDirs: [datasetsDir], readerDirs: [readerDir], threads: 1, memoryLimit: '256MB', guardReaders: false });
    await engine.syncViews(views());
  });

  after(async () => {
    await engine?.close();
    await fs.rm(root, { recursive: true, force: true });
  });

  it('precondition: without the guard the reader engine runs what the guard would refuse', async () => {
    const settings = await engine.query("SELECT current_setting('threads') AS t", READER);
    assert.equal(settings.rows.length, 1, 'an unguarded reader query ran');
  });

  it('no shape of the corpus reaches a raw value or a file outside the reader copies', async () => {
    const paths: CorpusPaths = { part, datasetDir: path.join(datasetsDir, 'people'), root, canaryFile: canary, dataset: 'people' };
    const leaks: string[] = [];
    let answered = 0;
    for (const attack of sqlAttacks(paths)) {
      let text: string;
      try {
        text = JSON.stringify((await engine.query(attack.sql, READER)).rows);
        answered++;
      } catch (err) {
        text = (err as Error).message;
      }
      const found = [...RAW, 'CANARY-second-wall'].filter((raw) => text.includes(raw) && !attack.sql.includes(raw));
      if (found.length > 0) leaks.push(`${attack.label}: ${found.join(', ')}`);
    }
    assert.deepEqual(leaks, []);
    assert.ok(answered > 20, `many attacks ran unguarded (${answered}), so the wall itself was tested`);
  });

  it('keeps masked values out of the reader copies on disk, and hard-links parts with nothing to mask', async () => {
    const copies = await fs.readdir(path.join(readerDir, 'people'));
    assert.equal(copies.length, 1);
    const instance = await DuckDBInstance.create(':memory:');
    const db = await instance.connect();
    try {
      const rows = (await db.runAndReadAll(`SELECT * FROM read_parquet(${q(path.join(readerDir, 'people', copies[0]!))})`)).getRowObjects();
      assert.equal(rows.length, 2);
      const text = JSON.stringify(rows, (_k, v) => (typeof v === 'bigint' ? Number(v) : v));
      for (const raw of RAW) assert.ok(!text.includes(raw), `the copy holds ${raw}`);
      assert.deepEqual(rows.map((r) => r['city']), ['London', 'York'], 'public columns are kept');
    } finally {
      db.closeSync();
      instance.closeSync();
    }
    const [linked] = await fs.readdir(path.join(readerDir, 'cities'));
    const [a, b] = await Promise.all([fs.stat(publicPart), fs.stat(path.join(readerDir, 'cities', linked!))]);
    assert.equal(a.ino, b.ino, 'the copy of a part with no masked column is the same inode');
  });

  it('serves a column made public from a new copy, and masks it again when flagged again', async () => {
    await engine.syncViews(views(['email', 'card', 'phone']));
    const named = await engine.query('SELECT full_name, email FROM people ORDER BY id', READER);
    assert.deepEqual(named.rows, [{ full_name: 'Ada Lovelace', email: '***' }, { full_name: 'Grace Hopper', email: '***' }]);
    await engine.syncViews(views());
    const masked = await engine.query('SELECT full_name FROM people ORDER BY id', READER);
    assert.deepEqual(masked.rows, [{ full_name: '***' }, { full_name: '***' }]);
  });
});
