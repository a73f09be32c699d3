/**
 * Vectors Parquet: the source of truth of an index. Any generation can be rebuilt from these
 * files, so they are written atomically (temporary sibling, fsynced, renamed) and never changed.
 *
 * Columns: `doc_id, chunk_id, seq, text, content_hash, vector`. Parquet has no fixed-size list, so
 * the file holds `vector` as LIST<FLOAT>; every reader casts it to DuckDB's `FLOAT[d]`, which fails
 * on a row of any other length instead of handing a short vector to HNSW.
 *
 * Values reach DuckDB through an appender and ids through temporary tables: no text is ever
 * spliced into SQL. File paths are (they come from the data root, quoted by `sqlString`).
 */
import fs from 'node:fs/promises';
import {
  DuckDBArrayValue,
  DuckDBDataChunkWriter,
  type DuckDBArrayVector,
  type DuckDBConnection,
  type DuckDBDataChunk,
  type DuckDBValue,
} from '@duckdb/node-api';
import { BadRequestError } from '../../errors.ts';
import { openConnection, sqlString } from '../../ingest/formats/parquet-sink.ts';
import { commitTempFile, tempPathFor } from '../../storage/atomic-write.ts';

/**
 * Rows per Parquet row group. Smaller than datasets' 122,880: at 512 dimensions that many rows
 * would be 250 MB per group, and a streaming build holds about one group per scan thread.
 */
export const VECTOR_ROW_GROUP_SIZE = 16_384;

/** DuckDB's limit on a fixed-size ARRAY. */
export const MAX_DIMS = 100_000;

export interface ChunkMeta {
  doc_id: string;
  chunk_id: string;
  /** The chunk's position within its document. */
  seq: number;
  text: string;
  content_hash: string;
}

export interface VectorRow extends ChunkMeta {
  vector: Float32Array;
}

/** Rows in file order; row `i`'s vector is `vectors.subarray(i * dims, (i + 1) * dims)`. */
export interface VectorBatch {
  doc_ids: string[];
  chunk_ids: string[];
  vectors: Float32Array;
}

export function checkDims(dims: number): number {
  if (!Number.isInteger(dims) || dims < 1 || dims > MAX_DIMS) throw new BadRequestError(`dims ${dims} is not an integer in 1..${MAX_DIMS}`);
  return dims;
}

function fileList(files: readonly string[]): string {
  return `[${files.map(sqlString).join(', ')}]`;
}

async function withConnection<T>(fn: (conn: DuckDBConnection) => Promise<T>): Promise<T> {
  const conn = await openConnection();
  try {
    return await fn(conn);
  } finally {
    conn.closeSync();
  }
}

/**
 * Writes `rows` to `file` as zstd Parquet, atomically. Refuses (before anything is written) a
 * vector of the wrong length or with a non-finite value: either would poison every search.
 */
