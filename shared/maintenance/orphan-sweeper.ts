/**
 * The orphan sweeper: removes what no one will read again.
 *
 * - staged uploads (`staging/uploads/<id>.upload` and its `.sha256`) older than the grace period
 *   that no live job (waiting, active, delayed, …) names: a job that failed for good leaves its
 *   upload behind;
 * - sealed secrets (`secrets/sealed/<id>.json`) older than the grace period that no job in Redis
 *   (any state: a failed job may be retried), no schedule and no dataset manifest names: every
 *   POST with a DSN seals a new one;
 * - trash entries older than LAKEHOUSE_TRASH_DAYS (dataset-admin.ts `purgeTrash`).
 *
 * Candidates are listed *before* the references are read. A reference is always made after its
 * file (upload then enqueue, seal then enqueue), and candidates are older than the grace period,
 * so a job being enqueued right now cannot name a file this sweep removes. Who references what
 * is asked of the caller (`references`), which knows the queues: this module does not.
 *
 * One process sweeps at a time (`sweepOnce`): a Redis lock, plus a marker so the many processes
 * running the timer sweep once per interval between them, not once each.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { purgeTrash } from '../catalog/dataset-admin.ts';
import { LockTimeoutError, withEntityLock } from '../redis/entity-lock.ts';
import type { Buckets } from '../storage/buckets.ts';
import type { DataRoot } from '../storage/data-root.ts';

/** What something still in use names. */
export interface SweepReferences {
  /** Staged files live jobs will read, relative to the primary data root (`staging/uploads/…`). */
  uploads: Set<string>;
  /** Sealed secret ids (UUIDs). */
  secrets: Set<string>;
}

export interface SweepOptions {
  buckets: Buckets;
  /** Files younger than this are never removed. */
  graceMs: number;
  trashDays: number;
  /** Read after the candidates are listed (see above). */
  references: () => Promise<SweepReferences>;
  /** @defaultValue Date.now() */
  now?: number;
}

export interface SweepReport {
  /** Relative to the primary data root. */
  uploads: string[];
  secrets: string[];
  trash: string[];
}

const SEALED = /^([0-9a-f-]{36})\.json$/;
const FINGERPRINT_SUFFIX = '.sha256';

export async function sweepOrphans(opts: SweepOptions): Promise<SweepReport> {
  const now = opts.now ?? Date.now();
  const root = opts.buckets.primary;
  const uploads = await oldFiles(root.uploadsDir(), now - opts.graceMs);
  const secrets = await oldFiles(sealedDir(root), now - opts.graceMs);
  const refs = await opts.references();
  for (const id of await manifestSecrets(opts.buckets)) refs.secrets.add(id);

  const removedUploads: string[] = [];
  for (const name of uploads) {
    const staged = name.endsWith(FINGERPRINT_SUFFIX) ? name.slice(0, -FINGERPRINT_SUFFIX.length) : name;
    const relative = path.posix.join('staging', 'uploads', staged);
    if (refs.uploads.has(relative)) continue;
    await fs.rm(path.join(root.uploadsDir(), name), { force: true });
    removedUploads.push(path.posix.join('staging', 'uploads', name));
  }
  const removedSecrets: string[] = [];
  for (const name of secrets) {
    const id = SEALED.exec(name)?.[1];
    if (!id || refs.secrets.has(id)) continue;
    await fs.rm(path.join(sealedDir(root), name), { force: true });
    removedSecrets.push(id);
  }
  const trash = await purgeTrash(opts.buckets, opts.trashDays, now);
  return { uploads: removedUploads.sort(), secrets: removedSecrets.sort(), trash };
}

export interface SweepLock {
  redis: Redis;
  /** Held while sweeping. */
  lockKey: string;
  /** Set for `intervalMs` after a sweep starts: the others skip until it lapses. */
  markerKey: string;
  intervalMs: number;
}

/** Sweeps unless another process is sweeping or swept less than an interval ago; undefined when skipped. */
export async function sweepOnce(lock: SweepLock, opts: SweepOptions): Promise<SweepReport | undefined> {
  try {
    return await withEntityLock(
      lock.redis,
      lock.lockKey,
      async (held) => {
        const fresh = await lock.redis.set(lock.markerKey, String(opts.now ?? Date.now()), 'PX', lock.intervalMs, 'NX');
        if (fresh !== 'OK') return undefined;
        await held.assertHeld();
        return sweepOrphans(opts);
      },
      { ttlMs: 30_000, waitMs: 0 },
    );
  } catch (err) {
    if (err instanceof LockTimeoutError) return undefined; // someone else is at it
    throw err;
  }
}

function sealedDir(root: DataRoot): string {
  return path.join(root.secretsDir(), 'sealed');
}

/** Names of plain files in `dir` last modified before `before`. */
async function oldFiles(dir: string, before: number): Promise<string[]> {
  let entries: import('node:fs').Dirent[];
  try {
    entries = await fs.readdir(dir, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const old: string[] = [];
  for (const e of entries) {
    if (!e.isFile()) continue;
    const stat = await fs.stat(path.join(dir, e.name)).catch(() => undefined);
    if (stat && stat.mtimeMs < before) old.push(e.name);
  }
  return old;
}

/** Secret ids any dataset manifest names (a `secret` field anywhere in it). */
async function manifestSecrets(buckets: Buckets): Promise<Set<string>> {
  const found = new Set<string>();
  for (const b of buckets.all()) {
    let names: string[];
    try {
      names = await fs.readdir(b.root.datasetsDir());
    } catch {
      continue;
    }
    for (const name of names) {
      const text = await fs.readFile(path.join(b.root.datasetsDir(), name, 'manifest.json'), 'utf8').catch(() => undefined);
      if (text === undefined) continue;
      try {
        collectReferences(JSON.parse(text), { uploads: new Set(), secrets: found });
      } catch {
        // an unreadable manifest names nothing we can honour; the catalog reports it elsewhere
      }
    }
  }
  return found;
}

/**
 * Adds what a JSON value (a job's data, a schedule's template, a manifest) names: every string
 * under a `secret` key, every string that is a staged-upload path.
 */
export function collectReferences(value: unknown, into: SweepReferences, key?: string): void {
  if (typeof value === 'string') {
    if (key === 'secret') into.secrets.add(value);
    if (value.startsWith('staging/uploads/')) into.uploads.add(path.posix.normalize(value));
    return;
  }
  if (Array.isArray(value)) for (const v of value) collectReferences(v, into);
  else if (value && typeof value === 'object') for (const [k, v] of Object.entries(value)) collectReferences(v, into, k);
}
