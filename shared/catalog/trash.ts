/**
 * A bucket's trash: what a delete or a `mode=replace` ingest takes out of a dataset is moved here
 * (a rename on the same filesystem), kept LAKEHOUSE_TRASH_DAYS, then purged
 * (dataset-admin.ts `purgeTrash`). Each entry is one folder whose mtime starts the clock.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { DataRoot } from '../storage/data-root.ts';

export function trashDir(root: { root: string }): string {
  return path.join(root.root, 'trash');
}

/** `<dataset>--<what>--<timestamp>`: readable, sorts by time, unique enough per dataset and second. */
export function trashEntryName(dataset: string, what: string, now = new Date()): string {
  return `${dataset}--${what}--${now.toISOString().replace(/[:.]/g, '-')}`;
}

/**
 * Moves part files (relative to the dataset folder) into one new trash entry, keeping their
 * relative paths, so a replace can be undone by moving them back. Returns the entry, relative
 * to the data root.
 */
export async function trashParts(root: DataRoot, dataset: string, files: readonly string[]): Promise<string | undefined> {
  if (files.length === 0) return undefined;
  const dir = root.datasetDir(dataset);
  const entry = path.join(trashDir(root), trashEntryName(dataset, 'replaced'));
  await fs.mkdir(entry, { recursive: true });
  for (const file of files) {
    const target = root.inside(entry, file);
    await fs.mkdir(path.dirname(target), { recursive: true });
    try {
      await fs.rename(root.inside(dir, file), target);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err; // already gone: nothing to keep
    }
  }
  const now = new Date();
  await fs.utimes(entry, now, now);
  return path.relative(root.root, entry);
}
