/**
 * A real `lakehouse worker` process SIGKILLed while DuckDB is writing a dataset's part: readers
 * must never see the partial part, and the job — recovered as stalled by another worker — must
 * land its rows exactly once. Plus the boundary a kill cannot be timed to hit: a crash after the
 * commit but before BullMQ heard of the completion, replayed as a retry with the same job id.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, test } from 'node:test';
import { datasetPartName, listDatasets, partFiles } from '../../shared/catalog/catalog.ts';
import { readManifest } from '../../shared/catalog/manifest.ts';
import { ingestSource } from '../../shared/ingest/ingest-source.ts';
import { QueryEngine } from '../../shared/sql/query-engine.ts';
import { Buckets } from '../../shared/storage/buckets.ts';
import { DataRoot } from '../../shared/storage/data-root.ts';
import { startWorkers } from '../../workers/runner.ts';
import { generateCsv, sqlString, withDuckDB } from '../helpers/duckdb.ts';
import { exists, testEnv, waitFor, type TestEnv } from '../helpers/env.ts';
import { assertNoSandboxChildrenLeft, silentLog, startProducer, waitForFinished } from '../helpers/jobs.ts';
import { isAlive, killIfAlive, sandboxChildren, startWorkerProcess } from '../helpers/processes.ts';

// The recovering worker runs in this process; its sandbox children must not outlive the file.
after(() => assertNoSandboxChildrenLeft());

/** Big enough that DuckDB spends about a second writing the part: a kill lands mid-write. */
const BIG_ROWS = 5_000_000;
const SEED_ROWS = 1_000;

async function stage(env: TestEnv, name: string, rows: number): Promise<string> {
  await generateCsv(path.join(env.uploadsDir, name), rows);
  return `staging/uploads/${name}`;
}

async function partsDirEntries(dir: string): Promise<string[]> {
  return fs.readdir(path.join(dir, 'parts')).catch(() => [] as string[]);
}

const isTemp = (name: string) => name.startsWith('.') && name.endsWith('.tmp');

/** What a reader sees: count(*) through the API's query engine, its views built from the manifests on disk. */
async function readerCount(engine: QueryEngine, buckets: Buckets, dataset: string): Promise<number> {
  const manifests = await listDatasets(buckets);
  await engine.syncViews(manifests.map((m) => ({ name: m.name, version: m.version, files: partFiles(buckets, m) })));
  const result = await engine.query(`SELECT count(*) AS n FROM ${dataset}`, { maxRows: 1, timeoutMs: 10_000 });
  return Number(result.rows[0]!['n']);
}

