/**
 * The read-only, sandboxed DuckDB engine behind `POST /query`.
 *
 * Terms used below:
 * - sandbox: DuckDB settings applied to a fresh `:memory:` instance before any user SQL runs, then
 *   locked, so user SQL can neither loosen them nor reach files outside `allowedDirs` or the network.
 * - view: one per catalog dataset, `SELECT * FROM read_parquet([...files])`, created on the
 *   instance so every connection sees it.
 * - full engine: the DuckDB instance writers' and admins' queries run on; it reads the raw parts.
 * - reader engine: a second DuckDB instance, for readers' queries only, whose sandbox admits the
 *   reader copies and nothing else: even SQL that got past the reader guard cannot open a raw part.
 * - reader copy: one per part, under the dataset's reader directory: a hard link to the part when
 *   no column is masked (no extra disk), else a Parquet copy with every masked (PII) column
 *   replaced by `'***'` (reader-copies.ts). Its name hashes the part's path, size, mtime and the
 *   masked columns, so a change of any of them makes a new copy.
 * - masked view: the dataset's view in the reader engine's `masked` schema, over its reader copies.
 * - reader query: one run with `role: 'reader'`. It runs on the reader engine, its connection
 *   resolves names in the `masked` schema, and the reader guard (reader-guard.ts) checks its parse
 *   tree before DuckDB binds it: only dataset names, allowed functions, no table functions, no
 *   other schema. Binding is where read_parquet or read_csv would open a file, so nothing of a
 *   refused query ever runs. SECURITY.md ("SQL") says why both walls exist.
 * - gate: the cap on queries running at once (see `maxConcurrentQueries`).
 * - watchdog: interrupts a query's connection when its time limit passes.
 *
 * Read-only is enforced by statement type, not by the sandbox: `allowed_directories` lets DuckDB
 * write as well as read inside the data root, so only single SELECT statements are let through.
 */
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import fs from 'node:fs/promises';
import path from 'node:path';
import {
  DuckDBInstance,
  DuckDBTypeId,
  StatementType,
  fromVariantValue,
  type DuckDBBlobValue,
  type DuckDBConnection,
  type DuckDBDateValue,
  type DuckDBDecimalValue,
  type DuckDBGeometryValue,
  type DuckDBListValue,
  type DuckDBMapValue,
  type DuckDBPreparedStatement,
  type DuckDBResult,
  type DuckDBStructValue,
  type DuckDBTimestampMillisecondsValue,
  type DuckDBTimestampNanosecondsValue,
  type DuckDBTimestampSecondsValue,
  type DuckDBTimestampTZValue,
  type DuckDBTimestampValue,
  type DuckDBType,
  type DuckDBUnionValue,
  type DuckDBValue,
} from '@duckdb/node-api';
import type { Role } from '../config.ts';
import { BadRequestError, DomainError, UnavailableError } from '../errors.ts';
import { nearNames } from '../catalog/near-names.ts';
import { analyseTree, assertReaderMayRun, toReferences, type DatasetColumns, type QueryReferences, type QueryShape } from './reader-guard.ts';
import { allowedReaderFunctions } from './reader-functions.ts';
import { ensureReaderCopies, pruneReaderCopies } from './reader-copies.ts';
import { quoteIdent, quoteString } from './sql-text.ts';

/** A catalog dataset as the engine exposes it. */
export interface DatasetView {
  /** Becomes the view's name; must match `^[a-z][a-z0-9_]{0,62}$`. */
  name: string;
  version: number;
  /** Absolute Parquet paths inside one of the engine's `allowedDirs`. */
  files: string[];
  /**
   * Columns readers see as `'***'` (matched case-insensitively). Naming a column the dataset does
   * not have makes its masked view fail with that message rather than mask nothing.
   * @defaultValue none: readers see every column
   */
  maskedColumns?: string[];
  /**
   * Where this dataset's reader copies go; inside one of the engine's `readerDirs`.
   * @defaultValue `<first readerDir>/<name>`
   */
  readerDir?: string;
}

export interface QueryColumn {
  name: string;
  /** DuckDB's type string, e.g. `BIGINT`, `VARCHAR`, `DECIMAL(10,2)`. */
  type: string;
}

export interface QueryResult {
  columns: QueryColumn[];
  rows: Record<string, unknown>[];
  row_count: number;
  /** True when the query had more rows than `maxRows`, or more bytes than `maxBytes`. */
  truncated: boolean;
  /** Which limit cut the result short, when `truncated`. */
  truncated_by?: 'rows' | 'bytes';
}

