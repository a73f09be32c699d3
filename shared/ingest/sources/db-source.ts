/**
 * Ingests a Postgres or MySQL/MariaDB table or query into one Parquet file, streamed: the source
 * is read `batchSize` rows at a time (see interfaces.ts for the vocabulary), each batch goes into
 * a private DuckDB that may spill to disk, and the Parquet appears at `target` only when complete.
 *
 * Type mapping (source → Parquet/DuckDB):
 *
 * | source                                            | DuckDB                                  |
 * |---------------------------------------------------|-----------------------------------------|
 * | smallint / integer / bigint                       | SMALLINT / INTEGER / BIGINT             |
 * | MySQL tinyint / mediumint / year                  | TINYINT / INTEGER / SMALLINT            |
 * | MySQL UNSIGNED tinyint/smallint/int/bigint        | SMALLINT / INTEGER / BIGINT / UBIGINT   |
 * | MySQL bit(n)                                      | UBIGINT                                 |
 * | numeric(p,s) / decimal(p,s), p ≤ 38               | DECIMAL(p,s), exact                     |
 * | numeric without (p,s), or p > 38                  | VARCHAR with the exact text             |
 * | any numeric/decimal with `decimalsAsFloat`        | DOUBLE                                  |
 * | real / float, double precision / double           | FLOAT, DOUBLE                           |
 * | boolean, MySQL tinyint(1) (0 → false, else true)  | BOOLEAN                                 |
 * | date; time                                        | DATE; TIME                              |
 * | timestamp; MySQL datetime / timestamp (as UTC)    | TIMESTAMP                               |
 * | timestamptz                                       | TIMESTAMPTZ (same instant)              |
 * | json / jsonb, MySQL JSON, MariaDB JSON            | JSON (DuckDB's built-in json extension) |
 * | uuid, MariaDB uuid                                | UUID                                    |
 * | bytea, blob / binary / varbinary, geometry        | BLOB                                    |
 * | text / varchar / char / enum / set, anything else | VARCHAR with the server's text form     |
 *
 * MySQL zero dates (`0000-00-00…`) become NULL. Unconstrained numerics are VARCHAR rather than a
 * guessed DECIMAL(38,s): Postgres lets them hold any scale, and a guess would round silently.
 */
import fs from 'node:fs/promises';
import { BadRequestError } from '../../errors.ts';
import type { ProgressFn } from '../../progress.ts';
import { commitTempFile, tempPathFor } from '../../storage/atomic-write.ts';
import type { Cell, ColumnPlan, OpenSource } from './interfaces.ts';
import { openMysql } from './mysql-reader.ts';
import { ParquetSink } from './parquet-sink.ts';
import { openPostgres } from './postgres-reader.ts';
import { RowFingerprint } from './row-fingerprint.ts';
import { sourceError, sourceLabel, type SourceLabel } from './source-errors.ts';
import { COLUMN_NAME, TABLE_NAME } from './statement.ts';

export interface DbSourceSpec {
  kind: 'postgres' | 'mysql';
  /** `postgres://…` / `mysql://…`, already resolved by the caller; never logged or echoed. */
  dsn: string;
  /** `name` or `schema.name`; exactly one of `table` and `query`. Case-sensitive on Postgres. */
  table?: string;
  /** A SELECT; it runs in a read-only transaction. */
  query?: string;
  /** Rows per fetch: the cursor's read size on Postgres, the stream's highWaterMark on MySQL. */
  batchSize: number;
  /**
   * Fetch only rows whose `column` is above `since` (bound as a parameter), ordered by `column`.
   * Rows where `column` is NULL are never fetched: they have no place in the order.
   * @defaultValue undefined — every row, in source order
   */
  incremental?: { column: string; since?: string | number | null };
  /** @defaultValue false — decimals stay exact (DECIMAL(p,s), or VARCHAR when DuckDB cannot hold them) */
  decimalsAsFloat?: boolean;
}

export interface DbIngestOutput {
  rows: number;
  bytes: number;
  schema: { name: string; type: string }[];
  /** sha256 hex over the columns and the rows fetched, in order (see row-fingerprint.ts). */
  fingerprint: string;
  /** The incremental column's last (largest) value fetched, else the previous `since`, else null. */
  highWaterMark: string | number | null;
  /** The SQL that ran, with `since` as a placeholder: for lineage, free of secrets. */
  statement: string;
}

/** At most one progress report per interval while rows stream in. */
const PROGRESS_INTERVAL_MS = 1_000;

/** DuckDB types whose incremental values are reported as JS numbers (when exactly representable). */
const NUMERIC_MARK = /^(TINYINT|SMALLINT|INTEGER|BIGINT|UBIGINT|FLOAT|DOUBLE)$/;

