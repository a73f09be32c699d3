/**
 * File formats → Parquet: format detection and conversion of awkward real-world inputs. Every
 * output is read back with a fresh DuckDB and compared value for value with what the input holds.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { BadRequestError } from '../../shared/errors.ts';
import { detectFormat, FILE_FORMATS, type FileFormat } from '../../shared/ingest/formats/file-format.ts';
import { splitMarkdownSections } from '../../shared/ingest/formats/markdown-sections.ts';
import { fileToParquet, type FileToParquetOptions, type ParquetOutput } from '../../shared/ingest/formats/to-parquet.ts';
import { generateCsv, sqlString as q, withDuckDB } from '../helpers/duckdb.ts';

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'formats');
const BOM = '\ufeff';

let root: string;
let seq = 0;

before(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'formats-'));
});

after(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

type Progress = { fraction: number; detail: Record<string, number | string> };

interface Case {
  /** The input file, named as uploaded. */
  file: string;
  /** The directory the output is written to: holds nothing else. */
  outDir: string;
  target: string;
}

/** A fresh directory holding `name` with `content`, and an empty output directory. */
async function input(name: string, content: string | Uint8Array): Promise<Case> {
  const dir = path.join(root, `case-${++seq}`);
  await fs.mkdir(path.join(dir, 'in'), { recursive: true });
  await fs.mkdir(path.join(dir, 'out'));
  const file = path.join(dir, 'in', name);
  await fs.writeFile(file, content);
  return { file, outDir: path.join(dir, 'out'), target: path.join(dir, 'out', 'part.parquet') };
}

async function convert(
  c: Case,
  format: FileFormat,
  extra: Partial<FileToParquetOptions> = {},
): Promise<{ out: ParquetOutput; reports: Progress[] }> {
  const reports: Progress[] = [];
  const out = await fileToParquet(c.file, c.target, {
    format,
    docId: 'doc-1',
    progress: (fraction, detail = {}) => void reports.push({ fraction, detail }),
    ...extra,
  });
  assert.deepEqual(await fs.readdir(c.outDir), ['part.parquet'], 'only the target is left, no temporary file');
  assert.equal(out.bytes, (await fs.stat(c.target)).size);
  for (const r of reports) assert.ok(r.fraction >= 0 && r.fraction <= 0.9, `fraction ${r.fraction} within [0, 0.9]`);
  return { out, reports };
}

/** Converting fails with a one-line BadRequestError matching `pattern` and leaves no file behind. */
async function rejects(c: Case, format: FileFormat, pattern: RegExp, extra: Partial<FileToParquetOptions> = {}): Promise<void> {
  await assert.rejects(convert(c, format, extra), (err: unknown) => {
    assert.ok(err instanceof BadRequestError, `expected a BadRequestError, got ${String(err)}`);
    assert.match(err.message, pattern);
    assert.doesNotMatch(err.message, /\n/, 'one line, no stack');
    assert.ok(!err.message.includes(root), `no server path in "${err.message}"`);
    return true;
  });
  assert.deepEqual(await fs.readdir(c.outDir), [], 'the temporary file is removed');
}

async function rejectsDetect(file: string, name: string | undefined, pattern: RegExp): Promise<void> {
  await assert.rejects(detectFormat(file, name), (err: unknown) => {
    assert.ok(err instanceof BadRequestError, `expected a BadRequestError, got ${String(err)}`);
    assert.match(err.message, /^unknown or unreadable format: /);
    assert.match(err.message, pattern);
    return true;
  });
}

/** Every value as DuckDB's VARCHAR cast (NULL stays null): CSV cells are text, so they compare as such. */
async function readAsText(file: string): Promise<Record<string, string | null>[]> {
  return withDuckDB(async (db) => {
    const rows = await db.all(`SELECT COLUMNS(*)::VARCHAR FROM read_parquet(${q(file)})`);
    return rows as Record<string, string | null>[];
  });
}

