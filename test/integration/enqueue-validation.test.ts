/**
 * Mistakes caught at enqueue: wrong columns, wrong column types, missing datasets and missing
 * indexes sent to every route that adds a job (POST /jobs/<queue>, its bulk form, PUT
 * /schedules/:id) answer 400 problem+json naming the problem and what exists — and leave no job,
 * no schedule and no index folder behind. An embed onto an index built from other columns is a
 * 409 at the door. A first build that fails in the worker (a duplicated id) leaves no index, so
 * the name is free for the right columns. A missing ingest `source` says what it expects.
 *
 * Real Redis, a real API and real ingest + embed workers; embeddings come from a stand-in
 * OpenAI-compatible server (test/helpers/llm-stand-in.ts).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Queue } from 'bullmq';
import { startApi, type RunningApi } from '../../api/server.ts';
import { loadConfig } from '../../shared/config.ts';
import { workerContext } from '../../workers/context.ts';
import { startWorkers, type RunningWorkers } from '../../workers/runner.ts';
import { sqlString, withDuckDB } from '../helpers/duckdb.ts';
import { csvText, testEnv, type TestEnv } from '../helpers/env.ts';
import { assertProblem, call, completedJob, finishedJob, okJson, type HttpAnswer } from '../helpers/http.ts';
import { assertNoSandboxChildrenLeft, silentLog } from '../helpers/jobs.ts';
import { startLlmStandIn, type LlmStandIn } from '../helpers/llm-stand-in.ts';

const WRITER = 'writer-key-enqueue-5f1c2e9a';
const ENV_EXTRA = ['LAKEHOUSE_OPENAI_URL'] as const;
const STAND_IN = { provider: 'openai', model: 'stand-in-embed' } as const;

/** A 202's job, followed to its end with `follow` (completedJob or finishedJob). */
async function enqueued(res: HttpAnswer, what: string, follow: typeof finishedJob): Promise<any> {
  okJson(res, what, 202);
  return follow(get, res.headers.get('location')!, 60_000);
}

let env: TestEnv;
let api: RunningApi;
let workers: RunningWorkers;
let standIn: LlmStandIn;
const queues = new Map<string, Queue>();

const get = (p: string) => call(api.url, p, { key: WRITER, timeoutMs: 30_000 });
const send = (method: string, p: string, body: unknown) => call(api.url, p, { method, body, key: WRITER, timeoutMs: 30_000 });

async function upload(dataset: string, body: string | Buffer, query = ''): Promise<void> {
  const res = await call(api.url, `/datasets/${dataset}/upload?mode=replace${query}`, { method: 'POST', key: WRITER, body, headers: { 'content-type': 'application/octet-stream' } });
  okJson(res, `upload ${dataset}`, 202);
  await completedJob(get, res.headers.get('location')!);
}

async function jobCount(): Promise<number> {
  let n = 0;
  for (const q of queues.values()) {
    const counts = await q.getJobCounts();
    n += Object.values(counts).reduce((a, b) => a + b, 0);
  }
  return n;
}

async function indexFolders(): Promise<string[]> {
  return (await fs.readdir(path.join(env.dataDir, 'indexes')).catch(() => [] as string[])).sort();
}

async function schedulerCount(): Promise<number> {
  let n = 0;
  for (const q of queues.values()) n += (await q.getJobSchedulers(0, -1)).length;
  return n;
}

/** Every route that adds a job, for one payload of `queue`. */
function routes(queue: string, payload: unknown): { route: string; send: () => Promise<HttpAnswer> }[] {
  return [
    { route: `POST /jobs/${queue}`, send: () => send('POST', `/jobs/${queue}`, payload) },
    { route: `POST /jobs/${queue}/bulk`, send: () => send('POST', `/jobs/${queue}/bulk`, { jobs: [{ payload }] }) },
    { route: 'PUT /schedules/:id', send: () => send('PUT', '/schedules/refused_sched', { queue, every_ms: 60_000, payload }) },
  ];
}

