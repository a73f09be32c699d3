/**
 * Server-side request forgery and key theft through embedding providers (issue #8, SECURITY.md):
 * a real API and real workers, three real HTTP listeners on 127.0.0.1 — `good` (the provider
 * LAKEHOUSE_EMBED_PROVIDER_GOOD, with a key), `builtin` (the built-in `openai` provider with
 * OPENAI_API_KEY) and `attacker`, which records every request it gets. A keyless provider
 * `plain` is configured to point at the attacker on purpose: requests may go there, keys never.
 *
 * Every shape of the attack is tried — a URL or key in a job, unconfigured or look-alike provider
 * names, a manifest edited on disk, redirects to the attacker, error bodies echoing the key or
 * carrying credentials — and the outcome a user cares about is asserted: the attacker never
 * received a key, each key reached only its own provider, and no answer, job view or index view
 * contains a key or a raw credential.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Queue } from 'bullmq';
import { startApi, type RunningApi } from '../../api/server.ts';
import { loadConfig } from '../../shared/config.ts';
import { workerContext } from '../../workers/context.ts';
import { startWorkers, type RunningWorkers } from '../../workers/runner.ts';
import { csvText, testEnv, type TestEnv } from '../helpers/env.ts';
import { assertProblem, call, completedJob, finishedJob, okJson, type HttpAnswer } from '../helpers/http.ts';
import { assertNoSandboxChildrenLeft, silentLog } from '../helpers/jobs.ts';
import { startLlmStandIn, type LlmStandIn } from '../helpers/llm-stand-in.ts';

const ADMIN = 'admin-key-ssrf-0b4c7e2a91';
const WRITER = 'writer-key-ssrf-6d1f3a8c52';
const READER = 'reader-key-ssrf-9e5b2c7d40';
const GOOD_KEY = `gk-${randomBytes(12).toString('hex')}`; // no well-known key shape: only binding and literal scrubbing can hide it
const BUILTIN_KEY = `sk-builtin-${randomBytes(12).toString('hex')}`;
const DIMS = 8;

const ENV_VARS = [
  'LAKEHOUSE_EMBED_PROVIDER_GOOD', 'LAKEHOUSE_EMBED_PROVIDER_GOOD_KEY', 'LAKEHOUSE_EMBED_PROVIDER_PLAIN',
  'LAKEHOUSE_OPENAI_URL', 'OPENAI_API_KEY', 'LAKEHOUSE_EMBED_MAX_RETRIES', 'LAKEHOUSE_EMBED_THREADS',
] as const;

let env: TestEnv;
let api: RunningApi;
let workers: RunningWorkers;
let good: LlmStandIn;
let builtin: LlmStandIn;
let attacker: LlmStandIn;
let embedQueue: Queue;

const get = (p: string, key = READER) => call(api.url, p, { key, timeoutMs: 30_000 });
const post = (p: string, body: unknown, key = WRITER) => call(api.url, p, { method: 'POST', body, key, timeoutMs: 30_000 });
// as a writer: readers never see a failed job's reason (test/security/roles.test.ts)
const finished = (location: string) => finishedJob((p) => get(p, WRITER), location, 60_000);

/** Posts a job (202 expected) and waits until it completed or failed. */
async function run(res: Promise<HttpAnswer>, what: string): Promise<any> {
  const answer = await res;
  okJson(answer, what, 202);
  return finished(answer.headers.get('location')!);
}

/** Anything that would identify a key: the whole key, or the random part alone (a cut may keep a prefix). */
function assertNoKey(text: string, where: string): void {
  for (const key of [GOOD_KEY, BUILTIN_KEY]) {
    const random = key.slice(key.lastIndexOf('-') + 1);
    for (const piece of [key, random.slice(0, 6), random.slice(-6), Buffer.from(key).toString('base64').slice(0, 16)]) {
      assert.ok(!text.includes(piece), `${where} holds (part of) a key: ${text.slice(0, 600)}`);
    }
  }
}

