/**
 * Builds the one SELECT that runs on a source. Identifiers are validated and quoted per dialect;
 * the incremental `since` is always a bound parameter, never part of the SQL text.
 */
import { BadRequestError } from '../../errors.ts';
import type { DbSourceSpec } from './db-source.ts';
import type { Statement } from './interfaces.ts';

export const TABLE_NAME = /^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$/;
export const COLUMN_NAME = /^[A-Za-z_][A-Za-z0-9_$]*$/;

export interface Dialect {
  quote(identifier: string): string;
  /** SQL standing for the bound `since` value, e.g. `$1` or `?`. */
  param: string;
}

export const postgresDialect: Dialect = { quote: (id) => `"${id.replace(/"/g, '""')}"`, param: '$1' };
export const mysqlDialect: Dialect = { quote: (id) => `\`${id.replace(/`/g, '``')}\``, param: '?' };

/** Alias of a wrapped query, so the incremental column can be named unambiguously. */
const WRAPPED = 'lakehouse_src';

export type SelectSpec = Pick<DbSourceSpec, 'table' | 'query' | 'incremental'>;

/**
 * `SELECT * FROM <table>` or the query itself; with `incremental`, rows whose column is above
 * `since` (or not NULL, on a first run), in column order. A query is wrapped as a subquery, on
 * its own lines so that a trailing `--` comment cannot swallow the closing parenthesis.
 */
export function buildStatement(spec: SelectSpec, dialect: Dialect): Statement {
  const { from, column } = parts(spec, dialect);
  if (!spec.incremental || column === undefined) {
    return { sql: spec.table !== undefined ? `SELECT * FROM ${from}` : trimQuery(spec.query), params: [] };
  }
  const since = spec.incremental.since;
  const first = since === undefined || since === null;
  return {
    sql: `SELECT * FROM ${from} WHERE ${column} ${first ? 'IS NOT NULL' : `> ${dialect.param}`} ORDER BY ${column}`,
    params: first ? [] : [since],
  };
}

/** A statement that returns no rows but the incremental column's metadata. */
export function probeIncrementalColumn(spec: SelectSpec, dialect: Dialect): string {
  const { from, column } = parts(spec, dialect);
  if (column === undefined) throw new Error('probeIncrementalColumn needs spec.incremental');
  return `SELECT ${column} FROM ${from} WHERE 1 = 0`;
}

function parts(spec: SelectSpec, dialect: Dialect): { from: string; column: string | undefined } {
  const inc = spec.incremental?.column;
  if (spec.table !== undefined) {
    return { from: spec.table.split('.').map(dialect.quote).join('.'), column: inc === undefined ? undefined : dialect.quote(inc) };
  }
  return {
    from: `(\n${trimQuery(spec.query)}\n) AS ${WRAPPED}`,
    column: inc === undefined ? undefined : `${WRAPPED}.${dialect.quote(inc)}`,
  };
}

/** Drops trailing semicolons, which are statement separators, not part of a subquery. */
function trimQuery(query: string | undefined): string {
  const trimmed = (query ?? '').replace(/[\s;]+$/, '').trim();
  if (trimmed === '') throw new BadRequestError('the source query is empty');
  return trimmed;
}
