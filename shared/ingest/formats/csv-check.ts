/**
 * One pass over a CSV/TSV file's bytes, before DuckDB reads it, that finds every record DuckDB
 * would silently mangle: a field count other than the header's, an unterminated quote, text
 * after a closing quote (`"ab"c`), a NUL byte, bytes that are not UTF-8.
 * DuckDB's sniffer does not report these: a file with one ragged row is read as a single VARCHAR
 * column named after the whole header line, or as `column0..columnN` (see README.md, Ingest).
 *
 * The first record is the header: its field count is what every other record must have, and a
 * header that is itself unreadable fails the file whatever the caller asked. When `cleanTo` is
 * given, the good records are copied there with `\n` line ends, so DuckDB reads a file that is
 * consistent by construction; otherwise nothing is written (the strict path just looks).
 */
import fs from 'node:fs/promises';
import { isUtf8 } from 'node:buffer';
import { hasUtf8Bom } from './source-head.ts';

/** One record that was not read. `line` is the 1-based physical line it starts on. */
export interface BadRecord {
  line: number;
  error: string;
  /** The record as written (lossy UTF-8, capped at {@link RAW_LINE_CHARS}). */
  raw: string;
}

export interface CsvCheck {
  /** Records after the header that are fine. */
  goodRecords: number;
  /** How many records were bad (all of them, not only those kept in `bad`). */
  badCount: number;
  /** The first `keep` bad records. */
  bad: BadRecord[];
  /** Line ends were a mix of CRLF and LF (DuckDB's sniffer refuses such a file). */
  mixedLineEnds: boolean;
  headerFields: number;
}

export interface CsvCheckOptions {
  delimiter: string;
  /** Bad records to keep in `bad`. */
  keep: number;
  /** Write the header and the good records here (LF line ends). */
  cleanTo?: string;
  /** Called with bytes read so far. */
  onBytes?: (bytes: number) => void;
}

/** A raw rejected line is kept up to this many characters; a longer one ends with `…`. */
export const RAW_LINE_CHARS = 8192;

const CHUNK = 4 * 1024 * 1024;
const QUOTE = 0x22;
const LF = 0x0a;
const CR = 0x0d;

/** The header is unreadable: no record of the file can be trusted. */
export class CsvHeaderError extends Error {}