/** The attacker got no request carrying a key (and, where `none`, no request at all). */
function assertAttackerGotNoKey({ none }: { none: boolean }): void {
  if (none) assert.deepEqual(attacker.requests.map((r) => `${r.method} ${r.path}`), [], 'the attacker received requests');
  for (const r of attacker.requests) {
    assert.equal(r.headers.authorization, undefined, `the attacker got an Authorization header on ${r.path}`);
    assertNoKey(JSON.stringify(r), 'a request the attacker received');
  }
}

/** Each key only at its own provider, always as its own Bearer header. */
function assertKeysBound(): void {
  for (const r of good.requests) assert.equal(r.headers.authorization, `Bearer ${GOOD_KEY}`, `good got ${r.headers.authorization}`);
  for (const r of builtin.requests) assert.equal(r.headers.authorization, `Bearer ${BUILTIN_KEY}`, `builtin got ${r.headers.authorization}`);
  assertAttackerGotNoKey({ none: false });
}

async function embedJob(body: Record<string, unknown>, key = WRITER): Promise<HttpAnswer> {
  return post('/jobs/embed', { dataset: 'docs', id_column: 'id', text_column: 'body', ...body }, key);
}

async function upload(dataset: string, rows: [string, string][], mode: 'replace' | 'append' = 'replace'): Promise<void> {
  const res = await call(api.url, `/datasets/${dataset}/upload?mode=${mode}`, {
    method: 'POST', key: WRITER, body: csvText([['id', 'body'], ...rows]), headers: { 'content-type': 'text/csv' },
  });
  okJson(res, `upload ${dataset}`, 202);
  await completedJob(get, res.headers.get('location')!);
}

function manifestPath(index: string): string {
  return path.join(env.dataDir, 'indexes', index, 'manifest.json');
}

/** Everything a reader can see of jobs and indexes, as one text. */
async function everythingVisible(): Promise<string> {
  const parts: string[] = [];
  for (const state of ['failed', 'completed', 'waiting', 'active']) {
    for (const queue of ['embed', 'refresh']) parts.push((await get(`/jobs/${queue}?state=${state}&limit=500`)).text);
  }
  parts.push((await get('/indexes')).text);
  return parts.join('\n');
}

