/**
 * Vectors Parquet, the source of truth of an index: text survives byte for byte, vectors bit for
 * bit, files appear atomically, and the subset readers return exactly the rows asked for.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BadRequestError } from '../../shared/errors.ts';
import {
  countVectors,
  readChunkMeta,
  readVectorBatches,
  readVectorsByDocIds,
  writeVectorsParquet,
  type VectorRow,
} from '../../shared/vectors/index/vectors-parquet.ts';
import { sqlString as q, withDuckDB } from '../helpers/duckdb.ts';

let root: string;
let seq = 0;

before(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'vectors-parquet-'));
});

after(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

async function freshDir(): Promise<string> {
  const dir = path.join(root, `case-${++seq}`);
  await fs.mkdir(dir);
  return dir;
}

const AWKWARD_TEXTS = [
  `it's a "quoted" value; ''doubled'' and \\backslash\\`,
  'line one\nline two\r\nline three\rend',
  "'); DROP TABLE vectors_out; --",
  'ünïcødé — 日本語のテキスト — emoji 🧪👩‍🔬 — RTL שלום — combining é',
  '',
  '\t leading and trailing whitespace \t',
];

/** Float32 values that a lossy path would change: signed zero, subnormals, extremes, thirds. */
const AWKWARD_FLOATS = [-0, 0, 1.401298464324817e-45, -1.1754942106924411e-38, 3.4028234663852886e38, Math.fround(1 / 3), -Math.fround(Math.PI), 1e-7];

function row(i: number, dims: number, doc = `doc-${Math.floor(i / 3)}`): VectorRow {
  const vector = new Float32Array(dims);
  for (let j = 0; j < dims; j++) vector[j] = j === 0 ? i : AWKWARD_FLOATS[(i + j) % AWKWARD_FLOATS.length]!;
  return { doc_id: doc, chunk_id: `${doc}#${i}`, seq: i % 3, text: `${AWKWARD_TEXTS[i % AWKWARD_TEXTS.length]} (${i})`, content_hash: `h${i}`, vector };
}

function bits(v: Float32Array): number[] {
  return [...new Uint32Array(v.buffer, v.byteOffset, v.length)];
}

async function readAll(files: string[], dims: number): Promise<{ doc_ids: string[]; chunk_ids: string[]; vectors: Float32Array[] }> {
  const out = { doc_ids: [] as string[], chunk_ids: [] as string[], vectors: [] as Float32Array[] };
  for await (const b of readVectorBatches(files, dims)) {
    out.doc_ids.push(...b.doc_ids);
    out.chunk_ids.push(...b.chunk_ids);
    for (let i = 0; i < b.doc_ids.length; i++) out.vectors.push(b.vectors.slice(i * dims, (i + 1) * dims));
  }
  return out;
}

