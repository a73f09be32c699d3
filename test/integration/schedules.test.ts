/**
 * Repeatable jobs over HTTP against real Redis: the schedule routes on a Koa app of their own
 * (auth and problem middleware as the API has them), a real Producer sealing payloads, and a plain
 * BullMQ worker where a schedule must be seen producing jobs.
 *
 * Not covered: PUT of an id that exists on *another* queue (409) — `ingest` is the only queue
 * declared today, so there is no second queue to hold the id.
 */
import { Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import Koa from 'koa';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { authenticate } from '../../api/auth.ts';
import { problemMiddleware } from '../../api/problem.ts';
import { RouteTable } from '../../api/route-table.ts';
import { scheduleRoutes } from '../../api/routes/schedules.ts';
import { Producer } from '../../queues/producer.ts';
import { createSealContext } from '../../queues/seal-context.ts';
import { KeyRing } from '../../shared/auth/key-ring.ts';
import { loadConfig, type Config } from '../../shared/config.ts';
import { createLogger } from '../../shared/logger.ts';
import { createRedis, waitForReady } from '../../shared/redis/connection.ts';
import { DataRoot } from '../../shared/storage/data-root.ts';
import { testEnv, waitFor, type TestEnv } from '../helpers/env.ts';
import { assertProblem, call, type CallOptions } from '../helpers/http.ts';

const WRITER = 'writer-key-5e8d3a6c1b0f';
const READER = 'reader-key-9a2b4c6d8e0f';
const ADMIN = 'admin-key-7c1f0e9a4b2d';
const PASSWORD = 'hunter2-sched-pw';
const HOUR = 3_600_000;

/** An hourly incremental Postgres ingest with a DSN the server must seal (an admin's, with LAKEHOUSE_ALLOW_JOB_DSN=true). */
const ordersPayload = {
  dataset: 'orders',
  source: { kind: 'postgres', dsn: `postgres://loader:${PASSWORD}@127.0.0.1:5432/shop`, table: 'orders', incremental: { column: 'updated_at' } },
};
/** The README's example: the same, from a connection named on the server — what writers schedule. */
const namedPayload = { dataset: 'orders', source: { kind: 'postgres', connection: 'shop', table: 'orders', incremental: { column: 'updated_at' } } };

const log = createLogger('silent', 'test');
let env: TestEnv;
let config: Config;
let redis: Redis;
let producer: Producer;
let base = '';
let table: RouteTable;

const as = (key: string | undefined, p: string, opts: CallOptions = {}) => call(base, p, { ...opts, ...(key ? { key } : {}) });
const put = (key: string, id: string, body: unknown) => as(key, `/schedules/${id}`, { method: 'PUT', body });

/** Every string value under the test's prefix: hashes, strings, lists, sets and sorted sets. */
async function everythingInRedis(): Promise<string> {
  const out: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await env.redis.scan(cursor, 'MATCH', `${env.prefix}:*`, 'COUNT', 500);
    cursor = next;
    for (const key of keys) {
      const type = await env.redis.type(key);
      if (type === 'hash') out.push(...Object.values(await env.redis.hgetall(key)));
      else if (type === 'string') out.push((await env.redis.get(key)) ?? '');
      else if (type === 'list') out.push(...(await env.redis.lrange(key, 0, -1)));
      else if (type === 'set') out.push(...(await env.redis.smembers(key)));
      else if (type === 'zset') out.push(...(await env.redis.zrange(key, '0', '-1')));
      else if (type === 'stream') out.push(JSON.stringify(await env.redis.xrange(key, '-', '+')));
    }
  } while (cursor !== '0');
  return out.join('\n');
}