describe('SSRF and key binding of embedding providers', { timeout: 240_000 }, () => {
  const saved = new Map(ENV_VARS.map((k) => [k, process.env[k]]));

  before(async () => {
    [good, builtin, attacker] = await Promise.all([startLlmStandIn({ dims: DIMS }), startLlmStandIn({ dims: DIMS }), startLlmStandIn({ dims: DIMS })]);
    // read by every config of this process: the workers' context and the API
    process.env['LAKEHOUSE_EMBED_PROVIDER_GOOD'] = `openai:${good.url}`;
    process.env['LAKEHOUSE_EMBED_PROVIDER_GOOD_KEY'] = GOOD_KEY;
    process.env['LAKEHOUSE_EMBED_PROVIDER_PLAIN'] = `ollama:${attacker.url}`;
    process.env['LAKEHOUSE_OPENAI_URL'] = builtin.url;
    process.env['OPENAI_API_KEY'] = BUILTIN_KEY;
    process.env['LAKEHOUSE_EMBED_MAX_RETRIES'] = '0';
    process.env['LAKEHOUSE_EMBED_THREADS'] = '1';
    env = await testEnv();
    env.defer(() => Promise.all([good.close(), builtin.close(), attacker.close()]));
    env.defer(async () => (await workerContext()).redis.disconnect());
    embedQueue = new Queue('embed', { connection: env.redis, prefix: env.prefix });
    env.defer(() => embedQueue.close());
    workers = await startWorkers({ config: env.config, queues: ['ingest', 'embed', 'refresh'], concurrency: 2, log: silentLog });
    env.defer(() => workers.close(5_000));
    api = await startApi(loadConfig({ ...process.env, LAKEHOUSE_API_KEYS: `${ADMIN}:admin,${WRITER}:writer,${READER}:reader`, LAKEHOUSE_HOST: '127.0.0.1', PORT: '0' }), silentLog);
    env.defer(() => api.close());

    await upload('docs', [['a', 'alpha text'], ['b', 'beta text'], ['c', 'gamma text']]);
    const built = await run(embedJob({ index: 'good_idx', provider: 'good', model: 'm1' }), 'embed good_idx');
    assert.equal(built.state, 'completed', built.failed_reason);
    assert.ok(good.requests.length > 0, 'the good provider embedded the index');
  });

  after(async () => {
    try {
      await env?.cleanup();
      await assertNoSandboxChildrenLeft(10_000);
    } finally {
      for (const [k, v] of saved) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });

  it('a job carrying a URL or a key is refused (400) naming the setting, by every route, for every role; nothing is enqueued', async () => {
    const port = new URL(attacker.url).port;
    const shapes: Record<string, unknown>[] = [
      { url: attacker.url },
      { url: `http://thief:pw-in-url@127.0.0.1:${port}` },
      { url: `http://[::1]:${port}/v1` },
      { url: 'file:///etc/passwd' },
      { provider: 'openai', url: attacker.url },
      { provider: 'good', url: `${attacker.url}/v1` },
      { base_url: attacker.url },
      { baseUrl: attacker.url },
      { endpoint: attacker.url },
      { host: `127.0.0.1:${port}` },
      { api_key: 'sk-from-payload-1' },
      { apiKey: 'sk-from-payload-2' },
      { key: 'sk-from-payload-3' },
      { token: 'sk-from-payload-4' },
      { authorization: 'Bearer sk-from-payload-5' },
      { headers: { authorization: 'Bearer sk-from-payload-6' } },
      { url: null },
      { url: '' },
    ];
    const before = await embedQueue.getJobCountByTypes('waiting', 'active', 'completed', 'failed', 'delayed', 'waiting-children', 'prioritized');
    for (const [i, shape] of shapes.entries()) {
      const what = JSON.stringify(shape);
      for (const key of [WRITER, ADMIN]) {
        const p = assertProblem(await embedJob({ index: `refused_${i}`, ...shape }, key), 400, what);
        assert.ok(JSON.stringify(p).includes('LAKEHOUSE_EMBED_PROVIDER_'), `${what}: the problem names the setting: ${JSON.stringify(p)}`);
        assert.ok(!JSON.stringify(p).includes('pw-in-url') && !JSON.stringify(p).includes('sk-from-payload'), `${what}: echoed back: ${JSON.stringify(p)}`);
      }
      assertProblem(await post('/jobs/embed/bulk', { jobs: [{ payload: { index: `refused_${i}`, dataset: 'docs', id_column: 'id', text_column: 'body', ...shape } }] }), 400, `bulk ${what}`);
      assertProblem(
        await call(api.url, `/schedules/refused-${i}`, { method: 'PUT', key: WRITER, body: { queue: 'embed', every_ms: 60_000, payload: { index: `refused_${i}`, dataset: 'docs', id_column: 'id', text_column: 'body', ...shape } } }),
        400,
        `schedule ${what}`,
      );
    }
    assert.equal(await embedQueue.getJobCountByTypes('waiting', 'active', 'completed', 'failed', 'delayed', 'waiting-children', 'prioritized'), before, 'no job was added');
    assert.equal((await get('/schedules')).json.schedules.length, 0, 'no schedule was stored');
    assertAttackerGotNoKey({ none: true });
  });

  it('provider names are compared byte-wise with the configured ones: look-alikes, odd case, unicode and prototype names are refused', async () => {
    const names = [
      'attacker', 'OpenAI', 'GOOD', 'Good', 'good ', ' good', 'good\u200b', 'g\u043e\u043ed', '\uff47\uff4f\uff4f\uff44', '\u0261ood', 'goo\u0501',
      '__proto__', 'constructor', 'hasOwnProperty', 'toString', 'good_key', 'plain_key', 'local ', `http://127.0.0.1:${new URL(attacker.url).port}`,
      '../good', 'good/../plain', '', 'x'.repeat(200), 'good\u0000', 'K\u212Aey',
    ];
    for (const name of names) {
      const p = assertProblem(await embedJob({ index: 'odd_name', provider: name }), 400, JSON.stringify(name));
      assert.match(JSON.stringify(p), /not configured on this server|provider name configured on the server/, JSON.stringify(name));
    }
    assert.equal((await get('/indexes/odd_name')).status, 404, 'no index was created');
    assertAttackerGotNoKey({ none: true });
  });

  it('an index manifest edited to name the attacker: a stored url is ignored and hidden; an unconfigured provider name fails clearly', async () => {
    const file = manifestPath('good_idx');
    const original = await fs.readFile(file, 'utf8');
    const m = JSON.parse(original);
    const port = new URL(attacker.url).port;
    m.embedding.url = `http://thief:pw-manifest@127.0.0.1:${port}`;
    m.embedding.base_url = attacker.url;
    m.embedding.key = 'sk-manifest-planted';
    await fs.writeFile(file, JSON.stringify(m));
    try {
      for (const view of [await get('/indexes'), await get('/indexes/good_idx')]) {
        assert.equal(view.status, 200, view.text);
        for (const bad of [`127.0.0.1:${port}`, 'pw-manifest', 'thief', 'sk-manifest-planted']) assert.ok(!view.text.includes(bad), `the index view shows ${bad}: ${view.text}`);
      }
      const before = good.requests.length;
      const hits = okJson(await post('/indexes/good_idx/search', { query: 'alpha text', k: 2 }, READER), 'search good_idx');
      assert.equal(hits.hits[0].doc_id, 'a');
      assert.equal(good.requests.length, before + 1, 'the query was embedded by the configured provider');
      assert.deepEqual(good.requests.at(-1)!.body.input, ['alpha text']);

      // an added document makes the refresh embed: at the configured provider, not the stored url
      await upload('docs', [['d', 'delta text']], 'append');
      const refreshed = await run(post('/jobs/refresh', { index: 'good_idx' }), 'refresh good_idx');
      assert.equal(refreshed.state, 'completed', refreshed.failed_reason);
      assert.ok(good.requests.some((r) => JSON.stringify(r.body.input).includes('delta text')), 'the refresh embedded at the configured provider');

      for (const planted of [{ provider: 'attacker' }, { provider: 'OpenAI' }, { provider: '__proto__' }, { provider: `http://127.0.0.1:${port}` }]) {
        await fs.writeFile(file, JSON.stringify({ ...m, embedding: { ...m.embedding, ...planted } }));
        const p = assertProblem(await post('/indexes/good_idx/search', { query: 'alpha text', k: 2 }, READER), 400, JSON.stringify(planted));
        assert.match(p.detail, /is not configured on this server/, p.detail);
        assert.ok(!p.detail.includes('pw-manifest'), p.detail);
      }
      await upload('docs', [['e', 'epsilon text']], 'append');
      const failedRefresh = await run(post('/jobs/refresh', { index: 'good_idx' }), 'refresh good_idx (unconfigured provider)');
      assert.equal(failedRefresh.state, 'failed');
      assert.match(failedRefresh.failed_reason, /is not configured on this server/);
    } finally {
      const current = JSON.parse(await fs.readFile(file, 'utf8'));
      await fs.writeFile(file, JSON.stringify({ ...current, embedding: JSON.parse(original).embedding }));
    }
    assertAttackerGotNoKey({ none: true });
    assertKeysBound();
  });

  it('a provider redirecting to the attacker: the request is not followed, the key stays home, the failure says why', async () => {
    const port = new URL(attacker.url).port;
    for (const status of [301, 302, 303, 307, 308]) {
      for (const location of [`${attacker.url}/v1/embeddings`, `http://thief:pw-location@127.0.0.1:${port}/steal`, `//127.0.0.1:${port}/v1/embeddings`]) {
        good.script({ status, headers: { location }, body: { moved: location } });
        const p = assertProblem(await post('/indexes/good_idx/search', { query: 'alpha text', k: 2 }, READER), 502, `${status} ${location}`);
        assert.match(p.detail, new RegExp(`HTTP ${status} redirect to http://127\\.0\\.0\\.1:${port} not followed`), p.detail);
        assert.ok(!p.detail.includes('pw-location'), p.detail);
        assertNoKey(p.detail, 'a redirect problem');
      }
      good.script({ status, headers: { location: `${attacker.url}/v1/embeddings` } });
      const job = await run(embedJob({ index: `redirected_${status}`, provider: 'good' }), `embed redirected_${status}`);
      assert.equal(job.state, 'failed');
      assert.equal(job.attempts, 1, 'a refused redirect is configuration: not retried');
      assert.match(job.failed_reason, /redirect .* not followed/);
      assertNoKey(JSON.stringify(job), 'a redirected job');
    }
    good.reset();
    assertAttackerGotNoKey({ none: true });
    assertKeysBound();
  });

  it('error bodies that echo the key or carry credentials are scrubbed, then trimmed, in job views and problems', async () => {
    const bodies: { body: unknown; secrets: string[] }[] = [
      { body: { error: 'invalid api key', echo: `Authorization: Bearer ${GOOD_KEY}` }, secrets: [] },
      { body: `${'x'.repeat(180)} ${GOOD_KEY} tail`, secrets: [] }, // a cut at 200 would keep half the key
      { body: `key was ${encodeURIComponent(GOOD_KEY)} / ${Buffer.from(GOOD_KEY).toString('base64')}`, secrets: [] },
      { body: { headers: { authorization: `Bearer ${GOOD_KEY}` } }, secrets: [] },
      { body: 'could not connect to postgres://admin:S3cr3t p@ss@db.internal:5432/x', secrets: ['S3cr3t', 'p@ss'] },
      { body: 'upstream config: password=hunter2-secret sslpassword=ssl-secret-9&x=1', secrets: ['hunter2-secret', 'ssl-secret-9'] },
      { body: "libpq: host=db user=u password='quoted \\' secret' dbname=x", secrets: ['quoted', 'secret\''] },
      { body: 'mysql://root:my-root-pw@10.0.0.5/x and u:go-dsn-pw@tcp(db:3306)/x', secrets: ['my-root-pw', 'go-dsn-pw'] },
      { body: { error: { message: 'bad token', token: 'tok-abcdef-123456', api_key: 'ak-0987654321' } }, secrets: ['tok-abcdef-123456', 'ak-0987654321'] },
    ];
    for (const [i, { body, secrets }] of bodies.entries()) {
      const what = `body ${i}`;
      good.script({ status: 400, body });
      const p = assertProblem(await post('/indexes/good_idx/search', { query: 'alpha text', k: 2 }, READER), 502, what);
      assert.match(p.detail, /^good embedding model "m1" at http:\/\/127\.0\.0\.1:\d+: HTTP 400/, p.detail);

      good.script({ status: 400, body });
      const job = await run(embedJob({ index: `echo_${i}`, provider: 'good', model: 'm1' }), `embed echo_${i}`);
      assert.equal(job.state, 'failed', what);
      assert.match(job.failed_reason, /HTTP 400/, what);
      const quoted = job.failed_reason.slice(job.failed_reason.indexOf('HTTP 400'));
      assert.ok(quoted.length <= 200 + 60, `${what}: the quoted body is trimmed: ${quoted.length} chars`);
      for (const text of [p.detail, JSON.stringify(job)]) {
        assertNoKey(text, what);
        for (const s of secrets) assert.ok(!text.includes(s), `${what}: ${s} in ${text}`);
      }
    }
    good.reset();
    assertNoKey(await everythingVisible(), 'job lists and index views');
    assertAttackerGotNoKey({ none: true });
    assertKeysBound();
  });

  it('the built-in openai provider keeps its key at LAKEHOUSE_OPENAI_URL; a keyless provider sends no key to its URL', async () => {
    const built = await run(embedJob({ index: 'builtin_idx', provider: 'openai', model: 'm2' }), 'embed builtin_idx');
    assert.equal(built.state, 'completed', built.failed_reason);
    assert.ok(builtin.requests.length > 0);
    assert.equal(built.data.url, undefined);
    const view = okJson(await get('/indexes/builtin_idx'), 'GET /indexes/builtin_idx');
    assert.deepEqual(view.embedding, { provider: 'openai', kind: 'openai', model: 'm2', dims: DIMS, normalized: true });

    // `plain` points at the attacker's address by an admin's choice; requests go there, keys do not
    const plain = await run(embedJob({ index: 'plain_idx', provider: 'plain', model: 'm3' }), 'embed plain_idx');
    assert.equal(plain.state, 'completed', plain.failed_reason);
    assert.ok(attacker.requests.length > 0, 'the keyless provider was used');
    assertAttackerGotNoKey({ none: false });
    assertKeysBound();
  });
});
