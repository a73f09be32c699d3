/**
 * Extending a generation instead of rebuilding it, on real files: a 2,000-vector gen-1, then
 * gen-2 = gen-1 + 100 new vectors − 50 deleted chunks, then gen-3 deleting some of the new ones
 * and adding back some deleted ones. Searches never return a tombstone, new vectors find
 * themselves, counts add up, earlier directories are untouched, and the live chunk set the graph
 * holds equals the one vectors files minus tombstones give (refresh-diff.ts). Then the way out
 * when tombstones pile up: compact and build afresh.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import hnswlib from 'hnswlib-node';
import { BadRequestError, ConflictError } from '../../shared/errors.ts';
import { DataRoot } from '../../shared/storage/data-root.ts';
import { DELETED_FILE, HNSW_FILE, LABELS_FILE, META_FILE, readGenerationMeta } from '../../shared/vectors/index/generation-files.ts';
import { buildGeneration } from '../../shared/vectors/index/hnsw-build.ts';
import { extendGeneration, REBUILD_THRESHOLD, shouldRebuild, type ExtendResult } from '../../shared/vectors/index/hnsw-extend.ts';
import { LoadedGeneration } from '../../shared/vectors/index/hnsw-searcher.ts';
import { generationDir, indexDir, vectorsDir } from '../../shared/vectors/index/index-manifest.ts';
import { compactVectors, writeTombstones } from '../../shared/vectors/index/tombstones.ts';
import { readChunkMeta, writeVectorsParquet, type VectorRow } from '../../shared/vectors/index/vectors-parquet.ts';
import { liveChunkIds } from '../../shared/vectors/refresh-diff.ts';
import { sqlString as q, withDuckDB } from '../helpers/duckdb.ts';
import { mulberry32 as prng } from '../../shared/random.ts';

const DIMS = 32;
const INDEX = 'extend_idx';
const CHUNKS_PER_DOC = 4;


const rand = prng(11);

function unitVector(): Float32Array {
  const v = Float32Array.from({ length: DIMS }, () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand()));
  const n = Math.hypot(...v);
  return v.map((x) => x / n);
}

/** `count / CHUNKS_PER_DOC` documents named `<prefix><n>`, chunk ids shaped as chunking.ts makes them. */
function docRows(prefix: string, firstDoc: number, count: number): VectorRow[] {
  return Array.from({ length: count }, (_, i) => {
    const doc = `${prefix}${firstDoc + Math.floor(i / CHUNKS_PER_DOC)}`;
    const seq = i % CHUNKS_PER_DOC;
    const text = `text ${seq} of ${doc}`;
    const content_hash = createHash('sha256').update(text).digest('hex');
    return { doc_id: doc, chunk_id: `${doc}#${seq}:${content_hash.slice(0, 12)}`, seq, text, content_hash, vector: unitVector() };
  });
}

async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const f of (await fs.readdir(dir)).sort()) {
    const st = await fs.stat(path.join(dir, f));
    out[f] = `${st.mtimeMs}:${st.size}:${createHash('sha256').update(await fs.readFile(path.join(dir, f))).digest('hex')}`;
  }
  return out;
}

/** Chunk ids of the labels a loaded generation holds live. */
function graphLive(gen: LoadedGeneration): Set<string> {
  const out = new Set<string>();
  for (let label = 0; label < gen.count; label++) if (!gen.isDeleted(label)) out.add(gen.chunkId(label));
  return out;
}

let tmp: string;
let root: DataRoot;
let base: VectorRow[];
let added: VectorRow[];
let deletedIds: Set<string>;
let files: string[];
let tombs: string[];
let gen1Snapshot: Record<string, string>;
let ext2: ExtendResult;
let progress: { fraction: number; gen2Existed: boolean; tmpExisted: boolean }[];
let gen2: LoadedGeneration;

