/**
 * The orphan sweeper (shared/maintenance/orphan-sweeper.ts) against real Redis (BullMQ jobs in
 * every state, a job scheduler) and a real data root: stale staged uploads and sealed secrets
 * nothing references go; referenced or fresh ones stay; expired trash goes; one process sweeps
 * at a time; and the worker process runs it on its timer.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Queue, UnrecoverableError, Worker } from 'bullmq';
import { jobReferences } from '../../queues/job-references.ts';
import type { Producer } from '../../queues/producer.ts';
import { loadConfig } from '../../shared/config.ts';
import { sweepOnce, sweepOrphans, type SweepOptions } from '../../shared/maintenance/orphan-sweeper.ts';
import { SecretBox } from '../../shared/secrets/secret-box.ts';
import { Buckets } from '../../shared/storage/buckets.ts';
import { startWorkers } from '../../workers/runner.ts';
import { sweepKeys } from '../../workers/orphan-sweep.ts';
import { exists, testEnv, waitFor, type TestEnv } from '../helpers/env.ts';
import { silentLog, startProducer } from '../helpers/jobs.ts';

const HOUR = 3_600_000;
const GRACE = HOUR;
const DSN = 'postgres://someone:pw-sweep@127.0.0.1:5432/test';

let env: TestEnv;
let producer: Producer;
let buckets: Buckets;
let secrets: SecretBox;
let queue: Queue;

/** Makes a file look `ageMs` old. */
async function age(file: string, ageMs: number): Promise<void> {
  const t = new Date(Date.now() - ageMs);
  await fs.utimes(file, t, t);
}

async function stage(name: string, ageMs: number): Promise<string> {
  const file = path.join(env.uploadsDir, name);
  await fs.writeFile(file, 'id\n1\n');
  await fs.writeFile(`${file}.sha256`, 'f'.repeat(64));
  await age(file, ageMs);
  await age(`${file}.sha256`, ageMs);
  return `staging/uploads/${name}`;
}

const sealedFile = (id: string) => path.join(env.dataDir, 'secrets', 'sealed', `${id}.json`);

async function sealOld(ageMs: number): Promise<string> {
  const id = await secrets.seal(DSN);
  await age(sealedFile(id), ageMs);
  return id;
}

const uploadJob = (p: string) => ({ dataset: 'swept', source: { kind: 'upload', path: p } });

function options(extra: Partial<SweepOptions> = {}): SweepOptions {
  return { buckets, graceMs: GRACE, trashDays: 1, references: () => jobReferences(env.redis, env.prefix), ...extra };
}

/** Fails a job for good in a real worker (which takes every waiting job, so call it first). */
async function failJob(payload: unknown): Promise<string> {
  const job = await producer.addPayload('ingest', payload);
  const worker = new Worker('ingest', async () => {
    throw new UnrecoverableError('made to fail');
  }, { connection: { url: env.config.redisUrl, maxRetriesPerRequest: null }, prefix: env.prefix });
  try {
    await waitFor(async () => (await queue.getJobState(job.id!)) === 'failed', { what: 'the job to fail' });
  } finally {
    await worker.close();
  }
  return job.id!;
}

