import fs from 'node:fs/promises';
import { z } from 'zod';
import { listWorkers } from '../../shared/cluster/membership.ts';
import type { AuthState } from '../auth.ts';
import type { ApiDeps } from '../deps.ts';
import type { RouteTable } from '../route-table.ts';

const readiness = z.object({ status: z.enum(['ready', 'unavailable']), checks: z.record(z.string(), z.string()) });

async function check(what: () => Promise<unknown>): Promise<string> {
  try {
    await what();
    return 'ok';
  } catch (err) {
    return (err as Error).message;
  }
}

export function systemRoutes(table: RouteTable, deps: ApiDeps): void {
  table.add(
    { method: 'get', path: '/health', tag: 'system', role: 'public', summary: 'Liveness: the process answers (no auth)',
      responses: { 200: { description: 'alive', schema: z.object({ status: z.literal('ok') }) } } },
    async (ctx) => {
      ctx.body = { status: 'ok' };
    },
  );

  table.add(
    // Public like /health because orchestrators' probes cannot send a key; only an
    // authenticated caller sees why a check failed (messages may name hosts and paths).
    { method: 'get', path: '/ready', tag: 'system', role: 'public', summary: 'Readiness: Redis answers and the data root is writable (no auth; failure details need a key)',
      responses: { 200: { description: 'ready', schema: readiness }, 503: { description: 'not ready', schema: readiness } } },
    async (ctx) => {
      const checks = {
        redis: await check(() => deps.redis.ping()),
        data_root: await check(() => fs.access(deps.root.datasetsDir(), fs.constants.W_OK)),
      };
      const ok = Object.values(checks).every((c) => c === 'ok');
      ctx.status = ok ? 200 : 503;
      const detailed = (ctx.state as AuthState).role !== undefined;
      const shown = detailed ? checks : Object.fromEntries(Object.entries(checks).map(([k, v]) => [k, v === 'ok' ? 'ok' : 'failed']));
      ctx.body = { status: ok ? 'ready' : 'unavailable', checks: shown };
    },
  );

  table.add(
    { method: 'get', path: '/workers', tag: 'system', role: 'reader', summary: 'Worker processes alive in the cluster',
      responses: { 200: { description: 'workers', schema: z.object({ workers: z.array(z.object({
        id: z.string(), host: z.string(), pid: z.number(), queues: z.array(z.string()), concurrency: z.number(), started_at: z.string(), last_seen: z.string(),
      })) }) } } },
    async (ctx) => {
      ctx.body = { workers: await listWorkers(deps.redis, deps.config.queuePrefix) };
    },
  );

  table.add(
    { method: 'get', path: '/metrics', tag: 'system', role: 'reader', summary: 'Prometheus metrics: queue depths, job durations, HTTP latency',
      responses: { 200: { description: 'Prometheus text format', contentType: 'text/plain', schema: z.string() } } },
    async (ctx) => {
      ctx.type = deps.metrics.registry.contentType;
      ctx.body = await deps.metrics.registry.metrics();
    },
  );
}
