import type { Redis } from 'ioredis';
import type { Producer } from '../queues/producer.ts';
import type { QueryLog } from '../shared/audit/query-log.ts';
import type { KeyRing } from '../shared/auth/key-ring.ts';
import type { Config } from '../shared/config.ts';
import type { Logger } from '../shared/logger.ts';
import type { CatalogQuery } from '../shared/sql/catalog-query.ts';
import type { Buckets } from '../shared/storage/buckets.ts';
import type { DataRoot } from '../shared/storage/data-root.ts';
import type { IndexSearcher } from '../shared/vectors/index-search.ts';
import type { JobEvents } from './job-events.ts';
import type { Metrics } from './metrics.ts';

/** What the routes are given: built once by server.ts, replaceable in tests. */
export interface ApiDeps {
  config: Config;
  /** The primary data root (staging, inbox, secrets, audit live here). */
  root: DataRoot;
  buckets: Buckets;
  redis: Redis;
  producer: Producer;
  sql: CatalogQuery;
  audit: QueryLog;
  search: IndexSearcher;
  keys: KeyRing;
  log: Logger;
  metrics: Metrics;
  events: JobEvents;
}
