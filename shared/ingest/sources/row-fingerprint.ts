/**
 * sha256 over a canonical serialisation of what was fetched: one JSON line naming each column and
 * its DuckDB type, then one JSON array per row, in fetch order, of the cells as the driver gave
 * them (text as-is, bytes as `{"hex": …}`, NULL as null). The same source rows read with the same
 * mapping give the same hash; any changed value, row order, column name or type changes it.
 */
import { createHash, type Hash } from 'node:crypto';
import type { Cell, ColumnPlan } from './interfaces.ts';

export class RowFingerprint {
  private readonly hash: Hash = createHash('sha256');

  constructor(columns: readonly ColumnPlan[]) {
    this.hash.update(JSON.stringify(columns.map((c) => [c.name, c.type])) + '\n');
  }

  add(batch: readonly (readonly Cell[])[]): void {
    for (const row of batch) this.hash.update(JSON.stringify(row.map(canonical)) + '\n');
  }

  hex(): string {
    return this.hash.digest('hex');
  }
}

function canonical(cell: Cell): string | null | { hex: string } {
  if (cell === null || typeof cell === 'string') return cell;
  return { hex: Buffer.from(cell.buffer, cell.byteOffset, cell.byteLength).toString('hex') };
}
