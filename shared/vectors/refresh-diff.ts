/**
 * What a refresh has to do, from chunk identity alone. Chunk ids are content-addressed
 * (`<doc_id>#<seq>:<12 hex of content_hash>`, chunking.ts), so comparing the set of chunk ids the
 * index holds with the chunks of the source right now gives everything:
 *
 * - a current chunk whose id is not live is embedded (a new document, or changed text);
 * - a live id absent from the current chunks is removed (a deleted document, or text that changed);
 * - everything else keeps its vector.
 *
 * Documents are counted once each: *added* (chunks now, none live before), *changed* (live chunks
 * before, and now a different set), *deleted* (live chunks before, none now), *unchanged*.
 */
import { openConnection } from '../ingest/formats/parquet-sink.ts';
import type { Chunk } from './chunking.ts';
import { liveChunkIdsSql } from './index/tombstones.ts';

/**
 * The chunk ids a generation holds live: those of its vectors files minus its tombstones (a
 * tombstone row cancels one occurrence, tombstones.ts). Streamed from DuckDB, reading only the
 * chunk_id column; about 100 bytes of memory per id, so ~100 MB for a million chunks.
 */
export async function liveChunkIds(files: readonly string[], tombstoneFiles: readonly string[]): Promise<Set<string>> {
  const live = new Set<string>();
  if (files.length === 0) return live;
  const conn = await openConnection();
  try {
    const result = await conn.stream(liveChunkIdsSql(files, tombstoneFiles));
    for (let chunk = await result.fetchChunk(); chunk && chunk.rowCount > 0; chunk = await result.fetchChunk()) {
      for (const v of chunk.getColumnValues(0)) live.add(String(v));
    }
    return live;
  } finally {
    conn.closeSync();
  }
}

const CHUNK_ID = /^(.*)#\d+:[0-9a-f]{12}$/s;

/** The document a chunk id belongs to (doc ids may hold `#`; the suffix cannot). An id of another shape is its own document. */
export function docIdOfChunk(chunkId: string): string {
  return CHUNK_ID.exec(chunkId)?.[1] ?? chunkId;
}

export interface ChunkDiff {
  /** Current chunks whose id is not live, in the order given, each id once. */
  toEmbed: Chunk[];
  /** Live chunk ids that are no longer current, sorted. */
  removedChunkIds: string[];
  added_docs: number;
  changed_docs: number;
  deleted_docs: number;
  unchanged_docs: number;
  /** Current chunks that keep their live vector. */
  kept_chunks: number;
}

/** Whether the diff asks for no change at all. */
export function isEmptyDiff(d: ChunkDiff): boolean {
  return d.toEmbed.length === 0 && d.removedChunkIds.length === 0;
}

interface DocSeen {
  /** Live chunks of the document among the current ones. */
  kept: number;
  /** Current chunks of the document that are not live. */
  fresh: number;
}

/**
 * Compares `live` with the current chunks fed one at a time, so a caller reading the source as a
 * stream never holds more than the chunks to embed and one small record per document.
 */
export class ChunkDiffer {
  private readonly docs = new Map<string, DocSeen>();
  private readonly kept = new Set<string>();
  private readonly queued = new Set<string>();
  private readonly toEmbed: Chunk[] = [];

  constructor(private readonly live: ReadonlySet<string>) {}

  add(chunk: Chunk): void {
    let seen = this.docs.get(chunk.doc_id);
    if (!seen) this.docs.set(chunk.doc_id, (seen = { kept: 0, fresh: 0 }));
    if (this.live.has(chunk.chunk_id)) {
      if (!this.kept.has(chunk.chunk_id)) {
        this.kept.add(chunk.chunk_id);
        seen.kept++;
      }
    } else if (!this.queued.has(chunk.chunk_id)) {
      this.queued.add(chunk.chunk_id);
      this.toEmbed.push(chunk);
      seen.fresh++;
    }
  }

  finish(): ChunkDiff {
    const liveByDoc = new Map<string, number>();
    const removed: string[] = [];
    for (const id of this.live) {
      const doc = docIdOfChunk(id);
      liveByDoc.set(doc, (liveByDoc.get(doc) ?? 0) + 1);
      if (!this.kept.has(id)) removed.push(id);
    }
    let added = 0;
    let changed = 0;
    let unchanged = 0;
    for (const [doc, seen] of this.docs) {
      const before = liveByDoc.get(doc) ?? 0;
      if (before === 0) added++;
      else if (seen.fresh > 0 || seen.kept < before) changed++;
      else unchanged++;
    }
    let deleted = 0;
    for (const doc of liveByDoc.keys()) if (!this.docs.has(doc)) deleted++;
    return {
      toEmbed: this.toEmbed,
      removedChunkIds: removed.sort(),
      added_docs: added,
      changed_docs: changed,
      deleted_docs: deleted,
      unchanged_docs: unchanged,
      kept_chunks: this.kept.size,
    };
  }
}

/** {@link ChunkDiffer} over an iterable of the current chunks (every chunk of every document the source holds now). */
export function diffChunks(live: ReadonlySet<string>, current: Iterable<Chunk>): ChunkDiff {
  const differ = new ChunkDiffer(live);
  for (const chunk of current) differ.add(chunk);
  return differ.finish();
}