export interface QueryEngineOptions {
  /** Directories writers' SQL and views may read; nothing outside them is reachable. */
  allowedDirs: string[];
  /**
   * Directories holding reader copies: all the reader engine can reach. Must not overlap
   * `allowedDirs`.
   */
  readerDirs: string[];
  /**
   * Where each engine spills what does not fit `memoryLimit` (`<tempDir>/full`, `<tempDir>/reader`).
   * @defaultValue none: a query that does not fit in memory fails
   */
  tempDir?: string;
  /**
   * DuckDB's `max_temp_directory_size` per engine, e.g. `'4GB'`.
   * @defaultValue DuckDB's default (90% of the free disk space)
   */
  maxTempSize?: string;
  /**
   * DuckDB worker threads per query.
   * @defaultValue DuckDB's default, the number of CPU cores
   */
  threads?: number;
  /**
   * DuckDB's `memory_limit` per engine (there are two: full and reader), e.g. `'2GB'`.
   * @defaultValue DuckDB's default, 80% of RAM
   */
  memoryLimit?: string;
  /**
   * Queries running at once; later ones wait (the wait counts against their time limit). Every
   * running query holds a libuv thread while DuckDB works, so running as many queries as the pool
   * has threads (UV_THREADPOOL_SIZE, default 4) stalls all file I/O in the process.
   * @defaultValue 2
   */
  maxConcurrentQueries?: number;
  /**
   * Whether readers' SQL goes through the reader guard. Only the attack suite turns it off, to
   * prove that the reader engine alone keeps raw values from readers (SECURITY.md, "SQL").
   * @defaultValue true
   */
  guardReaders?: boolean;
}

export interface QueryLimits {
  maxRows: number;
  timeoutMs: number;
  /**
   * Bytes of result (as JSON) returned at most; rows beyond it are cut off (`truncated_by: 'bytes'`).
   * @defaultValue unlimited
   */
  maxBytes?: number;
}

export interface QueryOptions extends QueryLimits {
  /**
   * Whose query this is. `reader` sees masked views and may name datasets only (see the reader
   * guard); `writer` and `admin` see the data as it is and may use table functions inside the sandbox.
   * @defaultValue unrestricted, as for `writer` and `admin`: callers serving readers must say so
   */
  role?: Role;
}

const DATASET_NAME = /^[a-z][a-z0-9_]{0,62}$/;
/** DuckDB error messages start with their kind: `Binder Error: ...`, `Permission Error: ...`. */
const DUCKDB_ERROR = /^([A-Za-z ]+) Error: /;
/** Recorded for a view that failed: matches no real key, so the next sync tries again. */
const RETRY_NEXT_SYNC = '';
/** How often a timed-out query is interrupted again; see Watchdog. */
const REINTERRUPT_MS = 50;
/** Where the unmasked views live, and where reader queries resolve names instead. */
const MAIN_SCHEMA = 'main';
const READER_SCHEMA = 'masked';
/** Copies of parts no longer listed are deleted once this old, so queries in flight elsewhere finish. */
const COPY_PRUNE_GRACE_MS = 60_000;

interface ViewState {
  /** `version + files + masked columns` the views were built from. */
  key: string;
  /** Columns as DuckDB spells them; undefined when the dataset has no view (no files). */
  columns?: string[];
  /** Directories of the dataset's files, for attributing table-function reads in `references`. */
  dirs: string[];
}

/** One sandboxed DuckDB instance and its admin connection (view DDL, never user SQL). */
interface Engine {
  instance: DuckDBInstance;
  admin: DuckDBConnection;
}

