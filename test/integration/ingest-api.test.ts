/**
 * Ingest end to end, as a client sees it: HTTP against a real API, sandboxed ingest workers,
 * Redis, PostgreSQL and MariaDB. What a posted DSN's password touches (nothing: not Redis, not the
 * data root, not job views, Bull Board, lineage or logs); database types and incremental reads
 * compared row for row with the drivers; file formats; dedup; schema evolution; buckets; PII
 * masking and the query audit; lineage; preview and delete; path safety of names and inbox paths.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { pino } from 'pino';
import { startApi, type RunningApi } from '../../api/server.ts';
import { loadConfig } from '../../shared/config.ts';
import { createLogger, type Logger } from '../../shared/logger.ts';
import { startWorkers, type RunningWorkers } from '../../workers/runner.ts';
import { MYSQL_ADMIN_DSN, mysqlAdmin, pgAdmin, randomSuffix, type MysqlAdmin, type PgAdmin } from '../helpers/databases.ts';
import { csvText, exists, testEnv, waitFor, type TestEnv } from '../helpers/env.ts';
import { assertProblem, call, type CallOptions, type HttpAnswer } from '../helpers/http.ts';
import { assertNoSandboxChildrenLeft } from '../helpers/jobs.ts';

const ADMIN = 'admin-key-ingest-3f9a1c77e0';
const WRITER = 'writer-key-ingest-8b2e4d10f5';
const READER = 'reader-key-ingest-5c6f7a92b1';
const BOARD = { user: 'ops', password: ADMIN };

const SFX = randomSuffix();
const PG_ROLE = `lhtest_${SFX}`;
const PG_PASSWORD = `Sup3rS3cret_${SFX}`;
const SECRET_DSN = `postgres://${PG_ROLE}:${PG_PASSWORD}@127.0.0.1:5432/test`;
const REDACTED_DSN = `postgres://${PG_ROLE}:***@127.0.0.1:5432/test`;
const PG_PLAIN_DSN = 'postgres://postgres@127.0.0.1:5432/test';
const SECRET_TABLE = `lh_secret_${SFX}`;
const TYPES_TABLE = `lh_types_${SFX}`;

let env: TestEnv;
let api: RunningApi;
let workers: RunningWorkers;
let coldDir: string;
let pgc: PgAdmin;
let myc: MysqlAdmin;
/** Everything the API's and the workers' loggers wrote, and what reached this process's stdout/stderr (sandboxed children's logs are piped there). */
const logged: string[] = [];

const as = (key: string | undefined, p: string, opts: CallOptions = {}) => call(api.url, p, { ...opts, ...(key ? { key } : {}) });
const post = (key: string, p: string, body: unknown) => as(key, p, { method: 'POST', body });

// ---------------------------------------------------------------------------------------------
// Jobs, datasets, queries

interface JobView {
  id: string;
  state: string;
  data: any;
  result?: any;
  failed_reason?: string;
  attempts: number;
}

function enqueued(res: HttpAnswer, what: string): string {
  assert.equal(res.status, 202, `${what}: ${res.text.slice(0, 400)}`);
  const location = res.headers.get('location');
  assert.equal(location, `/jobs/ingest/${res.json.id}`, `${what}: Location`);
  return location!;
}

/** Polls the job until it finished with its result or reason (GET reads state and job in two steps). */
async function finished(location: string, timeoutMs = 30_000): Promise<JobView> {
  return waitFor(
    async () => {
      const r = await as(WRITER, location); // failed_reason is for writers and admins
      if (r.status !== 200) return undefined;
      if (r.json.state === 'completed' && r.json.result !== undefined) return r.json as JobView;
      if (r.json.state === 'failed' && r.json.failed_reason !== undefined) return r.json as JobView;
      return undefined;
    },
    { timeoutMs, intervalMs: 100, what: `${location} to finish` },
  );
}

function completed(job: JobView, what: string): any {
  assert.equal(job.state, 'completed', `${what}: ${job.failed_reason}`);
  return job.result;
}

function failed(job: JobView, what: string): string {
  assert.equal(job.state, 'failed', `${what} should fail; result ${JSON.stringify(job.result)}`);
  return job.failed_reason!;
}

function upload(dataset: string, body: string | Uint8Array, query: Record<string, string> = {}, key = WRITER): Promise<HttpAnswer> {
  const qs = new URLSearchParams(query).toString();
  return as(key, `/datasets/${dataset}/upload${qs ? `?${qs}` : ''}`, {
    method: 'POST',
    body: typeof body === 'string' ? Buffer.from(body) : body,
    headers: { 'content-type': 'application/octet-stream' },
  });
}

async function uploadJob(dataset: string, body: string | Uint8Array, query: Record<string, string> = {}): Promise<JobView> {
  return finished(enqueued(await upload(dataset, body, query), `upload ${dataset}`));
}

/** A job with a `dsn` is an admin's (LAKEHOUSE_ALLOW_JOB_DSN is on in this file); everything else a writer's. */
async function ingestJob(payload: unknown): Promise<JobView> {
  const key = JSON.stringify(payload).includes('"dsn"') ? ADMIN : WRITER;
  return finished(enqueued(await post(key, '/jobs/ingest', payload), `POST /jobs/ingest ${JSON.stringify(payload).slice(0, 200)}`));
}

/** As a writer: readers get no lineage DSN or statement (test/security/reader-manifest.test.ts). */
async function manifestOf(name: string): Promise<any> {
  const r = await as(WRITER, `/datasets/${name}`);
  assert.equal(r.status, 200, `GET /datasets/${name}: ${r.text.slice(0, 300)}`);
  return r.json;
}

async function query(key: string, sql: string): Promise<any> {
  const r = await post(key, '/query', { sql });
  assert.equal(r.status, 200, `${sql}: ${r.text.slice(0, 400)}`);
  return r.json;
}

// ---------------------------------------------------------------------------------------------
// Where a secret could travel

