/**
 * The private redis-server `lakehouse up` starts (bin/ensure-redis.ts) requires a generated
 * password kept in <data root>/secrets/redis.password (0600). Any local process reaching its
 * loopback port without it is refused, whatever it tries; the password is on no command line and
 * in no log; and the cluster still works through it — including a sandboxed ingest processor,
 * a child process that gets REDIS_URL (with the password) from its parent's environment.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { ensureRedis } from '../../bin/ensure-redis.ts';
import { Producer } from '../../queues/producer.ts';
import { createSealContext } from '../../queues/seal-context.ts';
import { loadConfig, type Config } from '../../shared/config.ts';
import { createRedis, waitForReady } from '../../shared/redis/connection.ts';
import { ensureRedisPassword, freePort, REDIS_PASSWORD_FILE, type PrivateRedis } from '../../shared/redis/private-server.ts';
import { startWorkers } from '../../workers/runner.ts';
import { csvText, testEnv, waitFor, type TestEnv } from '../helpers/env.ts';
import { assertNoSandboxChildrenLeft } from '../helpers/jobs.ts';

let env: TestEnv;
let config: Config;
let privateRedis: PrivateRedis;
let password: string;
let port: number;
const logLines: string[] = [];

/** Sends raw RESP inline commands on a fresh socket (no client library, no AUTH) and returns the first reply line of each. */
async function rawReplies(commands: string[]): Promise<string[]> {
  const socket = net.connect(port, '127.0.0.1');
  const replies: string[] = [];
  let buffer = '';
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.on('data', (d) => {
      buffer += d.toString('utf8');
      let cut: number;
      while ((cut = buffer.indexOf('\r\n')) >= 0) {
        const line = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        if (/^[-+:$*%_#,(=~>|]/.test(line)) replies.push(line); // a reply's first line (bulk bodies follow their header)
        if (replies.length === commands.length) return resolve();
      }
    });
    socket.once('connect', () => socket.write(commands.map((c) => `${c}\r\n`).join('')));
  });
  socket.destroy();
  return replies;
}

describe('private Redis password', { timeout: 90_000 }, () => {
  before(async () => {
    env = await testEnv();
    const dead = `redis://127.0.0.1:${await freePort()}`;
    const configured = loadConfig({ ...process.env, REDIS_URL: dead, LAKEHOUSE_PRIVATE_REDIS: 'auto' });
    const log = pino({ level: 'info' }, { write: (line: string) => void logLines.push(line) });
    const supply = await ensureRedis(configured, log);
    privateRedis = supply.privateRedis!;
    env.defer(() => privateRedis.stop());
    config = supply.config;
    password = (await fs.readFile(path.join(env.dataDir, 'secrets', REDIS_PASSWORD_FILE), 'utf8')).trim();
    port = Number(new URL(config.redisUrl).port);
  });

  after(async () => {
    await env?.cleanup(); // restores REDIS_URL
    await assertNoSandboxChildrenLeft();
  });

  it('the password is generated into the secrets folder (0600), reused, and in no log or command line', async () => {
    const file = path.join(env.dataDir, 'secrets', REDIS_PASSWORD_FILE);
    assert.equal((await fs.stat(file)).mode & 0o777, 0o600);
    assert.match(password, /^[A-Za-z0-9_-]{40,}$/);
    assert.equal((await ensureRedisPassword(path.join(env.dataDir, 'secrets'))).password, password, 'a later `up` reuses it (the AOF outlives a run)');
    assert.equal(config.redisUrl, `redis://:${password}@127.0.0.1:${port}`, 'every client of the process connects with it');
    assert.equal(process.env['REDIS_URL'], config.redisUrl, 'and so do forked processors');
    assert.ok(logLines.some((l) => l.includes('started a private redis-server')), 'the start is logged');
    assert.ok(!logLines.some((l) => l.includes(password)), 'the password is never logged');
    const redisDir = path.join(env.dataDir, 'redis');
    let found = 0;
    for (const pid of (await fs.readdir('/proc')).filter((e) => /^\d+$/.test(e))) {
      const cwd = await fs.readlink(`/proc/${pid}/cwd`).catch(() => '');
      if (cwd !== redisDir) continue;
      found++;
      const cmdline = await fs.readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
      assert.ok(!cmdline.includes(password), 'the password is not on redis-server\'s command line');
    }
    assert.equal(found, 1, 'one private redis-server runs in <data root>/redis');
  });

  it('refuses every command of a client without the password (NOAUTH / WRONGPASS)', async () => {
    const attacks = [
      'PING', 'KEYS *', 'GET x', 'SET x 1', 'CONFIG GET requirepass', 'INFO', 'CLIENT LIST', 'EVAL "return 1" 0',
      'FLUSHALL', 'HELLO 3', 'SUBSCRIBE x', `SCAN 0 MATCH ${env.prefix}:*`,
      'AUTH wrong-password', 'AUTH default wrong-password', 'AUTH ""', `AUTH ${password.slice(0, -1)}`, `AUTH ${password.toUpperCase()}x`,
      'HELLO 3 AUTH default nope', 'PING',
    ];
    const replies = await rawReplies(attacks);
    assert.equal(replies.length, attacks.length);
    replies.forEach((r, i) => assert.match(r, /^-(NOAUTH|WRONGPASS|ERR AUTH)/, `${attacks[i]} → ${r}`));
    // the right password opens it: the refusals above are about the password, not a broken server
    assert.deepEqual(await rawReplies([`AUTH ${password}`, 'PING']), ['+OK', '+PONG']);
  });

  it('the cluster works through it: a sandboxed ingest child authenticates from its inherited REDIS_URL', async () => {
    const workers = await startWorkers({ config, queues: ['ingest'], concurrency: 1, log: pino({ level: 'silent' }) });
    env.defer(() => workers.close(5_000));
    const connection = createRedis(config.redisUrl, 'producer');
    env.defer(() => connection.quit().catch(() => connection.disconnect()));
    await waitForReady(connection);
    const producer = new Producer(connection, config.queuePrefix, await createSealContext(config));
    env.defer(() => producer.close());
    await fs.writeFile(path.join(env.uploadsDir, 'people.csv'), csvText([['id', 'name'], [1, 'Ada'], [2, 'Grace']]));
    const job = await producer.addPayload('ingest', { dataset: 'people', source: { kind: 'upload', path: 'staging/uploads/people.csv' }, mode: 'replace', format: 'csv' });
    const queue = producer.queue('ingest');
    await waitFor(async () => ['completed', 'failed'].includes(await queue.getJobState(job.id!)), { timeoutMs: 60_000, what: 'the ingest job' });
    const done = (await queue.getJob(job.id!))!;
    assert.equal(done.failedReason, undefined);
    assert.equal(done.returnvalue.rows, 2);
  });
});
