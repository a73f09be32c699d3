/**
 * The promotion registry of one index: which trial's HNSW config the index serves (`current`)
 * and the promotions it replaced (`history`, newest last, the last {@link KEEP_PROMOTIONS}), so
 * rollbacks walk back exactly.
 *
 *   <index dir>/promotion.json   this registry (versioned, written atomically)
 *   <index dir>/manifest.json    `hnsw` = the config builds use, `generation` = the graph served
 *
 * Glossary:
 * - *serve a config*: make current a generation whose graph was built with the config's `m` and
 *   `ef_construction`, and set the manifest's `hnsw` to it. `ef_search` is a search-time setting:
 *   API instances read it from the manifest on every search, so it needs no new graph.
 * - *activation*: the caller's way to make a generation for a config (move a trial's kept graph
 *   in, or build one), used when no listed generation already holds that graph over the same vectors.
 *
 * Crash safety. A change touches two files that cannot be renamed into place together, so it is
 * written ahead as an intent, and every step runs under the index's entity lock:
 *
 *   1. promotion.json: `pending` = the target (current without its generation, history) and what
 *      the manifest held before (`from`); `current` and `history` are left as they were.
 *   2. A generation with the target graph becomes current (reused, or the caller's `activate`).
 *   3. manifest.json: `hnsw` = the target config. The commit point: builds use it from here on.
 *   4. promotion.json: the target as `current`/`history`, `pending` cleared.
 *
 * An interrupted change is settled from the two files alone: if the manifest holds the target
 * config (step 3 happened) it rolls forward, else it is undone (the manifest's `hnsw` and graph go
 * back to `from`). readPromotion shows the settled state without writing; recoverPromotion, and
 * every promote or rollback before it starts, writes it. An `activate` that throws is undone at once.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { ConflictError, NotFoundError } from '../errors.ts';
import { withEntityLock, type HeldLock, type LockOptions } from '../redis/entity-lock.ts';
import { withProcessLease } from '../vectors/index/generation-lease.ts';
import { tempPathFor, writeFileAtomic } from '../storage/atomic-write.ts';
import type { DataRoot } from '../storage/data-root.ts';
import { readGenerationMeta } from '../vectors/index/generation-files.ts';
import { nextGenerationId, pruneGenerations } from '../vectors/index/generations.ts';
import {
  currentGeneration,
  generationDir,
  indexDir,
  indexManifestSchema,
  readIndexManifest,
  withGeneration,
  writeIndexManifest,
  type GenerationRecord,
  type IndexManifest,
  type StoredGeneration,
} from '../vectors/index/index-manifest.ts';
import { hnswConfigSchema, type HnswConfig } from './hnsw-config.ts';

export const PROMOTION_FILE = 'promotion.json';

/** Promotions kept in `history`; older ones can no longer be rolled back to. */
export const KEEP_PROMOTIONS = 50;

/** Any config an index may hold (a default outside the autotune bounds included). */
const indexHnswSchema = indexManifestSchema.shape.hnsw;

const promotedSchema = z.object({
  trial_id: z.string().min(1),
  config: hnswConfigSchema,
  promoted_at: z.string(),
  by: z.string(),
});

export const promotionSchema = promotedSchema.extend({
  generation: z.number().int().min(1).describe('the index generation that served it when it became current'),
});

const pendingSchema = z.object({
  op: z.enum(['promote', 'rollback']),
  started_at: z.string(),
  by: z.string(),
  config: indexHnswSchema.describe('the config the index serves once the change commits'),
  current: promotedSchema.nullable(),
  history: z.array(promotionSchema).max(KEEP_PROMOTIONS),
  from: z.object({ hnsw: indexHnswSchema, generation: z.number().int().min(1).nullable() }),
});

export const promotionRegistrySchema = z.object({
  version: z.number().int().min(0),
  current: promotionSchema.nullable(),
  history: z.array(promotionSchema).max(KEEP_PROMOTIONS).describe('newest last'),
  pending: pendingSchema.nullable().default(null).describe('a change started and not (yet) in effect'),
});