before(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'refresh-extend-'));
  root = new DataRoot(tmp);
  base = docRows('doc-', 0, 2000);
  added = docRows('new-', 0, 100);
  // docs 0..11 entirely (48 chunks) and 2 of doc 12's 4 chunks
  deletedIds = new Set(base.slice(0, 50).map((r) => r.chunk_id));
  const vdir = vectorsDir(root, INDEX);
  await fs.mkdir(vdir, { recursive: true });
  files = [path.join(vdir, 'part-1.parquet'), path.join(vdir, 'part-2.parquet')];
  await writeVectorsParquet(files[0]!, base, DIMS);
  await writeVectorsParquet(files[1]!, added, DIMS);
  tombs = [(await writeTombstones(indexDir(root, INDEX), 'g2', deletedIds))!.path];

  await buildGeneration({ files: [files[0]!], dims: DIMS, m: 16, efConstruction: 100, efSearch: 64, seed: 1, outDir: generationDir(root, INDEX, 1) });
  gen1Snapshot = await snapshot(generationDir(root, INDEX, 1));

  progress = [];
  ext2 = await extendGeneration({
    prevDir: generationDir(root, INDEX, 1),
    newFiles: [files[1]!],
    deletedChunkIds: deletedIds,
    dims: DIMS,
    outDir: generationDir(root, INDEX, 2),
    progress: async (fraction) => {
      const listing = await fs.readdir(indexDir(root, INDEX));
      progress.push({ fraction, gen2Existed: listing.includes('gen-2'), tmpExisted: listing.some((n) => /^\.gen-2\.[0-9a-f]+\.tmp$/.test(n)) });
    },
  });
  gen2 = await LoadedGeneration.load(generationDir(root, INDEX, 2), DIMS);
});

