/**
 * The trial journal: appended JSON lines per index, listed newest first, and idempotent per trial
 * id so a retried autotune job journals each trial once.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { appendTrial, findTrial, listTrials, trialId, TRIALS_FILE, type TrialRecord } from '../../shared/autotune/journal.ts';
import { BadRequestError, NotFoundError } from '../../shared/errors.ts';
import { DataRoot } from '../../shared/storage/data-root.ts';
import { indexDir } from '../../shared/vectors/index/index-manifest.ts';

const INDEX = 'journal_idx';
let tmp: string;
let root: DataRoot;

before(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'autotune-journal-'));
  root = new DataRoot(tmp);
});

after(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

function record(id: string, over: Partial<TrialRecord> = {}): TrialRecord {
  return {
    trial_id: id, index: INDEX, at: new Date().toISOString(), by: 'autotune', job_id: '7',
    config: { m: 16, ef_construction: 80, ef_search: 30 }, evalset: 'es-1', k: 10,
    recall: 0.97, p50_ms: 0.05, p95_ms: 0.09, build_seconds: 1.2, memory_mb: 3.4, generation: 1, ...over,
  };
}

describe('trialId', () => {
  it('is deterministic per job and config, and unique without a job', () => {
    const c = { m: 16, ef_construction: 80, ef_search: 30 };
    assert.equal(trialId(c, 'autotune-42'), 't-autotune-42-m16-efc80-efs30');
    assert.equal(trialId(c, 'autotune-42'), trialId(c, 'autotune-42'));
    assert.equal(trialId(c, 'autotune-a/b c'), 't-autotune-a_b_c-m16-efc80-efs30');
    assert.match(trialId(c), /^t-\d{14}-[0-9a-f]{6}-m16-efc80-efs30$/);
    assert.notEqual(trialId(c), trialId(c));
  });
});

describe('journal', () => {
  it('appends one line per trial and lists newest first, with limit and a before cursor', async () => {
    const ids = ['t-a', 't-b', 't-c', 't-d'];
    for (const id of ids) assert.equal((await appendTrial(root, INDEX, record(id))).appended, true);
    const lines = (await fs.readFile(path.join(indexDir(root, INDEX), TRIALS_FILE), 'utf8')).trimEnd().split('\n');
    assert.deepEqual(lines.map((l) => JSON.parse(l).trial_id), ids);
    assert.deepEqual((await listTrials(root, INDEX)).map((t) => t.trial_id), ['t-d', 't-c', 't-b', 't-a']);
    assert.deepEqual((await listTrials(root, INDEX, { limit: 2 })).map((t) => t.trial_id), ['t-d', 't-c']);
    assert.deepEqual((await listTrials(root, INDEX, { limit: 2, before: 't-c' })).map((t) => t.trial_id), ['t-b', 't-a']);
    assert.deepEqual(await listTrials(root, INDEX, { before: 't-a' }), []);
    await assert.rejects(listTrials(root, INDEX, { before: 't-zz' }), NotFoundError);
    await assert.rejects(listTrials(root, INDEX, { limit: 0 }), BadRequestError);
    assert.deepEqual(await findTrial(root, INDEX, 't-b'), record('t-b', { at: (await findTrial(root, INDEX, 't-b'))!.at }));
    assert.equal(await findTrial(root, INDEX, 't-zz'), undefined);
    assert.deepEqual(await listTrials(root, 'empty_idx'), []);
  });

  it('skips a trial id already journalled, also when appends race', async () => {
    const first = record('t-job9-m16-efc80-efs30', { recall: 0.9 });
    assert.equal((await appendTrial(root, INDEX, first)).appended, true);
    const retried = await appendTrial(root, INDEX, record('t-job9-m16-efc80-efs30', { recall: 0.1 }));
    assert.deepEqual(retried, { appended: false, record: first });
    const raced = await Promise.all([1, 2, 3].map((i) => appendTrial(root, INDEX, record('t-race', { recall: i / 10 }))));
    assert.equal(raced.filter((r) => r.appended).length, 1);
    const all = await listTrials(root, INDEX);
    assert.equal(all.filter((t) => t.trial_id === 't-race').length, 1);
    assert.equal(all.filter((t) => t.trial_id === first.trial_id).length, 1);
  });

  it('survives a torn last line: readers skip it and the next append starts a fresh line', async () => {
    const index = 'torn_idx';
    await appendTrial(root, index, record('t-1', { index }));
    await fs.appendFile(path.join(indexDir(root, index), TRIALS_FILE), '{"trial_id":"t-2","ind');
    assert.deepEqual((await listTrials(root, index)).map((t) => t.trial_id), ['t-1']);
    await appendTrial(root, index, record('t-3', { index }));
    assert.deepEqual((await listTrials(root, index)).map((t) => t.trial_id), ['t-3', 't-1']);
  });

  it('validates records', async () => {
    await assert.rejects(appendTrial(root, INDEX, record('t-x', { index: 'other_idx' })), BadRequestError);
    await assert.rejects(appendTrial(root, INDEX, record('x')), /trial id/);
    await assert.rejects(appendTrial(root, INDEX, record('t-y', { built_dir: '../gen-1' })), /built_dir/);
    await assert.rejects(appendTrial(root, INDEX, record('t-z', { config: { m: 100, ef_construction: 80, ef_search: 30 } })), /m 100 is above/);
    assert.equal(await findTrial(root, INDEX, 't-y'), undefined);
  });
});
