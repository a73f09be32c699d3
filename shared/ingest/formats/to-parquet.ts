/**
 * Any supported file → one zstd Parquet file at `target`, atomically: DuckDB writes a temporary
 * sibling that is renamed into place only once it has been read back. Structured formats are read
 * by DuckDB itself; documents become rows in JS first (see document-rows.ts).
 */
import { isUtf8 } from 'node:buffer';
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
import { CONVERSION_SHARE, ProgressMeter } from './progress-meter.ts';
import { checkCsv, csvDelimiter, CsvHeaderError, type BadRecord, type CsvCheck } from './csv-check.ts';
import { headText, isBlank, readHead, type SourceHead } from './source-head.ts';
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
  /**
   * CSV/TSV records that cannot be read as the header says (see csv-check.ts): `fail` fails the
   * conversion naming the first of them; `skip` leaves them out and returns them in `rejects`.
   * @defaultValue 'fail'
   */
  onError?: OnError;
  /**
   * With `skip`: more bad records than this fail the conversion anyway (the file is more likely
   * of another format or delimiter than slightly broken).
   * @defaultValue {@link DEFAULT_MAX_REJECTS}
   */
  maxRejects?: number;
}

export type OnError = 'fail' | 'skip';

/** The default of LAKEHOUSE_INGEST_MAX_REJECTS. */
export const DEFAULT_MAX_REJECTS = 10_000;

/** Bad records a strict failure names. */
const NAMED_IN_FAILURE = 5;

export interface Rejects {
  /** Every skipped record. */
  count: number;
  records: BadRecord[];
}

export interface ParquetOutput {
  rows: number;
  bytes: number;
  schema: Column[];
  /** CSV/TSV with `onError: 'skip'`: the records left out (none: count 0). */
  rejects?: Rejects;
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
    let rejects: Rejects | undefined;
    if (format === 'csv' || format === 'tsv') rejects = await writeDelimited(job, format);
    else if (isTableFormat(format)) await writeTable(job, format, job.source);
    else await writeDocument(job, format);
    const out = await describeParquet(conn, tmp);
    // Without a single record DuckDB cannot know a column, and invents one named `json`.
    if (out.rows === 0 && (format === 'json' || format === 'ndjson')) throw new BadRequestError(`${name} holds no JSON records`);
    await commitTempFile(tmp, target);
    return { ...out, bytes: (await fs.stat(target)).size, ...(rejects ? { rejects } : {}) };
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  } finally {
    conn.closeSync();
  }
}

/**
 * CSV and TSV, read so that no broken record is loaded silently: DuckDB's sniffer turns a file
 * with a few ragged rows into one VARCHAR column or `column0..N` without a word, and keeps NUL
 * bytes in values. So DuckDB is given the dialect (delimiter, `"` quote and escape, strict mode:
 * then it fails on any record that does not fit), a file with a NUL or a non-UTF-8 byte never
 * reaches it, and whenever it fails, the record check (csv-check.ts) says which lines and why.
 *
 * Strict (the default) costs a clean file one native pass (NUL and UTF-8, ~GB/s) before DuckDB;
 * the record-by-record check runs only when something is wrong. `skip` always checks every record
 * and has DuckDB read a clean copy beside the output (removed afterwards), as does a file that
 * mixes CRLF and LF line ends (which DuckDB's sniffer refuses).
 */
async function writeDelimited(job: Conversion, format: 'csv' | 'tsv'): Promise<Rejects | undefined> {
  const skip = job.opts.onError === 'skip';
  const maxRejects = job.opts.maxRejects ?? DEFAULT_MAX_REJECTS;
  const delimiter = csvDelimiter(headText(job.head.bytes), format);
  const clean = `${job.tmp}.clean.tmp`; // a crashed attempt's copy is swept with its other temps
  const checkProgress: ProgressFn = (f, detail) => job.opts.progress(f * CHECK_SHARE, { ...detail, phase: 'check' });
  const readProgress: ProgressFn = (f, detail) => job.opts.progress(CHECK_SHARE * CONVERSION_SHARE + f * (1 - CHECK_SHARE), detail);
  const check = async (cleanTo?: string) => {
    const meter = new ProgressMeter(checkProgress, 'bytes', job.head.size);
    return checkCsv(job.source, {
      delimiter, keep: skip ? maxRejects : NAMED_IN_FAILURE, ...(cleanTo ? { cleanTo } : {}), onBytes: (n) => meter.reportThrottled(n),
    }).catch((err: unknown) => {
      if (err instanceof CsvHeaderError) throw new BadRequestError(`could not read ${job.name} as ${format}: ${err.message}`);
      throw err;
    });
  };
  const read = (from: string, progress: ProgressFn) => writeTable({ ...job, opts: { ...job.opts, progress } }, format, from, delimiter);
  const refuse = (r: CsvCheck) => new BadRequestError(badRecordsReason(job, format, r.badCount, r.bad, skip, maxRejects));
  try {
    if (skip) {
      const result = await check(clean);
      if (result.badCount > maxRejects) throw refuse(result);
      await read(result.badCount > 0 || result.mixedLineEnds ? clean : job.source, readProgress);
      return { count: result.badCount, records: result.bad };
    }
    let duckdbFailure: unknown;
    if (await plainUtf8(job.source)) {
      try {
        await read(job.source, job.opts.progress);
        return undefined;
      } catch (err) {
        if (!(err instanceof BadRequestError)) throw err;
        duckdbFailure = err;
      }
    }
    const result = await check();
    if (result.badCount > 0) throw refuse(result);
    if (!result.mixedLineEnds && duckdbFailure) throw duckdbFailure; // not a record problem: DuckDB's own reason
    await check(clean);
    await read(clean, readProgress);
    return undefined;
  } finally {
    await fs.rm(clean, { force: true });
  }
}