function assertAbsent(text: string, where: string): void {
  const at = text.indexOf(PG_PASSWORD);
  const context = at < 0 ? '' : text.slice(Math.max(0, at - 120), at + 120).split(PG_PASSWORD).join('<PASSWORD>');
  assert.equal(at, -1, `${where} holds the DSN password: …${context}…`);
}

/** Every key under the test prefix with its whole value, whatever the type. */
async function dumpRedis(redis: Redis, prefix: string): Promise<{ keys: number; text: string }> {
  const out: string[] = [];
  let keys = 0;
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    for (const key of batch) {
      keys++;
      out.push(`\n#${key}\n`);
      const type = await redis.type(key);
      if (type === 'string') out.push((await redis.getBuffer(key))?.toString('utf8') ?? '');
      else if (type === 'hash') for (const [f, v] of Object.entries(await redis.hgetallBuffer(key))) out.push(f, '=', v.toString('utf8'), '\n');
      else if (type === 'list') out.push(...(await redis.lrangeBuffer(key, 0, -1)).map((b) => b.toString('utf8')));
      else if (type === 'set') out.push(...(await redis.smembersBuffer(key)).map((b) => b.toString('utf8')));
      else if (type === 'zset') out.push(...(await redis.zrangeBuffer(key, '0', '-1', 'WITHSCORES')).map((b) => b.toString('utf8')));
      else if (type === 'stream') {
        for (const [id, fields] of await redis.xrangeBuffer(key, '-', '+')) out.push(id.toString('utf8'), ...fields.map((b) => b.toString('utf8')), '\n');
      } else if (type !== 'none') throw new Error(`key ${key} has a type this scan does not read: ${type}`);
    }
  } while (cursor !== '0');
  return { keys, text: out.join(' ') };
}

async function walkFiles(dir: string): Promise<string[]> {
  const files: string[] = [];
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) files.push(...(await walkFiles(full)));
    else files.push(full);
  }
  return files;
}

/** A logger exactly as the product makes it (level, redaction hooks, serializers), writing into `logged`. */
function capturedLogger(name: string): Logger {
  const log = createLogger('debug', name);
  (log as unknown as Record<symbol, unknown>)[pino.symbols.streamSym] = { write: (s: string) => void logged.push(s) };
  return log;
}

