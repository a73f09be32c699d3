/**
 * The HTTP API as a client sees it (DESIGN §4), over a real socket against real Redis, a real
 * sandboxed ingest worker and real DuckDB: auth and roles, the problem+json error contract, the
 * upload → ingest → query flow checked against a separate DuckDB reading the same CSV, upload
 * limits and idempotency, the SQL sandbox, OpenAPI, Bull Board, job listing, SSE, bulk, retry,
 * delete, workers, metrics and readiness.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createApp } from '../../api/app.ts';
import { startApi, type RunningApi } from '../../api/server.ts';
import { loadConfig, type Config } from '../../shared/config.ts';
import type { RunningWorkers } from '../../workers/runner.ts';
import { sqlString, withDuckDB } from '../helpers/duckdb.ts';
import { csvText, exists, testEnv, waitFor, type CsvValue, type TestEnv } from '../helpers/env.ts';
import { assertProblem, call, openSse, type CallOptions, type HttpAnswer } from '../helpers/http.ts';
import { silentLog, startTestWorkers } from '../helpers/jobs.ts';

const ADMIN = 'admin-key-7c1f0e9a4b2d';
const WRITER = 'writer-key-5e8d3a6c1b0f';
const READER = 'reader-key-9a2b4c6d8e0f';
const UNKNOWN = 'nobody-key-0000000000000';
const CONCURRENCY = 2;
const PEOPLE_ROWS = 2_000;

function apiConfig(extra: Record<string, string> = {}): Config {
  return loadConfig({
    ...process.env, // REDIS_URL, LAKEHOUSE_DATA_DIR, LAKEHOUSE_QUEUE_PREFIX set by testEnv()
    LAKEHOUSE_API_KEYS: `${ADMIN}:admin,${WRITER}:writer,${READER}:reader`,
    LAKEHOUSE_HOST: '127.0.0.1',
    PORT: '0',
    ...extra,
  });
}

/** id, an integer (negatives too), a two-decimal amount and text full of quotes and commas. */
function peopleRows(n: number): CsvValue[][] {
  const rows: CsvValue[][] = [['id', 'x', 'amount', 'name']];
  for (let i = 1; i <= n; i++) rows.push([i, ((i * 7919) % 10_007) - 5_000, ((i * 37) % 100_000) / 100 + 0.01, personName(i)]);
  return rows;
}

function personName(i: number): string {
  if (i % 10 === 0) return `Doe, "Jr." ${i}`;
  if (i % 7 === 0) return `she said "hi, there" to #${i}`;
  return `person ${i}`;
}

let env: TestEnv;
let api: RunningApi;
let workers: RunningWorkers;
let fixtures: string;
/** The people upload's job, shared by later checks (board, listing, SSE, metrics). */
let peopleJobId = '';
/** What staging/uploads held after the idempotent uploads' job completed. */
let idemStrays: string[] = [];

const as = (key: string | undefined, p: string, opts: CallOptions = {}) => call(api.url, p, { ...opts, ...(key ? { key } : {}) });
const get = (key: string | undefined, p: string) => as(key, p);
const post = (key: string | undefined, p: string, body?: unknown, headers?: Record<string, string>) =>
  as(key, p, { method: 'POST', body, ...(headers ? { headers } : {}) });

/** Writes a CSV into staging/uploads the way the upload route would, returning the payload path. */
async function stageCsv(name: string, rows: CsvValue[][]): Promise<string> {
  await fs.writeFile(path.join(env.uploadsDir, name), csvText(rows));
  return `staging/uploads/${name}`;
}

/**
 * Polls a job's URL until it has finished; returns the final job view. A view whose state says
 * finished but which lacks the result / reason yet counts as "not yet": GET /jobs/:queue/:id reads
 * the job and its state in two steps (see the report on api/routes/jobs.ts).
 */
async function finishedJob(location: string, timeoutMs = 30_000): Promise<any> {
  return waitFor(
    async () => {
      const r = await get(WRITER, location); // failed_reason is for writers and admins
      if (r.status !== 200) return undefined;
      if (r.json.state === 'completed' && r.json.result !== undefined) return r.json;
      if (r.json.state === 'failed' && r.json.failed_reason !== undefined) return r.json;
      return undefined;
    },
    { timeoutMs, intervalMs: 100, what: `${location} to finish` },
  );
}

async function uploadsLeft(): Promise<string[]> {
  return fs.readdir(env.uploadsDir);
}

