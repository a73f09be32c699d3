/**
 * The query audit log: concurrent appenders (other processes included) never tear a line, list
 * pages newest first across daily files, and keys and URL passwords never reach the disk.
 */
import { createHash } from 'node:crypto';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { MAX_SQL_CHARS, QueryLog, auditIdentity, type NewQueryAuditEntry, type QueryAuditEntry } from '../../shared/audit/query-log.ts';

const run = promisify(execFile);
const SECRET_KEY = 'lh_s3cr3t-key-never-logged-abcdefghijklmnop';

let root: string;

function entry(at: string, extra: Partial<NewQueryAuditEntry> = {}): NewQueryAuditEntry {
  return {
    at,
    who: auditIdentity(SECRET_KEY, 'reader'),
    role: 'reader',
    sql: 'SELECT email FROM customers',
    datasets: ['customers'],
    pii_columns: [{ dataset: 'customers', column: 'email' }],
    rows: 3,
    ms: 12,
    outcome: 'ok',
    ...extra,
  };
}

async function allLines(dir: string): Promise<string[]> {
  const files = (await fs.readdir(dir)).filter((f) => f.endsWith('.jsonl'));
  const texts = await Promise.all(files.map((f) => fs.readFile(path.join(dir, f), 'utf8')));
  return texts.flatMap((t) => t.split('\n').filter(Boolean));
}

before(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'audit-'));
});

after(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

describe('QueryLog.append', () => {
  it('keeps every line whole with many appenders in this process and in two others', async () => {
    const dir = path.join(root, 'concurrent');
    const perWriter = 200;
    const longSql = `SELECT ${'x, '.repeat(600)}1 FROM customers`; // ~1.8 KB: interleaving would show
    const script = `
      import { QueryLog } from ${JSON.stringify(path.resolve('shared/audit/query-log.ts'))};
      const log = new QueryLog(process.argv[1]);
      const tag = process.argv[2];
      await Promise.all(Array.from({ length: ${perWriter} }, (_, i) => log.append({
        at: new Date().toISOString(), who: tag, role: 'reader', sql: ${JSON.stringify(longSql)} + ' -- ' + tag + ' ' + i,
        datasets: ['customers'], pii_columns: [], rows: i, ms: 1, outcome: 'ok' })));
    `;
    const child = (tag: string) => run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, dir, tag], { cwd: process.cwd() });
    const log = new QueryLog(dir);
    const local = Promise.all(
      Array.from({ length: perWriter }, (_, i) => log.append(entry(new Date().toISOString(), { who: 'local', sql: `${longSql} -- local ${i}`, rows: i }))),
    );
    await Promise.all([local, child('child-a'), child('child-b')]);

    const lines = await allLines(dir);
    assert.equal(lines.length, perWriter * 3);
    const parsed = lines.map((line) => JSON.parse(line) as QueryAuditEntry);
    for (const who of ['local', 'child-a', 'child-b']) {
      const rows = parsed.filter((e) => e.who === who).map((e) => e.rows).sort((a, b) => a - b);
      assert.deepEqual(rows, Array.from({ length: perWriter }, (_, i) => i), `every entry of ${who}, once`);
    }
    assert.equal(new Set(parsed.map((e) => e.id)).size, parsed.length, 'ids are unique');
  });

  it('writes daily files by the UTC day of the entry', async () => {
    const dir = path.join(root, 'daily');
    const log = new QueryLog(dir);
    await log.append(entry('2024-03-01T23:59:59.999Z'));
    await log.append(entry('2024-03-02T00:00:00.000+00:00'));
    await log.append(entry('2024-03-02T01:30:00.000+02:00')); // 2024-03-01T23:30Z
    assert.deepEqual((await fs.readdir(dir)).sort(), ['queries-2024-03-01.jsonl', 'queries-2024-03-02.jsonl']);
    assert.equal((await fs.readFile(path.join(dir, 'queries-2024-03-01.jsonl'), 'utf8')).split('\n').filter(Boolean).length, 2);
  });

  it('never writes the key or a URL password, and keeps the head and tail of huge SQL with its hash', async () => {
    const dir = path.join(root, 'secrets');
    const log = new QueryLog(dir);
    const sql = `SELECT * FROM read_csv('postgres://app:hunter2-pass@db.internal/x') -- ${'y'.repeat(20_000)} END-OF-QUERY`;
    const written = await log.append(entry(new Date().toISOString(), { sql, outcome: 'error', error: 'IO Error: https://u:hunter2-pass@host/ failed' }));
    const text = (await allLines(dir)).join('\n');
    assert.ok(!text.includes(SECRET_KEY), 'the key');
    assert.ok(!text.includes('hunter2-pass'), 'the password');
    assert.match(text, /app:\*\*\*@db\.internal/);
    assert.ok(written.sql.length < MAX_SQL_CHARS, 'huge SQL is cut');
    assert.match(written.sql, /^SELECT \* FROM read_csv\('postgres:\/\/app:\*\*\*@db\.internal\/x'\)/, 'its head');
    assert.match(written.sql, /…\[\d+ characters left out\]…\ny+ END-OF-QUERY$/, 'its tail');
    const redacted = sql.replace('hunter2-pass', '***');
    assert.equal(written.sql_chars, redacted.length);
    assert.equal(written.sql_sha256, createHash('sha256').update(redacted).digest('hex'));
    const short = await log.append(entry(new Date().toISOString(), { sql: `SELECT '${'q'.repeat(5000)}'` }));
    assert.equal(short.sql, `SELECT '${'q'.repeat(5000)}'`, 'SQL under the limit is kept whole');
    assert.match(written.who, /^[0-9a-f]{8}:reader$/);
    assert.equal(written.who, auditIdentity(SECRET_KEY, 'reader'));
  });

  it('keeps a line under 16 KB even with a huge column list, and says what it left out', async () => {
    const dir = path.join(root, 'huge');
    const log = new QueryLog(dir);
    const pii = Array.from({ length: 1000 }, (_, i) => ({ dataset: 'customers', column: `column_number_${i}` }));
    const written = await log.append(entry(new Date().toISOString(), { sql: 'z'.repeat(3000), pii_columns: pii }));
    const [line] = await allLines(dir);
    assert.ok(Buffer.byteLength(line! + '\n') < 16_000);
    assert.ok(written.pii_columns.length < pii.length);
    assert.match(written.error ?? '', /audit entry too long: \d+ dataset\/PII column item\(s\) left out/);
  });
});

