/**
 * An index's lifecycle: DELETE /indexes/:name (writer) moves its manifest, generations and
 * vectors to the bucket's trash, the API's cache lets go of its graphs, GET /indexes stops
 * listing it, and a new embed may take the name (with other columns). Refused with 409 while a
 * job for the index waits (a queued refresh, a delayed embed) or a writer holds its generation
 * lease. `lakehouse index rm` does the same from a real CLI process.
 *
 * Real Redis, a real API, real ingest + embed workers; embeddings from a stand-in server.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Job, Queue } from 'bullmq';
import { startApi, type RunningApi } from '../../api/server.ts';
import { indexLeaseKey } from '../../shared/catalog/lock-keys.ts';
import { loadConfig } from '../../shared/config.ts';
import { withProcessLease } from '../../shared/vectors/index/generation-lease.ts';
import { workerContext } from '../../workers/context.ts';
import { startWorkers, type RunningWorkers } from '../../workers/runner.ts';
import { CliProcess } from '../helpers/cli-process.ts';
import { csvText, exists, testEnv, type TestEnv } from '../helpers/env.ts';
import { assertProblem, call, completedJob, okJson, type HttpAnswer } from '../helpers/http.ts';
import { assertNoSandboxChildrenLeft, silentLog } from '../helpers/jobs.ts';
import { startLlmStandIn, type LlmStandIn } from '../helpers/llm-stand-in.ts';

const WRITER = 'writer-key-lifecycle-2a7d9e41';
const READER = 'reader-key-lifecycle-6c3b8f02';
const BIN = path.resolve(import.meta.dirname, '../../bin/lakehouse.js');
const STAND_IN = { provider: 'openai', model: 'stand-in-embed' } as const;
const NOTES = Array.from({ length: 6 }, (_, i) => ({ id: i + 1, body: `body text number ${i}`, title: `title words ${i}` }));

let env: TestEnv;
let api: RunningApi;
let workers: RunningWorkers;
let standIn: LlmStandIn;
let refreshQueue: Queue;
let embedQueue: Queue;

const as = (key: string, method: string, p: string, body?: unknown) => call(api.url, p, { method, key, timeoutMs: 30_000, ...(body === undefined ? {} : { body }) });
const get = (p: string) => as(READER, 'GET', p);

async function embed(index: string, textColumn: string, extra: Record<string, unknown> = {}): Promise<any> {
  const res = await as(WRITER, 'POST', '/jobs/embed', { index, dataset: 'notes', id_column: 'id', text_column: textColumn, ...STAND_IN, ...extra });
  okJson(res, `embed ${index}`, 202);
  return completedJob(get, res.headers.get('location')!, 60_000);
}

const indexFolder = (name: string) => path.join(env.dataDir, 'indexes', name);
const listed = async () => okJson(await get('/indexes'), 'GET /indexes').indexes.map((i: { name: string }) => i.name);
const searchTexts = async (index: string) =>
  okJson(await as(READER, 'POST', `/indexes/${index}/search`, { query: 'words', k: 3 }), `search ${index}`).hits.map((h: { text: string }) => h.text);

async function assertRefused(res: HttpAnswer, what: string, says: RegExp, name = 'notes_idx'): Promise<void> {
  const problem = assertProblem(res, 409, what);
  assert.match(problem.detail, says, what);
  assert.ok(await exists(path.join(indexFolder(name), 'manifest.json')), `${what}: the index is untouched`);
  assert.ok((await listed()).includes(name), `${what}: still listed`);
}

/** `lakehouse index rm NAME` against the in-process API, as a separate process. */
function cliRm(name: string, key = WRITER): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const childEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('LAKEHOUSE_')));
  const proc = new CliProcess(
    spawn(process.execPath, [BIN, 'index', 'rm', name], {
      env: { ...childEnv, LAKEHOUSE_API_URL: api.url, LAKEHOUSE_API_KEY: key, LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  return proc.exit(30_000);
}

describe('index lifecycle', { timeout: 180_000 }, () => {
  const savedUrl = process.env['LAKEHOUSE_OPENAI_URL'];

  before(async () => {
    standIn = await startLlmStandIn({ dims: 16 });
    process.env['LAKEHOUSE_OPENAI_URL'] = standIn.url;
    env = await testEnv();
    env.defer(() => standIn.close());
    env.defer(async () => (await workerContext()).redis.disconnect());
    refreshQueue = new Queue('refresh', { connection: env.redis, prefix: env.prefix });
    embedQueue = new Queue('embed', { connection: env.redis, prefix: env.prefix });
    env.defer(() => refreshQueue.close());
    env.defer(() => embedQueue.close());
    // no refresh worker: a refresh job stays waiting, as one would behind a busy worker
    workers = await startWorkers({ config: env.config, queues: ['ingest', 'embed'], concurrency: 2, log: silentLog });
    env.defer(() => workers.close(5_000));
    api = await startApi(loadConfig({ ...process.env, LAKEHOUSE_API_KEYS: `${WRITER}:writer,${READER}:reader`, LAKEHOUSE_HOST: '127.0.0.1', PORT: '0' }), silentLog);
    env.defer(() => api.close());
    const res = await call(api.url, '/datasets/notes/upload?mode=replace&filename=notes.csv', {
      method: 'POST', key: WRITER, body: csvText([['id', 'body', 'title'], ...NOTES.map((n) => [n.id, n.body, n.title])]), headers: { 'content-type': 'text/csv' },
    });
    okJson(res, 'upload notes', 202);
    await completedJob(get, res.headers.get('location')!);
    await embed('notes_idx', 'body');
  });

  after(async () => {
    try {
      await env?.cleanup();
      await assertNoSandboxChildrenLeft();
    } finally {
      if (savedUrl === undefined) delete process.env['LAKEHOUSE_OPENAI_URL'];
      else process.env['LAKEHOUSE_OPENAI_URL'] = savedUrl;
    }
  });

  it('a reader may not delete an index; an unknown index is a 404', async () => {
    assertProblem(await as(READER, 'DELETE', '/indexes/notes_idx'), 403, 'reader delete');
    assertProblem(await as(WRITER, 'DELETE', '/indexes/no_such_idx'), 404, 'unknown index');
    assertProblem(await as(WRITER, 'DELETE', '/indexes/Bad..Name'), 400, 'a name that is no index name');
    assert.ok(await exists(path.join(indexFolder('notes_idx'), 'manifest.json')));
  });

  it('409 while a refresh of the index waits in its queue', async () => {
    const res = await as(WRITER, 'POST', '/jobs/refresh', { index: 'notes_idx' });
    const { id } = okJson(res, 'refresh', 202);
    await assertRefused(await as(WRITER, 'DELETE', '/indexes/notes_idx'), 'delete with a waiting refresh', new RegExp(`unfinished jobs \\(refresh/${id} \\(waiting\\)\\)`));
    await (await Job.fromId(refreshQueue, id))!.remove();
  });

  it('409 while an embed of the index is delayed', async () => {
    const res = await as(WRITER, 'POST', '/jobs/embed?delay_ms=600000', { index: 'notes_idx', dataset: 'notes', id_column: 'id', text_column: 'body', ...STAND_IN });
    const { id } = okJson(res, 'delayed embed', 202);
    await assertRefused(await as(WRITER, 'DELETE', '/indexes/notes_idx'), 'delete with a delayed embed', new RegExp(`embed/${id} \\(delayed\\)`));
    await (await Job.fromId(embedQueue, id))!.remove();
  });

  it('409 while a schedule a user made names the index; its own cron refresh goes with it', async () => {
    okJson(await as(WRITER, 'PUT', '/schedules/nightly_refresh', { queue: 'refresh', cron: '0 3 * * *', payload: { index: 'notes_idx' } }), 'schedule', 201);
    await assertRefused(await as(WRITER, 'DELETE', '/indexes/notes_idx'), 'delete with a schedule naming it', /schedule nightly_refresh \(refresh\)/);
    assert.equal((await as(WRITER, 'DELETE', '/schedules/nightly_refresh')).status, 204);
  });

  it('409 while a writer holds the index generation lease (a build or a promotion)', async () => {
    await withProcessLease(
      env.redis,
      indexLeaseKey(env.config, 'notes_idx'),
      async () => assertRefused(await as(WRITER, 'DELETE', '/indexes/notes_idx'), 'delete under the lease', /index notes_idx is busy/),
      { waitMs: 1_000, ttlMs: 30_000, index: 'notes_idx' },
    );
  });

  it('DELETE moves the index to the trash, drops it from the cache and the listing; the name takes other columns', async () => {
    const before = await searchTexts('notes_idx');
    assert.ok(before.every((t: string) => t.startsWith('body text')), JSON.stringify(before));
    assert.deepEqual(api.deps.search.loadedGenerations('notes_idx'), [1], 'the search loaded generation 1');

    const res = await as(WRITER, 'DELETE', '/indexes/notes_idx');
    const body = okJson(res, 'DELETE /indexes/notes_idx');
    assert.equal(body.index, 'notes_idx');
    assert.match(body.trashed_to, /^trash\/index\.notes_idx--/);
    const trashed = path.join(env.dataDir, body.trashed_to);
    assert.ok(await exists(path.join(trashed, 'manifest.json')), 'manifest in the trash');
    assert.ok(await exists(path.join(trashed, 'gen-1')), 'generation in the trash');
    assert.ok((await fs.readdir(path.join(trashed, 'vectors'))).some((f) => f.endsWith('.parquet')), 'vectors in the trash');
    assert.equal(await exists(indexFolder('notes_idx')), false, 'gone from indexes/');

    assert.deepEqual(api.deps.search.loadedGenerations('notes_idx'), [], 'the cache let go of its graph');
    assert.deepEqual(await listed(), []);
    assertProblem(await get('/indexes/notes_idx'), 404, 'GET after delete');
    assertProblem(await as(READER, 'POST', '/indexes/notes_idx/search', { query: 'words' }), 404, 'search after delete');
    assertProblem(await as(WRITER, 'POST', '/jobs/refresh', { index: 'notes_idx' }), 400, 'refresh after delete');
    assertProblem(await as(WRITER, 'DELETE', '/indexes/notes_idx'), 404, 'a second delete');

    // the same name from another column: a fresh generation 1, which the cache must not confuse with the old one
    const done = await embed('notes_idx', 'title');
    assert.equal(done.result.generation, 1);
    const after = await searchTexts('notes_idx');
    assert.ok(after.length > 0 && after.every((t: string) => t.startsWith('title words')), `new index serves titles: ${JSON.stringify(after)}`);
    assert.deepEqual(okJson(await get('/indexes/notes_idx'), 'GET').source, { dataset: 'notes', id_column: 'id', text_column: 'title' });
  });

  it('`lakehouse index rm` deletes from a real CLI process; a reader key or a busy index exits 1 with the reason', async () => {
    // a cron refresh policy gives the index its own scheduler: it must not block the delete, and goes with it
    await embed('cli_idx', 'body', { refresh_policy: { cron: '0 4 * * *' } });
    assert.ok((await refreshQueue.getJobSchedulers(0, -1)).some((s) => s.key === 'refresh-cli_idx'));
    const asReader = await cliRm('cli_idx', READER);
    assert.equal(asReader.code, 1, asReader.stderr);
    assert.match(asReader.stderr, /error 403/);

    await withProcessLease(env.redis, indexLeaseKey(env.config, 'cli_idx'), async () => {
      const busy = await cliRm('cli_idx');
      assert.equal(busy.code, 1, busy.stderr);
      assert.match(busy.stderr, /error 409: index cli_idx is busy/);
    }, { waitMs: 1_000, ttlMs: 30_000, index: 'cli_idx' });
    assert.ok((await listed()).includes('cli_idx'));

    const run = await cliRm('cli_idx');
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^index cli_idx deleted \(moved to trash\/index\.cli_idx--.+\)\n$/);
    assert.ok(!(await listed()).includes('cli_idx'));
    assert.equal(await exists(indexFolder('cli_idx')), false);
    assert.ok(!(await refreshQueue.getJobSchedulers(0, -1)).some((s) => s.key === 'refresh-cli_idx'), 'its cron refresh is gone');

    const again = await cliRm('cli_idx');
    assert.equal(again.code, 1);
    assert.match(again.stderr, /error 404: index "cli_idx" does not exist/);
  });
});
