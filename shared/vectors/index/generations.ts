/**
 * The life of generation directories: which id a new build takes, the commit that points the
 * manifest at it (under the index's entity lock), and removal of directories no longer listed.
 *
 * Builds of one index are serialised by its generation lease (generation-lease.ts), held from
 * the moment a writer reads the generation it builds on to this commit; the commit itself and
 * pruning run under the index's entity lock too. So a directory with an id above the current
 * generation is always the lease holder's build in progress or a crashed one, and the files
 * pruning removes are read by no writer in flight (only the lease holder is, and the generation
 * it just committed lists its files).
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { ConflictError, NotFoundError } from '../../errors.ts';
import { withEntityLock, type LockOptions } from '../../redis/entity-lock.ts';
import type { DataRoot } from '../../storage/data-root.ts';
import {
  indexDir,
  readIndexManifest,
  withGeneration,
  writeIndexManifest,
  type GenerationRecord,
  type IndexManifest,
} from './index-manifest.ts';

/** `gen-<n>` and the temporary `.gen-<n>.<hex>.tmp` a build writes first (atomic-write.ts names it). */
const GEN_DIR = /^(?:gen-(\d+)|\.gen-(\d+)\.[0-9a-f]+\.tmp)$/;

interface GenEntry {
  name: string;
  id: number;
  temporary: boolean;
}

async function listGenEntries(dir: string): Promise<GenEntry[]> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return names.flatMap((name) => {
    const m = GEN_DIR.exec(name);
    return m ? [{ name, id: Number(m[1] ?? m[2]), temporary: m[2] !== undefined }] : [];
  });
}

/**
 * One above every id the manifest or the disk knows, crashed builds included, so a retried build
 * never collides with a directory some earlier attempt left.
 */
export async function nextGenerationId(root: DataRoot, name: string, manifest: IndexManifest | undefined): Promise<number> {
  const onDisk = (await listGenEntries(indexDir(root, name))).map((e) => e.id);
  const listed = manifest ? [manifest.generation ?? 0, ...manifest.generations.map((g) => g.id)] : [];
  return Math.max(0, ...onDisk, ...listed) + 1;
}

export interface CommitGenerationRequest {
  redis: Redis;
  lockKey: string;
  root: DataRoot;
  name: string;
  generation: GenerationRecord;
  stats: IndexManifest['stats'];
  lock?: LockOptions;
}

export interface CommitGenerationOutcome {
  manifest: IndexManifest;
  /** False when the manifest already pointed at this generation (a retried job). */
  applied: boolean;
  /** Directories removed because the manifest no longer lists them. */
  removed: string[];
}

/**
 * Points the manifest at a finished generation directory and removes directories of
 * generations that fell off the list. Refuses to go backwards: a generation older than the
 * current one is a stale job's.
 */
export async function commitGeneration(req: CommitGenerationRequest): Promise<CommitGenerationOutcome> {
  return withEntityLock(
    req.redis,
    req.lockKey,
    async (lock) => {
      const current = await readIndexManifest(req.root, req.name);
      if (!current) throw new NotFoundError(`index ${JSON.stringify(req.name)} does not exist`);
      if (current.generation === req.generation.id) return { manifest: current, applied: false, removed: [] };
      if (current.generation !== null && current.generation > req.generation.id) {
        throw new ConflictError(`index ${req.name} is at generation ${current.generation}; generation ${req.generation.id} is older`);
      }
      const next = withGeneration(current, req.generation, req.stats, new Date().toISOString());
      await lock.assertHeld();
      await writeIndexManifest(req.root, next);
      return { manifest: next, applied: true, removed: await pruneGenerations(req.root, next) };
    },
    req.lock,
  );
}

/**
 * Removes generation directories (and crashed builds' temporary ones) older than every listed
 * generation. Run under the index's lock. An API instance still serving a removed generation
 * keeps it in memory; only new loads need the directory, and they read the manifest first.
 */
export async function pruneGenerations(root: DataRoot, manifest: IndexManifest): Promise<string[]> {
  const oldestKept = Math.min(manifest.generation ?? 0, ...manifest.generations.map((g) => g.id));
  const dir = indexDir(root, manifest.name);
  const doomed = (await listGenEntries(dir)).filter((e) => e.id < oldestKept || (e.temporary && e.id <= (manifest.generation ?? 0)));
  await Promise.all(doomed.map((e) => fs.rm(path.join(dir, e.name), { recursive: true, force: true })));
  return doomed.map((e) => e.name).sort();
}

