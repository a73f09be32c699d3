/**
 * Ours: the real path a client takes. The API (startApi) on 127.0.0.1 with an admin key, and the
 * ingest workers (startWorkers, queue 'ingest', one job at a time) whose processor runs sandboxed
 * in a child process BullMQ forks on the first job. That child builds its config from
 * process.env, so the bench's data dir and queue prefix are put there before anything starts and
 * the previous values are restored by close().
 *
 * An ingest is: stream the file with fetch to POST /datasets/:name/upload (the API stages it on
 * disk and enqueues the job), then poll GET /jobs/ingest/:id until it finished. Where the time
 * went is read afterwards from the queue's event stream (Redis stream ids are millisecond
 * timestamps): when the job went active, and when it reported each phase.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { startApi, type RunningApi } from '../../api/server.ts';
import { loadConfig } from '../../shared/config.ts';
import { createLogger } from '../../shared/logger.ts';
import { startWorkers, type RunningWorkers } from '../../workers/runner.ts';
import { postFile } from './raw-upload.ts';

export interface OurStack {
  url: string;
  /** The admin key the API was started with. */
  key: string;
  prefix: string;
  dataDir: string;
  api: RunningApi;
  workers: RunningWorkers;
  /** Calls the API with the admin key; JSON in, JSON out. */
  call(method: string, path: string, body?: unknown): Promise<{ status: number; json: any }>;
  close(): Promise<void>;
}

