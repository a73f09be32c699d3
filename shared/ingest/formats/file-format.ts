/**
 * Which reader a file needs. Content decides where it is decisive (magic numbers, an unmistakable
 * JSON shape), then the name's extension, then the shape of the first lines: consistent delimiter
 * counts make CSV or TSV, anything else readable is plain text.
 */
import path from 'node:path';
import { BadRequestError } from '../../errors.ts';
import { headText, isBlank, readHead, type SourceHead } from './source-head.ts';

export const FILE_FORMATS = ['csv', 'tsv', 'json', 'ndjson', 'parquet', 'text', 'markdown', 'pdf'] as const;
export type FileFormat = (typeof FILE_FORMATS)[number];

const BY_EXTENSION: Readonly<Record<string, FileFormat>> = {
  '.csv': 'csv',
  '.tsv': 'tsv',
  '.tab': 'tsv',
  '.json': 'json',
  '.jsonl': 'ndjson',
  '.ndjson': 'ndjson',
  '.parquet': 'parquet',
  '.txt': 'text',
  '.md': 'markdown',
  '.markdown': 'markdown',
  '.pdf': 'pdf',
};

/**
 * Above these shares of control characters, or of control plus undecodable ones, a head is binary.
 * Random bytes give ~10% and ~55%; text in a legacy 8-bit encoding stays well under the second
 * (and is refused later, by the reader, with a clearer reason).
 */
const CONTROL_RATIO = 0.1;
const ODD_RATIO = 0.3;
/** Records the delimiter sniff looks at. */
const SNIFF_RECORDS = 20;
const DELIMITERS = ['\t', ',', ';', '|'] as const;

/** @param originalName the uploaded file's name; defaults to `file`'s own. */
export async function detectFormat(file: string, originalName?: string): Promise<FileFormat> {
  const name = originalName ?? path.basename(file);
  const head = await readHead(file);
  const unreadable = (why: string) => new BadRequestError(`unknown or unreadable format: ${name} ${why}`);
  if (head.size === 0) throw unreadable('is empty');
  const magic = formatFromMagic(head.bytes);
  if (magic) return magic;
  const byName = BY_EXTENSION[path.extname(name).toLowerCase()];
  if (byName === 'parquet') throw unreadable('is named .parquet but does not start with PAR1');
  if (byName === 'pdf') throw unreadable('is named .pdf but has no %PDF- header');
  // A NUL in a file named .csv/.tsv is a broken record, which the CSV check names by line.
  const text = readableText(head, unreadable, byName === 'csv' || byName === 'tsv');
  if (isBlank(head)) throw unreadable('is empty');
  return jsonShape(text, head.complete) ?? byName ?? looseJson(text) ?? delimitedShape(text, head.complete) ?? 'text';
}

function formatFromMagic(bytes: Buffer): FileFormat | undefined {
  if (bytes.subarray(0, 4).toString('latin1') === 'PAR1') return 'parquet';
  if (bytes.subarray(0, 5).toString('latin1') === '%PDF-') return 'pdf';
  return undefined;
}

/** The head as text, or a clear refusal for binary data and UTF-16. */
function readableText(head: SourceHead, unreadable: (why: string) => BadRequestError, nulIsControl = false): string {
  const lead = head.bytes.subarray(0, 2).toString('hex');
  if (lead === 'fffe' || lead === 'feff') throw unreadable('is UTF-16 text; convert it to UTF-8');
  if (!nulIsControl && head.bytes.includes(0)) throw unreadable('is binary data');
  const text = headText(head.bytes);
  let controls = 0;
  let undecodable = 0;
  for (const ch of text) {
    const code = ch.codePointAt(0) ?? 0;
    if (code === 0xfffd) undecodable++;
    else if ((code < 0x20 && !'\t\n\r\f\v\x1b'.includes(ch)) || code === 0x7f) controls++;
  }
  const length = Math.max(text.length, 1);
  if (controls / length > CONTROL_RATIO || (controls + undecodable) / length > ODD_RATIO) throw unreadable('is binary data');
  return text;
}

