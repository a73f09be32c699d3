/**
 * Two real `lakehouse worker` processes writing one dataset at once. The per-dataset writer lock
 * (catalog.commitPart under entity-lock.ts) must serialise their manifest updates: every append
 * lands exactly once, in some order, and a replace race leaves one live part and no orphan file.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import type { Job, Queue } from 'bullmq';
import { datasetPartName } from '../../shared/catalog/catalog.ts';
import { readManifest } from '../../shared/catalog/manifest.ts';
import { DataRoot } from '../../shared/storage/data-root.ts';
import { sqlString, withDuckDB } from '../helpers/duckdb.ts';
import { exists, testEnv, waitFor, type TestEnv } from '../helpers/env.ts';
import { startProducer } from '../helpers/jobs.ts';
import { sandboxChildren, startWorkerProcess, type WorkerProcess } from '../helpers/processes.ts';

interface Staged {
  rel: string;
  firstId: number;
  rows: number;
}

/** A CSV of ids firstId… (so every file's rows are distinct, and so are its bytes), staged like an upload. */
async function stageRange(env: TestEnv, name: string, firstId: number, rows: number): Promise<Staged> {
  const file = path.join(env.uploadsDir, name);
  await withDuckDB((db) =>
    db.all(
      `COPY (SELECT i AS id, i % 97 AS qty, (i % 1000) / 10 AS amount, 'note ' || i AS note ` +
        `FROM range(${firstId}, ${firstId + rows}) t(i)) TO ${sqlString(file)} (FORMAT csv, HEADER)`,
    ),
  );
  return { rel: `staging/uploads/${name}`, firstId, rows };
}