/** No NUL byte and valid UTF-8 throughout: one native pass (memchr, simdutf) per 4 MiB. */
async function plainUtf8(file: string): Promise<boolean> {
  const handle = await fs.open(file, 'r');
  try {
    const chunk = Buffer.alloc(4 * 1024 * 1024);
    let carry = Buffer.alloc(0);
    let position = 0;
    for (;;) {
      const { bytesRead } = await handle.read(chunk, 0, chunk.length, position);
      if (bytesRead === 0) return isUtf8(carry);
      position += bytesRead;
      const bytes = carry.length ? Buffer.concat([carry, chunk.subarray(0, bytesRead)]) : chunk.subarray(0, bytesRead);
      if (bytes.indexOf(0) !== -1) return false;
      // a multi-byte character cut by the chunk's end is checked with the next chunk
      let cut = bytes.length;
      for (let k = 1; k <= Math.min(4, bytes.length); k++) {
        const b = bytes[bytes.length - k]!;
        if (b < 0x80) break;
        if (b >= 0xc0) {
          cut = bytes.length - k; // the last character's lead byte: it and what follows go on
          break;
        }
      }
      if (!isUtf8(bytes.subarray(0, cut))) return false;
      carry = Buffer.from(bytes.subarray(cut));
    }
  } finally {
    await handle.close();
  }
}

/** The share of a CSV conversion's progress the check pass takes (it is ~a third of the time). */
const CHECK_SHARE = 0.25;

function badRecordsReason(job: Conversion, format: string, count: number, bad: BadRecord[], skip: boolean, maxRejects: number): string {
  const lines = bad.slice(0, NAMED_IN_FAILURE).map((b) => `line ${b.line}: ${b.error}`).join('; ');
  const more = count > NAMED_IN_FAILURE ? ` (and ${count - NAMED_IN_FAILURE} more)` : '';
  const what = `${count} bad record${count === 1 ? '' : 's'}`;
  if (skip) {
    return `could not read ${job.name} as ${format}: ${what}, more than the ${maxRejects} on_error=skip may leave out (LAKEHOUSE_INGEST_MAX_REJECTS) — is it another format or delimiter? ${lines}${more}`;
  }
  return `could not read ${job.name} as ${format}: ${what} — ${lines}${more}. Nothing was loaded; fix the file, or send on_error=skip to load the good rows and keep these in <dataset>_rejects`;
}

/** DuckDB reads the file; a failure that a second pass with wider options fixes gets that pass. */
async function writeTable(job: Conversion, format: TableFormat, from: string, delimiter?: string): Promise<void> {
  const meter = new ProgressMeter(job.opts.progress, 'bytes', job.head.size);
  const stop = watchStatement(job.conn, job.head.size, meter);
  try {
    let tweaks: ReadTweaks | undefined = {};
    for (;;) {
      try {
        await copyToParquet(job.conn, tableRelation(from, format, job.head, tweaks, delimiter), job.tmp);
        return meter.report(job.head.size);
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        tweaks = retryTweaks(format, message, tweaks);
        if (!tweaks) throw new BadRequestError(`could not read ${job.name} as ${format}: ${duckdbReason(message, job, from)}`);
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
function duckdbReason(message: string, job: Conversion, from: string): string {
  const lines = message.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  let reason = lines[0] ?? 'unknown error';
  if (/CSV Error on Line/.test(reason)) {
    const cause = lines.slice(1).find((l) => !l.startsWith('Original Line'));
    if (cause) reason += `: ${cause}`;
  }
  reason = reason.split(from).join(job.name).split(job.source).join(job.name).split(job.tmp).join('the output');
  return reason.length > 300 ? `${reason.slice(0, 300)}…` : reason;
}
