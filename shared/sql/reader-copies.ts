/**
 * Reader copies: what the reader engine reads instead of a dataset's parts (SECURITY.md, "SQL").
 * A part with no masked column is hard-linked (no extra disk; a copy when the reader directory is
 * on another filesystem); a part with masked columns is rewritten by the full engine with each of
 * them replaced by `'***'`. A copy's name hashes the part's path, size and mtime and the masked
 * columns, so it is made once, by whichever process needs it first (temp name, then rename), and
 * never goes stale.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { getDataset, partFiles } from '../catalog/catalog.ts';
import { maskedColumns } from '../catalog/manifest.ts';
import type { Buckets } from '../storage/buckets.ts';
import { asciiLower, MASK, quoteIdent, quoteString } from './sql-text.ts';

export interface ReaderCopyRequest {
  /** The dataset's parts, absolute paths. */
  files: string[];
  /** Column names to mask, any case. */
  maskedColumns: string[];
  /** The dataset's columns as DuckDB spells them (union of all parts). */
  columns: string[];
  /** The dataset's reader directory. */
  dir: string;
}

/** Returns one reader copy per part, in order, making those that do not exist yet. */
export async function ensureReaderCopies(full: DuckDBConnection, req: ReaderCopyRequest): Promise<string[]> {
  const known = new Set(req.columns.map(asciiLower));
  const unknown = req.maskedColumns.find((c) => !known.has(asciiLower(c)));
  if (unknown !== undefined) throw new Error(`masked column ${JSON.stringify(unknown)} is not a column of the dataset`);
  await fs.mkdir(req.dir, { recursive: true });
  const masked = [...new Set(req.maskedColumns.map(asciiLower))].sort();
  const copies: string[] = [];
  for (const file of req.files) {
    const stat = await fs.stat(file);
    const hash = createHash('sha256').update([file, stat.size, stat.mtimeMs, ...masked].join('\0')).digest('hex').slice(0, 40);
    const copy = path.join(req.dir, `${hash}.parquet`);
    if (!(await exists(copy))) await makeCopy(full, file, copy, masked);
    copies.push(copy);
  }
  return copies;
}

/**
 * Makes a dataset's reader copies as its manifest stands, so the ingest job pays for them rather
 * than the first query after it (which would hold every query of that API process meanwhile).
 * Uses a DuckDB of its own: the caller is trusted code, and the paths are the manifest's.
 */
export async function prepareReaderCopies(buckets: Buckets, dataset: string): Promise<void> {
  const { manifest, bucket } = await getDataset(buckets, dataset);
  const instance = await DuckDBInstance.create(':memory:', { autoinstall_known_extensions: 'false', autoload_known_extensions: 'false' });
  const connection = await instance.connect();
  try {
    await ensureReaderCopies(connection, {
      files: partFiles(buckets, manifest),
      maskedColumns: maskedColumns(manifest),
      columns: manifest.schema.map((c) => c.name),
      dir: bucket.root.datasetReaderDir(dataset),
    });
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}

/** Deletes copies in `dir` that `keep` does not list, once older than `graceMs` (by ctime). */
export async function pruneReaderCopies(dir: string, keep: string[], graceMs: number): Promise<void> {
  const kept = new Set(keep.map((file) => path.basename(file)));
  const names = await fs.readdir(dir).catch(() => [] as string[]);
  const cutoff = Date.now() - graceMs;
  for (const name of names) {
    if (kept.has(name)) continue;
    const file = path.join(dir, name);
    const stat = await fs.stat(file).catch(() => undefined);
    if (stat && stat.ctimeMs < cutoff) await fs.rm(file, { force: true });
  }
}

async function makeCopy(full: DuckDBConnection, file: string, copy: string, masked: string[]): Promise<void> {
  const temp = path.join(path.dirname(copy), `.${path.basename(copy)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    if (masked.length === 0) await linkOrCopy(file, temp);
    else await maskedCopy(full, file, temp, masked);
    await fs.rename(temp, copy);
  } finally {
    await fs.rm(temp, { force: true });
  }
}

async function linkOrCopy(file: string, target: string): Promise<void> {
  try {
    await fs.link(file, target);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
    await fs.copyFile(file, target);
  }
}

/** Masks the columns this part has (parts of one dataset may differ: append adds columns). */
async function maskedCopy(full: DuckDBConnection, file: string, target: string, masked: string[]): Promise<void> {
  const described = await full.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet(${quoteString(file)})`);
  const present = described.getRowObjects().map((row) => String(row['column_name'])).filter((c) => masked.includes(asciiLower(c)));
  const replace = present.map((c) => `${quoteString(MASK)} AS ${quoteIdent(c)}`);
  const select = replace.length === 0 ? '*' : `* REPLACE (${replace.join(', ')})`;
  await full.run(`COPY (SELECT ${select} FROM read_parquet(${quoteString(file)})) TO ${quoteString(target)} (FORMAT parquet, COMPRESSION zstd)`);
}

async function exists(file: string): Promise<boolean> {
  return fs.access(file).then(() => true, () => false);
}
