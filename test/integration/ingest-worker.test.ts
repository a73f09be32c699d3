/**
 * The ingest path end to end against real Redis and real DuckDB: Producer → BullMQ → sandboxed
 * processor → Parquet part + manifest, plus the runner's membership and shutdown behaviour and
 * the entity lock the catalog commits under.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { Redis } from 'ioredis';
import { ZodPayloadError } from '../../queues/producer.ts';
import { readManifest, type Manifest } from '../../shared/catalog/manifest.ts';
import { listWorkers } from '../../shared/cluster/membership.ts';
import { ingestSource, type IngestRequest } from '../../shared/ingest/ingest-source.ts';
import { LockTimeoutError, withEntityLock } from '../../shared/redis/entity-lock.ts';
import { Buckets } from '../../shared/storage/buckets.ts';
import { DataRoot } from '../../shared/storage/data-root.ts';
import { exists, testEnv, waitFor, writeCsv, type CsvValue, type TestEnv } from '../helpers/env.ts';
import { generateCsv, sqlString, withDuckDB } from '../helpers/duckdb.ts';
import { assertNoSandboxChildrenLeft, startBareWorker, startProducer, startTestWorkers, waitForFinished } from '../helpers/jobs.ts';

// A sandboxed child outliving its worker would keep this process (and CI) alive forever.
after(() => assertNoSandboxChildrenLeft());

const HEADER = ['id', 'name', 'qty', 'amount', 'note'] as const;

/** The awkward values the CSV must carry through unchanged. */
const TRICKY = {
  comma: 'Smith, John',
  newline: 'first line\nsecond line',
  quote: 'she said "hi"',
  unicode: 'Zoë · Ålborg · 東京 · 🦆',
};

/** N rows with an integer and a decimal column; rows 1–4 carry the tricky values. */
function sampleRows(n: number, idOffset = 0): CsvValue[][] {
  const rows: CsvValue[][] = [[...HEADER]];
  const tricky = Object.values(TRICKY);
  for (let i = 1; i <= n; i++) {
    const id = idOffset + i;
    const note = tricky[i - 1] ?? `row ${id}`;
    const name = i === 4 ? 'Ünïcödé' : `name_${id}`;
    rows.push([id, name, (id * 7) % 101, ((id * 37) % 1000) / 100 + 0.25, note]);
  }
  return rows;
}

/** Stages a CSV the way the upload route does and returns the payload path and absolute path. */
async function stage(env: TestEnv, file: string, rows: CsvValue[][]): Promise<{ rel: string; abs: string }> {
  const abs = path.join(env.uploadsDir, file);
  await writeCsv(abs, rows); // CRLF line ends
  return { rel: `staging/uploads/${file}`, abs };
}

async function manifestOf(env: TestEnv, dataset: string): Promise<Manifest | undefined> {
  return readManifest(new DataRoot(env.dataDir).datasetDir(dataset));
}

function datasetDir(env: TestEnv, dataset: string): string {
  return new DataRoot(env.dataDir).datasetDir(dataset);
}

/** A direct ingestSource request for a staged CSV, as the processor would build it. */
function directRequest(env: TestEnv, dataset: string, file: string, jobId: string, extra: Partial<IngestRequest> = {}): IngestRequest {
  return {
    buckets: new Buckets(env.dataDir),
    redis: env.redis,
    lockKey: `${env.prefix}:lock:dataset:${dataset}`,
    dataset,
    mode: 'append',
    jobId,
    source: { kind: 'upload', file, format: 'csv' },
    progress: () => {},
    ...extra,
  };
}

interface CsvFacts {
  rows: number;
  qty: bigint;
  amount: number;
}

/** What DuckDB's own read_csv says about a file: the expectation the Parquet must match. */
async function csvFacts(file: string): Promise<CsvFacts> {
  return withDuckDB(async (db) => {
    const [r] = await db.all(
      `SELECT count(*) AS n, sum(qty)::BIGINT AS qty, sum(amount)::DOUBLE AS amount FROM read_csv(${sqlString(file)}, auto_detect = true)`,
    );
    return { rows: Number(r!['n']), qty: BigInt(r!['qty'] as bigint), amount: Number(r!['amount']) };
  });
}

