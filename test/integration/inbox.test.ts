/**
 * The inbox against a real filesystem and a real BullMQ queue: what a scan picks up, path safety,
 * and two watchers racing over one inbox — every dropped file claimed and enqueued exactly once,
 * re-enqueues deduplicated by the claim's job id, a claim orphaned by a crash picked up again, a
 * failed enqueue retried — then settling into processed/ and failed/.
 */
import { Queue } from 'bullmq';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { claim, claimedFile, describeClaim, inboxDir, scanInbox, settle, type InboxEntry } from '../../shared/inbox/inbox.ts';
import { startInboxWatcher, type InboxJob, type InboxWatcher } from '../../shared/inbox/watcher.ts';
import { createLogger } from '../../shared/logger.ts';
import { createRedis, waitForReady } from '../../shared/redis/connection.ts';
import { DataRoot } from '../../shared/storage/data-root.ts';
import { exists, testEnv, waitFor, type TestEnv } from '../helpers/env.ts';

const log = createLogger('silent', 'test');
const QUIET_AGO = new Date(Date.now() - 60_000);

let env: TestEnv;

async function drop(root: DataRoot, rel: string, content = 'id,name\n1,a\n', quiet = true): Promise<string> {
  const file = path.join(inboxDir(root), rel);
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(file, content);
  if (quiet) await fs.utimes(file, QUIET_AGO, QUIET_AGO);
  return file;
}

async function files(dir: string): Promise<string[]> {
  try {
    return (await fs.readdir(dir)).sort();
  } catch {
    return [];
  }
}

async function freshRoot(name: string): Promise<DataRoot> {
  const root = new DataRoot(path.join(env.dataDir, name));
  await fs.mkdir(inboxDir(root), { recursive: true });
  return root;
}

