/**
 * Bounded HTTP (SECURITY.md "HTTP limits"), over real sockets against the real API and Redis:
 * slow and stalled clients of every shape are cut within their bound while /health and other
 * requests keep answering; a slow but moving upload is not cut; oversized heads and bodies get
 * 431/413; event streams are capped per key (429), end at their lifetime, and every listener and
 * slot is released however the client leaves.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { eventsConnectionName } from '../../api/job-events.ts';
import { startApi, type RunningApi } from '../../api/server.ts';
import { loadConfig } from '../../shared/config.ts';
import { testEnv, waitFor, type TestEnv } from '../helpers/env.ts';
import { assertProblem, call, openSse, type CallOptions } from '../helpers/http.ts';
import { silentLog } from '../helpers/jobs.ts';
import { rawConnect, trickle, type RawConnection } from '../helpers/raw-socket.ts';

const ADMIN = 'admin-key-limits-3f9a1c7e5b';
const WRITER = 'writer-key-limits-8d2e6b0a4c';
const READER = 'reader-key-limits-1b7c5e9d3f';
const OTHER_READER = 'reader-key-limits-other-6a0d';

const HEADERS_TIMEOUT_MS = 600;
const BODY_TIMEOUT_MS = 800;
const UPLOAD_IDLE_MS = 600;
const MAX_HEADER_BYTES = 4_096;
const JSON_MAX = 2_048;
const BULK_MAX = 4_096;
const STREAMS_PER_KEY = 3;
const STREAM_LIFETIME_MS = 2_000;
/** How long a test waits for the server to act; far above every bound, it only stops a hung test. */
const PATIENCE_MS = 15_000;

let env: TestEnv;
let api: RunningApi;
let waitingJob = '';

const as = (key: string | undefined, p: string, opts: CallOptions = {}) => call(api.url, p, { ...opts, ...(key ? { key } : {}) });

/** /health and a keyed read both answer: the server is not tied up by the slow clients. */
async function assertStillServing(what: string): Promise<void> {
  const health = await as(undefined, '/health');
  assert.equal(health.status, 200, `${what}: /health ${health.status}`);
  const list = await as(READER, '/jobs/ingest?state=delayed');
  assert.equal(list.status, 200, `${what}: GET /jobs/ingest ${list.status} ${list.text.slice(0, 200)}`);
}

function head(lines: string[]): string {
  return `${lines.join('\r\n')}\r\n\r\n`;
}

