/**
 * What an embed, refresh or autotune job names, checked against the catalog before the job is
 * added: a mistake answers 400 at the door (naming the problem and what exists) instead of a
 * job that fails minutes later — and, for an embed, instead of an index created from the wrong
 * columns, which would hold the name (shared/vectors/index-setup.ts refuses other columns).
 */
import { getDataset, listDatasets } from '../catalog/catalog.ts';
import type { Column, Manifest } from '../catalog/manifest.ts';
import { didYouMean } from '../catalog/near-names.ts';
import { BadRequestError, ConflictError, NotFoundError } from '../errors.ts';
import type { Buckets } from '../storage/buckets.ts';
import { readIndexManifest, type IndexManifest } from './index/index-manifest.ts';
import { listIndexes } from './staleness.ts';

export interface EmbedSource {
  index: string;
  dataset: string;
  id_column: string;
  text_column: string;
}

/** DuckDB types read as text without losing meaning (chunking casts to VARCHAR). */
const TEXT_TYPE = /^(VARCHAR|TEXT|STRING|JSON|ENUM\b|CHAR\b|BPCHAR\b)/i;
/** Lists, arrays, structs, maps and unions: no single value to name a document by. */
const NESTED_TYPE = /(\[\d*\]$)|^(STRUCT|MAP|UNION|LIST)\b/i;

const listed = (schema: Column[]) => schema.map((c) => `${c.name} (${c.type})`).join(', ');

/** Whether a column of this type can be the text that is chunked and embedded. */
export function isTextType(type: string): boolean {
  return TEXT_TYPE.test(type.trim()) && !NESTED_TYPE.test(type.trim());
}

/** Whether a column of this type can identify a document (one scalar value per row). */
export function isScalarType(type: string): boolean {
  return !NESTED_TYPE.test(type.trim());
}

/** Both columns exist and have usable types; else a 400 naming the column and listing the dataset's columns. */
export function checkColumns(manifest: Manifest, cols: { id_column: string; text_column: string }): void {
  const problems: string[] = [];
  for (const [role, name] of [['id_column', cols.id_column], ['text_column', cols.text_column]] as const) {
    const col = manifest.schema.find((c) => c.name === name);
    if (!col) {
      problems.push(`${role}: dataset ${manifest.name} has no column ${JSON.stringify(name)}.${didYouMean(name, manifest.schema.map((c) => c.name))}`);
    } else if (role === 'text_column' && !isTextType(col.type)) {
      problems.push(`text_column: column ${JSON.stringify(name)} is ${col.type}, not text (VARCHAR); embed a text column`);
    } else if (role === 'id_column' && !isScalarType(col.type)) {
      problems.push(`id_column: column ${JSON.stringify(name)} is ${col.type}, not a single value per row; name a scalar column (an id, a key)`);
    }
  }
  if (problems.length > 0) throw new BadRequestError(`${problems.join('; ')} — columns of ${manifest.name}: ${listed(manifest.schema)}`);
}

/** The dataset, or a 400 saying it does not exist and naming the nearest datasets. */
export async function requireDatasetForJob(buckets: Buckets, name: string): Promise<Manifest> {
  try {
    return (await getDataset(buckets, name)).manifest;
  } catch (err) {
    if (!(err instanceof NotFoundError)) throw err;
    const names = (await listDatasets(buckets)).map((m) => m.name);
    const hint = didYouMean(name, names) || (names.length === 0 ? ' The catalog has no datasets yet: ingest one first.' : ` Datasets: ${names.slice(0, 20).join(', ')}${names.length > 20 ? ', …' : ''}.`);
    throw new BadRequestError(`dataset ${JSON.stringify(name)} does not exist.${hint}`);
  }
}

/** The index, or a 400 saying it does not exist and naming the nearest indexes. */
export async function requireIndexForJob(buckets: Buckets, name: string): Promise<IndexManifest> {
  for (const b of buckets.all()) {
    const m = await readIndexManifest(b.root, name);
    if (m) return m;
  }
  const names = (await listIndexes(buckets)).map((m) => m.name);
  const hint = didYouMean(name, names) || (names.length === 0 ? ' There are no indexes yet: an embed job makes one.' : ` Indexes: ${names.slice(0, 20).join(', ')}${names.length > 20 ? ', …' : ''}.`);
  throw new BadRequestError(`index ${JSON.stringify(name)} does not exist.${hint}`);
}

/**
 * An embed's dataset and columns, and — when the index exists — that it is built from the same
 * source (409 otherwise: the index name is taken by other columns).
 */
export async function checkEmbedSource(buckets: Buckets, req: EmbedSource): Promise<void> {
  const manifest = await requireDatasetForJob(buckets, req.dataset);
  checkColumns(manifest, req);
  for (const b of buckets.all()) {
    const existing = await readIndexManifest(b.root, req.index);
    if (!existing) continue;
    const s = existing.source;
    if (s.dataset !== req.dataset || s.id_column !== req.id_column || s.text_column !== req.text_column) {
      throw new ConflictError(
        `index ${req.index} is built from ${s.dataset}(${s.id_column}, ${s.text_column}); this job names ${req.dataset}(${req.id_column}, ${req.text_column}) — use another index name, or delete the index first (DELETE /indexes/${req.index})`,
      );
    }
  }
}
