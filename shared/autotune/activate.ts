/**
 * How a promotion makes its config serve: the trial's kept graph moves in as the next generation
 * when it was built over the vectors the index serves now; otherwise (a refresh since, or a
 * rollback to a config whose graph is gone) a graph is built with the config in a worker thread.
 */
import fs from 'node:fs/promises';
import type { DataRoot } from '../storage/data-root.ts';
import { nextGenerationId } from '../vectors/index/generations.ts';
import { readGenerationMeta } from '../vectors/index/generation-files.ts';
import { currentGeneration, generationDir, indexDir, type GenerationRecord } from '../vectors/index/index-manifest.ts';
import { buildInThread } from '../vectors/index/run-build.ts';
import { withLiveVectors } from './evalset.ts';
import type { HnswConfig } from './hnsw-config.ts';
import { findTrial } from './journal.ts';
import { commitGenerationHeld, type Activate } from './promotion.ts';
import { TRIAL_SEED } from './trial.ts';

export function activateConfig(root: DataRoot, name: string): Activate {
  return async (config, ctx) => {
    const current = currentGeneration(ctx.manifest);
    if (!current) throw new Error(`index ${name} has no generation to re-index`);
    const id = await nextGenerationId(root, name, ctx.manifest);
    const outDir = generationDir(root, name, id);
    const dir = indexDir(root, name);
    const trial = ctx.trial && (await findTrial(root, name, ctx.trial.trial_id));
    const kept = trial?.built_dir && trial.generation === current.id ? root.inside(dir, trial.built_dir) : undefined;
    if (kept && (await fs.access(kept).then(() => true, () => false))) {
      await fs.rename(kept, outDir);
    } else {
      await build(root, dir, current, config, outDir, ctx.manifest.embedding.dims);
    }
    const meta = await readGenerationMeta(outDir);
    const generation: GenerationRecord = {
      id, created_at: new Date().toISOString(), vectors_files: current.vectors_files, tombstone_files: current.tombstone_files,
      source_version: current.source_version, count: meta.count, deleted: 0,
      build: { seconds: meta.seconds, m: config.m, ef_construction: config.ef_construction },
    };
    await commitGenerationHeld({ root, name, generation, lock: ctx.lock });
    return id;
  };
}

/** A fresh graph over the live vectors (compacted first when there are tombstones). */
async function build(root: DataRoot, dir: string, current: ReturnType<typeof currentGeneration> & {}, config: HnswConfig, outDir: string, dims: number): Promise<void> {
  const files = current.vectors_files.map((f) => root.inside(dir, f));
  const tombs = (current.tombstone_files ?? []).map((f) => root.inside(dir, f));
  await withLiveVectors(files, tombs, (live) =>
    buildInThread(
      { kind: 'build', options: { files: [...live], dims, m: config.m, efConstruction: config.ef_construction, efSearch: config.ef_search, seed: TRIAL_SEED, outDir } },
      () => {},
    ),
  );
}
