/**
 * Semantic and hybrid search over an index's current generation, as every API instance runs it.
 * The manifest is read on each search (a small file), so a newly committed generation is served
 * by every instance on its next search, without a restart; the cache loads it once (concurrent
 * searches wait for the complete load, never a half-loaded graph) and drops the old one.
 *
 * Hybrid: `filter` is a SQL boolean expression over the source dataset, run through the same
 * sandboxed, audited, role-masked SQL as /query. Few matching documents → exact cosine over just
 * their vectors; many → HNSW with the filter applied inside the graph walk, ef widened until k pass.
 */
import { performance } from 'node:perf_hooks';
import { getDataset } from '../catalog/catalog.ts';
import { maskedColumns } from '../catalog/manifest.ts';
import type { Config } from '../config.ts';
import { BadRequestError, ConflictError, NotFoundError } from '../errors.ts';
import type { Caller, CatalogQuery } from '../sql/catalog-query.ts';
import { assertFilterShape, filterQuerySql } from '../sql/filter-query.ts';
import { MASK } from '../sql/sql-text.ts';
import type { Buckets } from '../storage/buckets.ts';
import { providerFor } from './embedding/provider-cache.ts';
import type { ProviderSpec } from './embedding/provider.ts';
import { exactTopK } from './index/exact-search.ts';
import { LoadedGeneration } from './index/hnsw-searcher.ts';
import { estimateMatchedChunks, planFilteredSearch, widenUntil } from './index/hybrid-plan.ts';
import { IndexCache } from './index/index-cache.ts';
import { currentGeneration, generationDir, generationVectorFiles, readIndexManifest, type IndexManifest } from './index/index-manifest.ts';
import { readChunkMeta } from './index/vectors-parquet.ts';

export interface SearchRequest {
  query?: string | undefined;
  vector?: number[] | undefined;
  k: number;
  ef?: number | undefined;
  filter?: string | undefined;
}

export interface SearchHit {
  doc_id: string;
  chunk_id: string;
  score: number;
  text: string;
}

export interface SearchResponse {
  hits: SearchHit[];
  took_ms: number;
  generation: number;
  plan: 'hnsw' | 'exact' | 'hnsw-filtered';
  matched_docs?: number;
}

export class IndexSearcher {
  private readonly cache: IndexCache<LoadedGeneration>;

  constructor(
    private readonly buckets: Buckets,
    private readonly config: Config,
    private readonly sql: CatalogQuery,
  ) {
    this.cache = new IndexCache<LoadedGeneration>({ maxBytes: config.indexCacheBytes });
  }

  async locate(name: string): Promise<{ index: IndexManifest; root: Buckets['primary'] }> {
    for (const b of this.buckets.all()) {
      const index = await readIndexManifest(b.root, name);
      if (index) return { index, root: b.root };
    }
    this.forget(name); // deleted (maybe through another instance): its loaded graphs go too
    throw new NotFoundError(`index ${JSON.stringify(name)} does not exist`);
  }

  /** Drops every loaded generation of the index (it was deleted). */
  forget(name: string): void {
    this.cache.evict(name);
  }

  /** Generations of `name` this instance holds in memory (for tests and metrics). */
  loadedGenerations(name: string): number[] {
    return this.cache.loaded().filter((e) => e.name === name).map((e) => e.gen);
  }

