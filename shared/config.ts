/**
 * The one place the environment is read. Every variable is documented in README.md and
 * .env.example; a bad value stops start-up naming the variable and what was expected.
 */
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { checkBaseUrl, readNamedEndpoints, type NamedEndpoint } from './outbound/named-endpoints.ts';

const MiB = 1024 * 1024;

const int = (fallback: number, min = 0) => z.coerce.number().int().min(min).default(fallback);

const apiKeys = z
  .string()
  .default('')
  .transform((raw, ctx) => {
    const keys: { key: string; role: Role }[] = [];
    for (const entry of raw.split(',').map((s) => s.trim()).filter(Boolean)) {
      const cut = entry.lastIndexOf(':');
      const key = entry.slice(0, cut);
      const role = entry.slice(cut + 1);
      if (cut <= 0 || !ROLES.includes(role as Role)) {
        ctx.addIssue({ code: 'custom', message: `expected key:role with role one of ${ROLES.join('|')}, got an entry ending in "${role}"` });
        return z.NEVER;
      }
      if (key.length < 16) {
        ctx.addIssue({ code: 'custom', message: 'every key must be at least 16 characters long' });
        return z.NEVER;
      }
      keys.push({ key, role: role as Role });
    }
    return keys;
  });

export const ROLES = ['admin', 'writer', 'reader'] as const;
export type Role = (typeof ROLES)[number];

