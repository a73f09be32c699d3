/**
 * Which worker processes are alive. Each worker process writes a small record with a TTL and
 * refreshes it; a sorted set of heartbeats lets the API list them without SCAN. A worker that
 * dies simply stops refreshing and drops out after HEARTBEAT_TTL_MS.
 */
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import type { Redis } from 'ioredis';

export const HEARTBEAT_MS = 5_000;
export const HEARTBEAT_TTL_MS = 3 * HEARTBEAT_MS;

export interface WorkerRecord {
  id: string;
  host: string;
  pid: number;
  queues: string[];
  concurrency: number;
  started_at: string;
  last_seen: string;
}

const setKey = (prefix: string) => `${prefix}:cluster:workers`;
const recordKey = (prefix: string, id: string) => `${prefix}:cluster:worker:${id}`;

export function newWorkerRecord(queues: string[], concurrency: number): WorkerRecord {
  const now = new Date().toISOString();
  return {
    id: `${os.hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`,
    host: os.hostname(),
    pid: process.pid,
    queues,
    concurrency,
    started_at: now,
    last_seen: now,
  };
}

export async function heartbeat(redis: Redis, prefix: string, record: WorkerRecord): Promise<void> {
  const now = Date.now();
  const fresh = { ...record, last_seen: new Date(now).toISOString() };
  await redis
    .multi()
    .set(recordKey(prefix, record.id), JSON.stringify(fresh), 'PX', HEARTBEAT_TTL_MS)
    .zadd(setKey(prefix), now, record.id)
    .zremrangebyscore(setKey(prefix), 0, now - HEARTBEAT_TTL_MS)
    .exec();
}

export async function leave(redis: Redis, prefix: string, id: string): Promise<void> {
  await redis.multi().del(recordKey(prefix, id)).zrem(setKey(prefix), id).exec();
}

export async function listWorkers(redis: Redis, prefix: string): Promise<WorkerRecord[]> {
  const ids = await redis.zrangebyscore(setKey(prefix), Date.now() - HEARTBEAT_TTL_MS, '+inf');
  if (ids.length === 0) return [];
  const values = await redis.mget(ids.map((id) => recordKey(prefix, id)));
  return values.filter((v): v is string => v !== null).map((v) => JSON.parse(v) as WorkerRecord);
}
