/**
 * Where a job's progress detail lives. BullMQ's own progress field holds only the number 0–100,
 * because Bull Board draws its bar only for a number; the detail (phase, counts, rates, ETA) and
 * a flow parent's first start are kept beside the job in one small Redis hash per job, which the
 * API merges into its job views and event streams.
 *
 * Why not the job's data: flow parents keep their orchestration state there (workers/fan-out.ts,
 * workers/processors/embed.ts), and their progress is written by the children's workers
 * (reportShardBatch), so a detail written with job.updateData would race the parent's own
 * updates. Why not only job logs: they grow with every update and are text, not fields. Logs get
 * one line per phase, for Bull Board's Logs tab (workers/job-progress.ts).
 *
 * The hash is overwritten in place (constant size) and expires with the longest job retention.
 */
import type { Redis } from 'ioredis';
import { DEFAULT_JOB_OPTIONS } from './default-job-options.ts';

/** Detail values a caller of any role may see: counts, rates, seconds and a short phase word. */
export type ProgressDetail = Record<string, number | string>;

export interface JobProgressMeta {
  detail?: ProgressDetail;
  /** When the job first started (ms), kept for jobs that park and resume (flow parents). */
  firstStartedAt?: number;
  /** The creation time of the job this was written for: a later job reusing the id is not it. */
  jobCreatedAt?: number;
}

/** The meta if it belongs to this job (not to an earlier, removed job with the same id). */
export function metaOf(meta: JobProgressMeta | undefined, jobCreatedAt: number): JobProgressMeta {
  return meta && meta.jobCreatedAt === jobCreatedAt ? meta : {};
}

/** As long as the longest-kept job (failed jobs, queues/default-job-options.ts), so a view never outlives its detail. */
export const PROGRESS_DETAIL_TTL_MS = DEFAULT_JOB_OPTIONS.removeOnFail.age * 1000;

const KEY_RE = /^[a-z][a-z0-9_]{0,40}$/;
/** The phases our processors name (shared/ingest/ingest-source.ts, workers/…); any other string is dropped. */
export const PROGRESS_PHASES = new Set(['fingerprint', 'check', 'convert', 'fetch', 'pii scan', 'chunking', 'embedding', 'index build', 'index update', 'trials', 'done']);
const MAX_FIELDS = 16;

/**
 * Only finite numbers under snake_case names and a `phase` from {@link PROGRESS_PHASES}: whatever a
 * domain function passes, the detail cannot carry a value of the data (readers see it).
 */
export function cleanDetail(detail: Record<string, unknown>): ProgressDetail {
  const out: ProgressDetail = {};
  for (const [k, v] of Object.entries(detail)) {
    if (Object.keys(out).length >= MAX_FIELDS) break;
    if (!KEY_RE.test(k)) continue;
    if (typeof v === 'number' && Number.isFinite(v)) out[k] = v;
    else if (k === 'phase' && typeof v === 'string' && PROGRESS_PHASES.has(v)) out[k] = v;
  }
  return out;
}

/** A percent as BullMQ should hold it: a number 0–100 with one decimal. */
export function clampPercent(percent: number): number {
  return Number.isFinite(percent) ? Math.round(Math.min(Math.max(percent, 0), 100) * 10) / 10 : 0;
}

/**
 * The number a stored progress stands for: a number as is; `{percent}` from jobs written before
 * progress became a number; 100 for a completed job whatever its last update said.
 */
export function progressNumber(progress: unknown, state?: string): number {
  if (state === 'completed') return 100;
  if (typeof progress === 'number') return clampPercent(progress);
  const percent = (progress as { percent?: unknown } | null)?.percent;
  return typeof percent === 'number' ? clampPercent(percent) : 0;
}

/** What the store needs of a job. */
export interface JobRef {
  queueName: string;
  id?: string | undefined;
  /** BullMQ's creation time (ms). */
  timestamp: number;
}

export class JobProgressStore {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  key(queue: string, id: string): string {
    return `${this.prefix}:job-progress:${queue}:${id}`;
  }

  async writeDetail(job: JobRef, detail: Record<string, unknown>): Promise<void> {
    const key = this.key(job.queueName, job.id!);
    await this.claim(key, job.timestamp);
    await this.redis.multi().hset(key, 'detail', JSON.stringify(cleanDetail(detail))).pexpire(key, PROGRESS_DETAIL_TTL_MS).exec();
  }

  /** Keeps the first start of a job that will park and resume; later calls change nothing. */
  async recordFirstStart(job: JobRef, startedAt: number): Promise<void> {
    const key = this.key(job.queueName, job.id!);
    await this.claim(key, job.timestamp);
    await this.redis.multi().hsetnx(key, 'first_started_at', String(startedAt)).pexpire(key, PROGRESS_DETAIL_TTL_MS).exec();
  }

  /** A hash left by an earlier job with the same id (removed, then the id reused) is dropped first. */
  private async claim(key: string, jobCreatedAt: number): Promise<void> {
    const owner = await this.redis.hget(key, 'job_created_at');
    if (owner === String(jobCreatedAt)) return;
    await this.redis.multi().del(key).hset(key, 'job_created_at', String(jobCreatedAt)).exec();
  }

  async remove(queue: string, id: string): Promise<void> {
    await this.redis.del(this.key(queue, id));
  }

  async read(queue: string, id: string): Promise<JobProgressMeta> {
    return (await this.readMany(queue, [id])).get(id) ?? {};
  }

  async readMany(queue: string, ids: string[]): Promise<Map<string, JobProgressMeta>> {
    const out = new Map<string, JobProgressMeta>();
    if (ids.length === 0) return out;
    const pipe = this.redis.pipeline();
    for (const id of ids) pipe.hmget(this.key(queue, id), 'detail', 'first_started_at', 'job_created_at');
    const replies = (await pipe.exec()) ?? [];
    ids.forEach((id, i) => {
      const [err, value] = replies[i] ?? [];
      if (err || !Array.isArray(value)) return;
      const [detail, first, created] = value as (string | null)[];
      const meta: JobProgressMeta = {};
      if (created && Number.isFinite(Number(created))) meta.jobCreatedAt = Number(created);
      if (detail) meta.detail = cleanDetail(parseObject(detail));
      if (first && Number.isFinite(Number(first))) meta.firstStartedAt = Number(first);
      out.set(id, meta);
    });
    return out;
  }
}

function parseObject(text: string): Record<string, unknown> {
  try {
    const v = JSON.parse(text) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}
