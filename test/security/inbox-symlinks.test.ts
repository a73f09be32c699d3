/**
 * The inbox never follows a symlink (shared/inbox/inbox.ts). Someone who can drop files into
 * inbox/ plants symlinks to a folder outside the data root holding a CSV of secrets, in every
 * shape: a symlinked dataset folder, symlinked files (absolute, relative, to a directory,
 * dangling), a folder alias pointing back inside, a symlinked inbox/ itself. With real workers
 * feeding the inbox (real Redis, sandboxed ingest), nothing from outside is ingested or moved,
 * a client naming such a path in a job gets a 400, and each refusal is logged.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import type { Producer } from '../../queues/producer.ts';
import { BadRequestError } from '../../shared/errors.ts';
import { claim, claimForJob, inboxDir, scanInbox } from '../../shared/inbox/inbox.ts';
import { DataRoot } from '../../shared/storage/data-root.ts';
import { startWorkers, type RunningWorkers } from '../../workers/runner.ts';
import { sqlString, withDuckDB } from '../helpers/duckdb.ts';
import { testEnv, waitFor, type TestEnv } from '../helpers/env.ts';
import { assertNoSandboxChildrenLeft, startProducer } from '../helpers/jobs.ts';

const SECRET = 'SSN-078-05-1120-TOPSECRET';
const QUIET_AGO = new Date(Date.now() - 60_000);

let env: TestEnv;
let outside: string;
let workers: RunningWorkers;
let producer: Producer;
const logLines: string[] = [];

/** Every planted symlink, relative to inbox/, and where it points. */
function corpus(): { link: string; target: string }[] {
  return [
    { link: 'leaked', target: outside }, // a dataset folder that is a symlink
    { link: 'alias', target: 'sales' }, // a folder alias pointing back inside the inbox
    { link: 'sales/link.csv', target: path.join(outside, 'secrets.csv') }, // absolute file symlink
    { link: 'sales/rel.csv', target: path.relative(path.join(env.dataDir, 'inbox', 'sales'), path.join(outside, 'secrets.csv')) }, // relative
    { link: 'sales/dir.csv', target: outside }, // a symlink to a directory, named like a file
    { link: 'sales/dangling.csv', target: path.join(outside, 'no-such.csv') },
    { link: 'sales/passwd.csv', target: '/etc/passwd' },
  ];
}

async function outsideUntouched(): Promise<void> {
  assert.deepEqual((await fs.readdir(outside)).sort(), ['secrets.csv', 'sub'], 'nothing moved out of or into the outside folder');
  assert.match(await fs.readFile(path.join(outside, 'secrets.csv'), 'utf8'), new RegExp(SECRET));
}

/** Every file under the data root whose bytes hold the secret (Parquet stores short strings plainly). */
async function filesHoldingSecret(dir: string): Promise<string[]> {
  const hits: string[] = [];
  for (const e of await fs.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) hits.push(...(await filesHoldingSecret(p)));
    else if (e.isFile() && (await fs.readFile(p)).includes(SECRET)) hits.push(p);
  }
  return hits;
}