test('a worker SIGKILLed mid-ingest leaves no partial part visible; the recovered job lands exactly one copy', { timeout: 90_000 }, async (t) => {
  const env = await testEnv();
  t.after(() => env.cleanup());
  const DATASET = 'big';
  const dir = new DataRoot(env.dataDir).datasetDir(DATASET);
  const buckets = new Buckets(env.dataDir);
  const seed = await stage(env, 'seed.csv', SEED_ROWS);
  const big = await stage(env, 'big.csv', BIG_ROWS);
  const producer = await startProducer(env);
  const queue = producer.queue('ingest');
  const doomed = await startWorkerProcess(env, 'doomed-worker', { concurrency: 2 });
  const reader = await QueryEngine.open({ allowedDirs: [new DataRoot(env.dataDir).datasetsDir()], readerDirs: [new DataRoot(env.dataDir).readerDir()] });
  env.defer(() => reader.close());

  // The dataset exists with one part, so "nothing visible" means "the old version, exactly".
  const seedJob = await producer.add('ingest', { payload: { dataset: DATASET, source: { kind: 'upload', path: seed } } });
  const seeded = await waitForFinished(queue, seedJob.id!, 30_000);
  assert.equal(await seeded.getState(), 'completed', `seed job failed: ${seeded.failedReason}\n${doomed.output}`);
  assert.equal(await readerCount(reader, buckets, DATASET), SEED_ROWS);

  const job = await producer.add('ingest', { payload: { dataset: DATASET, source: { kind: 'upload', path: big } }, options: { attempts: 3 } });
  await waitFor(async () => (await partsDirEntries(dir)).some(isTemp), {
    timeoutMs: 30_000,
    intervalMs: 5,
    what: 'DuckDB to start writing the part (a temporary file in parts/)',
  });
  const children = await sandboxChildren(doomed.pid);
  assert.equal(children.length, 1, `one sandbox child runs the job\n${doomed.output}`);
  const child = children[0]!;

  const killedAt = Date.now();
  doomed.child.kill('SIGKILL');
  assert.equal((await doomed.waitExit(5_000)).signal, 'SIGKILL');
  // sandbox-guard.ts: a child whose parent died exits when its IPC channel drops.
  const childGone = await waitFor(async () => !(await isAlive(child)), { timeoutMs: 10_000, intervalMs: 20 }).then(
    () => true,
    () => false,
  );
  const orphanMs = Date.now() - killedAt;
  if (!childGone) killIfAlive(child);
  assert.ok(childGone, `sandbox child ${child} outlived its SIGKILLed worker by 10 s (killed now)`);
  t.diagnostic(`sandbox child gone ${orphanMs} ms after the worker's SIGKILL`);

  // The kill landed mid-write: the part never got its final name, and nothing lists it.
  assert.equal(await queue.getJobState(job.id!), 'active', 'the job is orphaned, neither completed nor failed');
  const partName = datasetPartName(job.id!);
  assert.equal(await exists(path.join(dir, partName)), false, 'no part file under the job\'s final name (killed before the rename)');
  const during = await readManifest(dir);
  assert.ok(during);
  assert.equal(during.version, 1, 'manifest unchanged');
  assert.deepEqual(during.parts.map((p) => p.job_id), [seedJob.id], 'only the seed part listed');
  assert.equal(during.rows, SEED_ROWS);
  assert.deepEqual(
    (await partsDirEntries(dir)).filter((n) => !isTemp(n)),
    during.parts.map((p) => path.basename(p.file)),
    'no complete but unlisted part either',
  );
  assert.equal(await readerCount(reader, buckets, DATASET), SEED_ROWS, 'readers see the old version, not the partial part');

  // Another worker recovers the job once the dead worker's lock (BullMQ's default 30 s) lapses;
  // its 1 s stalled check notices that soon after. runner.ts takes this tuning only in-process.
  const recovery = await startWorkers({
    config: env.config,
    queues: ['ingest'],
    concurrency: 2,
    tuning: { lockDuration: 5_000, stalledInterval: 1_000 },
    log: silentLog,
  });
  env.defer(() => recovery.close(5_000));
  const done = await waitForFinished(queue, job.id!, 60_000);
  assert.equal(await done.getState(), 'completed', `recovered job failed: ${done.failedReason}`);
  t.diagnostic(`job completed ${Date.now() - killedAt} ms after the SIGKILL`);
  assert.ok(done.stalledCounter >= 1, `recovered as a stalled job (stalledCounter ${done.stalledCounter})`);
  assert.ok(done.attemptsStarted >= 2, `a second attempt ran (attemptsStarted ${done.attemptsStarted})`);
  assert.equal(done.returnvalue.rows, BIG_ROWS);
  assert.equal(done.returnvalue.version, 2);
  assert.equal(done.returnvalue.dataset_rows, SEED_ROWS + BIG_ROWS);

  const manifest = await readManifest(dir);
  assert.ok(manifest);
  assert.equal(manifest.version, 2);
  assert.deepEqual(manifest.parts.map((p) => p.job_id), [seedJob.id, job.id], 'one part for the recovered job');
  assert.equal(manifest.rows, SEED_ROWS + BIG_ROWS);
  const bigPart = manifest.parts[1]!;
  assert.equal(bigPart.file, partName);
  assert.equal(bigPart.rows, BIG_ROWS);
  const [facts] = await withDuckDB((db) =>
    db.all(`SELECT count(*) AS n, count(DISTINCT id) AS d, min(id) AS lo, max(id) AS hi FROM read_parquet(${sqlString(path.join(dir, partName))})`),
  );
  assert.deepEqual(
    [facts!['n'], facts!['d'], facts!['lo'], facts!['hi']].map(Number),
    [BIG_ROWS, BIG_ROWS, 1, BIG_ROWS],
    'the part holds every source row exactly once',
  );
  assert.equal(await readerCount(reader, buckets, DATASET), SEED_ROWS + BIG_ROWS, 'readers see one copy');

  const entries = await partsDirEntries(dir);
  const listed = manifest.parts.map((p) => path.basename(p.file));
  assert.deepEqual(entries.filter((n) => !isTemp(n)).sort(), listed.sort(), 'no unlisted part file');
  assert.equal(await exists(path.join(env.dataDir, big)), false, 'staged upload removed');

  // Leftovers of the killed attempt: its temporary file is removed by the retry, and its sandbox child died with it.
  await t.test('no temporary file of the dead attempt is left in parts/', () => {
    assert.deepEqual(entries.filter(isTemp), [], 'orphaned temporary files');
  });
  await t.test('the orphaned sandbox child stops at once', () => {
    assert.ok(orphanMs < 1_000, `the child kept running (and writing its temporary file) ${orphanMs} ms after its worker died`);
  });
});

