/**
 * Resource bombs against the query path (SECURITY.md, "Limits"): queries built to exhaust memory,
 * CPU or the response size are refused or interrupted by the engine's own limits
 * (LAKEHOUSE_QUERY_MEMORY_MB, LAKEHOUSE_QUERY_TIMEOUT_MS through DuckDB's interrupt,
 * LAKEHOUSE_QUERY_MAX_RESULT_MB), and while they run the API keeps answering /health and other
 * queries. Traffic stays on loopback and is bounded in count.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startApi, type RunningApi } from '../../api/server.ts';
import { loadConfig } from '../../shared/config.ts';
import type { RunningWorkers } from '../../workers/runner.ts';
import { csvText, testEnv, waitFor, type TestEnv } from '../helpers/env.ts';
import { assertProblem, call } from '../helpers/http.ts';
import { silentLog, startTestWorkers } from '../helpers/jobs.ts';

const WRITER = 'bomb-writer-key-0a1b2c3d4e';
const READER = 'bomb-reader-key-5f6a7b8c9d';
const TIMEOUT_MS = 6_000;

let env: TestEnv;
let api: RunningApi;
let workers: RunningWorkers;

const query = (key: string, sql: string, extra: Record<string, unknown> = {}) =>
  call(api.url, '/query', { method: 'POST', key, body: { sql, ...extra }, timeoutMs: 60_000 });

/** Fires `bomb`, then checks /health and a small query answer while it is still running. */
async function answersMeanwhile(bomb: Promise<unknown>): Promise<void> {
  let settled = false;
  void bomb.finally(() => (settled = true));
  const health = await call(api.url, '/health');
  assert.equal(health.status, 200);
  const small = await query(READER, 'SELECT 42 AS answer');
  assert.deepEqual(small.json?.rows, [{ answer: 42 }], small.text);
  assert.equal(settled, false, 'the other requests were answered while the bomb still ran');
}

describe('resource bombs', { timeout: 180_000 }, () => {
  before(async () => {
    env = await testEnv();
    workers = await startTestWorkers(env, ['ingest'], 1);
    env.defer(() => workers.close());
    api = await startApi(
      loadConfig({
        ...process.env,
        LAKEHOUSE_API_KEYS: `${WRITER}:writer,${READER}:reader`,
        LAKEHOUSE_HOST: '127.0.0.1',
        PORT: '0',
        LAKEHOUSE_QUERY_MEMORY_MB: '128',
        LAKEHOUSE_QUERY_TEMP_MAX_MB: '0',
        LAKEHOUSE_QUERY_TIMEOUT_MS: String(TIMEOUT_MS),
        LAKEHOUSE_QUERY_MAX_RESULT_MB: '1',
        LAKEHOUSE_QUERY_MAX_ROWS: '100000',
      }),
      silentLog,
    );
    env.defer(() => api.close());
    const rows = [['n', 'label'], ...Array.from({ length: 300 }, (_, i) => [i, `row ${i}`])];
    const upload = await call(api.url, '/datasets/t/upload?mode=replace&filename=t.csv', { method: 'POST', key: WRITER, body: csvText(rows), headers: { 'content-type': 'text/csv' } });
    assert.equal(upload.status, 202, upload.text);
    const location = upload.headers.get('location')!;
    const job = await waitFor(async () => {
      const r = await call(api.url, location, { key: WRITER });
      return r.json?.state === 'completed' || r.json?.state === 'failed' ? r.json : undefined;
    }, { timeoutMs: 60_000, what: 'the ingest' });
    assert.equal(job.state, 'completed', JSON.stringify(job));
  });

  after(() => env?.cleanup());

  const memoryBombs = [
    ['string_agg of huge strings', "SELECT string_agg(repeat('x', 100000), '') AS s FROM range(100000)"],
    ['a list of a billion integers', 'SELECT list(i) AS l FROM range(1000000000) t(i)'],
    ['a hash aggregate over distinct wide keys', "SELECT count(*) FROM (SELECT DISTINCT i::VARCHAR || repeat('y', 200) FROM range(20000000) t(i))"],
    ['sorting wide rows', "SELECT max(s) FROM (SELECT repeat('z', 500) || i AS s FROM range(10000000) t(i) ORDER BY s)"],
  ] as const;
  for (const [label, sql] of memoryBombs) {
    it(`memory bomb (${label}) is refused or interrupted, never fatal`, async () => {
      const answer = await query(WRITER, sql);
      assert.ok([408, 422].includes(answer.status), `${answer.status} ${answer.text.slice(0, 300)}`);
      const problem = assertProblem(answer, answer.status, label);
      assert.match(problem.detail, answer.status === 422 ? /more memory than the query engine may use \(LAKEHOUSE_QUERY_MEMORY_MB\)/ : /time limit/);
      assert.equal((await call(api.url, '/health')).status, 200);
    });
  }

  it('a CPU bomb is interrupted at the time limit while /health and other queries answer', async () => {
    const bomb = query(WRITER, 'SELECT sum(i * i) AS s FROM range(100000000000) t(i)');
    await answersMeanwhile(bomb);
    const answer = await bomb;
    assertProblem(answer, 408, 'cpu bomb');
  });

  it("a reader's cross-join bomb over a dataset is interrupted while others are served", async () => {
    const bomb = query(READER, 'SELECT count(*) AS n FROM t a, t b, t c, t d, t e WHERE a.label <> e.label');
    await answersMeanwhile(bomb);
    assertProblem(await bomb, 408, 'cross join');
  });

  it('several bombs at once: every one ends with a problem and the API stays up', async () => {
    const bombs = Array.from({ length: 4 }, (_, i) => query(WRITER, `SELECT sum(i * ${i + 2}) AS s FROM range(100000000000) t(i)`));
    assert.equal((await call(api.url, '/health')).status, 200);
    const answers = await Promise.all(bombs);
    for (const answer of answers) assertProblem(answer, 408, 'parallel bomb');
    const after = await query(READER, 'SELECT count(*) AS n FROM t');
    assert.deepEqual(after.json.rows, [{ n: 300 }]);
  });

  it('a huge result is cut at the byte budget, not built whole', async () => {
    const answer = await query(WRITER, "SELECT i, repeat('w', 10000) AS s FROM range(50000) t(i)", { max_rows: 50000 });
    assert.equal(answer.status, 200, answer.text.slice(0, 300));
    assert.equal(answer.json.truncated, true);
    assert.equal(answer.json.truncated_by, 'bytes');
    assert.ok(answer.json.row_count > 0 && answer.json.row_count < 200, `${answer.json.row_count} rows`);
    assert.ok(answer.text.length < 1.2 * 1024 * 1024, `${answer.text.length} bytes`);
    const rows = await query(WRITER, 'SELECT 1 AS i FROM range(200000)');
    assert.equal(rows.json.truncated_by, 'rows', 'many small rows stop at the row limit');
    assert.equal(rows.json.row_count, 100000);
  });
});
