/**
 * Builds the API's dependencies from a Config and listens. Start-up fails early and clearly:
 * no Redis, no keys, a data root that can't be written.
 */
import http from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { Producer } from '../queues/producer.ts';
import { createSealContext } from '../queues/seal-context.ts';
import { ensureGeneratedKey, KeyRing } from '../shared/auth/key-ring.ts';
import type { Config } from '../shared/config.ts';
import type { Logger } from '../shared/logger.ts';
import { createRedis, waitForReady, warnUnlessNoeviction } from '../shared/redis/connection.ts';
import { QueryLog } from '../shared/audit/query-log.ts';
import { IndexSearcher } from '../shared/vectors/index-search.ts';
import { closeProviders } from '../shared/vectors/embedding/provider-cache.ts';
import { auditWriterId, CatalogQuery, queryLimitsOf } from '../shared/sql/catalog-query.ts';
import { Buckets } from '../shared/storage/buckets.ts';
import type { DataRoot } from '../shared/storage/data-root.ts';
import { createApp } from './app.ts';
import type { ApiDeps } from './deps.ts';
import { JobEvents } from './job-events.ts';
import { Metrics } from './metrics.ts';

export interface RunningApi {
  url: string;
  port: number;
  deps: ApiDeps;
  close(): Promise<void>;
}

/** Configured keys, or else the generated admin key from the data root: never an open API. */
export async function loadKeys(config: Config, root: DataRoot, log: Logger): Promise<KeyRing> {
  if (config.apiKeys.length > 0) return new KeyRing(config.apiKeys);
  const generated = await ensureGeneratedKey(root.secretsDir());
  log.warn(
    { file: generated.file },
    `LAKEHOUSE_API_KEYS is not set: ${generated.created ? 'generated' : 'using'} an admin key stored in ${generated.file} (mode 0600). ` +
      `Use it as "Authorization: Bearer $(cat ${generated.file})"; set LAKEHOUSE_API_KEYS for real deployments.`,
  );
  return new KeyRing([{ key: generated.key, role: 'admin' }]);
}

/**
 * Node's own bounds on a connection. The request timeout is one cap for every route, so it is
 * sized for the largest upload; JSON bodies (api/json-body.ts) and uploads (api/upload.ts) have
 * their own tighter bounds. Node checks the timeouts every `connectionsCheckingInterval`, so that
 * follows the smaller one: a slow header trickle is cut within about 1.5× its bound.
 */
export function serverOptions(config: Config): http.ServerOptions {
  const h = config.http;
  return {
    headersTimeout: h.headersTimeoutMs,
    requestTimeout: h.requestTimeoutMs,
    keepAliveTimeout: h.keepAliveTimeoutMs,
    maxHeaderSize: h.maxHeaderBytes,
    connectionsCheckingInterval: Math.max(50, Math.min(30_000, Math.floor(h.headersTimeoutMs / 2))),
  };
}

export async function startApi(config: Config, log: Logger): Promise<RunningApi> {
  const buckets = new Buckets(config.dataDir, config.buckets);
  await buckets.ensure();
  const root = buckets.primary;
  const redis = createRedis(config.redisUrl, 'producer');
  redis.on('error', (err) => log.debug({ err }, 'redis connection error'));
  await waitForReady(redis);
  await warnUnlessNoeviction(redis, log);
  const producer = new Producer(redis, config.queuePrefix, await createSealContext(config, buckets));
  const audit = new QueryLog(path.join(root.root, 'audit'), { writer: auditWriterId() });
  const sql = await CatalogQuery.open(buckets, queryLimitsOf(config), audit);
  const deps: ApiDeps = {
    config,
    root,
    buckets,
    redis,
    producer,
    sql,
    search: new IndexSearcher(buckets, config, sql),
    audit,
    keys: await loadKeys(config, root, log),
    log,
    metrics: new Metrics(producer),
    events: new JobEvents(config),
  };
  const { app } = createApp(deps);
  const server = http.createServer(serverOptions(config), app.callback());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, resolve);
  });
  const port = (server.address() as AddressInfo).port;
  const url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
  log.info({ url, board: `${url}/admin/queues` }, 'API listening');
  return {
    url,
    port,
    deps,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
        setTimeout(() => server.closeAllConnections(), 2_000).unref(); // SSE streams never go idle
      });
      await deps.events.close();
      await producer.close();
      await deps.sql.close();
      await closeProviders();
      await redis.quit().catch(() => {});
    },
  };
}