/** Copies what is written to `stream` into `logged`, still passing it through. */
function tap(stream: NodeJS.WriteStream): () => void {
  const original = stream.write;
  stream.write = function (this: NodeJS.WriteStream, chunk: unknown, ...rest: unknown[]) {
    logged.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8'));
    return (original as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
  } as typeof stream.write;
  return () => {
    stream.write = original;
  };
}

// ---------------------------------------------------------------------------------------------
// Database rows vs. query rows

type Kind = 'int' | 'bigint' | 'decimal' | 'bool' | 'tinybool' | 'date' | 'tstz' | 'datetime' | 'json' | 'text' | 'bytes';

const PG_COLUMNS: [string, Kind][] = [
  ['id', 'int'], ['n', 'int'], ['big', 'bigint'], ['amount', 'decimal'], ['flag', 'bool'], ['day', 'date'],
  ['at', 'tstz'], ['doc', 'json'], ['uid', 'text'], ['note', 'text'], ['raw', 'bytes'],
];
const MY_COLUMNS: [string, Kind][] = [
  ['id', 'int'], ['n', 'int'], ['big', 'bigint'], ['amount', 'decimal'], ['flag', 'tinybool'], ['day', 'date'],
  ['at', 'datetime'], ['doc', 'json'], ['note', 'text'], ['raw', 'bytes'],
];

const PG_TYPES_DDL = `CREATE TABLE ${TYPES_TABLE} (id integer PRIMARY KEY, n integer, big bigint, amount numeric(12,2), flag boolean,
  day date, at timestamptz, doc json, uid uuid, note text, raw bytea)`;
const PG_TYPES_ROWS = `INSERT INTO ${TYPES_TABLE} VALUES
  (1, 42, 9007199254740993, 1234567890.12, true, '2024-02-29', '2024-02-29 23:59:59.123+02', '{"a": 1, "b": [true, null], "c": "x"}',
   'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'plain text', '\\x00ff10'),
  (2, -2147483648, -9223372036854775808, -0.05, false, '1970-01-01', '1969-12-31 23:59:59.999+00', '[]',
   '00000000-0000-0000-0000-000000000000', 'Ünïcødé "quoted", with, commas', ''),
  (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  (4, 2147483647, 9223372036854775807, 9999999999.99, true, '2099-12-31', '2038-01-19 03:14:08+00', '{"nested": {"deep": [1, 2.5, "three"]}}',
   'ffffffff-ffff-ffff-ffff-ffffffffffff', E'line one\\nline two', '\\xdeadbeef'),
  (5, 0, 0, 0.00, false, '2000-01-01', '2000-01-01 00:00:00+00', '{}', '123e4567-e89b-12d3-a456-426614174000', '', '\\x41')`;
const PG_TYPES_MORE = `INSERT INTO ${TYPES_TABLE} VALUES
  (6, 7, 123456789012, 10.10, true, '2025-06-30', '2025-06-30 12:00:00.5-07', '{"k": "v"}', '6ba7b810-9dad-11d1-80b4-00c04fd430c8', 'six', '\\x06'),
  (7, -7, -123456789012, -10.01, false, '2025-07-01', '2025-07-01 00:00:00+00', '[1, 2]', '6ba7b811-9dad-11d1-80b4-00c04fd430c8', 'seven', '\\x07')`;

const MY_TYPES_DDL = `CREATE TABLE ${TYPES_TABLE} (id INT PRIMARY KEY, n INT, big BIGINT, amount DECIMAL(12,2), flag TINYINT(1),
  day DATE, at DATETIME(3), doc JSON, note TEXT, raw BLOB) DEFAULT CHARSET=utf8mb4`;
const MY_TYPES_ROWS = `INSERT INTO ${TYPES_TABLE} VALUES
  (1, 42, 9007199254740993, 1234567890.12, 1, '2024-02-29', '2024-02-29 23:59:59.123', '{"a": 1, "b": [true, null], "c": "x"}', 'plain text', X'00FF10'),
  (2, -2147483648, -9223372036854775808, -0.05, 0, '1970-01-01', '1969-12-31 23:59:59.999', '[]', 'Ünïcødé "quoted", with, commas', X''),
  (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  (4, 2147483647, 9223372036854775807, 9999999999.99, 2, '2099-12-31', '2038-01-19 03:14:08.000', '{"nested": {"deep": [1, 2.5, "three"]}}', 'line one\\nline two', X'DEADBEEF'),
  (5, 0, 0, 0.00, 0, '2000-01-01', '2000-01-01 00:00:00', '{}', '', X'41')`;
const MY_TYPES_MORE = `INSERT INTO ${TYPES_TABLE} VALUES
  (6, 7, 123456789012, 10.10, 1, '2025-06-30', '2025-06-30 12:00:00.500', '{"k": "v"}', 'six', X'06'),
  (7, -7, -123456789012, -10.01, 0, '2025-07-01', '2025-07-01 00:00:00', '[1, 2]', 'seven', X'07')`;

function compareCell(kind: Kind, actual: unknown, expected: unknown, label: string): void {
  if (expected === null || expected === undefined) return assert.equal(actual, null, label);
  switch (kind) {
    case 'int':
      assert.equal(typeof actual, 'number', label);
      return assert.equal(actual, expected, label);
    case 'bigint': {
      const text = String(expected);
      assert.equal(String(actual), text, label);
      return assert.equal(typeof actual, Number.isSafeInteger(Number(text)) ? 'number' : 'string', `${label}: JSON number only when exact`);
    }
    case 'decimal': {
      const text = String(expected);
      const scale = text.split('.')[1]?.length ?? 0;
      return assert.equal(typeof actual === 'number' ? actual.toFixed(scale) : actual, text, label);
    }
    case 'bool':
      return assert.equal(actual, expected, label);
    case 'tinybool':
      return assert.equal(actual, Number(expected) !== 0, label);
    case 'date':
      return assert.equal(actual, expected, label);
    case 'tstz':
      assert.match(String(actual), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/, label);
      return assert.equal(Date.parse(String(actual)), (expected as Date).getTime(), `${label}: ${actual} vs ${(expected as Date).toISOString()}`);
    case 'datetime':
      assert.match(String(actual), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?$/, label);
      return assert.equal(Date.parse(`${actual}Z`), Date.parse(`${String(expected).replace(' ', 'T')}Z`), `${label}: ${actual} vs ${expected}`);
    case 'json':
      assert.equal(typeof actual, 'string', label);
      return assert.deepEqual(JSON.parse(actual as string), typeof expected === 'string' ? JSON.parse(expected) : expected, label);
    case 'text':
      return assert.equal(actual, expected, label);
    case 'bytes':
      assert.equal(typeof actual, 'string', `${label}: BLOB as base64`);
      return assert.deepEqual(Buffer.from(actual as string, 'base64'), Buffer.from(expected as Uint8Array), label);
  }
}

/** The dataset through POST /query, row for row and cell for cell, against the driver's rows. */
async function assertSameRows(dataset: string, columns: [string, Kind][], source: Record<string, unknown>[]): Promise<void> {
  const result = await query(WRITER, `SELECT * FROM ${dataset} ORDER BY id`);
  assert.deepEqual(result.columns.map((c: { name: string }) => c.name), columns.map(([name]) => name), `${dataset}: columns`);
  assert.equal(result.row_count, source.length, `${dataset}: row count`);
  source.forEach((expected, i) => {
    for (const [name, kind] of columns) compareCell(kind, result.rows[i][name], expected[name], `${dataset} id=${String(expected['id'])} ${name}`);
  });
}

// ---------------------------------------------------------------------------------------------

describe('ingest through the HTTP API with workers running', { timeout: 90_000 }, () => {
  before(async () => {
    env = await testEnv();
    coldDir = await fs.mkdtemp(path.join(os.tmpdir(), 'lhtest-cold-'));
    const extra: Record<string, string> = {
      LAKEHOUSE_BUCKETS: `cold:${coldDir}`,
      LAKEHOUSE_CONNECTION_MARIA: MYSQL_ADMIN_DSN,
      LAKEHOUSE_INBOX_POLL_MS: '600000', // the API claims inbox files in this test, not the watcher
      LOG_LEVEL: 'debug',
    };
    const saved = Object.keys(extra).map((k) => [k, process.env[k]] as const);
    Object.assign(process.env, extra); // sandboxed children read their config from here
    env.defer(() => {
      for (const [k, v] of saved) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    });
    env.defer(() => fs.rm(coldDir, { recursive: true, force: true }));
    const untapOut = tap(process.stdout);
    const untapErr = tap(process.stderr);
    env.defer(() => (untapOut(), untapErr()));

    pgc = await pgAdmin();
    env.defer(async () => {
      await pgc.exec(`DROP TABLE IF EXISTS ${SECRET_TABLE}, ${TYPES_TABLE}`);
      await pgc.exec(`DROP ROLE IF EXISTS ${PG_ROLE}`);
      await pgc.close();
    });
    myc = await mysqlAdmin();
    env.defer(async () => {
      await myc.exec(`DROP TABLE IF EXISTS ${TYPES_TABLE}`);
      await myc.close();
    });
    await pgc.exec(`CREATE ROLE ${PG_ROLE} LOGIN PASSWORD '${PG_PASSWORD}'`);
    await pgc.exec(`CREATE TABLE ${SECRET_TABLE} (id integer PRIMARY KEY, label text)`);
    await pgc.exec(`INSERT INTO ${SECRET_TABLE} VALUES (1, 'one'), (2, 'two'), (3, 'three')`);
    await pgc.exec(`GRANT SELECT ON ${SECRET_TABLE} TO ${PG_ROLE}`);
    await pgc.exec(PG_TYPES_DDL);
    await pgc.exec(PG_TYPES_ROWS);
    await myc.exec(MY_TYPES_DDL);
    await myc.exec(MY_TYPES_ROWS);

    workers = await startWorkers({ config: loadConfig(process.env), queues: ['ingest'], concurrency: 3, log: capturedLogger('worker') });
    env.defer(() => workers.close(5_000));
    const apiConfig = loadConfig({
      ...process.env,
      LAKEHOUSE_API_KEYS: `${ADMIN}:admin,${WRITER}:writer,${READER}:reader`,
      LAKEHOUSE_HOST: '127.0.0.1',
      PORT: '0',
      LAKEHOUSE_ALLOW_JOB_DSN: 'true',
    });
    api = await startApi(apiConfig, capturedLogger('api'));
    env.defer(() => api.close());
  });

  after(async () => {
    await env?.cleanup();
    await assertNoSandboxChildrenLeft(10_000);
  });

  it('a posted DSN password is sealed: it reaches no Redis key, no file, no job view, no board, no lineage, no log', async () => {
    const writerRes = await post(WRITER, '/jobs/ingest', { dataset: 'secret_src', source: { kind: 'postgres', dsn: SECRET_DSN, table: SECRET_TABLE } });
    assert.match(assertProblem(writerRes, 403, 'a writer posting a DSN').detail, /admin role.*LAKEHOUSE_ALLOW_JOB_DSN.*"connection"/);
    const goodRes = await post(ADMIN, '/jobs/ingest', { dataset: 'secret_src', source: { kind: 'postgres', dsn: SECRET_DSN, table: SECRET_TABLE } });
    const badDsn = SECRET_DSN.replace(/\/test$/, `/nosuchdb_${SFX}`);
    const badRes = await post(ADMIN, '/jobs/ingest', { dataset: 'secret_bad', source: { kind: 'postgres', dsn: badDsn, table: SECRET_TABLE } });
    assertAbsent(writerRes.text + goodRes.text + badRes.text, 'the 202 answers');
    const good = await finished(enqueued(goodRes, 'DSN ingest'));
    const bad = await finished(enqueued(badRes, 'bad DSN ingest'));

    const result = completed(good, 'DSN ingest');
    assert.equal(result.rows, 3);
    assert.equal(good.data.source.dsn, undefined, 'no dsn field in the stored payload');
    assert.match(good.data.source.secret, /^[0-9a-f-]{36}$/);
    assert.equal(good.data.source.dsn_redacted, REDACTED_DSN);

    const reason = failed(bad, 'ingest from a database that does not exist');
    assert.match(reason, /postgres source at 127\.0\.0\.1:5432/);
    assert.match(reason, new RegExp(`nosuchdb_${SFX}.*does not exist`));
    assertAbsent(reason, 'the failed reason');

    const m = await manifestOf('secret_src');
    assert.equal(m.parts[0].lineage.dsn, REDACTED_DSN, 'lineage shows the DSN with the password starred');
    assert.equal(m.parts[0].lineage.kind, 'postgres');
    assert.deepEqual((await query(WRITER, 'SELECT id, label FROM secret_src ORDER BY id')).rows, [
      { id: 1, label: 'one' }, { id: 2, label: 'two' }, { id: 3, label: 'three' },
    ]);
    assertAbsent(JSON.stringify(m), 'the manifest');
    assert.equal(await as(READER, '/datasets/secret_bad').then((r) => r.status), 404);

    // Redis: every key under the prefix, every type
    const dump = await dumpRedis(env.redis, env.prefix);
    assert.ok(dump.keys > 5, `the scan saw the queue's keys (${dump.keys})`);
    assert.ok(dump.text.includes(`${PG_ROLE}:***@`) && dump.text.includes(good.data.source.secret), 'the scan reads job payloads');
    assertAbsent(dump.text, 'Redis');

    // the data root and the other bucket, every byte of every file
    const files = [...(await walkFiles(env.dataDir)), ...(await walkFiles(coldDir))];
    const sealed = files.filter((f) => f.includes(`${path.sep}secrets${path.sep}sealed${path.sep}`));
    for (const id of [good.data.source.secret, bad.data.source.secret]) {
      const file = sealed.find((f) => path.basename(f) === `${id}.json`);
      assert.ok(file, `the sealed secret ${id} is in secrets/sealed/`);
      const box = JSON.parse(await fs.readFile(file, 'utf8'));
      assertAbsent(Buffer.from(box.body, 'base64').toString('latin1'), 'the sealed body, decoded');
    }
    assert.ok(files.some((f) => f.endsWith(`${path.sep}secret_src${path.sep}manifest.json`)), 'the walk reaches the manifests');
    for (const file of files) assertAbsent((await fs.readFile(file)).toString('latin1'), path.relative(env.dataDir, file));

    // what people read: job views and lists, Bull Board's API
    for (const p of [`/jobs/ingest/${good.id}`, `/jobs/ingest/${bad.id}`, '/jobs/ingest?state=completed&limit=500', '/jobs/ingest?state=failed&limit=500']) {
      const r = await as(READER, p);
      assert.equal(r.status, 200, p);
      assertAbsent(r.text, `GET ${p}`);
    }
    for (const p of [
      `/admin/queues/api/queues/ingest/${good.id}`,
      `/admin/queues/api/queues/ingest/${bad.id}`,
      '/admin/queues/api/queues?activeQueue=ingest&status=completed&page=1&jobsPerPage=100',
      '/admin/queues/api/queues?activeQueue=ingest&status=failed&page=1&jobsPerPage=100',
    ]) {
      const r = await call(api.url, p, { basic: BOARD });
      assert.equal(r.status, 200, `${p}: ${r.text.slice(0, 200)}`);
      assert.ok(r.text.includes(PG_ROLE), `${p} shows the job`);
      assertAbsent(r.text, `Bull Board ${p}`);
    }

    // logs: the API's and the workers' loggers at debug, and whatever the sandboxed children printed
    const logs = logged.join('');
    assertAbsent(logs, 'the logs');
    assert.match(logs, /"name":"api".*"msg":"API listening"/, 'the capture sees the API log');
    // the worker runner logs every failed job (workers/runner.ts): proof the capture sees that too
    assert.match(logs, /"msg":"job failed"/, 'the capture sees the worker log');
    assert.ok(logs.includes(`nosuchdb_${SFX}`), 'the failure is in the log');
  });

  it('Postgres and MariaDB tables: every type as the driver reads it; incremental runs fetch only new rows', async () => {
    const sources = [
      {
        dataset: 'pg_types', columns: PG_COLUMNS, more: () => pgc.exec(PG_TYPES_MORE),
        read: () => pgc.rows(`SELECT * FROM ${TYPES_TABLE} ORDER BY id`),
        source: { kind: 'postgres', dsn: PG_PLAIN_DSN, table: TYPES_TABLE, incremental: { column: 'id' } },
      },
      {
        dataset: 'my_types', columns: MY_COLUMNS, more: () => myc.exec(MY_TYPES_MORE),
        read: () => myc.rows(`SELECT * FROM ${TYPES_TABLE} ORDER BY id`),
        source: { kind: 'mysql', connection: 'maria', table: TYPES_TABLE, incremental: { column: 'id' } },
      },
    ];
    await Promise.all(
      sources.map(async (s) => {
        const first = completed(await ingestJob({ dataset: s.dataset, source: s.source }), `${s.dataset} first run`);
        assert.equal(first.rows, 5, `${s.dataset}: first run`);
        assert.equal(first.dataset_rows, 5);
        const m1 = await manifestOf(s.dataset);
        assert.deepEqual(m1.incremental, { column: 'id', high_water_mark: 5, source: TYPES_TABLE }, `${s.dataset}: high-water mark`);
        await assertSameRows(s.dataset, s.columns, await s.read());

        await s.more();
        const second = completed(await ingestJob({ dataset: s.dataset, source: s.source }), `${s.dataset} second run`);
        assert.equal(second.rows, 2, `${s.dataset}: the second run fetches only the new rows`);
        assert.equal(second.dataset_rows, 7);
        assert.equal(second.duplicate, false);
        const m2 = await manifestOf(s.dataset);
        assert.equal(m2.incremental.high_water_mark, 7, `${s.dataset}: the mark advanced`);
        assert.equal(m2.parts.length, 2);
        assert.match(m2.parts[1].lineage.statement, /WHERE .*id.* > /, 'the second run read above the mark');
        await assertSameRows(s.dataset, s.columns, await s.read());

        const third = completed(await ingestJob({ dataset: s.dataset, source: s.source }), `${s.dataset} third run`);
        assert.equal(third.rows, 0, `${s.dataset}: nothing new`);
        assert.equal(third.part, null, 'no part for nothing');
        assert.equal(third.dataset_rows, 7);
        const m3 = await manifestOf(s.dataset);
        assert.equal(m3.parts.length, 2, 'no empty part');
        assert.equal(m3.version, m2.version, 'the manifest is unchanged');
      }),
    );
    const pgSchema = Object.fromEntries((await manifestOf('pg_types')).schema.map((c: { name: string; type: string }) => [c.name, c.type]));
    assert.deepEqual(
      { amount: pgSchema.amount, at: pgSchema.at, doc: pgSchema.doc, uid: pgSchema.uid, raw: pgSchema.raw, big: pgSchema.big, flag: pgSchema.flag },
      { amount: 'DECIMAL(12,2)', at: 'TIMESTAMP WITH TIME ZONE', doc: 'JSON', uid: 'UUID', raw: 'BLOB', big: 'BIGINT', flag: 'BOOLEAN' },
    );
    const mySchema = Object.fromEntries((await manifestOf('my_types')).schema.map((c: { name: string; type: string }) => [c.name, c.type]));
    assert.deepEqual({ amount: mySchema.amount, flag: mySchema.flag, at: mySchema.at, doc: mySchema.doc }, { amount: 'DECIMAL(12,2)', flag: 'BOOLEAN', at: 'TIMESTAMP', doc: 'JSON' });
  });

  it('formats by upload: NDJSON, Markdown split by heading, TSV; a binary file fails clearly and leaves no dataset', async () => {
    const ndjson = ['{"id": 1, "kind": "a", "v": 1.5}', '{"id": 2, "kind": "b", "v": null}', '{"id": 3, "kind": "c", "v": -2}', '{"id": 4, "kind": "d", "v": 0}'].join('\n') + '\n';
    const markdown = [
      'Preamble before any heading.', '', '# Alpha', 'alpha text', '', '## Beta', 'beta text', '```', '# not a heading, in a fence', '```', '', '# Gamma', 'gamma text', '',
    ].join('\n');
    const tsv = 'id\tcity\tnote\n1\tOslo\tcold, dark\n2\tLima\tfoggy\n3\tPerth\tsunny\n4\tQuito\thigh\n5\tCairo\thot\n6\tNuuk\ticy\n';
    const binary = Buffer.alloc(4096);
    for (let i = 0; i < binary.length; i++) binary[i] = (i * 151 + 7) % 256;

    const [nd, md, tab, bin] = await Promise.all([
      uploadJob('events', ndjson, { filename: 'events.ndjson' }),
      uploadJob('guide', markdown, { filename: 'guide.md', split_markdown: 'true' }),
      uploadJob('cities', tsv, { filename: 'cities.tsv' }),
      uploadJob('blobby', binary, { filename: 'blob.bin' }),
    ]);
    assert.equal(completed(nd, 'ndjson').rows, 4);
    assert.equal((await query(WRITER, 'SELECT sum(id) AS s, count(v) AS nv FROM events')).rows[0].s, 10);
    assert.equal(completed(md, 'markdown').rows, 4, 'preamble + Alpha + Beta + Gamma');
    const sections = await query(WRITER, 'SELECT section, heading FROM guide ORDER BY section');
    assert.deepEqual(sections.rows.map((r: { heading: string }) => r.heading), ['', 'Alpha', 'Beta', 'Gamma']);
    assert.equal(completed(tab, 'tsv').rows, 6);
    assert.deepEqual((await query(WRITER, 'SELECT note FROM cities WHERE id = 1')).rows, [{ note: 'cold, dark' }]);
    for (const [name, format] of [['events', 'ndjson'], ['guide', 'markdown'], ['cities', 'tsv']] as const) {
      assert.equal((await manifestOf(name)).parts[0].lineage.format, format, `${name} was read as ${format}`);
    }

    const reason = failed(bin, 'binary upload');
    assert.match(reason, /unknown or unreadable format: blob\.bin is binary data/);
    assert.equal(bin.attempts, 1, 'bad input is not retried');
    assertProblem(await as(READER, '/datasets/blobby'), 404, 'the failed dataset');
    assert.ok(!(await as(READER, '/datasets')).json.datasets.some((d: { name: string }) => d.name === 'blobby'));
    assert.equal(await exists(path.join(env.dataDir, 'datasets', 'blobby', 'manifest.json')), false, 'no manifest');
    // no dataset means the name is free for any bucket, and nothing of it is left on disk
    completed(await uploadJob('blobby', 'id\n1\n', { filename: 'ok.csv', bucket: 'cold' }), 'a real file under the failed name, into cold');
    assert.equal(await exists(path.join(env.dataDir, 'datasets', 'blobby')), false, 'no dataset directory left behind in primary');
  });

  it('the same bytes appended twice: the second job is a duplicate and adds nothing', async () => {
    const csv = csvText([['id', 'city'], [1, 'Oslo'], [2, 'Lima'], [3, 'Perth']]);
    const first = await uploadJob('dedup', csv, { filename: 'cities.csv' });
    assert.equal(completed(first, 'first').rows, 3);
    const m1 = await manifestOf('dedup');
    const second = completed(await uploadJob('dedup', csv, { filename: 'cities-again.csv' }), 'second');
    assert.equal(second.duplicate, true);
    assert.equal(second.rows, 0);
    assert.equal(second.part, null);
    assert.equal(second.dataset_rows, 3);
    const m2 = await manifestOf('dedup');
    assert.equal(m2.parts.length, 1, 'still one part');
    assert.equal(m2.version, m1.version);
    assert.equal((await query(WRITER, 'SELECT count(*) AS n FROM dedup')).rows[0].n, 3);

    // lineage of a file part
    const part = m2.parts[0];
    assert.equal(part.job_id, first.id);
    assert.equal(part.fingerprint, createHash('sha256').update(csv).digest('hex'), 'the fingerprint is the sha256 of the bytes');
    assert.equal(part.lineage.kind, 'upload');
    assert.equal(part.lineage.filename, 'cities.csv');
    assert.equal(part.lineage.format, 'csv');
    assert.equal(part.lineage.host, os.hostname());
    assert.ok(Date.parse(part.lineage.started_at) <= Date.parse(part.lineage.finished_at), 'started before finished');
    assert.ok(Date.parse(part.lineage.started_at) >= Date.parse(m1.created_at) - 60_000);
  });

  it('schema evolution: a new column is added; a column changing type is refused by name and changes nothing', async () => {
    completed(await uploadJob('evo', 'id,name\n1,a\n2,b\n', { filename: 'v1.csv' }), 'v1');
    completed(await uploadJob('evo', 'id,name,extra\n3,c,x3\n', { filename: 'v2.csv' }), 'v2 with an extra column');
    const m = await manifestOf('evo');
    assert.deepEqual(m.schema.map((c: { name: string }) => c.name), ['id', 'name', 'extra']);
    assert.deepEqual((await query(WRITER, 'SELECT id, extra FROM evo ORDER BY id')).rows, [
      { id: 1, extra: null }, { id: 2, extra: null }, { id: 3, extra: 'x3' },
    ]);
    const reason = failed(await uploadJob('evo', 'id,name\nabc,d\n', { filename: 'v3.csv' }), 'id becomes text');
    assert.match(reason, /column "id"/);
    assert.deepEqual(await manifestOf('evo'), m, 'the manifest is unchanged');
    const partsOnDisk = (await fs.readdir(path.join(env.dataDir, 'datasets', 'evo', 'parts'))).sort();
    assert.deepEqual(partsOnDisk, m.parts.map((p: { file: string }) => path.basename(p.file)).sort(), 'no orphan part file from the refused append');
  });

  it('buckets: a dataset in cold lives under its path, joins with primary; unknown buckets and bucket moves are refused', async () => {
    const people = completed(await uploadJob('cold_people', 'id,city\n1,Oslo\n2,Lima\n3,Perth\n', { filename: 'people.csv', bucket: 'cold' }), 'cold upload');
    assert.equal(people.bucket, 'cold');
    const m = await manifestOf('cold_people');
    assert.equal(m.bucket, 'cold');
    for (const p of m.parts) assert.ok(await exists(path.join(coldDir, 'datasets', 'cold_people', p.file)), `${p.file} under the cold path`);
    assert.equal(await exists(path.join(env.dataDir, 'datasets', 'cold_people')), false, 'nothing in primary');
    assert.equal((await as(READER, '/datasets')).json.datasets.find((d: { name: string }) => d.name === 'cold_people')?.bucket, 'cold');

    completed(await uploadJob('warm_orders', 'order_id,person_id,total\n10,2,5.5\n11,1,7.25\n12,2,1\n', { filename: 'orders.csv' }), 'primary upload');
    const joined = await query(WRITER, 'SELECT o.order_id, p.city FROM warm_orders o JOIN cold_people p ON o.person_id = p.id ORDER BY o.order_id');
    assert.deepEqual(joined.rows, [{ order_id: 10, city: 'Lima' }, { order_id: 11, city: 'Oslo' }, { order_id: 12, city: 'Lima' }]);

    const nosuch = assertProblem(await upload('anything', 'id\n1\n', { bucket: 'nosuch' }), 400, 'unknown bucket');
    assert.match(nosuch.detail, /nosuch/);
    assert.match(nosuch.detail, /primary, cold/);
    const nosuchJob = assertProblem(await post(WRITER, '/jobs/ingest', { dataset: 'anything', bucket: 'nosuch', source: { kind: 'postgres', dsn: PG_PLAIN_DSN, table: TYPES_TABLE } }), 400);
    assert.match(nosuchJob.detail, /primary, cold/);

    const before = await manifestOf('warm_orders');
    const moved = failed(await uploadJob('warm_orders', 'order_id,person_id,total\n13,3,2\n', { filename: 'more.csv', bucket: 'cold' }), 'write to primary dataset with bucket=cold');
    assert.match(moved, /warm_orders.*lives in bucket primary, not cold/);
    assert.deepEqual(await manifestOf('warm_orders'), before);
    assert.equal(await exists(path.join(coldDir, 'datasets', 'warm_orders')), false);
  });

  it('PII: flagged, masked for readers (queries and preview) until made public; the audit log says who touched what', async () => {
    const rows = [
      ['id', 'email', 'notes'], [1, 'ann@example.com', 'called on monday'], [2, 'bob.smith@example.org', 'prefers phone'],
      [3, 'carol+news@example.net', 'no notes'], [4, 'dave@example.com', 'wrote back'], [5, 'erin@example.co.uk', 'asked for an invoice'],
    ];
    completed(await uploadJob('contacts', csvText(rows), { filename: 'contacts.csv' }), 'contacts');
    const m = await manifestOf('contacts');
    assert.ok(m.pii.some((f: { column: string; kind: string }) => f.column === 'email' && f.kind === 'email'), JSON.stringify(m.pii));
    assert.ok(!m.pii.some((f: { column: string }) => f.column === 'notes'), `notes are not PII: ${JSON.stringify(m.pii)}`);

    const emails = rows.slice(1).map((r) => r[1]);
    const SQL_R1 = 'SELECT id, email, notes FROM contacts ORDER BY id';
    const SQL_W = 'SELECT id, email FROM contacts ORDER BY id';
    const SQL_R2 = 'SELECT email FROM contacts ORDER BY id';
    const masked = await query(READER, SQL_R1);
    assert.deepEqual(masked.rows.map((r: { email: string }) => r.email), emails.map(() => '***'));
    assert.deepEqual(masked.rows.map((r: { notes: string }) => r.notes), rows.slice(1).map((r) => r[2]));
    const preview = await as(READER, '/datasets/contacts/preview?limit=3');
    assert.equal(preview.status, 200, preview.text);
    assert.equal(preview.json.row_count, 3);
    assert.equal(preview.json.rows.length, 3);
    assert.ok(preview.json.rows.every((r: { email: string }) => r.email === '***'), 'preview is masked for readers');
    const writerPreview = await as(WRITER, '/datasets/contacts/preview?limit=3');
    assert.ok(writerPreview.json.rows.every((r: { email: string }) => emails.includes(r.email)), 'writers preview the values');
    assert.deepEqual((await query(WRITER, SQL_W)).rows.map((r: { email: string }) => r.email), emails);

    assertProblem(await as(READER, '/datasets/contacts/public-columns', { method: 'PUT', body: { columns: ['email'] } }), 403, 'reader publishes');
    assertProblem(await as(WRITER, '/datasets/contacts/public-columns', { method: 'PUT', body: { columns: ['email'] } }), 403, 'writer publishes: an admin decision');
    const pub = await as(ADMIN, '/datasets/contacts/public-columns', { method: 'PUT', body: { columns: ['email'] } });
    assert.equal(pub.status, 200, pub.text);
    assert.deepEqual(pub.json.public_columns, ['email']);
    assert.deepEqual((await query(READER, SQL_R2)).rows.map((r: { email: string }) => r.email), emails, 'public now');

    assertProblem(await as(READER, '/audit/queries'), 403, 'reader reads the audit');
    assertProblem(await as(WRITER, '/audit/queries'), 403, 'writer reads the audit');
    const audit = await as(ADMIN, '/audit/queries?limit=1000');
    assert.equal(audit.status, 200, audit.text.slice(0, 300));
    for (const key of [ADMIN, WRITER, READER]) assert.ok(!audit.text.includes(key), 'no raw key in the audit log');
    const entries: any[] = audit.json.entries;
    for (let i = 1; i < entries.length; i++) assert.ok(entries[i - 1].id > entries[i].id, `newest first at ${i}`);
    const r1 = entries.findIndex((e) => e.sql === SQL_R1);
    const w = entries.findIndex((e) => e.sql === SQL_W);
    const r2 = entries.findIndex((e) => e.sql === SQL_R2);
    assert.ok(r2 >= 0 && w > r2 && r1 > w, `order newest first: r2=${r2} w=${w} r1=${r1}`);
    assert.match(entries[r1].who, /^[0-9a-f]{8}:reader$/);
    assert.equal(entries[r2].who, entries[r1].who, 'the same reader key, the same identity');
    assert.match(entries[w].who, /^[0-9a-f]{8}:writer$/);
    for (const i of [r1, w, r2]) {
      assert.deepEqual(entries[i].datasets, ['contacts']);
      assert.equal(entries[i].outcome, 'ok');
      assert.equal(entries[i].rows, 5);
    }
    assert.ok(entries[r1].pii_columns.some((c: { dataset: string; column: string }) => c.dataset === 'contacts' && c.column === 'email'), JSON.stringify(entries[r1].pii_columns));
    assert.ok(!entries[r1].pii_columns.some((c: { column: string }) => c.column === 'notes'));
    assert.ok(entries.some((e) => e.role === 'reader' && /LIMIT 3/.test(e.sql) && e.datasets.includes('contacts')), 'the preview is audited too');
  });

  it('lineage of database parts: kind, redacted DSN or connection, statement, host, times, fingerprint, job id', async () => {
    for (const [name, kind, dsn, quoted] of [
      ['pg_types', 'postgres', PG_PLAIN_DSN, `"${TYPES_TABLE}"`],
      ['my_types', 'mysql', 'connection:maria', `\`${TYPES_TABLE}\``],
      ['secret_src', 'postgres', REDACTED_DSN, `"${SECRET_TABLE}"`],
    ] as const) {
      const m = await manifestOf(name);
      for (const part of m.parts) {
        assert.equal(part.lineage.kind, kind, name);
        assert.equal(part.lineage.dsn, dsn, name);
        assert.ok(part.lineage.statement.startsWith(`SELECT * FROM ${quoted}`), `${name}: ${part.lineage.statement}`);
        assert.equal(part.lineage.host, os.hostname());
        assert.ok(Date.parse(part.lineage.started_at) <= Date.parse(part.lineage.finished_at));
        assert.match(part.fingerprint, /^[0-9a-f]{64}$/);
        const job = await as(WRITER, `/jobs/ingest/${part.job_id}`);
        assert.equal(job.status, 200, `${name}: the part's job ${part.job_id}`);
        assert.equal(job.json.data.dataset, name);
        assert.equal(job.json.result.part, part.file);
      }
    }
  });

  it('DELETE /datasets/:name: admin only; files move to trash/, the dataset and its view are gone', async () => {
    const m = await manifestOf('contacts');
    assertProblem(await as(WRITER, '/datasets/contacts', { method: 'DELETE' }), 403, 'writer deletes');
    const del = await as(ADMIN, '/datasets/contacts', { method: 'DELETE' });
    assert.equal(del.status, 200, del.text);
    assert.equal(del.json.dataset, 'contacts');
    assert.match(del.json.trashed_to, /^trash\/contacts--/);
    assert.deepEqual(del.json.purged, []);
    assertProblem(await as(READER, '/datasets/contacts'), 404, 'after delete');
    assertProblem(await as(READER, '/datasets/contacts/preview?limit=3'), 404, 'preview after delete');
    const trashed = path.join(env.dataDir, del.json.trashed_to);
    assert.ok(await exists(path.join(trashed, 'manifest.json')), 'the manifest is in the trash');
    for (const p of m.parts) assert.ok(await exists(path.join(trashed, p.file)), `${p.file} is in the trash`);
    assert.equal(await exists(path.join(env.dataDir, 'datasets', 'contacts')), false);
    const gone = assertProblem(await post(WRITER, '/query', { sql: 'SELECT count(*) FROM contacts' }), 400, 'query after delete');
    assert.match(gone.detail, /contacts/);
    assert.ok(!(await as(READER, '/datasets')).json.datasets.some((d: { name: string }) => d.name === 'contacts'));
  });

  it('path safety: bad dataset names and inbox paths are 400, a missing inbox file 404; a real one is ingested and settled', async () => {
    for (const [raw, shown] of [['..%2Fx', '../x'], ['A', 'A'], ['x%2Fy', 'x/y']] as const) {
      assertProblem(await upload(raw, 'id\n1\n'), 400, `upload to ${shown}`);
      const p = assertProblem(await post(WRITER, '/jobs/ingest', { dataset: shown, source: { kind: 'upload', path: 'staging/uploads/none.upload' } }), 400, `ingest into ${shown}`);
      assert.ok(p.errors?.some((e) => e.path.endsWith('dataset')), `${shown}: ${JSON.stringify(p.errors)}`);
    }
    for (const bad of ['../secrets/admin.key', '/etc/passwd', 'people/../../x', '.claimed/x/y']) {
      assertProblem(await post(WRITER, '/jobs/ingest', { dataset: 'people', source: { kind: 'inbox', path: bad } }), 400, `inbox path ${bad}`);
    }
    assertProblem(await post(WRITER, '/jobs/ingest', { dataset: 'people', source: { kind: 'inbox', path: 'people/missing.csv' } }), 404, 'missing inbox file');

    const inbox = path.join(env.dataDir, 'inbox');
    await fs.mkdir(path.join(inbox, 'people'), { recursive: true });
    await fs.writeFile(path.join(inbox, 'people', 'a.csv'), 'id,city\n1,Oslo\n2,Lima\n');
    const job = await ingestJob({ dataset: 'people', source: { kind: 'inbox', path: 'people/a.csv' } });
    assert.equal(completed(job, 'inbox ingest').rows, 2);
    assert.match(job.data.source.path, /^\.claimed\/people\/[0-9a-f-]{36}__a\.csv$/);
    assert.equal(await exists(path.join(inbox, 'people', 'a.csv')), false, 'claimed away');
    const processed = await waitFor(
      async () => {
        const settled = (await fs.readdir(path.join(inbox, 'processed', 'people')).catch(() => [] as string[])).filter((f) => f.endsWith('__a.csv'));
        return settled.length > 0 ? settled : undefined;
      },
      { what: 'the file in inbox/processed/people/' },
    );
    assert.equal(processed.length, 1);
    assert.equal(await fs.readFile(path.join(inbox, 'processed', 'people', processed[0]!), 'utf8'), 'id,city\n1,Oslo\n2,Lima\n');
    assert.deepEqual(await fs.readdir(path.join(inbox, '.claimed', 'people')), [], 'no claim left');
    assert.equal((await manifestOf('people')).parts[0].lineage.kind, 'inbox');
  });
});