describe('writeVectorsParquet', () => {
  it('round-trips awkward text exactly and float32 vectors bit for bit', async () => {
    const dir = await freshDir();
    const file = path.join(dir, 'part-1.parquet');
    const rows = Array.from({ length: 30 }, (_, i) => row(i, 8));
    const out = await writeVectorsParquet(file, rows, 8);

    assert.deepEqual(await fs.readdir(dir), ['part-1.parquet'], 'only the target is left, no temporary file');
    assert.equal(out.rows, 30);
    assert.equal(out.bytes, (await fs.stat(file)).size);

    const back = await readAll([file], 8);
    assert.deepEqual(back.doc_ids, rows.map((r) => r.doc_id));
    assert.deepEqual(back.chunk_ids, rows.map((r) => r.chunk_id));
    back.vectors.forEach((v, i) => assert.deepEqual(bits(v), bits(rows[i]!.vector), `row ${i} vector bits`));

    const meta = await readChunkMeta([file], rows.map((r) => r.chunk_id));
    for (const r of rows) {
      assert.deepEqual(meta.get(r.chunk_id), { doc_id: r.doc_id, chunk_id: r.chunk_id, seq: r.seq, text: r.text, content_hash: r.content_hash });
    }
  });

  it('writes the documented columns, read by an independent DuckDB', async () => {
    const dir = await freshDir();
    const file = path.join(dir, 'part-1.parquet');
    const rows = Array.from({ length: 6 }, (_, i) => row(i, 4));
    await writeVectorsParquet(file, rows, 4);
    await withDuckDB(async (db) => {
      const schema = await db.all(`DESCRIBE SELECT * FROM read_parquet(${q(file)})`);
      assert.deepEqual(
        schema.map((c) => [c['column_name'], c['column_type']]),
        [['doc_id', 'VARCHAR'], ['chunk_id', 'VARCHAR'], ['seq', 'INTEGER'], ['text', 'VARCHAR'], ['content_hash', 'VARCHAR'], ['vector', 'FLOAT[]']],
      );
      const texts = await db.all(`SELECT text, len(vector)::INTEGER AS n FROM read_parquet(${q(file)})`);
      assert.deepEqual(texts.map((t) => t['text']), rows.map((r) => r.text));
      assert.ok(texts.every((t) => t['n'] === 4));
    });
  });

  it('accepts an async iterable, and streams several files in order across chunk boundaries', async () => {
    const dir = await freshDir();
    const a = path.join(dir, 'part-a.parquet');
    const b = path.join(dir, 'part-b.parquet');
    async function* many(): AsyncGenerator<VectorRow> {
      for (let i = 0; i < 5000; i++) yield row(i, 3, `a${i}`);
    }
    await writeVectorsParquet(a, many(), 3);
    await writeVectorsParquet(b, [row(0, 3, 'b0'), row(1, 3, 'b1')], 3);

    assert.equal(await countVectors([a, b]), 5002);
    const batches: number[] = [];
    const docs: string[] = [];
    for await (const batch of readVectorBatches([a, b], 3)) {
      batches.push(batch.doc_ids.length);
      docs.push(...batch.doc_ids);
      assert.equal(batch.vectors.length, batch.doc_ids.length * 3);
    }
    assert.ok(batches.length >= 3, `streamed in chunks, got ${batches.join(',')}`);
    assert.deepEqual(docs, [...Array.from({ length: 5000 }, (_, i) => `a${i}`), 'b0', 'b1']);
  });

  it('refuses a vector of the wrong length or a non-finite value and leaves no file behind', async () => {
    const dir = await freshDir();
    const file = path.join(dir, 'part-1.parquet');
    const short = { ...row(1, 4), vector: new Float32Array(3) };
    await assert.rejects(writeVectorsParquet(file, [row(0, 4), short], 4), (err: unknown) => err instanceof BadRequestError && /3 dimensions, expected 4/.test(err.message));
    const nan = { ...row(1, 4), vector: Float32Array.of(0, NaN, 0, 0) };
    await assert.rejects(writeVectorsParquet(file, [nan], 4), /non-finite/);
    assert.deepEqual(await fs.readdir(dir), []);
  });

  it('refuses to read a file as vectors of another dimension', async () => {
    const dir = await freshDir();
    const file = path.join(dir, 'part-1.parquet');
    await writeVectorsParquet(file, [row(0, 4)], 4);
    await assert.rejects(readAll([file], 5), /Cannot cast list with length 4 to array with length 5/);
  });
});

describe('subset reads', () => {
  const dims = 4;
  let files: string[];
  let rows: VectorRow[];

  before(async () => {
    const dir = await freshDir();
    rows = Array.from({ length: 3000 }, (_, i) => row(i, dims, i % 2 === 0 ? `even'${i % 10}` : `odd"${i % 10}`));
    files = [path.join(dir, 'part-1.parquet'), path.join(dir, 'part-2.parquet')];
    await writeVectorsParquet(files[0]!, rows.slice(0, 1700), dims);
    await writeVectorsParquet(files[1]!, rows.slice(1700), dims);
  });

  it('readVectorsByDocIds returns every chunk of the named documents and nothing else', async () => {
    const wanted = ["even'0", 'odd"3', 'no-such-doc'];
    const got = await readVectorsByDocIds(files, dims, wanted);
    const expected = rows.filter((r) => wanted.includes(r.doc_id));
    assert.ok(expected.length > 500);
    assert.deepEqual(got.doc_ids, expected.map((r) => r.doc_id));
    assert.deepEqual(got.chunk_ids, expected.map((r) => r.chunk_id));
    expected.forEach((r, i) => assert.deepEqual(bits(got.vectors.subarray(i * dims, (i + 1) * dims)), bits(r.vector)));
  });

  it('readVectorsByDocIds of no ids, or of ids that match nothing, is empty', async () => {
    for (const ids of [[], ['nothing']]) {
      const got = await readVectorsByDocIds(files, dims, ids);
      assert.equal(got.doc_ids.length, 0);
      assert.equal(got.vectors.length, 0);
    }
  });

  it('readChunkMeta returns the named chunks only', async () => {
    const meta = await readChunkMeta(files, ["even'0#0", 'odd"3#2993', 'missing']);
    assert.deepEqual([...meta.keys()].sort(), ["even'0#0", 'odd"3#2993']);
    assert.equal(meta.get('odd"3#2993')?.doc_id, 'odd"3');
    assert.equal(meta.get('odd"3#2993')?.text, rows[2993]!.text);
  });
});
