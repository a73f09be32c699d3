/**
 * A dataset's documents as chunks: the id and text columns read straight from the dataset's
 * Parquet parts (a worker's own DuckDB, no sandbox needed: the columns are named by the job,
 * checked against the manifest, and quoted), chunked per document.
 */
import { partFiles } from '../catalog/catalog.ts';
import type { Manifest } from '../catalog/manifest.ts';
import { BadRequestError } from '../errors.ts';
import { checkColumns } from './embed-source-check.ts';
import { openConnection, sqlString } from '../ingest/formats/parquet-sink.ts';
import type { Buckets } from '../storage/buckets.ts';
import { chunkDocument, type Chunk, type ChunkOptions } from './chunking.ts';

export interface SourceColumns {
  id_column: string;
  text_column: string;
}

const ident = (name: string) => `"${name.replace(/"/g, '""')}"`;

/** Every chunk of every document, in document order; documents with empty text give none. */
export async function datasetChunks(buckets: Buckets, manifest: Manifest, cols: SourceColumns, chunking: ChunkOptions): Promise<{ chunks: Chunk[]; docs: number }> {
  checkColumns(manifest, cols);
  const files = partFiles(buckets, manifest);
  const conn = await openConnection();
  try {
    const result = await conn.stream(
      `SELECT CAST(${ident(cols.id_column)} AS VARCHAR) AS doc_id, CAST(${ident(cols.text_column)} AS VARCHAR) AS text ` +
        `FROM read_parquet([${files.map(sqlString).join(', ')}], union_by_name = true) WHERE ${ident(cols.id_column)} IS NOT NULL`,
    );
    const chunks: Chunk[] = [];
    const seen = new Set<string>();
    for (;;) {
      const batch = await result.fetchChunk();
      if (!batch || batch.rowCount === 0) break;
      for (const [docId, text] of batch.getRows() as [string, string | null][]) {
        if (seen.has(docId)) throw new BadRequestError(`id column ${cols.id_column} is not unique: ${JSON.stringify(docId)} appears twice`);
        seen.add(docId);
        if (text) chunks.push(...chunkDocument(docId, text, chunking));
      }
    }
    return { chunks, docs: seen.size };
  } finally {
    conn.closeSync();
  }
}
