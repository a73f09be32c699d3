/**
 * What a refresh embeds and removes, from chunk ids alone: documents added, changed and deleted
 * are counted once each, only chunks whose id is not live are embedded, and a second diff after
 * applying the first finds nothing to do, in milliseconds. The live set comes from vectors files
 * minus tombstone files, read back through DuckDB.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BadRequestError, ConflictError } from '../../shared/errors.ts';
import { chunkDocument, type Chunk } from '../../shared/vectors/chunking.ts';
import { readTombstones, tombstoneFileName, writeTombstones } from '../../shared/vectors/index/tombstones.ts';
import { writeVectorsParquet, type VectorRow } from '../../shared/vectors/index/vectors-parquet.ts';
import { ChunkDiffer, diffChunks, docIdOfChunk, isEmptyDiff, liveChunkIds } from '../../shared/vectors/refresh-diff.ts';
import { sqlString as q, withDuckDB } from '../helpers/duckdb.ts';

function chunk(doc: string, seq: number, text: string): Chunk {
  const content_hash = createHash('sha256').update(text).digest('hex');
  return { doc_id: doc, chunk_id: `${doc}#${seq}:${content_hash.slice(0, 12)}`, seq, text, content_hash };
}

function doc(id: string, ...texts: string[]): Chunk[] {
  return texts.map((t, seq) => chunk(id, seq, t));
}

function ids(chunks: Iterable<Chunk>): string[] {
  return [...chunks].map((c) => c.chunk_id);
}

/** The live set after a diff is applied: what the refresh commits. */
function applied(live: Set<string>, d: ReturnType<typeof diffChunks>): Set<string> {
  const next = new Set(live);
  for (const id of d.removedChunkIds) next.delete(id);
  for (const c of d.toEmbed) next.add(c.chunk_id);
  return next;
}

let tmp: string;

before(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'refresh-diff-'));
});