export type Promotion = z.infer<typeof promotionSchema>;
export type PendingPromotion = z.infer<typeof pendingSchema>;
export type PromotionRegistry = z.infer<typeof promotionRegistrySchema>;

export interface ActivationContext {
  /** The index's lock, held by the promotion: commit with {@link commitGenerationHeld}, never `commitGeneration` (it would wait on this very lock). */
  lock: HeldLock;
  manifest: IndexManifest;
  /** The trial being promoted; absent when a rollback needs a graph rebuilt. */
  trial?: PromoteTrial;
}

/**
 * Makes a generation whose graph is built with `config` current (commit it with
 * {@link commitGenerationHeld}) and returns its id. Build with `config`, not `ctx.manifest.hnsw`:
 * the manifest names the new config only after activation (the commit point). Its generation.json
 * must say so too; the promotion checks.
 */
export type Activate = (config: HnswConfig, ctx: ActivationContext) => Promise<number>;

export interface PromoteTrial {
  trial_id: string;
  config: HnswConfig;
  /** The trial's kept graph, relative to the index directory (TrialRecord.built_dir). */
  built_dir?: string | undefined;
}

export interface PromotionTarget {
  root: DataRoot;
  name: string;
  redis: Redis;
  lockKey: string;
  lock?: LockOptions;
  /**
   * The index's generation lease (generation-lease.ts), taken before the lock: a promotion or
   * rollback makes a generation, so it waits for (or 409s on) an embed or refresh in progress.
   */
  lease?: { key: string; waitMs: number; ttlMs: number };
}

function underLease<T>(req: PromotionTarget, fn: () => Promise<T>): Promise<T> {
  return req.lease ? withProcessLease(req.redis, req.lease.key, fn, { ...req.lease, index: req.name }) : fn();
}

export interface PromoteRequest extends PromotionTarget {
  trial: PromoteTrial;
  by: string;
  activate: Activate;
}

export interface RollbackRequest extends PromotionTarget {
  by: string;
  /** What the index serves when no promotion is left. */
  defaultConfig: HnswConfig;
  activate: Activate;
}

export interface PromotionOutcome {
  registry: PromotionRegistry;
  /** False when nothing changed (the trial was already current). */
  applied: boolean;
}

export type Settlement = 'none' | 'rolled_forward' | 'undone';

const EMPTY: PromotionRegistry = { version: 0, current: null, history: [], pending: null };

/** The registry as it stands, an interrupted change settled (see the file comment); writes nothing. */
export async function readPromotion(root: DataRoot, name: string): Promise<PromotionRegistry> {
  const manifest = await requireManifest(root, name);
  const registry = await readRegistryFile(root, name);
  return registry.pending && reachedCommitPoint(registry.pending, manifest) ? rolledForward(registry, registry.pending, manifest) : registry;
}

/** The promoted config, or `fallback` (the index's default) when nothing is promoted. */
export function configOr(registry: Pick<PromotionRegistry, 'current'> | undefined, fallback: HnswConfig): HnswConfig {
  return registry?.current?.config ?? fallback;
}

/**
 * Serves `trial.config` and makes the trial current, the previous current going onto history.
 * Promoting the current trial again changes nothing.
 */
export async function promote(req: PromoteRequest): Promise<PromotionOutcome> {
  const config = hnswConfigSchema.parse(req.trial.config);
  return underLease(req, () => withEntityLock(
    req.redis,
    req.lockKey,
    async (lock) => {
      const { registry, manifest } = await settle(req.root, req.name, lock);
      if (registry.current?.trial_id === req.trial.trial_id) return { registry, applied: false };
      const now = new Date().toISOString();
      const history = registry.current ? [...registry.history, registry.current].slice(-KEEP_PROMOTIONS) : registry.history;
      const pending: PendingPromotion = {
        op: 'promote', started_at: now, by: req.by, config,
        current: { trial_id: req.trial.trial_id, config, promoted_at: now, by: req.by },
        history, from: { hnsw: manifest.hnsw, generation: manifest.generation },
      };
      const activate = (c: HnswConfig, ctx: ActivationContext) => req.activate(c, { ...ctx, trial: req.trial });
      return { registry: await change(req.root, req.name, lock, registry, pending, activate), applied: true };
    },
    req.lock,
  ));
}

