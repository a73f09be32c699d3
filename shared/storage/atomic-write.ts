import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';

/** A temporary name in the same directory as `target`, so the final rename cannot cross filesystems. */
export function tempPathFor(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.${randomBytes(6).toString('hex')}.tmp`);
}

/**
 * Makes a rename or link in `dir` durable: the new name lives in the directory's own data, which
 * the file's fsync does not cover, so after a power loss the target could still be missing or
 * old. One open + fsync + close of the directory. Platforms that cannot open or fsync a
 * directory (Windows: EISDIR/EPERM; some network filesystems: EINVAL) keep the rename's own
 * guarantee.
 */
export async function fsyncDir(dir: string): Promise<void> {
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(dir, 'r');
  } catch (err) {
    if (['EISDIR', 'EPERM', 'EACCES'].includes((err as NodeJS.ErrnoException).code ?? '')) return;
    throw err;
  }
  try {
    await handle.sync();
  } catch (err) {
    if (!['EINVAL', 'ENOTSUP', 'EPERM'].includes((err as NodeJS.ErrnoException).code ?? '')) throw err;
  } finally {
    await handle.close();
  }
}

/**
 * Writes a file so readers see either the old or the new content, never half of it:
 * write to a temporary sibling, fsync, rename over the target, fsync the directory.
 */
export async function writeFileAtomic(target: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  const tmp = tempPathFor(target);
  const handle = await fs.open(tmp, 'w', mode);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await fs.rename(tmp, target);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
  await fsyncDir(path.dirname(target));
}

async function fsyncFile(file: string): Promise<void> {
  const handle = await fs.open(file, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Renames a finished temporary file into place (after fsync of the file itself). */
export async function commitTempFile(tmp: string, target: string): Promise<void> {
  await fsyncFile(tmp);
  await fs.rename(tmp, target);
  await fsyncDir(path.dirname(target));
}

/**
 * Links a finished temporary file into place after fsync, refusing (EEXIST) to replace an
 * existing target: for files that, once written, must never change. The caller removes `tmp`.
 */
export async function commitTempFileOnce(tmp: string, target: string): Promise<void> {
  await fsyncFile(tmp);
  await fs.link(tmp, target);
  await fsyncDir(path.dirname(target));
}

/**
 * Creates `target` with `make()`'s content unless it exists, and returns what the file holds.
 * link() of a complete temporary file is atomic and never overwrites, so processes starting at
 * once agree on one content and nobody reads a half-written file.
 */
export async function createFileOnce(target: string, make: () => string, mode = 0o600): Promise<{ content: string; created: boolean }> {
  try {
    return { content: await fs.readFile(target, 'utf8'), created: false };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const tmp = tempPathFor(target);
  await writeFileAtomic(tmp, make(), mode);
  try {
    await fs.link(tmp, target);
    await fsyncDir(path.dirname(target));
    return { content: await fs.readFile(target, 'utf8'), created: true };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return { content: await fs.readFile(target, 'utf8'), created: false };
  } finally {
    await fs.rm(tmp, { force: true });
  }
}