export class QueryEngine {
  private readonly views = new Map<string, ViewState>();
  private readonly running = new Set<Watchdog>();
  private readonly inFlight = new Set<Promise<unknown>>();
  private syncChain: Promise<void> = Promise.resolve();
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly full: Engine,
    private readonly reader: Engine,
    private readonly readerDirs: string[],
    /** Functions readers may call (reader-functions.ts). */
    private readonly functions: ReadonlySet<string>,
    private readonly gate: Gate,
    private readonly guardReaders: boolean,
  ) {}

  static async open(opts: QueryEngineOptions): Promise<QueryEngine> {
    const readerDirs = checkReaderDirs(opts);
    if (opts.tempDir !== undefined) await fs.mkdir(path.resolve(opts.tempDir), { recursive: true });
    // The full engine writes reader copies (COPY … TO), so it reaches the reader directories too.
    const full = await openEngine(sandboxStatements({ ...opts, allowedDirs: [...opts.allowedDirs, ...readerDirs] }, 'full'));
    let reader: Engine | undefined;
    try {
      reader = await openEngine(sandboxStatements({ ...opts, allowedDirs: readerDirs }, 'reader'));
      await reader.admin.run(`CREATE SCHEMA ${READER_SCHEMA}`);
      const functions = await allowedReaderFunctions(reader.admin);
      return new QueryEngine(full, reader, readerDirs, functions, new Gate(opts.maxConcurrentQueries ?? 2), opts.guardReaders ?? true);
    } catch (err) {
      if (reader) closeEngine(reader);
      closeEngine(full);
      throw err;
    }
  }

  /**
   * Brings the views in line with `views`: (re)creates both views of a dataset whose version, files
   * or masked columns changed, drops those no longer listed. A dataset whose view cannot be created
   * (missing or unreadable file, unknown masked column) gets a view that raises that error when
   * queried, and is retried on the next sync.
   */
  async syncViews(views: DatasetView[]): Promise<void> {
    this.assertOpen();
    checkViews(views);
    // Serialised so two syncs never interleave their DDL and leave the map out of step.
    const next = this.syncChain.then(() => this.applyViews(views));
    this.syncChain = next.catch(() => undefined);
    await next;
  }

  async query(sql: string, options: QueryOptions): Promise<QueryResult> {
    this.assertOpen();
    checkLimits(options);
    const startedAt = Date.now();
    const release = await this.gate.enter(options.timeoutMs, () => timeoutError(options.timeoutMs));
    try {
      const run = this.run(sql, options, options.timeoutMs - (Date.now() - startedAt));
      this.inFlight.add(run);
      return await run.finally(() => this.inFlight.delete(run));
    } finally {
      release();
    }
  }

  /**
   * The datasets `sql` reads and the columns of them it references, from its parse tree (see
   * reader-guard.ts for how columns are attributed). Table functions reading a path inside a
   * dataset's directory count as reading all of that dataset. SQL that does not parse as one
   * SELECT references nothing.
   */
  async references(sql: string): Promise<QueryReferences> {
    this.assertOpen();
    const connection = await this.full.instance.connect();
    try {
      const shape = await this.shapeOf(connection, sql);
      return toReferences(shape, this.readByTableFunctions(shape));
    } catch (err) {
      if (err instanceof BadRequestError) return { datasets: [], columns: [] };
      throw err;
    } finally {
      connection.closeSync();
    }
  }

  /** DuckDB's parse tree of `sql` as JSON text (json_serialize_sql): parsed, never bound or run. */
  async parseTree(sql: string): Promise<string> {
    this.assertOpen();
    const connection = await this.reader.instance.connect();
    try {
      return await serializeTree(connection, sql);
    } finally {
      connection.closeSync();
    }
  }

  /** Cancels running queries, waits for them to unwind, then frees DuckDB. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    for (const watchdog of this.running) watchdog.cancel();
    await Promise.allSettled([...this.inFlight, this.syncChain]);
    closeEngine(this.reader);
    closeEngine(this.full);
  }

  private assertOpen(): void {
    if (this.closing) throw new UnavailableError('The query engine is closed');
  }

  private async run(sql: string, { maxRows, maxBytes, timeoutMs, role }: QueryOptions, remainingMs: number): Promise<QueryResult> {
    this.assertOpen();
    if (remainingMs <= 0) throw timeoutError(timeoutMs);
    const engine = role === 'reader' ? this.reader : this.full;
    const connection = await engine.instance.connect();
    const watchdog = new Watchdog(connection, remainingMs);
    this.running.add(watchdog);
    try {
      this.assertOpen();
      const guard = role === 'reader' ? () => this.enterReaderMode(connection, sql) : undefined;
      const prepared = await prepareSelect(connection, sql, guard);
      try {
        return await readRows(await prepared.stream(), { maxRows, maxBytes: maxBytes ?? Infinity }, watchdog);
      } finally {
        prepared.destroySync();
      }
    } catch (err) {
      throw watchdog.fired ? timeoutError(timeoutMs) : translateError(err, [...this.views.keys()]);
    } finally {
      this.running.delete(watchdog);
      watchdog.stop();
      connection.closeSync();
    }
  }

  /** Refuses what a reader may not run, then points the connection at the masked views. */
  private async enterReaderMode(connection: DuckDBConnection, sql: string): Promise<void> {
    if (this.guardReaders) assertReaderMayRun(await this.shapeOf(connection, sql, this.functions));
    await connection.run(`SET search_path = ${quoteString(READER_SCHEMA)}`);
  }

  /** Parses (never binds) `sql` with DuckDB's own parser and walks the tree. */
  private async shapeOf(connection: DuckDBConnection, sql: string, functions?: ReadonlySet<string>): Promise<QueryShape> {
    return analyseTree(await serializeTree(connection, sql), this.datasetColumns(), READER_SCHEMA, functions);
  }

  /** Datasets that have views, with their columns: the names a reader may use. */
  private datasetColumns(): DatasetColumns {
    const known = new Map<string, string[]>();
    for (const [name, state] of this.views) if (state.columns) known.set(name, state.columns);
    return known;
  }

  private readByTableFunctions(shape: QueryShape): Map<string, string[]> {
    const strings = shape.tableFunctions.flatMap((call) => call.strings);
    const read = new Map<string, string[]>();
    for (const [name, state] of this.views) {
      if (state.columns && strings.some((s) => state.dirs.some((dir) => s.startsWith(dir)))) read.set(name, state.columns);
    }
    return read;
  }

  private async applyViews(views: DatasetView[]): Promise<void> {
    const listed = new Set(views.map((v) => v.name));
    for (const name of [...this.views.keys()].filter((n) => !listed.has(n))) {
      await this.transaction(this.full, [dropViewSql(MAIN_SCHEMA, name)]);
      await this.transaction(this.reader, [dropViewSql(READER_SCHEMA, name)]);
      this.views.delete(name);
    }
    for (const view of views) {
      const key = [view.version, ...view.files, '', ...[...(view.maskedColumns ?? [])].sort()].join('\n');
      if (this.views.get(view.name)?.key !== key) await this.applyView(view, key);
    }
  }

  /**
   * A dataset whose files cannot be read gets views that raise the error when queried; one whose
   * reader copies cannot be made (an unknown masked column, say) keeps its view for writers, and
   * readers get the error.
   */
  private async applyView(view: DatasetView, key: string): Promise<void> {
    const dirs = [...new Set(view.files.map((file) => path.dirname(file) + path.sep))];
    if (view.files.length === 0) {
      await this.transaction(this.full, [dropViewSql(MAIN_SCHEMA, view.name)]);
      await this.transaction(this.reader, [dropViewSql(READER_SCHEMA, view.name)]);
      this.views.set(view.name, { key, dirs });
      return;
    }
    let columns: string[] | undefined;
    try {
      await this.transaction(this.full, [viewSql(MAIN_SCHEMA, view.name, view.files)], async () => {
        columns = await this.describe(view.name);
      });
      const readerDir = this.readerDirOf(view);
      const copies = await ensureReaderCopies(this.full.admin, { files: view.files, maskedColumns: view.maskedColumns ?? [], columns: columns!, dir: readerDir });
      await this.transaction(this.reader, [viewSql(READER_SCHEMA, view.name, copies)]);
      this.views.set(view.name, { key, columns, dirs });
      await pruneReaderCopies(readerDir, copies, COPY_PRUNE_GRACE_MS);
    } catch (err) {
      const reason = summarise(errorMessage(err));
      if (columns === undefined) await this.transaction(this.full, [unavailableViewSql(MAIN_SCHEMA, view, reason)]);
      // readers learn that the dataset cannot be read and why, not where its files live
      await this.transaction(this.reader, [unavailableViewSql(READER_SCHEMA, view, withoutPaths(reason))]);
      this.views.set(view.name, { key: RETRY_NEXT_SYNC, columns: columns ?? [], dirs });
    }
  }

  private readerDirOf(view: DatasetView): string {
    const dir = path.resolve(view.readerDir ?? path.join(this.readerDirs[0]!, view.name));
    if (!this.readerDirs.some((root) => dir.startsWith(root))) throw new Error(`Dataset ${view.name} has a reader directory outside the engine's reader directories`);
    return dir;
  }

  /** Runs `statements`, then `more`, on `engine`'s admin connection as one transaction. */
  private async transaction(engine: Engine, statements: string[], more?: () => Promise<void>): Promise<void> {
    await engine.admin.run('BEGIN TRANSACTION');
    try {
      for (const statement of statements) await engine.admin.run(statement);
      await more?.();
      await engine.admin.run('COMMIT');
    } catch (err) {
      await engine.admin.run('ROLLBACK');
      throw err;
    }
  }

  private async describe(name: string): Promise<string[]> {
    const reader = await this.full.admin.runAndReadAll(`DESCRIBE ${MAIN_SCHEMA}.${quoteIdent(name)}`);
    return reader.getRowObjects().map((row) => String(row['column_name']));
  }
}