/** Rows as plain JSON values: BIGINT becomes a number, structs objects, lists arrays. */
async function readRows(file: string): Promise<Record<string, unknown>[]> {
  const rows = await withDuckDB((db) => db.all(`SELECT * FROM read_parquet(${q(file)})`));
  return JSON.parse(JSON.stringify(rows, (_k, v: unknown) => (typeof v === 'bigint' ? Number(v) : v))) as Record<string, unknown>[];
}

async function readTypes(file: string): Promise<Record<string, string>> {
  const rows = await withDuckDB((db) => db.all(`DESCRIBE SELECT * FROM read_parquet(${q(file)})`));
  return Object.fromEntries(rows.map((r) => [String(r['column_name']), String(r['column_type'])]));
}

/** Compression codecs and rows per row group, from the Parquet footer. */
async function parquetLayout(file: string): Promise<{ codecs: string[]; groupRows: number[] }> {
  return withDuckDB(async (db) => {
    const codecs = await db.all(`SELECT DISTINCT compression FROM parquet_metadata(${q(file)})`);
    const groups = await db.all(
      `SELECT row_group_id, max(row_group_num_rows) AS n FROM parquet_metadata(${q(file)}) GROUP BY 1 ORDER BY 1`,
    );
    return { codecs: codecs.map((r) => String(r['compression'])), groupRows: groups.map((r) => Number(r['n'])) };
  });
}

