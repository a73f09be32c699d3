/**
 * Autotune end to end, over a real socket against real Redis with the API and workers (ingest,
 * embed, refresh, autotune) in this process: a default-grid run that journals seven trials and
 * promotes the winner into a new generation, a min_recall nobody reaches, custom-grid
 * validation, eval sets, promote/rollback walked back exactly across a restart of every
 * process, searches that keep succeeding through a promotion, one autotune per index at a time,
 * the tuning agent's scheduler, tick and cooldown, and `lakehouse autotune --wait`.
 *
 * Vectors come from an OpenAI-compatible server started here: a seeded Gaussian mixture keyed by
 * the first word of the text (its topic), so the 3,000 documents have the cluster structure
 * real embeddings have and cheap HNSW configs visibly lose recall (the shared stand-in's hash
 * vectors are uniform noise: every config does about equally badly on them).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Queue } from 'bullmq';
import { startApi, type RunningApi } from '../../api/server.ts';
import { configKey, DEFAULT_GRID, type HnswConfig } from '../../shared/autotune/hnsw-config.ts';
import { loadConfig, type Config } from '../../shared/config.ts';
import { workerContext } from '../../workers/context.ts';
import { startWorkers, type RunningWorkers } from '../../workers/runner.ts';
import { csvText, exists, testEnv, waitFor, type TestEnv } from '../helpers/env.ts';
import { assertProblem, call, completedJob, okJson } from '../helpers/http.ts';
import { assertNoSandboxChildrenLeft, silentLog } from '../helpers/jobs.ts';
import { BIN } from '../helpers/processes.ts';

const ADMIN = 'admin-key-autotune-5d1c8e2a';
const WRITER = 'writer-key-autotune-9f3b6a41';
const READER = 'reader-key-autotune-2e7d0c95';
const INDEX = 'tune_idx';
const DATASET = 'tune_docs';
const MODEL = 'clustered-64';
const DOCS = 3_000;
const DEFAULT_HNSW = { m: 16, ef_construction: 200, ef_search: 100 };
const TINY: HnswConfig = { m: 4, ef_construction: 10, ef_search: 10 };

// ---------------------------------------------------------------------------------------------
// a clustered embedding server

const DIMS = 64;
const TOPICS = 20;
/** Noise around a topic's centre (whose components are N(0,1)): wide enough that clusters overlap and a sloppy graph misses neighbours. */
const SIGMA = 2;

/** A seeded N(0,1) stream (mulberry32 + Box–Muller), keyed by a string. */
function gaussians(key: string): () => number {
  let a = 2166136261;
  for (const ch of key) a = Math.imul(a ^ ch.charCodeAt(0), 16777619);
  const uniform = () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 4294967296;
  };
  return () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
}

/** The topic's centre plus noise seeded by the whole text: the same text always gets the same vector. */
function clusteredVector(text: string): number[] {
  const centre = gaussians(`centre:${text.trim().split(/\s+/)[0]!.toLowerCase()}`);
  const noise = gaussians(`noise:${text}`);
  return Array.from({ length: DIMS }, () => centre() + SIGMA * noise());
}

interface Embedder {
  url: string;
  /** Texts embedded so far. */
  texts: number;
  close(): Promise<void>;
}

/** `POST /v1/embeddings {model, input}` → `{data: [{index, embedding}]}`, as OpenAI-compatible servers answer. */
async function startClusteredEmbedder(): Promise<Embedder> {
  const state = { texts: 0 };
  const server = http.createServer(async (req, res) => {
    let raw = '';
    for await (const chunk of req) raw += chunk;
    const body = JSON.parse(raw || '{}') as { model?: string; input?: string | string[] };
    const input = typeof body.input === 'string' ? [body.input] : body.input;
    if (req.method !== 'POST' || req.url !== '/v1/embeddings' || !Array.isArray(input)) {
      res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: 'expected POST /v1/embeddings {model, input}' } }));
      return;
    }
    state.texts += input.length;
    const data = input.map((text, index) => ({ object: 'embedding', index, embedding: clusteredVector(text) }));
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ object: 'list', data, model: body.model }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    get texts() {
      return state.texts;
    },
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

