/**
 * The `lakehouse` command as a user runs it: real child processes of bin/lakehouse.js against
 * the real Redis on 127.0.0.1:6379 (or a private redis-server `up` starts), each test with its
 * own data directory, queue prefix and port.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { Redis } from 'ioredis';
import { canReach } from '../../shared/redis/connection.ts';
import { freePort } from '../../shared/redis/private-server.ts';
import { CliProcess, type Run } from '../helpers/cli-process.ts';
import { deleteKeys, TEST_REDIS_URL, waitFor, writeCsv } from '../helpers/env.ts';

const BIN = path.resolve(import.meta.dirname, '../../bin/lakehouse.js');
const SHUTDOWN_TIMEOUT_MS = 10_000;

interface Sandbox {
  dataDir: string;
  workDir: string;
  prefix: string;
  port: number;
  env: NodeJS.ProcessEnv;
  /** Starts a CLI process; killed by the test's cleanup if still running. */
  start(args: string[]): CliProcess;
  /** Runs a CLI command to its end. */
  run(args: string[], timeoutMs?: number): Promise<Run>;
}

/** A fresh data dir, queue prefix and port, and an environment that names them and nothing else of ours. */
async function sandbox(t: TestContext, extraEnv: Record<string, string> = {}): Promise<Sandbox> {
  const workDir = await fs.mkdtemp(path.join(os.tmpdir(), 'lhtest-cli-'));
  const dataDir = path.join(workDir, 'data');
  const prefix = `lhtest-${randomBytes(6).toString('hex')}`;
  const port = await freePort();
  const env: NodeJS.ProcessEnv = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('LAKEHOUSE_') && !['REDIS_URL', 'PORT', 'LOG_LEVEL'].includes(k)),
  );
  Object.assign(env, {
    REDIS_URL: TEST_REDIS_URL,
    LAKEHOUSE_DATA_DIR: dataDir,
    LAKEHOUSE_QUEUE_PREFIX: prefix,
    LAKEHOUSE_SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS),
    PORT: String(port),
    LOG_LEVEL: 'warn',
    ...extraEnv,
  });
  const children: CliProcess[] = [];
  const start = (args: string[]) => {
    const proc = new CliProcess(spawn(process.execPath, [BIN, ...args], { env, cwd: workDir, stdio: ['ignore', 'pipe', 'pipe'] }));
    children.push(proc);
    return proc;
  };
  t.after(async () => {
    // SIGTERM first, so a failed test's `up` still stops its sandboxed processors; SIGKILL past the deadline
    const left = children.filter((proc) => proc.running);
    for (const proc of left) proc.child.kill('SIGTERM');
    await Promise.all(left.map((proc) => proc.exit(SHUTDOWN_TIMEOUT_MS + 5_000).catch(() => {})));
    for (const pid of await redisServersIn(path.join(dataDir, 'redis'))) process.kill(pid, 'SIGKILL');
    const redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: 3 });
    try {
      await deleteKeys(redis, `${prefix}:*`);
    } finally {
      redis.disconnect();
    }
    await fs.rm(workDir, { recursive: true, force: true });
  });
  return { dataDir, workDir, prefix, port, env, start, run: (args, timeoutMs = 30_000) => start(args).exit(timeoutMs) };
}

/**
 * Waits until GET /health answers and the banner (printed once the workers run too) is out;
 * fails at once, with the output, if the process dies first.
 */
async function waitForUp(sb: Sandbox, proc: CliProcess, timeoutMs = 30_000): Promise<void> {
  const ready = waitFor(
    async () => proc.stderr.includes('Stop with Ctrl-C') && (await fetch(`http://127.0.0.1:${sb.port}/health`)).ok,
    { timeoutMs, intervalMs: 100, what: `lakehouse up on port ${sb.port}` },
  );
  ready.catch(() => {}); // when the process dies first, that is the failure to report
  const outcome = await Promise.race([ready.then(() => 'ready' as const, (err: Error) => err), proc.exited.then(() => 'exited' as const)]);
  if (outcome === 'ready') return;
  throw new Error(`${outcome === 'exited' ? 'lakehouse up exited before it was ready' : outcome.message}\n${proc.output}`);
}

/** redis-server rewrites its title, but it chdirs into --dir: find ours by working directory. */
async function redisServersIn(dir: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const [cmdline, cwd] = await Promise.all([
      fs.readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => ''),
      fs.readlink(`/proc/${entry}/cwd`).catch(() => ''),
    ]);
    if (cmdline.includes('redis-server') && cwd === dir) pids.push(Number(entry));
  }
  return pids;
}