/** RFC 4180: quote fields holding the delimiter, a quote, CR or LF; double inner quotes. */
function toDelimited(header: string[], rows: (string | null)[][], delimiter: string, eol: string): string {
  const cell = (v: string | null): string => {
    if (v === null) return '';
    return v === '' || /["\r\n]/.test(v) || v.includes(delimiter) ? `"${v.replace(/"/g, '""')}"` : v;
  };
  return [header, ...rows].map((r) => r.map(cell).join(delimiter)).join(eol) + eol;
}

function zip(header: string[], rows: (string | null)[][]): Record<string, string | null>[] {
  return rows.map((r) => Object.fromEntries(header.map((h, i) => [h, r[i] ?? null])));
}

/** Deterministic bytes that are no known format. */
function garbage(length: number): Buffer {
  const bytes = Buffer.alloc(length);
  let x = 0x2545f491;
  for (let i = 0; i < length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    bytes[i] = x >>> 24;
  }
  return bytes;
}

describe('formats: CSV and TSV', () => {
  const header = ['id', 'name', 'note', 'price', 'day', 'seen_at'];
  const rows: (string | null)[][] = [
    ['1', 'Zoë "the boss" Smith', 'first line\r\nsecond line, with comma', '2.5', '2024-01-02', '2024-01-02 03:04:05'],
    ['2', '中文 😀', '', '-0.125', '2024-02-29', '2024-02-29 23:59:59'],
    ['3', null, 'plain', null, null, null],
    ['4', 'Émile', 'a "quoted" word\nand a bare newline', '1024.75', '1999-12-31', '2000-01-01 00:00:00'],
  ];

  it('reads quoted newlines, doubled quotes, CRLF, UTF-8, a BOM, and keeps "" apart from NULL', async () => {
    const c = await input('awkward.csv', BOM + toDelimited(header, rows, ',', '\r\n'));
    assert.equal(await detectFormat(c.file, 'awkward.csv'), 'csv');
    assert.equal(await detectFormat(c.file, 'upload'), 'csv', 'sniffed without an extension');
    const { out, reports } = await convert(c, 'csv');
    assert.equal(out.rows, rows.length);
    assert.deepEqual(await readAsText(c.target), zip(header, rows));
    const types = { id: 'BIGINT', name: 'VARCHAR', note: 'VARCHAR', price: 'DOUBLE', day: 'DATE', seen_at: 'TIMESTAMP' };
    assert.deepEqual(await readTypes(c.target), types);
    assert.deepEqual(out.schema, Object.entries(types).map(([name, type]) => ({ name, type })));
    const last = reports.at(-1);
    assert.equal(last?.fraction, 0.9);
    assert.equal(last?.detail['bytes_total'], (await fs.stat(c.file)).size);
    assert.equal(last?.detail['bytes_done'], last?.detail['bytes_total']);
    assert.equal(typeof last?.detail['mb_per_s'], 'number');
  });

  it('sniffs a semicolon-separated file with decimal commas', async () => {
    const semi = [
      ['Müller', '3,5', 'a, b'],
      ['Ng', '4', 'c'],
      ['O\'Brien', '10,25', ''],
    ];
    const c = await input('export', toDelimited(['who', 'amount', 'tags'], semi, ';', '\n'));
    assert.equal(await detectFormat(c.file, 'export'), 'csv');
    await convert(c, 'csv');
    assert.deepEqual(await readAsText(c.target), zip(['who', 'amount', 'tags'], semi));
  });

  it('reads TSV with commas and quotes inside fields', async () => {
    const tsv = [
      ['1', 'a, b, c', 'say "hi"'],
      ['2', 'x', 'tab\tinside'],
    ];
    const c = await input('data.tab', toDelimited(['n', 'list', 'quote'], tsv, '\t', '\n'));
    assert.equal(await detectFormat(c.file, 'data.tab'), 'tsv');
    assert.equal(await detectFormat(c.file, 'data'), 'tsv', 'sniffed: tabs, not commas');
    await convert(c, 'tsv');
    assert.deepEqual(await readAsText(c.target), zip(['n', 'list', 'quote'], tsv));
    assert.deepEqual(await readTypes(c.target), { n: 'BIGINT', list: 'VARCHAR', quote: 'VARCHAR' });
  });

  it('turns a header-only CSV into 0 rows with the header as schema', async () => {
    const c = await input('header.csv', 'alpha,beta,gamma\r\n');
    assert.equal(await detectFormat(c.file, 'header.csv'), 'csv');
    const { out } = await convert(c, 'csv');
    assert.equal(out.rows, 0);
    const expected = { alpha: 'VARCHAR', beta: 'VARCHAR', gamma: 'VARCHAR' };
    assert.deepEqual(await readTypes(c.target), expected);
    assert.deepEqual(await readAsText(c.target), []);
  });

  it('refuses an empty file, and one holding only a BOM', async () => {
    for (const content of ['', BOM]) {
      const c = await input('empty.csv', content);
      await rejectsDetect(c.file, 'empty.csv', /empty/);
      await rejects(c, 'csv', /empty/);
    }
  });

  it('reads a value that does not fit the type sniffed from the first 20,480 rows', async () => {
    const lines = ['id,code'];
    for (let i = 0; i < 30_000; i++) lines.push(`${i},${i}`);
    lines.push('30000,A-17');
    const c = await input('late.csv', lines.join('\n') + '\n');
    const { out } = await convert(c, 'csv');
    assert.equal(out.rows, 30_001);
    assert.deepEqual(await readTypes(c.target), { id: 'BIGINT', code: 'VARCHAR' });
    const tail = await withDuckDB((db) => db.all(`SELECT code FROM read_parquet(${q(c.target)}) WHERE id >= 29999 ORDER BY id`));
    assert.deepEqual(tail.map((r) => r['code']), ['29999', 'A-17']);
  });

  it('reads a field longer than DuckDB’s default 2 MB line limit', async () => {
    const body = 'lorem ipsum, '.repeat(250_000);
    const c = await input('long.csv', toDelimited(['id', 'body'], [['1', body], ['2', 'short']], ',', '\n'));
    await convert(c, 'csv');
    assert.deepEqual(await readAsText(c.target), zip(['id', 'body'], [['1', body], ['2', 'short']]));
  });

  it('refuses a CSV that is not UTF-8 with DuckDB’s reason on one line', async () => {
    const c = await input('latin1.csv', Buffer.from('name,city\nJos\xe9,M\xfcnchen\n', 'latin1'));
    await rejects(c, 'csv', /could not read latin1\.csv as csv: .*not utf-8 encoded/i);
  });

  it('writes zstd row groups of 122,880 rows and reports progress in bytes', async () => {
    const c = await input('big.csv', '');
    await generateCsv(c.file, 300_000);
    const { out, reports } = await convert(c, 'csv');
    assert.equal(out.rows, 300_000);
    const layout = await parquetLayout(c.target);
    assert.deepEqual(layout.codecs, ['ZSTD']);
    // ROW_GROUP_SIZE is a target: DuckDB's parallel writer cuts groups near it, not exactly at it.
    assert.equal(layout.groupRows.reduce((a, b) => a + b, 0), 300_000);
    assert.ok(layout.groupRows.length >= 2 && layout.groupRows.length <= 4, `row groups ${layout.groupRows.join(', ')}`);
    for (const n of layout.groupRows) assert.ok(n <= 1.25 * 122_880, `row group of ${n} rows`);
    const fractions = reports.map((r) => r.fraction);
    assert.deepEqual(fractions, [...fractions].sort((a, b) => a - b), 'progress never goes back');
    assert.equal(fractions.at(-1), 0.9);
  });
});

describe('formats: JSON and NDJSON', () => {
  it('keeps nested objects as STRUCT, lists as lists, embedded JSON text as text', async () => {
    const records = [
      { id: 1, user: { name: 'Zoë', tags: ['a', 'b'] }, payload: '{"k": [1, 2], "s": "x"}', score: 1.5 },
      { id: 2, user: { name: '中文 😀', tags: [] }, payload: '[]', score: null, extra: true },
      { id: 3, user: { name: 'quote " and \\ backslash', tags: ['c'] }, payload: 'not json', score: -2 },
    ];
    const c = await input('records.csv', JSON.stringify(records, null, 2));
    assert.equal(await detectFormat(c.file, 'records.csv'), 'json', 'an array of objects beats the .csv name');
    const { out } = await convert(c, 'json');
    assert.equal(out.rows, 3);
    const types = await readTypes(c.target);
    assert.equal(types['user'], 'STRUCT("name" VARCHAR, tags VARCHAR[])');
    assert.equal(types['payload'], 'VARCHAR');
    assert.equal(types['extra'], 'BOOLEAN');
    const expected = records.map((r) => ({ id: r.id, user: r.user, payload: r.payload, score: r.score, extra: r.extra ?? null }));
    assert.deepEqual(await readRows(c.target), expected);
  });

  it('reads a BOM-prefixed array and a file holding a single object', async () => {
    const array = await input('bom.json', BOM + JSON.stringify([{ a: 1 }, { a: 2 }]));
    assert.equal(await detectFormat(array.file, 'bom.json'), 'json');
    await convert(array, 'json');
    assert.deepEqual(await readRows(array.target), [{ a: 1 }, { a: 2 }]);

    const single = { name: 'config', limits: { rows: 10, tags: ['x'] } };
    const one = await input('config', JSON.stringify(single, null, 2));
    assert.equal(await detectFormat(one.file, 'config'), 'json');
    await convert(one, 'json');
    assert.deepEqual(await readRows(one.target), [single]);
  });

  it('reads NDJSON whose keys come and go, including one first seen after DuckDB’s sample', async () => {
    const records: Record<string, unknown>[] = [];
    for (let i = 0; i < 25_000; i++) {
      const r: Record<string, unknown> = { id: i, name: `n${i}` };
      if (i % 3 === 0) r['city'] = i % 2 ? 'Zürich' : '東京';
      if (i === 24_999) r['late'] = 'only here';
      records.push(r);
    }
    const c = await input('events.txt', records.map((r) => JSON.stringify(r)).join('\n') + '\n');
    assert.equal(await detectFormat(c.file, 'events.txt'), 'ndjson', 'one object per line beats the .txt name');
    const { out } = await convert(c, 'ndjson');
    assert.equal(out.rows, records.length);
    const expected = records.map((r) => ({ id: r['id'], name: r['name'], city: r['city'] ?? null, late: r['late'] ?? null }));
    const actual = await readRows(c.target);
    assert.deepEqual(Object.keys(actual[0] ?? {}).sort(), ['city', 'id', 'late', 'name']);
    assert.deepEqual(actual, expected);
  });

  it('reads NDJSON with a BOM, CRLF and blank lines', async () => {
    const records = [{ a: 1, b: 'x' }, { a: 2 }, { b: 'é' }];
    const c = await input('bom.ndjson', BOM + records.map((r) => JSON.stringify(r)).join('\r\n\r\n') + '\r\n');
    assert.equal(await detectFormat(c.file, 'bom.ndjson'), 'ndjson');
    await convert(c, 'ndjson');
    assert.deepEqual(await readRows(c.target), records.map((r) => ({ a: r.a ?? null, b: r.b ?? null })));
  });

  it('refuses an empty JSON array instead of inventing a column', async () => {
    const c = await input('none.json', '[]');
    assert.equal(await detectFormat(c.file, 'none.json'), 'json');
    await rejects(c, 'json', /holds no JSON records/);
  });
});

describe('formats: Parquet', () => {
  it('re-writes any Parquet as zstd with our row groups, every value intact', async () => {
    const c = await input('misnamed.csv', '');
    const source = `SELECT i::BIGINT AS id, (i * 0.25)::DECIMAL(10, 2) AS amount, 'név ' || i AS label,
        CASE WHEN i % 7 = 0 THEN NULL ELSE TIMESTAMP '2024-01-01' + to_seconds(i) END AS at,
        [i, i + 1] AS pair, {'k': i % 3, 's': 'x' || i} AS st
      FROM range(5000) t(i)`;
    await withDuckDB((db) => db.all(`COPY (${source}) TO ${q(c.file)} (FORMAT parquet, COMPRESSION snappy, ROW_GROUP_SIZE 1000)`));
    assert.equal(await detectFormat(c.file, 'misnamed.csv'), 'parquet', 'PAR1 beats the .csv name');
    const { out } = await convert(c, 'parquet');
    assert.equal(out.rows, 5000);
    const layout = await parquetLayout(c.target);
    assert.deepEqual(layout.codecs, ['ZSTD']);
    assert.deepEqual(layout.groupRows, [5000]);
    const differences = await withDuckDB(async (db) => {
      const [inOnly] = await db.all(`SELECT count(*) AS n FROM (FROM read_parquet(${q(c.file)}) EXCEPT ALL FROM read_parquet(${q(c.target)}))`);
      const [outOnly] = await db.all(`SELECT count(*) AS n FROM (FROM read_parquet(${q(c.target)}) EXCEPT ALL FROM read_parquet(${q(c.file)}))`);
      return [Number(inOnly?.['n']), Number(outOnly?.['n'])];
    });
    assert.deepEqual(differences, [0, 0]);
    assert.deepEqual(await readTypes(c.target), await readTypes(c.file));
  });

  it('refuses a truncated Parquet file and a .parquet name without the magic', async () => {
    const whole = await input('whole.parquet', '');
    await withDuckDB((db) => db.all(`COPY (SELECT 1 AS a) TO ${q(whole.file)} (FORMAT parquet)`));
    const bytes = await fs.readFile(whole.file);
    const cut = await input('cut.parquet', bytes.subarray(0, bytes.length - 12));
    assert.equal(await detectFormat(cut.file, 'cut.parquet'), 'parquet');
    await rejects(cut, 'parquet', /could not read cut\.parquet as parquet/);
    const fake = await input('fake.parquet', 'a,b\n1,2\n');
    await rejectsDetect(fake.file, 'fake.parquet', /does not start with PAR1/);
  });
});

describe('formats: text and Markdown', () => {
  it('stores a text file as one row, byte for byte (less the BOM)', async () => {
    const text = 'Grüße, 世界 👋\r\nsecond line, with, commas\n\ttabbed\n';
    const c = await input('notes.txt', BOM + text);
    assert.equal(await detectFormat(c.file, 'notes.txt'), 'text', 'a .txt name wins over commas');
    const { out } = await convert(c, 'text', { docId: 'notes', path: 'inbox/notes.txt' });
    assert.equal(out.rows, 1);
    assert.deepEqual(await readRows(c.target), [{ doc_id: 'notes', path: 'inbox/notes.txt', text }]);
    assert.deepEqual(await readTypes(c.target), { doc_id: 'VARCHAR', path: 'VARCHAR', text: 'VARCHAR' });
  });

  it('takes prose without a name for text, and defaults path to the file name', async () => {
    const text = "It was the best of times, it was the worst of times.\nIt was the age of wisdom.\n'; DROP TABLE x; --\n";
    const c = await input('prose', text);
    assert.equal(await detectFormat(c.file), 'text');
    await convert(c, 'text');
    assert.deepEqual(await readRows(c.target), [{ doc_id: 'doc-1', path: 'prose', text }]);
  });

  it('refuses text that is not UTF-8', async () => {
    const c = await input('legacy.txt', Buffer.from('caf\xe9 cr\xe8me\n', 'latin1'));
    assert.equal(await detectFormat(c.file, 'legacy.txt'), 'text');
    await rejects(c, 'text', /legacy\.txt is not valid UTF-8/);
  });

  const sections = [
    { heading: '', text: 'Intro before any heading.\n\n' },
    { heading: 'Title', text: '# Title\n\nSome text.\n```bash\n# a shell comment, not a heading\n```\n' },
    { heading: 'Usage', text: '## Usage ##\n~~~~\n## still code\n~~~\nstill code too\n~~~~\n' },
    { heading: 'Deep *heading* 中文', text: '###### Deep *heading* 中文\r\n#hashtag is not a heading\r\n    # indented code\r\n' },
    { heading: '', text: '#\nan empty heading\n' },
  ];
  const markdown = sections.map((s) => s.text).join('');

  it('stores Markdown as one row unless asked to split', async () => {
    const c = await input('guide.md', markdown);
    assert.equal(await detectFormat(c.file, 'guide.md'), 'markdown');
    const { out } = await convert(c, 'markdown', { docId: 'guide' });
    assert.equal(out.rows, 1);
    assert.deepEqual(await readRows(c.target), [{ doc_id: 'guide', path: 'guide.md', text: markdown }]);
  });

  it('splits Markdown at ATX headings outside fenced code', async () => {
    const c = await input('guide.markdown', markdown);
    assert.equal(await detectFormat(c.file, 'guide.markdown'), 'markdown');
    const { out } = await convert(c, 'markdown', { docId: 'guide', splitMarkdown: true });
    assert.equal(out.rows, sections.length);
    const expected = sections.map((s, i) => ({ doc_id: 'guide', path: 'guide.markdown', section: i, heading: s.heading, text: s.text }));
    assert.deepEqual(await readRows(c.target), expected);
    const types = await readTypes(c.target);
    assert.deepEqual(types, { doc_id: 'VARCHAR', path: 'VARCHAR', section: 'INTEGER', heading: 'VARCHAR', text: 'VARCHAR' });
  });

  it('drops a blank preamble and keeps a document without headings whole', () => {
    assert.deepEqual(splitMarkdownSections('\n\n# A\nx\n'), [{ heading: 'A', text: '# A\nx\n' }]);
    assert.deepEqual(splitMarkdownSections('no headings\n```\n# fenced\n'), [{ heading: '', text: 'no headings\n```\n# fenced\n' }]);
  });
});

describe('formats: PDF', () => {
  /** The text each page's content stream shows: `(…) Tj` strings, one line each, PDF escapes undone. */
  async function fixturePages(file: string): Promise<string[]> {
    const pdf = (await fs.readFile(file)).toString('latin1');
    const streams = [...pdf.matchAll(/stream\n([\s\S]*?)endstream/g)].map((m) => m[1] ?? '');
    const unescape = (s: string) => s.replace(/\\([0-7]{3}|.)/g, (_m, e: string) => (e.length === 3 ? String.fromCharCode(parseInt(e, 8)) : e));
    return streams.map((s) => [...s.matchAll(/\(((?:\\.|[^\\)])*)\) Tj/g)].map((m) => unescape(m[1] ?? '')).join('\n'));
  }

  it('extracts one row per page', async () => {
    const fixture = path.join(FIXTURES, 'two-pages.pdf');
    const c = await input('report.txt', await fs.readFile(fixture));
    assert.equal(await detectFormat(c.file, 'report.txt'), 'pdf', '%PDF- beats the .txt name');
    const { out, reports } = await convert(c, 'pdf', { docId: 'report' });
    assert.equal(out.rows, 2);
    const pages = await fixturePages(fixture);
    assert.deepEqual(pages, ['Page one: hello world\nSecond line on page one', 'Page two: café (parens)']);
    assert.deepEqual(await readRows(c.target), pages.map((text, i) => ({ doc_id: 'report', page: i + 1, text })));
    assert.deepEqual(await readTypes(c.target), { doc_id: 'VARCHAR', page: 'INTEGER', text: 'VARCHAR' });
    const last = reports.at(-1);
    assert.equal(last?.fraction, 0.9);
    assert.equal(last?.detail['rows_done'], 2);
    assert.equal(last?.detail['rows_total'], 2);
    assert.equal(typeof last?.detail['rows_per_s'], 'number');
  });

  it('refuses an encrypted PDF and a damaged one', async () => {
    const encrypted = await input('locked.pdf', await fs.readFile(path.join(FIXTURES, 'encrypted.pdf')));
    assert.equal(await detectFormat(encrypted.file, 'locked.pdf'), 'pdf');
    await rejects(encrypted, 'pdf', /locked\.pdf is an encrypted PDF that needs a password/);
    const damaged = await input('damaged.pdf', '%PDF-1.7\nthis is not a PDF body\n');
    assert.equal(await detectFormat(damaged.file, 'damaged.pdf'), 'pdf');
    await rejects(damaged, 'pdf', /damaged\.pdf is not a readable PDF/);
  });
});

describe('formats: detection', () => {
  it('knows the eight formats', () => {
    assert.deepEqual([...FILE_FORMATS], ['csv', 'tsv', 'json', 'ndjson', 'parquet', 'text', 'markdown', 'pdf']);
  });

  it('refuses binary junk whatever its name, and UTF-16', async () => {
    const junk = await input('junk.bin', garbage(4096));
    for (const name of [undefined, 'junk.csv', 'junk.txt', 'junk.json']) await rejectsDetect(junk.file, name, /binary data/);
    const small = await input('small', garbage(64).map((b) => (b === 0 ? 1 : b)));
    await rejectsDetect(small.file, undefined, /binary data/);
    const utf16 = await input('wide.csv', Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('a,b\n1,2\n', 'utf16le')]));
    await rejectsDetect(utf16.file, 'wide.csv', /UTF-16/);
  });

  it('refuses a .pdf name without a PDF header', async () => {
    const c = await input('fake.pdf', 'just text\n');
    await rejectsDetect(c.file, 'fake.pdf', /has no %PDF- header/);
  });

  it('goes by the name when the content is not decisive, and by the content otherwise', async () => {
    const cases: [string, string, string | undefined, FileFormat][] = [
      ['log', '[INFO] started\n[WARN] slow, very slow\n', undefined, 'text'],
      ['wiki', '[[Home]] links to [[Other]]\n', 'wiki.md', 'markdown'],
      ['tiny', '[1, 2, 3]', undefined, 'json'],
      ['jsonl', '{"a": 1}\n{"a": 2}\n', 'x.jsonl', 'ndjson'],
      ['one-line', 'a,b,c\n', undefined, 'text'],
      ['one-line-csv', 'a,b,c\n', 'x.CSV', 'csv'],
      ['ragged', 'a,b\n1,2,3\n', undefined, 'text'],
      ['quoted', 'a,b\n"x\ny",2\n3,4\n', undefined, 'csv'],
      ['pipes', 'a|b|c\n1|2|3\n', undefined, 'csv'],
      ['ambiguous-json-name', 'a,b\n1,2\n', 'x.json', 'json'],
    ];
    for (const [file, content, name, expected] of cases) {
      const c = await input(file, content);
      assert.equal(await detectFormat(c.file, name), expected, `${file} as ${name ?? '(no name)'}`);
    }
  });
});