const EMBED = { index: 'fresh_idx', dataset: 'notes', id_column: 'id', text_column: 'body', ...STAND_IN };

/** [what, queue, payload, status, what the detail must say] */
const CORPUS: [string, string, Record<string, unknown>, number, RegExp[]][] = [
  ['a misspelt dataset', 'embed', { ...EMBED, dataset: 'nots' }, 400, [/dataset "nots" does not exist/, /Did you mean "notes"/]],
  ['a dataset like nothing in the catalog', 'embed', { ...EMBED, dataset: 'zzzz_none' }, 400, [/dataset "zzzz_none" does not exist/, /Datasets: .*notes/]],
  ['a misspelt text column', 'embed', { ...EMBED, text_column: 'bdy' }, 400, [/text_column: dataset notes has no column "bdy"/, /Did you mean "body"/, /columns of notes: id \(BIGINT\), body \(VARCHAR\), years \(BIGINT\), title \(VARCHAR\)/]],
  ['a missing id column', 'embed', { ...EMBED, id_column: 'doc_id' }, 400, [/id_column: dataset notes has no column "doc_id"/, /columns of notes: id/]],
  ['both columns missing', 'embed', { ...EMBED, id_column: 'ident', text_column: 'text' }, 400, [/id_column: .*"ident"/, /text_column: .*"text"/]],
  ['a number as the text column', 'embed', { ...EMBED, text_column: 'years' }, 400, [/text_column: column "years" is BIGINT, not text/]],
  ['a list as the text column', 'embed', { ...EMBED, dataset: 'shapes', text_column: 'tags' }, 400, [/column "tags" is VARCHAR\[\], not text/, /columns of shapes: /]],
  ['a struct as the text column', 'embed', { ...EMBED, dataset: 'shapes', text_column: 'meta' }, 400, [/column "meta" is STRUCT\(.*\), not text/]],
  ['a list as the id column', 'embed', { ...EMBED, dataset: 'shapes', id_column: 'tags' }, 400, [/id_column: column "tags" is VARCHAR\[\], not a single value per row/]],
  ['a map as the id column', 'embed', { ...EMBED, dataset: 'shapes', id_column: 'attrs' }, 400, [/id_column: column "attrs" is MAP\(.*\), not a single value/]],
  ['an index name taken by other columns', 'embed', { ...EMBED, index: 'notes_idx', text_column: 'title' }, 409, [/index notes_idx is built from notes\(id, body\); this job names notes\(id, title\)/, /DELETE \/indexes\/notes_idx/]],
  ['a refresh of a missing index', 'refresh', { index: 'nosuch_idx' }, 400, [/index "nosuch_idx" does not exist/]],
  ['a refresh of a misspelt index', 'refresh', { index: 'notes_ix' }, 400, [/index "notes_ix" does not exist/, /Did you mean "notes_idx"/]],
  ['an autotune of a missing index', 'autotune', { index: 'nosuch_idx' }, 400, [/index "nosuch_idx" does not exist/, /Indexes: notes_idx/]],
  ['an autotune of a misspelt index', 'autotune', { index: 'note_idx' }, 400, [/Did you mean "notes_idx"/]],
];