// ---------------------------------------------------------------------------------------------
// Sandbox and view DDL

async function openEngine(statements: string[]): Promise<Engine> {
  const instance = await DuckDBInstance.create(':memory:');
  const admin = await instance.connect();
  try {
    for (const statement of statements) await admin.run(statement);
    await assertSandboxed(admin);
  } catch (err) {
    closeEngine({ instance, admin });
    throw err;
  }
  return { instance, admin };
}

function closeEngine({ instance, admin }: Engine): void {
  admin.closeSync();
  instance.closeSync();
}

/** Reader directories, resolved with a trailing separator; none may overlap a raw directory. */
function checkReaderDirs({ allowedDirs, readerDirs }: QueryEngineOptions): string[] {
  if (!readerDirs || readerDirs.length === 0) throw new Error('QueryEngine needs at least one reader directory');
  const withSep = (dir: string) => path.resolve(dir).replace(/\/?$/, '/');
  const raw = allowedDirs.map(withSep);
  const out = readerDirs.map(withSep);
  const overlap = out.find((r) => raw.some((a) => r.startsWith(a) || a.startsWith(r)));
  if (overlap) throw new Error(`QueryEngine reader directory ${overlap} overlaps a raw data directory`);
  return out;
}

function sandboxStatements({ allowedDirs, threads, memoryLimit, tempDir, maxTempSize }: QueryEngineOptions, side: 'full' | 'reader'): string[] {
  if (allowedDirs.length === 0) throw new Error('QueryEngine needs at least one allowed directory');
  if (threads !== undefined && !(Number.isInteger(threads) && threads > 0)) {
    throw new Error(`QueryEngine threads must be a positive integer, got ${threads}`);
  }
  // The trailing slash makes the entry a directory prefix: "/data/" must not admit "/data-other/".
  const dirs = allowedDirs.map((dir) => quoteString(path.resolve(dir).replace(/\/?$/, '/')));
  return [
    // The spill directory must be set while external access is still on: DuckDB refuses it after.
    ...(tempDir === undefined ? [] : [`SET temp_directory = ${quoteString(path.join(path.resolve(tempDir), side))}`]),
    ...(maxTempSize === undefined ? [] : [`SET max_temp_directory_size = ${quoteString(maxTempSize)}`]),
    `SET allowed_directories = [${dirs.join(', ')}]`,
    'SET enable_external_access = false',
    'SET autoinstall_known_extensions = false',
    'SET autoload_known_extensions = false',
    ...(threads === undefined ? [] : [`SET threads = ${threads}`]),
    ...(memoryLimit === undefined ? [] : [`SET memory_limit = ${quoteString(memoryLimit)}`]),
    'SET lock_configuration = true',
  ];
}