test('a retry of a job whose part was committed before the crash adds nothing', { timeout: 60_000 }, async (t) => {
  const env = await testEnv();
  t.after(() => env.cleanup());
  const DATASET = 'again';
  const JOB_ID = 'committed-then-crashed';
  const dir = new DataRoot(env.dataDir).datasetDir(DATASET);
  const rel = await stage(env, 'again.csv', 20_000);
  const producer = await startProducer(env);
  const queue = producer.queue('ingest');
  const worker = await startWorkerProcess(env, 'retry-worker', { concurrency: 2 });

  // The attempt that died: its commit went through (same lock key and job id the processor uses),
  // BullMQ never heard it complete.
  const committed = await ingestSource({
    buckets: new Buckets(env.dataDir),
    redis: env.redis,
    lockKey: `${env.prefix}:lock:dataset:${DATASET}`,
    dataset: DATASET,
    mode: 'append',
    jobId: JOB_ID,
    source: { kind: 'upload', file: path.join(env.dataDir, rel), format: 'auto' },
    progress: () => {},
  });
  assert.equal(committed.version, 1);
  const partPath = path.join(dir, committed.part!);
  const before = await fs.stat(partPath);

  // The retry: the same job id, run by the real processor in a real worker process.
  await producer.add('ingest', { jobId: JOB_ID, payload: { dataset: DATASET, source: { kind: 'upload', path: rel } } });
  const done = await waitForFinished(queue, JOB_ID, 30_000);
  assert.equal(await done.getState(), 'completed', `retry failed: ${done.failedReason}\n${worker.output}`);
  assert.deepEqual(done.returnvalue, committed, 'the retry reports the committed outcome');

  const manifest = await readManifest(dir);
  assert.ok(manifest);
  assert.equal(manifest.version, 1, 'no second commit');
  assert.deepEqual(manifest.parts.map((p) => p.job_id), [JOB_ID]);
  assert.equal(manifest.rows, 20_000);
  const after = await fs.stat(partPath);
  assert.equal(after.ino, before.ino, 'part file not rewritten');
  assert.equal(after.mtimeMs, before.mtimeMs);
  assert.deepEqual(await partsDirEntries(dir), [path.basename(partPath)], 'no second part, no temporary file');
  assert.equal(await exists(path.join(env.dataDir, rel)), false, 'the retry finished the processor\'s cleanup');
});
