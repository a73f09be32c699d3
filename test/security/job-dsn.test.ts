/**
 * Job DSNs are an admin decision (issue #8, SECURITY.md): a `dsn` in an ingest job points a worker
 * at any address, so it is accepted only when LAKEHOUSE_ALLOW_JOB_DSN=true AND the caller is an
 * admin; writers name a connection the server configures. A real API and real sandboxed ingest
 * workers, and a TCP listener on 127.0.0.1 standing in for an internal port someone wants probed:
 * every refused shape, by every route and role, must leave no job behind and make no connection;
 * the one allowed shape (an admin, flag on) does reach it — proof the listener would notice.
 */
import assert from 'node:assert/strict';
import net, { type AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Queue } from 'bullmq';
import { startApi, type RunningApi } from '../../api/server.ts';
import { loadConfig } from '../../shared/config.ts';
import { startWorkers, type RunningWorkers } from '../../workers/runner.ts';
import { testEnv, waitFor, type TestEnv } from '../helpers/env.ts';
import { assertProblem, call, okJson } from '../helpers/http.ts';
import { assertNoSandboxChildrenLeft, silentLog } from '../helpers/jobs.ts';

const ADMIN = 'admin-key-jobdsn-4e1a9c0b72';
const WRITER = 'writer-key-jobdsn-8f3d2b6a15';
const READER = 'reader-key-jobdsn-2c7e5a9d30';
const PASSWORD = 'probe-pw-5b1c';

let env: TestEnv;
let closed: RunningApi;
let open: RunningApi;
let workers: RunningWorkers;
let listener: net.Server;
let port = 0;
const connections: number[] = [];
let ingestQueue: Queue;

/** Many shapes of "connect over there": every scheme the schema takes, several internal addresses. */
function dsnShapes(): string[] {
  return [
    `postgres://probe:${PASSWORD}@127.0.0.1:${port}/x`,
    `postgresql://probe:${PASSWORD}@localhost:${port}/x?sslmode=disable`,
    `mysql://root:${PASSWORD}@127.0.0.1:${port}/x`,
    `mariadb://root:${PASSWORD}@[::1]:${port}/x`,
    `postgres://probe:${PASSWORD}@169.254.169.254:80/latest`,
    `postgres://127.0.0.1:6379/redis?password=${PASSWORD}`,
    `postgres://probe:p@ss ${PASSWORD}@127.0.0.1:${port}/x`,
  ];
}

const source = (dsn: string) => ({ kind: dsn.startsWith('m') ? 'mysql' : 'postgres', dsn, table: 't' });
const jobCount = () => ingestQueue.getJobCountByTypes('waiting', 'active', 'completed', 'failed', 'delayed', 'prioritized');