/**
 * Makes the newest history entry current again, serving its config; with no history left the
 * index goes back to `defaultConfig` and `current` to null. A 409 when nothing is promoted.
 */
export async function rollback(req: RollbackRequest): Promise<PromotionOutcome> {
  return underLease(req, () => withEntityLock(
    req.redis,
    req.lockKey,
    async (lock) => {
      const { registry, manifest } = await settle(req.root, req.name, lock);
      if (!registry.current) throw new ConflictError(`index ${req.name} has no promotion to roll back`);
      const previous = registry.history.at(-1);
      const pending: PendingPromotion = {
        op: 'rollback', started_at: new Date().toISOString(), by: req.by,
        config: previous ? previous.config : indexHnswSchema.parse(req.defaultConfig),
        current: previous ? { trial_id: previous.trial_id, config: previous.config, promoted_at: previous.promoted_at, by: previous.by } : null,
        history: registry.history.slice(0, -1), from: { hnsw: manifest.hnsw, generation: manifest.generation },
      };
      return { registry: await change(req.root, req.name, lock, registry, pending, req.activate), applied: true };
    },
    req.lock,
  ));
}

/** Settles a change a crash interrupted (for a worker's start-up); promote and rollback do it themselves first. */
export async function recoverPromotion(req: PromotionTarget): Promise<Settlement> {
  return withEntityLock(req.redis, req.lockKey, async (lock) => (await settle(req.root, req.name, lock)).outcome, req.lock);
}

/**
 * The rollback path: makes listed generation `genId` current again and returns the id it now
 * serves under. Its files are hard-linked into a new `gen-<next>` rather than the pointer moved
 * back, because everything downstream treats a lower id as stale: `commitGeneration` refuses
 * it, and an API instance's IndexCache would not keep an older generation while it holds a newer
 * one (it would reload the graph on every search). Generation files are immutable, so the links
 * cost nothing. Staleness is kept: the vectors served do not change. Run under the index's lock.
 */
export async function reactivateGeneration(root: DataRoot, name: string, genId: number, lock: HeldLock): Promise<number> {
  const manifest = await requireManifest(root, name);
  if (manifest.generation === genId) return genId;
  const gen = manifest.generations.find((g) => g.id === genId);
  if (!gen) throw new NotFoundError(`index ${name} does not list generation ${genId} (it keeps the last ${manifest.generations.length})`);
  const id = await nextGenerationId(root, name, manifest);
  const target = generationDir(root, name, id);
  const tmp = tempPathFor(target);
  await linkTree(generationDir(root, name, genId), tmp);
  await fs.rename(tmp, target);
  const now = new Date().toISOString();
  const next = withGeneration(manifest, { ...gen, id, created_at: now }, manifest.stats, now);
  await writePointer(root, { ...next, stale_since: manifest.stale_since, stale_source_version: manifest.stale_source_version }, lock);
  return id;
}

export interface CommitHeldRequest {
  root: DataRoot;
  name: string;
  generation: GenerationRecord;
  /** @defaultValue the manifest's: a graph of other parameters over the same vectors */
  stats?: IndexManifest['stats'];
  lock: HeldLock;
}

/**
 * `commitGeneration` for a caller that already holds the index's lock — an {@link Activate}.
 * Same rules: a retry of the current generation is a no-op, an older id is refused.
 */
