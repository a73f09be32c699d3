/**
 * One generation in memory, ready to search. `load` resolves only once the graph and the label
 * map are both in, so whoever holds a LoadedGeneration holds a complete one; the graph is read
 * on a libuv thread (hnswlib's async readIndex), not on the event loop.
 *
 * Searches are synchronous (hnswlib's searchKnn): milliseconds each, and setEf + searchKnn run
 * without an await between them, so concurrent requests cannot see each other's ef.
 *
 * An extended generation (hnsw-extend.ts) carries tombstones: its deleted.parquet names them and
 * `load` holds them as deleted from the start, so searches, `labelsOfDocs`, `count` and
 * `deletedCount` see them as `markDeleted` had been called.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import hnswlib, { type HierarchicalNSW } from 'hnswlib-node';
import { BadRequestError } from '../../errors.ts';
import { openConnection, sqlString } from '../../ingest/formats/parquet-sink.ts';
import { DELETED_FILE, HNSW_FILE, LABELS_FILE, readGenerationMeta, type GenerationMeta } from './generation-files.ts';

export interface LabelHit {
  label: number;
  /** Cosine similarity; higher is better. */
  score: number;
}

/** Bytes per label-map entry beyond the strings themselves (array slots, string headers). */
const LABEL_OVERHEAD_BYTES = 64;

export class LoadedGeneration {
  private readonly deleted = new Set<number>();
  private labelsByDoc: Map<string, number[]> | undefined;

  private constructor(
    private readonly index: HierarchicalNSW,
    readonly meta: GenerationMeta,
    private readonly docIds: readonly string[],
    private readonly chunkIds: readonly string[],
    private readonly efSearch: number,
    /** Approximate memory held: the graph file's size plus the label map. */
    readonly bytes: number,
  ) {}

  /**
   * Loads `dir` (a generation directory). `dims` is what the index manifest says; a directory
   * built for other dimensions is refused rather than searched with the wrong vectors.
   * `efSearch` defaults to the ef the generation was built with.
   */
  static async load(dir: string, dims: number, efSearch?: number): Promise<LoadedGeneration> {
    const meta = await readGenerationMeta(dir);
    if (meta.dims !== dims) throw new Error(`${path.basename(dir)} holds ${meta.dims}-dimensional vectors, the index says ${dims}`);
    const index = new hnswlib.HierarchicalNSW(meta.space, meta.dims);
    const [, labels, deleted, stat] = await Promise.all([
      index.readIndex(path.join(dir, HNSW_FILE)),
      readLabels(dir),
      readDeletedLabels(dir),
      fs.stat(path.join(dir, HNSW_FILE)),
    ]);
    const count = index.getCurrentCount();
    if (count !== meta.count || labels.chunkIds.length !== count) {
      throw new Error(`${path.basename(dir)} is inconsistent: ${count} vectors, ${labels.chunkIds.length} labels, ${meta.count} built`);
    }
    if ((meta.deleted ?? 0) !== deleted.length || deleted.some((l) => !Number.isInteger(l) || l < 0 || l >= count)) {
      throw new Error(`${path.basename(dir)} is inconsistent: ${deleted.length} deleted labels listed, ${meta.deleted ?? 0} recorded, ${count} vectors`);
    }
    applyTombstones(index, deleted);
    const labelBytes = labels.chunkIds.reduce((n, c, i) => n + 2 * (c.length + labels.docIds[i]!.length) + LABEL_OVERHEAD_BYTES, 0);
    const gen = new LoadedGeneration(index, meta, labels.docIds, labels.chunkIds, efSearch ?? meta.ef_search, stat.size + labelBytes);
    for (const label of deleted) gen.deleted.add(label);
    return gen;
  }

  /** Vectors in the graph, tombstones included. */
  get count(): number {
    return this.chunkIds.length;
  }

  /** Vectors a search can return: `count − deletedCount`. */
  get liveCount(): number {
    return this.count - this.deleted.size;
  }

  get deletedCount(): number {
    return this.deleted.size;
  }

  /**
   * The `k` nearest live vectors, best first. `k` is clamped to the live vectors (hnswlib throws
   * above the graph's size and returns no more than the live ones); ef is raised to k when
   * smaller, as hnswlib would. With `keep`, only labels it accepts are returned.
   */
  search(vector: Float32Array, k: number, ef?: number, keep?: (label: number) => boolean): LabelHit[] {
    if (vector.length !== this.meta.dims) throw new BadRequestError(`query vector has ${vector.length} dimensions, the index has ${this.meta.dims}`);
    const n = Math.min(Math.floor(k), this.liveCount);
    if (n <= 0) return [];
    this.index.setEf(Math.max(ef ?? this.efSearch, n));
    // `keep` filters inside the graph walk (hnswlib skips rejected labels as it goes), which finds
    // the nearest matches far better than filtering a fixed candidate list afterwards
    const { distances, neighbors } = keep ? this.index.searchKnn(Array.from(vector), n, keep) : this.index.searchKnn(Array.from(vector), n);
    return neighbors.map((label, i) => ({ label, score: 1 - distances[i]! }));
  }

