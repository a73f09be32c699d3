/**
 * Malformed CSV through the real path a user takes — HTTP upload (staging) and an inbox file
 * posted to /jobs/ingest, sandboxed ingest workers, real DuckDB — in both error modes:
 * strict (the default) fails the job naming the bad lines and why, and nothing reaches the
 * catalog; `on_error: "skip"` completes with the good rows exactly, `rejected_rows` exact, and the
 * bad lines readable (line, error, raw) in `<dataset>_rejects`. A ragged CSV is never mistaken
 * for text, and files that are not CSV at all (empty, binary junk after a BOM) fail clearly.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startApi, type RunningApi } from '../../api/server.ts';
import { loadConfig } from '../../shared/config.ts';
import { createLogger } from '../../shared/logger.ts';
import { startWorkers } from '../../workers/runner.ts';
import { exists, testEnv, type TestEnv } from '../helpers/env.ts';
import { call, finishedJob, type CallOptions, type HttpAnswer } from '../helpers/http.ts';
import { assertNoSandboxChildrenLeft } from '../helpers/jobs.ts';

const WRITER = 'writer-key-malformed-4d7e1a90c3';
const READER = 'reader-key-malformed-9b3c6e21f8';
/** LAKEHOUSE_INGEST_MAX_REJECTS in this file: small, so one case can go over it. */
const MAX_REJECTS = 3;

let env: TestEnv;
let api: RunningApi;

const as = (key: string, p: string, opts: CallOptions = {}) => call(api.url, p, { ...opts, key });

interface Rejected {
  line: number;
  error: RegExp;
  raw: string;
}

interface Case {
  name: string;
  /** The file's name (upload: ?filename=, inbox: the dropped file's name); none: content decides. */
  filename?: string;
  bytes: Buffer;
  /** Strict: the failed_reason must match all of these. Skip: same, when the file fails either way. */
  strict: RegExp[];
  /** What on_error=skip gives: ids of the good rows, and the rejected records; or that it fails too. */
  skip: { ids: number[]; rejected: Rejected[] } | { fails: RegExp[] };
}

const b = (s: string) => Buffer.from(s, 'utf8');

