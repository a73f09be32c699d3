/**
 * Tombstones: the chunk_ids a refresh removed from an index, as small immutable Parquet files
 * beside the vectors files (which are never rewritten):
 *
 *   <index dir>/tombstones/part-<tag>.parquet   chunk_id VARCHAR, one row per removed chunk
 *
 * A generation lists the tombstone files that apply to it (`tombstone_files` in the index
 * manifest). A row cancels one occurrence of its chunk_id in the generation's vectors files, so a
 * chunk deleted and later added back (the same text again: chunk ids are content-addressed) is
 * live again; refresh-diff.ts reads them that way, and hnsw-extend.ts tombstones the same labels
 * in the graph. When tombstones pass a share of the graph, a refresh compacts the live rows into
 * one vectors file ({@link compactVectors}) and builds afresh, with no tombstones.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { DuckDBDataChunkWriter } from '@duckdb/node-api';
import { BadRequestError, ConflictError } from '../../errors.ts';
import { openConnection, sqlString } from '../../ingest/formats/parquet-sink.ts';
import { commitTempFileOnce, tempPathFor } from '../../storage/atomic-write.ts';
import { VECTOR_ROW_GROUP_SIZE } from './vectors-parquet.ts';

export const TOMBSTONES_DIR = 'tombstones';

/** What may follow `part-`: a job id, a generation number. */
const TAG = /^[A-Za-z0-9_-]{1,120}$/;

/** `tombstones/part-<tag>.parquet`, relative to the index directory (as a generation record lists it). */
export function tombstoneFileName(tag: string): string {
  if (!TAG.test(tag)) throw new BadRequestError(`tombstone tag ${JSON.stringify(tag)} must be 1–120 letters, digits, _ or -`);
  return path.join(TOMBSTONES_DIR, `part-${tag}.parquet`);
}

export interface WrittenTombstones {
  /** Relative to the index directory: what goes into the generation's `tombstone_files`. */
  file: string;
  /** Absolute path. */
  path: string;
  /** Distinct chunk ids written. */
  rows: number;
  bytes: number;
}

/**
 * Writes the distinct `chunkIds` (sorted) to `<indexDir>/tombstones/part-<tag>.parquet`: into a
 * temporary sibling, fsynced, then linked into place, which never replaces an existing file — a
 * file a committed generation lists must not change, so a tag is used once (the generation id
 * the refresh will commit is a good one: `nextGenerationId` never hands out the same id twice).
 * Nothing is written for no ids (undefined).
 */
export async function writeTombstones(indexDir: string, tag: string, chunkIds: Iterable<string>): Promise<WrittenTombstones | undefined> {
  const file = tombstoneFileName(tag);
  const ids = [...new Set(chunkIds)].sort();
  if (ids.length === 0) return undefined;
  if (ids.some((id) => id === '')) throw new BadRequestError('a tombstone chunk_id is empty');
  const target = path.join(indexDir, file);
  await fs.mkdir(path.dirname(target), { recursive: true });
  const tmp = tempPathFor(target);
  try {
    const conn = await openConnection();
    try {
      await conn.run('CREATE TEMP TABLE tombstones_out (chunk_id VARCHAR NOT NULL)');
      const appender = await conn.createAppender('tombstones_out');
      try {
        const writer = DuckDBDataChunkWriter.forAppender(appender);
        for (const id of ids) writer.appendRow([id]);
        writer.flush();
        appender.flushSync();
      } finally {
        appender.closeSync();
      }
      await conn.run(`COPY (SELECT chunk_id FROM tombstones_out ORDER BY chunk_id) TO ${sqlString(tmp)} (FORMAT parquet, COMPRESSION zstd)`);
    } finally {
      conn.closeSync();
    }
    await commitTempFileOnce(tmp, target);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new ConflictError(`tombstone file ${file} already exists; use a new tag`);
    throw err;
  } finally {
    await fs.rm(tmp, { force: true });
  }
  return { file, path: target, rows: ids.length, bytes: (await fs.stat(target)).size };
}