export async function commitGenerationHeld(req: CommitHeldRequest): Promise<IndexManifest> {
  const manifest = await requireManifest(req.root, req.name);
  if (manifest.generation === req.generation.id) return manifest;
  if (manifest.generation !== null && manifest.generation > req.generation.id) {
    throw new ConflictError(`index ${req.name} is at generation ${manifest.generation}; generation ${req.generation.id} is older`);
  }
  const next = withGeneration(manifest, req.generation, req.stats ?? manifest.stats, new Date().toISOString());
  await writePointer(req.root, next, req.lock);
  return next;
}

/** Steps 1–4 of the file comment. */
async function change(root: DataRoot, name: string, lock: HeldLock, registry: PromotionRegistry, pending: PendingPromotion, activate: Activate): Promise<PromotionRegistry> {
  await writeRegistry(root, name, { ...registry, version: registry.version + 1, pending }, lock);
  let generation: number;
  try {
    generation = await serve(root, name, pending.config, lock, activate);
    await writeHnsw(root, name, pending.config, lock);
  } catch (err) {
    // Undo now rather than at the next change; if this fails too, `pending` stays for recovery.
    await settle(root, name, lock).catch(() => {});
    throw err;
  }
  const committed: PromotionRegistry = {
    version: registry.version + 2,
    current: pending.current && { ...pending.current, generation },
    history: pending.history,
    pending: null,
  };
  await writeRegistry(root, name, committed, lock);
  return committed;
}

/** Makes a generation with `config`'s graph current: one already listed over the same vectors, else the caller's. */
async function serve(root: DataRoot, name: string, config: HnswConfig, lock: HeldLock, activate: Activate): Promise<number> {
  const manifest = await requireManifest(root, name);
  const listed = await generationWithGraph(root, manifest, config);
  if (listed !== undefined) return reactivateGeneration(root, name, listed, lock);
  const id = await activate(config, { lock, manifest });
  const after = await requireManifest(root, name);
  if (after.generation !== id) throw new Error(`activate returned generation ${id}, but index ${name} is at ${after.generation}`);
  if (!sameGraph(await readGenerationMeta(generationDir(root, name, id)), config)) {
    throw new Error(`activate made generation ${id} of index ${name} with another graph than m ${config.m}, ef_construction ${config.ef_construction}`);
  }
  return id;
}

/**
 * The newest listed generation whose graph has `config`'s parameters over the same vectors as
 * the current one (reusing one over older vectors would drop what refreshes added since).
 * The parameters come from generation.json: it describes the graph in the directory, whatever
 * the manifest's `hnsw` said when it was committed.
 */
async function generationWithGraph(root: DataRoot, manifest: IndexManifest, config: HnswConfig): Promise<number | undefined> {
  const current = currentGeneration(manifest);
  if (!current) return undefined;
  for (const gen of [...manifest.generations].sort((a, b) => b.id - a.id)) {
    if (!sameVectors(gen, current)) continue;
    // A directory gone or unreadable is simply not reusable.
    const meta = await readGenerationMeta(generationDir(root, manifest.name, gen.id)).catch(() => undefined);
    if (meta && sameGraph(meta, config)) return gen.id;
  }
  return undefined;
}

/** Writes an interrupted change's outcome (see the file comment) and returns the files as they now stand. */
async function settle(root: DataRoot, name: string, lock: HeldLock): Promise<{ registry: PromotionRegistry; manifest: IndexManifest; outcome: Settlement }> {
  const registry = await readRegistryFile(root, name);
  const manifest = await requireManifest(root, name);
  const pending = registry.pending;
  if (!pending) return { registry, manifest, outcome: 'none' };
  if (reachedCommitPoint(pending, manifest)) {
    const forward = { ...rolledForward(registry, pending, manifest), version: registry.version + 1 };
    await writeRegistry(root, name, forward, lock);
    return { registry: forward, manifest, outcome: 'rolled_forward' };
  }
  const listed = await generationWithGraph(root, manifest, pending.from.hnsw);
  if (listed !== undefined) await reactivateGeneration(root, name, listed, lock);
  await writeHnsw(root, name, pending.from.hnsw, lock);
  const undone = { ...registry, version: registry.version + 1, pending: null };
  await writeRegistry(root, name, undone, lock);
  return { registry: undone, manifest: await requireManifest(root, name), outcome: 'undone' };
}