describe('a DSN in a job: admins only, and only when the server allows it', { timeout: 120_000 }, () => {
  before(async () => {
    listener = net.createServer((socket) => {
      connections.push(Date.now());
      socket.destroy();
    });
    await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
    port = (listener.address() as AddressInfo).port;
    env = await testEnv();
    env.defer(() => new Promise<void>((resolve) => listener.close(() => resolve())));
    ingestQueue = new Queue('ingest', { connection: env.redis, prefix: env.prefix });
    env.defer(() => ingestQueue.close());
    workers = await startWorkers({ config: env.config, queues: ['ingest'], concurrency: 2, log: silentLog });
    env.defer(() => workers.close(5_000));
    const base = { ...process.env, LAKEHOUSE_API_KEYS: `${ADMIN}:admin,${WRITER}:writer,${READER}:reader`, LAKEHOUSE_HOST: '127.0.0.1', PORT: '0', LAKEHOUSE_CONNECTION_SHOP: `postgres://probe:${PASSWORD}@127.0.0.1:1/x` };
    closed = await startApi(loadConfig(base), silentLog);
    env.defer(() => closed.close());
    open = await startApi(loadConfig({ ...base, LAKEHOUSE_ALLOW_JOB_DSN: 'true' }), silentLog);
    env.defer(() => open.close());
  });

  after(async () => {
    await env?.cleanup();
    await assertNoSandboxChildrenLeft(10_000);
  });

  /** Every route that takes an ingest payload, for one key and one DSN. */
  async function tryAll(api: RunningApi, key: string, dsn: string) {
    const payload = { dataset: 'probed', source: source(dsn) };
    return [
      await call(api.url, '/jobs/ingest', { method: 'POST', key, body: payload }),
      await call(api.url, '/jobs/ingest/bulk', { method: 'POST', key, body: { jobs: [{ payload }, { payload: { dataset: 'other', source: { kind: 'postgres', connection: 'shop', table: 't' } } }] } }),
      await call(api.url, '/schedules/probe', { method: 'PUT', key, body: { queue: 'ingest', every_ms: 60_000, payload } }),
    ];
  }

  it('with LAKEHOUSE_ALLOW_JOB_DSN unset, nobody may post a DSN (400 naming the setting and a named connection); nothing is enqueued or connected', async () => {
    const before = await jobCount();
    for (const dsn of dsnShapes()) {
      for (const key of [WRITER, ADMIN]) {
        for (const res of await tryAll(closed, key, dsn)) {
          const p = assertProblem(res, 400, `${key} ${dsn}`);
          assert.match(p.detail, /LAKEHOUSE_ALLOW_JOB_DSN=false/);
          assert.match(p.detail, /"connection"/);
          assert.ok(!res.text.includes(PASSWORD), `the password came back: ${res.text}`);
        }
      }
      for (const res of await tryAll(closed, READER, dsn)) assertProblem(res, 403, `reader ${dsn}`);
    }
    assert.equal(await jobCount(), before, 'no job was added');
    assert.deepEqual(connections, [], 'nothing connected to the listener');
  });

  it('with LAKEHOUSE_ALLOW_JOB_DSN=true, writers and readers still get 403; writers use named connections', async () => {
    const before = await jobCount();
    for (const dsn of dsnShapes()) {
      for (const key of [WRITER, READER]) {
        for (const res of await tryAll(open, key, dsn)) {
          const p = assertProblem(res, 403, `${key} ${dsn}`);
          if (key === WRITER) assert.match(p.detail, /admin role.*LAKEHOUSE_ALLOW_JOB_DSN.*"connection"/);
          assert.ok(!res.text.includes(PASSWORD), `the password came back: ${res.text}`);
        }
      }
    }
    assert.equal(await jobCount(), before, 'no job was added');
    assert.deepEqual(connections, [], 'nothing connected to the listener');
    const named = await call(open.url, '/jobs/ingest', { method: 'POST', key: WRITER, body: { dataset: 'named', source: { kind: 'postgres', connection: 'shop', table: 't' } } });
    okJson(named, 'a writer naming a connection', 202);
  });

  it('an admin may, when allowed: the job is sealed (no password in Redis) and its worker reaches the address', async () => {
    const res = await call(open.url, '/jobs/ingest', { method: 'POST', key: ADMIN, body: { dataset: 'probed', source: source(`postgres://probe:${PASSWORD}@127.0.0.1:${port}/x`) } });
    const job = okJson(res, 'an admin posting a DSN', 202);
    await waitFor(async () => connections.length > 0, { timeoutMs: 30_000, intervalMs: 50, what: 'the worker to connect' });
    // a writer: readers never see job data at all (test/security/roles.test.ts)
    const view = okJson(await call(open.url, `/jobs/ingest/${job.id}`, { key: WRITER }), 'the job');
    assert.equal(view.data.source.dsn, undefined);
    assert.equal(view.data.source.dsn_redacted, `postgres://probe:***@127.0.0.1:${port}/x`);
    assert.ok(!JSON.stringify(view).includes(PASSWORD));
  });
});
