/**
 * The SQL attack suite through the real API (SECURITY.md, "SQL"): a dataset with PII columns is
 * uploaded and ingested by a real worker, indexed with the offline embedder, then every shape of
 * the corpus (sql-corpus.ts) is sent to POST /query as reader, writer and admin, and every filter
 * attack to hybrid search as a reader. What is asserted is what a user cares about:
 * - a reader's answer never holds a raw value of a masked column, nor the data root's path,
 *   unless the attacker wrote it into the request;
 * - no role's answer holds the canary files outside the datasets (secrets, audit, elsewhere);
 * - a filter is no yes/no oracle on a masked value;
 * - the API answers every attack with a result or a problem, never a 5xx, and stays up;
 * - the audit log records each attack in full, with the datasets it resolved to and its outcome.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startApi, type RunningApi } from '../../api/server.ts';
import { loadConfig } from '../../shared/config.ts';
import type { RunningWorkers } from '../../workers/runner.ts';
import { csvText, testEnv, waitFor, type TestEnv } from '../helpers/env.ts';
import { call, type HttpAnswer } from '../helpers/http.ts';
import { silentLog, startTestWorkers } from '../helpers/jobs.ts';
import { filterAttacks, sqlAttacks, type CorpusPaths } from './sql-corpus.ts';

const KEYS = {
  admin: 'sec-admin-key-3f9a8b7c6d5e',
  writer: 'sec-writer-key-1a2b3c4d5e6f',
  reader: 'sec-reader-key-9e8d7c6b5a4f',
} as const;
type RoleName = keyof typeof KEYS;
const DATASET = 'people';
const INDEX = 'people_idx';
const ROWS = 40;
const FIRST = ['Alice', 'Robert', 'Maria', 'James', 'Olivia', 'David', 'Emma', 'Thomas'];
const LAST = ['Quillfeather', 'Marchbanks', 'Oyelaran', 'Fitzwarren', 'Halvorsen'];

/** A 16-digit number passing the Luhn check, different for each i. */
function cardNumber(i: number): string {
  const body = `45390000${String(100_000 + i * 7_919).padStart(7, '0')}`;
  let sum = 0;
  for (let j = 0; j < body.length; j++) {
    let d = Number(body[body.length - 1 - j]);
    if (j % 2 === 0) d = d * 2 > 9 ? d * 2 - 9 : d * 2;
    sum += d;
  }
  return body + String((10 - (sum % 10)) % 10);
}

interface Person {
  id: number;
  full_name: string;
  email: string;
  phone: string;
  card: string;
  city: string;
  notes: string;
}

function people(): Person[] {
  return Array.from({ length: ROWS }, (_, i) => ({
    id: i + 1,
    full_name: `${FIRST[i % FIRST.length]} ${LAST[i % LAST.length]}`,
    email: `${FIRST[i % FIRST.length]!.toLowerCase()}.${LAST[i % LAST.length]!.toLowerCase()}${i}@privatemail.example`,
    phone: `+44 20 7946 ${String(1000 + i).slice(-4)}`,
    card: cardNumber(i),
    city: ['London', 'Leeds', 'York'][i % 3]!,
    notes: `customer note number ${i} about delivery windows and parcel lockers`,
  }));
}

let env: TestEnv;
let api: RunningApi;
let workers: RunningWorkers;
let paths: CorpusPaths;
let rows: Person[];
/** Every raw value of the PII columns. */
let rawValues: string[];
/** Strings that must never come back to anyone: the canaries' contents. */
let canaries: string[];

const as = (role: RoleName, p: string, body?: unknown) => call(api.url, p, { key: KEYS[role], ...(body !== undefined ? { method: 'POST', body } : {}) });

/** The raw values (and the data root) an answer holds that the request itself did not. */
function leaked(answer: HttpAnswer, request: string, secrets: string[]): string[] {
  return secrets.filter((s) => answer.text.includes(s) && !request.includes(s));
}

function assertAnswered(answer: HttpAnswer, what: string): void {
  assert.ok(answer.status < 500, `${what}: answered ${answer.status} ${answer.text.slice(0, 300)}`);
  if (answer.status >= 400) assert.match(answer.headers.get('content-type') ?? '', /application\/problem\+json/, what);
}

async function finished(role: RoleName, location: string, timeoutMs: number): Promise<any> {
  return waitFor(
    async () => {
      const r = await as(role, location);
      return r.json?.state === 'completed' || r.json?.state === 'failed' ? r.json : undefined;
    },
    { timeoutMs, intervalMs: 200, what: `${location} to finish` },
  );
}

