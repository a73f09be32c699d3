/**
 * Reads a query's parse tree — DuckDB's own, from `json_serialize_sql` — to learn what it touches
 * and to decide whether a reader may run it.
 *
 * Terms used below:
 * - tree: the JSON `json_serialize_sql(sql)` returns; parsing only, nothing is bound or read.
 * - source: one relation in a FROM clause, known by its alias (or its name when it has none);
 *   a source is a dataset when it names a catalog view, otherwise a CTE, subquery, VALUES list….
 * - scope: the sources and CTE names one query node can see; a subquery's scope has its enclosing
 *   query's scope as parent, which is how correlated column references resolve.
 * - refusal: a reason a reader may not run the query. The guard is an allow-list (SECURITY.md,
 *   "SQL"): the tree may hold only catalog dataset names (plain ASCII identifiers, unqualified or
 *   qualified with the masked schema), names of CTEs in scope whose bodies are themselves checked,
 *   subqueries and VALUES lists, and calls of functions on the allowed list (unqualified): no table
 *   functions (read_parquet, glob, query…), no settings, catalog or file functions, no other schema
 *   or catalog, and no node the walker does not recognise (fail closed).
 * - plain identifier: `^[A-Za-z_][A-Za-z0-9_]*$`. Names are folded to lower case byte-wise (ASCII
 *   only), as DuckDB folds them; JS `toLowerCase` folds some non-ASCII letters (the Kelvin sign
 *   U+212A becomes `k`) where DuckDB does not, so a name could pass the check and mean something else.
 * - CTE scope: a CTE sees those defined before it in the same WITH, and itself only when its body
 *   is a recursive (UNION) CTE; DuckDB resolves any other self-reference to a real table or file.
 *
 * Column references are attributed without binding, so they over-approximate: an unqualified
 * column counts for every dataset source of the nearest scope that has a column of that name, and
 * `*` counts every column of the datasets in its own FROM clause (not those behind a subquery or a
 * CTE, whose own select lists are counted where they are written).
 */
import { BadRequestError } from '../errors.ts';
import { asciiLower } from './sql-text.ts';
import { nearNames } from '../catalog/near-names.ts';

export interface ColumnRef {
  dataset: string;
  column: string;
}

/** What a query reads, for the audit log. Sorted, without duplicates. */
export interface QueryReferences {
  datasets: string[];
  columns: ColumnRef[];
}

/** The datasets a query may name, each with its columns as DuckDB spells them. */
export type DatasetColumns = ReadonlyMap<string, readonly string[]>;

export interface TableFunctionCall {
  name: string;
  /** String constants among its arguments: file paths and glob patterns, usually. */
  strings: string[];
}

/** What one walk of a tree found. */
export interface QueryShape {
  /** Dataset name → the columns of it the query references. */
  columns: Map<string, Set<string>>;
  tableFunctions: TableFunctionCall[];
  /** Why a reader may not run this query; empty when it may. */
  refusals: string[];
}

type Json = null | boolean | number | string | Json[] | JsonObject;
interface JsonObject {
  [key: string]: Json;
}

interface Source {
  /** Lower-case alias, or name when there is no alias. */
  alias: string;
  dataset?: string;
  /** Lower-case visible column name → the dataset's column; only for dataset sources. */
  visible?: Map<string, string>;
}

interface Scope {
  parent?: Scope;
  ctes: Set<string>;
  sources: Source[];
}

const PLAIN_IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Window-only functions, which DuckDB does not list in duckdb_functions(). */
const WINDOW_FUNCTIONS = new Set([
  'row_number', 'rank', 'dense_rank', 'rank_dense', 'percent_rank', 'cume_dist', 'ntile',
  'lag', 'lead', 'first_value', 'last_value', 'nth_value', 'fill',
]);
const QUERY_NODES = new Set(['SELECT_NODE', 'SET_OPERATION_NODE', 'RECURSIVE_CTE_NODE']);
/** Objects with a `type` the walker may step through without knowing more. */
const PLAIN_TYPES = new Set([
  'ORDER_MODIFIER', 'LIMIT_MODIFIER', 'LIMIT_PERCENT_MODIFIER', 'DISTINCT_MODIFIER',
  'ORDER_DEFAULT', 'ASCENDING', 'DESCENDING',
]);
const EXPRESSION_CLASSES = new Set([
  'COLUMN_REF', 'CONSTANT', 'FUNCTION', 'STAR', 'COMPARISON', 'CONJUNCTION', 'OPERATOR', 'CASE', 'CAST',
  'SUBQUERY', 'WINDOW', 'LAMBDA', 'BETWEEN', 'COLLATE', 'PARAMETER', 'POSITIONAL_REFERENCE',
]);