const topicOf = (i: number) => `topic${i % TOPICS}`;
const bodyOf = (i: number) => `${topicOf(i)} note ${i}: a short line about ${topicOf(i)} number ${i}`;

// ---------------------------------------------------------------------------------------------
// set-up and small helpers

let env: TestEnv;
let api: RunningApi;
let workers: RunningWorkers;
let embedder: Embedder;
let autotuneQueue: Queue;

const ENV_EXTRA = ['LAKEHOUSE_OPENAI_URL', 'LAKEHOUSE_EMBED_BATCH_SIZE', 'LAKEHOUSE_EMBED_SHARD_CHUNKS'] as const;

function apiConfig(): Config {
  return loadConfig({
    ...process.env, // REDIS_URL, LAKEHOUSE_DATA_DIR, LAKEHOUSE_QUEUE_PREFIX (testEnv), the embedding settings (before)
    LAKEHOUSE_API_KEYS: `${ADMIN}:admin,${WRITER}:writer,${READER}:reader`,
    LAKEHOUSE_HOST: '127.0.0.1',
    PORT: '0',
  });
}

function startTestWorkers(): Promise<RunningWorkers> {
  return startWorkers({ config: env.config, queues: ['ingest', 'embed', 'refresh', 'autotune'], concurrency: 2, log: silentLog });
}

const get = (p: string, key = READER) => call(api.url, p, { key, timeoutMs: 30_000 });
const post = (p: string, body: unknown, key = WRITER) => call(api.url, p, { method: 'POST', body, key, timeoutMs: 60_000 });
const put = (p: string, body: unknown, key = WRITER) => call(api.url, p, { method: 'PUT', body, key, timeoutMs: 30_000 });

const ok = okJson;

const completed = (location: string, timeoutMs?: number) => completedJob((p) => get(p, WRITER), location, timeoutMs);

async function enqueue(p: string, body: unknown): Promise<{ id: string; location: string }> {
  const res = await post(p, body);
  const json = ok(res, `POST ${p}`, 202);
  return { id: json.id, location: res.headers.get('location')! };
}

async function autotune(body: Record<string, unknown>, timeoutMs = 120_000): Promise<any> {
  return (await completed((await enqueue('/jobs/autotune', { index: INDEX, ...body })).location, timeoutMs)).result;
}

const promotion = async () => ok(await get(`/indexes/${INDEX}/promotion`), 'GET promotion');
const indexManifest = async () => ok(await get(`/indexes/${INDEX}`), `GET /indexes/${INDEX}`);
const journal = async (): Promise<any[]> => ok(await get(`/indexes/${INDEX}/trials?limit=1000`), 'GET trials').trials;
const search = async (query: string) => ok(await post(`/indexes/${INDEX}/search`, { query, k: 10 }, READER), `search "${query}"`);

/** Graph parameters of the generation an index serves, from its manifest's record. */
function servedGraph(index: any): { m: number; ef_construction: number } {
  const gen = index.generations.find((g: any) => g.id === index.generation);
  assert.ok(gen, `generation ${index.generation} is listed: ${JSON.stringify(index.generations)}`);
  return { m: gen.build.m, ef_construction: gen.build.ef_construction };
}

const graphOf = (c: HnswConfig) => ({ m: c.m, ef_construction: c.ef_construction });
const sameGraph = (a: HnswConfig, b: HnswConfig) => a.m === b.m && a.ef_construction === b.ef_construction;

/** Asserts the index serves `config`: the manifest's hnsw and the graph of its current generation. */
async function assertServes(config: HnswConfig, what: string): Promise<any> {
  const index = await indexManifest();
  assert.deepEqual(index.hnsw, config, `${what}: manifest hnsw`);
  assert.deepEqual(servedGraph(index), graphOf(config), `${what}: the served generation's graph`);
  const answer = await search('topic7 anything about seven');
  assert.equal(answer.generation, index.generation, `${what}: search serves generation ${index.generation}`);
  return index;
}

interface SearchLoop {
  /** Generation of every successful search, in order. */
  generations: number[];
  failures: string[];
  stop(): Promise<void>;
}

