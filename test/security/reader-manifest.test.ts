/**
 * A dataset's manifest as readers get it from GET /datasets/:name (SECURITY.md, "Roles"): a
 * database ingest's lineage holds the (redacted) DSN and the source statement, which may quote
 * values, and an incremental column's high-water mark is one of that column's values. Readers get
 * neither when the column is masked; writers get the manifest whole. The manifest is the one a
 * Postgres ingest writes, laid down on disk as the worker would.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startApi, type RunningApi } from '../../api/server.ts';
import { emptyManifest, type Manifest } from '../../shared/catalog/manifest.ts';
import { loadConfig } from '../../shared/config.ts';
import { testEnv, type TestEnv } from '../helpers/env.ts';
import { call } from '../helpers/http.ts';
import { silentLog } from '../helpers/jobs.ts';

const READER = 'manifest-reader-key-1a2b3c';
const WRITER = 'manifest-writer-key-4d5e6f';
const STATEMENT = "SELECT * FROM public.customers WHERE email <> 'vip.person@secret-domain.example'";
const HIGH_WATER = 'zoe.last@secret-domain.example';

let env: TestEnv;
let api: RunningApi;

describe('dataset manifests for readers', () => {
  before(async () => {
    env = await testEnv();
    const dir = path.join(env.dataDir, 'datasets', 'customers');
    await fs.mkdir(path.join(dir, 'parts'), { recursive: true });
    const now = new Date().toISOString();
    const manifest: Manifest = {
      ...emptyManifest('customers', 'primary', now),
      version: 1,
      rows: 2,
      schema: [{ name: 'id', type: 'BIGINT' }, { name: 'email', type: 'VARCHAR' }],
      pii: [{ column: 'email', kind: 'email', confidence: 1 }],
      incremental: { column: 'email', high_water_mark: HIGH_WATER, source: 'public.customers' },
      parts: [{
        file: 'parts/part-1.parquet', rows: 2, bytes: 100, job_id: '1', created_at: now, fingerprint: 'f'.repeat(64),
        lineage: { kind: 'postgres', dsn: 'postgres://app:***@db.internal:5432/shop', statement: STATEMENT, host: 'worker-1', started_at: now, finished_at: now },
      }],
    };
    await fs.writeFile(path.join(dir, 'manifest.json'), JSON.stringify(manifest));
    api = await startApi(loadConfig({ ...process.env, LAKEHOUSE_API_KEYS: `${READER}:reader,${WRITER}:writer`, LAKEHOUSE_HOST: '127.0.0.1', PORT: '0' }), silentLog);
    env.defer(() => api.close());
  });

  after(() => env?.cleanup());

  it('readers get no DSN, no statement and no high-water mark of a masked column', async () => {
    const answer = await call(api.url, '/datasets/customers', { key: READER });
    assert.equal(answer.status, 200, answer.text);
    for (const secret of [STATEMENT, 'vip.person', HIGH_WATER, 'db.internal']) assert.ok(!answer.text.includes(secret), `a reader saw ${secret}`);
    assert.equal(answer.json.parts[0].lineage.kind, 'postgres', 'the rest of the lineage is kept');
    assert.equal(answer.json.incremental.high_water_mark, null);
  });

  it('writers get the manifest whole', async () => {
    const answer = await call(api.url, '/datasets/customers', { key: WRITER });
    assert.equal(answer.json.parts[0].lineage.statement, STATEMENT);
    assert.equal(answer.json.incremental.high_water_mark, HIGH_WATER);
  });
});