/**
 * Walks `treeJson` (the text `json_serialize_sql` returned for `sql`). `readerSchema` is the one
 * schema a reader may name. Throws BadRequestError when the text holds no single SELECT.
 */
export function analyseTree(treeJson: string, datasets: DatasetColumns, readerSchema: string, functions?: ReadonlySet<string>): QueryShape {
  const tree = JSON.parse(treeJson) as JsonObject;
  if (tree['error'] === true) throw treeError(tree);
  const statements = tree['statements'];
  if (!Array.isArray(statements) || statements.length !== 1) {
    throw new BadRequestError(`Send exactly one SQL statement; this query has ${Array.isArray(statements) ? statements.length : 0}`);
  }
  const walker = new TreeWalker(datasets, readerSchema, functions);
  walker.walk(statements[0] ?? null, { ctes: new Set(), sources: [] });
  return walker.shape;
}

/** Throws the first refusal, if any, as a 400 that says what readers may do instead. */
export function assertReaderMayRun(shape: QueryShape): void {
  const [first, ...more] = shape.refusals;
  if (first === undefined) return;
  const also = more.length > 0 ? ` (and ${more.length} more problem${more.length > 1 ? 's' : ''})` : '';
  throw new BadRequestError(`Readers may only query catalog datasets by name: ${first}${also}`);
}

/** The shape's columns as sorted lists; `extra` adds datasets read through table functions. */
export function toReferences(shape: QueryShape, extra: ReadonlyMap<string, readonly string[]> = new Map()): QueryReferences {
  const merged = new Map<string, Set<string>>();
  for (const [dataset, columns] of [...shape.columns, ...extra]) {
    const set = merged.get(dataset) ?? new Set<string>();
    for (const column of columns) set.add(column);
    merged.set(dataset, set);
  }
  const datasets = [...merged.keys()].sort();
  const columns = datasets.flatMap((dataset) => [...(merged.get(dataset) ?? [])].sort().map((column) => ({ dataset, column })));
  return { datasets, columns };
}

function treeError(tree: JsonObject): BadRequestError {
  if (tree['error_type'] === 'parser') return new BadRequestError(`Parser Error: ${String(tree['error_message'])}`);
  // json_serialize_sql serialises SELECT statements only; everything else lands here.
  return new BadRequestError('Only read-only SELECT queries are allowed');
}

class TreeWalker {
  readonly shape: QueryShape = { columns: new Map(), tableFunctions: [], refusals: [] };

  constructor(
    private readonly datasets: DatasetColumns,
    private readonly readerSchema: string,
    /** Functions a reader may call (lower case); undefined when only references are wanted. */
    private readonly functions?: ReadonlySet<string>,
  ) {}

  /** Steps through anything; nodes that carry meaning go to their handlers. */
  walk(value: Json, scope: Scope): void {
    if (Array.isArray(value)) {
      for (const item of value) this.walk(item, scope);
      return;
    }
    if (value === null || typeof value !== 'object' || isOpaque(value)) return;
    const type = value['type'];
    if (typeof value['class'] === 'string') this.expression(value, scope);
    else if (typeof type !== 'string' || PLAIN_TYPES.has(type)) this.walkFields(value, scope, []);
    else if (QUERY_NODES.has(type)) this.queryNode(value, scope);
    // Table references are reached only through FROM handling; one anywhere else is not understood.
    else this.refuse(`the query uses ${type} here, which the guard does not understand`);
  }

  private walkFields(node: JsonObject, scope: Scope, skip: string[]): void {
    for (const [key, child] of Object.entries(node)) if (!skip.includes(key)) this.walk(child, scope);
  }