/**
 * Fails start-up, rather than serving unsandboxed, if a DuckDB upgrade changes these settings' meaning,
 * and rather than refusing every reader query later, if the parser's JSON serialiser is missing.
 */
async function assertSandboxed(admin: DuckDBConnection): Promise<void> {
  const reader = await admin.runAndReadAll(
    "SELECT current_setting('enable_external_access') AS external, current_setting('lock_configuration') AS locked, " +
      "json_serialize_sql('SELECT 1') LIKE '{\"error\":false%' AS parses",
  );
  const [row] = reader.getRowObjects();
  if (row?.external !== false || row.locked !== true) throw new Error('DuckDB sandbox settings did not take effect');
  if (row.parses !== true) throw new Error('DuckDB cannot serialise parse trees (json_serialize_sql); reader queries need it');
}

async function serializeTree(connection: DuckDBConnection, sql: string): Promise<string> {
  const prepared = await connection.prepare('SELECT json_serialize_sql($1::VARCHAR) AS tree');
  try {
    prepared.bindVarchar(1, sql);
    const [row] = (await prepared.runAndReadAll()).getRows();
    return String(row?.[0]);
  } finally {
    prepared.destroySync();
  }
}

function checkViews(views: DatasetView[]): void {
  const seen = new Set<string>();
  for (const { name, files, maskedColumns = [] } of views) {
    if (!DATASET_NAME.test(name)) throw new Error(`Invalid dataset name for a view: ${JSON.stringify(name)}`);
    if (seen.has(name)) throw new Error(`Dataset ${name} is listed twice`);
    seen.add(name);
    const relative = files.find((file) => !path.isAbsolute(file));
    if (relative !== undefined) throw new Error(`Dataset ${name} has a relative file path: ${relative}`);
    if (!maskedColumns.every((column) => typeof column === 'string' && column.length > 0)) {
      throw new Error(`Dataset ${name} has an empty masked column name`);
    }
  }
}

function viewSql(schema: string, name: string, files: string[]): string {
  const list = files.map(quoteString).join(', ');
  return `CREATE OR REPLACE VIEW ${schema}.${quoteIdent(name)} AS SELECT * FROM read_parquet([${list}], union_by_name = true)`;
}

function dropViewSql(schema: string, name: string): string {
  return `DROP VIEW IF EXISTS ${schema}.${quoteIdent(name)}`;
}

/**
 * A view that raises `reason` whenever it is read. Better than dropping the view (the user would
 * see "table does not exist") or keeping the old one (stale data). The error sits in a WHERE
 * clause because one in the select list is optimised away by `count(*)`.
 */
function unavailableViewSql(schema: string, { name, version }: DatasetView, reason: string): string {
  const message = quoteString(`Dataset ${name} (version ${version}) cannot be read: ${reason}`);
  return `CREATE OR REPLACE VIEW ${schema}.${quoteIdent(name)} AS SELECT NULL AS unavailable FROM range(1) WHERE error(${message}) IS NULL`;
}

