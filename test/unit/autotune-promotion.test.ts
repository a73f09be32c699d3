/**
 * The promotion registry on a real data root with the real Redis: promotions and rollbacks walk
 * back exactly, every step read back from disk by a fresh call (what a restarted process sees),
 * history keeps the last 50, concurrent promotions queue on the index lock, and a change a crash
 * or a failed activation interrupted is settled — undone before its commit point, rolled forward
 * after. `activate` is the test's own function: it writes a generation directory for the config
 * and commits it under the lock the promotion holds, recording each call.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  KEEP_PROMOTIONS,
  PROMOTION_FILE,
  commitGenerationHeld,
  configOr,
  promote,
  promotionRegistrySchema,
  readPromotion,
  reactivateGeneration,
  recoverPromotion,
  rollback,
  type Activate,
  type PromoteTrial,
  type PromotionRegistry,
} from '../../shared/autotune/promotion.ts';
import type { HnswConfig } from '../../shared/autotune/hnsw-config.ts';
import { ConflictError } from '../../shared/errors.ts';
import { withEntityLock } from '../../shared/redis/entity-lock.ts';
import { DataRoot } from '../../shared/storage/data-root.ts';
import { META_FILE, readGenerationMeta, type GenerationMeta } from '../../shared/vectors/index/generation-files.ts';
import { commitGeneration, nextGenerationId } from '../../shared/vectors/index/generations.ts';
import {
  generationDir,
  indexDir,
  newIndexManifest,
  readIndexManifest,
  writeIndexManifest,
  type GenerationRecord,
  type IndexManifest,
} from '../../shared/vectors/index/index-manifest.ts';
import { testEnv, type TestEnv } from '../helpers/env.ts';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const DEFAULT: HnswConfig = { m: 16, ef_construction: 200, ef_search: 100 };
const A: PromoteTrial = { trial_id: 't-a', config: { m: 24, ef_construction: 160, ef_search: 80 } };
const B: PromoteTrial = { trial_id: 't-b', config: { m: 32, ef_construction: 240, ef_search: 120 } };
const C: PromoteTrial = { trial_id: 't-c', config: { m: 8, ef_construction: 80, ef_search: 60 } };

let env: TestEnv;
let root: DataRoot;
let indexes = 0;

before(async () => {
  env = await testEnv();
  root = new DataRoot(env.dataDir);
});

after(async () => {
  await env.cleanup();
});

/** Every generation of these indexes reads the same vectors, so any listed one may be reused. */
function record(id: number): GenerationRecord {
  return { id, created_at: new Date().toISOString(), vectors_files: ['vectors/part-1.parquet'], count: 10, deleted: 0, build: { seconds: 0, m: 2, ef_construction: 1 } };
}

/** A generation directory whose generation.json says it holds a graph of `config`. */
async function writeGraph(name: string, id: number, config: HnswConfig): Promise<void> {
  const dir = generationDir(root, name, id);
  await fs.mkdir(dir, { recursive: true });
  const meta: GenerationMeta = { format: 1, space: 'cosine', dims: 4, count: 10, ...config, seed: 100, seconds: 0, built_at: new Date().toISOString() };
  await fs.writeFile(path.join(dir, META_FILE), JSON.stringify(meta));
  await fs.writeFile(path.join(dir, 'hnsw.bin'), `graph ${id}`);
}

/** A fresh index whose generation 1 holds the default graph. */
async function newIndex(): Promise<{ name: string; lockKey: string }> {
  const name = `promo_${++indexes}`;
  const now = new Date().toISOString();
  const manifest = newIndexManifest(
    {
      name, bucket: 'primary', source: { dataset: 'articles', id_column: 'id', text_column: 'body' },
      embedding: { provider: 'use-lite', model: 'universal-sentence-encoder-lite', dims: 4, normalized: true },
      chunking: { size: 800, overlap: 100 }, hnsw: DEFAULT, refresh_policy: 'manual',
    },
    now,
  );
  await writeIndexManifest(root, { ...manifest, version: 1 });
  const lockKey = `${env.prefix}:lock:index:${name}`;
  await writeGraph(name, 1, DEFAULT);
  await commitGeneration({ redis: env.redis, lockKey, root, name, generation: record(1), stats: { docs: 1, chunks: 10 } });
  return { name, lockKey };
}

interface Call {
  config: HnswConfig;
  trial_id: string | undefined;
}

/** An activation that builds a (stand-in) graph for the config as the next generation and commits it under the held lock. */
function recorder(name: string): { calls: Call[]; activate: Activate } {
  const calls: Call[] = [];
  const activate: Activate = async (config, ctx) => {
    calls.push({ config, trial_id: ctx.trial?.trial_id });
    const id = await nextGenerationId(root, name, ctx.manifest);
    await writeGraph(name, id, config);
    await commitGenerationHeld({ root, name, generation: record(id), lock: ctx.lock });
    return id;
  };
  return { calls, activate };
}