async function parquetFacts(files: string[]): Promise<CsvFacts> {
  return withDuckDB(async (db) => {
    const list = `[${files.map(sqlString).join(', ')}]`;
    const [r] = await db.all(`SELECT count(*) AS n, sum(qty)::BIGINT AS qty, sum(amount)::DOUBLE AS amount FROM read_parquet(${list})`);
    return { rows: Number(r!['n']), qty: BigInt(r!['qty'] as bigint), amount: Number(r!['amount']) };
  });
}

function assertSameFacts(actual: CsvFacts, expected: CsvFacts): void {
  assert.equal(actual.rows, expected.rows, 'row count');
  assert.equal(actual.qty, expected.qty, 'sum(qty)');
  assert.ok(Math.abs(actual.amount - expected.amount) < 1e-6 * Math.max(1, Math.abs(expected.amount)), `sum(amount) ${actual.amount} vs ${expected.amount}`);
}

test('a staged CSV becomes a Parquet part listed in the manifest', async (t) => {
  const env = await testEnv();
  t.after(() => env.cleanup());
  const N = 250;
  const rows = sampleRows(N);
  const { rel, abs } = await stage(env, 'x.csv', rows);
  const raw = await fs.readFile(abs, 'utf8');
  assert.ok(raw.includes('\r\n') && raw.includes('"Smith, John"') && raw.includes('"first line\nsecond line"'), 'fixture is the awkward kind');
  // Keep a copy outside staging: the worker deletes the staged file once it is in the catalog.
  const original = path.join(env.dataDir, 'original.csv');
  await fs.copyFile(abs, original);
  const expected = await csvFacts(original);
  assert.equal(expected.rows, N, 'DuckDB reads the fixture as N rows');

  const producer = await startProducer(env);
  await startTestWorkers(env);
  const job = await producer.add('ingest', { payload: { dataset: 'sales', source: { kind: 'upload', path: rel, filename: 'x.csv' }, mode: 'append', format: 'csv' } });
  const done = await waitForFinished(producer.queue('ingest'), job.id!, 45_000);

  assert.equal(await done.getState(), 'completed', `job failed: ${done.failedReason}`);
  assert.equal(done.returnvalue.rows, N);
  assert.equal(done.returnvalue.dataset, 'sales');
  assert.equal(done.returnvalue.version, 1);
  assert.equal(done.returnvalue.dataset_rows, N);

  const manifest = await manifestOf(env, 'sales');
  assert.ok(manifest, 'manifest written');
  assert.equal(manifest.version, 1);
  assert.equal(manifest.rows, N);
  assert.equal(manifest.parts.length, 1);
  const [part] = manifest.parts;
  assert.equal(part!.job_id, job.id);
  assert.equal(part!.rows, N);
  assert.equal(part!.file, done.returnvalue.part);
  assert.equal(part!.lineage.filename, 'x.csv');
  assert.equal(part!.lineage.kind, 'upload');
  const partPath = path.join(datasetDir(env, 'sales'), part!.file);
  assert.equal((await fs.stat(partPath)).size, part!.bytes);
  assert.deepEqual(
    manifest.schema.map((c) => c.name),
    [...HEADER],
  );

  assertSameFacts(await parquetFacts([partPath]), expected);
  // The awkward values survive byte for byte.
  const notes = await withDuckDB((db) => db.all(`SELECT id, name, note FROM read_parquet(${sqlString(partPath)}) WHERE id <= 4 ORDER BY id`));
  assert.deepEqual(
    notes.map((r) => r['note']),
    [TRICKY.comma, TRICKY.newline, TRICKY.quote, TRICKY.unicode],
  );
  assert.equal(notes[3]!['name'], 'Ünïcödé');

  assert.equal(await exists(abs), false, 'staged upload removed after ingest');
  // The last progress update is sent by the sandboxed child just before it completes; it may land a moment later.
  // A number, so Bull Board draws it as a bar (the detail is kept beside it: queues/job-progress-store.ts).
  const progress = await waitFor(
    async () => {
      const p = (await producer.queue('ingest').getJob(job.id!))?.progress;
      return p === 100 ? p : undefined;
    },
    { timeoutMs: 5_000, what: 'progress 100' },
  );
  assert.equal(progress, 100);
});