function expectEnqueued(res: HttpAnswer, what: string): { id: string; location: string } {
  assert.equal(res.status, 202, `${what}: ${res.text}`);
  assert.equal(typeof res.json.id, 'string');
  assert.ok(res.json.id.length > 0);
  assert.equal(res.json.queue, 'ingest');
  assert.ok(['waiting', 'active', 'completed', 'delayed', 'prioritized'].includes(res.json.state), `state ${res.json.state}`);
  const location = res.headers.get('location');
  assert.equal(location, `/jobs/ingest/${res.json.id}`, `${what}: Location header`);
  return { id: res.json.id, location };
}

describe('HTTP API', { timeout: 90_000 }, () => {
  before(async () => {
    env = await testEnv();
    fixtures = await fs.mkdtemp(path.join(os.tmpdir(), 'lhtest-fixtures-'));
    env.defer(() => fs.rm(fixtures, { recursive: true, force: true }));
    workers = await startTestWorkers(env, ['ingest'], CONCURRENCY);
    api = await startApi(apiConfig(), silentLog);
    env.defer(() => api.close());
  });

  after(() => env?.cleanup());

  it('auth: /health is public, everything else needs a key with the right role', async () => {
    const health = await get(undefined, '/health');
    assert.equal(health.status, 200);
    assert.deepEqual(health.json, { status: 'ok' });

    const none = await get(undefined, '/jobs/ingest');
    const p = assertProblem(none, 401, 'no key');
    assert.match(none.headers.get('www-authenticate') ?? '', /^Bearer/);
    assert.match(p.detail, /key/i);
    assertProblem(await get(UNKNOWN, '/jobs/ingest'), 401, 'unknown key');
    assertProblem(await as(undefined, '/jobs/ingest', { headers: { authorization: 'Bearer' } }), 401, 'empty bearer');
    assertProblem(await as(undefined, '/jobs/ingest', { headers: { authorization: `Token ${ADMIN}` } }), 401, 'unknown scheme');
    // /ready is public for orchestrators' probes, but without a key it says only ok/failed
    const probe = await get(undefined, '/ready');
    assert.equal(probe.status, 200, probe.text);
    assert.deepEqual(probe.json, { status: 'ready', checks: { redis: 'ok', data_root: 'ok' } });
    assertProblem(await get(undefined, '/workers'), 401, '/workers without key');
    assertProblem(await get(undefined, '/openapi.json'), 401, '/openapi.json without key');
    assert.equal((await get(READER, '/jobs/ingest')).status, 200, 'reader may list');

    const rel = await stageCsv('auth.csv', peopleRows(5));
    const payload = { dataset: 'auth_probe', source: { kind: 'upload', path: rel } };
    const before = (await get(READER, '/jobs/ingest?state=completed')).json.counts;
    const forbidden = assertProblem(await post(READER, '/jobs/ingest', payload), 403, 'reader enqueues');
    assert.match(forbidden.detail, /writer/);
    const afterRefusal = (await get(READER, '/jobs/ingest?state=completed')).json.counts;
    assert.deepEqual(afterRefusal, before, 'a refused enqueue adds no job');

    const { id, location } = expectEnqueued(await post(WRITER, '/jobs/ingest', payload), 'writer enqueues');
    const done = await finishedJob(location);
    assert.equal(done.state, 'completed', done.failed_reason);
    assert.equal(done.result.rows, 5);

    assertProblem(await as(READER, location, { method: 'DELETE' }), 403, 'reader deletes');
    assertProblem(await as(WRITER, location, { method: 'DELETE' }), 403, 'writer deletes');
    assert.equal((await get(READER, location)).json.id, id, 'the job is still there');
  });

  it('upload → ingest → query: the API answers what DuckDB reads from the same CSV', async () => {
    const csvFile = path.join(fixtures, 'people.csv');
    const rows = peopleRows(PEOPLE_ROWS);
    await fs.writeFile(csvFile, csvText(rows));

    const res = await as(WRITER, '/datasets/people/upload?mode=replace', {
      method: 'POST',
      body: await fs.readFile(csvFile),
      headers: { 'content-type': 'text/csv' },
    });
    const { id, location } = expectEnqueued(res, 'upload');
    peopleJobId = id;
    const job = await finishedJob(location);
    assert.equal(job.state, 'completed', job.failed_reason);
    assert.equal(job.id, id);
    assert.equal(job.result.rows, PEOPLE_ROWS);
    assert.equal(job.result.dataset, 'people');
    assert.equal(job.attempts, 1);
    assert.equal(job.data.mode, 'replace');
    assert.equal(job.data.source.bytes, (await fs.stat(csvFile)).size);
    assert.deepEqual(await uploadsLeft(), [], 'the staged upload is gone once ingested');

    const expected = await withDuckDB(async (db) => {
      const [agg] = await db.all(`SELECT count(*) AS n, sum(x) AS s, sum(amount) AS a FROM read_csv(${sqlString(csvFile)})`);
      const names = await db.all(`SELECT id, name FROM read_csv(${sqlString(csvFile)}) WHERE id IN (7, 10, 70, 1999) ORDER BY id`);
      return { n: String(agg!['n']), s: String(agg!['s']), a: Number(agg!['a']), names };
    });
    assert.equal(expected.n, String(PEOPLE_ROWS), 'the reference DuckDB read the whole file');

    // as `curl -d` sends it: form encoding declared, JSON in the body
    const form = { 'content-type': 'application/x-www-form-urlencoded' };
    const q = await post(READER, '/query', JSON.stringify({ sql: 'SELECT count(*) AS n, sum(x) AS s FROM people' }), form);
    assert.equal(q.status, 200, q.text);
    assert.deepEqual(q.json.columns.map((c: { name: string }) => c.name), ['n', 's']);
    assert.equal(q.json.columns[0].type, 'BIGINT');
    assert.equal(q.json.row_count, 1);
    assert.equal(q.json.truncated, false);
    assert.equal(String(q.json.rows[0].n), expected.n);
    assert.equal(String(q.json.rows[0].s), expected.s);

    const q2 = await post(READER, '/query', { sql: 'SELECT sum(amount) AS a FROM people' });
    assert.equal(q2.status, 200, q2.text);
    assert.ok(Math.abs(Number(q2.json.rows[0].a) - expected.a) < 1e-6 * Math.abs(expected.a), `${q2.json.rows[0].a} vs ${expected.a}`);
    // `name` is flagged as a person name, so only writers and admins see it (readers get ***)
    const q3 = await post(WRITER, '/query', { sql: 'SELECT id, name FROM people WHERE id IN (7, 10, 70, 1999) ORDER BY id' });
    assert.equal(q3.status, 200, q3.text);
    assert.deepEqual(
      q3.json.rows.map((r: { id: unknown; name: string }) => [Number(r.id), r.name]),
      [7, 10, 70, 1999].map((i) => [i, personName(i)]),
      'quotes and commas survive upload, ingest and query',
    );
    const masked = await post(READER, '/query', { sql: 'SELECT id, name FROM people WHERE id = 7' });
    assert.equal(masked.status, 200, masked.text);
    assert.deepEqual(masked.json.rows, [{ id: 7, name: '***' }], 'readers see the person-name column masked');
    assert.deepEqual(q3.json.rows.map((r: { name: string }) => r.name), expected.names.map((r) => r['name']));

    const list = await get(READER, '/datasets');
    assert.equal(list.status, 200);
    const people = list.json.datasets.find((d: { name: string }) => d.name === 'people');
    assert.ok(people, `people listed: ${list.text}`);
    assert.equal(people.rows, PEOPLE_ROWS);
    assert.equal(people.parts, 1);
    assert.deepEqual(people.columns.map((c: { name: string }) => c.name), ['id', 'x', 'amount', 'name']);

    const manifest = await get(READER, '/datasets/people');
    assert.equal(manifest.status, 200);
    assert.equal(manifest.json.name, 'people');
    assert.ok(manifest.json.version >= 1);
    assert.equal(manifest.json.rows, PEOPLE_ROWS);
    assert.equal(manifest.json.parts.length, 1);
    assert.equal(manifest.json.parts[0].job_id, id);
    assert.equal(manifest.json.parts[0].rows, PEOPLE_ROWS);
    assert.ok(await exists(path.join(env.dataDir, 'datasets', 'people', manifest.json.parts[0].file)), 'the listed part exists');

    assertProblem(await get(READER, '/datasets/nosuch'), 404, 'unknown dataset');
    assertProblem(await get(READER, '/datasets/Bad..Name'), 400, 'invalid dataset name');
  });

  it('Idempotency-Key: two uploads, one job, one ingest, no stray staged file', async () => {
    const body = csvText(peopleRows(50));
    const upload = () =>
      as(WRITER, '/datasets/idem/upload?mode=append', {
        method: 'POST',
        body,
        headers: { 'content-type': 'text/csv', 'idempotency-key': 'idem-upload-1' },
      });
    const first = expectEnqueued(await upload(), 'first upload');
    const second = expectEnqueued(await upload(), 'second upload');
    assert.equal(second.id, first.id, 'the same job');
    assert.equal(first.id, 'idem-upload-1');
    const job = await finishedJob(first.location);
    assert.equal(job.state, 'completed', job.failed_reason);
    const third = expectEnqueued(await upload(), 'upload after completion');
    assert.equal(third.id, first.id);

    const manifest = await get(READER, '/datasets/idem');
    assert.equal(manifest.status, 200);
    assert.equal(manifest.json.version, 1, 'one commit');
    assert.equal(manifest.json.parts.length, 1);
    assert.equal(manifest.json.rows, 50, 'appended once, not twice');
    const completed = (await get(WRITER, '/jobs/ingest?state=completed&limit=500')).json.jobs.filter(
      (j: { data: { dataset: string } }) => j.data.dataset === 'idem',
    );
    assert.equal(completed.length, 1, 'one ingest job ran');
    idemStrays = await uploadsLeft();
  });

  it('Idempotency-Key: the duplicate uploads are not left in staging', () => {
    assert.deepEqual(idemStrays, [], 'staging/uploads holds no stray file once the job is done');
  });

  it('uploads over LAKEHOUSE_UPLOAD_MAX_BYTES get 413 and leave nothing in staging', async () => {
    const small = await startApi(apiConfig({ LAKEHOUSE_UPLOAD_MAX_BYTES: '1000' }), silentLog);
    env.defer(() => small.close());
    const big = csvText(peopleRows(200));
    assert.ok(Buffer.byteLength(big) > 5_000);
    const stagedBefore = await uploadsLeft(); // empty unless an earlier test left something behind

    const declared = await call(small.url, '/datasets/toobig/upload', { method: 'POST', key: WRITER, body: big, headers: { 'content-type': 'text/csv' } });
    const p = assertProblem(declared, 413, 'declared length over the limit');
    assert.match(p.detail, /1000/);

    // no Content-Length: the limit must be enforced while the body streams in
    let streamed: HttpAnswer | Error;
    try {
      const bytes = new TextEncoder().encode(big);
      const res = await fetch(new URL('/datasets/toobig/upload', small.url), {
        method: 'POST',
        headers: { authorization: `Bearer ${WRITER}`, 'content-type': 'text/csv' },
        body: new ReadableStream({
          start(controller) {
            for (let i = 0; i < bytes.length; i += 512) controller.enqueue(bytes.subarray(i, i + 512));
            controller.close();
          },
        }),
        duplex: 'half',
        signal: AbortSignal.timeout(10_000),
      } as RequestInit);
      const text = await res.text();
      streamed = { status: res.status, headers: res.headers, text, json: JSON.parse(text) };
    } catch (err) {
      streamed = err as Error;
    }
    assert.ok(!(streamed instanceof Error), `chunked upload over the limit: the client got no answer (${String((streamed as Error).cause ?? streamed)})`);
    assertProblem(streamed, 413, 'chunked body over the limit');

    assert.deepEqual(await uploadsLeft(), stagedBefore, 'no partial upload left behind');
    assertProblem(await get(READER, '/datasets/toobig'), 404, 'nothing ingested');
    const waiting = (await get(WRITER, '/jobs/ingest?state=waiting')).json.jobs.filter((j: { data: { dataset: string } }) => j.data.dataset === 'toobig');
    assert.equal(waiting.length, 0, 'no job enqueued');

    // a body within the limit still works on this instance
    const ok = await call(small.url, '/datasets/small_ok/upload', { method: 'POST', key: WRITER, body: 'a,b\n1,2\n', headers: { 'content-type': 'text/csv' } });
    const { location } = expectEnqueued(ok, 'small upload');
    assert.equal((await finishedJob(location)).state, 'completed');
    assertProblem(await call(small.url, '/datasets/empty/upload', { method: 'POST', key: WRITER, body: '' }), 400, 'empty upload');
    assert.deepEqual(await uploadsLeft(), stagedBefore);
  });

  it('validation: bad payloads, unknown queues and broken JSON are 4xx problems', async () => {
    const bad = await post(WRITER, '/jobs/ingest', { dataset: '../x', source: { kind: 'upload', path: 'staging/uploads/a.csv' } });
    const p = assertProblem(bad, 400, 'dataset ../x');
    assert.ok(Array.isArray(p.errors) && p.errors.length > 0, 'errors[] present');
    assert.ok(p.errors.some((e) => /(^|\.)dataset$/.test(e.path)), `an error names the dataset path: ${JSON.stringify(p.errors)}`);
    assert.ok(p.errors.every((e) => typeof e.message === 'string' && e.message.length > 0));

    const escape = assertProblem(
      await post(WRITER, '/jobs/ingest', { dataset: 'ok', source: { kind: 'upload', path: 'staging/uploads/../../../etc/passwd' } }),
      400,
      'escaping source path',
    );
    assert.ok(escape.errors?.some((e) => /source\.path$/.test(e.path)), JSON.stringify(escape.errors));

    assertProblem(await get(READER, '/nowhere'), 404, 'unknown route');
    assertProblem(await post(WRITER, '/nowhere', {}), 404, 'unknown route (POST)');

    const broken = assertProblem(await post(WRITER, '/jobs/ingest', '{"dataset": "ok", '), 400, 'invalid JSON');
    assert.match(broken.detail, /JSON/);
    assertProblem(await post(WRITER, '/jobs/ingest', ''), 400, 'no body');
    assertProblem(await post(READER, '/query', { sql: '' }), 400, 'empty sql');
    assertProblem(await post(WRITER, '/jobs/ingest?priority=0', { dataset: 'ok', source: { kind: 'upload', path: 'staging/uploads/a.csv' } }), 400, 'bad query parameter');
    assert.equal((await get(READER, '/jobs/ingest?state=waiting')).json.counts.waiting, 0, 'nothing was enqueued by the refused requests');
  });

  it('unknown queues are 404 problems', async () => {
    assertProblem(await post(WRITER, '/jobs/nosuch', { dataset: 'ok' }), 404, 'POST /jobs/nosuch');
    assertProblem(await post(WRITER, '/jobs/nosuch/bulk', { jobs: [] }), 404, 'POST /jobs/nosuch/bulk');
    assertProblem(await get(READER, '/jobs/nosuch'), 404, 'GET /jobs/nosuch');
    assertProblem(await get(READER, '/jobs/nosuch/123'), 404, 'GET a job of an unknown queue');
  });

  it('a wrong method is a 405 problem that names the allowed ones', async () => {
    const res = await as(WRITER, '/jobs/ingest', { method: 'PUT', body: {} });
    assertProblem(res, 405, 'PUT /jobs/ingest');
    // /jobs/ingest is both the enqueue route (POST) and the job list of the ingest queue (GET)
    assert.deepEqual(res.headers.get('allow')?.split(/,\s*/).sort(), ['GET', 'HEAD', 'POST']);
  });

  it('a malformed Idempotency-Key is a 400, not a conflict', async () => {
    const res = await as(WRITER, '/datasets/badkey/upload', { method: 'POST', body: 'a\n1\n', headers: { 'content-type': 'text/csv', 'idempotency-key': 'not a valid:key' } });
    const p = assertProblem(res, 400, 'bad Idempotency-Key');
    assert.match(p.detail, /Idempotency-Key/);
  });

  it('the query endpoint is read-only and cannot read outside the datasets', async () => {
    const secret = path.join(env.dataDir, 'secrets', 'probe.txt');
    await fs.writeFile(secret, 'TOP-SECRET-PROBE-VALUE\n', { mode: 0o600 });
    const outside = path.join(fixtures, 'outside.csv');
    await fs.writeFile(outside, 'a,b\nOUTSIDE-VALUE,2\n');
    const target = path.join(fixtures, 'exfil.csv');

    const refused: { sql: string; status?: number }[] = [
      { sql: `SELECT * FROM read_csv('/etc/passwd')` },
      { sql: `SELECT * FROM read_csv(${sqlString(outside)})` },
      { sql: `SELECT content FROM read_text(${sqlString(secret)})` },
      { sql: `SELECT content FROM read_text(${sqlString(path.join(env.dataDir, 'datasets', '..', 'secrets', 'probe.txt'))})` },
      { sql: `SELECT * FROM read_text(${sqlString(path.join(env.dataDir, 'secrets', '*'))})` },
      { sql: `COPY (SELECT * FROM people) TO ${sqlString(target)}`, status: 400 },
      { sql: `COPY people TO ${sqlString(target)} (FORMAT csv)`, status: 400 },
      { sql: 'DROP VIEW people', status: 400 },
      { sql: 'DROP TABLE people', status: 400 },
      { sql: 'CREATE TABLE t AS SELECT 1 AS one', status: 400 },
      { sql: 'CREATE VIEW v AS SELECT 1 AS one', status: 400 },
    ];
    for (const { sql, status } of refused) {
      const res = await post(READER, '/query', { sql });
      assert.ok(res.status >= 400 && res.status < 500, `${sql} → ${res.status} ${res.text.slice(0, 200)}`);
      if (status) assertProblem(res, status, sql);
      else assertProblem(res, res.status, sql);
      assert.doesNotMatch(res.text, /TOP-SECRET-PROBE-VALUE|OUTSIDE-VALUE|root:x:0/, `${sql}: content leaked`);
    }
    assert.equal(await exists(target), false, 'COPY wrote nothing');
    const still = await post(READER, '/query', { sql: 'SELECT count(*) AS n FROM people' });
    assert.equal(still.status, 200, still.text);
    assert.equal(Number(still.json.rows[0].n), PEOPLE_ROWS, 'the view survived the DROP attempts');
    const t = await post(READER, '/query', { sql: 'SELECT * FROM t' });
    assert.ok(t.status >= 400 && t.status < 500, `table t must not exist: ${t.status}`);
  });

  it('GET /openapi.json documents every registered route', async () => {
    const res = await get(READER, '/openapi.json');
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    const doc = JSON.parse(res.text);
    assert.equal(doc.openapi, '3.1.0');
    assert.equal(typeof doc.info?.title, 'string');
    assert.ok(doc.components?.schemas?.Problem, 'Problem schema');
    assert.ok(doc.components?.securitySchemes?.bearer, 'bearer scheme');

    const toOpenApi = (p: string) => p.replace(/:([A-Za-z_]+)/g, '{$1}');
    const registered = createApp(api.deps).routes.specs.map((s) => `${s.method.toUpperCase()} ${toOpenApi(s.path)}`).sort();
    const documented = Object.entries(doc.paths as Record<string, Record<string, unknown>>)
      .flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`))
      .sort();
    assert.deepEqual(documented, registered, 'the document lists exactly the registered operations');
    for (const p of [
      '/health', '/ready', '/workers', '/metrics', '/jobs/ingest', '/jobs/ingest/bulk', '/jobs/{queue}', '/jobs/{queue}/{id}',
      '/jobs/{queue}/{id}/events', '/jobs/{queue}/{id}/retry', '/datasets', '/datasets/{name}', '/datasets/{name}/upload', '/query', '/openapi.json',
    ]) {
      assert.ok(doc.paths[p], `${p} documented`);
    }
    assert.ok(doc.paths['/jobs/{queue}/{id}'].delete, 'DELETE job documented');

    const opIds = Object.values(doc.paths as Record<string, Record<string, { operationId: string }>>).flatMap((ops) => Object.values(ops).map((o) => o.operationId));
    assert.equal(new Set(opIds).size, opIds.length, `operationIds unique: ${opIds.join(', ')}`);
    const enqueue = doc.paths['/jobs/ingest'].post;
    assert.ok(enqueue.requestBody.content['application/json'].schema.properties.dataset, 'enqueue body schema from zod');
    assert.ok(enqueue.responses['202'], '202 documented');
    assert.ok(doc.paths['/datasets/{name}/upload'].post.requestBody.content['application/octet-stream'], 'upload body documented');
    const jobParams = doc.paths['/jobs/{queue}/{id}'].get.parameters.map((x: { name: string; in: string }) => `${x.in}:${x.name}`).sort();
    assert.deepEqual(jobParams, ['path:id', 'path:queue']);
    assert.deepEqual(doc.paths['/health'].get.security, [], '/health is public');
    assert.equal(doc.paths['/jobs/ingest'].post['x-required-role'], 'writer');
  });

  it('Bull Board: Basic auth with an admin key; its API lists the ingest queue and jobs', async () => {
    assert.ok(peopleJobId, 'needs the upload job');
    const anon = await get(undefined, '/admin/queues');
    assert.equal(anon.status, 401);
    assert.match(anon.headers.get('www-authenticate') ?? '', /^Basic\b/);
    assert.doesNotMatch(anon.text, /<html/i);

    const basic = { user: 'ops', password: ADMIN };
    const page = await call(api.url, '/admin/queues', { basic });
    assert.equal(page.status, 200, page.text.slice(0, 200));
    assert.match(page.headers.get('content-type') ?? '', /text\/html/);
    assert.match(page.text, /<html/i);
    assert.match(page.text, /Lakehouse jobs/, 'our board title');

    const apiPath = '/admin/queues/api/queues?activeQueue=ingest&status=completed&page=1&jobsPerPage=100';
    const board = await call(api.url, apiPath, { basic });
    assert.equal(board.status, 200, board.text.slice(0, 300));
    const ingest = board.json.queues.find((q: { name: string }) => q.name === 'ingest');
    assert.ok(ingest, `ingest queue listed: ${board.text.slice(0, 300)}`);
    assert.ok(ingest.counts.completed >= 1);
    assert.ok(ingest.jobs.some((j: { id: string }) => j.id === peopleJobId), 'the upload job is on the board');
    const job = await call(api.url, `/admin/queues/api/queues/ingest/${peopleJobId}`, { basic });
    assert.equal(job.status, 200, job.text.slice(0, 300));
    assert.equal(job.json.job.id, peopleJobId);
    assert.equal(job.json.job.returnValue.rows, PEOPLE_ROWS);

    assert.equal((await call(api.url, apiPath, { basic: { user: 'ops', password: READER } })).status, 401, 'reader key refused');
    assert.equal((await call(api.url, apiPath, { basic: { user: 'ops', password: WRITER } })).status, 401, 'writer key refused');
    assert.equal((await call(api.url, apiPath, { basic: { user: 'ops', password: UNKNOWN } })).status, 401, 'unknown key refused');
    assert.equal((await call(api.url, apiPath, { key: ADMIN })).status, 200, 'Bearer admin works for scripts');
    assert.equal((await call(api.url, apiPath, { key: READER })).status, 401, 'Bearer reader refused');
  });

  it('listing with pagination, and SSE for finished and fresh jobs', async () => {
    // a job to watch from the start: delayed so the stream is open before it runs
    const rel = await stageCsv('fresh.csv', peopleRows(300));
    const fresh = expectEnqueued(await post(WRITER, '/jobs/ingest?delay_ms=1500', { dataset: 'fresh', source: { kind: 'upload', path: rel } }), 'delayed job');
    const live = await openSse(api.url, `${fresh.location}/events`, { key: READER });
    assert.equal(live.status, 200);
    assert.match(live.headers.get('content-type') ?? '', /^text\/event-stream/);
    const liveEvents = await live.finished;
    const kinds = liveEvents.map((e) => e.event);
    assert.equal(kinds[0], 'state', kinds.join(','));
    assert.equal(liveEvents[0]!.data.id, fresh.id);
    assert.notEqual(liveEvents[0]!.data.state, 'completed', 'the stream opened before the job ran');
    assert.equal(kinds.at(-1), 'completed', kinds.join(','));
    assert.equal(liveEvents.at(-1)!.data.result.rows, 300);
    const progress = liveEvents.filter((e) => e.event === 'progress');
    assert.ok(progress.length >= 1, `progress events: ${kinds.join(',')}`);
    assert.equal(progress.at(-1)!.data.percent, 100);
    assert.ok(kinds.indexOf('progress') < kinds.indexOf('completed'));

    // a finished job: its state, then completed, then the stream ends
    const done = await openSse(api.url, `/jobs/ingest/${peopleJobId}/events`, { key: READER, timeoutMs: 10_000 });
    assert.equal(done.status, 200);
    assert.match(done.headers.get('content-type') ?? '', /^text\/event-stream/);
    const doneEvents = await done.finished;
    assert.deepEqual(doneEvents.map((e) => e.event), ['state', 'completed']);
    assert.equal(doneEvents[0]!.data.state, 'completed');
    assert.equal(doneEvents[1]!.data.result.rows, PEOPLE_ROWS);
    assertProblem(await get(READER, '/jobs/ingest/no-such-job/events'), 404, 'events of a missing job');

    // every completed job, one per page
    const first = await get(READER, '/jobs/ingest?state=completed&limit=1');
    assert.equal(first.status, 200);
    assert.equal(first.json.state, 'completed');
    const total = first.json.counts.completed;
    assert.ok(total >= 3, `several completed jobs by now (people, idem, fresh at least): ${total}`);
    assert.equal(first.json.jobs.length, 1);
    assert.equal(first.json.next_start, 1);
    const seen: string[] = [first.json.jobs[0].id];
    let next: number | null = first.json.next_start;
    while (next !== null) {
      const page = await get(READER, `/jobs/ingest?state=completed&limit=1&start=${next}`);
      assert.equal(page.json.jobs.length, 1, `page at ${next}`);
      assert.ok(page.json.jobs.every((j: { state: string }) => j.state === 'completed'));
      seen.push(page.json.jobs[0].id);
      next = page.json.next_start;
      assert.ok(seen.length <= total, 'pagination terminates');
    }
    assert.equal(seen.length, total);
    assert.equal(new Set(seen).size, total, 'no job twice');
    assert.ok(seen.includes(peopleJobId) && seen.includes(fresh.id));
    const all = await get(READER, '/jobs/ingest?state=completed&limit=500');
    assert.deepEqual(all.json.jobs.map((j: { id: string }) => j.id), seen, 'pages concatenate to the full list');
    assert.equal(all.json.next_start, null);
    assertProblem(await get(READER, '/jobs/ingest?state=bogus'), 400, 'unknown state');
  });

  it('bulk enqueue, retry of a failed job, 409 for retrying a completed one, delete', async () => {
    const bulk = await post(WRITER, '/jobs/ingest/bulk', {
      jobs: await Promise.all(
        [10, 20, 30].map(async (n, i) => ({ payload: { dataset: 'bulk', mode: 'append', source: { kind: 'upload', path: await stageCsv(`bulk-${i}.csv`, peopleRows(n)) } } })),
      ),
    });
    assert.equal(bulk.status, 202, bulk.text);
    assert.equal(bulk.json.count, 3);
    assert.equal(bulk.json.jobs.length, 3);
    assert.equal(new Set(bulk.json.jobs.map((j: { id: string }) => j.id)).size, 3);
    for (const j of bulk.json.jobs) {
      const view = await finishedJob(`/jobs/ingest/${j.id}`);
      assert.equal(view.state, 'completed', view.failed_reason);
    }
    const bulkSet = await get(READER, '/datasets/bulk');
    assert.equal(bulkSet.json.rows, 60);
    assert.equal(bulkSet.json.version, 3);
    assert.equal(bulkSet.json.parts.length, 3);
    const badBulk = assertProblem(
      await post(WRITER, '/jobs/ingest/bulk', { jobs: [{ payload: { dataset: 'ok', source: { kind: 'upload', path: 'staging/uploads/a.csv' } } }, { payload: { dataset: '../x' } }] }),
      400,
      'bulk with a bad job',
    );
    assert.ok(badBulk.errors?.some((e) => e.path.includes('jobs.1.payload')), JSON.stringify(badBulk.errors));

    // fails: its staged file is not there (yet)
    const later = 'staging/uploads/later.csv';
    const failing = expectEnqueued(await post(WRITER, '/jobs/ingest', { dataset: 'retried', source: { kind: 'upload', path: later } }), 'failing job');
    const failed = await finishedJob(failing.location);
    assert.equal(failed.state, 'failed');
    assert.match(failed.failed_reason ?? "", /later\.csv is not there/, JSON.stringify(failed));
    assert.equal(failed.attempts, 1, 'a missing file is not retried automatically');
    assertProblem(await post(READER, `${failing.location}/retry`), 403, 'reader retries');

    await stageCsv('later.csv', peopleRows(40));
    const retried = await post(WRITER, `${failing.location}/retry`);
    assert.equal(retried.status, 202, retried.text);
    assert.equal(retried.json.id, failing.id);
    assert.equal(retried.headers.get('location'), failing.location);
    assert.notEqual(retried.json.state, 'failed');
    const recovered = await finishedJob(failing.location);
    assert.equal(recovered.state, 'completed', recovered.failed_reason);
    assert.equal(recovered.result.rows, 40, 'the retry ran the job again');

    assertProblem(await post(WRITER, `${failing.location}/retry`), 409, 'retry a completed job');
    assertProblem(await post(WRITER, '/jobs/ingest/no-such-job/retry'), 404, 'retry a missing job');

    const del = await as(ADMIN, failing.location, { method: 'DELETE' });
    assert.equal(del.status, 204, del.text);
    assertProblem(await get(READER, failing.location), 404, 'deleted job');
    assertProblem(await as(ADMIN, failing.location, { method: 'DELETE' }), 404, 'delete twice');
  });

  it('workers, metrics and readiness', async () => {
    const list = await get(READER, '/workers');
    assert.equal(list.status, 200);
    const mine = list.json.workers.find((w: { id: string }) => w.id === workers.record.id);
    assert.ok(mine, `our worker listed: ${list.text}`);
    assert.equal(mine.pid, process.pid);
    assert.equal(mine.host, os.hostname());
    assert.deepEqual(mine.queues, ['ingest']);
    assert.equal(mine.concurrency, CONCURRENCY);
    assert.ok(Date.parse(mine.last_seen) >= Date.parse(mine.started_at));

    const completed = (await get(READER, '/jobs/ingest?state=completed')).json.counts.completed;
    const metrics = await get(READER, '/metrics');
    assert.equal(metrics.status, 200);
    assert.match(metrics.headers.get('content-type') ?? '', /^text\/plain/);
    assert.ok(metrics.text.includes(`lakehouse_queue_jobs{queue="ingest",state="completed"} ${completed}\n`), `completed gauge = ${completed}`);
    assert.match(metrics.text, /^lakehouse_http_request_duration_seconds_bucket\{/m);
    const uploads = metrics.text.split('\n').find((l) => l.startsWith('lakehouse_http_request_duration_seconds_count{') && l.includes('route="/datasets/:name/upload"') && l.includes('status="202"'));
    assert.ok(uploads, 'upload requests measured under their route pattern');
    assert.ok(Number(uploads.split(' ').at(-1)) >= 4);
    assert.doesNotMatch(metrics.text, /route="[^"]*\/(\d+|idem-upload-1|no-such-job)(\/|")/, 'no raw job ids as labels');
    assertProblem(await get(undefined, '/metrics'), 401, 'metrics without key');

    const ready = await get(READER, '/ready');
    assert.equal(ready.status, 200);
    assert.equal(ready.json.status, 'ready');
    assert.deepEqual(ready.json.checks, { redis: 'ok', data_root: 'ok' });
  });
});