describe('formats: malformed CSV (csv-check.ts)', () => {
  it('a CSV with a header row and some broken rows is detected as CSV without a name; prose with commas stays text', async () => {
    const cases: [string, string, FileFormat][] = [
      ['ragged', 'id,name,age\n1,a,30\n2,b\n3,c,32\n4,d,33,x\n5,e,34\n', 'csv'],
      ['ragged-semi', 'id;name;age\n1;a;30\n2;b\n3;c;32\n', 'csv'],
      ['unterminated', 'id,name,age\n1,a,30\n2,b,31\n3,"c,32\n4,d,33\n', 'csv'],
      ['prose', 'Hello, world. This is prose, with commas.\nAnother line, here.\nAnd, a, third, one.\nLast.\n', 'text'],
      ['list', 'apples, pears\nplums\ncherries, figs, dates\nkiwis\n', 'text'],
    ];
    for (const [file, content, expected] of cases) {
      const c = await input(file, content);
      assert.equal(await detectFormat(c.file), expected, file);
    }
  });

  it('a NUL byte in a file named .csv is a bad record (named by line), not "binary data"', async () => {
    const c = await input('nul.csv', 'id,name\n1,a\n2,b\0c\n3,d\n');
    assert.equal(await detectFormat(c.file, 'nul.csv'), 'csv');
    await rejects(c, 'csv', /could not read nul\.csv as csv: 1 bad record — line 3: contains a NUL byte/);
    const { out } = await convert(c, 'csv', { onError: 'skip' });
    assert.equal(out.rows, 2);
    assert.deepEqual(out.rejects, { count: 1, records: [{ line: 3, error: 'contains a NUL byte', raw: '2,b\\0c' }] });
  });

  it('line numbers count physical lines: a quoted newline moves the next record down; a TSV is checked by tabs', async () => {
    const c = await input('multi.csv', 'id,note\n1,"two\nlines"\n2,ok\n3\n4,ok\n');
    await rejects(c, 'csv', /line 5: 1 field where the header has 2/);
    const t = await input('t.tsv', 'id\tname\n1\ta,b\n2\n');
    await rejects(t, 'tsv', /line 3: 1 field where the header has 2/);
  });

  it('skip with more bad records than maxRejects fails; at most maxRejects passes with every one kept', async () => {
    const c = await input('many.csv', 'a,b\n1,2\n3\n4\n5\n6,7\n');
    await rejects(c, 'csv', /3 bad records, more than the 2 on_error=skip may leave out/, { onError: 'skip', maxRejects: 2 });
    const { out } = await convert(c, 'csv', { onError: 'skip', maxRejects: 3 });
    assert.equal(out.rows, 2);
    assert.deepEqual(out.rejects?.records.map((r) => r.line), [3, 4, 5]);
  });
});