test('append adds parts; replace leaves one part and moves the old files to the trash', async (t) => {
  const env = await testEnv();
  t.after(() => env.cleanup());
  const producer = await startProducer(env);
  const queue = producer.queue('ingest');
  await startTestWorkers(env);
  const dir = datasetDir(env, 'events');

  const run = async (file: string, n: number, idOffset: number, mode: 'append' | 'replace') => {
    const { rel } = await stage(env, file, sampleRows(n, idOffset));
    const job = await producer.add('ingest', { payload: { dataset: 'events', source: { kind: 'upload', path: rel }, mode } });
    const done = await waitForFinished(queue, job.id!, 45_000);
    assert.equal(await done.getState(), 'completed', `job ${file} failed: ${done.failedReason}`);
    return done;
  };

  const first = await run('a.csv', 30, 0, 'append');
  const second = await run('b.csv', 45, 1000, 'append');
  let manifest = await manifestOf(env, 'events');
  assert.ok(manifest);
  assert.equal(manifest.version, 2);
  assert.equal(manifest.parts.length, 2);
  assert.deepEqual(
    manifest.parts.map((p) => p.job_id),
    [first.id, second.id],
  );
  assert.deepEqual(
    manifest.parts.map((p) => p.rows),
    [30, 45],
  );
  assert.equal(manifest.rows, 75);
  assert.equal(second.returnvalue.dataset_rows, 75);
  const oldFiles = manifest.parts.map((p) => path.join(dir, p.file));
  assert.equal((await parquetFacts(oldFiles)).rows, 75);

  const third = await run('c.csv', 12, 5000, 'replace');
  manifest = await manifestOf(env, 'events');
  assert.ok(manifest);
  assert.equal(manifest.version, 3);
  assert.equal(manifest.parts.length, 1);
  assert.equal(manifest.parts[0]!.job_id, third.id);
  assert.equal(manifest.rows, 12);
  assert.equal(third.returnvalue.dataset_rows, 12);
  for (const f of oldFiles) assert.equal(await exists(f), false, `superseded part ${path.basename(f)} left the dataset`);
  // ...into the bucket's trash, recoverable for LAKEHOUSE_TRASH_DAYS
  const trash = path.join(env.dataDir, 'trash');
  const [entry, ...more] = (await fs.readdir(trash)).filter((e) => e.startsWith('events--replaced--'));
  assert.ok(entry && more.length === 0, 'one trash entry for the replace');
  for (const f of oldFiles) assert.ok(await exists(path.join(trash, entry, 'parts', path.basename(f))), `${path.basename(f)} kept in the trash`);
  const livePart = path.join(dir, manifest.parts[0]!.file);
  assert.deepEqual(await fs.readdir(path.join(dir, 'parts')), [path.basename(livePart)]);
  const [minId] = await withDuckDB((db) => db.all(`SELECT min(id) AS m, count(*) AS n FROM read_parquet(${sqlString(livePart)})`));
  assert.equal(Number(minId!['m']), 5001, 'only the replacing data is left');
  assert.equal(Number(minId!['n']), 12);
});

