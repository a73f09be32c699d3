/**
 * Role boundaries (SECURITY.md "Roles"), over real HTTP against the API, real workers (ingest,
 * embed with the offline model, autotune), Redis and DuckDB. A corpus of reader requests — every
 * job route (one job, lists, events), schedules, eval sets, search, preview — never returns a
 * job's `data` or `failed_reason`, a schedule's payload, a raw PII value, a DSN password or a
 * job's SQL; writers and admins still see what their work needs. Unmasking columns is an admin
 * decision. `mode=replace` leaves the old parts in the bucket's trash.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startApi, type RunningApi } from '../../api/server.ts';
import { loadConfig } from '../../shared/config.ts';
import { workerContext } from '../../workers/context.ts';
import { csvText, testEnv, type TestEnv } from '../helpers/env.ts';
import { assertProblem, call, completedJob, finishedJob, openSse, parseSse, type CallOptions, type HttpAnswer } from '../helpers/http.ts';
import { silentLog, startTestWorkers } from '../helpers/jobs.ts';

const ADMIN = 'admin-key-roles-4c8e2a6f0b';
const WRITER = 'writer-key-roles-9d1f5b3e7a';
const READER = 'reader-key-roles-0e6a2c8f4d';
const DATASET = 'people';
const INDEX = 'people_idx';
const EVALSET = 'roles-set';
const ROWS = 12;
const EMAILS = Array.from({ length: ROWS }, (_, i) => `victim${i}.private@example.com`);
const PASSWORD = 'pw-roles-secret-71';
const SQL_SECRET = 'victim-in-sql@example.com';
const BROKEN_SECRET = 'victim-in-broken-file@example.com';
/** Nothing of these may reach a reader. */
const RAW = [...EMAILS, PASSWORD, SQL_SECRET, BROKEN_SECRET];

let env: TestEnv;
let api: RunningApi;
const ids: Record<'upload' | 'embed' | 'evalset' | 'failed' | 'delayed', string> = { upload: '', embed: '', evalset: '', failed: '', delayed: '' };

const as = (key: string, p: string, opts: CallOptions = {}) => call(api.url, p, { ...opts, key });

async function enqueue(key: string, p: string, body: unknown): Promise<{ id: string; location: string }> {
  const res = await as(key, p, { method: 'POST', body });
  assert.equal(res.status, 202, `${p}: ${res.text}`);
  return { id: res.json.id, location: res.headers.get('location')! };
}

async function upload(key: string, name: string, csv: string, query = ''): Promise<HttpAnswer> {
  return as(key, `/datasets/${name}/upload?format=csv${query}`, { method: 'POST', body: csv, headers: { 'content-type': 'text/csv' } });
}

function peopleCsv(tag: string): string {
  return csvText([['id', 'email', 'note'], ...EMAILS.map((e, i) => [i, e, `${tag} note ${i}`])]);
}

/** Keys a reader must never get, anywhere in a JSON value. */
function hiddenKeys(value: unknown, at = '$'): string[] {
  if (Array.isArray(value)) return value.flatMap((v, i) => hiddenKeys(v, `${at}[${i}]`));
  if (!value || typeof value !== 'object') return [];
  return Object.entries(value).flatMap(([k, v]) => [
    ...(['data', 'failed_reason', 'payload', 'reason'].includes(k) ? [`${at}.${k}`] : []),
    ...hiddenKeys(v, `${at}.${k}`),
  ]);
}

function assertNothingRaw(what: string, text: string, json: unknown): void {
  for (const raw of RAW) assert.ok(!text.includes(raw), `${what}: leaks ${raw}`);
  assert.ok(!/SELECT/i.test(text), `${what}: leaks job SQL`);
  assert.deepEqual(hiddenKeys(json), [], `${what}: carries hidden fields`);
}

