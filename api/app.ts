/**
 * The Koa application: small middleware, each doing one thing, then the routes.
 */
import Koa from 'koa';
import { authenticate } from './auth.ts';
import { boardMiddleware } from './board.ts';
import type { ApiDeps } from './deps.ts';
import { problemMiddleware } from './problem.ts';
import { RouteTable } from './route-table.ts';
import { datasetRoutes } from './routes/datasets.ts';
import { autotuneRoutes } from './routes/autotune.ts';
import { indexRoutes } from './routes/indexes.ts';
import { jobRoutes } from './routes/jobs.ts';
import { openapiRoute } from './routes/openapi.ts';
import { queryRoutes } from './routes/query.ts';
import { scheduleRoutes } from './routes/schedules.ts';
import { systemRoutes } from './routes/system.ts';

export const API_VERSION = '0.1.0';

export function createApp(deps: ApiDeps): { app: Koa; routes: RouteTable } {
  const app = new Koa();
  const routes = new RouteTable({ maxBytes: deps.config.http.jsonBodyMaxBytes, timeoutMs: deps.config.http.bodyTimeoutMs });
  systemRoutes(routes, deps);
  jobRoutes(routes, deps);
  scheduleRoutes(routes, deps);
  datasetRoutes(routes, deps);
  queryRoutes(routes, deps);
  indexRoutes(routes, deps);
  autotuneRoutes(routes, deps);
  openapiRoute(routes, API_VERSION);

  // a client leaving an event stream early is how streams end, not an error worth a stack trace
  app.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'ERR_STREAM_PREMATURE_CLOSE') deps.log.warn({ err }, 'response failed');
  });
  app.use(deps.metrics.middleware());
  app.use(problemMiddleware(deps.log));
  app.use(authenticate(deps.keys));
  for (const mw of boardMiddleware(deps.producer, { readOnly: deps.config.boardReadOnly })) app.use(mw);
  app.use(routes.router.routes());
  app.use(routes.router.allowedMethods());
  return { app, routes };
}