/** What a restarted process sees: both files read from disk by fresh calls, and the graph the manifest serves. */
async function onDisk(name: string): Promise<{ registry: PromotionRegistry; manifest: IndexManifest; served: GenerationMeta }> {
  const registry = await readPromotion(root, name);
  const manifest = (await readIndexManifest(root, name))!;
  const served = await readGenerationMeta(generationDir(root, name, manifest.generation!));
  return { registry, manifest, served };
}

/** The registry serves `config`: the manifest's hnsw is it, and the current generation's graph was built with it. */
function assertServes(state: Awaited<ReturnType<typeof onDisk>>, config: HnswConfig): void {
  assert.deepEqual(state.manifest.hnsw, config);
  assert.deepEqual({ m: state.served.m, ef_construction: state.served.ef_construction }, { m: config.m, ef_construction: config.ef_construction });
}

function withoutGeneration(p: PromotionRegistry['current']) {
  if (!p) return p;
  const { generation: _generation, ...rest } = p;
  return rest;
}

describe('promotion registry', () => {
  it('promote A → B → C, then rollback × 3 walks back exactly, each step durable', async () => {
    const { name, lockKey } = await newIndex();
    const { calls, activate } = recorder(name);
    const target = { root, name, redis: env.redis, lockKey };

    assert.deepEqual(await readPromotion(root, name), { version: 0, current: null, history: [], pending: null });

    const promoted: NonNullable<PromotionRegistry['current']>[] = [];
    for (const [i, trial] of [A, B, C].entries()) {
      const out = await promote({ ...target, trial, by: `user${i}`, activate });
      assert.equal(out.applied, true);
      const state = await onDisk(name);
      assert.deepEqual(state.registry, out.registry, 'the registry on disk is the one returned');
      assert.equal(state.registry.current?.trial_id, trial.trial_id);
      assert.equal(state.registry.current?.by, `user${i}`);
      assert.equal(state.registry.current?.generation, state.manifest.generation);
      assert.deepEqual(state.registry.history, promoted, 'the previous currents, oldest first');
      assertServes(state, trial.config);
      assert.deepEqual(configOr(state.registry, DEFAULT), trial.config);
      promoted.push(state.registry.current!);
    }
    assert.deepEqual(calls, [A, B, C].map((t) => ({ config: t.config, trial_id: t.trial_id })));

    // Back to B: its generation is still listed (the last 3 are kept), so it is re-issued, not rebuilt.
    const before = (await onDisk(name)).manifest;
    await rollback({ ...target, by: 'ops', defaultConfig: DEFAULT, activate });
    let state = await onDisk(name);
    assert.deepEqual(withoutGeneration(state.registry.current), withoutGeneration(promoted[1]!));
    assert.deepEqual(state.registry.history, [promoted[0]]);
    assertServes(state, B.config);
    assert.equal(calls.length, 3, 'no activation: the listed graph of B was reused');
    assert.ok(state.manifest.generation! > before.generation!, 'generation ids only move forward');
    assert.equal(state.registry.current?.generation, state.manifest.generation);

    // Back to A: A's generation fell off the list, so activate rebuilds it (no trial to adopt).
    await rollback({ ...target, by: 'ops', defaultConfig: DEFAULT, activate });
    state = await onDisk(name);
    assert.deepEqual(withoutGeneration(state.registry.current), withoutGeneration(promoted[0]!));
    assert.deepEqual(state.registry.history, []);
    assertServes(state, A.config);
    assert.deepEqual(calls.at(-1), { config: A.config, trial_id: undefined });

    // Empty history: nothing is promoted and the default config is served again.
    await rollback({ ...target, by: 'ops', defaultConfig: DEFAULT, activate });
    state = await onDisk(name);
    assert.equal(state.registry.current, null);
    assert.deepEqual(state.registry.history, []);
    assertServes(state, DEFAULT);
    assert.deepEqual(configOr(state.registry, DEFAULT), DEFAULT);
    assert.deepEqual(calls.at(-1), { config: DEFAULT, trial_id: undefined });

    await assert.rejects(rollback({ ...target, by: 'ops', defaultConfig: DEFAULT, activate }), ConflictError);
    const raw = promotionRegistrySchema.parse(JSON.parse(await fs.readFile(path.join(indexDir(root, name), PROMOTION_FILE), 'utf8')));
    assert.equal(raw.pending, null);
    assert.equal(raw.version, state.registry.version);
  });

  it('promoting the current trial again changes nothing', async () => {
    const { name, lockKey } = await newIndex();
    const { calls, activate } = recorder(name);
    await promote({ root, name, redis: env.redis, lockKey, trial: A, by: 'a', activate });
    const first = await onDisk(name);
    const again = await promote({ root, name, redis: env.redis, lockKey, trial: A, by: 'b', activate });
    assert.equal(again.applied, false);
    assert.deepEqual(await onDisk(name), first);
    assert.equal(calls.length, 1);
  });

  it('a config differing only in ef_search keeps the serving graph', async () => {
    const { name, lockKey } = await newIndex();
    const { calls, activate } = recorder(name);
    const trial = { trial_id: 't-efs', config: { ...DEFAULT, ef_search: 150 } };
    const out = await promote({ root, name, redis: env.redis, lockKey, trial, by: 'a', activate });
    const state = await onDisk(name);
    assert.equal(calls.length, 0);
    assert.equal(state.manifest.generation, 1);
    assert.equal(out.registry.current?.generation, 1);
    assertServes(state, trial.config);
  });

  it(`history keeps the last ${KEEP_PROMOTIONS}`, async () => {
    const { name, lockKey } = await newIndex();
    const { activate } = recorder(name);
    const n = KEEP_PROMOTIONS + 2;
    for (let i = 0; i < n; i++) {
      await promote({ root, name, redis: env.redis, lockKey, trial: { trial_id: `t-${i}`, config: { ...DEFAULT, ef_search: 100 + i } }, by: 'a', activate });
    }
    const { registry } = await onDisk(name);
    assert.equal(registry.current?.trial_id, `t-${n - 1}`);
    assert.equal(registry.history.length, KEEP_PROMOTIONS);
    assert.deepEqual(registry.history.map((p) => p.trial_id), Array.from({ length: KEEP_PROMOTIONS }, (_, i) => `t-${i + 1}`));
    await rollback({ root, name, redis: env.redis, lockKey, by: 'ops', defaultConfig: DEFAULT, activate });
    assert.equal((await readPromotion(root, name)).current?.trial_id, `t-${n - 2}`);
  });

  it('concurrent promotions queue on the index lock', async () => {
    const { name, lockKey } = await newIndex();
    const { calls, activate } = recorder(name);
    let active = 0;
    let most = 0;
    const counted: Activate = async (config, ctx) => {
      most = Math.max(most, ++active);
      try {
        return await activate(config, ctx);
      } finally {
        active--;
      }
    };
    const outs = await Promise.all([A, B].map((trial) => promote({ root, name, redis: env.redis, lockKey, trial, by: 'a', activate: counted })));
    assert.deepEqual(outs.map((o) => o.applied), [true, true]);
    assert.equal(most, 1, 'activations never overlapped');
    const state = await onDisk(name);
    const winner = state.registry.current!.trial_id === A.trial_id ? A : B;
    const loser = winner === A ? B : A;
    assert.deepEqual(state.registry.history.map((p) => p.trial_id), [loser.trial_id], 'neither promotion was lost');
    assertServes(state, winner.config);
    assert.equal(calls.length, 2);
  });

  it('an activation that fails is undone: the previous promotion keeps serving', async () => {
    const { name, lockKey } = await newIndex();
    const { activate } = recorder(name);
    await promote({ root, name, redis: env.redis, lockKey, trial: A, by: 'a', activate });
    const before = await onDisk(name);
    const failing: Activate = async (config, ctx) => {
      await activate(config, ctx);
      throw new Error('build failed after its commit');
    };
    await assert.rejects(promote({ root, name, redis: env.redis, lockKey, trial: B, by: 'b', activate: failing }), /build failed/);
    const state = await onDisk(name);
    assert.deepEqual(state.registry.current, before.registry.current);
    assert.equal(state.registry.pending, null);
    assertServes(state, A.config);
  });

  it('reactivateGeneration re-issues a listed generation under a new id and refuses an unlisted one', async () => {
    const { name, lockKey } = await newIndex();
    const { activate } = recorder(name);
    await promote({ root, name, redis: env.redis, lockKey, trial: A, by: 'a', activate });
    const id = await withEntityLock(env.redis, lockKey, (lock) => reactivateGeneration(root, name, 1, lock));
    const state = await onDisk(name);
    assert.equal(state.manifest.generation, id);
    assert.ok(id > 2);
    assert.equal(state.served.m, DEFAULT.m);
    assert.equal(await fs.readFile(path.join(generationDir(root, name, id), 'hnsw.bin'), 'utf8'), 'graph 1');
    await assert.rejects(withEntityLock(env.redis, lockKey, (lock) => reactivateGeneration(root, name, 99, lock)), /does not list generation 99/);
  });
});

