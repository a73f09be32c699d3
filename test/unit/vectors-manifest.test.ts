/**
 * The index manifest and the generation directories it points at: the schema round-trips, bad
 * names and policies are refused, a commit keeps the last three generations and removes the
 * directories that fell off, and retried or stale commits do no harm. Commits take the index's
 * lock in the real Redis.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ConflictError, BadRequestError } from '../../shared/errors.ts';
import { DataRoot } from '../../shared/storage/data-root.ts';
import { commitGeneration, nextGenerationId, pruneGenerations } from '../../shared/vectors/index/generations.ts';
import {
  KEEP_GENERATIONS,
  currentGeneration,
  generationDir,
  generationVectorFiles,
  indexDir,
  indexManifestSchema,
  newIndexManifest,
  readIndexManifest,
  vectorsDir,
  withGeneration,
  writeIndexManifest,
  type GenerationRecord,
  type IndexDefinition,
  type IndexManifest,
} from '../../shared/vectors/index/index-manifest.ts';
import { testEnv, type TestEnv } from '../helpers/env.ts';

let env: TestEnv;
let root: DataRoot;

before(async () => {
  env = await testEnv();
  root = new DataRoot(env.dataDir);
});

after(async () => {
  await env.cleanup();
});

function definition(name: string): IndexDefinition {
  return {
    name,
    bucket: 'primary',
    source: { dataset: 'articles', id_column: 'id', text_column: 'body' },
    embedding: { provider: 'use-lite', model: 'universal-sentence-encoder-lite', dims: 512, normalized: true },
    chunking: { size: 800, overlap: 100 },
    hnsw: { m: 16, ef_construction: 200, ef_search: 100 },
    refresh_policy: { cron: '0 3 * * *' },
  };
}

function generation(id: number): GenerationRecord {
  return {
    id,
    created_at: new Date(Date.UTC(2025, 0, id)).toISOString(),
    vectors_files: [`vectors/part-${id}.parquet`],
    count: 1000 * id,
    deleted: 0,
    build: { seconds: 1.5, m: 16, ef_construction: 200, peak_rss_mb: 120 },
  };
}

describe('index manifest', () => {
  it('round-trips through disk, keeping the last three generations', async () => {
    let m = newIndexManifest(definition('articles_idx'), '2025-01-01T00:00:00.000Z');
    for (let id = 1; id <= 4; id++) m = withGeneration(m, generation(id), { docs: 10 * id, chunks: 30 * id }, `2025-01-0${id}T00:00:00.000Z`);
    assert.equal(m.version, 4);
    assert.equal(m.generation, 4);
    assert.deepEqual(m.generations.map((g) => g.id), [2, 3, 4]);
    assert.equal(m.generations.length, KEEP_GENERATIONS);

    assert.equal(currentGeneration(m)?.id, 4);
    assert.deepEqual(generationVectorFiles(root, m, currentGeneration(m)!), [path.join(env.dataDir, 'indexes', 'articles_idx', 'vectors', 'part-4.parquet')]);
    assert.throws(() => generationVectorFiles(root, m, { ...generation(5), vectors_files: ['../../../etc/passwd'] }), BadRequestError);

    await writeIndexManifest(root, m);
    assert.deepEqual(await readIndexManifest(root, 'articles_idx'), m);
    assert.deepEqual(indexManifestSchema.parse(JSON.parse(JSON.stringify(m))), m);
    const files = await fs.readdir(indexDir(root, 'articles_idx'));
    assert.deepEqual(files, ['manifest.json'], 'no temporary file left');
  });

  it('accepts each refresh policy and a stale flag', () => {
    const base = newIndexManifest(definition('p'), '2025-01-01T00:00:00.000Z');
    for (const policy of ['manual', 'on_append', { cron: '*/15 * * * *' }] as const) {
      const m: IndexManifest = { ...base, refresh_policy: policy, stale_since: '2025-02-01T00:00:00.000Z' };
      assert.deepEqual(indexManifestSchema.parse(m), m);
    }
  });

  it('refuses bad names, bad cron, bad chunking and bad dims', () => {
    const good = newIndexManifest(definition('ok'), '2025-01-01T00:00:00.000Z');
    const bad: unknown[] = [
      { ...good, name: 'Bad-Name' },
      { ...good, name: '../escape' },
      { ...good, source: { ...good.source, dataset: '1abc' } },
      { ...good, refresh_policy: { cron: 'every tuesday' } },
      { ...good, refresh_policy: 'hourly' },
      { ...good, chunking: { size: 100, overlap: 100 } },
      { ...good, embedding: { ...good.embedding, dims: 0 } },
      { ...good, generation: 0 },
    ];
    for (const m of bad) assert.equal(indexManifestSchema.safeParse(m).success, false, JSON.stringify(m).slice(0, 120));
  });

  it('lays out paths under <root>/indexes and refuses names that leave it', () => {
    assert.equal(indexDir(root, 'docs'), path.join(env.dataDir, 'indexes', 'docs'));
    assert.equal(generationDir(root, 'docs', 7), path.join(env.dataDir, 'indexes', 'docs', 'gen-7'));
    assert.equal(vectorsDir(root, 'docs'), path.join(env.dataDir, 'indexes', 'docs', 'vectors'));
    assert.throws(() => indexDir(root, '../etc'), BadRequestError);
    assert.throws(() => generationDir(root, 'docs', 0), BadRequestError);
    assert.throws(() => generationDir(root, 'docs', 1.5), BadRequestError);
  });

  it('reads an index that does not exist as undefined', async () => {
    assert.equal(await readIndexManifest(root, 'nothing_here'), undefined);
  });
});