test('running an already committed job again adds nothing (idempotent)', async (t) => {
  const env = await testEnv();
  t.after(() => env.cleanup());
  const root = new DataRoot(env.dataDir);
  const { abs } = await stage(env, 'again.csv', sampleRows(20));
  const progressSeen: number[] = [];
  const request = directRequest(env, 'again', abs, 'job-42', { progress: (f) => void progressSeen.push(f) });

  const once = await ingestSource(request);
  assert.equal(once.rows, 20);
  assert.equal(once.version, 1);
  assert.equal(once.duplicate, false);
  assert.ok(progressSeen.includes(1));
  assert.ok(once.part);
  const partPath = path.join(root.datasetDir('again'), once.part);
  const before = await fs.stat(partPath);

  const twice = await ingestSource(request);
  assert.deepEqual(twice, once, 'the second run reports the first run\'s outcome');
  const manifest = await manifestOf(env, 'again');
  assert.ok(manifest);
  assert.equal(manifest.version, 1, 'no second commit');
  assert.equal(manifest.parts.length, 1);
  assert.equal(manifest.rows, 20);
  const after = await fs.stat(partPath);
  assert.equal(after.ino, before.ino, 'part file not rewritten');
  assert.equal(after.mtimeMs, before.mtimeMs);
  assert.deepEqual(await fs.readdir(path.dirname(partPath)), [path.basename(partPath)]);

  // Still idempotent when the staged file is gone (a retry after the processor removed it).
  await fs.rm(abs);
  assert.deepEqual(await ingestSource(request), once);

  // A different job id with new data does add a part, so the no-op above is not a no-op for everything…
  await stage(env, 'again.csv', sampleRows(5, 100));
  const other = await ingestSource({ ...request, jobId: 'job-43' });
  assert.equal(other.version, 2);
  assert.equal(other.dataset_rows, 25);
  // …while the same bytes under yet another job id are recognised and add nothing.
  await stage(env, 'again.csv', sampleRows(5, 100));
  const same = await ingestSource({ ...request, jobId: 'job-44' });
  assert.equal(same.duplicate, true);
  assert.equal(same.rows, 0);
  assert.equal((await manifestOf(env, 'again'))?.version, 2);
  assert.equal((await redisKeyExists(env.redis, request.lockKey)), false, 'lock released');
});

test(
  'job ids that differ only in punctuation get distinct part files',
  async (t) => {
    const env = await testEnv();
    t.after(() => env.cleanup());
    const one = await stage(env, 'one.csv', sampleRows(3));
    const two = await stage(env, 'two.csv', sampleRows(1, 100));
    await ingestSource(directRequest(env, 'ids', one.abs, 'a.b'));
    await ingestSource(directRequest(env, 'ids', two.abs, 'a_b'));
    const manifest = await manifestOf(env, 'ids');
    assert.ok(manifest);
    assert.equal(new Set(manifest.parts.map((p) => p.file)).size, 2, `distinct files: ${JSON.stringify(manifest.parts.map((p) => p.file))}`);
    const files = manifest.parts.map((p) => path.join(datasetDir(env, 'ids'), p.file));
    assert.equal((await parquetFacts(files)).rows, manifest.rows, 'the manifest\'s row count is what the files hold');
  },
);

test('progress is reported while DuckDB converts, not only at the end', async (t) => {
  const env = await testEnv();
  t.after(() => env.cleanup());
  const file = path.join(env.uploadsDir, 'progress.csv');
  await generateCsv(file, 3_000_000);
  const seen: { fraction: number; detail: Record<string, number | string> }[] = [];
  await ingestSource(directRequest(env, 'progress', file, 'p1', { progress: (fraction, detail = {}) => void seen.push({ fraction, detail }) }));
  assert.equal(seen.at(-1)?.fraction, 1);
  const midway = seen.filter(({ fraction, detail }) => {
    const done = Number(detail['bytes_done']);
    return fraction > 0 && fraction < 1 && done > 0 && done < Number(detail['bytes_total']);
  });
  assert.ok(midway.length > 0, `a report from inside the conversion: ${JSON.stringify(seen)}`);
  assert.ok(seen.every((s, i) => i === 0 || s.fraction >= seen[i - 1]!.fraction), 'never goes backwards');
});

async function redisKeyExists(redis: Redis, key: string): Promise<boolean> {
  return (await redis.exists(key)) === 1;
}

