/**
 * SQL over the catalog, as every API instance runs it:
 * - before each query the engine's views are brought in line with the manifests on disk (only
 *   changed versions are re-created), so a dataset ingested on another host is queryable at once;
 * - readers get masked views of PII columns the owner has not made public;
 * - every query — answered, refused or failed — is appended to the audit log.
 */
import os from 'node:os';
import { listDatasets, partFiles } from '../catalog/catalog.ts';
import { maskedColumns, type Manifest } from '../catalog/manifest.ts';
import type { QueryLog } from '../audit/query-log.ts';
import type { Config, Role } from '../config.ts';
import { DomainError } from '../errors.ts';
import type { Buckets } from '../storage/buckets.ts';
import { QueryEngine, type QueryResult } from './query-engine.ts';

export interface QueryLimits {
  maxRows: number;
  timeoutMs: number;
  /** @defaultValue unlimited */
  maxBytes?: number;
}

/** How the engines are bounded (SECURITY.md, "Limits"); every field has a setting in config.ts. */
export interface EngineLimits {
  /** @defaultValue DuckDB's default (80% of RAM) */
  memoryMb?: number;
  /** @defaultValue DuckDB's default (every core) */
  threads?: number;
  /** Spill cap in MiB; 0 turns spilling off. @defaultValue DuckDB's default */
  tempMaxMb?: number;
}

/** The query limits and engine bounds a Config asks for. */
export function queryLimitsOf(config: Config): QueryLimits & EngineLimits {
  return {
    maxRows: config.queryMaxRows,
    timeoutMs: config.queryTimeoutMs,
    maxBytes: config.queryMaxResultBytes,
    memoryMb: config.queryMemoryMb,
    threads: config.queryThreads,
    tempMaxMb: config.queryTempMaxMb,
  };
}

export interface Caller {
  role: Role;
  /** The audit identity (auditIdentity(key, role)); never the key. */
  who: string;
}

export class CatalogQuery {
  private syncing: Promise<Manifest[]> | undefined;

  private constructor(
    private readonly buckets: Buckets,
    private readonly engine: QueryEngine,
    private readonly limits: QueryLimits,
    private readonly audit: QueryLog,
  ) {}

  static async open(buckets: Buckets, limits: QueryLimits & EngineLimits, audit: QueryLog): Promise<CatalogQuery> {
    const { memoryMb, threads, tempMaxMb } = limits;
    const engine = await QueryEngine.open({
      allowedDirs: buckets.all().map((b) => b.root.datasetsDir()),
      readerDirs: buckets.all().map((b) => b.root.readerDir()),
      ...(memoryMb !== undefined ? { memoryLimit: `${memoryMb}MiB` } : {}),
      ...(threads !== undefined ? { threads } : {}),
      ...(tempMaxMb !== undefined ? { tempDir: buckets.primary.queryTempDir(), maxTempSize: `${tempMaxMb}MiB` } : {}),
    });
    return new CatalogQuery(buckets, engine, limits, audit);
  }

  /** One sync at a time; queries arriving during a sync share it. */
  private sync(): Promise<Manifest[]> {
    this.syncing ??= (async () => {
      try {
        const manifests = await listDatasets(this.buckets);
        await this.engine.syncViews(
          manifests.map((m) => ({
            name: m.name,
            version: m.version,
            files: partFiles(this.buckets, m),
            maskedColumns: maskedColumns(m),
            readerDir: this.buckets.get(m.bucket).root.datasetReaderDir(m.name),
          })),
        );
        return manifests;
      } finally {
        this.syncing = undefined;
      }
    })();
    return this.syncing;
  }

  /**
   * @param maxRows at most the configured row limit…
   * @param ceiling …unless the server itself raises it (hybrid search reads every matching id)
   */
  async query(sql: string, caller: Caller, maxRows?: number, ceiling = this.limits.maxRows): Promise<QueryResult> {
    const manifests = await this.sync();
    const started = Date.now();
    const limits = {
      maxRows: Math.min(maxRows ?? this.limits.maxRows, ceiling),
      timeoutMs: this.limits.timeoutMs,
      ...(this.limits.maxBytes !== undefined ? { maxBytes: this.limits.maxBytes } : {}),
    };
    let result: QueryResult | undefined;
    let failure: unknown;
    try {
      result = await this.engine.query(sql, { ...limits, role: caller.role });
    } catch (err) {
      failure = err;
    }
    await this.record(sql, caller, manifests, Date.now() - started, result, failure);
    if (failure !== undefined) throw failure;
    return result!;
  }

  /** Writes the audit line; a query that cannot be audited is not answered (503). */
  private async record(sql: string, caller: Caller, manifests: Manifest[], ms: number, result: QueryResult | undefined, failure: unknown): Promise<void> {
    const refs = await this.engine.references(sql).catch(() => ({ datasets: [], columns: [] }));
    const pii = refs.columns.filter((c) =>
      manifests.find((m) => m.name === c.dataset)?.pii.some((p) => p.column.toLowerCase() === c.column.toLowerCase()),
    );
    const refused = failure instanceof DomainError && failure.status === 400;
    try {
      await this.audit.append({
        at: new Date().toISOString(), who: caller.who, role: caller.role, sql, datasets: refs.datasets, pii_columns: pii,
        rows: result?.row_count ?? 0, ms, outcome: failure === undefined ? 'ok' : refused ? 'refused' : 'error',
        ...(failure !== undefined ? { error: (failure as Error).message } : {}),
      });
    } catch (err) {
      throw new DomainError(`the query audit log cannot be written (${(err as Error).message}); queries are refused until it can`, 503, 'Service Unavailable');
    }
  }

  /** DuckDB's parse tree of `sql` as JSON text; nothing is bound or run. */
  parseTree(sql: string): Promise<string> {
    return this.engine.parseTree(sql);
  }

  async close(): Promise<void> {
    await this.engine.close();
  }
}

/** Names this process's audit files on a shared filesystem (see QueryLog's `writer`). */
export function auditWriterId(): string {
  return `${os.hostname()}-${process.pid}`.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 64);
}