/** Absolute paths in a message, quoted or not, become `…`. */
function withoutPaths(message: string): string {
  return message.replace(/(["']?)\/[^\s"']+\1/g, '$1…$1');
}



// ---------------------------------------------------------------------------------------------
// Running one query

function checkLimits({ maxRows, timeoutMs, maxBytes }: QueryLimits): void {
  if (!Number.isInteger(maxRows) || maxRows < 0) throw new Error(`maxRows must be a non-negative integer, got ${maxRows}`);
  if (maxBytes !== undefined && !(maxBytes > 0)) throw new Error(`maxBytes must be positive, got ${maxBytes}`);
  if (!(Number.isFinite(timeoutMs) && timeoutMs > 0)) throw new Error(`timeoutMs must be positive, got ${timeoutMs}`);
}

/**
 * Prepares `sql` if it is exactly one SELECT; preparing binds but never executes it. `beforeBind`
 * sees the statement first: binding already opens the files a table function names.
 */
async function prepareSelect(
  connection: DuckDBConnection,
  sql: string,
  beforeBind?: () => Promise<void>,
): Promise<DuckDBPreparedStatement> {
  const statements = await extractStatements(connection, sql);
  if (statements.count !== 1) {
    throw new BadRequestError(`Send exactly one SQL statement; this query has ${statements.count}`);
  }
  await beforeBind?.();
  const prepared = await statements.prepare(0);
  // EXPLAIN is refused too: EXPLAIN ANALYZE executes its statement, COPY and CREATE included.
  if (prepared.statementType !== StatementType.SELECT) {
    const kind = StatementType[prepared.statementType] ?? 'non-SELECT';
    prepared.destroySync();
    throw new BadRequestError(`Only read-only SELECT queries are allowed; this is a ${kind} statement`);
  }
  return prepared;
}

async function extractStatements(connection: DuckDBConnection, sql: string) {
  try {
    return await connection.extractStatements(sql);
  } catch (err) {
    // Input without any statement (blank, only `;` or comments) makes the binding throw a bare
    // "Error in native callback" rather than report zero statements.
    if (!DUCKDB_ERROR.test(stripExtractPrefix(errorMessage(err)))) {
      throw new BadRequestError('The query contains no SQL statement; send exactly one SELECT');
    }
    throw err;
  }
}

/** Rows converted between two checks of the time limit and turns given to other requests. */
const ROWS_PER_SLICE = 512;

/**
 * Streams chunks and converts at most `maxRows` rows and about `maxBytes` bytes of JSON, so a
 * huge result never reaches JS. Conversion runs on the event loop, where no timer can interrupt
 * it: it stops every ROWS_PER_SLICE rows to check the time limit and let other requests run.
 */
async function readRows(result: DuckDBResult, { maxRows, maxBytes }: { maxRows: number; maxBytes: number }, watchdog: Watchdog): Promise<QueryResult> {
  const names = result.deduplicatedColumnNames();
  const columns = result.columnTypes().map((type, i) => ({ name: names[i] ?? `column${i}`, type }));
  const rows: Record<string, unknown>[] = [];
  let bytes = 2;
  let truncatedBy: QueryResult['truncated_by'];
  fetching: for (;;) {
    const chunk = await result.fetchChunk();
    watchdog.throwIfFired();
    if (!chunk || chunk.rowCount === 0) break;
    for (let i = 0; i < chunk.rowCount; i++) {
      if (rows.length >= maxRows) {
        truncatedBy = 'rows';
        break fetching;
      }
      const row = rowObject(chunk.getRowValues(i), columns);
      bytes += Buffer.byteLength(JSON.stringify(row)) + 1;
      if (bytes > maxBytes) {
        truncatedBy = 'bytes';
        break fetching;
      }
      rows.push(row);
      if (rows.length % ROWS_PER_SLICE === 0) {
        await yieldToLoop();
        watchdog.throwIfFired();
      }
    }
  }
  return {
    columns: columns.map(({ name, type }) => ({ name, type: type.toString() })),
    rows,
    row_count: rows.length,
    truncated: truncatedBy !== undefined,
    ...(truncatedBy ? { truncated_by: truncatedBy } : {}),
  };
}

function rowObject(values: DuckDBValue[], columns: { name: string; type: DuckDBType }[]): Record<string, unknown> {
  const row: Record<string, unknown> = {};
  columns.forEach(({ name, type }, i) => {
    row[name] = toJson(values[i] ?? null, type);
  });
  return row;
}

/**
 * Interrupts the connection once the time limit passes, and again every REINTERRUPT_MS until the
 * query unwinds: an interrupt that arrives before DuckDB starts executing (the call may still be
 * queued for a libuv thread) is silently dropped.
 */
class Watchdog {
  fired = false;
  private handle: NodeJS.Timeout;

  constructor(
    private readonly connection: DuckDBConnection,
    timeoutMs: number,
  ) {
    this.handle = setTimeout(() => {
      this.fired = true;
      this.cancel();
    }, timeoutMs);
  }

  cancel(): void {
    clearTimeout(this.handle);
    this.connection.interrupt();
    this.handle = setInterval(() => this.connection.interrupt(), REINTERRUPT_MS);
  }

  /** Catches a limit that passed between two DuckDB calls, where no interrupt could land. */
  throwIfFired(): void {
    if (this.fired) throw new Error('INTERRUPT Error: time limit reached');
  }

  stop(): void {
    clearTimeout(this.handle);
  }
}

/** A counting semaphore whose waiters give up after a deadline. */
class Gate {
  private readonly waiting: (() => void)[] = [];

  constructor(private free: number) {
    if (!(Number.isInteger(free) && free > 0)) throw new Error(`maxConcurrentQueries must be a positive integer, got ${free}`);
  }

  enter(waitMs: number, onTimeout: () => Error): Promise<() => void> {
    if (this.free > 0) {
      this.free--;
      return Promise.resolve(this.releaser());
    }
    return new Promise((resolve, reject) => {
      const admit = (): void => {
        clearTimeout(timer);
        resolve(this.releaser());
      };
      const timer = setTimeout(() => {
        this.waiting.splice(this.waiting.indexOf(admit), 1);
        reject(onTimeout());
      }, waitMs);
      this.waiting.push(admit);
    });
  }

  /** Hands the slot straight to the next waiter, so a newcomer cannot overtake the queue. */
  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next) next();
      else this.free++;
    };
  }
}