  private queryNode(node: JsonObject, outer: Scope): void {
    const scope: Scope = { parent: outer, ctes: new Set(), sources: [] };
    // Each CTE sees those before it, never those after, and itself only when recursive.
    for (const entry of asArray(asObject(node['cte_map'])?.['map'])) {
      const key = asObject(entry)?.['key'];
      const value = asObject(entry)?.['value'] ?? null;
      const name = this.identifier(key, 'CTE');
      const recursive = asObject(asObject(asObject(value)?.['query'])?.['node'])?.['type'] === 'RECURSIVE_CTE_NODE';
      if (recursive) scope.ctes.add(name);
      this.walk(value, scope);
      scope.ctes.add(name);
    }
    if (node['type'] === 'SELECT_NODE') {
      const from = asObject(node['from_table']);
      if (!from) this.refuse('a SELECT without a FROM node');
      else {
        this.collectSources(from, scope);
        this.tableRef(from, scope);
      }
    }
    for (const modifier of asArray(node['modifiers'])) this.modifier(modifier, scope);
    this.walkFields(node, scope, ['cte_map', 'from_table', 'modifiers']);
  }

  /** `ORDER BY ALL` arrives as a bare `COLUMNS(*)`; it orders the select list, it reads nothing more. */
  private modifier(modifier: Json, scope: Scope): void {
    const node = asObject(modifier);
    if (node?.['type'] !== 'ORDER_MODIFIER') return this.walk(modifier, scope);
    for (const order of asArray(node['orders'])) {
      const expression = asObject(asObject(order)?.['expression']);
      const orderByAll = expression?.['class'] === 'STAR' && expression['columns'] === true && expression['expr'] === null;
      if (!orderByAll) this.walk(order, scope);
    }
  }

  /** Registers what a FROM clause makes visible before its parts are walked (LATERAL sees left). */
  private collectSources(ref: JsonObject, scope: Scope): void {
    const alias = lower(ref['alias']);
    switch (ref['type']) {
      case 'BASE_TABLE': {
        const name = lower(ref['table_name']);
        const cte = !ref['schema_name'] && !ref['catalog_name'] && isCte(name, scope);
        const columns = cte ? undefined : this.datasets.get(name);
        const source: Source = { alias: alias || name };
        if (columns) {
          source.dataset = name;
          source.visible = visibleColumns(columns, asArray(ref['column_name_alias']).map(lower));
        }
        scope.sources.push(source);
        return;
      }
      case 'JOIN':
        for (const side of [ref['left'], ref['right']]) {
          const child = asObject(side);
          if (child) this.collectSources(child, scope);
        }
        return;
      case 'PIVOT': {
        const source = asObject(ref['source']);
        if (source) this.collectSources(source, scope);
        scope.sources.push({ alias });
        return;
      }
      default:
        scope.sources.push({ alias });
    }
  }

  private tableRef(ref: JsonObject, scope: Scope): void {
    switch (ref['type']) {
      case 'BASE_TABLE':
        this.baseTable(ref, scope);
        return this.walkFields(ref, scope, ['table_name', 'schema_name', 'catalog_name', 'column_name_alias']);
      case 'JOIN':
        return this.join(ref, scope);
      case 'SUBQUERY':
        return this.walkFields(ref, scope, ['column_name_alias']);
      case 'EXPRESSION_LIST':
      case 'EMPTY':
        return this.walkFields(ref, scope, []);
      case 'TABLE_FUNCTION':
        return this.tableFunction(ref, scope);
      case 'PIVOT':
        return this.pivot(ref, scope);
      case 'SHOW_REF':
        // DESCRIBE / SUMMARIZE carry the query they describe; SHOW TABLES and friends do not.
        if (ref['query'] === null) return this.refuse(`SHOW ${String(ref['table_name'])}`);
        return this.walk(ref['query'] ?? null, scope);
      default:
        return this.refuse(`a ${String(ref['type'])} table reference, which the guard does not understand`);
    }
  }

