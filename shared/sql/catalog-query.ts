/**
 * SQL over the catalog: before each query the engine's views are brought in line with the
 * manifests on disk (only changed versions are re-created), so a dataset ingested by a worker on
 * another host is queryable at once by every API instance.
 */
import { listDatasets, partFiles } from '../catalog/catalog.ts';
import type { DataRoot } from '../storage/data-root.ts';
import { QueryEngine, type QueryResult } from './query-engine.ts';

export interface QueryLimits {
  maxRows: number;
  timeoutMs: number;
}

export class CatalogQuery {
  private syncing: Promise<void> | undefined;

  private constructor(
    private readonly root: DataRoot,
    private readonly engine: QueryEngine,
    private readonly limits: QueryLimits,
  ) {}

  static async open(root: DataRoot, limits: QueryLimits): Promise<CatalogQuery> {
    const engine = await QueryEngine.open({ allowedDirs: [root.datasetsDir()] });
    return new CatalogQuery(root, engine, limits);
  }

  /** One sync at a time; queries arriving during a sync share it. */
  private sync(): Promise<void> {
    this.syncing ??= (async () => {
      try {
        const manifests = await listDatasets(this.root);
        await this.engine.syncViews(manifests.map((m) => ({ name: m.name, version: m.version, files: partFiles(this.root, m) })));
      } finally {
        this.syncing = undefined;
      }
    })();
    return this.syncing;
  }

  async query(sql: string, maxRows?: number): Promise<QueryResult> {
    await this.sync();
    return this.engine.query(sql, { maxRows: Math.min(maxRows ?? this.limits.maxRows, this.limits.maxRows), timeoutMs: this.limits.timeoutMs });
  }

  async close(): Promise<void> {
    await this.engine.close();
  }
}