/** Every chunk_id tombstoned by `files` (absolute paths); empty for no files. */
export async function readTombstones(files: readonly string[]): Promise<Set<string>> {
  const out = new Set<string>();
  if (files.length === 0) return out;
  const conn = await openConnection();
  try {
    const result = await conn.stream(`SELECT DISTINCT chunk_id FROM read_parquet(${fileList(files)})`);
    for (let chunk = await result.fetchChunk(); chunk && chunk.rowCount > 0; chunk = await result.fetchChunk()) {
      for (const v of chunk.getColumnValues(0)) out.add(String(v));
    }
    return out;
  } finally {
    conn.closeSync();
  }
}

function fileList(files: readonly string[]): string {
  return `[${files.map(sqlString).join(', ')}]`;
}

/**
 * SQL for the live chunk ids of `files` minus `tombstoneFiles`: a chunk is live while it occurs
 * in the vectors files more often than in the tombstones. With no chunk ever added twice while
 * live (refresh-diff.ts embeds only ids that are not live; hnsw-extend.ts refuses the others),
 * that is an anti-join in which a later re-add outweighs an earlier tombstone.
 */
export function liveChunkIdsSql(files: readonly string[], tombstoneFiles: readonly string[]): string {
  if (tombstoneFiles.length === 0) return `SELECT DISTINCT chunk_id FROM read_parquet(${fileList(files)})`;
  return (
    `WITH v AS (SELECT chunk_id, count(*) AS n FROM read_parquet(${fileList(files)}) GROUP BY chunk_id), ` +
    `t AS (SELECT chunk_id, count(*) AS n FROM read_parquet(${fileList(tombstoneFiles)}) GROUP BY chunk_id) ` +
    `SELECT v.chunk_id FROM v LEFT JOIN t ON v.chunk_id = t.chunk_id WHERE v.n > coalesce(t.n, 0)`
  );
}

/**
 * Writes the live rows of `files` to `outFile` as one vectors Parquet file, atomically: the
 * input of a fresh build once tombstones have piled up (`shouldRebuild`). One row per live
 * chunk_id — the last in file order, the copy an extended graph holds live — with every column
 * as stored, in file order, so the fresh build assigns labels in the order the old graph had
 * them. Refuses to replace an existing file.
 */
export async function compactVectors(opts: { files: readonly string[]; tombstoneFiles: readonly string[]; outFile: string }): Promise<{ rows: number; bytes: number }> {
  if (opts.files.length === 0) throw new BadRequestError('there are no vectors files to compact');
  await fs.mkdir(path.dirname(opts.outFile), { recursive: true });
  const tmp = tempPathFor(opts.outFile);
  try {
    const conn = await openConnection();
    let rows: number;
    try {
      await conn.run(`CREATE TEMP TABLE live_ids AS ${liveChunkIdsSql(opts.files, opts.tombstoneFiles)}`);
      const source =
        `SELECT doc_id, chunk_id, seq, text, content_hash, vector, filename, file_row_number ` +
        `FROM read_parquet(${fileList(opts.files)}, filename = true, file_row_number = true) WHERE chunk_id IN (SELECT chunk_id FROM live_ids)`;
      const order = opts.files.map((f, i) => `WHEN ${sqlString(f)} THEN ${i}`).join(' ');
      await conn.run(
        `COPY (SELECT doc_id, chunk_id, seq, text, content_hash, vector FROM (${source}) ` +
          `QUALIFY row_number() OVER (PARTITION BY chunk_id ORDER BY CASE filename ${order} END DESC, file_row_number DESC) = 1 ` +
          `ORDER BY CASE filename ${order} END, file_row_number) ` +
          `TO ${sqlString(tmp)} (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE ${VECTOR_ROW_GROUP_SIZE})`,
      );
      const reader = await conn.runAndReadAll(`SELECT count(*)::BIGINT AS n FROM read_parquet(${sqlString(tmp)})`);
      rows = Number(reader.getRowObjects()[0]?.['n'] ?? 0);
    } finally {
      conn.closeSync();
    }
    await commitTempFileOnce(tmp, opts.outFile);
    return { rows, bytes: (await fs.stat(opts.outFile)).size };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new ConflictError(`${path.basename(opts.outFile)} already exists`);
    throw err;
  } finally {
    await fs.rm(tmp, { force: true });
  }
}