export const configSchema = z.object({
  REDIS_URL: z.string().regex(/^rediss?:\/\//, 'a redis:// or rediss:// URL').default('redis://127.0.0.1:6379'),
  LAKEHOUSE_DATA_DIR: z.string().min(1).default('./data'),
  PORT: int(3100).pipe(z.number().max(65535)),
  LAKEHOUSE_HOST: z.string().min(1).default('127.0.0.1'),
  LAKEHOUSE_API_KEYS: apiKeys,
  LAKEHOUSE_QUEUE_PREFIX: z.string().regex(/^[A-Za-z0-9_{}:-]+$/, 'letters, digits, _ - : { }').default('lakehouse'),
  LAKEHOUSE_UPLOAD_MAX_BYTES: int(512 * MiB, 1),
  LAKEHOUSE_INGEST_MAX_REJECTS: int(10_000, 0),
  LAKEHOUSE_QUERY_TIMEOUT_MS: int(30_000, 1),
  LAKEHOUSE_QUERY_MAX_ROWS: int(10_000, 1),
  LAKEHOUSE_QUERY_MAX_RESULT_MB: int(32, 1),
  LAKEHOUSE_QUERY_MEMORY_MB: int(1_024, 64),
  LAKEHOUSE_QUERY_THREADS: int(Math.min(2, os.availableParallelism()), 1),
  LAKEHOUSE_QUERY_TEMP_MAX_MB: int(4_096, 0),
  LAKEHOUSE_SEARCH_FILTER_MAX_ROWS: int(200_000, 1),
  LAKEHOUSE_SEARCH_MAX_EF: int(4_096, 16),
  LAKEHOUSE_WORKER_CONCURRENCY: int(2, 1),
  LAKEHOUSE_QUEUES: z.string().regex(/^[a-z,-]+$/, 'a comma-separated list of queue names, or all').default('all'),
  LAKEHOUSE_SHUTDOWN_TIMEOUT_MS: int(30_000, 0),
  LAKEHOUSE_PRIVATE_REDIS: z.enum(['auto', 'never']).default('auto'),
  LAKEHOUSE_BUCKETS: z
    .string()
    .default('')
    .transform((raw, ctx) => {
      const buckets: { name: string; path: string }[] = [];
      for (const entry of raw.split(',').map((s) => s.trim()).filter(Boolean)) {
        const cut = entry.indexOf(':');
        const name = entry.slice(0, cut);
        const dir = entry.slice(cut + 1);
        if (cut <= 0 || !/^[a-z][a-z0-9_]{0,62}$/.test(name) || name === 'primary' || !dir) {
          ctx.addIssue({ code: 'custom', message: `expected name:path (name lower-case, not "primary"), got "${entry}"` });
          return z.NEVER;
        }
        buckets.push({ name, path: path.resolve(dir) });
      }
      return buckets;
    }),
  LAKEHOUSE_INBOX_POLL_MS: int(10_000, 100),
  LAKEHOUSE_TRASH_DAYS: int(7, 0),
  LAKEHOUSE_SECRET_KEY: z.preprocess(
    (v) => (v === '' ? undefined : v), // an empty line copied from .env.example means "unset"
    z.string().regex(/^[A-Za-z0-9+/_=-]{32,}$/, 'at least 32 base64/base64url characters (e.g. openssl rand -base64 32)').optional(),
  ),
  LAKEHOUSE_OLLAMA_URL: z.url().default('http://127.0.0.1:11434'),
  LAKEHOUSE_OPENAI_URL: z.url().default('https://api.openai.com'),
  OPENAI_API_KEY: z.preprocess((v) => (v === '' ? undefined : v), z.string().optional()),
  LAKEHOUSE_ALLOW_JOB_DSN: z.enum(['true', 'false']).default('false').transform((v) => v === 'true'),
  LAKEHOUSE_EMBED_THREADS: int(Math.min(2, os.availableParallelism()), 1),
  LAKEHOUSE_EMBED_TIMEOUT_MS: int(60_000, 1),
  LAKEHOUSE_EMBED_SHARD_CHUNKS: int(2_000, 1),
  LAKEHOUSE_EMBED_MAX_RETRIES: int(3, 0),
  LAKEHOUSE_EMBED_BATCH_SIZE: int(32, 1),
  LAKEHOUSE_EMBED_ERROR_BODY_CHARS: int(200, 0),
  LAKEHOUSE_INDEX_CACHE_MB: int(4_096, 16),
  LAKEHOUSE_INDEX_LEASE_WAIT_MS: int(5_000, 0),
  LAKEHOUSE_INDEX_LEASE_RETRY_MS: int(2_000, 10),
  LAKEHOUSE_INDEX_LEASE_MAX_WAIT_MS: int(6 * 3600_000, 1),
  LAKEHOUSE_INDEX_LEASE_TTL_MS: int(30_000, 1_000),
  LAKEHOUSE_HTTP_HEADERS_TIMEOUT_MS: int(20_000, 100),
  LAKEHOUSE_HTTP_REQUEST_TIMEOUT_MS: int(3_600_000, 100),
  LAKEHOUSE_HTTP_BODY_TIMEOUT_MS: int(30_000, 100),
  LAKEHOUSE_UPLOAD_IDLE_TIMEOUT_MS: int(60_000, 100),
  LAKEHOUSE_HTTP_KEEPALIVE_TIMEOUT_MS: int(5_000, 0),
  LAKEHOUSE_HTTP_MAX_HEADER_BYTES: int(16_384, 1_024),
  LAKEHOUSE_JSON_BODY_MAX_BYTES: int(MiB, 1),
  LAKEHOUSE_BULK_BODY_MAX_BYTES: int(64 * MiB, 1),
  LAKEHOUSE_SSE_MAX_STREAMS_PER_KEY: int(20, 1),
  LAKEHOUSE_SSE_MAX_LIFETIME_MS: int(3_600_000, 1_000),
  LAKEHOUSE_SWEEP_INTERVAL_MS: int(15 * 60_000, 1_000),
  LAKEHOUSE_SWEEP_GRACE_MS: int(24 * 3_600_000, 0),
  LAKEHOUSE_BOARD_READONLY: z.enum(['true', 'false']).default('false').transform((v) => v === 'true'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export type RawConfig = z.output<typeof configSchema>;

export interface Config {
  redisUrl: string;
  dataDir: string;
  port: number;
  host: string;
  apiKeys: { key: string; role: Role }[];
  queuePrefix: string;
  uploadMaxBytes: number;
  /** Most bad CSV/TSV records an `on_error: "skip"` ingest may leave out before it fails instead. */
  ingestMaxRejects: number;
  queryTimeoutMs: number;
  queryMaxRows: number;
  /** Bytes of JSON one query result may carry; rows beyond are cut off. */
  queryMaxResultBytes: number;
  /** DuckDB memory_limit of each query engine (full and reader), in MiB. */
  queryMemoryMb: number;
  /** DuckDB threads of each query engine. */
  queryThreads: number;
  /** Most a query engine may spill to disk, in MiB (0: no spilling). */
  queryTempMaxMb: number;
  /** Most source rows (documents) a hybrid-search filter may select. */
  searchFilterMaxRows: number;
  /** Largest ef a search may ask for or widen to. */
  searchMaxEf: number;
  workerConcurrency: number;
  /** Queues `lakehouse worker` serves when --queues is not given (raw list, checked by the registry). */
  workerQueues: string;
  shutdownTimeoutMs: number;
  privateRedis: 'auto' | 'never';
  logLevel: RawConfig['LOG_LEVEL'];
  /** Extra storage roots besides `primary` (= dataDir). */
  buckets: { name: string; path: string }[];
  inboxPollMs: number;
  trashDays: number;
  /** Key that encrypts DSN secrets; when absent one is generated into the data root's secrets. */
  secretKey: string | undefined;
  /** Named database connections: LAKEHOUSE_CONNECTION_<NAME>=dsn, keyed by lower-case name. */
  connections: Record<string, string>;
  /** An ingest job may carry its own DSN (admins only); otherwise jobs name a connection. */
  allowJobDsn: boolean;
  embedding: {
    /**
     * Named embedding providers, keyed by lower-case name: `local` (built in), `ollama`
     * (LAKEHOUSE_OLLAMA_URL), `openai` (LAKEHOUSE_OPENAI_URL + OPENAI_API_KEY), and every
     * LAKEHOUSE_EMBED_PROVIDER_<NAME>=<kind>:<url> (+ `_KEY`), which may replace `ollama`/`openai`.
     */
    providers: Record<string, EmbedProviderEndpoint>;
    localThreads: number;
    timeoutMs: number;
    /** HTTP attempts after the first on 429/5xx/timeouts. */
    maxRetries: number;
    /** Texts per HTTP request, and per sub-batch of a local thread. */
    batchSize: number;
    /** Chunks per fan-out child job of an embed or refresh. */
    shardChunks: number;
    /** Characters of a provider's error answer quoted in a job's failure, after scrubbing. */
    errorBodyChars: number;
  };
  /** Memory the API may spend on loaded HNSW generations. */
  indexCacheBytes: number;
  /** The per-index generation lease (SECURITY.md, "One writer per index generation"). */
  indexLease: {
    /** How long a job polls a busy lease before parking itself as delayed; how long promote/rollback wait before a 409. */
    waitMs: number;
    /** How long a parked job stays delayed before trying again. */
    retryMs: number;
    /** Total time a job may wait for the lease before it fails (retryable). */
    maxWaitMs: number;
    /** TTL of a lease held by a process (promote/rollback), renewed every third of it. */
    ttlMs: number;
  };
  /** Bounds of the API's HTTP server (README "HTTP limits"). */
  http: {
    /** Whole request head must arrive within this (slowloris). */
    headersTimeoutMs: number;
    /** Hard cap on receiving any request, uploads included. */
    requestTimeoutMs: number;
    /** A JSON body must arrive whole within this. */
    bodyTimeoutMs: number;
    /** An upload is cut when no byte arrives for this long. */
    uploadIdleTimeoutMs: number;
    keepAliveTimeoutMs: number;
    maxHeaderBytes: number;
    jsonBodyMaxBytes: number;
    bulkBodyMaxBytes: number;
    /** Open job event streams per API key, per API process. */
    sseMaxStreamsPerKey: number;
    /** An event stream is ended after this long; clients reconnect. */
    sseMaxLifetimeMs: number;
  };
  /** The orphan sweeper (shared/maintenance/orphan-sweeper.ts). */
  sweep: { intervalMs: number; graceMs: number };
  /** Bull Board shows, never changes. */
  boardReadOnly: boolean;
}

export const EMBED_PROVIDER_KINDS = ['ollama', 'openai'] as const;
export type EmbedProviderEndpoint = NamedEndpoint<(typeof EMBED_PROVIDER_KINDS)[number]> | { name: 'local'; kind: 'local'; variable: string };
export const EMBED_PROVIDER_PREFIX = 'LAKEHOUSE_EMBED_PROVIDER_';

export class ConfigError extends Error {
  override name = 'ConfigError';
}

const CONNECTION_VAR = /^LAKEHOUSE_CONNECTION_([A-Z][A-Z0-9_]{0,62})$/;

function namedConnections(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) {
    const m = CONNECTION_VAR.exec(key);
    if (!m || !value) continue;
    if (!/^(postgres|postgresql|mysql|mariadb):\/\//.test(value)) {
      throw new ConfigError(`invalid configuration:\n  ${key}: expected a postgres://, postgresql://, mysql:// or mariadb:// DSN`);
    }
    out[m[1]!.toLowerCase()] = value;
  }
  return out;
}

function embedProviders(env: NodeJS.ProcessEnv, c: RawConfig): Record<string, EmbedProviderEndpoint> {
  const { endpoints, problems } = readNamedEndpoints(env, EMBED_PROVIDER_PREFIX, EMBED_PROVIDER_KINDS);
  if (endpoints['local']) problems.push(`${EMBED_PROVIDER_PREFIX}LOCAL: "local" is the built-in offline provider; choose another name`);
  for (const [variable, url] of [['LAKEHOUSE_OLLAMA_URL', c.LAKEHOUSE_OLLAMA_URL], ['LAKEHOUSE_OPENAI_URL', c.LAKEHOUSE_OPENAI_URL]] as const) {
    const problem = checkBaseUrl(url);
    if (problem) problems.push(`${variable}: ${problem}`);
  }
  if (problems.length) throw new ConfigError(`invalid configuration:\n${problems.map((p) => `  ${p}`).join('\n')}`);
  return {
    local: { name: 'local', kind: 'local', variable: '(built in)' },
    ollama: { name: 'ollama', kind: 'ollama', url: c.LAKEHOUSE_OLLAMA_URL, variable: 'LAKEHOUSE_OLLAMA_URL' },
    openai: { name: 'openai', kind: 'openai', url: c.LAKEHOUSE_OPENAI_URL, ...(c.OPENAI_API_KEY ? { key: c.OPENAI_API_KEY } : {}), variable: 'LAKEHOUSE_OPENAI_URL' },
    ...endpoints,
  };
}

/** Parses an environment (process.env by default) into a Config, or throws ConfigError naming every bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = configSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  const c = parsed.data;
  if (c.LAKEHOUSE_HTTP_HEADERS_TIMEOUT_MS > c.LAKEHOUSE_HTTP_REQUEST_TIMEOUT_MS) {
    throw new ConfigError('invalid configuration:\n  LAKEHOUSE_HTTP_HEADERS_TIMEOUT_MS: must not exceed LAKEHOUSE_HTTP_REQUEST_TIMEOUT_MS');
  }
  return Object.freeze({
    redisUrl: c.REDIS_URL,
    dataDir: path.resolve(c.LAKEHOUSE_DATA_DIR),
    port: c.PORT,
    host: c.LAKEHOUSE_HOST,
    apiKeys: c.LAKEHOUSE_API_KEYS,
    queuePrefix: c.LAKEHOUSE_QUEUE_PREFIX,
    uploadMaxBytes: c.LAKEHOUSE_UPLOAD_MAX_BYTES,
    ingestMaxRejects: c.LAKEHOUSE_INGEST_MAX_REJECTS,
    queryTimeoutMs: c.LAKEHOUSE_QUERY_TIMEOUT_MS,
    queryMaxRows: c.LAKEHOUSE_QUERY_MAX_ROWS,
    queryMaxResultBytes: c.LAKEHOUSE_QUERY_MAX_RESULT_MB * MiB,
    queryMemoryMb: c.LAKEHOUSE_QUERY_MEMORY_MB,
    queryThreads: c.LAKEHOUSE_QUERY_THREADS,
    queryTempMaxMb: c.LAKEHOUSE_QUERY_TEMP_MAX_MB,
    searchFilterMaxRows: c.LAKEHOUSE_SEARCH_FILTER_MAX_ROWS,
    searchMaxEf: c.LAKEHOUSE_SEARCH_MAX_EF,
    workerConcurrency: c.LAKEHOUSE_WORKER_CONCURRENCY,
    workerQueues: c.LAKEHOUSE_QUEUES,
    shutdownTimeoutMs: c.LAKEHOUSE_SHUTDOWN_TIMEOUT_MS,
    privateRedis: c.LAKEHOUSE_PRIVATE_REDIS,
    logLevel: c.LOG_LEVEL,
    buckets: c.LAKEHOUSE_BUCKETS,
    inboxPollMs: c.LAKEHOUSE_INBOX_POLL_MS,
    trashDays: c.LAKEHOUSE_TRASH_DAYS,
    secretKey: c.LAKEHOUSE_SECRET_KEY,
    connections: namedConnections(env),
    allowJobDsn: c.LAKEHOUSE_ALLOW_JOB_DSN,
    embedding: {
      providers: embedProviders(env, c),
      localThreads: c.LAKEHOUSE_EMBED_THREADS,
      timeoutMs: c.LAKEHOUSE_EMBED_TIMEOUT_MS,
      maxRetries: c.LAKEHOUSE_EMBED_MAX_RETRIES,
      batchSize: c.LAKEHOUSE_EMBED_BATCH_SIZE,
      shardChunks: c.LAKEHOUSE_EMBED_SHARD_CHUNKS,
      errorBodyChars: c.LAKEHOUSE_EMBED_ERROR_BODY_CHARS,
    },
    indexCacheBytes: c.LAKEHOUSE_INDEX_CACHE_MB * 1024 * 1024,
    indexLease: {
      waitMs: c.LAKEHOUSE_INDEX_LEASE_WAIT_MS,
      retryMs: c.LAKEHOUSE_INDEX_LEASE_RETRY_MS,
      maxWaitMs: c.LAKEHOUSE_INDEX_LEASE_MAX_WAIT_MS,
      ttlMs: c.LAKEHOUSE_INDEX_LEASE_TTL_MS,
    },
    http: {
      headersTimeoutMs: c.LAKEHOUSE_HTTP_HEADERS_TIMEOUT_MS,
      requestTimeoutMs: c.LAKEHOUSE_HTTP_REQUEST_TIMEOUT_MS,
      bodyTimeoutMs: c.LAKEHOUSE_HTTP_BODY_TIMEOUT_MS,
      uploadIdleTimeoutMs: c.LAKEHOUSE_UPLOAD_IDLE_TIMEOUT_MS,
      keepAliveTimeoutMs: c.LAKEHOUSE_HTTP_KEEPALIVE_TIMEOUT_MS,
      maxHeaderBytes: c.LAKEHOUSE_HTTP_MAX_HEADER_BYTES,
      jsonBodyMaxBytes: c.LAKEHOUSE_JSON_BODY_MAX_BYTES,
      bulkBodyMaxBytes: c.LAKEHOUSE_BULK_BODY_MAX_BYTES,
      sseMaxStreamsPerKey: c.LAKEHOUSE_SSE_MAX_STREAMS_PER_KEY,
      sseMaxLifetimeMs: c.LAKEHOUSE_SSE_MAX_LIFETIME_MS,
    },
    sweep: { intervalMs: c.LAKEHOUSE_SWEEP_INTERVAL_MS, graceMs: c.LAKEHOUSE_SWEEP_GRACE_MS },
    boardReadOnly: c.LAKEHOUSE_BOARD_READONLY,
  });
}