  /** Tombstones `labels` so searches skip them; returns how many were not already. */
  markDeleted(labels: Iterable<number>): number {
    let marked = 0;
    for (const label of labels) {
      if (!Number.isInteger(label) || label < 0 || label >= this.count) throw new RangeError(`label ${label} is not in 0..${this.count - 1}`);
      if (this.deleted.has(label)) continue;
      this.index.markDelete(label);
      this.deleted.add(label);
      marked++;
    }
    return marked;
  }

  isDeleted(label: number): boolean {
    return this.deleted.has(label);
  }

  chunkId(label: number): string {
    return this.lookup(this.chunkIds, label);
  }

  docId(label: number): string {
    return this.lookup(this.docIds, label);
  }

  /** Live labels of the documents named: the candidates of a filtered exact search, or of a deletion. */
  labelsOfDocs(docIds: Iterable<string>): number[] {
    this.labelsByDoc ??= groupByDoc(this.docIds);
    const out: number[] = [];
    for (const doc of new Set(docIds)) for (const label of this.labelsByDoc.get(doc) ?? []) if (!this.deleted.has(label)) out.push(label);
    return out;
  }

  /** The stored vectors of `labels` (rows × dims, flat), as the graph holds them: unit length. */
  vectors(labels: readonly number[]): Float32Array {
    const dims = this.meta.dims;
    const out = new Float32Array(labels.length * dims);
    labels.forEach((label, i) => out.set(this.index.getPoint(label), i * dims));
    return out;
  }

  private lookup(ids: readonly string[], label: number): string {
    const id = ids[label];
    if (id === undefined) throw new RangeError(`label ${label} is not in 0..${this.count - 1}`);
    return id;
  }
}

function groupByDoc(docIds: readonly string[]): Map<string, number[]> {
  const byDoc = new Map<string, number[]>();
  docIds.forEach((doc, label) => {
    const labels = byDoc.get(doc);
    if (labels) labels.push(label);
    else byDoc.set(doc, [label]);
  });
  return byDoc;
}

/**
 * Marks `labels` deleted in a graph just read. hnswlib persists markDelete in the file, so for a
 * graph written by hnsw-extend.ts they already are, and marking again throws ("already deleted",
 * ~7 µs a throw): a sample decides whether the file carried them, and only a graph that did not
 * (written by something that tombstoned only in deleted.parquet) has every label marked here.
 */
function applyTombstones(index: HierarchicalNSW, labels: readonly number[]): void {
  const SAMPLE = 8;
  const step = Math.max(1, Math.floor(labels.length / SAMPLE));
  let persisted = true;
  for (let i = 0; i < labels.length; i += step) if (markOnce(index, labels[i]!)) persisted = false;
  if (!persisted) for (const label of labels) markOnce(index, label);
}

/** markDelete; false when the label was already deleted. */
function markOnce(index: HierarchicalNSW, label: number): boolean {
  try {
    index.markDelete(label);
    return true;
  } catch (err) {
    if (/already deleted/.test((err as Error).message)) return false;
    throw err;
  }
}

/** The labels a generation directory holds as tombstones ({@link DELETED_FILE}); none when the file is absent. */
export async function readDeletedLabels(dir: string): Promise<number[]> {
  const file = path.join(dir, DELETED_FILE);
  try {
    await fs.access(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const conn = await openConnection();
  try {
    const result = await conn.stream(`SELECT label::INTEGER AS label FROM read_parquet(${sqlString(file)}) ORDER BY label`);
    const labels: number[] = [];
    for (let chunk = await result.fetchChunk(); chunk && chunk.rowCount > 0; chunk = await result.fetchChunk()) {
      for (const v of chunk.getColumnValues(0)) labels.push(Number(v));
    }
    return labels;
  } finally {
    conn.closeSync();
  }
}

/** A generation's label map: `docIds[label]`, `chunkIds[label]`. */
export async function readLabels(dir: string): Promise<{ docIds: string[]; chunkIds: string[] }> {
  const conn = await openConnection();
  try {
    const result = await conn.stream(`SELECT doc_id, chunk_id FROM read_parquet(${sqlString(path.join(dir, LABELS_FILE))}) ORDER BY label`);
    const docIds: string[] = [];
    const chunkIds: string[] = [];
    for (let chunk = await result.fetchChunk(); chunk && chunk.rowCount > 0; chunk = await result.fetchChunk()) {
      for (const v of chunk.getColumnValues(0)) docIds.push(String(v));
      for (const v of chunk.getColumnValues(1)) chunkIds.push(String(v));
    }
    return { docIds, chunkIds };
  } finally {
    conn.closeSync();
  }
}