const CORPUS: Case[] = [
  {
    name: 'short row',
    filename: 'short.csv',
    bytes: b('id,name,age\n1,a,30\n2,b\n3,c,32\n'),
    strict: [/line 3: 2 fields where the header has 3/],
    skip: { ids: [1, 3], rejected: [{ line: 3, error: /2 fields where the header has 3/, raw: '2,b' }] },
  },
  {
    name: 'extra field',
    filename: 'long.csv',
    bytes: b('id,name,age\n1,a,30\n2,b,31,extra\n3,c,32\n'),
    strict: [/line 3: 4 fields where the header has 3/],
    skip: { ids: [1, 3], rejected: [{ line: 3, error: /4 fields/, raw: '2,b,31,extra' }] },
  },
  {
    name: 'unterminated quote',
    filename: 'quote.csv',
    bytes: b('id,name,age\n1,a,30\n2,b,31\n3,"c,32\n4,d,33\n'),
    strict: [/line 4: unterminated quote/],
    skip: { ids: [1, 2], rejected: [{ line: 4, error: /unterminated quote \(runs from line 4 to the end of the file\)/, raw: '3,"c,32\n4,d,33\n' }] },
  },
  {
    name: "the issue's file: a short row, an extra field and an unterminated quote",
    filename: 'mix.csv',
    bytes: b('id,name,age\n1,a,30\n2,b\n3,c,33,x\n4,"d,34\n5,e,35\n'),
    strict: [/3 bad records/, /line 3: 2 fields/, /line 4: 4 fields/, /line 5: unterminated quote/],
    skip: {
      ids: [1],
      rejected: [
        { line: 3, error: /2 fields/, raw: '2,b' },
        { line: 4, error: /4 fields/, raw: '3,c,33,x' },
        { line: 5, error: /unterminated quote/, raw: '4,"d,34\n5,e,35\n' },
      ],
    },
  },
  {
    name: 'ragged rows without a file name (content detection must still say CSV, not text)',
    bytes: b('id,name,age\n1,a,30\n2,b,31\n3,c\n4,d,33\n5,e,34,x\n6,f,35\n'),
    strict: [/as csv/, /line 4: 2 fields/, /line 6: 4 fields/],
    skip: {
      ids: [1, 2, 4, 6],
      rejected: [
        { line: 4, error: /2 fields/, raw: '3,c' },
        { line: 6, error: /4 fields/, raw: '5,e,34,x' },
      ],
    },
  },
  {
    name: 'mixed delimiters',
    filename: 'delims.csv',
    bytes: b('id,name,age\n1,a,30\n2;b;31\n3,c,32\n'),
    strict: [/line 3: 1 field where the header has 3/],
    skip: { ids: [1, 3], rejected: [{ line: 3, error: /1 field where/, raw: '2;b;31' }] },
  },
  {
    name: 'a NUL byte',
    filename: 'nul.csv',
    bytes: b('id,name,age\n1,a,30\n2,b\0x,31\n3,c,32\n'),
    strict: [/line 3: contains a NUL byte/],
    skip: { ids: [1, 3], rejected: [{ line: 3, error: /NUL byte/, raw: '2,b\\0x,31' }] },
  },
  {
    name: 'Latin-1 bytes (not UTF-8)',
    filename: 'latin1.csv',
    bytes: Buffer.concat([b('id,name,age\n1,a,30\n2,caf'), Buffer.from([0xe9]), b(',31\n3,c,32\n')]),
    strict: [/line 3: not UTF-8 encoded/],
    skip: { ids: [1, 3], rejected: [{ line: 3, error: /not UTF-8/, raw: '2,caf\uFFFD,31' }] },
  },
  {
    name: 'text after a closing quote',
    filename: 'afterquote.csv',
    bytes: b('id,name,age\n1,"a"b,30\n2,b,31\n'),
    strict: [/line 2: text after a closing quote/],
    skip: { ids: [2], rejected: [{ line: 2, error: /text after a closing quote/, raw: '1,"a"b,30' }] },
  },
  {
    name: 'a quote inside an unquoted field (a literal character, as DuckDB reads it: not an error)',
    filename: 'inch.csv',
    bytes: b('id,name,age\n1,a"b,30\n2,b,31\n'),
    strict: [],
    skip: { ids: [1, 2], rejected: [] },
  },
  {
    name: 'CRLF and LF mixed (a well-formed file: read correctly, nothing rejected)',
    filename: 'crlf.csv',
    bytes: b('id,name,age\r\n1,a,30\n2,b,31\r\n3,c,32\n'),
    strict: [],
    skip: { ids: [1, 2, 3], rejected: [] },
  },
  {
    name: 'a BOM followed by binary junk',
    filename: 'bomjunk.csv',
    bytes: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf, 0x01, 0x02]), b('junk'), Buffer.from([0xff, 0xfe]), b('\n1,a,30\n')]),
    strict: [/unknown or unreadable format: bomjunk\.csv is binary data/],
    skip: { fails: [/bomjunk\.csv is binary data/] },
  },
  {
    name: 'a BOM, a junk header line, then good-looking rows',
    filename: 'bomhead.csv',
    bytes: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf, 0x01, 0x02]), b('junk'), Buffer.from([0xff, 0xfe]), b('\n'), b('1,a,30\n'.repeat(50))]),
    strict: [/could not read bomhead\.csv as csv: the header \(line 1\) is unreadable: not UTF-8 encoded/],
    skip: { fails: [/the header \(line 1\) is unreadable/] },
  },
  {
    name: 'an empty file',
    filename: 'empty.csv',
    bytes: Buffer.alloc(0),
    strict: [/empty\.csv is empty/],
    skip: { fails: [/empty\.csv is empty/] },
  },
  {
    name: `more bad records than LAKEHOUSE_INGEST_MAX_REJECTS (${MAX_REJECTS})`,
    filename: 'flood.csv',
    bytes: b('id,name,age\n1,a,30\n2\n3\n4\n5\n6,f,35\n'),
    strict: [/4 bad records/, /line 3: 1 field/, /line 6: 1 field/],
    skip: { fails: [/4 bad records, more than the 3 on_error=skip may leave out \(LAKEHOUSE_INGEST_MAX_REJECTS\)/, /line 3: 1 field/] },
  },
];

type Source = 'upload' | 'inbox';

