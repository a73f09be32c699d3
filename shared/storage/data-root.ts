/**
 * The data root's layout. Every path the system touches is made here, so the layout is
 * readable in one place and no resolved path can leave the root.
 *
 *   <root>/datasets/<name>/manifest.json       dataset manifest (versioned)
 *   <root>/datasets/<name>/parts/*.parquet     immutable part files listed by the manifest
 *   <root>/reader/<name>/*.parquet             reader copies of parts (masked or hard-linked), all readers' SQL reaches
 *   <root>/staging/duckdb/                     where the query engines spill what does not fit in memory
 *   <root>/staging/uploads/<id>                request bodies streamed here for workers to read
 *   <root>/secrets/                            generated API key, secret key, sealed DSNs (0600), never queryable
 *   <root>/inbox/<dataset>/                    files dropped for ingest; .claimed/, processed/, failed/
 *   <root>/audit/                              query audit log (JSON lines), never queryable
 *   <root>/trash/                              deleted datasets, purged after LAKEHOUSE_TRASH_DAYS
 *   <root>/redis/                              files of a private redis-server started by `up`
 * Buckets other than primary (shared/storage/buckets.ts) hold datasets/, reader/ and trash/ only.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { BadRequestError } from '../errors.ts';
import { ENTITY_NAME } from './names.ts';

export class DataRoot {
  readonly root: string;

  constructor(root: string) {
    this.root = path.resolve(root);
  }

  /** Creates the top-level folders; safe to call from every process at start-up. */
  async ensure(): Promise<void> {
    for (const dir of [this.datasetsDir(), this.uploadsDir(), this.secretsDir()]) {
      await fs.mkdir(dir, { recursive: true });
    }
    await fs.chmod(this.secretsDir(), 0o700);
  }

  datasetsDir(): string {
    return path.join(this.root, 'datasets');
  }

  datasetDir(name: string): string {
    return this.inside(this.datasetsDir(), checkName(name, 'dataset'));
  }

  /** Reader copies (shared/sql/reader-copies.ts); the only files readers' SQL can open. */
  readerDir(): string {
    return path.join(this.root, 'reader');
  }

  datasetReaderDir(name: string): string {
    return this.inside(this.readerDir(), checkName(name, 'dataset'));
  }

  queryTempDir(): string {
    return path.join(this.root, 'staging', 'duckdb');
  }

  uploadsDir(): string {
    return path.join(this.root, 'staging', 'uploads');
  }

  secretsDir(): string {
    return path.join(this.root, 'secrets');
  }

  redisDir(): string {
    return path.join(this.root, 'redis');
  }

  /** Resolves `relative` under `base` and refuses any result outside the data root. */
  inside(base: string, ...relative: string[]): string {
    const resolved = path.resolve(base, ...relative);
    if (resolved !== this.root && !resolved.startsWith(this.root + path.sep)) {
      throw new BadRequestError(`path ${JSON.stringify(relative.join('/'))} leaves the data root`);
    }
    return resolved;
  }
}

export function checkName(name: string, what: string): string {
  if (!ENTITY_NAME.test(name)) {
    throw new BadRequestError(
      `${what} name ${JSON.stringify(name)} is invalid: use a lower-case letter, then lower-case letters, digits or _ (at most 63)`,
    );
  }
  return name;
}