after(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

describe('extendGeneration', () => {
  it('counts: 2,000 + 100 labels, 50 of them tombstones', (t) => {
    t.diagnostic(`extend of 2000×${DIMS} by +100 −50: ${ext2.seconds.toFixed(3)} s`);
    assert.deepEqual({ count: ext2.count, deleted: ext2.deleted, added: ext2.added, marked: ext2.marked, not_found: ext2.not_found }, { count: 2100, deleted: 50, added: 100, marked: 50, not_found: 0 });
    assert.equal(gen2.count, 2100);
    assert.equal(gen2.deletedCount, 50);
    assert.equal(gen2.liveCount, 2050);
    assert.equal(gen2.meta.count, 2100);
    assert.equal(gen2.meta.deleted, 50);
    assert.equal(gen2.meta.base, 'gen-1');
    assert.equal(gen2.meta.m, 16, 'build parameters carry over');
    assert.equal(gen2.meta.ef_search, 64);
  });

  it('writes the directory atomically: progress runs while only the temporary exists; nothing else is left', async () => {
    assert.ok(progress.length >= 50, `${progress.length} reports`);
    assert.equal(progress.at(-1)!.fraction, 1);
    assert.ok(progress.every((p) => !p.gen2Existed && p.tmpExisted));
    assert.deepEqual((await fs.readdir(indexDir(root, INDEX))).sort(), ['gen-1', 'gen-2', 'tombstones', 'vectors']);
    assert.deepEqual((await fs.readdir(generationDir(root, INDEX, 2))).sort(), [DELETED_FILE, META_FILE, HNSW_FILE, LABELS_FILE].sort());
  });

  it('leaves the previous generation byte for byte as it was, and it still loads without tombstones', async () => {
    assert.deepEqual(await snapshot(generationDir(root, INDEX, 1)), gen1Snapshot);
    const gen1 = await LoadedGeneration.load(generationDir(root, INDEX, 1), DIMS);
    assert.equal(gen1.count, 2000);
    assert.equal(gen1.deletedCount, 0);
    assert.equal((await readGenerationMeta(generationDir(root, INDEX, 1))).deleted, undefined);
  });

  it('never returns a deleted chunk, even when asked for everything', () => {
    for (let i = 0; i < 50; i++) {
      const hits = gen2.search(base[i]!.vector, 10);
      assert.equal(hits.length, 10);
      for (const h of hits) assert.ok(!deletedIds.has(gen2.chunkId(h.label)), `query ${i} returned deleted ${gen2.chunkId(h.label)}`);
    }
    const all = gen2.search(base[0]!.vector, 5000, 5000);
    assert.equal(all.length, 2050, 'k clamps to the live vectors');
    assert.equal(new Set(all.map((h) => h.label)).size, 2050);
    assert.ok(all.every((h) => !gen2.isDeleted(h.label) && !deletedIds.has(gen2.chunkId(h.label))));
  });

  it('finds each new vector first, at score ≈ 1, under labels continuing after the previous ones', () => {
    added.forEach((row, i) => {
      const [top] = gen2.search(row.vector, 1);
      assert.equal(top!.label, 2000 + i);
      assert.equal(gen2.chunkId(top!.label), row.chunk_id);
      assert.equal(gen2.docId(top!.label), row.doc_id);
      assert.ok(top!.score > 0.9999, `score ${top!.score}`);
    });
    const [kept] = gen2.search(base[60]!.vector, 1);
    assert.equal(gen2.chunkId(kept!.label), base[60]!.chunk_id, 'an untouched vector still finds itself');
  });

  it('labelsOfDocs skips tombstones; markDeleted of one is a no-op', () => {
    assert.deepEqual(gen2.labelsOfDocs(['doc-0', 'doc-11']), []);
    assert.deepEqual(gen2.labelsOfDocs(['doc-12']), [50, 51], 'doc-12 lost seq 0 and 1');
    assert.deepEqual(gen2.labelsOfDocs(['new-3']), [2012, 2013, 2014, 2015]);
    assert.equal(gen2.markDeleted([0, 49]), 0);
    assert.equal(gen2.deletedCount, 50);
  });

  it('hnswlib itself keeps markDelete in the saved graph', async () => {
    const raw = new hnswlib.HierarchicalNSW('cosine', DIMS);
    await raw.readIndex(path.join(generationDir(root, INDEX, 2), HNSW_FILE));
    assert.throws(() => raw.getPoint(0), /Label not found/);
    assert.throws(() => raw.markDelete(0), /already deleted/);
    assert.equal(raw.getPoint(50).length, DIMS);
    const ids = raw.searchKnn(Array.from(base[0]!.vector), 2050).neighbors;
    assert.ok(ids.every((l) => l >= 50));
  });

  it('holds live exactly what the vectors files minus the tombstones give', async () => {
    const live = await liveChunkIds(files, tombs);
    assert.equal(live.size, 2050);
    assert.deepEqual(graphLive(gen2), live);
  });

  it('extends an extended generation: deletes some new ones and adds deleted ones back', async () => {
    const gen2Snapshot = await snapshot(generationDir(root, INDEX, 2));
    const dropped = added.slice(0, 10).map((r) => r.chunk_id);
    const back = base.slice(20, 25); // deleted in gen-2; the same text again gives the same ids
    const part3 = path.join(vectorsDir(root, INDEX), 'part-3.parquet');
    await writeVectorsParquet(part3, back, DIMS);
    files.push(part3);
    tombs.push((await writeTombstones(indexDir(root, INDEX), 'g3', dropped))!.path);

    const ext3 = await extendGeneration({
      prevDir: generationDir(root, INDEX, 2),
      newFiles: [part3],
      deletedChunkIds: [...dropped, 'never-was#0:000000000000'],
      dims: DIMS,
      outDir: generationDir(root, INDEX, 3),
    });
    assert.deepEqual({ count: ext3.count, deleted: ext3.deleted, added: ext3.added, marked: ext3.marked, not_found: ext3.not_found }, { count: 2105, deleted: 60, added: 5, marked: 10, not_found: 1 });
    assert.deepEqual(await snapshot(generationDir(root, INDEX, 2)), gen2Snapshot);

    const gen3 = await LoadedGeneration.load(generationDir(root, INDEX, 3), DIMS);
    assert.equal(gen3.count, 2105);
    assert.equal(gen3.deletedCount, 60);
    back.forEach((row, i) => {
      const [top] = gen3.search(row.vector, 1);
      assert.equal(top!.label, 2100 + i, 'found under its new label');
      assert.equal(gen3.chunkId(top!.label), row.chunk_id);
      assert.ok(top!.score > 0.9999);
      assert.ok(gen3.isDeleted(20 + i), 'the old label stays a tombstone');
    });
    for (const row of added.slice(0, 10)) assert.ok(gen3.search(row.vector, 10).every((h) => !dropped.includes(gen3.chunkId(h.label))));
    const live = await liveChunkIds(files, tombs);
    assert.equal(live.size, 2045);
    assert.deepEqual(graphLive(gen3), live, 'a re-add outweighs the earlier tombstone');
  });

  it('refuses a new chunk id that is already live, and leaves no directory behind', async () => {
    const dup = path.join(vectorsDir(root, INDEX), 'dup.parquet');
    await writeVectorsParquet(dup, [docRows('z-', 0, 1)[0]!, base[100]!], DIMS);
    await assert.rejects(
      extendGeneration({ prevDir: generationDir(root, INDEX, 3), newFiles: [dup], deletedChunkIds: [], dims: DIMS, outDir: generationDir(root, INDEX, 4) }),
      ConflictError,
    );
    // deleted and re-added in one go is fine: deletions come first
    const ext = await extendGeneration({ prevDir: generationDir(root, INDEX, 3), newFiles: [dup], deletedChunkIds: [base[100]!.chunk_id], dims: DIMS, outDir: generationDir(root, INDEX, 5) });
    assert.deepEqual([ext.count, ext.deleted, ext.added], [2107, 61, 2]);
    await fs.rm(dup);
    assert.deepEqual((await fs.readdir(indexDir(root, INDEX))).sort(), ['gen-1', 'gen-2', 'gen-3', 'gen-5', 'tombstones', 'vectors']);
  });

  it('refuses an existing directory and other dimensions', async () => {
    await assert.rejects(
      extendGeneration({ prevDir: generationDir(root, INDEX, 1), newFiles: [], deletedChunkIds: [], dims: DIMS, outDir: generationDir(root, INDEX, 2) }),
      ConflictError,
    );
    await assert.rejects(
      extendGeneration({ prevDir: generationDir(root, INDEX, 1), newFiles: [], deletedChunkIds: [], dims: 16, outDir: generationDir(root, INDEX, 9) }),
      BadRequestError,
    );
    const other = path.join(tmp, 'other-dims.parquet');
    await writeVectorsParquet(other, [{ ...added[0]!, chunk_id: 'x#0:000000000000', vector: new Float32Array(16).fill(0.25) }], 16);
    await assert.rejects(
      extendGeneration({ prevDir: generationDir(root, INDEX, 1), newFiles: [other], deletedChunkIds: [], dims: DIMS, outDir: generationDir(root, INDEX, 9) }),
      /Cannot cast list with length 16 to array with length 32/,
    );
    assert.ok(!(await fs.readdir(indexDir(root, INDEX))).some((n) => n.includes('gen-9')), 'no directory or temporary left');
  });

  it('a loader honours deleted.parquet even for a graph file that did not keep the marks', async () => {
    const dir = generationDir(root, INDEX, 8);
    await fs.cp(generationDir(root, INDEX, 1), dir, { recursive: true });
    await withDuckDB((db) => db.all(`COPY (SELECT unnest([3, 7, 1999])::INTEGER AS label) TO ${q(path.join(dir, DELETED_FILE))} (FORMAT parquet)`));
    const metaFile = path.join(dir, META_FILE);
    await fs.writeFile(metaFile, JSON.stringify({ ...JSON.parse(await fs.readFile(metaFile, 'utf8')), deleted: 3 }));
    const gen = await LoadedGeneration.load(dir, DIMS);
    assert.equal(gen.deletedCount, 3);
    assert.equal(gen.liveCount, 1997);
    for (const label of [3, 7, 1999]) assert.ok(gen.search(base[label]!.vector, 5).every((h) => h.label !== label));

    await fs.writeFile(metaFile, JSON.stringify({ ...JSON.parse(await fs.readFile(metaFile, 'utf8')), deleted: 4 }));
    await assert.rejects(LoadedGeneration.load(dir, DIMS), /inconsistent/);
    await fs.rm(dir, { recursive: true });
  });
});

describe('rebuild policy', () => {
  it(`rebuilds once tombstones pass ${REBUILD_THRESHOLD * 100}% of the graph`, () => {
    assert.equal(shouldRebuild(100, 20), false);
    assert.equal(shouldRebuild(100, 21), true);
    assert.equal(shouldRebuild(0, 0), false);
    assert.equal(shouldRebuild(2105, 60), false);
    assert.equal(shouldRebuild(100, 6, 0.05), true);
  });

  it('compacts the live rows into one file, and a fresh build of it has no tombstones', async () => {
    const out = path.join(vectorsDir(root, INDEX), 'part-compact.parquet');
    const compacted = await compactVectors({ files, tombstoneFiles: tombs, outFile: out });
    assert.equal(compacted.rows, 2045);
    assert.deepEqual(await liveChunkIds([out], []), await liveChunkIds(files, tombs));
    await assert.rejects(compactVectors({ files, tombstoneFiles: tombs, outFile: out }), ConflictError);
    assert.ok(!(await fs.readdir(vectorsDir(root, INDEX))).some((n) => n.endsWith('.tmp')));

    const built = await buildGeneration({ files: [out], dims: DIMS, outDir: generationDir(root, INDEX, 6) });
    assert.equal(built.count, 2045);
    const gen = await LoadedGeneration.load(generationDir(root, INDEX, 6), DIMS);
    assert.equal(gen.deletedCount, 0);
    assert.equal(gen.chunkId(0), base[50]!.chunk_id, 'file order kept: the first live row of part-1 comes first');
    const [top] = gen.search(base[22]!.vector, 1);
    assert.equal(gen.chunkId(top!.label), base[22]!.chunk_id, 'a re-added chunk survives compaction');
    assert.ok(top!.score > 0.9999);
    const meta = await readChunkMeta([out], [base[22]!.chunk_id]);
    assert.equal(meta.get(base[22]!.chunk_id)?.text, base[22]!.text);
  });
});