  private baseTable(ref: JsonObject, scope: Scope): void {
    const name = this.identifier(ref['table_name'], 'table');
    const schema = lower(ref['schema_name']);
    const catalog = lower(ref['catalog_name']);
    if (ref['at_clause'] !== null && ref['at_clause'] !== undefined) this.refuse(`AT (…) on "${name}"`);
    if (!schema && !catalog && isCte(name, scope)) return;
    if (catalog || (schema && schema !== this.readerSchema)) {
      this.refuse(`"${[catalog, schema, name].filter(Boolean).join('.')}" names a schema or catalog`);
    }
    if (!this.datasets.has(name)) this.refuse(`"${name}" is not a dataset${nearDatasets(name, [...this.datasets.keys()])}`);
    else this.touched(name);
  }

  private join(ref: JsonObject, scope: Scope): void {
    for (const side of [ref['left'], ref['right']]) {
      const child = asObject(side);
      if (child) this.tableRef(child, scope);
      else this.refuse('a JOIN without two sides');
    }
    for (const column of asArray(ref['using_columns'])) this.columnRef([lower(column)], scope);
    if (ref['ref_type'] === 'NATURAL') this.naturalJoinColumns(scope);
    this.walkFields(ref, scope, ['left', 'right', 'using_columns']);
  }

  /** NATURAL JOIN compares every column name its sides share. */
  private naturalJoinColumns(scope: Scope): void {
    const seen = new Map<string, Source[]>();
    for (const source of scope.sources) {
      for (const visible of source.visible?.keys() ?? []) seen.set(visible, [...(seen.get(visible) ?? []), source]);
    }
    for (const [visible, sources] of seen) {
      if (sources.length > 1) for (const source of sources) this.touchVisible(source, visible);
    }
  }

  private tableFunction(ref: JsonObject, scope: Scope): void {
    const call = asObject(ref['function']);
    const name = String(call?.['function_name'] ?? 'unknown');
    this.refuse(`the table function ${name}()`);
    this.shape.tableFunctions.push({ name, strings: stringConstants(call?.['children'] ?? null) });
    this.walkFields(ref, scope, ['column_name_alias']);
  }

  /** A PIVOT passes every column it does not pivot through as a group: count them all. */
  private pivot(ref: JsonObject, scope: Scope): void {
    const source = asObject(ref['source']);
    if (!source) return this.refuse('a PIVOT without a source');
    this.tableRef(source, scope);
    const inner: Scope = { ctes: new Set(), sources: [] };
    this.collectSources(source, inner);
    for (const s of inner.sources) this.touchAll(s);
    this.walkFields(ref, scope, ['source']);
  }

  private expression(node: JsonObject, scope: Scope): void {
    const kind = String(node['class']);
    if (!EXPRESSION_CLASSES.has(kind)) return this.refuse(`a ${kind} expression, which the guard does not understand`);
    if (kind === 'CONSTANT') return;
    if (kind === 'FUNCTION' || kind === 'WINDOW') this.functionCall(node);
    if (kind === 'COLUMN_REF') return this.columnRef(asArray(node['column_names']).map(lower), scope);
    if (kind === 'STAR') this.star(node, scope);
    this.walkFields(node, scope, []);
  }

  /** Only unqualified calls of allowed functions; operators (`+`, `~~`, `[]`) are functions too. */
  private functionCall(node: JsonObject): void {
    if (!this.functions) return;
    const raw = node['function_name'];
    const name = lower(raw);
    const qualified = [node['schema'], node['catalog']].some((part) => typeof part === 'string' && part !== '');
    const allowed = this.functions.has(name) || (node['class'] === 'WINDOW' && WINDOW_FUNCTIONS.has(name));
    if (qualified) this.refuse(`the qualified function ${JSON.stringify(raw)}`);
    else if (!allowed || !isAscii(raw)) this.refuse(`the function ${JSON.stringify(raw)}()`);
  }

  /** A relation or CTE name: a plain identifier, else refused (paths, quoted oddities, non-ASCII). */
  private identifier(value: Json | undefined, what: string): string {
    const name = lower(value);
    if (typeof value !== 'string' || !PLAIN_IDENTIFIER.test(value)) this.refuse(`the ${what} name ${JSON.stringify(value)} is not a plain identifier`);
    return name;
  }