describe('enqueue validation', { timeout: 180_000 }, () => {
  const saved = new Map(ENV_EXTRA.map((k) => [k, process.env[k]]));

  before(async () => {
    standIn = await startLlmStandIn({ dims: 16 });
    process.env['LAKEHOUSE_OPENAI_URL'] = standIn.url;
    env = await testEnv();
    env.defer(() => standIn.close());
    env.defer(async () => (await workerContext()).redis.disconnect());
    for (const name of ['ingest', 'embed', 'refresh', 'autotune']) {
      const q = new Queue(name, { connection: env.redis, prefix: env.prefix });
      queues.set(name, q);
      env.defer(() => q.close());
    }
    // no refresh or autotune worker: a job that got through would stay, and be counted
    workers = await startWorkers({ config: env.config, queues: ['ingest', 'embed'], concurrency: 2, log: silentLog });
    env.defer(() => workers.close(5_000));
    api = await startApi(loadConfig({ ...process.env, LAKEHOUSE_API_KEYS: `${WRITER}:writer`, LAKEHOUSE_HOST: '127.0.0.1', PORT: '0' }), silentLog);
    env.defer(() => api.close());

    await upload('notes', csvText([['id', 'body', 'years', 'title'], ...Array.from({ length: 8 }, (_, i) => [i + 1, `note number ${i} about topic ${i % 3}`, i + 2, `title ${i}`])]), '&filename=notes.csv');
    await upload('dupes', csvText([['id', 'uid', 'body'], [1, 'a', 'first text'], [1, 'b', 'second text'], [2, 'c', 'third text']]), '&filename=dupes.csv');
    const shapes = path.join(env.dataDir, 'shapes-src.parquet');
    await withDuckDB((db) =>
      db.all(`COPY (SELECT i::BIGINT AS id, ['a', 'b'] AS tags, {'k': i} AS meta, MAP {'x': i} AS attrs, 'text ' || i AS body FROM range(3) t(i)) TO ${sqlString(shapes)} (FORMAT parquet)`),
    );
    await upload('shapes', await fs.readFile(shapes), '&format=parquet&filename=shapes.parquet');
    await fs.rm(shapes);
    await enqueued(await send('POST', '/jobs/embed', { ...EMBED, index: 'notes_idx' }), 'embed notes_idx', completedJob);
  });

  after(async () => {
    try {
      await env?.cleanup();
      await assertNoSandboxChildrenLeft();
    } finally {
      for (const [k, v] of saved) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });

  for (const [what, queue, payload, status, says] of CORPUS) {
    it(`${what}: ${status} on every enqueueing route, nothing created`, async () => {
      for (const r of routes(queue, payload)) {
        const jobsBefore = await jobCount();
        const foldersBefore = await indexFolders();
        const schedulersBefore = await schedulerCount();
        const problem = assertProblem(await r.send(), status, `${what} via ${r.route}`);
        for (const pattern of says) assert.match(problem.detail, pattern, `${what} via ${r.route}`);
        if (r.route.endsWith('/bulk')) assert.match(problem.detail, /^jobs\.0\.payload: /, 'a bulk refusal names the payload');
        if (r.route.startsWith('PUT')) assert.match(problem.detail, /^body\.payload: /, 'a schedule refusal names the payload');
        assert.equal(await jobCount(), jobsBefore, `${what} via ${r.route}: no job`);
        assert.deepEqual(await indexFolders(), foldersBefore, `${what} via ${r.route}: no index folder`);
        assert.equal(await schedulerCount(), schedulersBefore, `${what} via ${r.route}: no schedule`);
      }
      assertProblem(await get('/schedules/refused_sched'), 404, 'the refused schedule does not exist');
    });
  }

  it('a bulk with one bad payload among good ones adds none of them and names the bad one', async () => {
    const jobsBefore = await jobCount();
    const res = await send('POST', '/jobs/refresh/bulk', { jobs: [{ payload: { index: 'notes_idx' } }, { payload: { index: 'gone_idx' } }, { payload: { index: 'notes_idx' } }] });
    const problem = assertProblem(res, 400, 'bulk with a bad payload');
    assert.match(problem.detail, /^jobs\.1\.payload: index "gone_idx" does not exist/);
    assert.equal(await jobCount(), jobsBefore);
  });

  it('valid payloads still pass every route (the checks refuse only mistakes)', async () => {
    const refresh = await send('POST', '/jobs/refresh', { index: 'notes_idx' });
    okJson(refresh, 'refresh of an existing index', 202);
    okJson(await send('POST', '/jobs/autotune/bulk', { jobs: [{ payload: { index: 'notes_idx' } }] }), 'bulk autotune', 202);
    const sched = await send('PUT', '/schedules/ok_refresh', { queue: 'refresh', every_ms: 3_600_000, payload: { index: 'notes_idx' } });
    okJson(sched, 'schedule a refresh of an existing index', 201);
    assert.equal((await send('DELETE', '/schedules/ok_refresh', undefined)).status, 204);
    for (const q of ['refresh', 'autotune']) await queues.get(q)!.obliterate({ force: true });
  });

  it('a first build that fails in the worker leaves no index behind; the name then takes the right columns', async () => {
    // dupes.id repeats a value: the check at the door cannot know, the worker finds out while chunking
    const failed = await enqueued(await send('POST', '/jobs/embed', { ...EMBED, index: 'dupes_idx', dataset: 'dupes' }), 'embed dupes_idx', finishedJob);
    assert.equal(failed.state, 'failed');
    assert.match(failed.failed_reason, /id column id is not unique/);
    assert.ok(!(await indexFolders()).includes('dupes_idx'), `no index folder left: ${await indexFolders()}`);
    assertProblem(await get('/indexes/dupes_idx'), 404, 'the failed index');
    const listed = okJson(await get('/indexes'), 'GET /indexes').indexes.map((i: { name: string }) => i.name);
    assert.deepEqual(listed, ['notes_idx']);

    const done = await enqueued(await send('POST', '/jobs/embed', { ...EMBED, index: 'dupes_idx', dataset: 'dupes', id_column: 'uid' }), 'embed dupes_idx by uid', completedJob);
    assert.equal(done.result.docs, 3);
    const index = okJson(await get('/indexes/dupes_idx'), 'GET /indexes/dupes_idx');
    assert.deepEqual(index.source, { dataset: 'dupes', id_column: 'uid', text_column: 'body' });
  });

  it('a build that fails for good keeps an index that already has a generation', async () => {
    // notes_idx is built; an embed onto it with another model fails in the worker (vectors of two models don't mix)
    const failed = await enqueued(await send('POST', '/jobs/embed', { ...EMBED, index: 'notes_idx', model: 'another-model' }), 're-embed notes_idx', finishedJob);
    assert.equal(failed.state, 'failed');
    assert.match(failed.failed_reason, /another-model/);
    const index = okJson(await get('/indexes/notes_idx'), 'notes_idx is still there');
    assert.equal(index.generation, 1);
    assert.ok((await indexFolders()).includes('notes_idx'));
  });

  it('a missing or unknown ingest source says what it expects, on the job and bulk routes', async () => {
    for (const source of [undefined, null, 'inbox/x.csv', {}, { kind: 'ftp', path: 'x' }]) {
      for (const [route, body, where] of [
        ['/jobs/ingest', { dataset: 'things', ...(source === undefined ? {} : { source }) }, 'body.source'],
        ['/jobs/ingest/bulk', { jobs: [{ payload: { dataset: 'things', ...(source === undefined ? {} : { source }) } }] }, 'body.jobs.0.payload.source'],
      ] as const) {
        const problem = assertProblem(await send('POST', route, body), 400, `ingest source ${JSON.stringify(source)} via ${route}`);
        const issue = problem.errors?.find((e) => e.path.startsWith(where));
        assert.ok(issue, `an error at ${where}: ${JSON.stringify(problem.errors)}`);
        assert.doesNotMatch(issue.message, /^Invalid input$/);
        assert.match(issue.message, /kind.*upload, inbox, postgres or mysql/);
        assert.match(issue.message, /\{"kind":"inbox","path":"sales\/q1\.csv"\}/, 'an example');
      }
    }
    // a known kind with a missing field names the field, not the union
    const problem = assertProblem(await send('POST', '/jobs/ingest', { dataset: 'things', source: { kind: 'inbox' } }), 400, 'inbox without path');
    assert.ok(problem.errors?.some((e) => e.path === 'body.source.path'), JSON.stringify(problem.errors));
  });
});
