/**
 * One writer per index generation (SECURITY.md): embed, refresh and promote jobs of one index
 * hold its generation lease (shared/vectors/index/generation-lease.ts) from plan to commit.
 * Real Redis, real BullMQ workers (ingest sandboxed, embed and refresh in this process), the
 * offline `local` embedder, small shards so every job fans out.
 *
 * - a burst: refreshes and an embed of one index started at once after distinct appends all
 *   complete (none fails: no id collision, no ENOENT from pruning), each that did work reports a
 *   distinct generation, and the final generation holds every document once;
 * - appends interleaved with the jobs: every refresh has its own rows, so each commits a
 *   generation of its own, reported in its result, and nothing is lost;
 * - a job that finds the lease held parks itself as delayed (no attempt used) and completes once
 *   it is free; the lease of a job that is gone is broken; a promotion meeting a busy index is a 409.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Job, Queue } from 'bullmq';
import type { Producer } from '../../queues/producer.ts';
import { indexLeaseKey } from '../../shared/catalog/lock-keys.ts';
import { ConflictError } from '../../shared/errors.ts';
import { jobHolder, tryLease, withProcessLease } from '../../shared/vectors/index/generation-lease.ts';
import { readIndexManifest } from '../../shared/vectors/index/index-manifest.ts';
import { DataRoot } from '../../shared/storage/data-root.ts';
import { workerContext } from '../../workers/context.ts';
import { startWorkers, type RunningWorkers } from '../../workers/runner.ts';
import { sqlString, withDuckDB } from '../helpers/duckdb.ts';
import { csvText, testEnv, waitFor, type TestEnv } from '../helpers/env.ts';
import { silentLog, startProducer } from '../helpers/jobs.ts';

const DATASET = 'race_notes';
const INDEX = 'race_idx';

const WORDS = ['amber', 'birch', 'cobalt', 'dune', 'ember', 'fjord', 'granite', 'harbor', 'iris', 'juniper', 'kelp', 'lagoon', 'meadow', 'nectar', 'orchid', 'pebble'];
const docText = (n: number) => `Note ${n} is about ${WORDS[n % WORDS.length]} and ${WORDS[(n * 7 + 3) % WORDS.length]} in season ${n}.`;

const ENV_EXTRA = {
  LAKEHOUSE_EMBED_SHARD_CHUNKS: '2', // every job fans out into several shard children
  LAKEHOUSE_EMBED_THREADS: '1',
  LAKEHOUSE_INDEX_LEASE_WAIT_MS: '100', // waiters park themselves as delayed jobs quickly…
  LAKEHOUSE_INDEX_LEASE_RETRY_MS: '150', // …and come back soon
};

let env: TestEnv;
let workers: RunningWorkers;
let producer: Producer;
let refreshQ: Queue;
let embedQ: Queue;
let nextDoc = 0;
/** Every document id the dataset holds. */
const allDocs = new Set<string>();

async function append(rows: number, mode: 'append' | 'replace' = 'append'): Promise<void> {
  const ids = Array.from({ length: rows }, () => nextDoc++);
  const name = `batch-${ids[0]}.csv`;
  await fs.writeFile(path.join(env.uploadsDir, name), csvText([['id', 'body'], ...ids.map((n) => [`d${n}`, docText(n)])]));
  const job = await producer.addPayload('ingest', { dataset: DATASET, source: { kind: 'upload', path: `staging/uploads/${name}` }, mode, format: 'csv' });
  await completed(producer.queue('ingest'), job.id!);
  for (const n of ids) allDocs.add(`d${n}`);
}

async function completed(queue: Queue, id: string, timeoutMs = 120_000): Promise<Job> {
  await waitFor(async () => ['completed', 'failed'].includes(await queue.getJobState(id)), { timeoutMs, intervalMs: 50, what: `${queue.name} job ${id} to finish` });
  const job = (await queue.getJob(id))!;
  assert.equal(job.failedReason, undefined, `${queue.name} job ${id} failed: ${job.failedReason}`);
  return job;
}

const refresh = () => producer.addPayload('refresh', { index: INDEX });
const embed = () => producer.addPayload('embed', { index: INDEX, dataset: DATASET, id_column: 'id', text_column: 'body' });

