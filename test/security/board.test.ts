/**
 * Bull Board against cross-site requests (SECURITY.md "Bull Board"), over real HTTP against the
 * real API and Redis. A browser replays cached Basic credentials on any request a foreign page
 * makes it send, so every changing board request carries the admin's credentials here: without
 * a same-origin Origin (or Referer) each is refused and no job or queue state changes. The
 * board's own page may retry; it may never add jobs or edit their data; read-only mode refuses
 * every change; and the board never shows a DSN's password.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { Queue, UnrecoverableError, Worker } from 'bullmq';
import { startApi, type RunningApi } from '../../api/server.ts';
import { loadConfig } from '../../shared/config.ts';
import { testEnv, waitFor, type TestEnv } from '../helpers/env.ts';
import { silentLog } from '../helpers/jobs.ts';

const ADMIN = 'admin-key-board-7e3c9a1f5d';
const WRITER = 'writer-key-board-2b8d4f6a0c';
const PASSWORD = 'S3cr3t-board-pw';
const DSN = `postgres://board_user:${PASSWORD}@127.0.0.1:5432/test`;

let env: TestEnv;
let api: RunningApi;
let readOnlyApi: RunningApi;
let queue: Queue;
let delayedJob = '';
let failedJob = '';

interface Answer {
  status: number;
  text: string;
  json: any;
}

/** node:http, so Origin and Referer go out exactly as given (or not at all). */
function send(base: string, method: string, path: string, headers: Record<string, string>, body?: unknown): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request(new URL(path, base), {
      method,
      headers: { ...headers, ...(payload ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) } : {}) },
    });
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => {
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, text, json });
      });
    });
    req.on('error', reject);
    req.end(payload);
  });
}

const basic = (key: string) => ({ authorization: `Basic ${Buffer.from(`ops:${key}`).toString('base64')}` });

/** Everything a board request could change, read straight from Redis. */
async function queueState(): Promise<string> {
  const counts = await queue.getJobCounts('waiting', 'active', 'completed', 'failed', 'delayed', 'prioritized');
  const jobs = await queue.getJobs(['waiting', 'active', 'completed', 'failed', 'delayed', 'prioritized'], 0, 1000);
  return JSON.stringify({
    counts,
    paused: await queue.isPaused(),
    jobs: jobs.filter(Boolean).map((j) => ({ id: j.id, data: j.data, delay: j.opts.delay, priority: j.opts.priority, attempts: j.attemptsMade })).sort((a, b) => a.id!.localeCompare(b.id!)),
    states: { [delayedJob]: await queue.getJobState(delayedJob), [failedJob]: await queue.getJobState(failedJob) },
  });
}