test('bad payloads are refused before Redis; an empty CSV fails once, without retries, and writes no manifest', async (t) => {
  const env = await testEnv();
  t.after(() => env.cleanup());
  const producer = await startProducer(env);
  const queue = producer.queue('ingest');
  await stage(env, 'ok.csv', sampleRows(3));

  const bad: { why: string; payload: unknown; field: string }[] = [
    { why: 'dataset with ..', payload: { dataset: '../etc', source: { kind: 'upload', path: 'staging/uploads/ok.csv' } }, field: 'dataset' },
    { why: 'dataset with /', payload: { dataset: 'a/b', source: { kind: 'upload', path: 'staging/uploads/ok.csv' } }, field: 'dataset' },
    { why: 'upper-case dataset', payload: { dataset: 'Sales', source: { kind: 'upload', path: 'staging/uploads/ok.csv' } }, field: 'dataset' },
    { why: 'path escaping staging', payload: { dataset: 'ok', source: { kind: 'upload', path: 'staging/uploads/../../etc/passwd' } }, field: 'source.path' },
    { why: 'absolute path', payload: { dataset: 'ok', source: { kind: 'upload', path: '/etc/passwd' } }, field: 'source.path' },
    { why: 'path outside uploads', payload: { dataset: 'ok', source: { kind: 'upload', path: 'datasets/ok/manifest.json' } }, field: 'source.path' },
    { why: 'unknown format', payload: { dataset: 'ok', source: { kind: 'upload', path: 'staging/uploads/ok.csv' }, format: 'xlsx' }, field: 'format' },
  ];
  for (const { why, payload, field } of bad) {
    await assert.rejects(
      producer.add('ingest', { payload }),
      (err: unknown) => {
        assert.ok(err instanceof ZodPayloadError, `${why}: expected ZodPayloadError, got ${String(err)}`);
        assert.ok(err.issues.some((i) => i.path === `payload.${field}`), `${why}: issue on payload.${field}, got ${JSON.stringify(err.issues)}`);
        return true;
      },
      why,
    );
  }
  await assert.rejects(
    producer.addBulk('ingest', [
      { payload: { dataset: 'ok', source: { kind: 'upload', path: 'staging/uploads/ok.csv' } } },
      { payload: { dataset: '../etc', source: { kind: 'upload', path: 'staging/uploads/ok.csv' } } },
    ]),
    (err: unknown) => err instanceof ZodPayloadError && err.issues.some((i) => i.path === 'jobs.1.payload.dataset'),
  );
  const counts = await queue.getJobCounts();
  assert.equal(Object.values(counts).reduce((a, b) => a + b, 0), 0, `nothing reached Redis: ${JSON.stringify(counts)}`);

  await fs.writeFile(path.join(env.uploadsDir, 'empty.csv'), '');
  await startTestWorkers(env);
  const job = await producer.add('ingest', { payload: { dataset: 'hollow', source: { kind: 'upload', path: 'staging/uploads/empty.csv' } } });
  assert.equal(job.opts.attempts, 3, 'the job would be retried if the failure were retryable');
  const failed = await waitForFinished(queue, job.id!, 45_000);
  assert.equal(await failed.getState(), 'failed');
  assert.equal(failed.attemptsMade, 1, 'not retried');
  assert.match(failed.failedReason, /empty/i);
  assert.equal(await manifestOf(env, 'hollow'), undefined, 'no manifest');
});

test(
  'a source path of staging/uploads/.. (the staging dir itself) is refused',
  async (t) => {
    const env = await testEnv();
    t.after(() => env.cleanup());
    const producer = await startProducer(env);
    for (const p of ['staging/uploads/..', 'staging/uploads/.']) {
      await assert.rejects(producer.add('ingest', { payload: { dataset: 'ok', source: { kind: 'upload', path: p } } }), ZodPayloadError, p);
    }
  },
);

