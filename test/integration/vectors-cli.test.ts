/**
 * `lakehouse embed`, `search` and `refresh` as a user runs them: real child processes of
 * bin/lakehouse.js against `lakehouse up` (API and workers, the offline local embedder) on the
 * real Redis, with their own data directory, queue prefix and port.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { Redis } from 'ioredis';
import { freePort } from '../../shared/redis/private-server.ts';
import { CliProcess, type Run } from '../helpers/cli-process.ts';
import { deleteKeys, TEST_REDIS_URL, waitFor, writeCsv } from '../helpers/env.ts';

const BIN = path.resolve(import.meta.dirname, '../../bin/lakehouse.js');
const SHUTDOWN_TIMEOUT_MS = 10_000;

interface Sandbox {
  workDir: string;
  port: number;
  start(args: string[], extraEnv?: Record<string, string>): CliProcess;
  run(args: string[], opts?: { timeoutMs?: number; env?: Record<string, string> }): Promise<Run>;
}

/** A fresh data dir, queue prefix and port; every process it started is stopped and every key removed afterwards. */
async function sandbox(t: TestContext, extraEnv: Record<string, string>): Promise<Sandbox> {
  const workDir = await fs.mkdtemp(path.join(os.tmpdir(), 'lhtest-vcli-'));
  const prefix = `lhtest-${randomBytes(6).toString('hex')}`;
  const port = await freePort();
  const env: NodeJS.ProcessEnv = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('LAKEHOUSE_') && !['REDIS_URL', 'PORT', 'LOG_LEVEL', 'COLUMNS'].includes(k)),
  );
  Object.assign(env, {
    REDIS_URL: TEST_REDIS_URL,
    LAKEHOUSE_DATA_DIR: path.join(workDir, 'data'),
    LAKEHOUSE_QUEUE_PREFIX: prefix,
    LAKEHOUSE_SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS),
    PORT: String(port),
    LOG_LEVEL: 'warn',
    ...extraEnv,
  });
  const children: CliProcess[] = [];
  const start = (args: string[], more: Record<string, string> = {}) => {
    const proc = new CliProcess(spawn(process.execPath, [BIN, ...args], { env: { ...env, ...more }, cwd: workDir, stdio: ['ignore', 'pipe', 'pipe'] }));
    children.push(proc);
    return proc;
  };
  t.after(async () => {
    const left = children.filter((proc) => proc.running);
    for (const proc of left) proc.child.kill('SIGTERM');
    await Promise.all(left.map((proc) => proc.exit(SHUTDOWN_TIMEOUT_MS + 5_000).catch(() => {})));
    const redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: 3 });
    try {
      await deleteKeys(redis, `${prefix}:*`);
    } finally {
      redis.disconnect();
    }
    await fs.rm(workDir, { recursive: true, force: true });
  });
  return { workDir, port, start, run: (args, opts = {}) => start(args, opts.env).exit(opts.timeoutMs ?? 60_000) };
}

async function waitForUp(sb: Sandbox, proc: CliProcess): Promise<void> {
  const ready = waitFor(
    async () => proc.stderr.includes('Stop with Ctrl-C') && (await fetch(`http://127.0.0.1:${sb.port}/health`)).ok,
    { timeoutMs: 30_000, intervalMs: 100, what: `lakehouse up on port ${sb.port}` },
  );
  ready.catch(() => {});
  const outcome = await Promise.race([ready.then(() => 'ready' as const, (err: Error) => err), proc.exited.then(() => 'exited' as const)]);
  if (outcome === 'ready') return;
  throw new Error(`${outcome === 'exited' ? 'lakehouse up exited before it was ready' : outcome.message}\n${proc.output}`);
}

const DOCS = [
  ['bread', 'Knead the bread dough for ten minutes until it turns smooth and elastic, then let the loaf rise in a warm place.', 'OH'],
  ['football', 'The striker scored a late goal and the football club won the league match in front of a full stadium.', 'CA'],
  ['password', 'To reset your password, click the forgot password link on the login page and follow the email.', 'OH'],
  ['weather', 'Heavy rain and thunderstorms are expected across the region tomorrow afternoon, with strong winds.', 'NY'],
  ['dog', 'Walk your dog every day and give the puppy plenty of time to play, sniff around and rest.', 'TX'],
  ['stocks', 'The stock market fell sharply as investors sold shares after the disappointing earnings report.', 'OH'],
  ['guitar', 'Tune your guitar strings before you practice chords and scales on the acoustic guitar.', 'CA'],
  ['space', 'The telescope revealed the rings of Saturn and the moons of Jupiter on a clear night.', 'NY'],
];

