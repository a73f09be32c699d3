import { z } from 'zod';
import type { RouteTable } from '../route-table.ts';

export function openapiRoute(table: RouteTable, version: string): void {
  table.add(
    { method: 'get', path: '/openapi.json', tag: 'system', role: 'reader', summary: 'This API described as OpenAPI 3.1, generated from the zod schemas',
      responses: { 200: { description: 'the OpenAPI document', schema: z.record(z.string(), z.unknown()) } } },
    async (ctx) => {
      ctx.body = table.openapi({
        title: 'Lakehouse job cluster API',
        version,
        description: 'Enqueue and watch jobs (ingest, …), query the catalog with SQL. Bull Board: /admin/queues (Basic auth, admin key as password).',
      });
    },
  );
}