describe('QueryLog.list', () => {
  it('pages newest first across days and writer files, with since and before', async () => {
    const dir = path.join(root, 'list');
    const shared = new QueryLog(dir);
    const hostB = new QueryLog(dir, { writer: 'host-b' });
    const times = ['2024-05-01T10:00:00.000Z', '2024-05-01T11:00:00.000Z', '2024-05-02T09:00:00.000Z', '2024-05-03T08:00:00.000Z', '2024-05-03T08:00:00.000Z'];
    for (const [i, at] of times.entries()) await (i % 2 ? hostB : shared).append(entry(at, { rows: i }));
    assert.ok((await fs.readdir(dir)).includes('queries-2024-05-01.host-b.jsonl'));

    const all = await shared.list({ limit: 10 });
    assert.deepEqual(all.map((e) => e.rows).slice(2), [2, 1, 0]);
    assert.deepEqual(new Set(all.slice(0, 2).map((e) => e.rows)), new Set([3, 4]), 'the two entries of the same millisecond');

    // page through two at a time: nothing lost or repeated, even at the shared millisecond
    const pages: number[][] = [];
    let before: string | undefined;
    for (;;) {
      const page = await shared.list({ limit: 2, before });
      if (page.length === 0) break;
      pages.push(page.map((e) => e.rows));
      before = page.at(-1)!.id;
    }
    assert.deepEqual(pages.flat(), all.map((e) => e.rows));
    assert.deepEqual(pages.map((p) => p.length), [2, 2, 1]);

    assert.deepEqual((await shared.list({ limit: 10, since: '2024-05-02T00:00:00.000Z' })).length, 3);
    assert.deepEqual((await shared.list({ limit: 10, before: '2024-05-02T00:00:00.000Z' })).map((e) => e.rows), [1, 0]);
  });

  it('skips a torn line instead of failing, and answers an empty list for a missing folder', async () => {
    const dir = path.join(root, 'torn');
    const log = new QueryLog(dir);
    await log.append(entry('2024-06-01T00:00:00.000Z', { rows: 1 }));
    await fs.appendFile(path.join(dir, 'queries-2024-06-01.jsonl'), '{"id":"2024-06-01T00:00:01.000Z~x","at":"2024-06-01T00:00:01');
    await fs.appendFile(path.join(dir, 'queries-2024-06-01.jsonl'), '\n');
    await log.append(entry('2024-06-01T00:00:02.000Z', { rows: 2 }));
    assert.deepEqual((await log.list({ limit: 10 })).map((e) => e.rows), [2, 1]);
    assert.deepEqual(await new QueryLog(path.join(root, 'never-written')).list({ limit: 5 }), []);
  });
});