/** Runs one ingest of `c` and returns the finished job view. */
async function ingest(c: Case, dataset: string, source: Source, onError: 'fail' | 'skip' | undefined): Promise<any> {
  let res: HttpAnswer;
  if (source === 'upload') {
    const qs = new URLSearchParams({ ...(c.filename ? { filename: c.filename } : {}), ...(onError ? { on_error: onError } : {}) }).toString();
    res = await as(WRITER, `/datasets/${dataset}/upload${qs ? `?${qs}` : ''}`, {
      method: 'POST', body: c.bytes, headers: { 'content-type': 'application/octet-stream' },
    });
  } else {
    const file = c.filename ?? 'noname';
    await fs.mkdir(path.join(env.dataDir, 'inbox', dataset), { recursive: true });
    await fs.writeFile(path.join(env.dataDir, 'inbox', dataset, file), c.bytes);
    res = await as(WRITER, '/jobs/ingest', {
      method: 'POST', body: { dataset, source: { kind: 'inbox', path: `${dataset}/${file}` }, ...(onError ? { on_error: onError } : {}) },
    });
  }
  if (source === 'upload' && c.bytes.length === 0) {
    // refused at the door, before a job exists
    assert.equal(res.status, 400, `${c.name}: ${res.text.slice(0, 300)}`);
    assert.match(res.json.detail, /the upload is empty/);
    return { refused: true };
  }
  assert.equal(res.status, 202, `${c.name}: enqueue answered ${res.status} ${res.text.slice(0, 300)}`);
  return finishedJob((p) => as(WRITER, p), res.headers.get('location')!);
}

async function assertNotInCatalog(dataset: string, what: string): Promise<void> {
  for (const name of [dataset, `${dataset}_rejects`]) {
    const r = await as(READER, `/datasets/${name}`);
    assert.equal(r.status, 404, `${what}: ${name} must not be in the catalog (${r.text.slice(0, 200)})`);
    assert.equal(await exists(path.join(env.dataDir, 'datasets', name)), false, `${what}: no folder for ${name}`);
  }
}

async function assertInboxFailed(dataset: string, c: Case, source: Source, what: string): Promise<void> {
  if (source !== 'inbox') return;
  const failed = await fs.readdir(path.join(env.dataDir, 'inbox', 'failed', dataset)).catch(() => [] as string[]);
  assert.ok(failed.some((f) => f.endsWith(`__${c.filename ?? 'noname'}`)), `${what}: the file is kept in inbox/failed/ (${failed.join(', ')})`);
}

async function rows(key: string, sql: string): Promise<Record<string, unknown>[]> {
  const r = await as(key, '/query', { method: 'POST', body: { sql } });
  assert.equal(r.status, 200, `${sql}: ${r.text.slice(0, 300)}`);
  const { columns, rows: data } = r.json as { columns: { name: string }[] | string[]; rows: unknown[][] | Record<string, unknown>[] };
  const names = columns.map((col) => (typeof col === 'string' ? col : col.name));
  return data.map((row) => (Array.isArray(row) ? Object.fromEntries(names.map((n, i) => [n, row[i]])) : row));
}