export async function startOurStack(redisUrl: string, prefix: string): Promise<OurStack> {
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'lhbench-ingest-data-'));
  const key = randomBytes(24).toString('hex');
  const env: Record<string, string> = {
    REDIS_URL: redisUrl,
    LAKEHOUSE_DATA_DIR: dataDir,
    LAKEHOUSE_HOST: '127.0.0.1',
    PORT: '0',
    LAKEHOUSE_API_KEYS: `${key}:admin`,
    LAKEHOUSE_QUEUE_PREFIX: prefix,
    LAKEHOUSE_PRIVATE_REDIS: 'never',
    LAKEHOUSE_WORKER_CONCURRENCY: '1',
    LOG_LEVEL: 'warn',
  };
  const saved = new Map(Object.keys(env).map((k) => [k, process.env[k]]));
  const restoreEnv = () => {
    for (const [k, v] of saved) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
  Object.assign(process.env, env);
  let api: RunningApi | undefined;
  let workers: RunningWorkers | undefined;
  const close = async () => {
    await workers?.close(10_000);
    await api?.close();
    restoreEnv();
    await fs.rm(dataDir, { recursive: true, force: true });
  };
  try {
    const config = loadConfig(process.env);
    const log = createLogger(config.logLevel, 'bench-ingest');
    api = await startApi(config, log);
    workers = await startWorkers({ config, queues: ['ingest'], concurrency: 1, log });
  } catch (err) {
    await close();
    throw err;
  }
  const url = api.url;
  const call = async (method: string, p: string, body?: unknown) => {
    const res = await fetch(`${url}${p}`, {
      method,
      headers: { authorization: `Bearer ${key}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, json: text ? (JSON.parse(text) as unknown) : undefined };
  };
  return { url, key, prefix, dataDir, api, workers, call, close };
}

export interface OurIngest {
  jobId: string;
  /** From the first byte sent until the job finished (the job's finishedOn). */
  e2eSeconds: number;
  /** From the first byte sent until the 202 answer: the body streamed, staged, the job added. */
  uploadSeconds: number;
  /** From the job's creation until a worker took it (processedOn). */
  queueWaitSeconds: number;
  /** The job's own processedOn → finishedOn. */
  jobSeconds: number;
  /** Until the polling client saw the job completed (poll interval included). */
  observedSeconds: number;
  rows: number;
  /** Parquet bytes the job wrote. */
  bytes: number;
  phases: JobPhases;
}

/**
 * What the job's own events say, in seconds. Progress is reported at most every 200-250 ms, so
 * each boundary is late by up to that much: `start` (active → first progress: the child takes the
 * job, parses it, opens its context), `fingerprint` (→ first 'convert' report, which also holds
 * format detection and the ~250 ms before the first conversion report), `convert` (→ the 'pii scan'
 * report), `tail` (→ completed: PII scan, manifest commit, removing the staged upload). When the
 * 'pii scan' report never arrived, `convert` runs to completion and `tail` is undefined.
 */
export interface JobPhases {
  start?: number;
  fingerprint?: number;
  convert?: number;
  tail?: number;
  /** The last conversion report's own rate (DuckDB's progress over the source bytes). */
  convertMbPerS?: number;
  /** Phase names in the order the job reported them (repeats collapsed). */
  reported: string[];
}

const POLL_MS = 100;

export async function uploadAndWait(stack: OurStack, file: string, dataset: string, filename: string, timeoutMs = 600_000): Promise<OurIngest> {
  const size = (await fs.stat(file)).size;
  const t0 = Date.now();
  const res = await postFile(`${stack.url}/datasets/${dataset}/upload?mode=replace&filename=${encodeURIComponent(filename)}`, file, size, {
    authorization: `Bearer ${stack.key}`,
  });
  const answer = (await res.json()) as { id?: string; detail?: string };
  const uploaded = Date.now();
  if (res.status !== 202 || !answer.id) throw new Error(`upload answered ${res.status}: ${JSON.stringify(answer).slice(0, 300)}`);

  const deadline = t0 + timeoutMs;
  for (;;) {
    const { status, json } = await stack.call('GET', `/jobs/ingest/${encodeURIComponent(answer.id)}`);
    if (status !== 200) throw new Error(`GET /jobs/ingest/${answer.id} answered ${status}: ${JSON.stringify(json).slice(0, 300)}`);
    if (json.state === 'failed') throw new Error(`ingest job ${answer.id} failed: ${json.failed_reason}`);
    if (json.state === 'completed' && json.result !== undefined) {
      const observed = Date.now();
      const ms = (iso: string) => Date.parse(iso);
      const result = json.result as { rows: number; bytes: number; duplicate: boolean };
      if (result.duplicate) throw new Error(`ingest job ${answer.id} was a duplicate: the bench must ingest new bytes every round`);
      return {
        jobId: answer.id,
        e2eSeconds: (ms(json.finished_at) - t0) / 1000,
        uploadSeconds: (uploaded - t0) / 1000,
        queueWaitSeconds: (ms(json.processed_at) - ms(json.created_at)) / 1000,
        jobSeconds: json.duration_ms / 1000,
        observedSeconds: (observed - t0) / 1000,
        rows: result.rows,
        bytes: result.bytes,
        phases: await jobPhases(stack, answer.id),
      };
    }
    if (Date.now() > deadline) throw new Error(`ingest job ${answer.id} still ${json.state} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

async function jobPhases(stack: OurStack, jobId: string): Promise<JobPhases> {
  const redis: Redis = stack.api.deps.redis;
  const entries = await redis.xrange(`${stack.prefix}:ingest:events`, '-', '+');
  const events = entries
    .map(([id, fields]) => {
      const f = new Map<string, string>();
      for (let i = 0; i + 1 < fields.length; i += 2) f.set(fields[i]!, fields[i + 1]!);
      return { at: Number(id.split('-')[0]), event: f.get('event'), jobId: f.get('jobId'), data: f.get('data') };
    })
    .filter((e) => e.jobId === jobId);
  const progress = events
    .filter((e) => e.event === 'progress')
    .map((e) => ({ at: e.at, data: JSON.parse(e.data ?? '{}') as { phase?: string; mb_per_s?: number } }));
  const active = events.find((e) => e.event === 'active')?.at;
  const completed = events.find((e) => e.event === 'completed')?.at;
  const first = (phase: string) => progress.find((p) => p.data.phase === phase)?.at;
  const fingerprintAt = first('fingerprint');
  const convertAt = first('convert');
  const piiAt = first('pii scan');
  const span = (a: number | undefined, b: number | undefined) => (a !== undefined && b !== undefined ? (b - a) / 1000 : undefined);
  const reported: string[] = [];
  for (const p of progress) {
    const name = p.data.phase ?? 'done';
    if (reported[reported.length - 1] !== name) reported.push(name);
  }
  const lastConvert = [...progress].reverse().find((p) => p.data.phase === 'convert');
  const phases: JobPhases = { reported };
  const set = (k: 'start' | 'fingerprint' | 'convert' | 'tail', v: number | undefined) => {
    if (v !== undefined) phases[k] = v;
  };
  set('start', span(active, fingerprintAt));
  set('fingerprint', span(fingerprintAt, convertAt));
  set('convert', span(convertAt, piiAt ?? completed));
  set('tail', piiAt !== undefined ? span(piiAt, completed) : undefined);
  if (lastConvert?.data.mb_per_s !== undefined) phases.convertMbPerS = lastConvert.data.mb_per_s;
  return phases;
}