describe('HTTP limits', { timeout: 120_000 }, () => {
  before(async () => {
    env = await testEnv();
    api = await startApi(
      loadConfig({
        ...process.env,
        LAKEHOUSE_API_KEYS: `${ADMIN}:admin,${WRITER}:writer,${READER}:reader,${OTHER_READER}:reader`,
        PORT: '0',
        LAKEHOUSE_HTTP_HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS),
        LAKEHOUSE_HTTP_BODY_TIMEOUT_MS: String(BODY_TIMEOUT_MS),
        LAKEHOUSE_UPLOAD_IDLE_TIMEOUT_MS: String(UPLOAD_IDLE_MS),
        LAKEHOUSE_HTTP_MAX_HEADER_BYTES: String(MAX_HEADER_BYTES),
        LAKEHOUSE_JSON_BODY_MAX_BYTES: String(JSON_MAX),
        LAKEHOUSE_BULK_BODY_MAX_BYTES: String(BULK_MAX),
        LAKEHOUSE_SSE_MAX_STREAMS_PER_KEY: String(STREAMS_PER_KEY),
        LAKEHOUSE_SSE_MAX_LIFETIME_MS: String(STREAM_LIFETIME_MS),
      }),
      silentLog,
    );
    env.defer(() => api.close());
    // a job that stays put (no worker, an hour's delay): event streams watch it
    const res = await as(WRITER, '/jobs/ingest?delay_ms=3600000', {
      method: 'POST',
      body: { dataset: 'limits', source: { kind: 'upload', path: 'staging/uploads/none.upload' } },
    });
    assert.equal(res.status, 202, res.text);
    waitingJob = res.json.id;
  });

  after(() => env?.cleanup());

  it('slow and stalled request heads are cut within the header bound while others are served', async () => {
    const port = api.port;
    const slowHeaderLines = Array.from({ length: 300 }, (_, i) => `X-Slow-${i}: ${'a'.repeat(5)}\r\n`);
    const shapes: { name: string; start: (c: RawConnection) => { stop(): void; done(): boolean } }[] = [
      { name: 'header lines trickled', start: (c) => (c.write('GET /health HTTP/1.1\r\nHost: x\r\n'), trickle(c, slowHeaderLines, 100)) },
      { name: 'header bytes trickled', start: (c) => (c.write('GET /jobs/ingest HTTP/1.1\r\n'), trickle(c, 'Host: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'.split(''), 100)) },
      { name: 'request line trickled', start: (c) => trickle(c, 'GET /health?aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1'.split(''), 100) },
      { name: 'head never finished', start: (c) => (c.write('POST /query HTTP/1.1\r\nHost: x\r\n'), trickle(c, [], 100)) },
      { name: 'connected, silent', start: (c) => trickle(c, [], 100) },
    ];
    const conns = await Promise.all(shapes.map(() => rawConnect(port)));
    const trickles = shapes.map((s, i) => s.start(conns[i]!));
    try {
      await assertStillServing('during the slow heads');
      const results = await Promise.all(conns.map((c) => c.closed(PATIENCE_MS)));
      shapes.forEach((s, i) => {
        assert.equal(trickles[i]!.done(), s.name === 'head never finished' || s.name === 'connected, silent', `${s.name}: the server cut it before the client finished (${JSON.stringify(results[i]!.received.slice(0, 80))})`);
        assert.doesNotMatch(results[i]!.received, /^HTTP\/1\.1 2\d\d/, `${s.name}: never answered as a complete request`);
      });
      await assertStillServing('after the slow heads');
    } finally {
      trickles.forEach((t) => t.stop());
      conns.forEach((c) => c.destroy());
    }
  });

  it('a trickled JSON body gets 408 and the connection closes; a stalled upload is cut and its partial file removed', async () => {
    const port = api.port;
    const json = await rawConnect(port);
    json.write(head(['POST /jobs/ingest HTTP/1.1', 'Host: x', `Authorization: Bearer ${WRITER}`, 'Content-Type: application/json', 'Content-Length: 1000']));
    const jsonTrickle = trickle(json, Array.from({ length: 1000 }, () => ' '), 100);

    const upload = await rawConnect(port);
    upload.write(head(['POST /datasets/stalled/upload?format=csv HTTP/1.1', 'Host: x', `Authorization: Bearer ${WRITER}`, 'Content-Length: 100000']));
    upload.write('id,name\n1,first rows then silence\n');

    const chunkedUpload = await rawConnect(port);
    chunkedUpload.write(head(['POST /datasets/stalled2/upload?format=csv HTTP/1.1', 'Host: x', `Authorization: Bearer ${WRITER}`, 'Transfer-Encoding: chunked']));
    chunkedUpload.write('10\r\nid,name\n1,abcdef\r\n');
    try {
      // the partial upload is on disk, then the server gives up on it
      await waitFor(async () => (await fs.readdir(env.uploadsDir)).some((f) => f.endsWith('.upload')), { timeoutMs: PATIENCE_MS, what: 'the stalled upload to be staged' });
      await assertStillServing('during the stalled bodies');
      const [jsonGone] = await Promise.all([json.closed(PATIENCE_MS), upload.closed(PATIENCE_MS), chunkedUpload.closed(PATIENCE_MS)]);
      assert.equal(jsonTrickle.done(), false, 'the server cut the JSON body, not the client');
      assert.match(jsonGone.received, /^HTTP\/1\.1 408 /, 'the JSON trickle is told why');
      assert.match(jsonGone.received, /application\/problem\+json/);
      await waitFor(async () => (await fs.readdir(env.uploadsDir)).length === 0, { timeoutMs: PATIENCE_MS, what: 'partial uploads to be removed' });
      await assertStillServing('after the stalled bodies');
    } finally {
      jsonTrickle.stop();
      [json, upload, chunkedUpload].forEach((c) => c.destroy());
    }
  });

  it('a slow but moving upload is not cut by the idle bound', async () => {
    const body = 'id,name\n1,slow\n2,but\n3,moving\n';
    const conn = await rawConnect(api.port);
    conn.write(head(['POST /datasets/moving/upload?format=csv HTTP/1.1', 'Host: x', `Authorization: Bearer ${WRITER}`, `Content-Length: ${body.length}`, 'Connection: close']));
    // one byte per 100 ms: the transfer takes several idle bounds, but it never stalls for one
    const slow = trickle(conn, body.split(''), 100);
    try {
      const { received } = await conn.closed(PATIENCE_MS);
      assert.equal(slow.done(), true);
      assert.match(received, /^HTTP\/1\.1 202 /, received.slice(0, 300));
    } finally {
      slow.stop();
      conn.destroy();
    }
  });

  it('oversized heads get 431, oversized JSON bodies 413 (declared, chunked, bulk), and the server keeps serving', async () => {
    const big = 'b'.repeat(MAX_HEADER_BYTES + 100);
    const heads = [
      { name: 'one huge header', lines: ['GET /health HTTP/1.1', 'Host: x', `X-Big: ${big}`] },
      { name: 'many small headers', lines: ['GET /health HTTP/1.1', 'Host: x', ...Array.from({ length: 200 }, (_, i) => `X-H${i}: ${'c'.repeat(30)}`)] },
      { name: 'huge URL', lines: [`GET /health?q=${big} HTTP/1.1`, 'Host: x'] },
      { name: 'huge authorization', lines: ['GET /jobs/ingest HTTP/1.1', 'Host: x', `Authorization: Bearer ${big}`] },
      { name: 'huge cookie', lines: ['GET /health HTTP/1.1', 'Host: x', `Cookie: a=${big}`] },
    ];
    for (const h of heads) {
      const conn = await rawConnect(api.port);
      conn.write(head(h.lines));
      const { received } = await conn.closed(PATIENCE_MS);
      assert.match(received, /^HTTP\/1\.1 431 /, `${h.name}: ${received.slice(0, 120)}`);
    }

    const ingest = (extra: string) => ({ dataset: 'limits', source: { kind: 'upload', path: `staging/uploads/${extra}` } });
    const waitingBefore = (await as(READER, '/jobs/ingest?state=waiting')).json.counts.waiting;
    assertProblem(await as(WRITER, '/jobs/ingest', { method: 'POST', body: ingest('x'.repeat(JSON_MAX)) }), 413, 'declared too large');
    const ok = await as(WRITER, '/jobs/ingest?delay_ms=3600000', { method: 'POST', body: ingest('small.upload') });
    assert.equal(ok.status, 202, `a body under the cap is taken: ${ok.text}`);

    const chunked = await rawConnect(api.port);
    const piece = JSON.stringify(ingest('y'.repeat(JSON_MAX)));
    chunked.write(head(['POST /jobs/ingest HTTP/1.1', 'Host: x', `Authorization: Bearer ${WRITER}`, 'Transfer-Encoding: chunked']));
    chunked.write(`${piece.length.toString(16)}\r\n${piece}\r\n0\r\n\r\n`);
    const { received } = await chunked.closed(PATIENCE_MS);
    assert.match(received, /^HTTP\/1\.1 413 /, `chunked, no length: ${received.slice(0, 120)}`);

    const bulk = { jobs: Array.from({ length: 40 }, (_, i) => ({ payload: ingest(`bulk-${i}-${'z'.repeat(100)}`) })) };
    assert.ok(JSON.stringify(bulk).length > BULK_MAX);
    assertProblem(await as(WRITER, '/jobs/ingest/bulk', { method: 'POST', body: bulk }), 413, 'bulk over its cap');
    const counts = await as(READER, '/jobs/ingest?state=waiting');
    assert.equal(counts.json.counts.waiting, waitingBefore, 'no refused body enqueued anything');
    await assertStillServing('after the oversized requests');
  });

  it('event streams: capped per key (429), ended at their lifetime, and released however the client leaves', async () => {
    const events = api.deps.events;
    const path = `/jobs/ingest/${waitingJob}/events`;
    assert.equal(events.listenerCount(), 0);
    assert.equal(events.quota.total(), 0);

    const controllers = Array.from({ length: STREAMS_PER_KEY }, () => new AbortController());
    const open = await Promise.all(controllers.map((c) => fetch(new URL(path, api.url), { headers: { authorization: `Bearer ${READER}` }, signal: c.signal })));
    open.forEach((r) => assert.equal(r.status, 200));
    await waitFor(() => events.listenerCount() === STREAMS_PER_KEY, { what: 'one listener per stream' });
    const refused = await as(READER, path);
    const problem = assertProblem(refused, 429, 'a stream over the per-key cap');
    assert.match(problem.detail, /LAKEHOUSE_SSE_MAX_STREAMS_PER_KEY/);
    const other = new AbortController();
    const otherKey = await fetch(new URL(path, api.url), { headers: { authorization: `Bearer ${OTHER_READER}` }, signal: other.signal });
    assert.equal(otherKey.status, 200, 'the cap is per key: another key still gets a stream');
    other.abort();
    controllers[0]!.abort();
    await waitFor(() => events.quota.total() === STREAMS_PER_KEY - 1, { what: 'aborted streams to give their slots back' });
    const again = new AbortController();
    const reopened = await fetch(new URL(path, api.url), { headers: { authorization: `Bearer ${READER}` }, signal: again.signal });
    assert.equal(reopened.status, 200, 'a freed slot can be used again');
    [again, ...controllers].forEach((c) => c.abort());
    await waitFor(() => events.listenerCount() === 0 && events.quota.total() === 0, { what: 'every stream released' });
  });

  it('many streams aborted at every moment leave no listener, slot or Redis connection behind', async () => {
    const events = api.deps.events;
    const path = `/jobs/ingest/${waitingJob}/events`;
    const first = await openSse(api.url, path, { key: READER, timeoutMs: 100 }); // opens the queue's event connection
    await first.finished.catch(() => undefined);
    await waitFor(() => events.quota.total() === 0, { what: 'the first stream released' });
    const clientsBefore = await ourRedisClients();
    assert.equal(clientsBefore, 1, "the ingest queue's event connection");
    for (let round = 0; round < 20; round++) {
      const controllers = Array.from({ length: STREAMS_PER_KEY }, () => new AbortController());
      const requests = controllers.map((c) => fetch(new URL(path, api.url), { headers: { authorization: `Bearer ${READER}` }, signal: c.signal }).catch(() => undefined));
      // abort one at once (often before the server has read the job), one after the headers, one mid-stream
      controllers[0]!.abort();
      const answers = await Promise.all(requests);
      controllers[1]!.abort();
      const third = answers[2];
      if (third?.body) {
        const reader = third.body.getReader();
        await reader.read(); // the `state` event
        controllers[2]!.abort();
      } else controllers[2]!.abort();
      await waitFor(() => events.quota.total() === 0, { what: `round ${round}: slots released` });
    }
    // the request and the hang-up in one breath: the client is gone before the handler has even
    // subscribed or read the job
    for (let i = 0; i < 30; i++) {
      const conn = await rawConnect(api.port);
      conn.write(head([`GET ${path} HTTP/1.1`, 'Host: x', `Authorization: Bearer ${READER}`]));
      conn.socket.resetAndDestroy();
    }
    await waitFor(() => events.quota.total() === 0, { what: 'slots of hung-up streams released' });
    await waitFor(() => events.listenerCount() === 0, { what: 'every listener released' });
    assert.equal(await ourRedisClients(), clientsBefore, 'no Redis connection per stream');
  });

  it('a stream ends at its lifetime with a `timeout` event and releases its listener', async () => {
    const events = api.deps.events;
    const stream = await openSse(api.url, `/jobs/ingest/${waitingJob}/events`, { key: READER, timeoutMs: PATIENCE_MS });
    assert.equal(stream.status, 200);
    const seen = await stream.finished;
    assert.deepEqual(seen.map((e) => e.event), ['state', 'timeout']);
    assert.equal(seen[1]!.data.reconnect, true);
    await waitFor(() => events.listenerCount() === 0 && events.quota.total() === 0, { what: 'the ended stream released' });
  });
});

/** The API's job-event connections in Redis (one per watched queue). */
async function ourRedisClients(): Promise<number> {
  const list = (await env.redis.client('LIST')) as string;
  return list.split('\n').filter((l) => l.includes(`name=${eventsConnectionName(api.deps.config)} `)).length;
}