describe('Bull Board: cross-site requests', { timeout: 120_000 }, () => {
  before(async () => {
    env = await testEnv();
    const config = (extra: Record<string, string> = {}) =>
      loadConfig({ ...process.env, LAKEHOUSE_API_KEYS: `${ADMIN}:admin,${WRITER}:writer`, PORT: '0', LAKEHOUSE_ALLOW_JOB_DSN: 'true', ...extra });
    api = await startApi(config(), silentLog);
    env.defer(() => api.close());
    readOnlyApi = await startApi(config({ LAKEHOUSE_BOARD_READONLY: 'true' }), silentLog);
    env.defer(() => readOnlyApi.close());
    queue = new Queue('ingest', { connection: env.redis, prefix: env.prefix });
    env.defer(() => queue.close());

    const post = async (path: string, body: unknown) => {
      // an admin: the delayed job carries its own DSN, which only admins may post (and only when allowed)
      const res = await send(api.url, 'POST', path, { authorization: `Bearer ${ADMIN}` }, body);
      assert.equal(res.status, 202, res.text);
      return res.json.id as string;
    };
    // waits an hour: nothing runs it, the attacks must leave it exactly as it is
    delayedJob = await post('/jobs/ingest?delay_ms=3600000', { dataset: 'board', source: { kind: 'postgres', dsn: DSN, query: 'SELECT 1' } });
    // fails for good once, in a real worker, then waits to be retried
    failedJob = await post('/jobs/ingest?jobId=will-fail', { dataset: 'board', source: { kind: 'upload', path: 'staging/uploads/gone.upload' } });
    const worker = new Worker('ingest', async () => {
      throw new UnrecoverableError('made to fail');
    }, { connection: { url: env.config.redisUrl, maxRetriesPerRequest: null }, prefix: env.prefix });
    try {
      await waitFor(async () => (await queue.getJobState(failedJob)) === 'failed', { what: 'the job to fail' });
    } finally {
      await worker.close();
    }
  });

  after(() => env?.cleanup());

  it('refuses every changing request that is not provably same-origin, and nothing changes', async () => {
    const own = new URL(api.url);
    const port = Number(own.port);
    const origins: { name: string; headers: Record<string, string> }[] = [
      { name: 'no Origin, no Referer', headers: {} },
      { name: 'foreign Origin', headers: { origin: 'http://evil.example' } },
      { name: 'null Origin', headers: { origin: 'null' } },
      { name: 'other port', headers: { origin: `http://127.0.0.1:${port + 1}` } },
      { name: 'other scheme', headers: { origin: `https://127.0.0.1:${port}` } },
      { name: 'other host name for the same address', headers: { origin: `http://localhost:${port}` } },
      { name: 'origin as a prefix of a foreign host', headers: { origin: `http://127.0.0.1:${port}.evil.com` } },
      { name: 'origin with a path', headers: { origin: `${api.url}/admin/queues` } },
      { name: 'foreign Origin with our Referer', headers: { origin: 'http://evil.example', referer: `${api.url}/admin/queues` } },
      { name: 'foreign Referer only', headers: { referer: 'http://evil.example/admin/queues' } },
      { name: 'forged Referer prefix', headers: { referer: `http://127.0.0.1:${port}.evil.com/admin/queues` } },
      { name: 'Referer with our origin as user info', headers: { referer: `http://127.0.0.1:${port}@evil.example/admin/queues` } },
      { name: 'Referer on another port', headers: { referer: `http://127.0.0.1:${port + 1}/admin/queues` } },
      { name: 'Referer that is not a URL', headers: { referer: `127.0.0.1:${port}/admin/queues` } },
      { name: 'empty Origin and Referer', headers: { origin: '', referer: '' } },
    ];
    const q = 'ingest';
    const requests: { method: string; path: string; body?: unknown }[] = [
      { method: 'POST', path: `/api/queues/${q}/add`, body: { name: 'evil', data: { dataset: 'board', source: { kind: 'postgres', dsn: DSN, query: 'DROP TABLE x' } } } },
      { method: 'PUT', path: `/api/queues/${q}/retry/failed` },
      { method: 'PUT', path: `/api/queues/${q}/promote` },
      { method: 'PUT', path: `/api/queues/${q}/clean/delayed` },
      { method: 'PUT', path: `/api/queues/${q}/clean/failed` },
      { method: 'PUT', path: `/api/queues/${q}/pause` },
      { method: 'PUT', path: '/api/queues/pause' },
      { method: 'PUT', path: `/api/queues/${q}/empty` },
      { method: 'PUT', path: `/api/queues/${q}/obliterate` },
      { method: 'PUT', path: `/api/queues/${q}/concurrency`, body: { concurrency: 1 } },
      { method: 'PUT', path: `/api/queues/${q}/${failedJob}/retry` },
      { method: 'PUT', path: `/api/queues/${q}/${delayedJob}/promote` },
      { method: 'PUT', path: `/api/queues/${q}/${delayedJob}/clean` },
      { method: 'PATCH', path: `/api/queues/${q}/${delayedJob}/update-data`, body: { data: { dataset: 'board', source: { kind: 'upload', path: 'x' } } } },
      { method: 'PATCH', path: `/api/queues/${q}/${delayedJob}/delay`, body: { delay: 0 } },
      { method: 'PATCH', path: `/api/queues/${q}/${delayedJob}/priority`, body: { priority: 1 } },
      { method: 'DELETE', path: `/api/queues/${q}/${delayedJob}` },
      { method: 'POST', path: `/api/queues/${q}/${failedJob}/retry` },
    ];
    const before = await queueState();
    let tried = 0;
    for (const o of origins) {
      for (const r of requests) {
        const res = await send(api.url, r.method, `/admin/queues${r.path}`, { ...basic(ADMIN), ...o.headers }, r.body);
        assert.equal(res.status, 403, `${o.name}: ${r.method} ${r.path} → ${res.status} ${res.text.slice(0, 200)}`);
        assert.equal(res.json?.status, 403, `${o.name}: ${r.method} ${r.path}: a problem body`);
        tried++;
      }
    }
    assert.equal(tried, origins.length * requests.length);
    assert.equal(await queueState(), before, 'no job added, changed or removed; the queue not paused');
  });

  it('same-origin changes still need an admin; the board page may retry, never add jobs or edit their data', async () => {
    const sameOrigin = { origin: api.url };
    const writer = await send(api.url, 'PUT', `/admin/queues/api/queues/ingest/${failedJob}/retry`, { ...basic(WRITER), ...sameOrigin });
    assert.equal(writer.status, 401, 'a writer key opens no board');
    const before = await queueState();
    // the board's router matches paths in any case and with a trailing slash: so does the guard
    for (const path of ['/admin/queues/api/queues/ingest/add', '/admin/queues/api/queues/ingest/ADD', '/admin/queues/api/queues/ingest/Add/']) {
      const add = await send(api.url, 'POST', path, { ...basic(ADMIN), ...sameOrigin }, { name: 'x', data: { dataset: 'board', source: { kind: 'postgres', dsn: DSN, query: 'SELECT 1' } } });
      assert.equal(add.status, 403, `${path}: ${add.text}`);
      assert.match(add.json.detail, /POST \/jobs\/:queue/);
    }
    const edit = await send(api.url, 'PATCH', `/admin/queues/api/queues/ingest/${delayedJob}/update-data`, { ...basic(ADMIN), ...sameOrigin }, { data: { dataset: 'other' } });
    assert.equal(edit.status, 403, edit.text);
    assert.equal(await queueState(), before, 'refused payload writes changed nothing');

    const retry = await send(api.url, 'PUT', `/admin/queues/api/queues/ingest/${failedJob}/retry`, { ...basic(ADMIN), referer: `${api.url}/admin/queues/queue/ingest` });
    assert.ok(retry.status >= 200 && retry.status < 300, `same-origin (Referer) admin retry: ${retry.status} ${retry.text.slice(0, 200)}`);
    assert.equal(await queue.getJobState(failedJob), 'waiting', 'the retried job is back in the queue');
  });

  it('read-only mode refuses every change, even same-origin from an admin, and still shows the board', async () => {
    const before = await queueState();
    for (const [method, path] of [
      ['PUT', `/api/queues/ingest/${delayedJob}/promote`],
      ['PUT', '/api/queues/ingest/pause'],
      ['PUT', '/api/queues/ingest/clean/delayed'],
      ['PATCH', `/api/queues/ingest/${delayedJob}/delay`],
      ['POST', '/api/queues/ingest/add'],
    ] as const) {
      const res = await send(readOnlyApi.url, method, `/admin/queues${path}`, { ...basic(ADMIN), origin: readOnlyApi.url }, {});
      assert.equal(res.status, 403, `${method} ${path}: ${res.status}`);
      assert.match(res.json.detail, /LAKEHOUSE_BOARD_READONLY/);
    }
    assert.equal(await queueState(), before);
    const list = await send(readOnlyApi.url, 'GET', '/admin/queues/api/queues?activeQueue=ingest&status=delayed&page=1', basic(ADMIN));
    assert.equal(list.status, 200);
    const ingest = list.json.queues.find((x: { name: string }) => x.name === 'ingest');
    assert.equal(ingest.readOnlyMode, true, 'the UI is told to hide its buttons');
  });

  it('never shows a DSN password: not in the job view, the job list, nor Redis', async () => {
    const job = await send(api.url, 'GET', `/admin/queues/api/queues/ingest/${delayedJob}`, basic(ADMIN));
    assert.equal(job.status, 200, job.text.slice(0, 200));
    assert.equal(job.json.job.id, delayedJob);
    const list = await send(api.url, 'GET', '/admin/queues/api/queues?activeQueue=ingest&status=delayed&page=1&jobsPerPage=100', basic(ADMIN));
    assert.ok(list.json.queues.find((x: { name: string }) => x.name === 'ingest').jobs.some((j: { id: string }) => j.id === delayedJob));
    const stored = JSON.stringify(await env.redis.hgetall(`${env.prefix}:ingest:${delayedJob}`));
    for (const [what, text] of [['job view', job.text], ['job list', list.text], ['Redis hash', stored]] as const) {
      assert.ok(!text.includes(PASSWORD), `${what} holds the password`);
      assert.ok(!text.includes(DSN), `${what} holds the DSN`);
    }
    assert.match(job.text, /board_user/, 'the redacted DSN is there for people to read');
  });
});