test('embed --wait, search and refresh --wait against lakehouse up', { timeout: 150_000 }, async (t) => {
  // 8 documents, 3 chunks a shard: the embed fans out into 3 shard jobs
  const sb = await sandbox(t, { LAKEHOUSE_EMBED_SHARD_CHUNKS: '3', LAKEHOUSE_EMBED_THREADS: '1' });
  const up = sb.start(['up']);
  await waitForUp(sb, up);

  const csv = path.join(sb.workDir, 'docs.csv');
  await writeCsv(csv, [['id', 'body', 'state'], ...DOCS]);
  const ingest = await sb.run(['ingest', csv, '--dataset', 'docs', '--wait']);
  assert.equal(ingest.code, 0, `ingest --wait\n${ingest.stderr}`);

  const embed = await sb.run(['embed', '--index', 'docs_idx', '--dataset', 'docs', '--id-column', 'id', '--text-column', 'body', '--wait'], { timeoutMs: 90_000 });
  assert.equal(embed.code, 0, `embed --wait succeeds\n${embed.stdout}\n${embed.stderr}`);
  const result = JSON.parse(embed.stdout) as Record<string, unknown>;
  assert.deepEqual({ ...result, seconds: 0 }, { index: 'docs_idx', generation: 1, docs: 8, chunks: 8, dims: 512, seconds: 0 });
  assert.match(embed.stderr, /^embed job \S+ queued$/m, embed.stderr);
  assert.match(embed.stderr, /100%/, `the progress reaches 100 %\n${embed.stderr}`);

  const search = await sb.run(['search', 'docs_idx', 'How do I bake bread at home?', '--k', '3']);
  assert.equal(search.code, 0, search.stderr);
  const lines = search.stdout.trimEnd().split('\n');
  assert.match(lines[0]!, /^rank\s+score\s+doc_id\s+text$/, search.stdout);
  assert.match(lines[2]!, /^\s*1\s+0\.\d{4}\s+bread\s+Knead the bread dough/, `the bread document ranks first\n${search.stdout}`);
  assert.equal(lines.length, 2 + 3 + 1, search.stdout);
  assert.match(lines.at(-1)!, /^\(3 hits in [\d.]+ ms; plan hnsw; generation 1\)$/, search.stdout);

  // the text is cut to the terminal's width
  const narrow = await sb.run(['search', 'docs_idx', 'Is it going to storm tomorrow?', '--k', '2'], { env: { COLUMNS: '60' } });
  assert.equal(narrow.code, 0, narrow.stderr);
  for (const line of narrow.stdout.trimEnd().split('\n').slice(0, -1)) assert.ok([...line].length <= 60, `"${line}" is wider than 60`);
  assert.match(narrow.stdout, /^\s*1\s+0\.\d{4}\s+weather\s+Heavy rain.*…$/m, narrow.stdout);

  const hybrid = await sb.run(['search', 'docs_idx', 'money and markets', '--filter', "state = 'OH'", '--json']);
  assert.equal(hybrid.code, 0, hybrid.stderr);
  const answer = JSON.parse(hybrid.stdout) as { hits: { doc_id: string }[]; plan: string; matched_docs: number };
  assert.equal(answer.plan, 'exact');
  assert.equal(answer.matched_docs, 3);
  assert.deepEqual(answer.hits.map((h) => h.doc_id).sort(), ['bread', 'password', 'stocks']);
  assert.equal(answer.hits[0]!.doc_id, 'stocks');

  const refresh = await sb.run(['refresh', 'docs_idx', '--wait']);
  assert.equal(refresh.code, 0, `refresh --wait succeeds\n${refresh.stderr}`);
  const refreshed = JSON.parse(refresh.stdout) as Record<string, unknown>;
  assert.deepEqual({ ...refreshed, seconds: 0 }, { index: 'docs_idx', added: 0, changed: 0, deleted: 0, embedded_chunks: 0, generation: 1, rebuilt: false, seconds: 0 });

  const queued = await sb.run(['refresh', 'docs_idx']);
  assert.equal(queued.code, 0, queued.stderr);
  assert.match(queued.stdout, /^\S+\n$/, 'without --wait: the job id alone');

  const failing = await sb.run(['embed', '--index', 'nothing_idx', '--dataset', 'no_such_dataset', '--id-column', 'id', '--text-column', 'body', '--wait']);
  assert.equal(failing.code, 1, failing.stderr);
  assert.match(failing.stderr, /error 400: dataset "no_such_dataset" does not exist/, 'refused at enqueue, before any job');

  const unknown = await sb.run(['search', 'no_such_index', 'anything']);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /^error 404: .*no_such_index/, unknown.stderr);
  const badFilter = await sb.run(['search', 'docs_idx', 'anything', '--filter', 'no_such_column = 1']);
  assert.equal(badFilter.code, 1);
  assert.match(badFilter.stderr, /^error 400: /, badFilter.stderr);

  for (const args of [
    ['embed', '--index', 'x_idx', '--dataset', 'docs'],
    ['embed', '--index', 'x_idx', '--dataset', 'docs', '--id-column', 'id', '--text-column', 'body', '--provider-url', 'http://127.0.0.1:9/'],
    ['embed', '--index', 'x_idx', '--dataset', 'docs', '--id-column', 'id', '--text-column', 'body', '--refresh-policy', 'sometimes'],
    ['search', 'docs_idx'],
    ['search', 'docs_idx', 'text', '--k', 'ten'],
    ['refresh'],
  ]) {
    const run = await sb.run(args);
    assert.equal(run.code, 2, `lakehouse ${args.join(' ')}: ${run.stderr}`);
    assert.match(run.stderr, /Run `lakehouse (embed|search|refresh) --help` for usage/);
  }
  // provider names are the server's to check: an unconfigured one is its 400, naming the setting
  const nope = await sb.run(['embed', '--index', 'x_idx', '--dataset', 'docs', '--id-column', 'id', '--text-column', 'body', '--provider', 'nope']);
  assert.equal(nope.code, 1, nope.stderr);
  assert.match(nope.stderr, /error 400: embedding provider "nope" is not configured on this server.*LAKEHOUSE_EMBED_PROVIDER_/);
  const help = await sb.run(['search', '--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^Usage: lakehouse search INDEX "TEXT"/);
  const overview = await sb.run(['--help']);
  for (const name of ['embed', 'search', 'refresh']) assert.match(overview.stdout, new RegExp(`^  ${name}\\s`, 'm'));

  up.child.kill('SIGTERM');
  const stopped = await up.exit(SHUTDOWN_TIMEOUT_MS + 10_000);
  assert.equal(stopped.code, 0, `up exits 0 after SIGTERM\n${up.output}`);
});