  private columnRef(names: string[], scope: Scope): void {
    // alias.column, schema.alias.column …: the name after a source's alias is its column.
    for (let i = 0; i < names.length - 1; i++) {
      const source = findSource(names[i] ?? '', scope);
      if (source) return this.touchVisible(source, names[i + 1] ?? '');
    }
    // column, or column.field… (struct access)
    const column = names[0] ?? '';
    for (let s: Scope | undefined = scope; s; s = s.parent) {
      const owners = s.sources.filter((source) => source.visible?.has(column));
      if (owners.length > 0) return owners.forEach((source) => this.touchVisible(source, column));
      // `SELECT sales FROM sales` is the whole row as a struct.
      const row = s.sources.find((source) => source.alias === column && source.dataset);
      if (row) return this.touchAll(row);
    }
  }

  private star(node: JsonObject, scope: Scope): void {
    const relation = lower(node['relation_name']);
    const sources = relation ? scope.sources.filter((s) => s.alias === relation) : scope.sources;
    // COLUMNS('regex') and COLUMNS(lambda) are counted as every column: RE2 is not JS's regex.
    const left = new Set([...asArray(node['exclude_list']), ...asArray(node['replace_list']).map((r) => asObject(r)?.['key'] ?? null)].map(lower));
    for (const source of sources) {
      for (const visible of source.visible?.keys() ?? []) if (!left.has(visible)) this.touchVisible(source, visible);
    }
  }

  private touchVisible(source: Source, visible: string): void {
    const column = source.visible?.get(visible);
    if (source.dataset && column !== undefined) this.touched(source.dataset).add(column);
  }

  private touchAll(source: Source): void {
    for (const visible of source.visible?.keys() ?? []) this.touchVisible(source, visible);
  }

  private touched(dataset: string): Set<string> {
    let columns = this.shape.columns.get(dataset);
    if (!columns) this.shape.columns.set(dataset, (columns = new Set()));
    return columns;
  }

  private refuse(reason: string): void {
    this.shape.refusals.push(reason);
  }
}

function isCte(name: string, scope: Scope): boolean {
  for (let s: Scope | undefined = scope; s; s = s.parent) if (s.ctes.has(name)) return true;
  return false;
}

function findSource(alias: string, scope: Scope): Source | undefined {
  for (let s: Scope | undefined = scope; s; s = s.parent) {
    const found = s.sources.find((source) => source.alias === alias);
    if (found) return found;
  }
  return undefined;
}

/** `FROM sales AS s(a, b)` renames the first columns by position. */
function visibleColumns(columns: readonly string[], renamed: string[]): Map<string, string> {
  return new Map(columns.map((column, i) => [renamed[i] ?? column.toLowerCase(), column]));
}

/** Logical types and constant values: nothing below them can name a table or a column. */
function isOpaque(node: JsonObject): boolean {
  return ('id' in node && 'type_info' in node) || ('is_null' in node && typeof node['type'] === 'object');
}

function stringConstants(value: Json): string[] {
  if (Array.isArray(value)) return value.flatMap(stringConstants);
  const node = asObject(value);
  if (!node) return [];
  if (node['class'] === 'CONSTANT') {
    const inner = asObject(node['value'])?.['value'];
    return typeof inner === 'string' ? [inner] : [];
  }
  return Object.values(node).flatMap(stringConstants);
}

function asObject(value: Json | undefined): JsonObject | undefined {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? value : undefined;
}

function asArray(value: Json | undefined): Json[] {
  return Array.isArray(value) ? value : [];
}

/** ASCII-only lower case, as DuckDB folds identifiers (see "plain identifier" above). */
function lower(value: Json | undefined): string {
  return typeof value === 'string' ? asciiLower(value) : '';
}

function isAscii(value: Json | undefined): boolean {
  return typeof value === 'string' && /^[\x20-\x7e]*$/.test(value);
}

/** " (did you mean "a", "b"?)" from the catalog's names, or "". */
function nearDatasets(name: string, datasets: readonly string[]): string {
  const near = nearNames(name, datasets);
  return near.length === 0 ? '' : ` (did you mean ${near.map((n) => JSON.stringify(n)).join(', ')}?)`;
}
