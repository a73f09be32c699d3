/**
 * Documents (plain text, Markdown, PDF) become rows built in JS: one per file, per Markdown section
 * or per PDF page. They reach DuckDB through its appender as typed values, never as SQL text, so
 * no content can change a statement.
 */
import fs from 'node:fs/promises';
import type { DuckDBConnection } from '@duckdb/node-api';
import { BadRequestError } from '../../errors.ts';
import type { FileFormat } from './file-format.ts';
import { splitMarkdownSections } from './markdown-sections.ts';
import { openPdf } from './pdf-pages.ts';

export type DocumentFormat = Extract<FileFormat, 'text' | 'markdown' | 'pdf'>;

type ColumnType = 'VARCHAR' | 'INTEGER';
type Value = string | number;

export interface DocumentRows {
  columns: readonly { name: string; type: ColumnType }[];
  total: number;
  rows: AsyncIterable<Value[]>;
  close(): Promise<void>;
}

export interface DocumentIdentity {
  docId: string;
  /** The original file name, stored in the `path` column. */
  path: string;
}

const TEXT_COLUMNS = [
  { name: 'doc_id', type: 'VARCHAR' },
  { name: 'path', type: 'VARCHAR' },
  { name: 'text', type: 'VARCHAR' },
] as const;

const SECTION_COLUMNS = [
  { name: 'doc_id', type: 'VARCHAR' },
  { name: 'path', type: 'VARCHAR' },
  { name: 'section', type: 'INTEGER' },
  { name: 'heading', type: 'VARCHAR' },
  { name: 'text', type: 'VARCHAR' },
] as const;

const PAGE_COLUMNS = [
  { name: 'doc_id', type: 'VARCHAR' },
  { name: 'page', type: 'INTEGER' },
  { name: 'text', type: 'VARCHAR' },
] as const;

export async function documentRows(
  file: string,
  format: DocumentFormat,
  id: DocumentIdentity,
  splitMarkdown: boolean,
): Promise<DocumentRows> {
  if (format === 'pdf') return pdfRows(file, id);
  const text = await readUtf8(file, id.path);
  if (format === 'markdown' && splitMarkdown) {
    const sections = splitMarkdownSections(text);
    const rows = sections.map((s, i): Value[] => [id.docId, id.path, i, s.heading, s.text]);
    return inMemory(SECTION_COLUMNS, rows);
  }
  return inMemory(TEXT_COLUMNS, [[id.docId, id.path, text]]);
}

function inMemory(columns: DocumentRows['columns'], rows: Value[][]): DocumentRows {
  return { columns, total: rows.length, rows: toAsync(rows), close: async () => {} };
}

async function* toAsync(rows: Value[][]): AsyncGenerator<Value[]> {
  yield* rows;
}

async function pdfRows(file: string, id: DocumentIdentity): Promise<DocumentRows> {
  const pdf = await openPdf(file, id.path);
  async function* rows(): AsyncGenerator<Value[]> {
    for await (const p of pdf.pages()) yield [id.docId, p.page, p.text];
  }
  return { columns: PAGE_COLUMNS, total: pdf.count, rows: rows(), close: () => pdf.close() };
}

/** The whole file as UTF-8 (a BOM dropped); anything else is refused rather than mangled. */
async function readUtf8(file: string, name: string): Promise<string> {
  const bytes = await fs.readFile(file);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new BadRequestError(`${name} is not valid UTF-8 text`);
  }
}

/** The temporary table rows are appended to; temporary tables are private to the connection. */
export const DOCUMENT_TABLE = 'document_rows';

/** Creates {@link DOCUMENT_TABLE} and appends every row, calling `onRow` with the count so far. */
export async function appendDocumentRows(
  conn: DuckDBConnection,
  doc: DocumentRows,
  onRow: (done: number) => void,
): Promise<void> {
  const ddl = doc.columns.map((c) => `"${c.name}" ${c.type}`).join(', ');
  await conn.run(`CREATE OR REPLACE TEMP TABLE ${DOCUMENT_TABLE} (${ddl})`);
  const appender = await conn.createAppender(DOCUMENT_TABLE);
  try {
    let done = 0;
    for await (const row of doc.rows) {
      row.forEach((value) => (typeof value === 'number' ? appender.appendInteger(value) : appender.appendVarchar(value)));
      appender.endRow();
      onRow(++done);
    }
    appender.flushSync();
  } finally {
    appender.closeSync();
  }
}