test('running workers are listed in the cluster membership until they close', async (t) => {
  const env = await testEnv();
  t.after(() => env.cleanup());
  const running = await startTestWorkers(env);
  const mine = async () => (await listWorkers(env.redis, env.prefix)).find((w) => w.id === running.record.id);

  const record = await mine();
  assert.ok(record, 'record listed while running');
  assert.equal(record.pid, process.pid);
  assert.equal(record.host, os.hostname());
  assert.deepEqual(record.queues, ['ingest']);
  assert.equal(record.concurrency, 1);

  await running.close(5_000);
  assert.equal(await mine(), undefined, 'record gone after close');
  assert.deepEqual(await listWorkers(env.redis, env.prefix), []);
});

/** Big enough that DuckDB takes a noticeable moment (~0.5 s) converting it. */
const BIG_ROWS = 2_000_000;

async function stageBig(env: TestEnv, file: string): Promise<string> {
  await generateCsv(path.join(env.uploadsDir, file), BIG_ROWS);
  return `staging/uploads/${file}`;
}

/** True once DuckDB is writing the dataset's part (its temporary file exists): the child is mid-job. */
async function converting(env: TestEnv, dataset: string): Promise<boolean> {
  const names = await fs.readdir(path.join(datasetDir(env, dataset), 'parts')).catch(() => [] as string[]);
  return names.some((n) => n.endsWith('.tmp'));
}

test('close() waits for an active job to finish', { timeout: 90_000 }, async (t) => {
  const env = await testEnv();
  t.after(() => env.cleanup());
  const rel = await stageBig(env, 'big.csv');
  const producer = await startProducer(env);
  const queue = producer.queue('ingest');
  const running = await startTestWorkers(env);
  const job = await producer.add('ingest', { payload: { dataset: 'big', source: { kind: 'upload', path: rel } } });

  await waitFor(() => converting(env, 'big'), { timeoutMs: 20_000, intervalMs: 5, what: 'DuckDB to start writing the part' });
  const closeCalledAt = Date.now();
  await running.close(50_000);

  // Graceful: when close() returns the job is already done, not handed back to the queue.
  assert.equal(await queue.getJobState(job.id!), 'completed');
  const done = (await queue.getJob(job.id!))!;
  assert.ok(done.finishedOn! >= closeCalledAt, 'the job was still running when close() was called');
  assert.equal(done.attemptsMade, 1);
  assert.equal(done.returnvalue.rows, BIG_ROWS);
  const manifest = await manifestOf(env, 'big');
  assert.equal(manifest?.rows, BIG_ROWS);
  assert.equal(manifest?.parts.length, 1);
});

test('a force-closed worker\'s job is not lost: the next worker finishes it, exactly once', { timeout: 60_000 }, async (t) => {
  const env = await testEnv();
  t.after(() => env.cleanup());
  const rel = await stageBig(env, 'big.csv');
  const producer = await startProducer(env);
  const queue = producer.queue('ingest');
  const first = await startTestWorkers(env);
  const job = await producer.add('ingest', { payload: { dataset: 'big', source: { kind: 'upload', path: rel } } });

  // Wait until the sandboxed child is really converting (DuckDB's temporary part exists), not just
  // forked or still fingerprinting the source.
  await waitFor(() => converting(env, 'big'), { timeoutMs: 20_000, intervalMs: 5, what: 'DuckDB to start writing the part' });
  const forcedAt = Date.now();
  await first.close(1);
  assert.notEqual(await queue.getJobState(job.id!), 'failed', 'an interrupted job is not a failed one');

  // runner.ts does not let a caller set stalledInterval/lockDuration, and with BullMQ's defaults
  // (30 s, plus the 30 s stalled-check throttle the closed worker left behind) a stalled job is
  // recovered only 30–60 s later. So the second worker runs the same sandboxed processor file
  // through plain BullMQ with a 1 s stalled check: recovery then takes at most as long as the
  // dead worker's lock (30 s) lives.
  await startBareWorker(env, 'ingest', { stalledInterval: 1_000 });
  const done = await waitForFinished(queue, job.id!, 50_000);
  assert.equal(await done.getState(), 'completed', `job failed: ${done.failedReason}`);
  assert.ok(done.finishedOn! > forcedAt, 'the job was still running when the worker was closed');
  assert.equal(done.returnvalue.rows, BIG_ROWS);
  const manifest = await manifestOf(env, 'big');
  assert.ok(manifest);
  assert.equal(manifest.parts.length, 1, 'one part: a re-run did not duplicate data');
  assert.equal(manifest.rows, BIG_ROWS);
  assert.equal(manifest.version, 1);
  const partPath = path.join(datasetDir(env, 'big'), manifest.parts[0]!.file);
  assert.equal((await parquetFacts([partPath])).rows, BIG_ROWS);
  assert.equal(await exists(path.join(env.dataDir, rel)), false, 'staged upload removed');
});

