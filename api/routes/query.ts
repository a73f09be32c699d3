import { z } from 'zod';
import { caller } from '../auth.ts';
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
  truncated_by: z.enum(['rows', 'bytes']).optional().describe('which limit cut the result: max_rows / LAKEHOUSE_QUERY_MAX_ROWS, or LAKEHOUSE_QUERY_MAX_RESULT_MB'),
});

export function queryRoutes(table: RouteTable, deps: ApiDeps): void {
  table.add(
    {
      method: 'post', path: '/query', tag: 'sql', role: 'reader',
      summary: 'Run a read-only SQL query over the catalog (sandboxed: no files outside the datasets, no network; time, row, byte and memory limits; readers see masked PII, see SECURITY.md)',
      body: queryBody, responses: { 200: { description: 'the result', schema: queryResultSchema } },
    },
    async (ctx, { body }) => {
      ctx.body = await deps.sql.query(body.sql, caller(ctx), body.max_rows);
    },
  );

  table.add(
    {
      method: 'get', path: '/audit/queries', tag: 'sql', role: 'admin',
      summary: 'The query audit log, newest first: who, when, datasets and PII columns touched, outcome',
      query: z.object({
        limit: z.coerce.number().int().min(1).max(1000).default(100),
        before: z.string().max(100).optional().describe('an entry id (next_before of the previous page) or an ISO time'),
        since: z.iso.datetime().optional(),
      }),
      responses: { 200: { description: 'a page of entries', schema: z.object({ entries: z.array(z.record(z.string(), z.unknown())), next_before: z.string().nullable() }) } },
    },
    async (ctx, { query }) => {
      const entries = await deps.audit.list({ limit: query.limit, ...(query.before ? { before: query.before } : {}), ...(query.since ? { since: query.since } : {}) });
      ctx.body = { entries, next_before: entries.length === query.limit ? entries[entries.length - 1]!.id : null };
    },
  );
}