export async function writeVectorsParquet(
  file: string,
  rows: Iterable<VectorRow> | AsyncIterable<VectorRow>,
  dims: number,
): Promise<{ rows: number; bytes: number }> {
  checkDims(dims);
  const tmp = tempPathFor(file);
  try {
    const written = await withConnection(async (conn) => {
      await conn.run(
        `CREATE TEMP TABLE vectors_out (doc_id VARCHAR NOT NULL, chunk_id VARCHAR NOT NULL, seq INTEGER NOT NULL, ` +
          `text VARCHAR NOT NULL, content_hash VARCHAR NOT NULL, vector FLOAT[${dims}] NOT NULL)`,
      );
      const n = await appendRows(conn, rows, dims);
      await conn.run(
        `COPY vectors_out TO ${sqlString(tmp)} (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE ${VECTOR_ROW_GROUP_SIZE})`,
      );
      return n;
    });
    await commitTempFile(tmp, file);
    return { rows: written, bytes: (await fs.stat(file)).size };
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
}

async function appendRows(conn: DuckDBConnection, rows: Iterable<VectorRow> | AsyncIterable<VectorRow>, dims: number): Promise<number> {
  const appender = await conn.createAppender('vectors_out');
  try {
    const writer = DuckDBDataChunkWriter.forAppender(appender);
    let n = 0;
    for await (const row of rows) {
      checkRow(row, dims, n);
      writer.appendRow([row.doc_id, row.chunk_id, row.seq, row.text, row.content_hash, new DuckDBArrayValue(Array.from(row.vector))]);
      n++;
    }
    writer.flush();
    appender.flushSync();
    return n;
  } finally {
    appender.closeSync();
  }
}

function checkRow(row: VectorRow, dims: number, index: number): void {
  const where = `vector row ${index} (chunk ${JSON.stringify(row.chunk_id)})`;
  if (row.vector.length !== dims) throw new BadRequestError(`${where} has ${row.vector.length} dimensions, expected ${dims}`);
  if (!row.vector.every(Number.isFinite)) throw new BadRequestError(`${where} holds a non-finite value`);
  if (!Number.isSafeInteger(row.seq)) throw new BadRequestError(`${where} has a non-integer seq`);
  if (row.doc_id === '' || row.chunk_id === '') throw new BadRequestError(`${where} has an empty doc_id or chunk_id`);
}

/** Rows across `files`, from the Parquet footers alone. */
export async function countVectors(files: readonly string[]): Promise<number> {
  if (files.length === 0) return 0;
  return withConnection(async (conn) => {
    const reader = await conn.runAndReadAll(`SELECT count(*)::BIGINT AS n FROM read_parquet(${fileList(files)})`);
    return Number(reader.getRowObjects()[0]?.['n'] ?? 0);
  });
}

/**
 * Streams `files` in order (file by file, rows in file order) as batches of one DuckDB chunk
 * (2,048 rows), so a build holds one batch of vectors in JS at a time. Breaking out of the loop
 * closes the scan.
 */
export async function* readVectorBatches(files: readonly string[], dims: number): AsyncGenerator<VectorBatch> {
  checkDims(dims);
  if (files.length === 0) return;
  const conn = await openConnection();
  try {
    const result = await conn.stream(`SELECT doc_id, chunk_id, vector::FLOAT[${dims}] AS vector FROM read_parquet(${fileList(files)})`);
    for (;;) {
      const chunk = await result.fetchChunk();
      if (!chunk || chunk.rowCount === 0) return;
      yield toBatch(chunk, dims);
    }
  } finally {
    conn.closeSync();
  }
}

/** Every row whose doc_id is in `docIds`, in file order: the candidate set of a filtered exact search. */
export async function readVectorsByDocIds(files: readonly string[], dims: number, docIds: Iterable<string>): Promise<VectorBatch> {
  checkDims(dims);
  const empty: VectorBatch = { doc_ids: [], chunk_ids: [], vectors: new Float32Array(0) };
  if (files.length === 0) return empty;
  return withConnection(async (conn) => {
    if ((await fillIdTable(conn, docIds)) === 0) return empty;
    const result = await conn.stream(
      // a semi-join does not keep scan order: order by file position and row explicitly
      `SELECT doc_id, chunk_id, vector::FLOAT[${dims}] AS vector FROM read_parquet(${fileList(files)}, filename = true, file_row_number = true) ` +
        `WHERE doc_id IN (SELECT id FROM wanted_ids) ORDER BY list_position(${fileList(files)}, filename), file_row_number`,
    );
    const batches: VectorBatch[] = [];
    for (let chunk = await result.fetchChunk(); chunk && chunk.rowCount > 0; chunk = await result.fetchChunk()) {
      batches.push(toBatch(chunk, dims));
    }
    return concatBatches(batches, dims);
  });
}

/** Text and identity of the chunks named, keyed by chunk_id (absent ids are simply missing). */
export async function readChunkMeta(files: readonly string[], chunkIds: Iterable<string>): Promise<Map<string, ChunkMeta>> {
  const found = new Map<string, ChunkMeta>();
  if (files.length === 0) return found;
  return withConnection(async (conn) => {
    if ((await fillIdTable(conn, chunkIds)) === 0) return found;
    const reader = await conn.runAndReadAll(
      `SELECT doc_id, chunk_id, seq::BIGINT AS seq, text, content_hash FROM read_parquet(${fileList(files)}) ` +
        `WHERE chunk_id IN (SELECT id FROM wanted_ids)`,
    );
    for (const r of reader.getRowObjects()) {
      const meta = { doc_id: String(r['doc_id']), chunk_id: String(r['chunk_id']), seq: Number(r['seq']), text: String(r['text']), content_hash: String(r['content_hash']) };
      found.set(meta.chunk_id, meta);
    }
    return found;
  });
}

/** Loads distinct ids into the connection's temporary `wanted_ids` table; returns how many. */
async function fillIdTable(conn: DuckDBConnection, ids: Iterable<string>): Promise<number> {
  const unique = new Set(ids);
  await conn.run('CREATE TEMP TABLE wanted_ids (id VARCHAR)');
  const appender = await conn.createAppender('wanted_ids');
  try {
    const writer = DuckDBDataChunkWriter.forAppender(appender);
    for (const id of unique) writer.appendRow([id]);
    writer.flush();
    appender.flushSync();
  } finally {
    appender.closeSync();
  }
  return unique.size;
}

function toBatch(chunk: DuckDBDataChunk, dims: number): VectorBatch {
  const rows = chunk.rowCount;
  const column = chunk.getColumnVector(2) as DuckDBArrayVector;
  const vectors = new Float32Array(rows * dims);
  for (let i = 0; i < rows; i++) {
    const value = column.getItem(i);
    if (!value) throw new BadRequestError(`vectors file holds a row without a vector`);
    vectors.set(value.items as readonly number[], i * dims);
  }
  return { doc_ids: strings(chunk.getColumnValues(0)), chunk_ids: strings(chunk.getColumnValues(1)), vectors };
}

function strings(values: readonly DuckDBValue[]): string[] {
  return values.map((v) => String(v));
}

function concatBatches(batches: readonly VectorBatch[], dims: number): VectorBatch {
  const rows = batches.reduce((n, b) => n + b.doc_ids.length, 0);
  const out: VectorBatch = { doc_ids: [], chunk_ids: [], vectors: new Float32Array(rows * dims) };
  for (const b of batches) {
    out.vectors.set(b.vectors, out.doc_ids.length * dims);
    out.doc_ids.push(...b.doc_ids);
    out.chunk_ids.push(...b.chunk_ids);
  }
  return out;
}
