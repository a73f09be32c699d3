/**
 * Job progress as a person sees it (issue 9, items 2 and 5), against real workers, the real API
 * and Redis: BullMQ holds a number 0–100 (what Bull Board draws as a bar), the detail (phase,
 * counts, rates, ETA) reaches GET /jobs/:queue/:id and the event stream, a flow parent's duration
 * counts from its first start, and the CLI off a terminal prints one line per state change.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Queue, QueueEvents } from 'bullmq';
import { startApi, type RunningApi } from '../../api/server.ts';
import { render } from '../../bin/commands/autotune.ts';
import { JobProgressStore, metaOf, PROGRESS_PHASES } from '../../queues/job-progress-store.ts';
import { loadConfig } from '../../shared/config.ts';
import { CliProcess } from '../helpers/cli-process.ts';
import { csvText, testEnv, waitFor, type CsvValue, type TestEnv } from '../helpers/env.ts';
import { call, completedJob, finishedJob, okJson, openSse } from '../helpers/http.ts';
import { silentLog, startTestWorkers } from '../helpers/jobs.ts';

const ADMIN = 'admin-key-progress-4f1a7c2e9b';
const WRITER = 'writer-key-progress-8d3b6e0a5c';
const READER = 'reader-key-progress-1e9c4a7f2d';
const BIN = path.resolve(import.meta.dirname, '../../bin/lakehouse.js');
const SHARD_CHUNKS = 2;
const DOCS = 24;

let env: TestEnv;
let api: RunningApi;
let ingestQueue: Queue;
let embedQueue: Queue;
const savedEnv = new Map<string, string | undefined>();

const get = (key: string, p: string) => call(api.url, p, { key });
const post = (key: string, p: string, body: unknown) => call(api.url, p, { key, method: 'POST', body });
const basic = { basic: { user: 'ops', password: ADMIN } };

function rows(n: number): CsvValue[][] {
  const out: CsvValue[][] = [['id', 'amount', 'body']];
  for (let i = 1; i <= n; i++) out.push([i, (i * 37) % 1000, `document number ${i} talks about topic ${i % 7} and nothing secret`]);
  return out;
}

async function stage(name: string, data: CsvValue[][]): Promise<string> {
  await fs.writeFile(path.join(env.uploadsDir, name), csvText(data));
  return `staging/uploads/${name}`;
}

/** Every progress value BullMQ publishes for one job, as published (before any API touches it). */
async function recordProgress(queue: string, id: () => string): Promise<{ values: unknown[]; close: () => Promise<void> }> {
  const qe = new QueueEvents(queue, { connection: { url: env.config.redisUrl }, prefix: env.prefix });
  const values: unknown[] = [];
  qe.on('progress', ({ jobId, data }) => jobId === id() && values.push(data));
  await qe.waitUntilReady();
  return { values, close: () => qe.close() };
}

/** Keys a progress detail may hold: counts, rates, seconds and a phase word; never a value of the data. */
function assertCleanDetail(detail: Record<string, unknown>, what: string): void {
  for (const [k, v] of Object.entries(detail)) {
    assert.match(k, /^[a-z][a-z0-9_]*$/, `${what}: key ${k}`);
    if (k === 'phase') assert.ok(PROGRESS_PHASES.has(String(v)), `${what}: phase ${String(v)}`);
    else assert.equal(typeof v, 'number', `${what}: ${k}=${JSON.stringify(v)} is a number`);
  }
  assert.ok(!JSON.stringify(detail).includes('secret'), `${what}: no text of the rows`);
}