// ---------------------------------------------------------------------------------------------
// Errors

function timeoutError(timeoutMs: number): DomainError {
  return new DomainError(`The query did not finish within its ${timeoutMs} ms time limit and was cancelled`, 408, 'Query Timeout');
}

/** DuckDB's "Table with name X does not exist!" (its "Did you mean" may name an internal table: pg_depend…). */
const MISSING_TABLE = /^Catalog Error: Table with name (.+?) does not exist!/;

/**
 * DuckDB's complaint about the user's SQL becomes a 400 with DuckDB's words; anything else stays
 * as it is. A missing table is told in our words: the dataset does not exist, and the nearest
 * names from the catalog (`datasets`), never DuckDB's guesses among its system tables. Column
 * errors keep DuckDB's words: its candidates are the columns of the tables in the query's FROM.
 */
export function translateError(err: unknown, datasets: readonly string[]): unknown {
  if (err instanceof DomainError) return err;
  const summary = summarise(errorMessage(err));
  const missing = MISSING_TABLE.exec(summary)?.[1];
  if (missing !== undefined) return new BadRequestError(missingDataset(missing, datasets));
  const kind = DUCKDB_ERROR.exec(summary)?.[1];
  // INTERNAL and FATAL are DuckDB bugs or a broken instance, not the user's fault: keep them 500s.
  if (kind === undefined || kind === 'INTERNAL' || kind === 'FATAL') return err;
  if (kind === 'INTERRUPT') return new UnavailableError('The query was cancelled because the query engine is closing');
  if (kind === 'Out of Memory') {
    return new DomainError(`The query needs more memory than the query engine may use (LAKEHOUSE_QUERY_MEMORY_MB): ${summary}`, 422, 'Query Too Large');
  }
  if (kind === 'Permission' && /Cannot access (file|directory)/.test(summary)) {
    return new BadRequestError(`The query tried to read outside the data root: ${summary}`);
  }
  return new BadRequestError(summary);
}

/** "dataset x does not exist", then near names from the catalog, or what the catalog holds. */
export function missingDataset(name: string, datasets: readonly string[]): string {
  const near = nearNames(name, datasets);
  const sorted = [...datasets].sort();
  const hint = near.length > 0
    ? ` Did you mean ${near.map((n) => JSON.stringify(n)).join(', ')}?`
    : sorted.length === 0
      ? ' The catalog has no datasets yet.'
      : ` Datasets: ${sorted.slice(0, 20).join(', ')}${sorted.length > 20 ? ', …' : ''}.`;
  return `dataset ${JSON.stringify(name)} does not exist.${hint}`;
}

/** The message up to DuckDB's "LINE 1: ..." excerpt, on one line. */
function summarise(message: string): string {
  const [head = message] = stripExtractPrefix(message).split(/\n\s*\n/);
  return head.replace(/\s*\n\s*/g, ' ').trim().slice(0, 1000);
}