/** Doc ids of the live labels of the current generation (labels.parquet minus deleted.parquet), with duplicates. */
async function liveDocs(): Promise<{ generation: number; docs: string[] }> {
  const m = (await readIndexManifest(new DataRoot(env.dataDir), INDEX))!;
  const dir = path.join(env.dataDir, 'indexes', INDEX, `gen-${m.generation}`);
  const deleted = path.join(dir, 'deleted.parquet');
  const hasDeleted = await fs.access(deleted).then(() => true, () => false);
  const rows = await withDuckDB((db) =>
    db.all(
      `SELECT doc_id FROM read_parquet(${sqlString(path.join(dir, 'labels.parquet'))}) l` +
        (hasDeleted ? ` WHERE l.label NOT IN (SELECT label FROM read_parquet(${sqlString(deleted)}))` : ''),
    ),
  );
  return { generation: m.generation!, docs: rows.map((r) => String(r['doc_id'])) };
}

async function assertEveryDocOnce(): Promise<number> {
  const { generation, docs } = await liveDocs();
  assert.equal(docs.length, new Set(docs).size, `generation ${generation} holds no document twice`);
  assert.deepEqual(new Set(docs), allDocs, `generation ${generation} holds every document (no vector lost)`);
  return generation;
}

describe('index generation lease', { timeout: 600_000 }, () => {
  const saved = new Map(Object.keys(ENV_EXTRA).map((k) => [k, process.env[k]]));

  before(async () => {
    Object.assign(process.env, ENV_EXTRA);
    env = await testEnv();
    env.defer(async () => (await workerContext()).redis.disconnect());
    producer = await startProducer(env);
    refreshQ = producer.queue('refresh');
    embedQ = producer.queue('embed');
    workers = await startWorkers({ config: env.config, queues: ['ingest', 'embed', 'refresh'], concurrency: 3, log: silentLog });
    env.defer(() => workers.close(5_000));
    await append(6, 'replace');
    const first = await completed(embedQ, (await embed()).id!);
    assert.equal(first.returnvalue.generation, 1);
  });

  after(async () => {
    try {
      await env?.cleanup();
    } finally {
      for (const [k, v] of saved) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });

  it('a burst of refreshes and an embed of one index: all complete, distinct generations, every document once', async () => {
    await append(3);
    await append(3);
    const before = (await readIndexManifest(new DataRoot(env.dataDir), INDEX))!.generation!;
    const jobs = [await refresh(), await refresh(), await embed(), await refresh(), await refresh()];
    const done = await Promise.all(jobs.map((j) => completed(j.queueName === 'embed' ? embedQ : refreshQ, j.id!)));
    // the ones that built something (an embed always does; a refresh when it had rows to add)
    const builders = done.filter((j) => j.queueName === 'embed' || j.returnvalue.embedded_chunks > 0 || j.returnvalue.deleted > 0);
    const gens = builders.map((j) => j.returnvalue.generation as number);
    assert.ok(builders.length >= 2, `the embed and at least the first refresh built a generation: ${JSON.stringify(done.map((j) => j.returnvalue))}`);
    assert.equal(new Set(gens).size, gens.length, `each builder names its own generation: ${gens}`);
    for (const g of gens) assert.ok(g > before, `generation ${g} is new (was ${before})`);
    // commits happened one after another: finishing order is generation order
    const byFinish = [...builders].sort((a, b) => a.finishedOn! - b.finishedOn!).map((j) => j.returnvalue.generation);
    assert.deepEqual(byFinish, [...gens].sort((a, b) => a - b));
    const final = await assertEveryDocOnce();
    assert.equal(final, Math.max(...gens), 'the last committed generation is current');
    // a refresh that found nothing left to do names the generation it found current, a committed one
    for (const j of done.filter((d) => !builders.includes(d))) assert.ok(gens.includes(j.returnvalue.generation) || j.returnvalue.generation === before);
  });

  it('appends interleaved with queued refreshes and an embed: each job commits a generation of its own, none lost', async () => {
    const jobs: Job[] = [];
    for (const kind of ['refresh', 'refresh', 'embed', 'refresh'] as const) {
      await append(2 + jobs.length); // rows the previous job has not planned on
      const job = kind === 'embed' ? await embed() : await refresh();
      jobs.push(job);
      const queue = kind === 'embed' ? embedQ : refreshQ;
      // it has taken the lease and planned (or finished): its rows are fixed before the next append
      await waitFor(async () => {
        const j = await queue.getJob(job.id!);
        return j?.data.step === 'build' || (await queue.getJobState(job.id!)) === 'completed';
      }, { timeoutMs: 120_000, what: `${kind} ${job.id} to plan` });
    }
    const done = await Promise.all(jobs.map((j) => completed(j.queueName === 'embed' ? embedQ : refreshQ, j.id!)));
    const gens = done.map((j) => j.returnvalue.generation as number);
    assert.equal(new Set(gens).size, gens.length, `every job committed its own generation: ${gens}`);
    assert.deepEqual(gens, [...gens].sort((a, b) => a - b), 'in the order they took the lease');
    for (const j of done.filter((d) => d.queueName === 'refresh')) assert.ok(j.returnvalue.embedded_chunks > 0, `refresh ${j.id} embedded its own rows`);
    const m = (await readIndexManifest(new DataRoot(env.dataDir), INDEX))!;
    // each listed generation that one of these jobs reported reads that job's own files
    for (const j of done) {
      const g = m.generations.find((x) => x.id === j.returnvalue.generation);
      if (!g) continue; // fell off the kept list
      const tag = `${j.queueName}-${j.id}`;
      assert.ok([...g.vectors_files, ...g.tombstone_files].some((f) => path.basename(f).startsWith(`part-${tag}`)), `generation ${g.id} holds files of ${tag}`);
    }
    assert.equal(await assertEveryDocOnce(), gens.at(-1));
  });

  it('a job finding the lease held waits as a delayed job (no attempt used) and completes once it is free', async () => {
    await append(2);
    const key = indexLeaseKey(env.config, INDEX);
    const blocker = JSON.stringify({ token: 'test-blocker' });
    assert.deepEqual(await tryLease(env.redis, key, blocker, 600_000), { acquired: true });
    const job = await refresh();
    try {
      await waitFor(async () => (await refreshQ.getJobState(job.id!)) === 'delayed', { timeoutMs: 30_000, what: 'the refresh to park itself as delayed' });
      // a promotion meeting the busy index is refused with a 409, not left hanging
      await assert.rejects(withProcessLease(env.redis, key, async () => 'ran', { waitMs: 50, ttlMs: 5_000, index: INDEX }), (err: unknown) => err instanceof ConflictError && /is busy/.test((err as Error).message));
      const parked = (await refreshQ.getJob(job.id!))!;
      assert.equal(parked.attemptsMade, 0, 'waiting for the lease is not a failed attempt');
      assert.equal(typeof parked.data.lease_waiting_since, 'number');
    } finally {
      await env.redis.del(key);
    }
    const done = await completed(refreshQ, job.id!, 60_000);
    assert.equal(done.attemptsMade, 1, 'completed on its first attempt');
    assert.ok(done.returnvalue.embedded_chunks > 0);
    assert.equal(await assertEveryDocOnce(), done.returnvalue.generation);
    assert.equal(await env.redis.exists(key), 0, 'the lease is free again');
  });

  it('the lease of a job that is gone or failed is broken by the next writer', async () => {
    await append(1);
    const key = indexLeaseKey(env.config, INDEX);
    const ghost = jobHolder({ queueQualifiedName: `${env.prefix}:refresh`, id: 'no-such-job' });
    await env.redis.set(key, ghost);
    const done = await completed(refreshQ, (await refresh()).id!, 60_000);
    assert.ok(done.returnvalue.embedded_chunks > 0);
    assert.equal(await assertEveryDocOnce(), done.returnvalue.generation);
    // an alive holder (a job still waiting) is not broken
    const waiting = await refreshQ.add('parked', { index: INDEX }, { delay: 600_000 });
    try {
      await env.redis.set(key, jobHolder(waiting));
      const attempt = await tryLease(env.redis, key, JSON.stringify({ token: 'x' }), 1_000);
      assert.equal(attempt.acquired, false);
    } finally {
      await waiting.remove();
      await env.redis.del(key);
    }
  });
});