describe('inbox', { timeout: 60_000 }, () => {
  before(async () => {
    env = await testEnv();
  });
  after(() => env?.cleanup());

  it('scanInbox returns quiet regular files in dataset folders and leaves everything else alone', async () => {
    const root = await freshRoot('scan');
    const outside = await fs.mkdtemp(path.join(env.dataDir, 'outside-'));
    await fs.writeFile(path.join(outside, 'secret.csv'), 'x\n1\n');
    await drop(root, 'sales/old.csv');
    await drop(root, 'sales/fresh.csv', 'id\n1\n', false);
    await drop(root, 'sales/.writing.csv.tmp');
    await drop(root, 'sales/nested/deep.csv');
    await drop(root, 'Bad-Name/x.csv');
    await drop(root, 'processed/sales/x.csv');
    await drop(root, 'failed/sales/x.csv');
    await drop(root, 'top-level.csv');
    await fs.symlink(path.join(outside, 'secret.csv'), path.join(inboxDir(root), 'sales', 'link.csv'));
    await fs.symlink(outside, path.join(inboxDir(root), 'linked'));

    assert.deepEqual(await scanInbox(root), [{ dataset: 'sales', file: 'old.csv' }]);
    const later = await scanInbox(root, { now: Date.now() + 5_000 });
    assert.deepEqual(later.map((e) => e.file).sort(), ['fresh.csv', 'old.csv'], 'a file becomes ready once quiet');
    assert.deepEqual(await scanInbox(await freshRoot('empty')), []);
  });

  it('claim moves a file into .claimed/ once; settle moves it out once', async () => {
    const root = await freshRoot('single');
    await drop(root, 'sales/one.csv', 'a,b\n1,2\n');
    const first = await claim(root, { dataset: 'sales', file: 'one.csv' });
    assert.ok(first, 'claimed');
    assert.match(first.claimed, /^\.claimed\/sales\/[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}__one\.csv$/);
    assert.equal(await claim(root, { dataset: 'sales', file: 'one.csv' }), undefined, 'a second claim finds nothing');
    assert.equal(await fs.readFile(await claimedFile(root, first.claimed), 'utf8'), 'a,b\n1,2\n');
    const c = describeClaim(first.claimed);
    assert.equal(c.filename, 'one.csv');
    assert.ok(Math.abs(c.claimedAt - Date.now()) < 5_000, 'the claim time is in its name');

    const settled = await settle(root, first.claimed, { ok: true });
    assert.ok(settled);
    assert.match(settled.settled, /^processed\/sales\/\d{8}T\d{9}Z__one\.csv$/);
    assert.equal(await fs.readFile(path.join(inboxDir(root), settled.settled), 'utf8'), 'a,b\n1,2\n');
    assert.equal(await settle(root, first.claimed, { ok: false, error: 'late' }), undefined, 'settling again is a no-op');
    assert.deepEqual(await files(path.join(inboxDir(root), 'failed', 'sales')), []);
    await assert.rejects(claimedFile(root, first.claimed), /gone/);
  });

  it('refuses ../, absolute paths, invalid names and symlinks planted in the inbox', async () => {
    const root = await freshRoot('safety');
    const outside = await fs.mkdtemp(path.join(env.dataDir, 'outside-'));
    const victim = path.join(outside, 'victim.csv');
    await fs.writeFile(victim, 'keep me\n');
    await drop(root, 'sales/ok.csv');

    const badEntries: InboxEntry[] = [
      { dataset: 'sales', file: '../ok.csv' },
      { dataset: 'sales', file: '../../outside/victim.csv' },
      { dataset: 'sales', file: victim },
      { dataset: '..', file: 'ok.csv' },
      { dataset: outside, file: 'victim.csv' },
      { dataset: 'Bad-Name', file: 'x.csv' },
      { dataset: 'processed', file: 'x.csv' },
      { dataset: 'sales', file: '.hidden' },
      { dataset: 'sales', file: 'x'.repeat(201) },
    ];
    for (const entry of badEntries) {
      await assert.rejects(claim(root, entry), { name: 'BadRequestError' }, JSON.stringify(entry));
    }
    const badClaims = [
      '../outside/victim.csv',
      victim,
      '/etc/passwd',
      '.claimed/sales/../../../outside/victim.csv',
      '.claimed/../../victim.csv',
      '.claimed/sales/not-a-uuid__x.csv',
      'sales/ok.csv',
      `.claimed/sales/01234567-89ab-7def-8123-456789abcdef__../x`,
    ];
    for (const rel of badClaims) {
      await assert.rejects(settle(root, rel, { ok: true }), { name: 'BadRequestError' }, rel);
      await assert.rejects(claimedFile(root, rel), { name: 'BadRequestError' }, rel);
    }

    // a symlink planted where the claim folder goes is refused, not followed
    await fs.symlink(outside, path.join(inboxDir(root), '.claimed'));
    await assert.rejects(claim(root, { dataset: 'sales', file: 'ok.csv' }), /not a directory/);
    assert.deepEqual(await files(outside), ['victim.csv'], 'nothing was moved outside the inbox');
    assert.ok(await exists(path.join(inboxDir(root), 'sales', 'ok.csv')), 'the file stays where it was dropped');
    await fs.rm(path.join(inboxDir(root), '.claimed'));

    // a claimed file that is a symlink is never handed to a reader
    const claimed = await claim(root, { dataset: 'sales', file: 'ok.csv' });
    assert.ok(claimed);
    const claimedAbs = path.join(inboxDir(root), claimed.claimed);
    await fs.rm(claimedAbs);
    await fs.symlink(victim, claimedAbs);
    await assert.rejects(claimedFile(root, claimed.claimed), /symlinks are never followed/);
    // settling moves the link itself, never its target
    const settled = await settle(root, claimed.claimed, { ok: false, error: 'not a regular file' });
    assert.ok(settled);
    assert.ok((await fs.lstat(path.join(inboxDir(root), settled.settled))).isSymbolicLink());
    assert.equal(await fs.readFile(victim, 'utf8'), 'keep me\n');
  });

  describe('two watchers on one inbox', () => {
    const DATASETS = ['sales', 'events'];
    const dropped: string[] = []; // "<dataset>/<file>"
    let root: DataRoot;
    let redis: Redis;
    let queue: Queue;
    let watchers: InboxWatcher[] = [];
    const calls: (InboxJob & { watcher: string; ok: boolean })[] = [];
    let flakyFailed = false;

    const jobs = async () => (await queue.getJobs(['waiting'], 0, -1)).filter(Boolean);

    before(async () => {
      root = await freshRoot('race');
      redis = createRedis(env.config.redisUrl, 'producer');
      redis.on('error', () => {});
      await waitForReady(redis);
      queue = new Queue('inbox-test', { connection: redis, prefix: env.prefix });
      env.defer(async () => {
        await Promise.all(watchers.map((w) => w.stop()));
        await queue.close();
        await redis.quit().catch(() => redis.disconnect());
      });

      for (let i = 1; i <= 20; i++) {
        const dataset = DATASETS[i % 2]!;
        const file = `${dataset}-${String(i).padStart(2, '0')}.csv`;
        await drop(root, `${dataset}/${file}`, `id\n${i}\n`);
        dropped.push(`${dataset}/${file}`);
      }
      await drop(root, 'Bad-Name/ignored.csv');
      await drop(root, 'sales/.upload-in-progress.csv');

      const enqueue = (watcher: string) => async (job: InboxJob) => {
        if (job.filename === 'flaky.csv' && !flakyFailed) {
          flakyFailed = true;
          calls.push({ ...job, watcher, ok: false });
          throw new Error('Redis went away for a moment');
        }
        await queue.add('ingest', { dataset: job.dataset, source: { kind: 'inbox', path: job.claimed, filename: job.filename } }, { jobId: job.jobId });
        calls.push({ ...job, watcher, ok: true });
      };
      // a short reclaim age makes each watcher's sweep re-enqueue the other's claims: dedupe at work
      watchers = ['a', 'b'].map((w) => startInboxWatcher({ root, pollMs: 25, enqueue: enqueue(w), log, reclaimAfterMs: 300 }));
    });

    it('each of 20 dropped files is claimed once and enqueued as exactly one job', async () => {
      await waitFor(async () => (await jobs()).length >= 20, { timeoutMs: 15_000, what: '20 jobs' });
      // every claim is enqueued by its claimer and once more by the other watcher's sweep
      await waitFor(() => calls.length >= 40, { timeoutMs: 15_000, what: 'sweeps re-enqueuing every claim' });

      const all = await jobs();
      assert.equal(all.length, 20, 'one job per dropped file, however often it was enqueued');
      const claimedPaths = all.map((j) => j.data.source.path as string);
      assert.equal(new Set(claimedPaths).size, 20, 'unique claimed names');
      assert.equal(new Set(all.map((j) => j.id)).size, 20);
      assert.deepEqual(all.map((j) => `${j.data.dataset}/${j.data.source.filename}`).sort(), [...dropped].sort());
      for (const j of all) {
        const c = describeClaim(j.data.source.path);
        assert.equal(j.id, c.jobId, 'the job id is derived from the claim');
        assert.equal(c.dataset, j.data.dataset);
        assert.ok(await exists(await claimedFile(root, c.claimed)));
      }
      assert.deepEqual(new Set(calls.map((c) => c.claimed)), new Set(claimedPaths), 'nothing else was enqueued');
      const firstBy = new Map<string, string>();
      for (const c of calls) if (!firstBy.has(c.claimed)) firstBy.set(c.claimed, c.watcher);
      assert.equal(firstBy.size, 20);

      for (const d of DATASETS) assert.deepEqual(await files(path.join(inboxDir(root), d)), d === 'sales' ? ['.upload-in-progress.csv'] : []);
      assert.deepEqual(await files(path.join(inboxDir(root), 'Bad-Name')), ['ignored.csv'], 'an invalid dataset folder is left alone');
    });

    it('a claim orphaned between claim and enqueue, and a failed enqueue, are enqueued later', async () => {
      // a watcher that died right after its claim: the file sits in .claimed/ without a job
      await drop(root, 'sales/orphan.csv', 'id\n99\n', false); // not quiet yet, so the watchers leave it to us
      const orphan = await claim(root, { dataset: 'sales', file: 'orphan.csv' });
      assert.ok(orphan);
      await drop(root, 'events/flaky.csv');

      const orphanJob = describeClaim(orphan.claimed).jobId;
      await waitFor(async () => (await queue.getJob(orphanJob)) !== undefined, { timeoutMs: 15_000, what: 'the orphaned claim enqueued' });
      await waitFor(async () => (await jobs()).some((j) => j.data.source.filename === 'flaky.csv'), { timeoutMs: 15_000, what: 'flaky.csv enqueued after its failure' });
      assert.ok(flakyFailed);
      assert.ok(calls.some((c) => c.filename === 'flaky.csv' && !c.ok) && calls.some((c) => c.filename === 'flaky.csv' && c.ok));
      const all = await jobs();
      assert.equal(all.length, 22);
      assert.equal(all.filter((j) => j.id === orphanJob).length, 1);
    });

    it('settle moves files to processed/, and a failure to failed/ with its .error.txt', async () => {
      await Promise.all(watchers.map((w) => w.stop()));
      const all = await jobs();
      const failing = all.find((j) => j.data.source.filename === 'sales-02.csv')!;
      assert.ok(failing);
      for (const j of all) {
        const outcome = j === failing
          ? { ok: false as const, error: 'column id: "x" is not a number (from postgres://loader:hunter2@db/sales)' }
          : { ok: true as const };
        assert.ok(await settle(root, j.data.source.path, outcome), j.data.source.path);
      }
      const inbox = inboxDir(root);
      assert.deepEqual(await files(path.join(inbox, '.claimed', 'sales')), []);
      assert.deepEqual(await files(path.join(inbox, '.claimed', 'events')), []);

      const processedSales = await files(path.join(inbox, 'processed', 'sales'));
      const processedEvents = await files(path.join(inbox, 'processed', 'events'));
      assert.equal(processedSales.length, 10, processedSales.join(', ')); // 10 dropped − the failing one + orphan.csv
      assert.equal(processedEvents.length, 11, processedEvents.join(', ')); // 10 dropped + flaky.csv
      for (const name of [...processedSales, ...processedEvents]) assert.match(name, /^\d{8}T\d{9}Z(-\d+)?__[a-z]+-?\w*\.csv$/);
      assert.ok(!processedSales.some((n) => n.endsWith('__sales-02.csv')));
      const content = await fs.readFile(path.join(inbox, 'processed', 'events', processedEvents.find((n) => n.endsWith('__events-01.csv'))!), 'utf8');
      assert.equal(content, 'id\n1\n', 'the file itself was moved');

      const failed = await files(path.join(inbox, 'failed', 'sales'));
      assert.equal(failed.length, 2, failed.join(', '));
      const [file, errorTxt] = failed as [string, string];
      assert.match(file, /^\d{8}T\d{9}Z__sales-02\.csv$/);
      assert.equal(errorTxt, `${file}.error.txt`);
      const error = await fs.readFile(path.join(inbox, 'failed', 'sales', errorTxt), 'utf8');
      assert.match(error, /is not a number/);
      assert.doesNotMatch(error, /hunter2/, 'passwords are redacted');
      assert.deepEqual(await files(path.join(inbox, 'Bad-Name')), ['ignored.csv']);
    });
  });
});