/** POST /search every ~20 ms until stopped; every answer and failure is recorded. */
function searchLoop(): SearchLoop {
  const loop: SearchLoop = { generations: [], failures: [], stop: async () => {} };
  let running = true;
  const done = (async () => {
    for (let i = 0; running; i++) {
      try {
        const res = await call(api.url, `/indexes/${INDEX}/search`, { method: 'POST', key: READER, body: { query: `${topicOf(i)} loop query ${i}`, k: 10 }, timeoutMs: 10_000 });
        if (res.status === 200 && res.json.hits.length === 10) loop.generations.push(res.json.generation);
        else loop.failures.push(`HTTP ${res.status} ${res.text.slice(0, 200)}`);
      } catch (err) {
        loop.failures.push((err as Error).message);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  loop.stop = async () => {
    running = false;
    await done;
  };
  return loop;
}

interface TrialSummary {
  trial_id: string;
  config: HnswConfig;
  recall: number;
  p50_ms: number;
  p95_ms: number;
  build_seconds: number;
}

/** The default-grid run's result, used by the later cases. */
let firstRun: { trials: TrialSummary[]; winner: TrialSummary; generation: number; evalset: string };

// ---------------------------------------------------------------------------------------------

describe('autotune', { timeout: 180_000 }, () => {
  const saved = new Map(ENV_EXTRA.map((k) => [k, process.env[k]]));

  before(async () => {
    embedder = await startClusteredEmbedder();
    // read by every config of this process: the workers' context, the API, the runner
    process.env['LAKEHOUSE_OPENAI_URL'] = embedder.url;
    process.env['LAKEHOUSE_EMBED_BATCH_SIZE'] = '250';
    process.env['LAKEHOUSE_EMBED_SHARD_CHUNKS'] = '1000';
    env = await testEnv();
    env.defer(() => embedder.close());
    env.defer(async () => {
      // the processors' shared context (embed and autotune run in this process) holds a connection
      const ctx = await workerContext();
      ctx.redis.disconnect();
    });
    autotuneQueue = new Queue('autotune', { connection: env.redis, prefix: env.prefix });
    env.defer(() => autotuneQueue.close());
    workers = await startTestWorkers();
    env.defer(() => workers.close(5_000)); // whichever workers run at the end
    api = await startApi(apiConfig(), silentLog);
    env.defer(() => api.close());

    const rows = [['id', 'topic', 'body'], ...Array.from({ length: DOCS }, (_, i) => [`d${i}`, topicOf(i), bodyOf(i)])];
    const upload = await call(api.url, `/datasets/${DATASET}/upload?mode=replace`, { method: 'POST', key: WRITER, body: csvText(rows), headers: { 'content-type': 'text/csv' } });
    ok(upload, 'upload', 202);
    await completed(upload.headers.get('location')!);
    const embedded = await completed(
      (await enqueue('/jobs/embed', { index: INDEX, dataset: DATASET, id_column: 'id', text_column: 'body', provider: 'openai', model: MODEL })).location,
      90_000,
    );
    assert.deepEqual({ ...embedded.result, seconds: 0 }, { index: INDEX, generation: 1, docs: DOCS, chunks: DOCS, dims: DIMS, seconds: 0 });
  });

  after(async () => {
    try {
      await env?.cleanup();
      await assertNoSandboxChildrenLeft(); // the sandboxed ingest processors
    } finally {
      for (const [k, v] of saved) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });

  it('eval sets: generated and supplied ones are made by jobs, listed, and read without their vectors', async () => {
    const generated = await completed((await enqueue(`/indexes/${INDEX}/evalsets`, { kind: 'generated', id: 'sampled', n: 25, k: 10 })).location);
    assert.deepEqual(generated.result, { evalset: 'sampled', n: 25, k: 10 });
    const unnamed = await completed((await enqueue(`/indexes/${INDEX}/evalsets`, { kind: 'generated', n: 5 })).location);
    assert.match(unnamed.result.evalset, /^es-\d{14}-[0-9a-f]{6}$/, 'the job result names the set');
    assert.equal(unnamed.result.n, 5);
    const items = [
      { query: 'topic3 what do the notes say', relevant_doc_ids: ['d3', 'd23', 'd43'] },
      { query: 'topic11 anything', relevant_doc_ids: ['d11'] },
    ];
    const supplied = await completed((await enqueue(`/indexes/${INDEX}/evalsets`, { kind: 'supplied', id: 'judged', items })).location);
    assert.deepEqual(supplied.result, { evalset: 'judged', n: 2, k: 10 });

    const list = ok(await get(`/indexes/${INDEX}/evalsets`), 'GET evalsets').evalsets;
    const byId = new Map(list.map((s: any) => [s.id, s]));
    assert.deepEqual(new Set(byId.keys()), new Set(['sampled', unnamed.result.evalset, 'judged']));
    assert.deepEqual({ ...(byId.get('sampled') as any), created_at: '' }, { id: 'sampled', kind: 'generated', k: 10, n: 25, created_at: '', generation: 1 });
    assert.deepEqual({ ...(byId.get('judged') as any), created_at: '' }, { id: 'judged', kind: 'supplied', k: 10, n: 2, created_at: '', generation: 1 });

    const one = await get(`/indexes/${INDEX}/evalsets/sampled`);
    const set = ok(one, 'GET one eval set');
    assert.equal(set.kind, 'generated');
    assert.equal(set.queries.length, 25);
    assert.doesNotMatch(one.text, /"vector"/, 'no query vectors in the answer');
    const docOfText = new Map(Array.from({ length: DOCS }, (_, i) => [bodyOf(i), `d${i}`]));
    for (const q of set.queries) {
      assert.deepEqual(Object.keys(q).sort(), ['query', 'relevant_chunk_ids', 'relevant_doc_ids']);
      assert.equal(q.relevant_chunk_ids.length, 10);
      // a sampled chunk is its own nearest neighbour
      assert.equal(q.relevant_doc_ids[0], docOfText.get(q.query), `"${q.query}" finds its own document first`);
    }
    const judged = await get(`/indexes/${INDEX}/evalsets/judged`);
    assert.doesNotMatch(judged.text, /"vector"/);
    assert.deepEqual(ok(judged, 'GET judged').queries, items);

    assertProblem(await get(`/indexes/${INDEX}/evalsets/no-such-set`), 404, 'unknown eval set');
    assertProblem(await post('/indexes/no_such_index/evalsets', { kind: 'generated' }), 404, 'eval set of an unknown index');
    assertProblem(await post(`/indexes/${INDEX}/evalsets`, { kind: 'supplied', items: [{ query: 'x', relevant_doc_ids: [] }] }), 400, 'a judged query without documents');
  });

  it('a custom grid is validated: 400 naming the field and the bound; duplicates are refused', async () => {
    const jobs = async () => Object.values(await autotuneQueue.getJobCounts()).reduce((a, b) => a + b, 0);
    const jobsBefore = await jobs();
    const config = { m: 16, ef_construction: 80, ef_search: 60 };
    const m3 = assertProblem(await post('/jobs/autotune', { index: INDEX, grid: [{ ...config, m: 3 }] }), 400, 'm 3');
    assert.ok(m3.errors?.some((e) => /grid\.0\.m$/.test(e.path) && /\bm 3\b.*minimum 4/.test(e.message)), JSON.stringify(m3));
    assert.match(m3.detail, /m 3 is below the minimum 4/);
    const efc = assertProblem(await post('/jobs/autotune', { index: INDEX, grid: [config, { ...config, ef_construction: 500 }] }), 400, 'ef_construction 500');
    assert.ok(efc.errors?.some((e) => /grid\.1\.ef_construction$/.test(e.path) && /ef_construction 500 is above the maximum 400/.test(e.message)), JSON.stringify(efc));
    const dup = assertProblem(await post('/jobs/autotune', { index: INDEX, grid: [config, TINY, { ...config }] }), 400, 'duplicate configs');
    assert.match(dup.detail, /m16-efc80-efs60 appears twice/);
    assertProblem(await post('/jobs/autotune', { index: INDEX, grid: [] }), 400, 'an empty grid');
    assertProblem(await post('/jobs/autotune', { index: INDEX, min_recall: 1.5 }), 400, 'min_recall above 1');
    assert.equal(await jobs(), jobsBefore, 'no refused request reached the queue');
  });

  it('the default grid: seven trials journalled, the winner promoted into a new generation that search serves; a second run request while it runs gets the same job', async () => {
    const before = await indexManifest();
    assert.equal(before.generation, 1);
    assert.deepEqual(before.hnsw, DEFAULT_HNSW);

    const first = await enqueue('/jobs/autotune', { index: INDEX });
    const second = ok(await post('/jobs/autotune', { index: INDEX, min_recall: 0.5, k: 5 }), 'second POST', 202);
    assert.equal(second.id, first.id, 'one autotune per index at a time: the running job comes back');
    const state = ok(await get(first.location), 'GET job').state;
    assert.notEqual(state, 'completed', 'the first run was still going when the second request came');

    const { result } = await completed(first.location, 120_000);
    assert.equal(result.index, INDEX);
    assert.equal(result.trials.length, 7);
    assert.deepEqual(result.trials.map((t: TrialSummary) => configKey(t.config)).sort(), DEFAULT_GRID.map(configKey).sort());
    for (const t of result.trials as TrialSummary[]) {
      assert.ok(t.recall >= 0 && t.recall <= 1 && t.p50_ms >= 0 && t.p95_ms >= t.p50_ms && t.build_seconds > 0, JSON.stringify(t));
    }
    const recalls = result.trials.map((t: TrialSummary) => t.recall);
    assert.ok(Math.min(...recalls) < Math.max(...recalls), `the configs differ in recall on clustered vectors: ${recalls}`);
    const best = [...result.trials].sort((a: TrialSummary, b: TrialSummary) => b.recall - a.recall || a.p50_ms - b.p50_ms)[0];
    assert.deepEqual(result.winner, best, 'the winner: highest recall, then lowest p50');
    assert.equal(result.promoted, true, result.reason);
    assert.ok(result.winner.recall >= 0.9, `the promoted recall ${result.winner.recall} clears min_recall 0.9`);
    assert.match(result.reason, new RegExp(`^promoted ${configKey(result.winner.config)}: recall@10 ${result.winner.recall.toFixed(3)}`));
    assert.ok(result.generation > before.generation, `a new generation: ${result.generation}`);

    const trials = new Map((await journal()).map((t) => [t.trial_id, t]));
    for (const t of result.trials as TrialSummary[]) {
      const rec = trials.get(t.trial_id);
      assert.ok(rec, `trial ${t.trial_id} is journalled`);
      assert.equal(rec.by, 'autotune');
      assert.equal(rec.index, INDEX);
      assert.equal(rec.evalset, result.evalset);
      assert.equal(rec.k, 10);
      assert.equal(rec.count, DOCS);
      assert.deepEqual({ config: rec.config, recall: rec.recall, p50_ms: rec.p50_ms, p95_ms: rec.p95_ms, build_seconds: rec.build_seconds }, { config: t.config, recall: t.recall, p50_ms: t.p50_ms, p95_ms: t.p95_ms, build_seconds: t.build_seconds });
      assert.ok(rec.memory_mb > 0, `memory_mb ${rec.memory_mb}`);
    }
    const evalset = ok(await get(`/indexes/${INDEX}/evalsets/${result.evalset}`), 'the run\'s generated eval set');
    assert.equal(evalset.queries.length, 100);

    const registry = await promotion();
    assert.equal(registry.current.trial_id, result.winner.trial_id);
    assert.deepEqual(registry.current.config, result.winner.config);
    assert.equal(registry.current.by, 'autotune');
    assert.equal(registry.current.generation, result.generation);
    assert.deepEqual(registry.history, []);
    assert.equal(registry.pending, null);

    const index = await assertServes(result.winner.config, 'after the autotune run');
    assert.equal(index.generation, result.generation);
    firstRun = { trials: result.trials, winner: result.winner, generation: result.generation, evalset: result.evalset };
  });

  it('min_recall 1 with only the tiny config: completes, promotes nothing, says why, leaves the registry as it was', async () => {
    const registryBefore = await promotion();
    const indexBefore = await indexManifest();
    const result = await autotune({ min_recall: 1, grid: [TINY] });
    assert.equal(result.trials.length, 1);
    assert.deepEqual(result.winner.config, TINY);
    assert.ok(result.winner.recall < 0.9, `the tiny graph misses neighbours: recall ${result.winner.recall}`);
    assert.equal(result.promoted, false);
    assert.equal(result.generation, null);
    assert.match(result.reason, new RegExp(`best recall@10 was ${result.winner.recall.toFixed(3)} \\(${configKey(TINY)}\\), below min_recall 1: nothing promoted`));
    assert.deepEqual(await promotion(), registryBefore, 'the registry is unchanged');
    assert.deepEqual(await indexManifest(), indexBefore, 'the index is unchanged');
    assert.equal(await exists(path.join(env.dataDir, 'indexes', INDEX, 'trials', result.winner.trial_id)), false, 'an unpromoted trial graph is not kept');
    const rec = (await journal()).find((t) => t.trial_id === result.winner.trial_id);
    assert.equal(rec?.by, 'autotune', 'the trial is journalled all the same');
  });

  it('promote → promote → rollback → rollback walks back exactly and survives a restart; searches through a promotion never fail', async () => {
    const W = firstRun.winner;
    const others = firstRun.trials.filter((t) => !sameGraph(t.config, W.config));
    const A = others[0]!;
    const B = others.find((t) => !sameGraph(t.config, A.config))!;
    assert.ok(A && B, 'two more graphs to promote');
    const entry = (t: TrialSummary) => ({ trial_id: t.trial_id, config: t.config });
    const shape = (r: any) => ({ current: r.current && entry(r.current), history: r.history.map(entry), pending: r.pending });

    // promote A while searches run
    const loop = searchLoop();
    let promotedA: any;
    try {
      await waitFor(() => loop.generations.length >= 5, { timeoutMs: 10_000, what: 'searches before the promotion' });
      promotedA = ok(await post(`/indexes/${INDEX}/promote/${A.trial_id}`, {}), 'promote A');
      const seenBefore = loop.generations.length;
      await waitFor(() => loop.generations.slice(seenBefore).includes(promotedA.current.generation), { timeoutMs: 5_000, what: `searches to reach generation ${promotedA.current.generation}` });
    } finally {
      await loop.stop();
    }
    assert.deepEqual(loop.failures, [], 'every search during the promotion succeeded');
    assert.ok(loop.generations.length >= 6, `searches ran: ${loop.generations.length}`);
    assert.deepEqual(loop.generations, [...loop.generations].sort((a, b) => a - b), 'a search never goes back to an older generation');
    assert.deepEqual([...new Set(loop.generations)], [firstRun.generation, promotedA.current.generation]);
    assert.deepEqual(shape(promotedA), { current: entry(A), history: [entry(W)], pending: null });
    assert.equal(promotedA.current.by, 'manual');
    let index = await assertServes(A.config, 'after promoting A');
    assert.equal(index.generation, promotedA.current.generation);

    const promotedB = ok(await post(`/indexes/${INDEX}/promote/${B.trial_id}`, {}), 'promote B');
    assert.deepEqual(shape(promotedB), { current: entry(B), history: [entry(W), entry(A)], pending: null });
    index = await assertServes(B.config, 'after promoting B');
    assert.equal(index.generation, promotedB.current.generation);
    assert.ok(promotedB.current.generation > promotedA.current.generation);

    const back = ok(await post(`/indexes/${INDEX}/rollback`, {}), 'rollback to A');
    assert.deepEqual(shape(back), { current: entry(A), history: [entry(W)], pending: null });
    index = await assertServes(A.config, 'after rolling back to A');
    assert.deepEqual(await promotion(), back);

    // a restart of every process: the state is on disk, not in memory
    const registryBefore = await promotion();
    const indexBefore = await indexManifest();
    await api.close();
    await workers.close(5_000);
    workers = await startTestWorkers();
    api = await startApi(apiConfig(), silentLog);
    assert.deepEqual(await promotion(), registryBefore, 'the registry after a restart');
    assert.deepEqual(await indexManifest(), indexBefore, 'the index after a restart');
    await assertServes(A.config, 'after the restart');

    const backToW = ok(await post(`/indexes/${INDEX}/rollback`, {}), 'rollback to W');
    assert.deepEqual(shape(backToW), { current: entry(W), history: [], pending: null });
    await assertServes(W.config, 'after rolling back to the autotune winner');

    const none = ok(await post(`/indexes/${INDEX}/rollback`, {}), 'rollback to the default');
    assert.deepEqual(shape(none), { current: null, history: [], pending: null });
    await assertServes(DEFAULT_HNSW, 'after rolling back every promotion');

    assertProblem(await post(`/indexes/${INDEX}/rollback`, {}), 409, 'nothing left to roll back');
    assertProblem(await post(`/indexes/${INDEX}/promote/t-no-such-trial`, {}), 404, 'an unknown trial');
    assertProblem(await post(`/indexes/${INDEX}/promote/${A.trial_id}`, {}, READER), 403, 'a reader may not promote');
  });

  it('the agent: a scheduler per index, a tick that tries a config not tried yet, a cooldown, and off again', async () => {
    const schedulerId = `agent-${INDEX}`;
    const tried = new Set((await journal()).map((t) => configKey(t.config)));

    const on = ok(await put(`/indexes/${INDEX}/agent`, { enabled: true, every_ms: 60_000 }), 'agent on');
    assert.equal(on.index, INDEX);
    assert.equal(on.enabled, true);
    const scheduler = await autotuneQueue.getJobScheduler(schedulerId);
    assert.ok(scheduler, 'the scheduler exists');
    assert.equal(scheduler.every, 60_000);
    assert.equal(scheduler.template?.data?.kind, 'agent');
    assert.equal(scheduler.template?.data?.index, INDEX);

    // an `every` scheduler's first iteration is due at once: that is the first tick
    const mine = await waitFor(async () => (await journal()).find((t) => t.by === 'agent'), { timeoutMs: 30_000, what: 'the first tick\'s trial' });
    assert.ok(!tried.has(configKey(mine.config)), `the agent tried ${configKey(mine.config)}, which was new`);
    const tick = await completed(`/jobs/autotune/${encodeURIComponent(mine.job_id)}`);
    assert.equal(tick.result.ran, true);
    assert.equal(tick.result.trial.trial_id, mine.trial_id);
    assert.equal(tick.result.reason, `tried ${configKey(mine.config)}`);

    // a second tick at once, with the scheduler's own data: refused by the cooldown
    const again = await autotuneQueue.add('agent', scheduler.template!.data);
    const refused = await completed(`/jobs/autotune/${again.id}`);
    assert.equal(refused.result.ran, false);
    assert.match(refused.result.reason, /^cooldown: next trial after \d{4}-\d\d-\d\dT/);
    assert.equal((await journal()).filter((t) => t.by === 'agent').length, 1, 'no second agent trial');

    const off = ok(await put(`/indexes/${INDEX}/agent`, { enabled: false }), 'agent off');
    assert.deepEqual(off, { index: INDEX, enabled: false, next_run_at: null });
    assert.equal(await autotuneQueue.getJobScheduler(schedulerId), undefined, 'the scheduler is gone');
    const delayed = await autotuneQueue.getDelayed();
    assert.deepEqual(delayed.filter((j) => j.id?.startsWith(`repeat:${schedulerId}:`)).map((j) => j.id), [], 'no tick left waiting');
  });

  it('`lakehouse autotune INDEX --wait` prints the trials table, the winner and whether it was promoted', async () => {
    const run = (args: string[]) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
        const child = spawn(process.execPath, [BIN, ...args], {
          env: { ...process.env, LAKEHOUSE_API_URL: api.url, LAKEHOUSE_API_KEY: WRITER, LOG_LEVEL: 'silent' },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let stdout = '';
        let stderr = '';
        child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
        child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
        const timer = setTimeout(() => {
          child.kill('SIGKILL');
          reject(new Error(`lakehouse ${args.join(' ')} did not exit in time\n${stdout}\n${stderr}`));
        }, 90_000);
        child.once('close', (code) => {
          clearTimeout(timer);
          resolve({ code, stdout, stderr });
        });
      });

    const cli = await run(['autotune', INDEX, '--wait']);
    assert.equal(cli.code, 0, `autotune --wait succeeds\n${cli.stdout}\n${cli.stderr}`);
    const jobId = /^autotune job (\S+) queued$/m.exec(cli.stderr)?.[1];
    assert.ok(jobId, cli.stderr);
    assert.match(cli.stderr, /100%/, `the progress reaches 100 %\n${cli.stderr}`);
    const { result } = await completed(`/jobs/autotune/${encodeURIComponent(jobId)}`);

    const lines = cli.stdout.trimEnd().split('\n');
    assert.match(lines[0]!, /^config\s+recall\s+p50 ms\s+p95 ms\s+build s\s+best$/, `every column has a header\n${cli.stdout}`);
    assert.match(lines[1]!, /^-+( +-+){5}$/, cli.stdout);
    const rows = lines.slice(2, 9);
    const rowRe = /^(m\d+-efc\d+-efs\d+)\s+(\d\.\d{4})\s+(\d+\.\d{3})\s+(\d+\.\d{3})\s+(\d+\.\d{2})(\s+winner)?$/;
    const parsed = rows.map((line) => {
      const m = rowRe.exec(line);
      assert.ok(m, `a trial row: "${line}"\n${cli.stdout}`);
      return { config: m[1]!, recall: m[2]!, p50: m[3]!, winner: m[6] !== undefined };
    });
    assert.deepEqual(parsed.map((r) => r.config).sort(), DEFAULT_GRID.map(configKey).sort());
    assert.deepEqual(parsed.map((r) => r.recall), result.trials.map((t: TrialSummary) => t.recall.toFixed(4)), 'the recalls are the job\'s');
    assert.deepEqual(parsed.filter((r) => r.winner).map((r) => r.config), [configKey(result.winner.config)], 'one row, the winner\'s, is marked');
    assert.equal(lines[9], `eval set ${result.evalset}`);
    assert.equal(lines[10], `promoted: yes (index ${INDEX} now serves generation ${result.generation}): ${result.reason}`);
    assert.equal(lines.length, 11, cli.stdout);
    assert.deepEqual((await promotion()).current.config, result.winner.config);

    const nothing = await run(['autotune', INDEX, '--grid', JSON.stringify([TINY]), '--min-recall', '1', '--wait']);
    assert.equal(nothing.code, 0, nothing.stderr);
    assert.match(nothing.stdout, /^m4-efc10-efs10\s+0\.\d{4}\s+.*\swinner$/m, nothing.stdout);
    assert.match(nothing.stdout, /^promoted: no: the best recall@10 was 0\.\d{3} \(m4-efc10-efs10\), below min_recall 1: nothing promoted$/m, nothing.stdout);

    const failing = await run(['autotune', 'no_such_index', '--wait']);
    assert.equal(failing.code, 1, failing.stderr);
    assert.match(failing.stderr, /^error 400: index "no_such_index" does not exist\. Indexes: .*tune_idx/, 'refused at enqueue: ' + failing.stderr);
    const refused = await run(['autotune', INDEX, '--grid', JSON.stringify([{ ...TINY, m: 3 }])]);
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, /^error 400: .*m 3 is below the minimum 4/, refused.stderr);
    const queued = await run(['autotune', INDEX, '--grid', JSON.stringify([TINY]), '--min-recall', '1']);
    assert.equal(queued.code, 0, queued.stderr);
    assert.match(queued.stdout, /^\S+\n$/, 'without --wait: the job id alone');
    await completed(`/jobs/autotune/${encodeURIComponent(queued.stdout.trim())}`);
    for (const args of [['autotune'], ['autotune', INDEX, '--min-recall', '2'], ['autotune', INDEX, '--grid', '{'], ['autotune', INDEX, '--k', 'ten']]) {
      const bad = await run(args);
      assert.equal(bad.code, 2, `lakehouse ${args.join(' ')}: ${bad.stderr}`);
      assert.match(bad.stderr, /Run `lakehouse autotune --help` for usage/);
    }
    const help = await run(['autotune', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^Usage: lakehouse autotune INDEX /);
    assert.match((await run(['--help'])).stdout, /^  autotune\s+try HNSW configs/m);
  });
});