after(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

describe('docIdOfChunk', () => {
  it('strips the #<seq>:<hash> suffix, keeping any # in the document id', () => {
    assert.equal(docIdOfChunk('a#b#12:0123456789ab'), 'a#b');
    assert.equal(docIdOfChunk(chunkDocument('x#y', 'some text', { size: 100, overlap: 0 })[0]!.chunk_id), 'x#y');
    assert.equal(docIdOfChunk('c0'), 'c0', 'another shape is its own document');
    assert.equal(docIdOfChunk('d#1:XYZ'), 'd#1:XYZ');
  });
});

describe('diffChunks', () => {
  const before = [
    ...doc('same', 'alpha', 'beta'),
    ...doc('edited', 'one', 'two', 'three'),
    ...doc('gone', 'x', 'y'),
    ...doc('shrunk', 'p', 'q', 'r'),
    ...doc('a#hash', 'hashy'),
  ];
  const live = new Set(ids(before));
  const now = [
    ...doc('same', 'alpha', 'beta'),
    ...doc('edited', 'one', 'TWO', 'three'), // seq 1 changed
    ...doc('shrunk', 'p', 'q'), // lost its last chunk, nothing new
    ...doc('a#hash', 'hashy'),
    ...doc('fresh', 'n1', 'n2'),
  ];

  it('counts added, changed, deleted and unchanged documents once each', () => {
    const d = diffChunks(live, now);
    assert.deepEqual(
      { added: d.added_docs, changed: d.changed_docs, deleted: d.deleted_docs, unchanged: d.unchanged_docs, kept: d.kept_chunks },
      { added: 1, changed: 2, deleted: 1, unchanged: 2, kept: 7 },
    );
  });

  it('embeds only chunks whose id is not live, and removes live ids no longer current', () => {
    const d = diffChunks(live, now);
    assert.deepEqual(ids(d.toEmbed), [chunk('edited', 1, 'TWO').chunk_id, ...ids(doc('fresh', 'n1', 'n2'))]);
    assert.deepEqual(d.removedChunkIds, [chunk('edited', 1, 'two').chunk_id, ...ids(doc('gone', 'x', 'y')), chunk('shrunk', 2, 'r').chunk_id].sort());
    assert.ok(!isEmptyDiff(d));
  });

  it('a second diff after applying the first is empty', () => {
    const d = diffChunks(applied(live, diffChunks(live, now)), now);
    assert.ok(isEmptyDiff(d));
    assert.deepEqual([d.added_docs, d.changed_docs, d.deleted_docs, d.unchanged_docs], [0, 0, 0, 5]);
  });

  it('from nothing, everything is added; to nothing, everything is deleted', () => {
    const all = diffChunks(new Set(), now);
    assert.equal(all.added_docs, 5);
    assert.equal(all.toEmbed.length, now.length);
    const none = diffChunks(live, []);
    assert.equal(none.deleted_docs, 5);
    assert.deepEqual(none.removedChunkIds, [...live].sort());
    assert.equal(none.toEmbed.length, 0);
  });

  it('embeds a chunk id once even when the source repeats a document', () => {
    const d = diffChunks(new Set(), [...doc('twice', 'same text'), ...doc('twice', 'same text')]);
    assert.equal(d.toEmbed.length, 1);
    assert.equal(d.added_docs, 1);
  });

  it('a document deleted and added back with the same text is re-embedded under the same ids', () => {
    const without = applied(live, diffChunks(live, now.filter((c) => c.doc_id !== 'same')));
    assert.ok(!without.has(chunk('same', 0, 'alpha').chunk_id));
    const d = diffChunks(without, now);
    assert.deepEqual(ids(d.toEmbed), ids(doc('same', 'alpha', 'beta')));
    assert.equal(d.added_docs, 1);
  });

  it('real chunking: an edit at the end of a long document re-embeds only the chunks it touched', () => {
    const sentences = Array.from({ length: 40 }, (_, i) => `Sentence number ${i} says something about topic ${i % 7}.`);
    const opts = { size: 200, overlap: 40 };
    const v1 = chunkDocument('long', sentences.join(' '), opts);
    const v2 = chunkDocument('long', [...sentences.slice(0, 39), 'A different ending altogether.'].join(' '), opts);
    const d = diffChunks(new Set(ids(v1)), v2);
    assert.equal(d.changed_docs, 1);
    assert.ok(d.toEmbed.length >= 1 && d.toEmbed.length <= 2, `${d.toEmbed.length} of ${v2.length} chunks re-embedded`);
    assert.equal(d.kept_chunks, v2.length - d.toEmbed.length);
  });

  it('streams through ChunkDiffer, and is a no-op in milliseconds for 100,000 unchanged chunks', (t) => {
    const many = Array.from({ length: 100_000 }, (_, i) => chunk(`doc-${Math.floor(i / 5)}`, i % 5, `text ${i}`));
    const liveMany = new Set(ids(many));
    const started = performance.now();
    const differ = new ChunkDiffer(liveMany);
    for (const c of many) differ.add(c);
    const d = differ.finish();
    const ms = performance.now() - started;
    t.diagnostic(`diff of 100,000 unchanged chunks: ${ms.toFixed(1)} ms`);
    assert.ok(isEmptyDiff(d));
    assert.equal(d.unchanged_docs, 20_000);
    assert.ok(ms < 2000, `${ms} ms`);
  });
});

describe('tombstone files and the live set', () => {
  const DIMS = 4;
  const vec = (i: number) => Float32Array.from({ length: DIMS }, (_, j) => (i + 1) * (j + 1));
  const rows = (chunks: Chunk[], from = 0): VectorRow[] => chunks.map((c, i) => ({ ...c, vector: vec(from + i) }));

  it('writes distinct sorted ids atomically, once per tag', async () => {
    const indexDir = path.join(tmp, 'idx');
    const out = await writeTombstones(indexDir, 'g7', ['b', 'a', 'b']);
    assert.ok(out);
    assert.equal(out.file, tombstoneFileName('g7'));
    assert.equal(out.file, path.join('tombstones', 'part-g7.parquet'));
    assert.equal(out.rows, 2);
    assert.deepEqual(await fs.readdir(path.join(indexDir, 'tombstones')), ['part-g7.parquet'], 'no temporary left');
    const back = await withDuckDB((db) => db.all(`SELECT chunk_id FROM read_parquet(${q(out.path)})`));
    assert.deepEqual(back.map((r) => r['chunk_id']), ['a', 'b']);
    assert.deepEqual(await readTombstones([out.path]), new Set(['a', 'b']));

    await assert.rejects(writeTombstones(indexDir, 'g7', ['c']), ConflictError);
    assert.deepEqual(await readTombstones([out.path]), new Set(['a', 'b']), 'the existing file is untouched');
    assert.deepEqual(await fs.readdir(path.join(indexDir, 'tombstones')), ['part-g7.parquet']);
    assert.equal(await writeTombstones(indexDir, 'g8', []), undefined, 'nothing to write, no file');
    assert.throws(() => tombstoneFileName('../evil'), BadRequestError);
    assert.throws(() => tombstoneFileName(''), BadRequestError);
  });

  it('live = vectors minus tombstones; a re-add after a tombstone is live again', async () => {
    const dir = path.join(tmp, 'live');
    const a = doc('a', 'a0', 'a1');
    const b = doc('b', 'b0', 'b1');
    const c = doc('c', 'c0');
    const p1 = path.join(dir, 'vectors', 'part-1.parquet');
    const p2 = path.join(dir, 'vectors', 'part-2.parquet');
    await fs.mkdir(path.dirname(p1), { recursive: true });
    await writeVectorsParquet(p1, rows([...a, ...b]), DIMS);
    assert.deepEqual(await liveChunkIds([p1], []), new Set(ids([...a, ...b])));
    assert.deepEqual(await liveChunkIds([], []), new Set());

    // refresh 1: b deleted, c added
    const d1 = diffChunks(await liveChunkIds([p1], []), [...a, ...c]);
    assert.deepEqual([d1.added_docs, d1.changed_docs, d1.deleted_docs], [1, 0, 1]);
    await writeVectorsParquet(p2, rows(d1.toEmbed, 10), DIMS);
    const t1 = (await writeTombstones(dir, 'r1', d1.removedChunkIds))!.path;
    assert.deepEqual(await liveChunkIds([p1, p2], [t1]), new Set(ids([...a, ...c])));

    // refresh 2: b comes back with the same text
    const live2 = await liveChunkIds([p1, p2], [t1]);
    const d2 = diffChunks(live2, [...a, ...b, ...c]);
    assert.deepEqual(ids(d2.toEmbed), ids(b));
    const p3 = path.join(dir, 'vectors', 'part-3.parquet');
    await writeVectorsParquet(p3, rows(d2.toEmbed, 20), DIMS);
    assert.deepEqual(await liveChunkIds([p1, p2, p3], [t1]), new Set(ids([...a, ...b, ...c])));

    // refresh 3: b deleted again
    const d3 = diffChunks(await liveChunkIds([p1, p2, p3], [t1]), [...a, ...c]);
    const t3 = (await writeTombstones(dir, 'r3', d3.removedChunkIds))!.path;
    assert.deepEqual(await liveChunkIds([p1, p2, p3], [t1, t3]), new Set(ids([...a, ...c])));
    assert.ok(isEmptyDiff(diffChunks(await liveChunkIds([p1, p2, p3], [t1, t3]), [...a, ...c])));
  });
});
