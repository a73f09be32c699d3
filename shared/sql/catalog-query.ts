/**
 * SQL over the catalog: before each query the engine's views are brought in line with the
 * manifests on disk (only changed versions are re-created), so a dataset ingested by a worker on
 * another host is queryable at once by every API instance.
 */
import { listDatasets, partFiles } from '../catalog/catalog.ts';
import type { Role } from '../config.ts';
import type { Buckets } from '../storage/buckets.ts';
import { QueryEngine, type QueryResult } from './query-engine.ts';

export interface QueryLimits {
  maxRows: number;
  timeoutMs: number;
}

export class CatalogQuery {
  private syncing: Promise<void> | undefined;

  private constructor(
    private readonly buckets: Buckets,
    private readonly engine: QueryEngine,
    private readonly limits: QueryLimits,
  ) {}

  static async open(buckets: Buckets, limits: QueryLimits): Promise<CatalogQuery> {
    const engine = await QueryEngine.open({ allowedDirs: buckets.all().map((b) => b.root.datasetsDir()) });
    return new CatalogQuery(buckets, engine, limits);
  }

  /** One sync at a time; queries arriving during a sync share it. */
  private sync(): Promise<void> {
    this.syncing ??= (async () => {
      try {
        const manifests = await listDatasets(this.buckets);
        await this.engine.syncViews(manifests.map((m) => ({ name: m.name, version: m.version, files: partFiles(this.buckets, m) })));
      } finally {
        this.syncing = undefined;
      }
    })();
    return this.syncing;
  }

  async query(sql: string, opts: { maxRows?: number | undefined; role: Role }): Promise<QueryResult> {
    await this.sync();
    const maxRows = Math.min(opts.maxRows ?? this.limits.maxRows, this.limits.maxRows);
    return this.engine.query(sql, { maxRows, timeoutMs: this.limits.timeoutMs });
  }

  async close(): Promise<void> {
    await this.engine.close();
  }
}