/**
 * Whether step 3 happened. When the change keeps the config (a promotion of an equal config),
 * the manifest's `hnsw` cannot tell; a moved generation pointer then means step 2 happened, and
 * the graph served is the target's either way.
 */
function reachedCommitPoint(p: PendingPromotion, m: IndexManifest): boolean {
  if (!sameConfig(m.hnsw, p.config) || (p.current !== null && m.generation === null)) return false;
  return !sameConfig(p.from.hnsw, p.config) || m.generation !== p.from.generation;
}

function rolledForward(registry: PromotionRegistry, p: PendingPromotion, m: IndexManifest): PromotionRegistry {
  return { version: registry.version, current: p.current && { ...p.current, generation: m.generation! }, history: p.history, pending: null };
}

async function writeHnsw(root: DataRoot, name: string, config: HnswConfig, lock: HeldLock): Promise<void> {
  const manifest = await requireManifest(root, name);
  if (sameConfig(manifest.hnsw, config)) return;
  const next = { ...manifest, hnsw: { m: config.m, ef_construction: config.ef_construction, ef_search: config.ef_search }, version: manifest.version + 1, updated_at: new Date().toISOString() };
  await lock.assertHeld();
  await writeIndexManifest(root, next);
}

async function writePointer(root: DataRoot, next: IndexManifest, lock: HeldLock): Promise<void> {
  await lock.assertHeld();
  await writeIndexManifest(root, next);
  await pruneGenerations(root, next);
}

async function writeRegistry(root: DataRoot, name: string, registry: PromotionRegistry, lock: HeldLock): Promise<void> {
  const valid = promotionRegistrySchema.parse(registry);
  await lock.assertHeld();
  await writeFileAtomic(path.join(indexDir(root, name), PROMOTION_FILE), JSON.stringify(valid, null, 2) + '\n');
}

async function readRegistryFile(root: DataRoot, name: string): Promise<PromotionRegistry> {
  let text: string;
  try {
    text = await fs.readFile(path.join(indexDir(root, name), PROMOTION_FILE), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return EMPTY;
    throw err;
  }
  return promotionRegistrySchema.parse(JSON.parse(text));
}

async function requireManifest(root: DataRoot, name: string): Promise<IndexManifest> {
  const manifest = await readIndexManifest(root, name);
  if (!manifest) throw new NotFoundError(`index ${JSON.stringify(name)} does not exist`);
  return manifest;
}

/** Hard links where the filesystem allows them, copies where it does not. */
async function linkTree(src: string, dst: string): Promise<void> {
  await fs.mkdir(dst);
  for (const entry of await fs.readdir(src, { withFileTypes: true })) {
    const from = path.join(src, entry.name);
    const to = path.join(dst, entry.name);
    if (entry.isDirectory()) await linkTree(from, to);
    else await fs.link(from, to).catch(() => fs.copyFile(from, to));
  }
}

function sameConfig(a: HnswConfig, b: HnswConfig): boolean {
  return a.m === b.m && a.ef_construction === b.ef_construction && a.ef_search === b.ef_search;
}

function sameGraph(meta: { m: number; ef_construction: number }, config: HnswConfig): boolean {
  return meta.m === config.m && meta.ef_construction === config.ef_construction;
}

function sameVectors(a: StoredGeneration, b: StoredGeneration): boolean {
  const key = (files: readonly string[]) => JSON.stringify([...files].sort());
  return key(a.vectors_files) === key(b.vectors_files) && key(a.tombstone_files) === key(b.tombstone_files);
}