describe('role boundaries', { timeout: 300_000 }, () => {
  before(async () => {
    env = await testEnv();
    env.defer(async () => {
      // the processors' shared context (embed and autotune run in this process) holds a connection
      (await workerContext()).redis.disconnect();
    });
    await startTestWorkers(env, ['ingest', 'embed', 'autotune'], 1);
    // jobs below carry their own DSN: only admins may post one, and only when the server allows it
    api = await startApi(loadConfig({ ...process.env, LAKEHOUSE_API_KEYS: `${ADMIN}:admin,${WRITER}:writer,${READER}:reader`, PORT: '0', LAKEHOUSE_ALLOW_JOB_DSN: 'true' }), silentLog);
    env.defer(() => api.close());
    const get = (p: string) => as(WRITER, p);

    const up = await upload(WRITER, DATASET, peopleCsv('first'));
    assert.equal(up.status, 202, up.text);
    ids.upload = up.json.id;
    await completedJob(get, up.headers.get('location')!);
    const manifest = (await as(ADMIN, `/datasets/${DATASET}`)).json;
    assert.ok(manifest.pii.some((f: { column: string }) => f.column === 'email'), `email flagged as PII: ${JSON.stringify(manifest.pii)}`);

    const embed = await enqueue(WRITER, '/jobs/embed', { index: INDEX, dataset: DATASET, id_column: 'id', text_column: 'email', provider: 'local' });
    ids.embed = embed.id;
    await completedJob(get, embed.location, 240_000);
    const evalset = await enqueue(WRITER, `/indexes/${INDEX}/evalsets`, { kind: 'generated', id: EVALSET, n: 5, k: 3 });
    ids.evalset = evalset.id;
    await completedJob(get, evalset.location, 120_000);

    // fails, and its error may quote the line it choked on
    const broken = await as(WRITER, '/datasets/broken/upload?format=json', { method: 'POST', body: `{"email": "${BROKEN_SECRET}", "n": oops}\n` });
    assert.equal(broken.status, 202, broken.text);
    ids.failed = broken.json.id;
    const failed = await finishedJob(get, broken.headers.get('location')!);
    assert.equal(failed.state, 'failed');

    // waits an hour, carrying a DSN (sealed) and SQL naming a person
    const delayed = await enqueue(ADMIN, '/jobs/ingest?delay_ms=3600000', {
      dataset: 'later', source: { kind: 'postgres', dsn: `postgres://someone:${PASSWORD}@127.0.0.1:5432/test`, query: `SELECT * FROM t WHERE email = '${SQL_SECRET}'` },
    });
    ids.delayed = delayed.id;
    const schedule = await as(ADMIN, '/schedules/roles-nightly', {
      method: 'PUT',
      body: {
        queue: 'ingest', every_ms: 86_400_000, start: new Date(Date.now() + 86_400_000).toISOString(),
        payload: { dataset: 'nightly', source: { kind: 'postgres', dsn: `postgres://someone:${PASSWORD}@127.0.0.1:5432/test`, query: `SELECT * FROM t WHERE email = '${SQL_SECRET}'` } },
      },
    });
    assert.ok([200, 201].includes(schedule.status), schedule.text);
  });

  after(() => env?.cleanup());

  it('a reader gets no job data, failure reason, payload, raw PII or SQL from any job, schedule or index route', async () => {
    const jobRoutes = [
      ...['completed', 'failed', 'delayed', 'waiting', 'active'].map((s) => `/jobs/ingest?state=${s}`),
      '/jobs/embed?state=completed', '/jobs/autotune?state=completed',
      `/jobs/ingest/${ids.upload}`, `/jobs/ingest/${ids.failed}`, `/jobs/ingest/${ids.delayed}`,
      `/jobs/embed/${ids.embed}`, `/jobs/autotune/${ids.evalset}`,
      '/schedules', '/schedules/roles-nightly', '/schedules?queue=ingest',
      `/indexes/${INDEX}/evalsets`, `/indexes/${INDEX}/evalsets/${EVALSET}`, `/indexes/${INDEX}`, '/indexes',
      `/datasets/${DATASET}/preview`,
    ];
    for (const route of jobRoutes) {
      const res = await as(READER, route);
      assert.equal(res.status, 200, `${route}: ${res.status} ${res.text.slice(0, 200)}`);
      assertNothingRaw(`GET ${route}`, res.text, res.json);
    }
    const search = await as(READER, `/indexes/${INDEX}/search`, { method: 'POST', body: { query: EMAILS[3], k: 5 } });
    assert.equal(search.status, 200, search.text);
    assertNothingRaw('search', search.text, search.json);

    const failed = (await as(READER, `/jobs/ingest/${ids.failed}`)).json;
    assert.equal(failed.failed, true, 'a reader learns that it failed');
    assert.match(failed.error_class, /^[A-Za-z]+$/, 'and the class of error, without its message');
    const list = (await as(READER, '/jobs/ingest?state=failed')).json;
    assert.ok(list.jobs.some((j: { id: string; failed?: boolean }) => j.id === ids.failed && j.failed === true));
  });

  it('a reader\'s job event streams carry no data, reason or raw value (finished and waiting jobs)', async () => {
    for (const id of [ids.upload, ids.failed]) {
      const stream = await openSse(api.url, `/jobs/ingest/${id}/events`, { key: READER });
      assert.equal(stream.status, 200);
      const events = await stream.finished;
      assert.ok(events.length >= 2, JSON.stringify(events));
      for (const e of events) assertNothingRaw(`SSE ${id} ${e.event}`, JSON.stringify(e.data), e.data);
    }
    const failedEvents = await (await openSse(api.url, `/jobs/ingest/${ids.failed}/events`, { key: READER })).finished;
    assert.deepEqual(failedEvents.at(-1)!.data, { failed: true, error_class: failedEvents[0]!.data.error_class });

    const abort = new AbortController();
    const res = await fetch(new URL(`/jobs/ingest/${ids.delayed}/events`, api.url), { headers: { authorization: `Bearer ${READER}` }, signal: abort.signal });
    const reader = res.body!.getReader();
    let text = '';
    while (!text.includes('\n\n')) {
      const { done, value } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    abort.abort();
    const [state] = parseSse(text);
    assert.equal(state!.event, 'state');
    assertNothingRaw('SSE delayed state', text, state!.data);
  });

  it('writers and admins still see job data (sealed, redacted) and failure reasons', async () => {
    const delayed = (await as(WRITER, `/jobs/ingest/${ids.delayed}`)).json;
    assert.match(delayed.data.source.query, /SELECT/);
    assert.ok(!JSON.stringify(delayed).includes(PASSWORD), 'the password is sealed even for writers');
    const failed = (await as(ADMIN, `/jobs/ingest/${ids.failed}`)).json;
    assert.equal(typeof failed.failed_reason, 'string');
    const schedule = (await as(WRITER, '/schedules/roles-nightly')).json;
    assert.equal(schedule.payload.dataset, 'nightly');
  });

  it('eval sets are masked for readers like the dataset, and follow its public columns', async () => {
    const forWriter = (await as(WRITER, `/indexes/${INDEX}/evalsets/${EVALSET}`)).json;
    assert.ok(forWriter.queries.every((q: { query: string }) => EMAILS.includes(q.query)), 'writers see the chunk texts');
    const forReader = (await as(READER, `/indexes/${INDEX}/evalsets/${EVALSET}`)).json;
    assert.equal(forReader.queries.length, forWriter.queries.length);
    assert.ok(forReader.queries.every((q: { query: string }) => q.query === '***'), JSON.stringify(forReader.queries[0]));

    for (const key of [READER, WRITER]) {
      assertProblem(await as(key, `/datasets/${DATASET}/public-columns`, { method: 'PUT', body: { columns: ['email'] } }), 403, `public-columns as ${key}`);
    }
    const stillMasked = (await as(READER, `/indexes/${INDEX}/evalsets/${EVALSET}`)).json;
    assert.ok(stillMasked.queries.every((q: { query: string }) => q.query === '***'), 'the refused unmasking changed nothing');

    const unmasked = await as(ADMIN, `/datasets/${DATASET}/public-columns`, { method: 'PUT', body: { columns: ['email'] } });
    assert.equal(unmasked.status, 200, unmasked.text);
    const opened = (await as(READER, `/indexes/${INDEX}/evalsets/${EVALSET}`)).json;
    assert.deepEqual(opened.queries.map((q: { query: string }) => q.query), forWriter.queries.map((q: { query: string }) => q.query), 'an admin\'s unmasking reaches eval sets');
    assert.equal((await as(ADMIN, `/datasets/${DATASET}/public-columns`, { method: 'PUT', body: { columns: [] } })).status, 200);
  });

  it('mode=replace is for writers and keeps the old parts in the trash', async () => {
    assertProblem(await upload(READER, DATASET, peopleCsv('reader'), '&mode=replace'), 403, 'reader replace');
    const before = (await as(ADMIN, `/datasets/${DATASET}`)).json;
    const root = env.dataDir;
    const oldParts = await Promise.all(
      before.parts.map(async (p: { file: string }) => ({ file: p.file, sha: sha256(await fs.readFile(path.join(root, 'datasets', DATASET, p.file))) })),
    );
    assert.ok(oldParts.length >= 1);

    const replaced = await upload(WRITER, DATASET, peopleCsv('second'), '&mode=replace');
    assert.equal(replaced.status, 202, replaced.text);
    await completedJob((p) => as(WRITER, p), replaced.headers.get('location')!);
    const after = (await as(ADMIN, `/datasets/${DATASET}`)).json;
    assert.equal(after.parts.length, 1);
    assert.ok(!oldParts.some((o: { file: string }) => o.file === after.parts[0].file), 'a new part');

    const trash = path.join(root, 'trash');
    const entries = (await fs.readdir(trash)).filter((e) => e.startsWith(`${DATASET}--replaced--`));
    assert.equal(entries.length, 1, `one trash entry for the replace: ${entries.join(', ')}`);
    for (const o of oldParts) {
      assert.equal(sha256(await fs.readFile(path.join(trash, entries[0]!, o.file))), o.sha, `${o.file} kept byte for byte in the trash`);
      await assert.rejects(fs.access(path.join(root, 'datasets', DATASET, o.file)), { code: 'ENOENT' }, `${o.file} left the dataset folder`);
    }
    const rows = await as(ADMIN, '/query', { method: 'POST', body: { sql: `SELECT count(*) AS n, min(note) AS note FROM ${DATASET}` } });
    assert.equal(rows.status, 200, rows.text);
    assert.match(JSON.stringify(rows.json), /second note/);
  });
});

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}