describe('generations', () => {
  const name = 'gens_idx';
  const lockKey = () => `${env.prefix}:lock:index:${name}`;

  async function makeGenDir(id: number): Promise<void> {
    await fs.mkdir(generationDir(root, name, id), { recursive: true });
    await fs.writeFile(path.join(generationDir(root, name, id), 'hnsw.bin'), `graph ${id}`);
  }

  async function listing(): Promise<string[]> {
    return (await fs.readdir(indexDir(root, name))).sort();
  }

  it('numbers a new build above everything on disk, crashed temporary builds included', async () => {
    assert.equal(await nextGenerationId(root, name, undefined), 1);
    await writeIndexManifest(root, newIndexManifest(definition(name), new Date().toISOString()));
    await makeGenDir(1);
    await fs.mkdir(path.join(indexDir(root, name), '.gen-2.0123456789ab.tmp'));
    const m = (await readIndexManifest(root, name))!;
    assert.equal(await nextGenerationId(root, name, m), 3);
  });

  it('commits under the lock, keeps three, removes the rest, and ignores a retry', async () => {
    for (let id = 1; id <= 4; id++) {
      if (id > 1) await makeGenDir(id);
      const out = await commitGeneration({ redis: env.redis, lockKey: lockKey(), root, name, generation: generation(id), stats: { docs: id, chunks: id * 3 } });
      assert.equal(out.applied, true);
      assert.equal(out.manifest.generation, id);
    }
    assert.deepEqual(await listing(), ['gen-2', 'gen-3', 'gen-4', 'manifest.json'], 'gen-1 and the crashed .gen-2 build are gone');
    assert.equal(await env.redis.exists(lockKey()), 0, 'lock released');

    const again = await commitGeneration({ redis: env.redis, lockKey: lockKey(), root, name, generation: generation(4), stats: { docs: 4, chunks: 12 } });
    assert.equal(again.applied, false);
    assert.equal(again.manifest.version, 4);
  });

  it('refuses to go back to an older generation', async () => {
    await assert.rejects(
      commitGeneration({ redis: env.redis, lockKey: lockKey(), root, name, generation: generation(3), stats: { docs: 3, chunks: 9 } }),
      ConflictError,
    );
    assert.equal((await readIndexManifest(root, name))!.generation, 4);
  });

  it('never prunes a directory newer than the current generation (a build in progress)', async () => {
    await makeGenDir(5);
    await fs.mkdir(path.join(indexDir(root, name), '.gen-6.abcdefabcdef.tmp'));
    const removed = await pruneGenerations(root, (await readIndexManifest(root, name))!);
    assert.deepEqual(removed, []);
    assert.deepEqual(await listing(), ['.gen-6.abcdefabcdef.tmp', 'gen-2', 'gen-3', 'gen-4', 'gen-5', 'manifest.json']);
  });
});
