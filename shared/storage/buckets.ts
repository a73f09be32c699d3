/**
 * Named storage roots. `primary` is the data root (LAKEHOUSE_DATA_DIR) and also holds the
 * cluster's own folders (staging, inbox, secrets, trash, audit); other buckets
 * (LAKEHOUSE_BUCKETS=name:path,…) hold datasets only. A dataset lives in exactly one bucket;
 * names are unique across buckets so SQL can see every dataset by its bare name.
 */
import fs from 'node:fs/promises';
import { BadRequestError, ConflictError } from '../errors.ts';
import { DataRoot } from './data-root.ts';

export const PRIMARY = 'primary';

export interface Bucket {
  name: string;
  root: DataRoot;
}

export class Buckets {
  private readonly byName: Map<string, Bucket>;

  constructor(primaryDir: string, extra: { name: string; path: string }[] = []) {
    this.byName = new Map([[PRIMARY, { name: PRIMARY, root: new DataRoot(primaryDir) }]]);
    for (const b of extra) this.byName.set(b.name, { name: b.name, root: new DataRoot(b.path) });
  }

  get primary(): DataRoot {
    return this.byName.get(PRIMARY)!.root;
  }

  all(): Bucket[] {
    return [...this.byName.values()];
  }

  names(): string[] {
    return [...this.byName.keys()];
  }

  get(name: string = PRIMARY): Bucket {
    const bucket = this.byName.get(name);
    if (!bucket) throw new BadRequestError(`unknown bucket ${JSON.stringify(name)}; buckets: ${this.names().join(', ')}`);
    return bucket;
  }

  async ensure(): Promise<void> {
    await this.primary.ensure();
    for (const b of this.all()) await fs.mkdir(b.root.datasetsDir(), { recursive: true });
  }

  /** The bucket holding a dataset's directory, if any does. */
  async locate(dataset: string): Promise<Bucket | undefined> {
    for (const b of this.all()) {
      if (await exists(b.root.datasetDir(dataset))) return b;
    }
    return undefined;
  }

  /**
   * Where a write to `dataset` goes: its existing bucket, which must be the one asked for (a
   * dataset never spans buckets), or the asked-for bucket for a new dataset.
   */
  async forWrite(dataset: string, asked: string | undefined): Promise<Bucket> {
    const wanted = this.get(asked ?? PRIMARY);
    const existing = await this.locate(dataset);
    if (existing && existing.name !== wanted.name && asked !== undefined) {
      throw new ConflictError(`dataset ${JSON.stringify(dataset)} lives in bucket ${existing.name}, not ${wanted.name}`);
    }
    return existing ?? wanted;
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await fs.access(p);
    return true;
  } catch {
    return false;
  }
}