function stripExtractPrefix(message: string): string {
  return message.replace(/^Failed to extract statements: /, '');
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

// ---------------------------------------------------------------------------------------------
// DuckDB values to JSON

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Converts one value by its column type; the node-api value class is fixed by the type id. */
function toJson(value: DuckDBValue, type: DuckDBType): Json {
  if (value === null) return null;
  switch (type.typeId) {
    case DuckDBTypeId.BOOLEAN:
    case DuckDBTypeId.TINYINT:
    case DuckDBTypeId.SMALLINT:
    case DuckDBTypeId.INTEGER:
    case DuckDBTypeId.UTINYINT:
    case DuckDBTypeId.USMALLINT:
    case DuckDBTypeId.UINTEGER:
      return value as boolean | number;
    case DuckDBTypeId.FLOAT:
    case DuckDBTypeId.DOUBLE:
      // JSON has no NaN or Infinity.
      return Number.isFinite(value) ? (value as number) : String(value);
    case DuckDBTypeId.BIGINT:
    case DuckDBTypeId.UBIGINT:
    case DuckDBTypeId.HUGEINT:
    case DuckDBTypeId.UHUGEINT:
    case DuckDBTypeId.BIGNUM:
      return integerToJson(value as bigint);
    case DuckDBTypeId.DECIMAL:
      return decimalToJson(value as DuckDBDecimalValue);
    case DuckDBTypeId.DATE:
      return dateToIso(value as DuckDBDateValue);
    case DuckDBTypeId.TIMESTAMP:
      return timestampToIso(value as DuckDBTimestampValue, (value as DuckDBTimestampValue).micros * 1_000n);
    case DuckDBTypeId.TIMESTAMP_S:
      return timestampToIso(value as DuckDBTimestampSecondsValue, (value as DuckDBTimestampSecondsValue).seconds * 1_000_000_000n);
    case DuckDBTypeId.TIMESTAMP_MS:
      return timestampToIso(value as DuckDBTimestampMillisecondsValue, (value as DuckDBTimestampMillisecondsValue).millis * 1_000_000n);
    case DuckDBTypeId.TIMESTAMP_NS:
      return timestampToIso(value as DuckDBTimestampNanosecondsValue, (value as DuckDBTimestampNanosecondsValue).nanos);
    case DuckDBTypeId.TIMESTAMP_TZ:
      return timestampToIso(value as DuckDBTimestampTZValue, (value as DuckDBTimestampTZValue).micros * 1_000n, 'Z');
    case DuckDBTypeId.BLOB:
    case DuckDBTypeId.GEOMETRY: // WKB bytes
      return Buffer.from((value as DuckDBBlobValue | DuckDBGeometryValue).bytes).toString('base64');
    case DuckDBTypeId.LIST:
    case DuckDBTypeId.ARRAY: {
      const itemType = type.valueType;
      return (value as DuckDBListValue).items.map((item) => toJson(item, itemType));
    }
    case DuckDBTypeId.STRUCT: {
      const { entries } = value as DuckDBStructValue;
      return Object.fromEntries(type.entryNames.map((name, i) => [name, toJson(entries[name] ?? null, type.entryTypes[i]!)]));
    }
    case DuckDBTypeId.MAP:
      // Entries, not an object: map keys need not be strings, and two keys could print alike.
      return (value as DuckDBMapValue).entries.map((e) => ({ key: toJson(e.key, type.keyType), value: toJson(e.value, type.valueType) }));
    case DuckDBTypeId.UNION: {
      const union = value as DuckDBUnionValue;
      return { tag: union.tag, value: toJson(union.value, type.memberTypeForTag(union.tag)) };
    }
    case DuckDBTypeId.VARIANT:
      return fromVariantValue<Json>(value, type, (v, t) => toJson(v, t));
    default:
      // VARCHAR, ENUM, UUID, BIT, INTERVAL and the TIME types: DuckDB's text is already the
      // natural (for TIME, ISO 8601) form.
      return String(value);
  }
}

/** Within ±(2^53 - 1) a JSON number is exact; beyond it, a string keeps every digit. */
function integerToJson(value: bigint): number | string {
  const max = BigInt(Number.MAX_SAFE_INTEGER);
  return value >= -max && value <= max ? Number(value) : value.toString();
}

/** A number only when converting it back to this DECIMAL's scale gives the same value. */
function decimalToJson(value: DuckDBDecimalValue): number | string {
  const text = value.toString();
  const number = Number(text);
  return number.toFixed(value.scale) === text ? number : text;
}

interface FiniteAware {
  readonly isFinite: boolean;
  toString(): string;
}

const NANOS_PER_DAY = 86_400_000_000_000n;

function dateToIso(value: DuckDBDateValue): string {
  if (!value.isFinite) return value.days > 0 ? 'infinity' : '-infinity';
  return isoFromEpochNanos(BigInt(value.days) * NANOS_PER_DAY)?.split('T')[0] ?? value.toString();
}

/** ISO 8601; `zone` is empty for TIMESTAMP, which DuckDB keeps as a wall-clock time. */
function timestampToIso(value: FiniteAware, epochNanos: bigint, zone = ''): string {
  if (!value.isFinite) return epochNanos > 0n ? 'infinity' : '-infinity';
  const iso = isoFromEpochNanos(epochNanos);
  return iso === undefined ? value.toString() : iso + zone;
}

/** `YYYY-MM-DDTHH:MM:SS[.fffffffff]`, or undefined beyond the ±273,790 years a JS Date spans. */
function isoFromEpochNanos(nanos: bigint): string | undefined {
  const millis = floorDiv(nanos, 1_000_000n);
  const date = new Date(Number(millis));
  if (Number.isNaN(date.getTime())) return undefined;
  const iso = date.toISOString(); // ...THH:MM:SS.sssZ
  const subMillis = (nanos - millis * 1_000_000n).toString().padStart(6, '0');
  const fraction = (iso.slice(-4, -1) + subMillis).replace(/0+$/, '');
  return iso.slice(0, -5) + (fraction ? `.${fraction}` : '');
}

function floorDiv(a: bigint, b: bigint): bigint {
  const q = a / b;
  return a % b !== 0n && a < 0n ? q - 1n : q;
}