/**
 * Runs a promotion of B in a separate process whose activation commits B's generation and then
 * kills the process: the lock is left to expire (short TTL), the intent to be settled.
 */
async function crashMidPromotion(name: string, lockKey: string): Promise<void> {
  const mod = (p: string) => JSON.stringify(path.join(REPO, p));
  const code = `
    import fs from 'node:fs/promises';
    import path from 'node:path';
    import { Redis } from 'ioredis';
    import { DataRoot } from ${mod('shared/storage/data-root.ts')};
    import { commitGenerationHeld, promote } from ${mod('shared/autotune/promotion.ts')};
    import { nextGenerationId } from ${mod('shared/vectors/index/generations.ts')};
    import { generationDir } from ${mod('shared/vectors/index/index-manifest.ts')};
    const spec = JSON.parse(process.env.CRASH_SPEC);
    const root = new DataRoot(spec.dataDir);
    const redis = new Redis('redis://127.0.0.1:6379');
    await promote({
      root, name: spec.name, redis, lockKey: spec.lockKey, lock: { ttlMs: 300 }, trial: spec.trial, by: 'crasher',
      activate: async (config, ctx) => {
        const id = await nextGenerationId(root, spec.name, ctx.manifest);
        const dir = generationDir(root, spec.name, id);
        await fs.mkdir(dir, { recursive: true });
        await fs.writeFile(path.join(dir, 'generation.json'), JSON.stringify({ format: 1, space: 'cosine', dims: 4, count: 10, ...config, seed: 100, seconds: 0, built_at: new Date().toISOString() }));
        const generation = { id, created_at: new Date().toISOString(), vectors_files: ['vectors/part-1.parquet'], count: 10, deleted: 0, build: { seconds: 0, m: 2, ef_construction: 1 } };
        await commitGenerationHeld({ root, name: spec.name, generation, lock: ctx.lock });
        process.exit(86);
      },
    });
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
    cwd: REPO,
    env: { ...process.env, CRASH_SPEC: JSON.stringify({ dataDir: env.dataDir, name, lockKey, trial: B }) },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const status = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  assert.equal(status, 86, `the promoting process should die inside activate: ${stderr}`);
}

describe('promotion after a crash', () => {
  it('before the commit point: shown and settled as undone', async () => {
    const { name, lockKey } = await newIndex();
    const { calls, activate } = recorder(name);
    await promote({ root, name, redis: env.redis, lockKey, trial: A, by: 'a', activate });
    const before = await onDisk(name);
    await crashMidPromotion(name, lockKey);

    const crashed = await onDisk(name);
    assert.equal(crashed.served.m, B.config.m, 'the crash left B’s graph current');
    assert.deepEqual(crashed.manifest.hnsw, A.config, 'but not its config');
    assert.deepEqual(crashed.registry.current, before.registry.current, 'a reader sees A until the change commits');
    assert.equal(crashed.registry.pending?.current?.trial_id, B.trial_id);

    assert.equal(await recoverPromotion({ root, name, redis: env.redis, lockKey }), 'undone');
    const settled = await onDisk(name);
    assert.deepEqual(settled.registry.current, before.registry.current);
    assert.equal(settled.registry.pending, null);
    assertServes(settled, A.config);
    assert.equal(await recoverPromotion({ root, name, redis: env.redis, lockKey }), 'none');

    await promote({ root, name, redis: env.redis, lockKey, trial: B, by: 'b', activate });
    const retried = await onDisk(name);
    assert.equal(retried.registry.current?.trial_id, B.trial_id);
    assert.deepEqual(retried.registry.history, [before.registry.current]);
    assertServes(retried, B.config);
    assert.equal(calls.length, 1, 'the retry reused the graph the crashed attempt had built');
  });

  it('after the commit point: shown and settled as rolled forward', async () => {
    const { name, lockKey } = await newIndex();
    const { activate } = recorder(name);
    await promote({ root, name, redis: env.redis, lockKey, trial: A, by: 'a', activate });
    const before = await onDisk(name);
    await crashMidPromotion(name, lockKey);
    // What step 3 writes, had the process died only after it.
    const manifest = (await readIndexManifest(root, name))!;
    await writeIndexManifest(root, { ...manifest, hnsw: B.config, version: manifest.version + 1 });

    const shown = await readPromotion(root, name);
    assert.equal(shown.current?.trial_id, B.trial_id);
    assert.equal(shown.current?.generation, manifest.generation);
    assert.deepEqual(shown.history, [before.registry.current]);
    assert.equal(shown.pending, null);

    // The next change settles it first, then rolls back from B to A.
    await rollback({ root, name, redis: env.redis, lockKey, by: 'ops', defaultConfig: DEFAULT, activate });
    const state = await onDisk(name);
    assert.deepEqual(withoutGeneration(state.registry.current), withoutGeneration(before.registry.current));
    assert.deepEqual(state.registry.history, []);
    assertServes(state, A.config);
  });
});
