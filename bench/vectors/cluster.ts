/**
 * Our stack as the vectors bench drives it: one data root shared by everything, an in-process API
 * per queue prefix (startApi; the HTTP client is this process), and real `lakehouse worker`
 * processes (bin/lakehouse.js) serving a prefix. Worker processes build their config from the
 * environment they are given, so each configuration (embedding threads, the model server's URL,
 * shard size) is a process of its own and this process's environment is never touched.
 *
 * A prefix is a separate cluster: jobs added through one API are only seen by the workers started
 * on the same prefix, which is how two configurations can stay up side by side and take turns.
 */
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { startApi, type RunningApi } from '../../api/server.ts';
import type { JobView } from '../../api/job-view.ts';
import { listWorkers } from '../../shared/cluster/membership.ts';
import { loadConfig } from '../../shared/config.ts';
import { createLogger } from '../../shared/logger.ts';
import { stopWorkerProcess, WorkerProcess } from '../../test/helpers/processes.ts';
import { postFile } from '../ingest/raw-upload.ts';
import { freshPrefix } from '../queue/redis-prefix.ts';

const BIN = fileURLToPath(new URL('../../bin/lakehouse.js', import.meta.url));
const POLL_MS = 50;
const SHUTDOWN_MS = 10_000;

export interface Api {
  prefix: string;
  url: string;
  running: RunningApi;
  call(method: string, p: string, body?: unknown): Promise<{ status: number; json: any }>;
}

export class Cluster {
  readonly apis: Api[] = [];
  readonly workers: WorkerProcess[] = [];
  /** The prefix each worker process serves. */
  private readonly prefixOf = new Map<WorkerProcess, string>();
  readonly key = randomBytes(24).toString('hex');

  private constructor(
    readonly redisUrl: string,
    readonly admin: Redis,
    readonly dataDir: string,
  ) {}

  static async create(redisUrl: string, admin: Redis, dataDir: string): Promise<Cluster> {
    await fs.mkdir(dataDir, { recursive: true });
    return new Cluster(redisUrl, admin, dataDir);
  }

