import { z } from 'zod';
import type { AuthState } from '../auth.ts';
import type { ApiDeps } from '../deps.ts';
import type { RouteTable } from '../route-table.ts';

const queryBody = z.object({
  sql: z.string().min(1).max(100_000).describe('one read-only statement (SELECT / WITH / VALUES …); datasets are views by name'),
  max_rows: z.number().int().min(1).optional().describe('at most LAKEHOUSE_QUERY_MAX_ROWS'),
});

export const queryResultSchema = z.object({
  columns: z.array(z.object({ name: z.string(), type: z.string() })),
  rows: z.array(z.record(z.string(), z.unknown())),
  row_count: z.number().int(),
  truncated: z.boolean(),
});

export function queryRoutes(table: RouteTable, deps: ApiDeps): void {
  table.add(
    {
      method: 'post', path: '/query', tag: 'sql', role: 'reader',
      summary: 'Run a read-only SQL query over the catalog (sandboxed: no files outside the datasets, no network, time and row limits)',
      body: queryBody, responses: { 200: { description: 'the result', schema: queryResultSchema } },
    },
    async (ctx, { body }) => {
      ctx.body = await deps.sql.query(body.sql, { maxRows: body.max_rows, role: (ctx.state as AuthState).role! });
    },
  );
}
