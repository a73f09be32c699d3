/**
 * SQL text our own code writes: quoting of strings and identifiers, and identifier folding as
 * DuckDB does it (ASCII only; SECURITY.md, "SQL"). One home, so every statement we build quotes
 * the same way.
 */

/** `'it''s'`: a string literal. */
export function quoteString(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/** `"a ""b"""`: an identifier, whatever its characters. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** Lower case for A–Z only: DuckDB folds identifiers this way, JS `toLowerCase` folds more. */
export function asciiLower(name: string): string {
  return name.replace(/[A-Z]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 32));
}

/** What readers see in place of a masked value. */
export const MASK = '***';
