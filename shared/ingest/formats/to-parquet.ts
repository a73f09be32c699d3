/**
 * Any supported file → one zstd Parquet file at `target`, atomically: DuckDB writes a temporary
 * sibling that is renamed into place only once it has been read back. Structured formats are read
 * by DuckDB itself; documents become rows in JS first (see document-rows.ts).
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import type { Column } from '../../catalog/manifest.ts';
import { BadRequestError } from '../../errors.ts';
import type { ProgressFn } from '../../progress.ts';
import { commitTempFile, tempPathFor } from '../../storage/atomic-write.ts';
import { appendDocumentRows, DOCUMENT_TABLE, documentRows, type DocumentFormat } from './document-rows.ts';
import type { FileFormat } from './file-format.ts';
import { copyToParquet, describeParquet, openConnection, watchStatement } from './parquet-sink.ts';
import { ProgressMeter } from './progress-meter.ts';
import { isBlank, readHead, type SourceHead } from './source-head.ts';
import { isTableFormat, retryTweaks, tableRelation, type ReadTweaks, type TableFormat } from './table-sources.ts';

export interface FileToParquetOptions {
  /** The source's format, usually from `detectFormat`. */
  format: FileFormat;
  /** Stored as `doc_id` in every row of a text, Markdown or PDF document. */
  docId: string;
  /**
   * The original file name, stored as `path` in text and Markdown rows and used in messages.
   * @defaultValue the source file's basename
   */
  path?: string;
  /**
   * Markdown only: one row per ATX section (`section`, `heading` columns) instead of one per file.
   * @defaultValue false
   */
  splitMarkdown?: boolean;
  /** Receives fractions up to 0.9 with bytes or rows done, total and a rate; the caller reports 1. */
  progress: ProgressFn;
}

export interface ParquetOutput {
  rows: number;
  bytes: number;
  schema: Column[];
}

interface Conversion {
  conn: DuckDBConnection;
  source: string;
  tmp: string;
  head: SourceHead;
  name: string;
  opts: FileToParquetOptions;
}

export async function fileToParquet(source: string, target: string, opts: FileToParquetOptions): Promise<ParquetOutput> {
  const name = opts.path ?? path.basename(source);
  const head = await readHead(source);
  if (head.size === 0 || isBlank(head)) throw new BadRequestError(`${name} is empty`);
  const tmp = tempPathFor(target);
  const conn = await openConnection();
  try {
    const job: Conversion = { conn, source, tmp, head, name, opts };
    const format = opts.format;
    if (isTableFormat(format)) await writeTable(job, format);
    else await writeDocument(job, format);
    const out = await describeParquet(conn, tmp);
    // Without a single record DuckDB cannot know a column, and invents one named `json`.
    if (out.rows === 0 && (format === 'json' || format === 'ndjson')) throw new BadRequestError(`${name} holds no JSON records`);
    await commitTempFile(tmp, target);
    return { ...out, bytes: (await fs.stat(target)).size };
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  } finally {
    conn.closeSync();
  }
}

/** DuckDB reads the file; a failure that a second pass with wider options fixes gets that pass. */
async function writeTable(job: Conversion, format: TableFormat): Promise<void> {
  const meter = new ProgressMeter(job.opts.progress, 'bytes', job.head.size);
  const stop = watchStatement(job.conn, job.head.size, meter);
  try {
    let tweaks: ReadTweaks | undefined = {};
    for (;;) {
      try {
        await copyToParquet(job.conn, tableRelation(job.source, format, job.head, tweaks), job.tmp);
        return meter.report(job.head.size);
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        tweaks = retryTweaks(format, message, tweaks);
        if (!tweaks) throw new BadRequestError(`could not read ${job.name} as ${format}: ${duckdbReason(message, job)}`);
      }
    }
  } finally {
    stop();
  }
}

async function writeDocument(job: Conversion, format: DocumentFormat): Promise<void> {
  const doc = await documentRows(job.source, format, { docId: job.opts.docId, path: job.name }, job.opts.splitMarkdown ?? false);
  try {
    const meter = new ProgressMeter(job.opts.progress, 'rows', doc.total);
    await appendDocumentRows(job.conn, doc, (done) => meter.reportThrottled(done));
    await copyToParquet(job.conn, `SELECT * FROM ${DOCUMENT_TABLE}`, job.tmp);
    meter.report(doc.total);
  } finally {
    await doc.close();
  }
}

/**
 * One line of DuckDB's message for the client: its first line, plus for CSV errors the cause
 * (which DuckDB puts after the offending row — the row itself is not repeated). Server paths are
 * replaced by the file's name, and the line is capped so a huge value cannot flood the job.
 */
function duckdbReason(message: string, job: Conversion): string {
  const lines = message.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  let reason = lines[0] ?? 'unknown error';
  if (/CSV Error on Line/.test(reason)) {
    const cause = lines.slice(1).find((l) => !l.startsWith('Original Line'));
    if (cause) reason += `: ${cause}`;
  }
  reason = reason.split(job.source).join(job.name).split(job.tmp).join('the output');
  return reason.length > 300 ? `${reason.slice(0, 300)}…` : reason;
}