describe('inbox symlinks', { timeout: 120_000 }, () => {
  const savedPoll = process.env['LAKEHOUSE_INBOX_POLL_MS'];

  before(async () => {
    process.env['LAKEHOUSE_INBOX_POLL_MS'] = '100';
    env = await testEnv();
    outside = await fs.mkdtemp(path.join(os.tmpdir(), 'lh-outside-'));
    env.defer(() => fs.rm(outside, { recursive: true, force: true }));
    await fs.writeFile(path.join(outside, 'secrets.csv'), `id,ssn\n1,${SECRET}\n`);
    await fs.mkdir(path.join(outside, 'sub'));
    await fs.writeFile(path.join(outside, 'sub', 'more.csv'), `id,ssn\n2,${SECRET}\n`);
    await fs.utimes(path.join(outside, 'secrets.csv'), QUIET_AGO, QUIET_AGO);
    const inbox = path.join(env.dataDir, 'inbox');
    await fs.mkdir(path.join(inbox, 'sales'), { recursive: true });
    for (const { link, target } of corpus()) await fs.symlink(target, path.join(inbox, link));
    producer = await startProducer(env);
  });

  after(async () => {
    try {
      await env?.cleanup();
      await assertNoSandboxChildrenLeft();
    } finally {
      if (savedPoll === undefined) delete process.env['LAKEHOUSE_INBOX_POLL_MS'];
      else process.env['LAKEHOUSE_INBOX_POLL_MS'] = savedPoll;
    }
  });

  it('a scan offers none of the symlinks and reports each one', async () => {
    const refused: string[] = [];
    const found = await scanInbox(new DataRoot(env.dataDir), { quietMs: 0, onRefused: (where) => refused.push(where) });
    assert.deepEqual(found, []);
    assert.deepEqual(refused.sort(), corpus().map((c) => `inbox/${c.link}`).sort());
  });

  it('a client naming a symlinked path in an ingest job gets a 400 and nothing moves', async () => {
    const root = new DataRoot(env.dataDir);
    const attempts = ['leaked/secrets.csv', 'leaked/sub', 'alias/link.csv', 'sales/link.csv', 'sales/rel.csv', 'sales/dir.csv', 'sales/passwd.csv'];
    for (const p of attempts) {
      await assert.rejects(claimForJob(root, p), (err: unknown) => err instanceof BadRequestError && /symlinks are never followed/.test((err as Error).message), p);
      await assert.rejects(
        producer.add('ingest', { payload: { dataset: 'sales', source: { kind: 'inbox', path: p } } }),
        (err: unknown) => err instanceof BadRequestError && /symlinks are never followed/.test((err as Error).message),
        `producer: ${p}`,
      );
    }
    await assert.rejects(claim(root, { dataset: 'leaked', file: 'secrets.csv' }), /inbox\/leaked is not a directory; symlinks are never followed/);
    await outsideUntouched();
  });

  it('a symlinked inbox/ itself is never entered', async () => {
    const other = new DataRoot(path.join(env.dataDir, 'other-root'));
    await fs.mkdir(other.root, { recursive: true });
    await fs.mkdir(path.join(outside, 'sub', 'sales'), { recursive: true }).catch(() => {});
    await fs.symlink(path.join(outside, 'sub'), inboxDir(other));
    try {
      const refused: string[] = [];
      assert.deepEqual(await scanInbox(other, { quietMs: 0, onRefused: (w) => refused.push(w) }), []);
      assert.deepEqual(refused, ['inbox']);
      await assert.rejects(claimForJob(other, 'sales/more.csv'), /inbox is not a directory; symlinks are never followed/);
    } finally {
      await fs.rm(path.join(outside, 'sub', 'sales'), { recursive: true, force: true });
    }
  });

  it('real workers feeding the inbox ingest the real file only, log every refusal, and no secret lands in the data root', async () => {
    const logger = pino({ level: 'info' }, { write: (line: string) => void logLines.push(line) });
    workers = await startWorkers({ config: env.config, queues: ['ingest'], concurrency: 1, log: logger });
    env.defer(() => workers.close(5_000));
    const good = path.join(env.dataDir, 'inbox', 'sales', 'good.csv');
    await fs.writeFile(good, 'id,amount\n1,10\n2,20\n');
    await fs.utimes(good, QUIET_AGO, QUIET_AGO);
    const processed = path.join(env.dataDir, 'inbox', 'processed', 'sales');
    await waitFor(async () => (await fs.readdir(processed).catch(() => [])).some((f) => f.endsWith('__good.csv')), { timeoutMs: 60_000, what: 'good.csv ingested' });
    await waitFor(() => corpus().every((c) => logLines.some((l) => l.includes('inbox entry refused') && l.includes(`"inbox/${c.link}"`))), { timeoutMs: 10_000, what: 'every refusal logged' });

    const parts = path.join(env.dataDir, 'datasets', 'sales');
    const rows = await withDuckDB((db) => db.all(`SELECT * FROM read_parquet(${sqlString(path.join(parts, '**', '*.parquet'))})`));
    assert.equal(rows.length, 2, 'the sales dataset holds the two real rows only');
    await assert.rejects(fs.access(path.join(env.dataDir, 'datasets', 'leaked')), /ENOENT/, 'no dataset from the symlinked folder');
    assert.deepEqual(await filesHoldingSecret(env.dataDir), [], 'no secret bytes anywhere in the data root');
    for (const { link } of corpus()) assert.ok((await fs.lstat(path.join(env.dataDir, 'inbox', link))).isSymbolicLink(), `${link} left where it was`);
    await outsideUntouched();
  });
});