/**
 * JSON that no other format could be: an array of objects, a whole file that parses, or lines
 * that are each one JSON object. A lone `[` or `{` is not enough: `[INFO] …` log lines,
 * `[[wiki links]]` in Markdown.
 */
function jsonShape(text: string, complete: boolean): FileFormat | undefined {
  const body = text.trimStart();
  if (/^\[\s*\{\s*["}]/.test(body)) return 'json';
  if (complete && body.startsWith('[') && parses(body)) return 'json';
  if (!body.startsWith('{')) return undefined;
  const lines = body.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  if (!complete && !text.endsWith('\n')) lines.pop();
  const sample = lines.slice(0, SNIFF_RECORDS);
  if (sample.length > 0 && sample.every(isJsonObject)) return 'ndjson';
  if (complete && isJsonObject(body)) return 'json';
  return undefined;
}

/** Without a telling name, a file that opens like JSON (say, one pretty-printed object) is JSON. */
function looseJson(text: string): FileFormat | undefined {
  return /^\s*[[{]\s*["{[\]}]/.test(text) ? 'json' : undefined;
}

function parses(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

function isJsonObject(text: string): boolean {
  if (!text.startsWith('{')) return false;
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value);
  } catch {
    return false;
  }
}

/**
 * CSV or TSV when some delimiter splits every sampled record (at least two) into the same number
 * (at least two) of fields, quotes respected — or when the first line is a header row (every
 * field a column name) and at least half of the sampled records have its field count: a CSV with
 * some broken rows is still a CSV, and the CSV check then names those rows (csv-check.ts) instead
 * of the whole file turning into one text document. Prefers the delimiter giving the most fields.
 */
function delimitedShape(text: string, complete: boolean): FileFormat | undefined {
  let best: { delimiter: string; fields: number } | undefined;
  for (const delimiter of DELIMITERS) {
    const counts = fieldCounts(text, delimiter, complete);
    const fields = counts[0] ?? 0;
    if (counts.length < 2 || fields < 2 || fields <= (best?.fields ?? 0)) continue;
    const consistent = counts.every((c) => c === fields);
    const matching = counts.filter((c) => c === fields).length;
    if (consistent || (matching >= 2 && matching * 2 >= counts.length && isHeaderRow(text, delimiter))) best = { delimiter, fields };
  }
  if (!best) return undefined;
  return best.delimiter === '\t' ? 'tsv' : 'csv';
}

/** A column name as header rows have them: a word, no sentence (`id`, `unit_price`, `"Order ID"`). */
const HEADER_CELL = /^\s*(?:"[^"\n]{1,64}"|[\p{L}_][\p{L}\p{N}_.\-]{0,63})\s*$/u;

function isHeaderRow(text: string, delimiter: string): boolean {
  const first = text.split('\n', 1)[0]!.replace(/\r$/, '');
  const cells = first.split(delimiter);
  return cells.length >= 2 && cells.every((c) => HEADER_CELL.test(c));
}

/** Fields per record of the first {@link SNIFF_RECORDS} complete records, RFC 4180 quoting. */
function fieldCounts(text: string, delimiter: string, complete: boolean): number[] {
  const counts: number[] = [];
  let fields = 1;
  let quoted = false;
  let atFieldStart = true;
  let blankRecord = true;
  for (let i = 0; i < text.length && counts.length < SNIFF_RECORDS; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') i++;
      else if (ch === '"') quoted = false;
      continue;
    }
    if (ch === '"' && atFieldStart) {
      quoted = true;
      atFieldStart = false;
      blankRecord = false;
    } else if (ch === delimiter) {
      fields++;
      atFieldStart = true;
      blankRecord = false;
    } else if (ch === '\n') {
      if (!blankRecord) counts.push(fields);
      fields = 1;
      atFieldStart = true;
      blankRecord = true;
    } else if (ch !== '\r') {
      atFieldStart = false;
      blankRecord = false;
    }
  }
  // The last record counts only if the file ends there (not cut off by the head).
  if (complete && !quoted && !blankRecord && counts.length < SNIFF_RECORDS) counts.push(fields);
  return counts;
}