test('up serves the API and workers; ingest --wait, query and jobs talk to it; SIGTERM stops it with 0', { timeout: 90_000 }, async (t) => {
  const sb = await sandbox(t);
  const up = sb.start(['up']);
  await waitForUp(sb, up);

  const keyFile = path.join(sb.dataDir, 'secrets', 'admin.key');
  assert.equal((await fs.stat(keyFile)).mode & 0o777, 0o600, 'the generated key file is readable by its owner only');
  assert.match(up.stderr, new RegExp(`API\\s+http://127\\.0\\.0\\.1:${sb.port}`), `the banner names the API URL\n${up.output}`);
  assert.ok(up.stderr.includes(keyFile), 'the banner says where the key is');

  const csv = path.join(sb.workDir, 'people.csv');
  await writeCsv(csv, [['id', 'name', 'age'], [1, 'Ada', 36], [2, 'Smith, John', 41], [3, 'Zoë', 29]]);
  const ingest = await sb.run(['ingest', csv, '--dataset', 'people', '--wait']);
  assert.equal(ingest.code, 0, `ingest --wait succeeds\n${ingest.stderr}`);
  const result = JSON.parse(ingest.stdout) as { dataset: string; rows: number; dataset_rows: number };
  assert.equal(result.dataset, 'people');
  assert.equal(result.rows, 3);
  assert.equal(result.dataset_rows, 3);
  const jobId = /ingest job (\S+) queued/.exec(ingest.stderr)?.[1];
  assert.ok(jobId, `ingest names the job on stderr\n${ingest.stderr}`);
  assert.match(ingest.stderr, /100%/, 'the progress (one line per 10 % off a terminal) reaches 100 %');

  const query = await sb.run(['query', 'SELECT count(*) AS n FROM people']);
  assert.equal(query.code, 0, query.stderr);
  assert.match(query.stdout, /^n\n-+\n\s*3\n\(1 row\)\n$/, `a one-cell table\n${query.stdout}`);

  const jobs = await sb.run(['jobs', 'ingest', '--state', 'completed']);
  assert.equal(jobs.code, 0, jobs.stderr);
  const line = jobs.stdout.split('\n').find((l) => l.startsWith(`${jobId} `));
  assert.ok(line, `the job is listed\n${jobs.stdout}`);
  assert.match(line, /\bcompleted\b.*\b100%/);

  const counts = await sb.run(['jobs']);
  assert.equal(counts.code, 0, counts.stderr);
  const header = counts.stdout.split('\n')[0]!.split(/\s+/);
  const ingestRow = counts.stdout.split('\n').find((l) => l.startsWith('ingest '))!.split(/\s+/);
  assert.equal(ingestRow[header.indexOf('completed')], '1', `counts per queue\n${counts.stdout}`);

  const bad = await sb.run(['jobs', 'no_such_queue']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^error 4\d\d: .*no_such_queue/, `a problem+json answer is shown as "error <status>: <detail>"\n${bad.stderr}`);

  up.child.kill('SIGTERM');
  const stopped = await up.exit(SHUTDOWN_TIMEOUT_MS + 10_000);
  assert.equal(stopped.code, 0, `up exits 0 after SIGTERM\n${up.output}`);
});

test('up starts a private redis-server when REDIS_URL answers nowhere, and stops it on SIGTERM', { timeout: 60_000 }, async (t) => {
  const sb = await sandbox(t, { REDIS_URL: `redis://127.0.0.1:${await freePort()}`, LAKEHOUSE_PRIVATE_REDIS: 'auto' });
  const redisDir = path.join(sb.dataDir, 'redis');
  const up = sb.start(['up']);
  await waitForUp(sb, up);

  assert.match(up.stdout, /started a private redis-server at redis:\/\/127\.0\.0\.1:\d+/, `the log says so\n${up.output}`);
  const privateUrl = /started a private redis-server at (redis:\/\/127\.0\.0\.1:\d+)/.exec(up.stdout)![1]!;
  assert.ok((await fs.readdir(redisDir)).length > 0, 'its files are under <data dir>/redis');
  assert.equal((await redisServersIn(redisDir)).length, 1, 'one redis-server runs in that directory');
  // it requires the generated password (test/security/private-redis-auth.test.ts has the attacks)
  const password = (await fs.readFile(path.join(sb.dataDir, 'secrets', 'redis.password'), 'utf8')).trim();
  const authUrl = privateUrl.replace('redis://', `redis://:${password}@`);
  assert.ok(await canReach(authUrl));
  assert.equal(await canReach(privateUrl), false, 'no answer without the password');

  up.child.kill('SIGTERM');
  const stopped = await up.exit(SHUTDOWN_TIMEOUT_MS + 10_000);
  assert.equal(stopped.code, 0, `up exits 0 after SIGTERM\n${up.output}`);
  assert.deepEqual(await redisServersIn(redisDir), [], 'the private redis-server is gone');
  assert.equal(await canReach(authUrl), false);
});

test('up with LAKEHOUSE_PRIVATE_REDIS=never and no Redis exits 1 saying how to get one', { timeout: 30_000 }, async (t) => {
  const sb = await sandbox(t, { REDIS_URL: `redis://127.0.0.1:${await freePort()}`, LAKEHOUSE_PRIVATE_REDIS: 'never' });
  const run = await sb.run(['up']);
  assert.equal(run.code, 1, run.stderr);
  assert.match(run.stderr, /no Redis answers at redis:\/\/127\.0\.0\.1:\d+/);
  assert.match(run.stderr, /apt install redis-server/);
  assert.match(run.stderr, /docker run .*redis:7/);
  assert.match(run.stderr, /REDIS_URL/);
  await assert.rejects(fs.access(path.join(sb.dataDir, 'redis')), 'no private redis was started');
});

test('bad configuration and bad arguments exit 2 with a message, not a stack', { timeout: 30_000 }, async (t) => {
  const sb = await sandbox(t, { PORT: 'abc' });
  const badPort = await sb.run(['up']);
  assert.equal(badPort.code, 2, badPort.stderr);
  assert.match(badPort.stderr, /^\s*PORT: /m, 'the message names PORT');
  assert.doesNotMatch(badPort.stderr, /^\s+at /m, 'no stack trace');

  for (const args of [['frobnicate'], ['query', '--bogus', 'SELECT 1'], ['worker', '--queues', 'nope'], ['jobs', '--limit', 'many'], ['ingest', 'x.csv', '-d', 'x', '--on-error', 'ignore']]) {
    const run = await sb.run(args);
    assert.equal(run.code, 2, `lakehouse ${args.join(' ')}: ${run.stderr}`);
    assert.match(run.stderr, /Run `lakehouse .*--help` for usage/);
  }
  const help = await sb.run(['ingest', '--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^Usage: lakehouse ingest FILE --dataset NAME/);
  assert.match(help.stdout, /--on-error MODE/);
});