  /** An API on a fresh prefix (`lhbench-<section>-<hex>`), on the shared data root. */
  async api(section: string): Promise<Api> {
    const prefix = freshPrefix(section);
    const config = loadConfig({
      REDIS_URL: this.redisUrl,
      LAKEHOUSE_DATA_DIR: this.dataDir,
      LAKEHOUSE_HOST: '127.0.0.1',
      PORT: '0',
      LAKEHOUSE_API_KEYS: `${this.key}:admin`,
      LAKEHOUSE_QUEUE_PREFIX: prefix,
      LAKEHOUSE_PRIVATE_REDIS: 'never',
      LOG_LEVEL: 'warn',
    });
    const running = await startApi(config, createLogger(config.logLevel, `bench-api-${section}`));
    const call = async (method: string, p: string, body?: unknown) => {
      const res = await fetch(`${running.url}${p}`, {
        method,
        headers: { authorization: `Bearer ${this.key}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      const text = await res.text();
      return { status: res.status, json: text ? (JSON.parse(text) as unknown) : undefined };
    };
    const api: Api = { prefix, url: running.url, running, call };
    this.apis.push(api);
    return api;
  }

  /**
   * Starts `node bin/lakehouse.js worker --queues <queues> --concurrency <n>` on `api`'s prefix
   * and this data root, `env` added, and resolves once it is listed in the cluster membership
   * (its BullMQ workers exist).
   */
  async worker(api: Api, label: string, queues: string, concurrency: number, env: Record<string, string> = {}): Promise<WorkerProcess> {
    const childEnv: NodeJS.ProcessEnv = Object.fromEntries(
      Object.entries(process.env).filter(([k]) => !k.startsWith('LAKEHOUSE_') && !['REDIS_URL', 'LOG_LEVEL', 'OPENAI_API_KEY'].includes(k)),
    );
    Object.assign(childEnv, {
      REDIS_URL: this.redisUrl,
      LAKEHOUSE_DATA_DIR: this.dataDir,
      LAKEHOUSE_QUEUE_PREFIX: api.prefix,
      LAKEHOUSE_PRIVATE_REDIS: 'never',
      LAKEHOUSE_SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_MS),
      LOG_LEVEL: 'warn',
      ...env,
    });
    const args = [BIN, 'worker', '--queues', queues, '--concurrency', String(concurrency)];
    const proc = new WorkerProcess(spawn(process.execPath, args, { env: childEnv, cwd: this.dataDir, stdio: ['ignore', 'pipe', 'pipe'] }), label);
    this.workers.push(proc);
    this.prefixOf.set(proc, api.prefix);
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (!proc.running) throw new Error(`${label} exited before it joined the cluster\n${proc.output}`);
      if ((await listWorkers(this.admin, api.prefix)).some((w) => w.pid === proc.pid)) return proc;
      if (Date.now() > deadline) throw new Error(`${label} did not join the cluster within 60 s\n${proc.output}`);
      await sleep(100);
    }
  }

  /** SIGTERM (graceful: running jobs get SHUTDOWN_MS), then SIGKILL of whatever is left of it. */
  async stop(proc: WorkerProcess): Promise<void> {
    await stopWorkerProcess(proc, SHUTDOWN_MS + 5_000);
    this.workers.splice(this.workers.indexOf(proc), 1);
    this.prefixOf.delete(proc);
  }

  /** Stops every worker process serving `api`'s prefix. */
  async stopWorkersOf(api: Api): Promise<void> {
    await Promise.all(this.workers.filter((w) => this.prefixOf.get(w) === api.prefix).map((w) => this.stop(w)));
  }

  async close(): Promise<void> {
    await Promise.all([...this.workers].map((w) => this.stop(w)));
    for (const api of this.apis.splice(0)) await api.running.close();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `GET /jobs/<queue>/<id>` until the job completed; throws when it failed or at the deadline. */
export async function waitForJob(api: Api, queue: string, id: string, timeoutMs: number): Promise<JobView> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { status, json } = await api.call('GET', `/jobs/${queue}/${encodeURIComponent(id)}`);
    if (status !== 200) throw new Error(`GET /jobs/${queue}/${id} answered ${status}: ${JSON.stringify(json).slice(0, 300)}`);
    const view = json as JobView;
    if (view.state === 'failed') throw new Error(`${queue} job ${id} failed: ${view.failed_reason}`);
    if (view.state === 'completed' && view.result !== undefined) return view;
    if (Date.now() > deadline) throw new Error(`${queue} job ${id} still ${view.state} after ${timeoutMs} ms: ${JSON.stringify(view.progress)}`);
    await sleep(POLL_MS);
  }
}

/** Uploads `file` as dataset `name` (replace) and waits for its ingest job. */
export async function ingestFile(api: Api, key: string, file: string, name: string, timeoutMs = 300_000): Promise<{ rows: number }> {
  const size = (await fs.stat(file)).size;
  const url = `${api.url}/datasets/${name}/upload?mode=replace&filename=${encodeURIComponent(path.basename(file))}`;
  const res = await postFile(url, file, size, { authorization: `Bearer ${key}` });
  const answer = (await res.json()) as { id?: string };
  if (res.status !== 202 || !answer.id) throw new Error(`upload of ${name} answered ${res.status}: ${JSON.stringify(answer).slice(0, 300)}`);
  const view = await waitForJob(api, 'ingest', answer.id, timeoutMs);
  return { rows: (view.result as { rows: number }).rows };
}

export interface EmbedRequest {
  index: string;
  dataset: string;
  id_column: string;
  text_column: string;
  provider: 'local' | 'ollama' | 'openai';
  model?: string;
  hnsw?: { m: number; ef_construction: number; ef_search: number };
}

export interface EmbedRun {
  jobId: string;
  /** From just before POST /jobs/embed until the parent job's finishedOn. */
  e2eSeconds: number;
  /** The first shard's processedOn → the last shard's finishedOn: the embedding phase, cluster-wide. */
  embedSeconds: number;
  /** The parent's result. */
  chunks: number;
  shards: number;
  /** Shard job ids by the worker (membership id) that processed them. */
  shardsByWorker: Record<string, number>;
}

/** POST /jobs/embed, wait for it, and read its shard children's timestamps. */
export async function runEmbedJob(api: Api, req: EmbedRequest, timeoutMs: number): Promise<EmbedRun> {
  const started = Date.now();
  const posted = await api.call('POST', '/jobs/embed', req);
  if (posted.status !== 202) throw new Error(`POST /jobs/embed answered ${posted.status}: ${JSON.stringify(posted.json).slice(0, 300)}`);
  const id = (posted.json as { id: string }).id;
  const view = await waitForJob(api, 'embed', id, timeoutMs);
  const data = view.data as { shards?: number };
  const result = view.result as { chunks: number };
  if (!data.shards) throw new Error(`embed job ${id} completed without recording its shards: ${JSON.stringify(view.data).slice(0, 300)}`);
  const queue = api.running.deps.producer.queue('embed');
  const children = await Promise.all(Array.from({ length: data.shards }, (_, s) => queue.getJob(`embed-${id}-shard-${s}`)));
  const missing = children.findIndex((c) => !c?.processedOn || !c.finishedOn);
  if (missing >= 0) throw new Error(`shard ${missing} of embed job ${id} has no timestamps (removed, or never ran)`);
  const done = children as Job[];
  const shardsByWorker: Record<string, number> = {};
  for (const c of done) shardsByWorker[c.processedBy ?? 'unknown'] = (shardsByWorker[c.processedBy ?? 'unknown'] ?? 0) + 1;
  return {
    jobId: id,
    e2eSeconds: (Date.parse(view.finished_at!) - started) / 1000,
    embedSeconds: (Math.max(...done.map((c) => c.finishedOn!)) - Math.min(...done.map((c) => c.processedOn!))) / 1000,
    chunks: result.chunks,
    shards: data.shards,
    shardsByWorker,
  };
}