/** Waits until every job has finished; fails naming the unfinished ones and the workers' output. */
async function waitAllFinished(queue: Queue, ids: string[], workers: WorkerProcess[], timeoutMs: number): Promise<Job[]> {
  let states: string[] = [];
  try {
    await waitFor(
      async () => {
        states = await Promise.all(ids.map((id) => queue.getJobState(id)));
        return states.every((s) => s === 'completed' || s === 'failed');
      },
      { timeoutMs, intervalMs: 100, what: 'all jobs to finish' },
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}; states ${JSON.stringify(states)}\n${workers.map((w) => w.output).join('\n')}`);
  }
  const jobs = await Promise.all(ids.map((id) => queue.getJob(id)));
  const failed = jobs.filter((j) => j!.failedReason);
  assert.deepEqual(
    failed.map((j) => `${j!.id}: ${j!.failedReason}`),
    [],
    `every job completed\n${workers.map((w) => w.output).join('\n')}`,
  );
  return jobs.map((j) => j!);
}

/** count, distinct ids and sum of ids over exactly these Parquet files, read by a fresh DuckDB. */
async function parquetIds(files: string[]): Promise<{ n: number; distinct: number; sum: bigint }> {
  return withDuckDB(async (db) => {
    const [r] = await db.all(
      `SELECT count(*) AS n, count(DISTINCT id) AS d, sum(id)::BIGINT AS s FROM read_parquet([${files.map(sqlString).join(', ')}])`,
    );
    return { n: Number(r!['n']), distinct: Number(r!['d']), sum: BigInt(r!['s'] as bigint) };
  });
}

/** The most jobs that were active at one moment, from BullMQ's processedOn/finishedOn (one host, one clock). */
function peakActive(jobs: Job[]): number {
  const edges = jobs.flatMap((j) => [
    { at: j.processedOn!, d: 1 },
    { at: j.finishedOn!, d: -1 },
  ]);
  edges.sort((a, b) => a.at - b.at || a.d - b.d); // an end and a start at the same ms do not overlap
  let now = 0;
  let peak = 0;
  for (const e of edges) peak = Math.max(peak, (now += e.d));
  return peak;
}

/** Sum of firstId … firstId+rows-1. */
const idSum = (s: Staged) => (BigInt(s.rows) * BigInt(2 * s.firstId + s.rows - 1)) / 2n;

test('two worker processes appending 10 files to one dataset at once: every part listed exactly once', { timeout: 120_000 }, async (t) => {
  const env = await testEnv();
  t.after(() => env.cleanup());
  const DATASET = 'shared_sales';
  const FILES = 10;
  const staged = await Promise.all(
    Array.from({ length: FILES }, (_, i) => stageRange(env, `f${i}.csv`, (i + 1) * 1_000_000, 60_000 + i * 1_000)),
  );
  const producer = await startProducer(env);
  const queue = producer.queue('ingest');
  const workers = await Promise.all([startWorkerProcess(env, 'worker-a'), startWorkerProcess(env, 'worker-b')]);

  const jobs = await producer.addBulk(
    'ingest',
    staged.map((s) => ({ payload: { dataset: DATASET, source: { kind: 'upload', path: s.rel }, mode: 'append', format: 'csv' } })),
  );
  const ids = jobs.map((j) => j.id!);
  const done = await waitAllFinished(queue, ids, workers, 90_000);

  // Both processes took jobs: BullMQ forks a sandboxed processor child only to run a job, and
  // keeps it in its pool afterwards. (Jobs carry no worker identity: runner.ts gives its BullMQ
  // workers no `name`, so job.processedBy stays empty.)
  for (const w of workers) {
    const children = await sandboxChildren(w.pid);
    assert.ok(children.length >= 1 && children.length <= 2, `${w.label} ran jobs in 1–2 sandbox children, has ${children.length}\n${w.output}`);
  }
  // …and at the same time: each process runs at most 2 jobs at once, so 3 or more active together
  // means both were writing the dataset concurrently.
  const peak = peakActive(done);
  assert.ok(peak >= 3, `jobs of both processes overlapped (peak ${peak} active at once)`);

  const dir = new DataRoot(env.dataDir).datasetDir(DATASET);
  const manifest = await readManifest(dir);
  assert.ok(manifest, 'manifest written');
  assert.equal(manifest.parts.length, FILES, 'one part per job');
  assert.deepEqual(new Set(manifest.parts.map((p) => p.job_id)), new Set(ids), 'each job listed once');
  assert.equal(manifest.version, FILES, 'one version per commit');

  // The lock serialised the commits: each saw a distinct version, and the manifest lists the parts
  // in exactly that order. Two commits racing on one manifest would share a version and lose a part.
  const byVersion = [...done].sort((a, b) => a.returnvalue.version - b.returnvalue.version);
  assert.deepEqual(
    byVersion.map((j) => j.returnvalue.version),
    Array.from({ length: FILES }, (_, i) => i + 1),
    'commit versions 1..10, no duplicates',
  );
  assert.deepEqual(
    manifest.parts.map((p) => p.job_id),
    byVersion.map((j) => j.id),
    'parts in commit order',
  );
  let running = 0;
  for (const j of byVersion) {
    const s = staged[ids.indexOf(j.id!)]!;
    running += s.rows;
    assert.equal(j.returnvalue.rows, s.rows, `job ${j.id} rows`);
    assert.equal(j.returnvalue.dataset_rows, running, `job ${j.id} saw every earlier commit`);
    assert.equal(j.returnvalue.duplicate, false);
  }

  const expectedRows = staged.reduce((n, s) => n + s.rows, 0);
  assert.equal(manifest.rows, expectedRows, 'manifest.rows');
  assert.equal(manifest.parts.reduce((n, p) => n + p.rows, 0), expectedRows, 'sum of part rows');
  for (const p of manifest.parts) {
    const s = staged[ids.indexOf(p.job_id)]!;
    assert.equal(p.rows, s.rows, `part of ${p.job_id}`);
    assert.equal(p.file, datasetPartName(p.job_id));
    assert.equal((await fs.stat(path.join(dir, p.file))).size, p.bytes, `${p.file} exists with its listed size`);
  }
  assert.deepEqual(
    (await fs.readdir(path.join(dir, 'parts'))).sort(),
    manifest.parts.map((p) => path.basename(p.file)).sort(),
    'parts/ holds exactly the listed files: no unlisted Parquet, no temporary files',
  );

  const read = await parquetIds(manifest.parts.map((p) => path.join(dir, p.file)));
  assert.equal(read.n, expectedRows, 'count(*) over the listed files');
  assert.equal(read.distinct, expectedRows, 'no row twice');
  assert.equal(read.sum, staged.reduce((n, s) => n + idSum(s), 0n), 'exactly the rows of the ten files');

  assert.equal(await env.redis.exists(`${env.prefix}:lock:dataset:${DATASET}`), 0, 'writer lock released');
  for (const s of staged) assert.equal(await exists(path.join(env.dataDir, s.rel)), false, `${s.rel} removed after ingest`);
});

test('replace jobs racing on a new dataset: one live part, every superseded file gone', { timeout: 90_000 }, async (t) => {
  const env = await testEnv();
  t.after(() => env.cleanup());
  const DATASET = 'fresh_replace';
  // More than two, of about one size, so commits bunch up: two racing jobs rarely commit within
  // the same few milliseconds, eight often do.
  const JOBS = 8;
  const staged = await Promise.all(Array.from({ length: JOBS }, (_, i) => stageRange(env, `r${i}.csv`, (i + 1) * 1_000_000, 60_000 + i)));
  const producer = await startProducer(env);
  const queue = producer.queue('ingest');
  const workers = await Promise.all([startWorkerProcess(env, 'worker-a'), startWorkerProcess(env, 'worker-b')]);

  const jobs = await producer.addBulk(
    'ingest',
    staged.map((s) => ({ payload: { dataset: DATASET, source: { kind: 'upload', path: s.rel }, mode: 'replace', format: 'csv' } })),
  );
  const ids = jobs.map((j) => j.id!);
  const done = await waitAllFinished(queue, ids, workers, 60_000);

  // All committed, one after another: each replaced the one before.
  assert.deepEqual(
    done.map((j) => j.returnvalue.version).sort((a, b) => a - b),
    Array.from({ length: JOBS }, (_, i) => i + 1),
    'one commit each, distinct versions',
  );
  const winner = done.find((j) => j.returnvalue.version === JOBS)!;
  const losers = done.filter((j) => j !== winner);
  const won = staged[ids.indexOf(winner.id!)]!;

  const dir = new DataRoot(env.dataDir).datasetDir(DATASET);
  const manifest = await readManifest(dir);
  assert.ok(manifest, 'manifest written');
  assert.equal(manifest.version, JOBS);
  assert.equal(manifest.parts.length, 1, 'exactly one part');
  const [part] = manifest.parts;
  assert.equal(part!.job_id, winner.id, 'the last commit is the live one');
  assert.equal(manifest.rows, won.rows);
  assert.equal((await fs.stat(path.join(dir, part!.file))).size, part!.bytes, 'the live part file exists');
  for (const loser of losers) {
    assert.equal(loser.returnvalue.part, datasetPartName(loser.id!));
    assert.equal(await exists(path.join(dir, datasetPartName(loser.id!))), false, `the superseded part of ${loser.id} is deleted`);
  }
  assert.deepEqual(await fs.readdir(path.join(dir, 'parts')), [path.basename(part!.file)], 'nothing else in parts/');

  const read = await parquetIds([path.join(dir, part!.file)]);
  assert.equal(read.n, won.rows);
  assert.equal(read.distinct, won.rows);
  assert.equal(read.sum, idSum(won), 'only the winning file\'s rows');
});