test('withEntityLock: holders of one key run one after another; assertHeld notices a lost lock', async (t) => {
  const env = await testEnv();
  t.after(() => env.cleanup());
  const key = `${env.prefix}:lock:dataset:locked`;
  const a = new Redis(env.config.redisUrl, { maxRetriesPerRequest: null });
  const b = new Redis(env.config.redisUrl, { maxRetriesPerRequest: null });
  env.defer(async () => {
    await a.quit();
    await b.quit();
  });
  const bClientId = Number(await b.client('ID'));
  const lastCommandOfB = async () => /\bcmd=(\S+)/.exec(String(await env.redis.client('LIST', 'ID', bClientId)))?.[1];
  const counterKey = `${env.prefix}:counter`;
  const events: string[] = [];

  // A non-atomic read-modify-write: loses an update unless the holders are exclusive.
  const critical = async (redis: Redis) => {
    const v = Number((await redis.get(counterKey)) ?? 0);
    await redis.ping();
    await redis.set(counterKey, String(v + 1));
  };

  let bDone: Promise<void> | undefined;
  await withEntityLock(a, key, async (lock) => {
    events.push('A:enter');
    bDone = withEntityLock(b, key, async () => {
      events.push('B:enter');
      await critical(b);
      events.push('B:exit');
    });
    // B has tried to take the lock (its last command is a SET) and is still outside.
    await waitFor(async () => (await lastCommandOfB()) === 'set', { timeoutMs: 5_000, intervalMs: 5, what: 'B to try the lock' });
    await critical(a);
    await lock.assertHeld();
    events.push('A:exit');
  });
  await bDone;
  assert.deepEqual(events, ['A:enter', 'A:exit', 'B:enter', 'B:exit']);
  assert.equal(await env.redis.get(counterKey), '2');
  assert.equal(await env.redis.exists(key), 0, 'released');

  // assertHeld throws once the key is gone or belongs to someone else, and release spares the other owner.
  await withEntityLock(a, key, async (lock) => {
    await lock.assertHeld();
    await env.redis.del(key);
    await assert.rejects(lock.assertHeld(), LockTimeoutError);
  });
  await withEntityLock(a, key, async (lock) => {
    await env.redis.set(key, 'someone-else', 'PX', 10_000);
    await assert.rejects(lock.assertHeld(), LockTimeoutError);
  });
  assert.equal(await env.redis.get(key), 'someone-else', 'release left the new owner\'s lock alone');
  await env.redis.del(key);

  // Many holders at once: never two inside together, no lost update.
  let inside = 0;
  let maxInside = 0;
  const clients = Array.from({ length: 5 }, () => new Redis(env.config.redisUrl, { maxRetriesPerRequest: null }));
  env.defer(() => Promise.all(clients.map((c) => c.quit())));
  await env.redis.set(counterKey, '0');
  await Promise.all(
    clients.map((c) =>
      withEntityLock(c, key, async () => {
        maxInside = Math.max(maxInside, ++inside);
        await critical(c);
        inside--;
      }),
    ),
  );
  assert.equal(maxInside, 1);
  assert.equal(await env.redis.get(counterKey), '5');
});
