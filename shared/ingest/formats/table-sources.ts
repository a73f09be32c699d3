/**
 * The DuckDB relation that reads a structured file (CSV, TSV, JSON, NDJSON, Parquet), and the
 * second attempt to make when DuckDB's cheap defaults turn out too narrow for the file.
 */
import type { FileFormat } from './file-format.ts';
import { sqlString } from './parquet-sink.ts';
import { hasUtf8Bom, headText, type SourceHead } from './source-head.ts';

export type TableFormat = Extract<FileFormat, 'csv' | 'tsv' | 'json' | 'ndjson' | 'parquet'>;

export function isTableFormat(format: FileFormat): format is TableFormat {
  return format === 'csv' || format === 'tsv' || format === 'json' || format === 'ndjson' || format === 'parquet';
}

/** Read options a retry turns on after DuckDB said why the first attempt failed. */
export interface ReadTweaks {
  /**
   * Sniff CSV types over the whole file instead of its first rows.
   * @defaultValue false — DuckDB samples 20,480 rows; a full pass costs about three times as much.
   */
  sampleAll?: boolean;
  /**
   * Accept CSV records up to {@link LONG_LINE_BYTES}.
   * @defaultValue false — DuckDB's 2 MB limit; a larger one costs ~200 MB more buffer memory.
   */
  longLines?: boolean;
}

/** Records longer than this (a whole document in one CSV field) are refused even on retry. */
export const LONG_LINE_BYTES = 64 * 1024 * 1024;

/** A SELECT over `file`. `head` is needed for JSON, whose top level decides the reader. */
export function tableRelation(file: string, format: TableFormat, head: SourceHead, tweaks: ReadTweaks, delimiter?: string): string {
  switch (format) {
    case 'csv':
    case 'tsv':
      return `SELECT * FROM read_csv(${sqlString(file)}, ${csvOptions(format, tweaks, delimiter).join(', ')})`;
    case 'json':
    case 'ndjson':
      // The whole file is sampled so that keys first seen late (or only in some records) still
      // become columns instead of failing the read with "unknown key".
      return `SELECT * FROM read_json(${sqlString(file)}, format = ${sqlString(jsonLayout(format, head))}, sample_size = -1)`;
    case 'parquet':
      return `SELECT * FROM read_parquet(${sqlString(file)})`;
  }
}

function csvOptions(format: 'csv' | 'tsv', tweaks: ReadTweaks, delimiter?: string): string[] {
  // A quoted empty field ("") is an empty string and an unquoted one NULL; DuckDB's default
  // makes both NULL.
  const options = ['auto_detect = true', 'allow_quoted_nulls = false'];
  // The dialect the records are checked with (csv-check.ts): given, DuckDB's sniffer cannot fall
  // back to reading a file with broken rows as one column; it fails, and the check names the rows.
  if (delimiter !== undefined) options.push(`delim = ${sqlString(delimiter)}`, `quote = '"'`, `escape = '"'`, 'strict_mode = true');
  else if (format === 'tsv') options.push(`delim = ${sqlString('\t')}`);
  if (tweaks.sampleAll) options.push('sample_size = -1');
  if (tweaks.longLines) options.push(`max_line_size = ${LONG_LINE_BYTES}`);
  return options;
}

/**
 * read_json's `format` for this file. 'newline_delimited' rejects a UTF-8 BOM and 'array' a
 * top-level object; 'unstructured' (one row per top-level value) takes both, so it covers NDJSON
 * with a BOM and a .json holding one object (or several) rather than an array. 'auto' is not used:
 * it reads a BOM-prefixed array as a single row.
 */
function jsonLayout(format: 'json' | 'ndjson', head: SourceHead): 'array' | 'newline_delimited' | 'unstructured' {
  if (format === 'ndjson') return hasUtf8Bom(head.bytes) ? 'unstructured' : 'newline_delimited';
  return headText(head.bytes).trimStart().startsWith('[') ? 'array' : 'unstructured';
}

/** The tweaks for a second attempt after `message`, or undefined when a retry would not help. */
export function retryTweaks(format: TableFormat, message: string, tweaks: ReadTweaks): ReadTweaks | undefined {
  if (format !== 'csv' && format !== 'tsv') return undefined;
  // A type sniffed from the first rows that a later row does not fit.
  if (!tweaks.sampleAll && /^Conversion Error: CSV Error/.test(message)) return { ...tweaks, sampleAll: true };
  if (!tweaks.longLines && /Maximum line size of \d+ bytes exceeded/.test(message)) return { ...tweaks, longLines: true };
  return undefined;
}
