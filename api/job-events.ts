/**
 * One QueueEvents stream per queue per API process, shared by every SSE client watching a job
 * of that queue. Listeners filter by job id.
 */
import { QueueEvents } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Config } from '../shared/config.ts';
import { createRedis } from '../shared/redis/connection.ts';
import { StreamQuota } from './stream-quota.ts';

export type JobEvent =
  | { type: 'progress'; data: unknown }
  | { type: 'active' }
  | { type: 'completed'; result: unknown }
  | { type: 'failed'; reason: string };

type Listener = (e: JobEvent) => void;

export class JobEvents {
  private readonly streams = new Map<string, { qe: QueueEvents; connection: Redis }>();
  private readonly listeners = new Map<string, Set<Listener>>();
  /** Open event streams per API key in this process (LAKEHOUSE_SSE_MAX_STREAMS_PER_KEY). */
  readonly quota: StreamQuota;

  constructor(private readonly config: Config) {
    this.quota = new StreamQuota(config.http.sseMaxStreamsPerKey);
  }

  async subscribe(queue: string, jobId: string, listener: Listener): Promise<() => void> {
    await this.stream(queue);
    const key = `${queue}\u0000${jobId}`;
    let set = this.listeners.get(key);
    if (!set) this.listeners.set(key, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.listeners.delete(key);
    };
  }

  /** Live listeners across every job: back to its baseline once every stream has ended. */
  listenerCount(): number {
    let n = 0;
    for (const set of this.listeners.values()) n += set.size;
    return n;
  }

  private emit(queue: string, jobId: string, event: JobEvent): void {
    for (const l of this.listeners.get(`${queue}\u0000${jobId}`) ?? []) l(event);
  }

  private async stream(queue: string): Promise<void> {
    if (!this.streams.has(queue)) {
      // named, so CLIENT LIST shows them: one per queue per API process, never one per stream
      const connection = createRedis(this.config.redisUrl, 'subscriber', { connectionName: eventsConnectionName(this.config) });
      const qe = new QueueEvents(queue, { connection, prefix: this.config.queuePrefix });
      qe.on('error', () => {});
      qe.on('progress', ({ jobId, data }) => this.emit(queue, jobId, { type: 'progress', data }));
      qe.on('active', ({ jobId }) => this.emit(queue, jobId, { type: 'active' }));
      qe.on('completed', ({ jobId, returnvalue }) => this.emit(queue, jobId, { type: 'completed', result: parseMaybe(returnvalue) }));
      qe.on('failed', ({ jobId, failedReason }) => this.emit(queue, jobId, { type: 'failed', reason: failedReason }));
      this.streams.set(queue, { qe, connection });
      await qe.waitUntilReady();
    }
  }

  async close(): Promise<void> {
    await Promise.all(
      [...this.streams.values()].map(async ({ qe, connection }) => {
        await qe.close();
        connection.disconnect();
      }),
    );
  }
}

export function eventsConnectionName(config: Config): string {
  return `${config.queuePrefix}:api-job-events`;
}

/** The events stream carries return values as JSON text. */
function parseMaybe(value: unknown): unknown {
  if (typeof value !== 'string') return value;
  try {
    return JSON.parse(value);
  } catch {
    return value;
  }
}