/**
 * Reads the source described by `spec` into a zstd Parquet file at `target` (its directory must
 * exist). Progress stays at 0.5 with `rows` and `rows_per_s` while reading (the total is unknown)
 * and 0.9 while writing; the caller reports 1.
 */
export async function dbToParquet(spec: DbSourceSpec, target: string, progress: ProgressFn): Promise<DbIngestOutput> {
  checkSpec(spec);
  const label = sourceLabel(spec.kind, spec.dsn);
  const tmp = tempPathFor(target);
  const spillDir = `${tmp}.spill`;
  let source: OpenSource | undefined;
  let sink: ParquetSink | undefined;
  try {
    source = await (spec.kind === 'postgres' ? openPostgres(spec) : openMysql(spec)).catch((err: unknown) => {
      throw sourceError(label, err);
    });
    sink = await ParquetSink.open(source.columns, spillDir);
    const fingerprint = new RowFingerprint(source.columns);
    const markAt = spec.incremental ? columnIndex(source.columns, spec.incremental.column) : -1;
    const started = Date.now();
    let rows = 0;
    let lastMark: Cell = null;
    let reportedAt = 0;
    for await (const batch of labelled(label, source.batches)) {
      fingerprint.add(batch);
      await sink.append(batch);
      rows += batch.length;
      if (markAt >= 0) lastMark = batch[batch.length - 1]?.[markAt] ?? lastMark;
      if (Date.now() - reportedAt >= PROGRESS_INTERVAL_MS) {
        reportedAt = Date.now();
        await progress(0.5, { rows, rows_per_s: Math.round((rows * 1000) / Math.max(1, reportedAt - started)) });
      }
    }
    await progress(0.9, { rows, rows_per_s: Math.round((rows * 1000) / Math.max(1, Date.now() - started)) });
    const schema = await sink.writeParquet(tmp);
    await commitTempFile(tmp, target);
    return {
      rows,
      bytes: (await fs.stat(target)).size,
      schema,
      fingerprint: fingerprint.hex(),
      highWaterMark: markAt >= 0 && lastMark !== null ? markValue(lastMark, source.columns[markAt]) : (spec.incremental?.since ?? null),
      statement: source.statement.sql,
    };
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  } finally {
    sink?.close();
    await source?.close();
    await fs.rm(spillDir, { recursive: true, force: true });
  }
}

function checkSpec(spec: DbSourceSpec): void {
  if (spec.kind !== 'postgres' && spec.kind !== 'mysql') throw new BadRequestError(`unknown source kind ${JSON.stringify(spec.kind)}`);
  if ((spec.table === undefined) === (spec.query === undefined)) throw new BadRequestError('give exactly one of table and query');
  if (spec.table !== undefined && !TABLE_NAME.test(spec.table)) {
    throw new BadRequestError(`table must be a name or schema.name matching ${TABLE_NAME}`);
  }
  if (!Number.isSafeInteger(spec.batchSize) || spec.batchSize < 1) throw new BadRequestError('batchSize must be a positive integer');
  const inc = spec.incremental;
  if (inc !== undefined && !COLUMN_NAME.test(inc.column)) throw new BadRequestError(`incremental.column must match ${COLUMN_NAME}`);
  if (typeof inc?.since === 'number' && !Number.isFinite(inc.since)) throw new BadRequestError('incremental.since must be finite');
}

/** Re-throws errors of the source's iteration with the source named and secrets scrubbed. */
async function* labelled<T>(label: SourceLabel, batches: AsyncIterable<T>): AsyncGenerator<T> {
  try {
    yield* batches;
  } catch (err) {
    throw sourceError(label, err);
  }
}

/** Exact name first; MySQL names are case-insensitive, so a differently-cased match is the same column. */
function columnIndex(columns: ColumnPlan[], name: string): number {
  const exact = columns.findIndex((c) => c.name === name);
  const index = exact >= 0 ? exact : columns.findIndex((c) => c.name.toLowerCase() === name.toLowerCase());
  if (index < 0) throw new BadRequestError(`the incremental column ${JSON.stringify(name)} is not in the result`);
  return index;
}

function markValue(cell: Cell, column: ColumnPlan | undefined): string | number {
  const text = typeof cell === 'string' ? cell : Buffer.from(cell as Uint8Array).toString('hex');
  if (column === undefined || !NUMERIC_MARK.test(column.type)) return text;
  const n = Number(text);
  const exact = Number.isInteger(n) ? Number.isSafeInteger(n) : Number.isFinite(n);
  return exact ? n : text;
}