describe('schedules', { timeout: 60_000 }, () => {
  before(async () => {
    env = await testEnv();
    config = loadConfig({
      ...process.env, LAKEHOUSE_API_KEYS: `${ADMIN}:admin,${WRITER}:writer,${READER}:reader`,
      LAKEHOUSE_ALLOW_JOB_DSN: 'true', LAKEHOUSE_CONNECTION_SHOP: `postgres://loader:${PASSWORD}@127.0.0.1:5432/shop`,
    });
    const root = new DataRoot(env.dataDir);
    await root.ensure();
    redis = createRedis(config.redisUrl, 'producer');
    redis.on('error', () => {});
    await waitForReady(redis);
    producer = new Producer(redis, config.queuePrefix, await createSealContext(config));

    table = new RouteTable();
    scheduleRoutes(table, { producer, redis, config });
    const app = new Koa();
    app.use(problemMiddleware(log));
    app.use(authenticate(new KeyRing(config.apiKeys)));
    app.use(table.router.routes());
    app.use(table.router.allowedMethods());
    const server = http.createServer(app.callback());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    env.defer(async () => {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await producer.close();
      await redis.quit().catch(() => redis.disconnect());
    });
  });

  after(() => env?.cleanup());

  it('PUT creates (201) and replaces (200); GET shows the cadence and a future next run; the DSN is sealed', async () => {
    const start = new Date(Date.now() + 2 * HOUR).toISOString();
    const created = await put(ADMIN, 'orders-hourly', { queue: 'ingest', payload: ordersPayload, every_ms: HOUR, start });
    assert.equal(created.status, 201, created.text);
    assert.equal(created.headers.get('location'), '/schedules/orders-hourly');
    assert.equal(created.json.id, 'orders-hourly');
    assert.equal(created.json.queue, 'ingest');
    assert.equal(created.json.every_ms, HOUR);
    assert.equal(created.json.cron, undefined);
    assert.equal(created.json.start, start);
    assert.equal(created.json.next_run_at, start, 'an interval schedule first runs at its start');
    const source = created.json.payload.source;
    assert.equal(source.dsn, undefined, 'no DSN in the stored payload');
    assert.match(source.secret, /^[0-9a-f-]{36}$/);
    assert.equal(source.table, 'orders');
    assert.deepEqual(source.incremental, { column: 'updated_at' });
    assert.doesNotMatch(created.text, new RegExp(PASSWORD));
    assert.doesNotMatch(await everythingInRedis(), new RegExp(PASSWORD), 'the password is nowhere in Redis');

    const before = Date.now();
    const replaced = await put(ADMIN, 'orders-hourly', { queue: 'ingest', payload: ordersPayload, cron: '0 * * * *', tz: 'Europe/Berlin', limit: 48 });
    assert.equal(replaced.status, 200, replaced.text);
    assert.equal(replaced.headers.get('location'), null);
    assert.equal(replaced.json.cron, '0 * * * *');
    assert.equal(replaced.json.tz, 'Europe/Berlin');
    assert.equal(replaced.json.limit, 48);
    assert.equal(replaced.json.every_ms, undefined, 'the interval is replaced, not kept');
    assert.equal(replaced.json.start, undefined);
    const next = Date.parse(replaced.json.next_run_at);
    assert.ok(next > before && next <= before + HOUR, `next run ${replaced.json.next_run_at} within the coming hour`);
    assert.equal(next % HOUR, 0, 'on the hour (Berlin is a whole number of hours from UTC)');

    const one = await as(WRITER, '/schedules/orders-hourly');
    assert.equal(one.status, 200, one.text);
    assert.deepEqual(one.json, replaced.json);
    const { payload: _payload, ...withoutPayload } = one.json;
    assert.deepEqual((await as(READER, '/schedules/orders-hourly')).json, withoutPayload, 'readers see no payload');
    assert.ok(Date.parse(one.json.next_run_at) > Date.now(), 'next_run_at is in the future');
    assert.ok(one.json.iteration_count >= 1);

    const list = await as(WRITER, '/schedules');
    assert.equal(list.status, 200, list.text);
    assert.deepEqual(list.json.schedules, [one.json]);
    assert.deepEqual((await as(WRITER, '/schedules?queue=ingest')).json.schedules, [one.json]);
    assert.deepEqual((await as(READER, '/schedules')).json.schedules, [withoutPayload]);
    assertProblem(await as(READER, '/schedules?queue=nosuch'), 404, 'list of an unknown queue');
  });

  it('refuses bad cadences, payloads, ids and queues with problems, and stores nothing', async () => {
    const bad = async (body: Record<string, unknown>, field: string, detail: RegExp, id = 'refused') => {
      const p = assertProblem(await put(WRITER, id, { queue: 'ingest', payload: namedPayload, ...body }), 400, JSON.stringify(body));
      assert.ok(p.errors?.some((e) => e.path === `body.${field}` && detail.test(e.message)), `${JSON.stringify(body)}: ${JSON.stringify(p.errors)}`);
      return p;
    };
    await bad({ cron: '61 * * * *' }, 'cron', /61/);
    await bad({ cron: 'x * * * *' }, 'cron', /invalid/);
    await bad({ cron: '* * *' }, 'cron', /3 field/);
    await bad({ cron: '0 0 31 2 *' }, 'cron', /.+/);
    await bad({ cron: '0 * * * *', tz: 'Mars/Olympus' }, 'tz', /unknown time zone/);
    await bad({ cron: '0 * * * *', every_ms: 60_000 }, 'cron', /exactly one of every_ms or cron/);
    await bad({}, 'every_ms', /exactly one/);
    await bad({ every_ms: 500 }, 'every_ms', /1000/);
    await bad({ every_ms: 60_000, tz: 'UTC' }, 'tz', /cron/);
    await bad({ every_ms: 60_000, end: new Date(Date.now() - HOUR).toISOString() }, 'end', /future/);
    await bad({ every_ms: 60_000, start: new Date(Date.now() + 2 * HOUR).toISOString(), end: new Date(Date.now() + HOUR).toISOString() }, 'end', /after start/);
    await bad({ cron: '0 0 1 1 *', end: new Date(Date.now() + 60_000).toISOString() }, 'cron', /does not fire/);
    await bad({ every_ms: 60_000, start: 'tomorrow' }, 'start', /.+/);

    const payload = assertProblem(await put(WRITER, 'refused', { queue: 'ingest', every_ms: 60_000, payload: { dataset: '../x', source: { kind: 'nosuch' } } }), 400, 'bad payload');
    assert.ok(payload.errors?.some((e) => e.path === 'body.payload.dataset'), JSON.stringify(payload.errors));
    assert.ok(payload.errors?.every((e) => e.path.startsWith('body.payload')), JSON.stringify(payload.errors));
    assertProblem(await put(WRITER, 'refused', { queue: 'ingest', every_ms: 60_000 }), 400, 'no payload');
    assertProblem(await put(WRITER, 'refused', { queue: 'ingest', every_ms: 60_000, payload: namedPayload, evry: 1 }), 400, 'unknown field');
    assertProblem(await put(WRITER, 'refused', { queue: 'nosuch', every_ms: 60_000, payload: namedPayload }), 404, 'unknown queue');
    assertProblem(await put(WRITER, 'bad:id', { queue: 'ingest', every_ms: 60_000, payload: namedPayload }), 400, 'id with a colon');
    assertProblem(await put(WRITER, 'x'.repeat(129), { queue: 'ingest', every_ms: 60_000, payload: namedPayload }), 400, 'id too long');
    assertProblem(await as(WRITER, '/schedules/refused', { method: 'PUT', body: '{"queue": ' }), 400, 'broken JSON');

    assertProblem(await as(READER, '/schedules/refused'), 404, 'nothing stored');
    assert.deepEqual((await as(READER, '/schedules')).json.schedules.map((s: { id: string }) => s.id), ['orders-hourly']);
  });

  it('roles: readers read, writers and admins write', async () => {
    const body = { queue: 'ingest', payload: namedPayload, cron: '30 2 * * *' };
    assertProblem(await as(undefined, '/schedules'), 401, 'no key');
    const forbidden = assertProblem(await put(READER, 'nightly', body), 403, 'reader PUT');
    assert.match(forbidden.detail, /writer/);
    assertProblem(await as(READER, '/schedules/orders-hourly', { method: 'DELETE' }), 403, 'reader DELETE');
    assertProblem(await as(READER, '/schedules/orders-hourly/run', { method: 'POST' }), 403, 'reader run');
    assertProblem(await as(READER, '/schedules/nightly'), 404, 'the refused PUT stored nothing');
    assert.equal((await put(ADMIN, 'nightly', body)).status, 201, 'admin implies writer');
    // a DSN in the payload is an admin's decision even where the server allows job DSNs
    const dsnByWriter = assertProblem(await put(WRITER, 'nightly_dsn', { ...body, payload: ordersPayload }), 403, 'writer PUT with a DSN');
    assert.match(dsnByWriter.detail, /admin role.*LAKEHOUSE_ALLOW_JOB_DSN.*connection/);
    assertProblem(await as(READER, '/schedules/nightly_dsn'), 404, 'the refused PUT stored nothing');
    assert.equal((await as(ADMIN, '/schedules/nightly', { method: 'DELETE' })).status, 204);
  });

  it('two PUTs creating one id at once: one 201, one 200', async () => {
    const body = { queue: 'ingest', payload: namedPayload, cron: '15 3 * * *', tz: 'UTC' };
    const answers = await Promise.all([put(WRITER, 'raced', body), put(WRITER, 'raced', body), put(WRITER, 'raced', body)]);
    assert.deepEqual(answers.map((a) => a.status).sort(), [200, 200, 201], answers.map((a) => a.text).join('\n'));
    assert.equal((await as(WRITER, '/schedules/raced', { method: 'DELETE' })).status, 204);
  });

  it('the OpenAPI document describes every schedule route', () => {
    const doc = table.openapi({ title: 't', version: '0', description: 'd' }) as { paths: Record<string, Record<string, any>> };
    assert.deepEqual(Object.keys(doc.paths['/schedules/{id}'] ?? {}).sort(), ['delete', 'get', 'put']);
    assert.ok(doc.paths['/schedules']?.['get']);
    assert.ok(doc.paths['/schedules/{id}/run']?.['post']);
    const body = doc.paths['/schedules/{id}']!['put'].requestBody.content['application/json'].schema;
    assert.deepEqual(Object.keys(body.properties).sort(), ['cron', 'end', 'every_ms', 'limit', 'payload', 'queue', 'start', 'tz']);
    assert.deepEqual(body.required.sort(), ['payload', 'queue']);
  });

  it("POST /schedules/:id/run enqueues one job now with the schedule's payload", async () => {
    const schedule = (await as(WRITER, '/schedules/orders-hourly')).json;
    const res = await as(WRITER, '/schedules/orders-hourly/run', { method: 'POST' });
    assert.equal(res.status, 202, res.text);
    assert.equal(res.json.queue, 'ingest');
    assert.equal(res.headers.get('location'), `/jobs/ingest/${res.json.id}`);
    assert.ok(['waiting', 'active', 'completed', 'failed', 'prioritized'].includes(res.json.state), res.json.state);
    const job = await producer.queue('ingest').getJob(res.json.id);
    assert.ok(job, 'the job exists');
    assert.deepEqual(job.data, schedule.payload);
    assert.equal(job.repeatJobKey, undefined, 'a one-off job, not an iteration of the schedule');

    const keyed = () => as(WRITER, '/schedules/orders-hourly/run', { method: 'POST', headers: { 'idempotency-key': 'orders-backfill-1' } });
    const first = await keyed();
    const second = await keyed();
    assert.equal(first.status, 202, first.text);
    assert.equal(first.json.id, 'orders-backfill-1');
    assert.equal(second.json.id, first.json.id, 'Idempotency-Key dedupes');
    assert.deepEqual((await as(WRITER, '/schedules/orders-hourly')).json, schedule, 'the schedule is unchanged');
    assertProblem(await as(WRITER, '/schedules/nosuch/run', { method: 'POST' }), 404, 'run an unknown schedule');
  });

  it('a 1-second schedule produces jobs with its payload; DELETE removes it (204, then 404)', async () => {
    const payload = { dataset: 'ticks', source: { kind: 'upload', path: 'staging/uploads/now.csv' } };
    const created = await put(WRITER, 'tick', { queue: 'ingest', payload, every_ms: 1_000 });
    assert.equal(created.status, 201, created.text);

    // iterations are made as the previous one is taken, so something must take them
    const seen: Job[] = [];
    const connection = createRedis(config.redisUrl, 'worker');
    const worker = new Worker('ingest', async (job) => void seen.push(job), { connection, prefix: env.prefix });
    worker.on('error', () => {});
    env.defer(async () => {
      await worker.close();
      await connection.quit().catch(() => connection.disconnect());
    });
    const ticks = () => seen.filter((j) => j.id?.startsWith('repeat:tick:'));
    await waitFor(() => ticks().length >= 3, { timeoutMs: 20_000, intervalMs: 100, what: 'three runs of the 1 s schedule' });
    await worker.close();

    const runs = ticks();
    assert.equal(new Set(runs.map((j) => j.id)).size, runs.length, 'each run is its own job');
    for (const j of runs) assert.deepEqual(j.data, created.json.payload);
    const after = (await as(WRITER, '/schedules/tick')).json;
    assert.ok(after.iteration_count >= 3, `iteration_count ${after.iteration_count}`);

    const del = await as(WRITER, '/schedules/tick', { method: 'DELETE' });
    assert.equal(del.status, 204, del.text);
    assertProblem(await as(READER, '/schedules/tick'), 404, 'GET after DELETE');
    assertProblem(await as(WRITER, '/schedules/tick', { method: 'DELETE' }), 404, 'DELETE again');
    assertProblem(await as(WRITER, '/schedules/tick/run', { method: 'POST' }), 404, 'run after DELETE');
    assert.deepEqual((await as(READER, '/schedules')).json.schedules.map((s: { id: string }) => s.id), ['orders-hourly']);
  });
});