export async function checkCsv(file: string, opts: CsvCheckOptions): Promise<CsvCheck> {
  const delim = opts.delimiter.charCodeAt(0);
  const handle = await fs.open(file, 'r');
  const out = opts.cleanTo ? await fs.open(opts.cleanTo, 'w') : undefined;
  const result: CsvCheck = { goodRecords: 0, badCount: 0, bad: [], mixedLineEnds: false, headerFields: 0 };
  try {
    const { size } = await handle.stat();
    let position = 0;
    let skipBom = true;
    // Bytes of the record in progress (it began in an earlier chunk), kept only when needed.
    let pending: Buffer[] = [];
    // Parser state carried across chunks.
    let fields = 1;
    let quoted = false;
    let afterQuote = false; // inside quotes, the previous byte was a quote (closing, or half of "")
    let atFieldStart = true;
    let fieldClosed = false; // a quoted field closed: only a delimiter or a line end may follow
    let problem: string | undefined;
    let line = 1;
    let recordLine = 1;
    let sawCrlf = false;
    let sawLf = false;
    let records = 0;
    const write: Buffer[] = [];
    let writeBytes = 0;
    const flush = async (force: boolean) => {
      if (!out || (!force && writeBytes < CHUNK)) return;
      if (write.length) await out.write(Buffer.concat(write));
      write.length = 0;
      writeBytes = 0;
    };
    const keepBad = (rec: Buffer, error: string) => {
      result.badCount++;
      if (result.bad.length < opts.keep) result.bad.push({ line: recordLine, error, raw: rawText(rec) });
    };
    // Whether the chunk being parsed is valid UTF-8 up to its last ASCII byte: then a record
    // inside it needs no check of its own (one SIMD pass per chunk instead of one per record).
    let chunkUtf8 = true;
    const endRecord = (rec: Buffer, blank: boolean, spansChunks: boolean) => {
      records++;
      const first = records === 1;
      if (!problem && (spansChunks || !chunkUtf8) && !isUtf8(rec)) problem = 'not UTF-8 encoded (save the file as UTF-8)';
      if (first) {
        result.headerFields = fields;
        if (problem) throw new CsvHeaderError(`the header (line ${recordLine}) is unreadable: ${problem}`);
      } else if (blank) {
        // a blank line between records: DuckDB skips it too
      } else if (problem) keepBad(rec, problem);
      else if (fields !== result.headerFields) {
        keepBad(rec, `${fields} field${fields === 1 ? '' : 's'} where the header has ${result.headerFields}`);
      } else result.goodRecords++;
      if (out && !blank && (first || (!problem && fields === result.headerFields))) {
        write.push(rec, Buffer.from('\n'));
        writeBytes += rec.length + 1;
      }
      fields = 1;
      atFieldStart = true;
      fieldClosed = false;
      problem = undefined;
    };

    while (position < size) {
      const buf = Buffer.alloc(Math.min(CHUNK, size - position));
      const { bytesRead } = await handle.read(buf, 0, buf.length, position);
      if (bytesRead === 0) break;
      let chunk = buf.subarray(0, bytesRead);
      if (skipBom) {
        if (hasUtf8Bom(chunk)) chunk = chunk.subarray(3);
        skipBom = false;
      }
      let recStart = 0;
      let blank = pending.length === 0;
      let lastAscii = chunk.length - 1;
      while (lastAscii >= 0 && chunk[lastAscii]! >= 0x80) lastAscii--;
      chunkUtf8 = isUtf8(chunk.subarray(0, lastAscii + 1));
      for (let i = 0; i < chunk.length; i++) {
        const b = chunk[i]!;
        if (b === 0 && !problem) problem = 'contains a NUL byte';
        if (quoted) {
          if (afterQuote) {
            afterQuote = false;
            if (b === QUOTE) continue; // "" inside quotes
            quoted = false;
            fieldClosed = true;
            // fall through: this byte follows a closed quoted field
          } else {
            if (b === QUOTE) afterQuote = true;
            else if (b === LF) line++;
            continue;
          }
        }
        if (b === delim) {
          fields++;
          atFieldStart = true;
          fieldClosed = false;
          blank = false;
        } else if (b === LF) {
          const end = i > recStart && chunk[i - 1] === CR ? i - 1 : i;
          if (end !== i) sawCrlf = true;
          else sawLf = true;
          const piece = chunk.subarray(recStart, end);
          const spans = pending.length > 0;
          const rec = spans ? Buffer.concat([...pending, piece]) : piece;
          pending = [];
          endRecord(rec, blank && rec.length === 0, spans);
          line++;
          recordLine = line;
          recStart = i + 1;
          blank = true;
        } else if (b === QUOTE) {
          blank = false;
          if (atFieldStart) {
            quoted = true;
            atFieldStart = false;
          } else if (fieldClosed && !problem) problem = 'text after a closing quote';
          // a quote inside an unquoted field (`5" screen`) is a literal character, as DuckDB reads it
        } else if (b !== CR) {
          blank = false;
          if (fieldClosed && !problem) problem = 'text after a closing quote';
          atFieldStart = false;
        }
      }
      if (recStart < chunk.length) pending.push(Buffer.from(chunk.subarray(recStart)));
      position += bytesRead;
      opts.onBytes?.(position);
      await flush(false);
    }
    if (quoted && !afterQuote) {
      // The quote never closed: it swallowed every line from here to the end of the file.
      const rec = Buffer.concat(pending);
      pending = [];
      problem = `unterminated quote (runs from line ${recordLine} to the end of the file)`;
      endRecord(rec, false, true);
    } else if (pending.length) {
      quoted = false;
      const rec = Buffer.concat(pending);
      const trimmed = rec.length && rec[rec.length - 1] === CR ? rec.subarray(0, -1) : rec;
      endRecord(trimmed, trimmed.length === 0, true);
    }
    result.mixedLineEnds = sawCrlf && sawLf;
    await flush(true);
    return result;
  } finally {
    await handle.close();
    await out?.close();
  }
}

function rawText(rec: Buffer): string {
  const text = rec.subarray(0, RAW_LINE_CHARS * 4).toString('utf8').replace(/\0/g, '\\0');
  return text.length > RAW_LINE_CHARS ? `${text.slice(0, RAW_LINE_CHARS)}…` : text;
}

/**
 * The delimiter of a CSV: of `,`, `;` and `|`, the one that splits the header (first record,
 * quotes respected) into the most fields; `,` when none splits it. TSV is always a tab.
 */
export function csvDelimiter(headText: string, format: 'csv' | 'tsv'): string {
  if (format === 'tsv') return '\t';
  let best = ',';
  let most = 1;
  for (const d of [',', ';', '|']) {
    const n = headerFields(headText, d);
    if (n > most) {
      best = d;
      most = n;
    }
  }
  return best;
}

function headerFields(text: string, delimiter: string): number {
  let fields = 1;
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') i++;
      else if (ch === '"') quoted = false;
    } else if (ch === '"') quoted = true;
    else if (ch === delimiter) fields++;
    else if (ch === '\n') break;
  }
  return fields;
}