describe('SQL attack suite through the API', { timeout: 300_000 }, () => {
  before(async () => {
    env = await testEnv();
    workers = await startTestWorkers(env, ['ingest', 'embed'], 2);
    env.defer(() => workers.close());
    const config = loadConfig({
      ...process.env,
      LAKEHOUSE_API_KEYS: Object.entries(KEYS).map(([role, key]) => `${key}:${role}`).join(','),
      LAKEHOUSE_HOST: '127.0.0.1',
      PORT: '0',
      LAKEHOUSE_SEARCH_FILTER_MAX_ROWS: '35',
      LAKEHOUSE_SEARCH_MAX_EF: '64',
    });
    api = await startApi(config, silentLog);
    env.defer(() => api.close());

    rows = people();
    rawValues = rows.flatMap((r) => [r.full_name, r.email, r.phone, r.card]);
    const header = ['id', 'full_name', 'email', 'phone', 'card', 'city', 'notes'] as const;
    const csv = csvText([[...header], ...rows.map((r) => header.map((h) => r[h]))]);
    const upload = await call(api.url, `/datasets/${DATASET}/upload?mode=replace&filename=people.csv`, {
      method: 'POST', key: KEYS.writer, body: csv, headers: { 'content-type': 'text/csv' },
    });
    assert.equal(upload.status, 202, upload.text);
    const ingest = await finished('writer', upload.headers.get('location')!, 60_000);
    assert.equal(ingest.state, 'completed', JSON.stringify(ingest));

    const manifest = JSON.parse(await fs.readFile(path.join(env.dataDir, 'datasets', DATASET, 'manifest.json'), 'utf8'));
    const flagged = new Set(manifest.pii.map((p: { column: string }) => p.column));
    for (const column of ['full_name', 'email', 'phone', 'card']) assert.ok(flagged.has(column), `precondition: ${column} is flagged as PII (${[...flagged].join(', ')})`);
    const part = path.join(env.dataDir, 'datasets', DATASET, manifest.parts[0].file);

    // canaries where no query may reach: the secrets folder, the audit folder and outside the data root
    const token = () => `CANARY-${randomBytes(8).toString('hex')}`;
    canaries = [token(), token(), token()];
    const outside = await fs.mkdtemp(path.join(os.tmpdir(), 'lhtest-outside-'));
    env.defer(() => fs.rm(outside, { recursive: true, force: true }));
    const canaryFiles = [path.join(env.dataDir, 'secrets', 'canary.txt'), path.join(env.dataDir, 'audit', 'canary.txt'), path.join(outside, 'canary.txt')];
    await fs.mkdir(path.join(env.dataDir, 'audit'), { recursive: true });
    await Promise.all(canaryFiles.map((file, i) => fs.writeFile(file, `${canaries[i]}\n`)));
    paths = { part, datasetDir: path.join(env.dataDir, 'datasets', DATASET), root: env.dataDir, canaryFile: canaryFiles[0]!, dataset: DATASET };

    const embed = await as('writer', '/jobs/embed', { index: INDEX, dataset: DATASET, id_column: 'id', text_column: 'notes', provider: 'local' });
    assert.equal(embed.status, 202, embed.text);
    const embedded = await finished('writer', embed.headers.get('location')!, 180_000);
    assert.equal(embedded.state, 'completed', JSON.stringify(embedded));
  });

  after(() => env?.cleanup());

  it('the ingest job made the reader copy before any query asked for it', async () => {
    const copies = await fs.readdir(path.join(env.dataDir, 'reader', DATASET));
    assert.equal(copies.filter((f) => f.endsWith('.parquet')).length, 1, copies.join(', '));
  });

  it('precondition: readers see the PII columns masked and writers see them raw', async () => {
    const reader = await as('reader', '/query', { sql: `SELECT full_name, email, phone, card, city FROM ${DATASET} ORDER BY id LIMIT 1` });
    assert.deepEqual(reader.json.rows, [{ full_name: '***', email: '***', phone: '***', card: '***', city: 'London' }]);
    const writer = await as('writer', '/query', { sql: `SELECT email FROM ${DATASET} ORDER BY id LIMIT 1` });
    assert.deepEqual(writer.json.rows, [{ email: rows[0]!.email }]);
  });

  it('the corpus holds at least 60 shapes', () => {
    assert.ok(sqlAttacks(paths).length >= 60, `${sqlAttacks(paths).length} shapes`);
  });

  for (const role of ['reader', 'writer', 'admin'] as const) {
    it(`${role}: no attack in the corpus gets past the role`, async () => {
      const failures: string[] = [];
      for (const attack of sqlAttacks(paths)) {
        const answer = await as(role, '/query', { sql: attack.sql });
        assertAnswered(answer, `${role} / ${attack.label}`);
        const secrets = role === 'reader' ? [...rawValues, ...canaries, env.dataDir] : canaries;
        const found = leaked(answer, attack.sql, secrets);
        if (found.length > 0) failures.push(`${attack.label} (${answer.status}): ${found.slice(0, 3).join(', ')}`);
      }
      assert.deepEqual(failures, [], `${role} got values past its role`);
      assert.equal((await call(api.url, '/health')).status, 200, 'the API is still up');
    });
  }

  it('reader: refusals name their reason and are audited in full with the datasets they resolved to', async () => {
    const attack = `WITH "${paths.part}" AS (SELECT * FROM "${paths.part}") SELECT * FROM "${paths.part}"`;
    const refused = await as('reader', '/query', { sql: attack });
    assert.equal(refused.status, 400);
    assert.match(refused.json.detail, /^Readers may only query catalog datasets by name: the (CTE|table) name .* is not a plain identifier/);
    const padded = `SELECT email FROM ${DATASET} WHERE city <> '${'x'.repeat(12_000)}' AND 'END-MARK' = 'END-MARK'`;
    const ok = await as('reader', '/query', { sql: padded });
    assert.equal(ok.status, 200, ok.text);
    const log = await as('admin', '/audit/queries?limit=1000');
    const entries: any[] = log.json.entries;
    const refusal = entries.find((e) => e.sql === attack);
    assert.ok(refusal, 'the refused attack is in the log, whole');
    assert.equal(refusal.outcome, 'refused');
    assert.match(refusal.error, /not a plain identifier/);
    const padEntry = entries.find((e) => e.sql_chars === padded.length);
    assert.ok(padEntry, 'the long query is in the log');
    assert.ok(padEntry.sql.startsWith(`SELECT email FROM ${DATASET}`) && padEntry.sql.endsWith(`'END-MARK' = 'END-MARK'`), 'head and tail kept');
    assert.equal(padEntry.outcome, 'ok');
    assert.deepEqual(padEntry.datasets, [DATASET]);
    assert.ok(padEntry.pii_columns.some((c: any) => c.dataset === DATASET && c.column === 'email'), JSON.stringify(padEntry.pii_columns));
    const readerLines = entries.filter((e) => e.role === 'reader');
    assert.ok(readerLines.length >= sqlAttacks(paths).length, 'every reader attack was audited');
  });

  it('reader: hybrid-search filters reach no raw value and are no oracle on masked columns', async () => {
    const known = rows[3]!.email;
    const vector = Array.from({ length: 512 }, (_, i) => (i === 0 ? 1 : 0));
    const search = (filter: string) => as('reader', `/indexes/${INDEX}/search`, { vector, k: 5, filter });
    const none = await search(`email = 'nobody@nowhere.invalid'`);
    assert.equal(none.status, 200, none.text);
    const london = await search(`city = 'London'`);
    assert.equal(london.json.matched_docs, rows.filter((r) => r.city === 'London').length, 'control: a filter on a public column matches');
    const failures: string[] = [];
    for (const attack of filterAttacks(paths, known)) {
      const answer = await search(attack.sql);
      assertAnswered(answer, `filter / ${attack.label}`);
      const found = leaked(answer, attack.sql, [...rawValues, ...canaries, env.dataDir]);
      if (found.length > 0) failures.push(`${attack.label}: ${found.join(', ')}`);
      if (answer.status === 200) {
        assert.equal(answer.json.matched_docs, none.json.matched_docs, `${attack.label}: the filter matched as if it knew the raw value`);
      }
    }
    assert.deepEqual(failures, []);
  });

  it('writer: a filter that closes its parenthesis to add a UNION is refused, not run', async () => {
    const vector = Array.from({ length: 512 }, (_, i) => (i === 0 ? 1 : 0));
    const answer = await as('writer', `/indexes/${INDEX}/search`, { vector, k: 5, filter: `1 = 1) UNION ALL SELECT email FROM ${DATASET} WHERE (1 = 1` });
    assert.equal(answer.status, 400, answer.text);
    assert.match(answer.json.detail, /the filter must be one boolean expression/);
  });

  it('search limits: ef above LAKEHOUSE_SEARCH_MAX_EF and filters selecting more than LAKEHOUSE_SEARCH_FILTER_MAX_ROWS are refused', async () => {
    const vector = Array.from({ length: 512 }, (_, i) => (i === 0 ? 1 : 0));
    const wide = await as('reader', `/indexes/${INDEX}/search`, { vector, k: 5, ef: 65 });
    assert.equal(wide.status, 400, wide.text);
    assert.match(wide.json.detail, /ef 65 is above this server's limit of 64 \(LAKEHOUSE_SEARCH_MAX_EF\)/);
    const broad = await as('reader', `/indexes/${INDEX}/search`, { vector, k: 5, filter: 'id > 0' });
    assert.equal(broad.status, 400, broad.text);
    assert.match(broad.json.detail, /selects more than 35 documents \(LAKEHOUSE_SEARCH_FILTER_MAX_ROWS\)/);
    const fine = await as('reader', `/indexes/${INDEX}/search`, { vector, k: 5, ef: 64, filter: 'id > 10' });
    assert.equal(fine.status, 200, fine.text);
    assert.equal(fine.json.hits.length, 5);
  });
});