  async search(name: string, req: SearchRequest, caller: Caller): Promise<SearchResponse> {
    const started = performance.now();
    const { index, root } = await this.locate(name);
    const gen = currentGeneration(index);
    if (!gen) throw new ConflictError(`index ${name} has no generation yet (its first embed job has not finished)`);
    const loaded = await this.cache.get(name, gen.id, () => LoadedGeneration.load(generationDir(root, name, gen.id), index.embedding.dims, index.hnsw.ef_search));
    const vector = await this.queryVector(index, req);
    const maxEf = this.config.searchMaxEf;
    if (req.ef !== undefined && req.ef > maxEf) throw new BadRequestError(`ef ${req.ef} is above this server's limit of ${maxEf} (LAKEHOUSE_SEARCH_MAX_EF)`);
    const ef = Math.min(req.ef ?? index.hnsw.ef_search, maxEf);
    let labels: { label: number; score: number }[];
    let plan: SearchResponse['plan'] = 'hnsw';
    let matched: number | undefined;
    if (req.filter === undefined) {
      labels = loaded.search(vector, req.k, Math.min(Math.max(ef, req.k), Math.max(maxEf, req.k)));
    } else {
      const docs = await this.filterDocs(index, req.filter, caller);
      matched = docs.size;
      const choice = planFilteredSearch({ matched: estimateMatchedChunks(docs.size, index.stats), total: Math.max(loaded.count - loaded.deletedCount, 1), k: req.k });
      if (choice.kind === 'exact') {
        plan = 'exact';
        const candidates = loaded.labelsOfDocs(docs);
        labels = exactTopK(vector, loaded.vectors(candidates), index.embedding.dims, req.k).map((r) => ({ label: candidates[r.index]!, score: r.score }));
      } else {
        plan = 'hnsw-filtered';
        // the filter applies inside the graph walk; if that finds fewer than k, widen ef and walk again
        const keep = (label: number) => docs.has(loaded.docId(label));
        // ef never widens past LAKEHOUSE_SEARCH_MAX_EF; if that walk finds fewer than k, the
        // matched documents (bounded by LAKEHOUSE_SEARCH_FILTER_MAX_ROWS) are scored exactly.
        const widths = [...choice.widths.filter((w) => w < maxEf), maxEf].slice(0, choice.widths.length);
        labels = widenUntil(widths, req.k, (width) => loaded.search(vector, req.k, Math.min(Math.max(ef, width), Math.max(maxEf, req.k)), keep));
        if (labels.length < req.k && widths.at(-1)! < choice.widths.at(-1)!) {
          plan = 'exact';
          const candidates = loaded.labelsOfDocs(docs);
          labels = exactTopK(vector, loaded.vectors(candidates), index.embedding.dims, req.k).map((r) => ({ label: candidates[r.index]!, score: r.score }));
        }
      }
    }
    const meta = await readChunkMeta(generationVectorFiles(root, index, gen), labels.map((l) => loaded.chunkId(l.label)));
    const masked = await this.maskedForCaller(index, caller);
    const hits = labels.map((l) => {
      const chunkId = loaded.chunkId(l.label);
      const hit = { doc_id: loaded.docId(l.label), chunk_id: chunkId, score: Math.round(l.score * 1e6) / 1e6, text: meta.get(chunkId)?.text ?? '' };
      return {
        ...hit,
        // readers see the source's PII columns masked here as in SQL (chunk ids embed the doc id)
        ...(masked.has(index.source.id_column) ? { doc_id: MASK, chunk_id: MASK } : {}),
        ...(masked.has(index.source.text_column) ? { text: MASK } : {}),
      };
    });
    return { hits, took_ms: Math.round((performance.now() - started) * 10) / 10, generation: gen.id, plan, ...(matched !== undefined ? { matched_docs: matched } : {}) };
  }

  private async queryVector(index: IndexManifest, req: SearchRequest): Promise<Float32Array> {
    if (req.vector) {
      if (req.vector.length !== index.embedding.dims) throw new BadRequestError(`vector has ${req.vector.length} dimensions; index ${index.name} holds ${index.embedding.dims}`);
      return Float32Array.from(req.vector);
    }
    const provider = providerFor(specOf(index), this.config);
    const [v] = await provider.embed([req.query!]);
    return v!;
  }

  /** The source columns a caller sees masked: for readers, the dataset's masked PII columns (all of them when it cannot be read). */
  async maskedForCaller(index: IndexManifest, caller: Caller): Promise<Set<string>> {
    if (caller.role !== 'reader') return new Set();
    const { manifest } = await getDataset(this.buckets, index.source.dataset).catch(() => ({ manifest: undefined }));
    return new Set(manifest ? maskedColumns(manifest) : [index.source.id_column, index.source.text_column]);
  }

  /** The source documents the filter selects, through the sandboxed SQL every query takes. */
  private async filterDocs(index: IndexManifest, filter: string, caller: Caller): Promise<Set<string>> {
    const sql = filterQuerySql(index.source.dataset, index.source.id_column, filter);
    assertFilterShape(await this.sql.parseTree(sql), index.source.dataset);
    const max = this.config.searchFilterMaxRows;
    const result = await this.sql.query(sql, caller, max, max);
    if (result.truncated) {
      throw new BadRequestError(`the filter selects more than ${max} documents (LAKEHOUSE_SEARCH_FILTER_MAX_ROWS) or more data than one result may hold; narrow it or search without it`);
    }
    return new Set(result.rows.map((r) => String(r['doc_id'])));
  }
}

/** The provider an index was built with: its vectors are only comparable with the same model. */
export function specOf(index: IndexManifest): ProviderSpec {
  return { provider: index.embedding.provider, model: index.embedding.model };
}