describe('orphan sweeper', { timeout: 120_000 }, () => {
  before(async () => {
    // jobs below carry their own DSN, which only an admin may post and only when the server allows it
    process.env['LAKEHOUSE_ALLOW_JOB_DSN'] = 'true';
    env = await testEnv();
    env.defer(() => delete process.env['LAKEHOUSE_ALLOW_JOB_DSN']);
    producer = await startProducer(env);
    buckets = new Buckets(env.config.dataDir, env.config.buckets);
    secrets = await SecretBox.open(path.join(env.dataDir, 'secrets'), env.config.secretKey);
    queue = new Queue('ingest', { connection: env.redis, prefix: env.prefix });
    env.defer(() => queue.close());
  });

  after(() => env?.cleanup());

  it('removes stale uploads no live job names and secrets nothing names; keeps the rest', async () => {
    const old = 2 * GRACE;
    // the failing worker takes every waiting job: fail these before adding the others
    const ofFailed = await stage('of-failed.upload', old);
    await failJob(uploadJob(ofFailed));
    const failedDsn = await failJob(await producer.prepare('ingest', { dataset: 'swept', source: { kind: 'postgres', dsn: DSN, query: 'SELECT 1' } }, 'payload', 'admin'));
    const ofWaiting = await stage('of-waiting.upload', old);
    await producer.addPayload('ingest', uploadJob(ofWaiting));
    const ofDelayed = await stage('of-delayed.upload', old);
    await producer.add('ingest', { payload: uploadJob(ofDelayed), options: { delay: HOUR } });
    const ofSchedule = await stage('of-schedule.upload', old);
    await queue.upsertJobScheduler('sweep-sched', { every: 86_400_000, startDate: Date.now() + 86_400_000 }, { name: 'ingest', data: uploadJob(ofSchedule) });
    const unnamed = await stage('unnamed.upload', old);
    const fresh = await stage('fresh.upload', 0);
    const strayFingerprint = path.join(env.uploadsDir, 'gone.upload.sha256');
    await fs.writeFile(strayFingerprint, 'f'.repeat(64));
    await age(strayFingerprint, old);

    // secrets: sealed by the producer for jobs (a delayed one, a failed one) and a schedule, or directly
    const delayedDsn = await producer.add('ingest', { payload: { dataset: 'swept', source: { kind: 'postgres', dsn: DSN, query: 'SELECT 1' } }, options: { delay: HOUR }, role: 'admin' });
    const ofDelayedJob = (delayedDsn.data as { source: { secret: string } }).source.secret;
    const ofFailedJob = ((await queue.getJob(failedDsn))!.data as { source: { secret: string } }).source.secret;
    const scheduled = (await producer.prepare('ingest', { dataset: 'swept', source: { kind: 'postgres', dsn: DSN, query: 'SELECT 1' } }, 'payload', 'admin')) as { source: { secret: string } };
    await queue.upsertJobScheduler('sweep-sched-dsn', { every: 86_400_000, startDate: Date.now() + 86_400_000 }, { name: 'ingest', data: scheduled });
    const ofManifest = await sealOld(old);
    const manifestDir = path.join(env.dataDir, 'datasets', 'with_secret');
    await fs.mkdir(manifestDir, { recursive: true });
    await fs.writeFile(path.join(manifestDir, 'manifest.json'), JSON.stringify({ name: 'with_secret', parts: [{ lineage: { kind: 'postgres', secret: ofManifest } }] }));
    for (const id of [ofDelayedJob, ofFailedJob, scheduled.source.secret]) await age(sealedFile(id), old);
    const superseded = await sealOld(old);
    const freshSecret = await sealOld(0);

    const report = await sweepOrphans(options());
    assert.deepEqual(report.uploads, [ofFailed, `${ofFailed}.sha256`, 'staging/uploads/gone.upload.sha256', unnamed, `${unnamed}.sha256`].sort());
    assert.deepEqual(report.secrets, [superseded]);
    for (const kept of [ofWaiting, ofDelayed, ofSchedule, fresh]) {
      assert.ok(await exists(path.join(env.dataDir, kept)), `${kept} kept`);
      assert.ok(await exists(path.join(env.dataDir, `${kept}.sha256`)), `${kept}.sha256 kept`);
    }
    for (const gone of [ofFailed, unnamed]) assert.equal(await exists(path.join(env.dataDir, gone)), false, `${gone} removed`);
    for (const kept of [ofDelayedJob, ofFailedJob, scheduled.source.secret, ofManifest, freshSecret]) assert.ok(await exists(sealedFile(kept)), `secret ${kept} kept`);
    assert.equal(await exists(sealedFile(superseded)), false);
    assert.equal(await secrets.open(ofFailedJob), DSN, 'a failed job can still be retried with its secret');
  });

  it('purges trash entries older than the trash days, keeps newer ones', async () => {
    const trash = path.join(env.dataDir, 'trash');
    await fs.mkdir(path.join(trash, 'old--replaced--x', 'parts'), { recursive: true });
    await fs.mkdir(path.join(trash, 'new--replaced--y'), { recursive: true });
    await age(path.join(trash, 'old--replaced--x'), 2 * 86_400_000);
    const report = await sweepOrphans(options());
    assert.deepEqual(report.trash, ['primary/old--replaced--x']);
    assert.ok(await exists(path.join(trash, 'new--replaced--y')));
  });

  it('one process sweeps at a time, and once per interval between them', async () => {
    const lock = { redis: env.redis, ...sweepKeys(env.config), intervalMs: HOUR };
    const orphan = await stage('race.upload', 2 * GRACE);
    // someone else holds the sweep: this process does nothing
    await env.redis.set(lock.lockKey, 'another-process', 'PX', 30_000);
    assert.equal(await sweepOnce(lock, options()), undefined);
    assert.ok(await exists(path.join(env.dataDir, orphan)), 'nothing removed while another process sweeps');
    await env.redis.del(lock.lockKey);

    const many = await Promise.all(Array.from({ length: 5 }, () => sweepOnce(lock, options())));
    assert.equal(many.filter((r) => r !== undefined).length, 1, 'exactly one of five concurrent sweeps ran');
    assert.equal(await exists(path.join(env.dataDir, orphan)), false);
    const again = await stage('again.upload', 2 * GRACE);
    assert.equal(await sweepOnce(lock, options()), undefined, 'swept less than an interval ago');
    assert.ok(await exists(path.join(env.dataDir, again)));
    await env.redis.del(lock.markerKey);
  });

  it('a worker process sweeps on its timer', async () => {
    const orphan = await stage('timer.upload', 2 * GRACE);
    await env.redis.del(sweepKeys(env.config).markerKey);
    const config = loadConfig({ ...process.env, LAKEHOUSE_SWEEP_INTERVAL_MS: '1000', LAKEHOUSE_SWEEP_GRACE_MS: String(GRACE) });
    const workers = await startWorkers({ config, queues: ['refresh'], concurrency: 1, log: silentLog });
    env.defer(() => workers.close(5_000));
    await waitFor(async () => !(await exists(path.join(env.dataDir, orphan))), { timeoutMs: 20_000, what: 'the worker to sweep the orphan' });
    await workers.close(5_000);
  });
});