describe('malformed CSV through upload and inbox', { timeout: 300_000 }, () => {
  before(async () => {
    env = await testEnv();
    const extra: Record<string, string> = { LAKEHOUSE_INBOX_POLL_MS: '600000', LAKEHOUSE_INGEST_MAX_REJECTS: String(MAX_REJECTS) };
    const saved = Object.keys(extra).map((k) => [k, process.env[k]] as const);
    Object.assign(process.env, extra); // sandboxed children read their config from here
    env.defer(() => {
      for (const [k, v] of saved) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    });
    const log = createLogger('silent', 'test');
    const workers = await startWorkers({ config: loadConfig(process.env), queues: ['ingest'], concurrency: 2, log });
    env.defer(() => workers.close(5_000));
    api = await startApi(loadConfig({ ...process.env, LAKEHOUSE_API_KEYS: `${WRITER}:writer,${READER}:reader`, PORT: '0', LAKEHOUSE_HOST: '127.0.0.1' }), log);
    env.defer(() => api.close());
  });

  after(async () => {
    await env?.cleanup();
    await assertNoSandboxChildrenLeft(10_000);
  });

  it('OpenAPI documents on_error on the upload route and the ingest job', async () => {
    const doc = (await as(READER, '/openapi.json')).json;
    const params = doc.paths['/datasets/{name}/upload'].post.parameters as { name: string; in: string }[];
    assert.ok(params.some((p) => p.name === 'on_error' && p.in === 'query'), 'upload ?on_error');
    assert.match(JSON.stringify(doc.paths['/jobs/ingest']), /on_error/);
  });

  for (const [i, c] of CORPUS.entries()) {
    for (const source of ['upload', 'inbox'] as const) {
      it(`${c.name} — ${source}, strict (the default)`, async () => {
        const dataset = `bad_${i}_${source}_strict`;
        const job = await ingest(c, dataset, source, undefined);
        if (job.refused) return assertNotInCatalog(dataset, c.name);
        if (c.strict.length === 0) {
          // a well-formed file: strict reads it like skip does
          assert.equal(job.state, 'completed', `${c.name}: ${job.failed_reason}`);
          assert.equal(job.result.rejected_rows, 0);
          const ids = (await rows(WRITER, `SELECT id, name, age FROM ${dataset} ORDER BY id`)).map((r) => Number(r['id']));
          assert.deepEqual(ids, (c.skip as { ids: number[] }).ids);
          return;
        }
        assert.equal(job.state, 'failed', `${c.name} must fail; result ${JSON.stringify(job.result)}`);
        assert.equal(job.attempts, 1, 'bad input is not retried');
        for (const re of c.strict) assert.match(job.failed_reason, re, c.name);
        await assertNotInCatalog(dataset, c.name);
        await assertInboxFailed(dataset, c, source, c.name);
      });

      it(`${c.name} — ${source}, on_error=skip`, async () => {
        const dataset = `bad_${i}_${source}_skip`;
        const job = await ingest(c, dataset, source, 'skip');
        if (job.refused) return assertNotInCatalog(dataset, c.name);
        if ('fails' in c.skip) {
          assert.equal(job.state, 'failed', `${c.name} must fail even with skip; result ${JSON.stringify(job.result)}`);
          for (const re of c.skip.fails) assert.match(job.failed_reason, re, c.name);
          await assertNotInCatalog(dataset, c.name);
          await assertInboxFailed(dataset, c, source, c.name);
          return;
        }
        const want = c.skip;
        assert.equal(job.state, 'completed', `${c.name}: ${job.failed_reason}`);
        assert.equal(job.result.rejected_rows, want.rejected.length, 'rejected_rows');
        assert.equal(job.result.rows, want.ids.length, 'rows');
        // the good rows, exactly: every column as the file has it
        const good = await rows(WRITER, `SELECT id::INT AS id, name, age::INT AS age FROM ${dataset} ORDER BY id`);
        const text = c.bytes.toString('utf8');
        for (const r of good) {
          assert.ok(new RegExp(`(^|\\n)${r['id']},${r['name']},${r['age']}\\r?\\n`).test(text), `${c.name}: row ${JSON.stringify(r)} is a line of the file`);
        }
        assert.deepEqual(good.map((r) => r['id']), want.ids, 'good ids');
        const manifest = (await as(READER, `/datasets/${dataset}`)).json;
        assert.deepEqual(manifest.schema.map((col: { name: string }) => col.name), ['id', 'name', 'age'], 'the header is the schema');

        if (want.rejected.length === 0) {
          assert.equal(job.result.rejects_dataset, null);
          assert.equal((await as(READER, `/datasets/${dataset}_rejects`)).status, 404, 'no rejects dataset for a clean file');
          return;
        }
        assert.equal(job.result.rejects_dataset, `${dataset}_rejects`);
        const rejected = await rows(WRITER, `SELECT job_id, file, line, error, raw FROM ${dataset}_rejects ORDER BY line`);
        assert.equal(rejected.length, want.rejected.length, 'rejects rows');
        for (const [k, w] of want.rejected.entries()) {
          const r = rejected[k]!;
          assert.equal(Number(r['line']), w.line, 'line');
          assert.match(String(r['error']), w.error, 'error');
          assert.equal(r['raw'], w.raw, 'raw line');
          assert.equal(r['job_id'], job.id);
          assert.equal(r['file'], c.filename ?? (source === 'inbox' ? 'noname' : r['file']));
        }
        // a reader can read them too
        const asReader = await rows(READER, `SELECT count(*)::INT AS n FROM ${dataset}_rejects`);
        assert.equal(asReader[0]!['n'], want.rejected.length);
      });
    }
  }

  it('a bad record past DuckDB\'s sniffing sample (line 30,002) is named too; a clean big file with a character across the 4 MiB read boundary loads whole', async () => {
    const good = Array.from({ length: 30_000 }, (_, k) => `${k + 1},n${k + 1},${k % 90}\n`).join('');
    const late: Case = {
      name: 'late short row', filename: 'late.csv', bytes: b(`id,name,age\n${good}30001,x\n30002,y,1\n`),
      strict: [/1 bad record — line 30002: 2 fields where the header has 3/], skip: { ids: [], rejected: [] },
    };
    for (const source of ['upload', 'inbox'] as const) {
      const strict = await ingest(late, `late_${source}_strict`, source, undefined);
      assert.equal(strict.state, 'failed', `late row (${source}) must fail; result ${JSON.stringify(strict.result)}`);
      assert.match(strict.failed_reason, late.strict[0]!);
      await assertNotInCatalog(`late_${source}_strict`, 'late row');
      const skipped = await ingest(late, `late_${source}_skip`, source, 'skip');
      assert.equal(skipped.state, 'completed', skipped.failed_reason);
      assert.equal(skipped.result.rows, 30_001);
      assert.equal(skipped.result.rejected_rows, 1);
      const [r] = await rows(WRITER, `SELECT line, raw FROM late_${source}_skip_rejects`);
      assert.deepEqual([Number(r!['line']), r!['raw']], [30_002, '30001,x']);
    }

    // "é" (2 bytes) placed so that the 4 MiB read boundary falls between its bytes
    const header = b('id,name,age\n');
    const filler = 'x'.repeat(80);
    const lines: string[] = [];
    let size = header.length;
    let id = 0;
    while (size < 4 * 1024 * 1024 - 200) {
      const line = `${++id},${filler},1\n`;
      lines.push(line);
      size += line.length;
    }
    const before = `${++id},`;
    const pad = 4 * 1024 * 1024 - size - before.length - 1; // the é's first byte is the chunk's last
    lines.push(`${before}${'y'.repeat(pad)}é,2\n`);
    for (let k = 0; k < 100; k++) lines.push(`${++id},z,3\n`);
    const big = Buffer.concat([header, b(lines.join(''))]);
    assert.equal(big[4 * 1024 * 1024 - 1], 0xc3, 'the é straddles the boundary');
    const job = await ingest({ name: 'big', filename: 'big.csv', bytes: big, strict: [], skip: { ids: [], rejected: [] } }, 'big_utf8', 'upload', undefined);
    assert.equal(job.state, 'completed', job.failed_reason);
    assert.equal(job.result.rows, id);
    const [e] = await rows(WRITER, `SELECT count(*)::INT AS n FROM big_utf8 WHERE name LIKE '%é'`);
    assert.equal(e!['n'], 1);
  });

  it('a header-only CSV becomes an empty dataset with the header as its schema', async () => {
    for (const source of ['upload', 'inbox'] as const) {
      const dataset = `header_only_${source}`;
      const job = await ingest({ name: 'header only', filename: 'header.csv', bytes: b('id,name,age\n'), strict: [], skip: { ids: [], rejected: [] } }, dataset, source, undefined);
      assert.equal(job.state, 'completed', `header only (${source}): ${job.failed_reason}`);
      assert.equal(job.result.rows, 0);
      assert.equal(job.result.rejected_rows, 0);
      const manifest = (await as(READER, `/datasets/${dataset}`)).json;
      assert.deepEqual(manifest.schema.map((col: { name: string }) => col.name), ['id', 'name', 'age']);
      assert.equal(manifest.rows, 0);
    }
  });

  it('a retried skip job adds its rejects once', async () => {
    const c = CORPUS[0]!;
    const dataset = 'retry_skip';
    const first = await ingest(c, dataset, 'upload', 'skip');
    assert.equal(first.state, 'completed', first.failed_reason);
    // the same bytes again: a duplicate, which adds neither rows nor rejects
    const again = await ingest(c, dataset, 'upload', 'skip');
    assert.equal(again.state, 'completed', again.failed_reason);
    assert.equal(again.result.duplicate, true);
    const rejected = await rows(WRITER, `SELECT count(*)::INT AS n FROM ${dataset}_rejects`);
    assert.equal(rejected[0]!['n'], 1);
  });

  it('on_error=skip on a dataset name too long for its _rejects sibling is refused at the door', async () => {
    const long = `d${'x'.repeat(56)}`;
    const r = await as(WRITER, '/jobs/ingest', { method: 'POST', body: { dataset: long, source: { kind: 'inbox', path: 'x/y.csv' }, on_error: 'skip' } });
    assert.equal(r.status, 400, r.text);
    assert.match(r.json.detail, /at most 55 characters/);
  });
});
