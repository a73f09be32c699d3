/**
 * Staleness across buckets with the real Redis: an ingest marks the indexes of its dataset stale
 * under each index's lock (keeping the earliest time), names the on_append ones, and a committed
 * generation clears the mark only when it reflects the newest dataset version. Manifests written
 * before `tombstone_files` / `source_version` existed still parse.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LockTimeoutError } from '../../shared/redis/entity-lock.ts';
import { Buckets } from '../../shared/storage/buckets.ts';
import { commitGeneration } from '../../shared/vectors/index/generations.ts';
import {
  currentGeneration,
  generationTombstoneFiles,
  indexManifestSchema,
  isStale,
  newIndexManifest,
  readIndexManifest,
  withGeneration,
  writeIndexManifest,
  type GenerationRecord,
  type IndexDefinition,
  type IndexManifest,
} from '../../shared/vectors/index/index-manifest.ts';
import { dependentIndexes, isUpToDate, listIndexes, markStale, withStale } from '../../shared/vectors/staleness.ts';
import { testEnv, type TestEnv } from '../helpers/env.ts';

let env: TestEnv;
let buckets: Buckets;
const lockKeyFor = (name: string) => `${env.prefix}:lock:index:${name}`;

function definition(name: string, bucket: string, dataset: string, refresh_policy: IndexDefinition['refresh_policy']): IndexDefinition {
  return {
    name,
    bucket,
    source: { dataset, id_column: 'id', text_column: 'body' },
    embedding: { provider: 'use-lite', model: 'universal-sentence-encoder-lite', dims: 512, normalized: true },
    chunking: { size: 800, overlap: 100 },
    hnsw: { m: 16, ef_construction: 200, ef_search: 100 },
    refresh_policy,
  };
}

function generation(id: number, source_version?: number): GenerationRecord {
  return {
    id,
    created_at: '2025-01-01T00:00:00.000Z',
    vectors_files: [`vectors/part-${id}.parquet`],
    count: 10,
    deleted: 0,
    build: { seconds: 1, m: 16, ef_construction: 200 },
    ...(source_version === undefined ? {} : { source_version, tombstone_files: [`tombstones/part-g${id}.parquet`] }),
  };
}

async function manifest(name: string, bucket = 'primary'): Promise<IndexManifest> {
  return (await readIndexManifest(buckets.get(bucket).root, name))!;
}

const T0 = '2025-03-01T00:00:00.000Z';
const T1 = '2025-03-02T00:00:00.000Z';
const T2 = '2025-03-03T00:00:00.000Z';

before(async () => {
  env = await testEnv();
  const cold = await fs.mkdtemp(path.join(os.tmpdir(), 'lhtest-cold-'));
  env.defer(() => fs.rm(cold, { recursive: true, force: true }));
  buckets = new Buckets(env.dataDir, [{ name: 'cold', path: cold }]);
  const now = '2025-01-01T00:00:00.000Z';
  const built = withGeneration(newIndexManifest(definition('art_manual', 'primary', 'articles', 'manual'), now), generation(1, 3), { docs: 1, chunks: 10 }, now);
  await writeIndexManifest(buckets.primary, built);
  await writeIndexManifest(buckets.get('cold').root, newIndexManifest(definition('art_append', 'cold', 'articles', 'on_append'), now));
  await writeIndexManifest(buckets.primary, newIndexManifest(definition('other_idx', 'primary', 'other', 'on_append'), now));
});

after(async () => {
  await env.cleanup();
});

describe('index manifest additions', () => {
  it('parses a manifest written before tombstone_files and source_version, with defaults', () => {
    const old = {
      ...newIndexManifest(definition('old_idx', 'primary', 'articles', 'manual'), T0),
      generation: 1,
      generations: [{ id: 1, created_at: T0, vectors_files: ['vectors/part-1.parquet'], count: 5, deleted: 0, build: { seconds: 1, m: 16, ef_construction: 200 } }],
    };
    const parsed = indexManifestSchema.parse(JSON.parse(JSON.stringify(old)));
    assert.deepEqual(parsed.generations[0]!.tombstone_files, []);
    assert.equal(parsed.generations[0]!.source_version, null);
    assert.equal(parsed.stale_source_version, undefined);
    assert.deepEqual(generationTombstoneFiles(buckets.primary, parsed, currentGeneration(parsed)!), []);
  });

  it('withGeneration fills the defaults in, and lists tombstone files under the index directory', async () => {
    const m = await manifest('art_manual');
    const gen = currentGeneration(m)!;
    assert.equal(gen.source_version, 3);
    assert.deepEqual(generationTombstoneFiles(buckets.primary, m, gen), [path.join(env.dataDir, 'indexes', 'art_manual', 'tombstones', 'part-g1.parquet')]);
    const plain = withGeneration(m, generation(2), { docs: 1, chunks: 10 }, T0);
    assert.deepEqual(currentGeneration(plain)!.tombstone_files, []);
    assert.equal(currentGeneration(plain)!.source_version, null);
    assert.deepEqual(indexManifestSchema.parse(JSON.parse(JSON.stringify(plain))), plain);
  });
});

describe('staleness', () => {
  it('finds the indexes of a dataset in every bucket', async () => {
    assert.deepEqual((await dependentIndexes(buckets, 'articles')).map((m) => `${m.bucket}/${m.name}`), ['cold/art_append', 'primary/art_manual']);
    assert.deepEqual((await dependentIndexes(buckets, 'nothing')).map((m) => m.name), []);
    assert.deepEqual((await listIndexes(buckets)).map((m) => m.name), ['art_append', 'art_manual', 'other_idx']);
    assert.deepEqual(await listIndexes(buckets, { stale: true }), []);
  });

  it('marks both indexes of the dataset stale under their locks, names the on_append one, bumps versions', async () => {
    const before = { manual: (await manifest('art_manual')).version, append: (await manifest('art_append', 'cold')).version, other: (await manifest('other_idx')).version };
    const out = await markStale({ buckets, redis: env.redis, lockKeyFor, dataset: 'articles', at: T1, sourceVersion: 4 });
    assert.deepEqual(out, { stale: ['art_append', 'art_manual'], onAppend: ['art_append'], changed: ['art_append', 'art_manual'] });
    const manual = await manifest('art_manual');
    const append = await manifest('art_append', 'cold');
    assert.equal(manual.stale_since, T1);
    assert.equal(append.stale_since, T1);
    assert.equal(manual.stale_source_version, 4);
    assert.equal(manual.version, before.manual + 1);
    assert.equal(append.version, before.append + 1);
    assert.equal((await manifest('other_idx')).version, before.other, 'an index of another dataset is untouched');
    assert.equal((await manifest('other_idx')).stale_since, null);
    for (const name of ['art_manual', 'art_append']) assert.equal(await env.redis.exists(lockKeyFor(name)), 0, 'lock released');
    assert.deepEqual((await listIndexes(buckets, { stale: true })).map((m) => m.name), ['art_append', 'art_manual']);
    assert.deepEqual((await listIndexes(buckets, { stale: false })).map((m) => m.name), ['other_idx']);
  });

  it('keeps the earliest stale_since and the newest version; a repeat writes nothing', async () => {
    const v = (await manifest('art_manual')).version;
    const later = await markStale({ buckets, redis: env.redis, lockKeyFor, dataset: 'articles', at: T2, sourceVersion: 5 });
    assert.deepEqual(later.changed, ['art_append', 'art_manual'], 'the newer source version is recorded');
    assert.equal((await manifest('art_manual')).stale_since, T1);
    assert.equal((await manifest('art_manual')).stale_source_version, 5);
    assert.equal((await manifest('art_manual')).version, v + 1);

    const repeat = await markStale({ buckets, redis: env.redis, lockKeyFor, dataset: 'articles', at: T2, sourceVersion: 5 });
    assert.deepEqual(repeat, { stale: ['art_append', 'art_manual'], onAppend: ['art_append'], changed: [] });
    assert.equal((await manifest('art_manual')).version, v + 1);

    await markStale({ buckets, redis: env.redis, lockKeyFor, dataset: 'articles', at: T0 });
    assert.equal((await manifest('art_manual')).stale_since, T0, 'an earlier change moves it back');
    assert.equal((await manifest('art_manual')).stale_source_version, 5);
  });

  it('waits for an index lock someone else holds, and gives up after waitMs', async () => {
    await env.redis.set(lockKeyFor('art_manual'), 'someone-else', 'PX', 10_000);
    await assert.rejects(markStale({ buckets, redis: env.redis, lockKeyFor, dataset: 'articles', at: T2, lock: { waitMs: 150 } }), LockTimeoutError);
    const started = performance.now();
    setTimeout(() => void env.redis.del(lockKeyFor('art_manual')), 300);
    const out = await markStale({ buckets, redis: env.redis, lockKeyFor, dataset: 'articles', at: T2, lock: { waitMs: 5_000 } });
    assert.ok(performance.now() - started >= 290, 'it waited for the release');
    assert.deepEqual(out.stale, ['art_append', 'art_manual']);
  });

  it('a generation reflecting an older version keeps the index stale; one reflecting the newest clears it', async () => {
    const commit = (id: number, source_version: number) =>
      commitGeneration({ redis: env.redis, lockKey: lockKeyFor('art_manual'), root: buckets.primary, name: 'art_manual', generation: generation(id, source_version), stats: { docs: 1, chunks: 10 } });
    const older = await commit(2, 4);
    assert.equal(older.manifest.generation, 2);
    assert.equal(older.manifest.stale_since, T0, 'version 5 is not in generation 2');
    assert.ok(isStale(await manifest('art_manual')));

    const newest = await commit(3, 5);
    assert.equal(newest.manifest.stale_since, null);
    assert.ok(!('stale_source_version' in newest.manifest));
    assert.ok(!isStale(await manifest('art_manual')));
    assert.ok(isUpToDate(await manifest('art_manual'), 5), 'a refresh of version 5 has nothing to do');
    assert.ok(!isUpToDate(await manifest('art_manual'), 6));
    assert.ok(!isUpToDate(await manifest('art_append', 'cold'), 1), 'never built');
  });

  it('a retried ingest of a version the current generation reflects does not mark it again', async () => {
    const v = (await manifest('art_manual')).version;
    const out = await markStale({ buckets, redis: env.redis, lockKeyFor, dataset: 'articles', at: T2, sourceVersion: 5 });
    assert.deepEqual(out.stale, ['art_append']);
    assert.equal((await manifest('art_manual')).version, v);
    assert.equal((await manifest('art_manual')).stale_since, null);
    const next = await markStale({ buckets, redis: env.redis, lockKeyFor, dataset: 'articles', at: T2, sourceVersion: 6 });
    assert.deepEqual(next.stale, ['art_append', 'art_manual']);
  });

  it('withStale is pure: the same or a later mark changes nothing', () => {
    const m = newIndexManifest(definition('pure_idx', 'primary', 'articles', 'manual'), T0);
    const once = withStale(m, T1, T1)!;
    assert.equal(once.stale_since, T1);
    assert.equal(once.version, 1);
    assert.ok(!('stale_source_version' in once));
    assert.equal(withStale(once, T2, T2), undefined);
    assert.equal(m.stale_since, null, 'the input is not changed');
  });

  it('a dataset without indexes marks nothing', async () => {
    assert.deepEqual(await markStale({ buckets, redis: env.redis, lockKeyFor, dataset: 'lonely', at: T1 }), { stale: [], onAppend: [], changed: [] });
    await assert.rejects(markStale({ buckets, redis: env.redis, lockKeyFor, dataset: 'articles', at: 'yesterday' }), RangeError);
  });
});