describe('job progress: a number for Bull Board, the detail beside it', { timeout: 240_000 }, () => {
  before(async () => {
    for (const [k, v] of Object.entries({ LAKEHOUSE_EMBED_SHARD_CHUNKS: String(SHARD_CHUNKS), LAKEHOUSE_EMBED_THREADS: '1' })) {
      savedEnv.set(k, process.env[k]);
      process.env[k] = v;
    }
    env = await testEnv();
    const config = loadConfig({ ...process.env, LAKEHOUSE_API_KEYS: `${ADMIN}:admin,${WRITER}:writer,${READER}:reader`, LAKEHOUSE_HOST: '127.0.0.1', PORT: '0' });
    api = await startApi(config, silentLog);
    env.defer(() => api.close());
    await startTestWorkers(env, ['ingest', 'embed'], 1);
    ingestQueue = new Queue('ingest', { connection: env.redis, prefix: env.prefix });
    embedQueue = new Queue('embed', { connection: env.redis, prefix: env.prefix });
    env.defer(() => ingestQueue.close());
    env.defer(() => embedQueue.close());
  });

  after(async () => {
    await env?.cleanup();
    for (const [k, v] of savedEnv) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });

  it('an ingest: BullMQ holds numbers 0–100 and 100 at the end; the view and the stream carry the detail', async () => {
    let jobId = '';
    const published = await recordProgress('ingest', () => jobId);
    try {
      const rel = await stage('people.csv', rows(3_000));
      // delayed, so the event stream is open before the job runs
      const enq = okJson(await post(WRITER, '/jobs/ingest?delay_ms=1000', { dataset: 'people', source: { kind: 'upload', path: rel } }), 'enqueue', 202);
      jobId = enq.id;
      const sse = await openSse(api.url, `/jobs/ingest/${jobId}/events`, { key: READER, timeoutMs: 60_000 });
      const events = await sse.finished;
      await completedJob((p) => get(WRITER, p), `/jobs/ingest/${jobId}`);

      assert.ok(published.values.length >= 2, `progress published: ${JSON.stringify(published.values)}`);
      for (const v of published.values) assert.ok(typeof v === 'number' && v >= 0 && v <= 100, `BullMQ progress ${JSON.stringify(v)} is a number 0–100`);
      const raw = await env.redis.hget(`${env.prefix}:ingest:${jobId}`, 'progress');
      assert.equal(raw, '100', 'the stored progress of the completed job');

      const progress = events.filter((e) => e.event === 'progress');
      assert.ok(progress.length >= 2, events.map((e) => e.event).join(','));
      for (const e of progress) {
        assert.equal(typeof e.data.percent, 'number');
        assert.ok(e.data.percent >= 0 && e.data.percent <= 100);
        assertCleanDetail(e.data.detail, 'SSE detail');
      }
      assert.ok(progress.some((e) => typeof e.data.detail.phase === 'string'), 'the stream names the phase');
      assert.equal(progress.at(-1)!.data.percent, 100);
      assert.equal(events.at(-1)!.event, 'completed');

      for (const key of [READER, WRITER]) {
        const view = okJson(await get(key, `/jobs/ingest/${jobId}`), 'job view');
        assert.equal(view.progress, 100);
        assert.equal(typeof view.progress_detail, 'object', JSON.stringify(view));
        assertCleanDetail(view.progress_detail, 'view detail');
        if (key === READER) assert.equal(view.data, undefined, 'readers get no payload');
      }
      const list = okJson(await get(READER, '/jobs/ingest?state=completed'), 'list');
      const listed = list.jobs.find((j: { id: string }) => j.id === jobId);
      assert.equal(listed.progress, 100);
      assert.equal(typeof listed.progress_detail, 'object');

      // Bull Board's own API: the number it draws a bar from
      const board = okJson(await call(api.url, '/admin/queues/api/queues?activeQueue=ingest&status=completed&page=1&jobsPerPage=100', basic), 'board');
      const onBoard = board.queues.find((q: { name: string }) => q.name === 'ingest').jobs.find((j: { id: string }) => j.id === jobId);
      assert.equal(onBoard.progress, 100, `board job ${JSON.stringify(onBoard)}`);
      const logs = okJson(await call(api.url, `/admin/queues/api/queues/ingest/${jobId}/logs`, basic), 'board logs');
      assert.ok(JSON.stringify(logs).includes('convert'), `the phases are in the job's log: ${JSON.stringify(logs)}`);
    } finally {
      await published.close();
    }
  });

  it('an embed (a flow parent): numeric progress on the board while it runs, rates and ETA on the stream, duration from its first start', async () => {
    const rel = await stage('docs.csv', rows(DOCS));
    const docs = okJson(await post(WRITER, '/jobs/ingest', { dataset: 'docs', source: { kind: 'upload', path: rel } }), 'ingest docs', 202);
    await completedJob((p) => get(WRITER, p), `/jobs/ingest/${docs.id}`);
    let parentId = '';
    const published = await recordProgress('embed', () => parentId);
    try {
      const enq = okJson(await post(WRITER, '/jobs/embed?delay_ms=500', { index: 'docs_idx', dataset: 'docs', id_column: 'id', text_column: 'body' }), 'embed', 202);
      parentId = enq.id;
      const sse = await openSse(api.url, `/jobs/embed/${parentId}/events`, { key: READER, timeoutMs: 180_000 });
      // the board while the shards run: the parent's progress is a number strictly between 0 and 100
      const running = await waitFor(
        async () => {
          const b = await call(api.url, '/admin/queues/api/queues?activeQueue=embed&status=waiting-children&page=1&jobsPerPage=100', basic);
          const job = b.json?.queues?.find((q: { name: string }) => q.name === 'embed')?.jobs?.find((j: { id: string }) => j.id === parentId);
          return job && typeof job.progress === 'number' && job.progress > 0 && job.progress < 100 ? job : undefined;
        },
        { timeoutMs: 120_000, intervalMs: 20, what: 'the embed parent on the board with a partial numeric progress' },
      );
      assert.equal(typeof running.progress, 'number');
      const events = await sse.finished;
      const done = await completedJob((p) => get(READER, p), `/jobs/embed/${parentId}`, 120_000);

      for (const v of published.values) assert.ok(typeof v === 'number' && v >= 0 && v <= 100, `BullMQ progress ${JSON.stringify(v)}`);
      const progress = events.filter((e) => e.event === 'progress');
      const percents = progress.map((e) => e.data.percent as number);
      assert.ok(progress.some((e) => Object.keys(e.data.detail).some((k) => k.endsWith('_per_s')) && typeof e.data.detail.eta_s === 'number'),
        `a progress event with a rate and an ETA: ${JSON.stringify(progress.map((e) => e.data))}`);
      assert.equal(percents.at(-1), 100);
      for (const e of progress) assertCleanDetail(e.data.detail, 'embed SSE detail');

      // duration: from the first start, covering every shard
      assert.equal(done.progress, 100);
      assert.equal(done.progress_detail.phase, 'done');
      const shards = Math.ceil(DOCS / SHARD_CHUNKS);
      const children = await Promise.all(Array.from({ length: shards }, (_, s) => embedQueue.getJob(`embed-${parentId}-shard-${s}`)));
      assert.ok(children.every(Boolean), 'every shard job is kept');
      const parent = (await embedQueue.getJob(parentId))!;
      const startedAt = Date.parse(done.started_at);
      assert.ok(Number.isFinite(startedAt), `started_at ${done.started_at}`);
      assert.equal(done.duration_ms, parent.finishedOn! - startedAt);
      assert.ok(parent.processedOn! > startedAt, 'BullMQ restarted the parent\'s processedOn when it resumed; the view did not');
      assert.equal(Date.parse(done.processed_at), parent.processedOn);
      for (const c of children) {
        assert.ok(startedAt <= c!.timestamp, 'the parent started before it added its shards');
        assert.ok(done.duration_ms >= c!.finishedOn! - startedAt, 'the duration covers every shard');
      }
      const childTime = children.reduce((sum, c) => sum + (c!.finishedOn! - c!.processedOn!), 0);
      assert.ok(done.duration_ms >= childTime, `duration ${done.duration_ms} ≥ the shards' own time ${childTime} (they ran one at a time)`);
    } finally {
      await published.close();
    }
  });

  it('the CLI off a terminal: one line per state change, in order; `jobs QUEUE` lists every state', async () => {
    const cliEnv = { ...process.env, LAKEHOUSE_API_URL: api.url, LAKEHOUSE_API_KEY: WRITER };
    const run = (args: string[]) => new CliProcess(spawn(process.execPath, [BIN, ...args], { env: cliEnv, stdio: ['ignore', 'pipe', 'pipe'] })).exit(90_000);
    const file = path.join(env.dataDir, 'cli-people.csv');
    await fs.writeFile(file, csvText(rows(5_000)));
    const ingest = await run(['ingest', file, '--dataset', 'cli_people', '--wait']);
    assert.equal(ingest.code, 0, ingest.stderr);
    const id = /^ingest job (\S+) queued$/m.exec(ingest.stderr)?.[1];
    assert.ok(id, ingest.stderr);
    const lines = ingest.stderr.trimEnd().split('\n');
    assert.equal(lines[0], `ingest job ${id} queued`);
    const steps = lines.slice(1).map((l) => {
      const m = new RegExp(`^ingest ${id} (\\S+)`).exec(l);
      assert.ok(m, `every line is about the job: ${JSON.stringify(l)}\n${ingest.stderr}`);
      return m[1]!;
    });
    assert.equal(steps.at(-1), 'completed', ingest.stderr);
    assert.equal(steps.at(-2), '100%', ingest.stderr);
    for (let i = 1; i < steps.length; i++) assert.notEqual(steps[i], steps[i - 1], `no line repeats the one before\n${ingest.stderr}`);
    const percents = steps.filter((s) => s.endsWith('%')).map((s) => Number(s.slice(0, -1)));
    percents.forEach((p, i) => i > 0 && assert.ok(p > percents[i - 1]!, `percents only grow\n${ingest.stderr}`));
    const firstPercent = steps.findIndex((s) => s.endsWith('%'));
    if (percents[0]! < 100) assert.ok(steps.indexOf('active') !== -1 && steps.indexOf('active') < firstPercent, `active comes before the first percent\n${ingest.stderr}`);
    assert.equal(steps.filter((s) => !s.endsWith('%')).filter((s) => ['completed', 'failed'].includes(s)).length, 1, 'one final state');

    // a failed job beside the completed ones: the default listing shows both states
    const bad = okJson(await post(WRITER, '/jobs/ingest', { dataset: 'gone', source: { kind: 'upload', path: 'staging/uploads/gone.csv' } }), 'bad ingest', 202);
    const failed = await finishedJob((p) => get(WRITER, p), `/jobs/ingest/${bad.id}`);
    assert.equal(failed.state, 'failed');
    const jobs = await run(['jobs', 'ingest']);
    assert.equal(jobs.code, 0, jobs.stderr);
    const row = (jobId: string) => jobs.stdout.split('\n').find((l) => l.startsWith(`${jobId} `));
    assert.match(row(id) ?? '', /\bcompleted\b.*\b100%/, jobs.stdout);
    assert.match(row(bad.id) ?? '', /\bfailed\b/, jobs.stdout);
    assert.match(jobs.stdout, /\d+ completed, \d+ failed|\d+ failed/, jobs.stdout);
  });

  it('a job reusing a removed job\'s id never shows that job\'s detail or first start; the detail holds no text of the data', async () => {
    const store = new JobProgressStore(env.redis, env.prefix);
    const old = { queueName: 'ingest', id: 'reused-id', timestamp: 1_000 };
    await store.recordFirstStart(old, 1_500);
    await store.writeDetail(old, { phase: 'convert', rows_done: 5, note: 'Ada Lovelace, 36', phase_text: 'x', 'Bad-Key': 3, amount: Number.NaN });
    const seen = await store.read('ingest', 'reused-id');
    assert.deepEqual(metaOf(seen, 1_000), { detail: { phase: 'convert', rows_done: 5 }, firstStartedAt: 1_500, jobCreatedAt: 1_000 }, 'only counts and the phase are kept');
    assert.deepEqual(metaOf(seen, 2_000), {}, 'a later job with the same id does not see it');
    await store.writeDetail({ ...old, timestamp: 2_000 }, { phase: 'fetch', rows: 1 });
    assert.deepEqual(metaOf(await store.read('ingest', 'reused-id'), 2_000), { detail: { phase: 'fetch', rows: 1 }, jobCreatedAt: 2_000 }, 'the new job starts a fresh hash');
    for (const phase of ['Ada Lovelace', 'ada lovelace', 'convert; DROP', 'convert ', 'x'.repeat(60), 'süß', '']) {
      await store.writeDetail({ ...old, timestamp: 2_000 }, { phase, rows: 1 });
      assert.deepEqual((await store.read('ingest', 'reused-id')).detail, { rows: 1 }, `phase ${JSON.stringify(phase)} is not a phase word`);
    }
  });

  it('the autotune table heads its last column', () => {
    const trial = { trial_id: 't1', config: { m: 16, ef_construction: 100, ef_search: 50 }, recall: 0.9, p50_ms: 1, p95_ms: 2, build_seconds: 3 };
    const text = render({ index: 'i', evalset: 'e', trials: [trial], winner: trial, promoted: true, reason: 'best recall', generation: 2 } as Parameters<typeof render>[0]);
    const [header, , first] = text.split('\n');
    assert.match(first!, /winner\s*$/);
    const lastColumn = first!.indexOf('winner');
    assert.notEqual(header!.slice(lastColumn).trim(), '', `the column of "winner" has a header\n${text}`);
  });
});
